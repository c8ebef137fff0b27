//! `votewire topics ensure` against the local three-node Apache Kafka
//! (replication factor 3, `min.insync.replicas=2`, as on MSK): a default
//! configuration creates topics that `acks=all` writes succeed on; a
//! replication factor the cluster cannot honour is refused with the
//! setting to change; an existing topic that differs from the declaration
//! is reported, never silently accepted, and left as it is.

use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use votewire_core::config::KafkaConfig;
use votewire_core::topics::{TopicSpec, ensure_topics};
use votewire_tests::{Stack, unique};

/// Seven fresh topic names (votes, snapshots, results, test results, feed
/// status, DLQ, alerts).
fn fresh_topics() -> Vec<(&'static str, String)> {
    let base = unique("topics");
    vec![
        ("VOTEWIRE_TOPIC_VOTES", format!("{base}.votes")),
        ("VOTEWIRE_TOPIC_SNAPSHOTS", format!("{base}.snapshots")),
        ("VOTEWIRE_TOPIC_RESULTS", format!("{base}.results")),
        (
            "VOTEWIRE_TOPIC_RESULTS_TEST",
            format!("{base}.results-test"),
        ),
        ("VOTEWIRE_TOPIC_FEED_STATUS", format!("{base}.status")),
        ("VOTEWIRE_TOPIC_DLQ", format!("{base}.dlq")),
        ("VOTEWIRE_TOPIC_ALERTS", format!("{base}.alerts")),
    ]
}

/// `votewire topics ensure` with the default configuration: only the
/// broker's address and the topic names, none of the stack's topic
/// settings.
fn ensure(topics: &[(&str, String)], extra: &[(&str, &str)]) -> Output {
    let stack = Stack::load();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_votewire"));
    cmd.args(["topics", "ensure"])
        .env_remove("VOTEWIRE_CONFIG")
        .env_remove("VOTEWIRE_TOPICS_REPLICATION_FACTOR")
        .env_remove("VOTEWIRE_TOPICS_CONTEST_PARTITIONS")
        .env_remove("VOTEWIRE_TOPICS_OTHER_PARTITIONS")
        .env(
            "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
            stack.var("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"),
        );
    for (k, v) in topics {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("running votewire")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// (partitions, the fewest replicas of any partition), or `None`.
fn shape(kafka: &KafkaConfig, topic: &str) -> Option<(usize, usize)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    let replicas = t.partitions().iter().map(|p| p.replicas().len()).min()?;
    Some((t.partitions().len(), replicas))
}

#[tokio::test]
async fn a_default_config_creates_topics_that_acks_all_writes_succeed_on() {
    let stack = Stack::load();
    let kafka = stack.kafka();
    assert_eq!(
        votewire_core::kafka::broker_ids(&kafka).unwrap().len(),
        3,
        "this test is about the default three-node stack"
    );
    let topics = fresh_topics();
    let first = ensure(&topics, &[]);
    let out = text(&first);
    assert!(first.status.success(), "{out}");
    assert_eq!(out.matches("created ").count(), 7, "{out}");
    assert!(out.contains("replication=3"), "{out}");
    let votes = &topics[0].1;
    assert_eq!(shape(&kafka, votes), Some((12, 3)), "{out}");
    assert_eq!(shape(&kafka, &topics[1].1), Some((3, 3)), "{out}");

    // An idempotent, acks=all producer (votewire's own settings) writes to it.
    let producer: FutureProducer = votewire_core::kafka::producer_config(&kafka, "topics-test")
        .create()
        .unwrap();
    assert_eq!(
        votewire_core::kafka::producer_config(&kafka, "x").get("acks"),
        Some("all")
    );
    let delivered = producer
        .send(
            FutureRecord::to(votes).key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await;
    assert!(delivered.is_ok(), "acks=all produce: {delivered:?}");

    // Again: everything exists as declared.
    let again = ensure(&topics, &[]);
    let out = text(&again);
    assert!(again.status.success(), "{out}");
    assert_eq!(out.matches("exists ").count(), 7, "{out}");
}

#[test]
fn a_replication_factor_below_min_insync_replicas_or_above_the_brokers_is_refused() {
    let kafka = Stack::load().kafka();
    let topics = fresh_topics();
    let one = ensure(&topics, &[("VOTEWIRE_TOPICS_REPLICATION_FACTOR", "1")]);
    let out = text(&one);
    assert!(!one.status.success(), "{out}");
    assert!(
        out.contains("replication factor 1 is below the cluster's min.insync.replicas (2)"),
        "{out}"
    );
    assert!(out.contains("NOT_ENOUGH_REPLICAS"), "{out}");
    assert!(
        out.contains("topics.replication_factor (VOTEWIRE_TOPICS_REPLICATION_FACTOR)"),
        "{out}"
    );
    assert_eq!(shape(&kafka, &topics[0].1), None, "nothing was created");

    let four = ensure(&topics, &[("VOTEWIRE_TOPICS_REPLICATION_FACTOR", "4")]);
    let out = text(&four);
    assert!(!four.status.success(), "{out}");
    assert!(
        out.contains("replication factor 4 needs 1 to 3 (the cluster's live brokers now"),
        "{out}"
    );
    assert_eq!(shape(&kafka, &topics[0].1), None, "nothing was created");
}

#[tokio::test]
async fn an_existing_topic_that_differs_is_reported_and_left_as_it_is() {
    let kafka = Stack::load().kafka();
    let topics = fresh_topics();
    // The votes topic exists already with 4 partitions and `delete`.
    ensure_topics(&kafka, &[TopicSpec::new(&topics[0].1, 4, 3, "delete")])
        .await
        .unwrap();
    let run = ensure(&topics, &[]);
    let out = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("DIFFERS  {}", topics[0].1)), "{out}");
    assert!(out.contains("partitions is 4 (declared 12)"), "{out}");
    assert!(
        out.contains("cleanup.policy is delete (declared compact)"),
        "{out}"
    );
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(out.matches("created ").count(), 6, "the others: {out}");
    assert_eq!(shape(&kafka, &topics[0].1), Some((4, 3)), "left as it was");
}
