//! A publishing pipeline on the real stack for tests: fresh topics (votes,
//! snapshots, DLQ, feed status), a `Publisher`, and DynamoDB feed state
//! with a fresh table prefix. Plus the independent readers tests compare
//! against: a generic walk of Clarity `ALL.json` and a topic drain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use votewire_core::config::{KafkaConfig, StateStoreConfig, TopicsConfig};
use votewire_core::kafka;
use votewire_core::topics::{self, TopicSpec};
use votewire_ingestors::feed_spec::FeedSpec;
use votewire_ingestors::http::FetchLimits;
use votewire_ingestors::publish::Publisher;
use votewire_ingestors::sources::Source;
use votewire_ingestors::sources::http::HttpSpec;
use votewire_ingestors::state::{DynamoFeedState, FeedStateStore, Lease};

use crate::{Stack, unique};

/// Fresh topics, a publisher and feed state on the local stack.
pub struct TestPipeline {
    /// The stack's broker.
    pub kafka: KafkaConfig,
    /// The fresh topics' names.
    pub topics: TopicsConfig,
    /// The votes topic's partitions.
    pub vote_partitions: i32,
    /// A publisher on those topics.
    pub publisher: Publisher,
    /// Feed state in DynamoDB (moto), under a fresh table prefix.
    pub state: DynamoFeedState,
    /// The state store's settings with that prefix.
    pub store: StateStoreConfig,
}

/// The OpenElections PA 2020 general, by county: the CSV the live-feed
/// tests serve and change.
pub const PA_COUNTY_CSV: &str =
    "precinct_csv/openelections-data-pa/20201103__pa__general__county.csv";

/// A live `csv` feed of the PA 2020 general read from `source`.
pub fn pa_csv_feed(feed_id: &str, source: Arc<dyn Source>) -> FeedSpec {
    FeedSpec {
        feed_id: feed_id.to_string(),
        election_id: "2020-11-03-PA".into(),
        family: "csv".into(),
        mode: votewire_schemas::FeedMode::Live,
        zero_counts: false,
        source,
        // This OpenElections file does not end with a newline.
        mapping: Some(toml::toml! { final_newline = "optional" }),
        companion: None,
        limits: FetchLimits::default(),
        transform_timeout: votewire_ingestors::transform_run::DEFAULT_TRANSFORM_TIMEOUT,
        result_links: None,
    }
}

/// A plain HTTP source (no headers, no pagination).
pub fn http_source(url: String) -> Arc<dyn Source> {
    Arc::new(HttpSpec::new(url))
}

impl TestPipeline {
    /// `ingestor-a`'s lease on `feed_id`, taken at t = 1 s for an hour.
    pub async fn lease(&self, feed_id: &str) -> Lease {
        self.state
            .acquire_lease(feed_id, "ingestor-a", 1_000, 3_600_000)
            .await
            .unwrap()
            .expect("a fresh feed's lease is free")
    }

    /// Creates `<prefix>-….votes` and `….results` (compacted,
    /// `vote_partitions` each) and
    /// single-partition snapshots, DLQ and feed-status topics, and the
    /// state tables under a fresh prefix.
    pub async fn start(prefix: &str, vote_partitions: i32) -> TestPipeline {
        TestPipeline::start_with(prefix, vote_partitions, &BTreeMap::new()).await
    }

    /// [`TestPipeline::start`] with topic settings for the compacted votes
    /// and results topics (`segment.ms`, `min.cleanable.dirty.ratio`, …).
    pub async fn start_with(
        prefix: &str,
        vote_partitions: i32,
        compacted_settings: &BTreeMap<String, String>,
    ) -> TestPipeline {
        let stack = Stack::load();
        let kafka_cfg = stack.kafka();
        let (store, client) = stack.dynamodb().await;
        let state = DynamoFeedState::new(client, &store);
        state.ensure_tables().await.expect("creating state tables");
        let base = unique(prefix);
        let topics = TopicsConfig {
            votes: format!("{base}.votes"),
            snapshots: format!("{base}.snapshots"),
            dlq: format!("{base}.dlq"),
            feed_status: format!("{base}.status"),
            results: format!("{base}.results"),
            results_test: format!("{base}.results-test"),
            alerts: format!("{base}.alerts"),
            ..TopicsConfig::default()
        };
        let rf = stack.replication_factor();
        let spec = |name: &str, partitions, cleanup_policy| {
            TopicSpec::new(name, partitions, rf, cleanup_policy)
        };
        let compacted = |name: &str| TopicSpec {
            settings: compacted_settings.clone(),
            ..spec(name, vote_partitions, "compact")
        };
        topics::ensure_topics(
            &kafka_cfg,
            &[
                compacted(&topics.votes),
                compacted(&topics.results),
                compacted(&topics.results_test),
                spec(&topics.snapshots, 1, "delete"),
                spec(&topics.dlq, 1, "delete"),
                spec(&topics.feed_status, 1, "compact"),
                spec(&topics.alerts, 1, "compact"),
            ],
        )
        .await
        .expect("creating test topics");
        let publisher = publisher_for(&kafka_cfg, &topics, vote_partitions);
        TestPipeline {
            kafka: kafka_cfg,
            topics,
            vote_partitions,
            publisher,
            state,
            store,
        }
    }

    /// A second, independent publisher on the same topics (a restarted
    /// ingestor).
    pub fn new_publisher(&self) -> Publisher {
        publisher_for(&self.kafka, &self.topics, self.vote_partitions)
    }
}

fn publisher_for(kafka_cfg: &KafkaConfig, topics: &TopicsConfig, partitions: i32) -> Publisher {
    let producer: FutureProducer<kafka::KafkaClientContext> =
        kafka::producer_config(kafka_cfg, "ingest-test")
            .create_with_context(kafka::KafkaClientContext::default())
            .expect("creating a producer");
    Publisher {
        producer,
        topics: topics.clone(),
        schemas: votewire_schemas::schemas().clone(),
        vote_partitions: partitions,
        delivery_timeout: Duration::from_secs(30),
        renewal: None,
    }
}

/// (contest, area, position) -> votes, by a generic JSON walk of a Clarity
/// `ALL.json` (no votewire code involved).
pub fn clarity_all_json_walk(bytes: &[u8]) -> BTreeMap<(String, String, usize), i64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).expect("ALL.json is JSON");
    let mut m = BTreeMap::new();
    for area in v["Contests"].as_array().expect("Contests") {
        for (i, c) in area["C"].as_array().expect("C").iter().enumerate() {
            for (j, votes) in area["V"][i].as_array().expect("V").iter().enumerate() {
                let key = (
                    c.as_str().expect("contest id").to_string(),
                    area["A"].as_str().expect("area id").to_string(),
                    j,
                );
                m.insert(key, votes.as_i64().expect("votes"));
            }
        }
    }
    m
}

/// (partition, key, value, `feed_id` header) of one record.
pub type Drained = (i32, Vec<u8>, Vec<u8>, Option<String>);

/// Reads `topic` from the beginning to the high watermarks it has now:
/// every record written before the call, and nothing is guessed from a
/// quiet period. Panics if that takes over 60 s.
pub fn drain(kafka_cfg: &KafkaConfig, topic: &str, partitions: i32) -> Vec<Drained> {
    let consumer: BaseConsumer = kafka::consumer_config(kafka_cfg, "test", &unique("drain"))
        .create()
        .expect("creating a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("assigning a partition");
    }
    consumer.assign(&tpl).expect("assigning partitions");
    let all: Vec<i32> = (0..partitions).collect();
    let mut end = kafka::ReadEnd::of(&consumer, topic, &all, Duration::from_secs(10))
        .expect("reading the high watermarks");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !end.reached() {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: {} partition(s) not read to their end in 60 s",
            end.partitions_left()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => end.positions(&consumer),
            Some(Ok(m)) => {
                end.consumed(m.partition(), m.offset());
                let feed = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "feed_id")
                        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                });
                out.push((
                    m.partition(),
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                    feed,
                ));
            }
            Some(Err(_)) => {}
        }
    }
    out
}
