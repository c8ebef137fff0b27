//! The smoke pipeline: fetch one payload over HTTP, publish it to Kafka with
//! the idempotent producer, read it back in a consumer group and check that
//! bytes and headers survived the round trip.
//!
//! This is the smallest end-to-end proof that the spine works: real HTTP, a
//! real broker, real delivery reports, a real consumer group commit. It is
//! what the README's main command runs before the election-night replay
//! exists.

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use votewire_core::config::KafkaConfig;
use votewire_core::{kafka, topics};

use crate::http::{self, FetchError, FetchLimits};

/// What one smoke run did.
#[derive(Debug, Clone)]
pub struct SmokeReport {
    /// The URL fetched.
    pub url: String,
    /// The topic the record was published to and read back from.
    pub topic: String,
    /// Size of the fetched payload, in bytes.
    pub bytes: usize,
    /// Lower-case hex sha256 of the payload.
    pub sha256: String,
    /// The partition the record was delivered to.
    pub partition: i32,
    /// The record's offset in that partition.
    pub offset: i64,
    /// Milliseconds to build the HTTP client and fetch the payload.
    pub fetch_ms: u128,
    /// Milliseconds to build the producer and have the record acknowledged.
    pub produce_ms: u128,
    /// Milliseconds to build the consumer, read the record back, check it and commit its
    /// offset.
    pub consume_ms: u128,
}

/// The smoke pipeline failed, naming the step.
#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    /// Building the HTTP client or fetching the URL failed.
    #[error("fetch step: {0}")]
    Fetch(#[from] FetchError),
    /// A Kafka client step failed: building a producer or consumer, producing, subscribing,
    /// consuming or committing.
    #[error("kafka {step} step: {source}")]
    Kafka {
        /// Which step: `producer build`, `produce`, `consumer build`, `subscribe`,
        /// `consume` or `commit`.
        step: &'static str,
        /// The rdkafka error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Declaring the smoke topic failed.
    #[error("topic step: {0}")]
    Topic(#[source] kafka::KafkaSetupError),
    /// The record read back differs from the one sent; says how (payload bytes, or a header
    /// missing or changed).
    #[error("read-back step: {0}")]
    Mismatch(String),
    /// The record was not read back within the deadline (30 s), which it holds.
    #[error("read-back step: no record within {0:?}")]
    Timeout(Duration),
}

/// Header names the smoke record carries (a subset of the real ingestor's).
pub const SMOKE_HEADERS: [&str; 3] = ["feed_id", "fetch_id", "payload_sha256"];

/// Runs the pipeline against `url`, publishing to `topic`.
pub async fn run(
    kafka_cfg: &KafkaConfig,
    url: &str,
    topic: &str,
    replication_factor: i32,
) -> Result<SmokeReport, SmokeError> {
    let kafka_err = |step| move |source| SmokeError::Kafka { step, source };
    let limits = FetchLimits::default();
    let started = Instant::now();
    let client = http::client(&limits)?;
    let body = http::fetch_capped(&client, url, &limits).await?;
    let fetch_ms = started.elapsed().as_millis();

    // Topics are never auto-created (production clusters don't, and the
    // local stack's Kafka doesn't either): declare the smoke topic first.
    let spec = topics::TopicSpec::new(topic, 1, replication_factor, "delete");
    topics::ensure_topics(kafka_cfg, &[spec])
        .await
        .map_err(SmokeError::Topic)?;

    let fetch_id = uuid::Uuid::now_v7().to_string();
    let produced_at = Instant::now();
    let producer: FutureProducer<kafka::KafkaClientContext> =
        kafka::producer_config(kafka_cfg, "smoke")
            .create_with_context(kafka::KafkaClientContext::default())
            .map_err(kafka_err("producer build"))?;
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "feed_id",
            value: Some("smoke"),
        })
        .insert(Header {
            key: "fetch_id",
            value: Some(fetch_id.as_str()),
        })
        .insert(Header {
            key: "payload_sha256",
            value: Some(body.sha256.as_str()),
        });
    let record = FutureRecord::to(topic)
        .key(fetch_id.as_str())
        .payload(body.bytes.as_ref())
        .headers(headers);
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| SmokeError::Kafka {
            step: "produce",
            source: e,
        })?;
    let produce_ms = produced_at.elapsed().as_millis();

    let consumed_at = Instant::now();
    let group = format!("votewire-smoke-{fetch_id}");
    let consumer: StreamConsumer<kafka::KafkaClientContext> =
        kafka::consumer_config(kafka_cfg, "smoke", &group)
            .create_with_context(kafka::KafkaClientContext::default())
            .map_err(kafka_err("consumer build"))?;
    consumer
        .subscribe(&[topic])
        .map_err(kafka_err("subscribe"))?;
    let deadline = Duration::from_secs(30);
    let found = tokio::time::timeout(deadline, async {
        loop {
            let msg = consumer.recv().await.map_err(kafka_err("consume"))?;
            if msg.key() != Some(fetch_id.as_bytes()) {
                continue;
            }
            if msg.payload() != Some(body.bytes.as_ref()) {
                return Err(SmokeError::Mismatch("payload bytes differ".into()));
            }
            let got = msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let want = [
                ("feed_id", "smoke"),
                ("fetch_id", fetch_id.as_str()),
                ("payload_sha256", body.sha256.as_str()),
            ];
            for (k, v) in want {
                if !got
                    .iter()
                    .any(|(gk, gv)| gk == k && gv.as_deref() == Some(v))
                {
                    return Err(SmokeError::Mismatch(format!(
                        "header {k} missing or changed: {got:?}"
                    )));
                }
            }
            consumer
                .commit_message(&msg, CommitMode::Sync)
                .map_err(kafka_err("commit"))?;
            return Ok(());
        }
    })
    .await;
    match found {
        Ok(r) => r?,
        Err(_) => return Err(SmokeError::Timeout(deadline)),
    }
    Ok(SmokeReport {
        url: url.to_string(),
        topic: topic.to_string(),
        bytes: body.bytes.len(),
        sha256: body.sha256,
        partition: delivery.partition,
        offset: delivery.offset,
        fetch_ms,
        produce_ms,
        consume_ms: consumed_at.elapsed().as_millis(),
    })
}
