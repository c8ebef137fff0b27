//! Kafka client setup: one place decides how votewire talks to the broker.
//!
//! * [`producer_config`] builds an idempotent producer (`acks=all`,
//!   `enable.idempotence=true`, lz4 compression, a short `linger.ms`).
//! * [`consumer_config`] builds a consumer that never auto-commits and uses
//!   cooperative-sticky assignment.
//! * [`crate::topics`] declares the topic set and creates or checks it.
//!
//! Operator-supplied librdkafka properties (`[kafka.properties]`) are applied
//! after votewire's tuning defaults and before the delivery guarantees, so an
//! operator can add SASL/SSL or tune batching but cannot silently turn off
//! idempotence or enable auto-commit.
//!
//! Every client is built with a [`KafkaClientContext`] (create them with
//! `create_with_context(KafkaClientContext::default())`): it answers
//! librdkafka's `OAUTHBEARER` token requests when `kafka.msk_iam_region`
//! turns on MSK IAM access control (`SASL_SSL`, [`crate::msk_iam`]).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::admin::AdminClient;
use rdkafka::client::OAuthToken;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::config::KafkaConfig;
use crate::msk_iam::{self, MskIamTokens};

/// The context of every Kafka client votewire builds: it signs MSK IAM
/// tokens when librdkafka asks for one (only with `OAUTHBEARER`, that is
/// with `kafka.msk_iam_region` set).
#[derive(Debug, Default)]
pub struct KafkaClientContext {
    msk_iam: std::sync::Arc<MskIamTokens>,
}

impl KafkaClientContext {
    /// A context whose tokens come from `tokens`, which the caller may keep
    /// to count them (tests sign with fixed credentials; the default uses
    /// the process's credential chain).
    pub fn with_msk_iam(tokens: std::sync::Arc<MskIamTokens>) -> KafkaClientContext {
        KafkaClientContext { msk_iam: tokens }
    }

    /// The token source.
    pub fn msk_iam(&self) -> &MskIamTokens {
        &self.msk_iam
    }
}

impl ClientContext for KafkaClientContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        Ok(self.msk_iam.generate(oauthbearer_config)?)
    }
}

impl ConsumerContext for KafkaClientContext {}

/// What went wrong talking to Kafka, with what we were doing.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// librdkafka refused the client's configuration.
    #[error("building the Kafka {role} client: {source}")]
    Build {
        /// `producer`, `consumer` or `admin`.
        role: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The brokers did not answer a metadata request.
    #[error(
        "fetching metadata from {bootstrap}: {source} (is the broker up? try `deploy/local/stack up`)"
    )]
    Metadata {
        /// The bootstrap servers asked.
        bootstrap: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic could not be created.
    #[error("creating topic {topic}: {source}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic's or broker's configuration could not be read.
    #[error("describing the configuration of {resource}: {source}")]
    DescribeConfigs {
        /// What was described.
        resource: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic would be created in a way the cluster refuses or that
    /// would lose data (too few brokers for its replication factor).
    #[error("not creating topic {topic}: {problem}; change {setting}")]
    TopicRefused {
        /// The topic.
        topic: String,
        /// What is wrong.
        problem: String,
        /// The setting to change.
        setting: &'static str,
        /// Only when the cluster may change under us (brokers restarting).
        retry_may_help: bool,
    },
}

impl KafkaSetupError {
    /// Whether trying again later can help (the broker may be starting or
    /// briefly unreachable); a build error or a refused topic is a
    /// configuration mistake.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            KafkaSetupError::Build { .. }
                | KafkaSetupError::TopicRefused {
                    retry_may_help: false,
                    ..
                }
        )
    }
}

/// The common part of every client's configuration.
fn base_config(kafka: &KafkaConfig, role: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", format!("{}-{role}", kafka.client_id))
        .set("socket.timeout.ms", kafka.request_timeout_ms.to_string())
        // Kafka and MSK answer metadata quickly; keep retries snappy.
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "2000");
    c
}

/// MSK IAM access control first (an operator property may still override
/// it, say `security.protocol` behind a TLS-terminating proxy), then the
/// operator's own librdkafka properties.
fn apply_operator_properties(c: &mut ClientConfig, kafka: &KafkaConfig) {
    if let Some(region) = &kafka.msk_iam_region {
        c.set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "OAUTHBEARER")
            .set(
                "sasl.oauthbearer.config",
                msk_iam::oauthbearer_config(region),
            );
        msk_iam::prefetch_credentials(region);
    }
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
}

/// librdkafka asks for an `OAUTHBEARER` token with an event that only a
/// poll serves, and it connects to no broker before it has one. A consumer
/// that first asks for metadata (before any poll) polls once here, so
/// with MSK IAM it signs in instead of timing out. Without OAUTHBEARER
/// the poll finds nothing: the consumer is not assigned yet.
fn serve_token_request<C: ConsumerContext>(consumer: &BaseConsumer<C>) {
    let _ = consumer.poll(Duration::ZERO);
}

/// A client for metadata only: the common settings plus the operator's
/// (SASL/SSL included), nothing tuned for producing or consuming.
fn metadata_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base_config(kafka, "metadata");
    apply_operator_properties(&mut c, kafka);
    c
}

/// An idempotent, `acks=all` producer configuration for `role` (such as
/// `"ingest"`).
pub fn producer_config(kafka: &KafkaConfig, role: &str) -> ClientConfig {
    let mut c = base_config(kafka, role);
    c.set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", kafka.request_timeout_ms.to_string());
    apply_operator_properties(&mut c, kafka);
    // The delivery guarantees are not negotiable.
    c.set("enable.idempotence", "true").set("acks", "all");
    c
}

/// A consumer configuration for `group_id` that never auto-commits offsets.
pub fn consumer_config(kafka: &KafkaConfig, role: &str, group_id: &str) -> ClientConfig {
    let mut c = base_config(kafka, role);
    c.set("group.id", group_id)
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    apply_operator_properties(&mut c, kafka);
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c
}

/// Number of partitions of `topic`, or `None` when the broker doesn't know it.
pub fn topic_partitions(
    kafka: &KafkaConfig,
    topic: &str,
) -> Result<Option<usize>, KafkaSetupError> {
    let md = cluster_metadata(kafka, Some(topic))?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len()))
}

/// Assigns `consumer` every partition of `topic`, each starting at
/// `start`, with no consumer group involved (nothing is committed): how a
/// reader of a whole compacted topic starts. Returns the partitions.
pub fn assign_all_partitions<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    start: rdkafka::Offset,
    timeout: Duration,
) -> Result<Vec<i32>, rdkafka::error::KafkaError> {
    use rdkafka::consumer::Consumer;
    serve_token_request(consumer);
    // A topic created a moment ago may not be in every broker's metadata
    // yet (the answer is then an error or no partitions): ask again until
    // it is, rather than assign nothing and read nothing.
    let deadline = std::time::Instant::now() + timeout;
    let partitions: Vec<i32> = loop {
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        let found: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !found.is_empty() {
            break found;
        }
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::MetadataFetch(
                rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, start)?;
    }
    consumer.assign(&tpl)?;
    Ok(partitions)
}

/// Where a read of a whole topic ends: each partition's high watermark
/// when the read began. A reader that has consumed up to every one of them
/// has seen every record that existed then, so "caught up" is exact, never
/// a guess from a quiet period.
#[derive(Debug, Clone, Default)]
pub struct ReadEnd {
    /// Partitions not yet read to their end, with that end.
    remaining: std::collections::HashMap<i32, i64>,
}

impl ReadEnd {
    /// Reads the watermarks of `partitions` of `topic`; a partition whose
    /// low and high watermarks are equal (empty, or compacted or deleted
    /// to nothing) is done from the start.
    pub fn of<C: rdkafka::consumer::ConsumerContext>(
        consumer: &BaseConsumer<C>,
        topic: &str,
        partitions: &[i32],
        timeout: Duration,
    ) -> Result<ReadEnd, KafkaError> {
        let mut remaining = std::collections::HashMap::new();
        for &p in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
            if high > low {
                remaining.insert(p, high);
            }
        }
        Ok(ReadEnd { remaining })
    }

    /// Notes a record consumed at `offset` of `partition`.
    pub fn consumed(&mut self, partition: i32, offset: i64) {
        if self
            .remaining
            .get(&partition)
            .is_some_and(|end| offset + 1 >= *end)
        {
            self.remaining.remove(&partition);
        }
    }

    /// Notes the consumer's positions, which also move past offsets that
    /// hold no record (compacted away, transaction markers).
    pub fn positions<C: rdkafka::consumer::ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        if self.remaining.is_empty() {
            return;
        }
        if let Ok(tpl) = consumer.position() {
            for e in tpl.elements() {
                if let rdkafka::Offset::Offset(o) = e.offset() {
                    self.consumed(e.partition(), o - 1);
                }
            }
        }
    }

    /// Whether every partition has been read to its end.
    pub fn reached(&self) -> bool {
        self.remaining.is_empty()
    }

    /// How many partitions are still short of their end.
    pub fn partitions_left(&self) -> usize {
        self.remaining.len()
    }
}

/// Broker ids reachable through `kafka`, proving the cluster answers a real
/// metadata request.
pub fn broker_ids(kafka: &KafkaConfig) -> Result<Vec<i32>, KafkaSetupError> {
    let md = cluster_metadata(kafka, None)?;
    Ok(md.brokers().iter().map(|b| b.id()).collect())
}

/// One metadata request (for `topic`, or the whole cluster) through a
/// short-lived client signed in like every other.
pub(crate) fn cluster_metadata(
    kafka: &KafkaConfig,
    topic: Option<&str>,
) -> Result<rdkafka::metadata::Metadata, KafkaSetupError> {
    let consumer: BaseConsumer<KafkaClientContext> = metadata_config(kafka)
        .create_with_context(KafkaClientContext::default())
        .map_err(|source| KafkaSetupError::Build {
            role: "metadata",
            source,
        })?;
    serve_token_request(&consumer);
    consumer
        .fetch_metadata(topic, Duration::from_millis(kafka.request_timeout_ms))
        .map_err(|source| KafkaSetupError::Metadata {
            bootstrap: kafka.bootstrap_servers.clone(),
            source,
        })
}

/// An admin client signed in like every other (with its `OAUTHBEARER`
/// token set, see [`set_admin_token`]).
pub(crate) fn admin_client(
    kafka: &KafkaConfig,
) -> Result<AdminClient<KafkaClientContext>, KafkaSetupError> {
    let mut admin_config = base_config(kafka, "admin");
    apply_operator_properties(&mut admin_config, kafka);
    let admin: AdminClient<KafkaClientContext> = admin_config
        .create_with_context(KafkaClientContext::default())
        .map_err(|source| KafkaSetupError::Build {
            role: "admin",
            source,
        })?;
    set_admin_token(&admin, &admin_config)?;
    Ok(admin)
}

/// rust-rdkafka's admin client never serves librdkafka's token-refresh
/// event (its poll thread reads only admin results), so with `OAUTHBEARER`
/// the admin client gets its token here, once: it lives 15 minutes, far
/// longer than `topics ensure` runs.
fn set_admin_token(
    admin: &AdminClient<KafkaClientContext>,
    config: &ClientConfig,
) -> Result<(), KafkaSetupError> {
    if config.get("sasl.mechanism") != Some("OAUTHBEARER") {
        return Ok(());
    }
    let failed = |reason: String| KafkaSetupError::Build {
        role: "admin",
        source: KafkaError::ClientCreation(reason),
    };
    let client = admin.inner();
    let token = client
        .context()
        .generate_oauth_token(config.get("sasl.oauthbearer.config"))
        .map_err(|e| failed(e.to_string()))?;
    let value = std::ffi::CString::new(token.token).map_err(|e| failed(e.to_string()))?;
    let principal =
        std::ffi::CString::new(token.principal_name).map_err(|e| failed(e.to_string()))?;
    let mut err = vec![0u8; 512];
    // SAFETY: the client is alive for the call; the strings are
    // NUL-terminated and outlive it; no extensions (null, 0); `err` is a
    // writable buffer of the length passed.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            value.as_ptr(),
            token.lifetime_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            err.as_mut_ptr().cast(),
            err.len(),
        )
    };
    if code != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let end = err.iter().position(|b| *b == 0).unwrap_or(err.len());
        return Err(failed(format!(
            "setting the OAUTHBEARER token ({code:?}): {}",
            String::from_utf8_lossy(&err[..end])
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default config with these operator properties.
    fn with_properties(properties: &[(&str, &str)]) -> KafkaConfig {
        let mut kafka = KafkaConfig::default();
        for (k, v) in properties {
            kafka.properties.insert(k.to_string(), v.to_string());
        }
        kafka
    }

    #[test]
    fn operator_properties_cannot_turn_off_idempotence_or_enable_auto_commit() {
        let kafka = with_properties(&[
            ("enable.idempotence", "false"),
            ("acks", "1"),
            ("enable.auto.commit", "true"),
            ("security.protocol", "SASL_SSL"),
        ]);
        let p = producer_config(&kafka, "ingest");
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("security.protocol"), Some("SASL_SSL"));
        let c = consumer_config(&kafka, "aggregate", "g");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(
            c.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
    }

    #[test]
    fn msk_iam_turns_every_client_to_sasl_ssl_with_oauthbearer() {
        let kafka = KafkaConfig {
            msk_iam_region: Some("eu-west-1".into()),
            ..KafkaConfig::default()
        };
        for c in [
            producer_config(&kafka, "ingest"),
            consumer_config(&kafka, "aggregate", "g"),
            metadata_config(&kafka),
        ] {
            assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(c.get("sasl.mechanism"), Some("OAUTHBEARER"));
            assert_eq!(
                c.get("sasl.oauthbearer.config"),
                Some("votewire-msk-iam region=eu-west-1")
            );
        }
        let plain = producer_config(&KafkaConfig::default(), "ingest");
        assert_eq!(plain.get("sasl.mechanism"), None);
    }

    #[test]
    fn metadata_clients_sign_in_like_the_others() {
        // `topics ensure` and the partition count on a SASL cluster: the
        // metadata client once left the operator's properties out.
        let kafka = with_properties(&[("sasl.mechanisms", "SCRAM-SHA-512")]);
        assert_eq!(
            metadata_config(&kafka).get("sasl.mechanisms"),
            Some("SCRAM-SHA-512")
        );
    }
}
