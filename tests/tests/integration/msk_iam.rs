//! MSK IAM access control: votewire's tokens against AWS's own signer, and
//! real librdkafka clients asking votewire's context for them.
//!
//! No broker here speaks MSK's IAM authenticator (Apache Kafka's
//! OAUTHBEARER needs a validator for AWS's tokens, which only MSK has;
//! librdkafka's mock cluster has no SASL), so what reaches
//! AWS is checked in two halves: the token is the one AWS's reference
//! signer (`aws-msk-iam-sasl-signer-python`, in the stack's venv) makes
//! from the same credentials at the same second, and librdkafka, configured
//! by `producer_config`/`consumer_config`, asks votewire's context for it.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use votewire_core::config::KafkaConfig;
use votewire_core::kafka::{KafkaClientContext, consumer_config, producer_config};
use votewire_core::msk_iam::{MskIamTokens, sign_connect_token};

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn credentials(session: Option<&str>) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        session.map(str::to_string),
        None,
        "test",
    )
}

/// The signed URL inside a token, and its query parameters.
fn open(token: &str) -> (String, BTreeMap<String, String>) {
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap_or_else(|e| panic!("{token} is not base64url without padding: {e}")),
    )
    .unwrap();
    let (_, query) = url.split_once('?').expect("a query");
    let params = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    (url, params)
}

/// `20231114T221320Z` as a time (SigV4's X-Amz-Date).
fn amz_date(s: &str) -> SystemTime {
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", s)
        .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC))
        .unwrap_or_else(|e| panic!("{s:?} is not an X-Amz-Date: {e}"))
        .timestamp()
        .into()
}

fn reference_token(region: &str, session: Option<&str>) -> (String, i64) {
    let stack = votewire_tests::Stack::load();
    let python = stack.var("VOTEWIRE_PYTHON");
    let script = votewire_tests::workspace_root().join("tests/msk_iam/reference_token.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script).args([region, ACCESS_KEY, SECRET_KEY]);
    cmd.args(session);
    let out = cmd.output().unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(
        out.status.success(),
        "AWS's signer (aws-msk-iam-sasl-signer-python in the stack's venv; deploy/local/stack install):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["expiry_ms"].as_i64().unwrap(),
    )
}

#[test]
fn votewire_signs_the_same_token_as_aws_own_signer() {
    for (region, session) in [
        ("eu-west-2", None),
        (
            "us-east-1",
            Some("IQoJb3JpZ2luX2VjEBAaCXVzLWVhc3QtMSJHMEUCIQ"),
        ),
        (
            "us-east-1",
            Some("IQoJb3JpZ2luX2VjEBAaCXVzLWVhc3QtMSJHMEUCIQ+/="),
        ),
    ] {
        let (theirs, their_expiry) = reference_token(region, session);
        let (their_url, mut their_params) = open(&theirs);
        let signed_at = amz_date(&their_params["X-Amz-Date"]);
        let ours = sign_connect_token(region, &credentials(session), signed_at).unwrap();
        let (our_url, mut our_params) = open(&ours.token);
        // Each signer names itself, after signing.
        let their_agent = their_params.remove("User-Agent").unwrap();
        let our_agent = our_params.remove("User-Agent").unwrap();
        assert!(their_agent.starts_with("aws-msk-iam-sasl-signer-python"));
        assert!(our_agent.starts_with("votewire%2F"), "{our_agent}");
        assert_eq!(
            our_params, their_params,
            "{region}: the same credentials and second must sign the same URL\n ours:   {our_url}\n theirs: {their_url}"
        );
        assert!(our_params["X-Amz-Signature"].len() == 64);
        assert_eq!(
            our_url.split('?').next(),
            their_url.split('?').next(),
            "the same endpoint"
        );
        assert_eq!(ours.expires_at_ms, their_expiry);
    }
}

fn msk_iam_kafka() -> KafkaConfig {
    KafkaConfig {
        // Nothing listens here: librdkafka asks for its token when the
        // client starts, before any connection.
        bootstrap_servers: "127.0.0.1:9".into(),
        msk_iam_region: Some("us-east-1".into()),
        ..KafkaConfig::default()
    }
}

fn wait_for_a_token(what: &str, issued: impl Fn() -> u64, mut poll: impl FnMut()) {
    let start = Instant::now();
    while issued() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "librdkafka never asked the {what}'s context for a token"
        );
        poll();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn librdkafka_asks_votewires_context_for_msk_iam_tokens() {
    let kafka = msk_iam_kafka();
    let producer_settings = producer_config(&kafka, "msk-iam-test");
    assert_eq!(producer_settings.get("security.protocol"), Some("SASL_SSL"));
    assert_eq!(producer_settings.get("sasl.mechanism"), Some("OAUTHBEARER"));
    let tokens = || Arc::new(MskIamTokens::with_credentials(credentials(Some("SESSION"))));

    // The producer polls on its own thread.
    let producer_tokens = tokens();
    let _producer: FutureProducer<KafkaClientContext> = producer_settings
        .create_with_context(KafkaClientContext::with_msk_iam(producer_tokens.clone()))
        .unwrap();
    wait_for_a_token("producer", || producer_tokens.issued(), || {});

    // A consumer gets its token when polled, as the services poll it.
    let consumer: BaseConsumer<KafkaClientContext> = consumer_config(&kafka, "msk-iam-test", "g")
        .create_with_context(KafkaClientContext::with_msk_iam(tokens()))
        .unwrap();
    wait_for_a_token(
        "consumer",
        || consumer.context().msk_iam().issued(),
        || {
            let _ = consumer.poll(Duration::from_millis(50));
        },
    );

    // A reader that asks for metadata before its first poll (every
    // whole-topic reader: the API's results view, export, tail) gets its
    // token first; otherwise librdkafka would never connect.
    let reader_tokens = tokens();
    let reader: BaseConsumer<KafkaClientContext> = consumer_config(&kafka, "msk-iam-test", "r")
        .create_with_context(KafkaClientContext::with_msk_iam(reader_tokens.clone()))
        .unwrap();
    let unreachable = votewire_core::kafka::assign_all_partitions(
        &reader,
        "votewire.results.v1",
        rdkafka::Offset::Beginning,
        Duration::from_millis(500),
    );
    assert!(unreachable.is_err(), "no broker listens there");
    assert_eq!(
        reader_tokens.issued(),
        1,
        "signed before the metadata request"
    );

    // Without msk_iam_region nothing asks: plain clients stay plain.
    let plain_tokens = tokens();
    let _plain: FutureProducer<KafkaClientContext> =
        producer_config(&KafkaConfig::default(), "msk-iam-test")
            .create_with_context(KafkaClientContext::with_msk_iam(plain_tokens.clone()))
            .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(plain_tokens.issued(), 0);
}
