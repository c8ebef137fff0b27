//! A Confluent Schema Registry client: register votewire's schemas and look
//! schemas up by id over the REST API.
//!
//! Subjects follow the TopicNameStrategy (`<topic>-value`). Without a
//! registry ([`SchemaRegistryConfig::url`] unset) votewire uses the committed
//! ids in `schemas/ids.json` and needs no registry at all.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use votewire_schemas::SchemaSet;

use crate::config::{SchemaRegistryConfig, TopicsConfig};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry {op} at {url}: {source}")]
    Transport {
        op: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("schema registry {op} at {url}: HTTP {status}: {body}")]
    Status {
        op: &'static str,
        url: String,
        status: u16,
        body: String,
    },
}

impl RegistryError {
    /// Network trouble and 5xx can pass; 4xx (incompatible schema, bad
    /// credentials) needs a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500,
        }
    }
}

/// A client for one registry.
#[derive(Clone)]
pub struct SchemaRegistryClient {
    base: String,
    http: reqwest::Client,
    basic_auth: Option<(String, String)>,
}

#[derive(Deserialize)]
struct IdReply {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaReply {
    schema: String,
}

impl SchemaRegistryClient {
    /// A client for `url`; credentials come from the environment
    /// (`VOTEWIRE_SCHEMA_REGISTRY_USERNAME`/`_PASSWORD`), never from config.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout)
            .build()
            .map_err(|source| RegistryError::Transport {
                op: "client setup",
                url: url.to_string(),
                source,
            })?;
        let basic_auth = match (
            std::env::var("VOTEWIRE_SCHEMA_REGISTRY_USERNAME"),
            std::env::var("VOTEWIRE_SCHEMA_REGISTRY_PASSWORD"),
        ) {
            (Ok(u), Ok(p)) => Some((u, p)),
            _ => None,
        };
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            http,
            basic_auth,
        })
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.basic_auth {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        url: String,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, RegistryError> {
        let transport = |source| RegistryError::Transport {
            op,
            url: url.clone(),
            source,
        };
        let resp = self.auth(rb).send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(RegistryError::Status {
                op,
                url,
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
            });
        }
        resp.json::<T>().await.map_err(transport)
    }

    /// Registers `schema` (Avro text) under `subject`, returning its id. The
    /// registry returns the existing id for a schema it already has.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" });
        let rb = self
            .http
            .post(&url)
            .header("content-type", CONTENT_TYPE)
            .body(body.to_string());
        Ok(self.send::<IdReply>("register", url, rb).await?.id)
    }

    /// The schema text registered under `id`.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let rb = self.http.get(&url).header("accept", CONTENT_TYPE);
        Ok(self.send::<SchemaReply>("lookup", url, rb).await?.schema)
    }
}

/// The `<topic>-value` subject of each schema.
pub fn subjects(topics: &TopicsConfig) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("votewire.v1.VoteCell", format!("{}-value", topics.votes)),
        (
            "votewire.v1.SnapshotManifest",
            format!("{}-value", topics.snapshots),
        ),
        (
            "votewire.v1.ContestResult",
            format!("{}-value", topics.results),
        ),
        (
            "votewire.v1.FeedStatus",
            format!("{}-value", topics.feed_status),
        ),
        ("votewire.v1.DeadLetter", format!("{}-value", topics.dlq)),
    ])
}

/// The schema set this process writes with: ids from the registry when one
/// is configured (registering the schemas), else the committed ids.
pub async fn resolve_schema_ids(
    registry: &SchemaRegistryConfig,
    topics: &TopicsConfig,
) -> Result<SchemaSet, RegistryError> {
    let committed = votewire_schemas::schemas();
    let Some(url) = &registry.url else {
        return Ok(committed.clone());
    };
    let client = SchemaRegistryClient::new(url, Duration::from_millis(registry.timeout_ms))?;
    let subjects = subjects(topics);
    let mut ids = BTreeMap::new();
    for s in committed.all() {
        let id = client.register(&subjects[s.name], s.text).await?;
        ids.insert(s.name.to_string(), id);
    }
    Ok(committed.with_ids(&ids))
}
