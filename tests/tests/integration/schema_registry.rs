//! The Confluent REST client against a minimal in-test stand-in registry (no
//! schema registry can be installed on these machines; the guide allows a
//! stand-in here). Checked on the polyglot kind: Karapace is not on PyPI,
//! Confluent's registry is not on Maven Central, and Apicurio Registry's app
//! does not resolve from Central (3.3.3 needs
//! apicurio-registry-schema-util-provider 3.3.3, which is not served; 3.0.9's
//! parent POM is not served). The wire format itself is tested for real in
//! schemas/.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use votewire_core::config::{SchemaRegistryConfig, TopicsConfig};
use votewire_core::schema_registry::{SchemaRegistryClient, resolve_schema_ids};

#[derive(Default)]
struct Registry {
    /// schema text -> id
    ids: BTreeMap<String, u32>,
    /// subject -> ids registered under it
    subjects: BTreeMap<String, Vec<u32>>,
    refuse_subject: Option<String>,
}

async fn register(
    State(reg): State<Arc<Mutex<Registry>>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    assert_eq!(
        headers["content-type"],
        "application/vnd.schemaregistry.v1+json"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["schemaType"], "AVRO");
    let schema = v["schema"].as_str().unwrap().to_string();
    let mut r = reg.lock().unwrap();
    if r.refuse_subject.as_deref() == Some(subject.as_str()) {
        return (
            StatusCode::CONFLICT,
            json!({"error_code": 409, "message": "Schema being registered is incompatible"})
                .to_string(),
        );
    }
    let next = 100 + r.ids.len() as u32;
    let id = *r.ids.entry(schema).or_insert(next);
    r.subjects.entry(subject).or_default().push(id);
    (StatusCode::OK, json!({ "id": id }).to_string())
}

async fn by_id(
    State(reg): State<Arc<Mutex<Registry>>>,
    Path(id): Path<u32>,
) -> (StatusCode, String) {
    let r = reg.lock().unwrap();
    match r.ids.iter().find(|(_, i)| **i == id) {
        Some((schema, _)) => (StatusCode::OK, json!({ "schema": schema }).to_string()),
        None => (
            StatusCode::NOT_FOUND,
            json!({"error_code": 40403}).to_string(),
        ),
    }
}

async fn start() -> (String, Arc<Mutex<Registry>>) {
    let reg = Arc::new(Mutex::new(Registry::default()));
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/schemas/ids/{id}", get(by_id))
        .with_state(reg.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, reg)
}

#[tokio::test]
async fn registering_assigns_registry_ids_that_the_wire_format_then_carries() {
    let (url, reg) = start().await;
    let topics = TopicsConfig::default();
    let cfg = SchemaRegistryConfig {
        url: Some(url.clone()),
        timeout_ms: 2_000,
    };
    let set = resolve_schema_ids(&cfg, &topics).await.unwrap();
    let ids: Vec<u32> = set.all().iter().map(|s| s.id).collect();
    assert_eq!(ids, [100, 101, 102, 103, 104]);
    let subjects: Vec<String> = reg.lock().unwrap().subjects.keys().cloned().collect();
    assert!(
        subjects.contains(&"votewire.votes.v1-value".to_string()),
        "{subjects:?}"
    );
    assert!(subjects.contains(&"votewire.results.v1-value".to_string()));

    // Registering again is idempotent: the same ids come back.
    let again = resolve_schema_ids(&cfg, &topics).await.unwrap();
    assert_eq!(again.vote_cell.id, 100);

    // Records written with the registry's set carry its ids.
    let status = votewire_schemas::FeedStatus {
        feed_id: "f".into(),
        from_state: None,
        to_state: votewire_schemas::FeedHealth::Healthy,
        reason: "first fetch".into(),
        at: 1,
        consecutive_failures: 0,
        last_change_at: None,
        fetch_id: None,
        actor: None,
        trace_id: None,
    };
    let bytes = votewire_schemas::codec::encode(&set.feed_status, &status).unwrap();
    assert_eq!(
        u32::from_be_bytes(bytes[1..5].try_into().unwrap()),
        set.feed_status.id
    );

    // And the text behind an id is the committed schema.
    let client = SchemaRegistryClient::new(&url, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(
        client.schema_by_id(set.vote_cell.id).await.unwrap(),
        set.vote_cell.text
    );
    let missing = client.schema_by_id(9_999).await.unwrap_err();
    assert!(!missing.is_retryable());
}

#[tokio::test]
async fn an_incompatible_schema_is_a_non_retryable_error_naming_the_subject() {
    let (url, reg) = start().await;
    reg.lock().unwrap().refuse_subject = Some("votewire.dlq.v1-value".into());
    let cfg = SchemaRegistryConfig {
        url: Some(url),
        timeout_ms: 2_000,
    };
    let err = resolve_schema_ids(&cfg, &TopicsConfig::default())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("votewire.dlq.v1-value") && err.to_string().contains("409"),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_registry_the_committed_ids_apply() {
    let set = resolve_schema_ids(&SchemaRegistryConfig::default(), &TopicsConfig::default())
        .await
        .unwrap();
    assert_eq!(set.vote_cell.id, 7, "schemas/ids.json");
    assert_eq!(set.dead_letter.id, 5);
}

#[tokio::test]
async fn an_unreachable_registry_is_a_retryable_transport_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = SchemaRegistryConfig {
        url: Some(format!("http://{closed}")),
        timeout_ms: 1_000,
    };
    let err = resolve_schema_ids(&cfg, &TopicsConfig::default())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
