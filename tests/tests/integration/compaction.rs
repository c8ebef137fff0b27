//! Log compaction on the real broker: the votes and results topics of a
//! whole night, with segments rolled every 500 ms, are compacted by Kafka's
//! cleaner (fewer records than were written, the latest value of every key
//! kept), and an aggregator that rebuilds from the compacted votes topic
//! publishes the same results as one that read every record. Expected
//! results come from the snapshots' own JSON walk, never from the rollup.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use votewire_aggregator::fleet::FleetConfig;
use votewire_core::config::{KafkaConfig, TopicsConfig};
use votewire_core::topics::{TopicSpec, ensure_topics};
use votewire_schemas::ContestResult;
use votewire_tests::pipeline::{Drained, TestPipeline, drain};
use votewire_tests::replay::{assert_results_equal_walk, compacted, publish_ga_runoff, results_of};
use votewire_tests::unique;

const PARTITIONS: i32 = 3;
const SEGMENT_MS: u64 = 500;

/// One fleet member on `topics` through `during` and until it has been
/// idle for 2 s (the aggregate tests' `member_with`); returns what
/// `during` returned and how many results the member produced.
async fn run_until_idle<T>(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    group: &str,
    during: impl std::future::Future<Output = T>,
) -> (T, usize) {
    let cfg = FleetConfig::new(group, "compaction-agg");
    let (_, reports, out) =
        crate::aggregate::member_with(kafka, topics, cfg, Duration::from_secs(2), during).await;
    (out, reports.iter().map(|b| b.results_produced).sum())
}

/// Writes the last record of every partition of `topic` again, unchanged,
/// once the active segment is older than `segment.ms`: the write rolls it,
/// and the segment that held the night becomes cleanable (Kafka never
/// cleans the active segment). The same key and value is a harmless upsert.
async fn roll(kafka: &KafkaConfig, topic: &str) {
    let mut last: HashMap<i32, Drained> = HashMap::new();
    for r in drain(kafka, topic, PARTITIONS) {
        last.insert(r.0, r);
    }
    tokio::time::sleep(Duration::from_millis(SEGMENT_MS * 2)).await;
    let producer: FutureProducer = votewire_core::kafka::producer_config(kafka, "roll")
        .create()
        .unwrap();
    for (partition, key, value, _) in last.values() {
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(*partition)
                    .key(key)
                    .payload(value),
                Duration::from_secs(10),
            )
            .await
            .expect("re-writing a partition's last record");
    }
}

/// Waits until `topic` holds fewer than `written` records; returns how many.
async fn compacted_below(kafka: &KafkaConfig, topic: &str, written: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = drain(kafka, topic, PARTITIONS).len();
        if now < written {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: still {now} of {written} records after 90 s; the cleaner never ran"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What a subscriber sees of a result: its choices' votes.
fn votes_by_key(results: &BTreeMap<String, ContestResult>) -> BTreeMap<String, Vec<(String, i64)>> {
    results
        .iter()
        .map(|(k, r)| {
            let mut v: Vec<(String, i64)> = r
                .choices
                .iter()
                .map(|c| (c.choice_id.clone(), c.votes))
                .collect();
            v.sort();
            (k.clone(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_votes_and_results_keep_the_latest_value_and_a_rebuild_publishes_the_same_results()
 {
    let settings: BTreeMap<String, String> = [
        ("segment.ms", SEGMENT_MS.to_string()),
        ("min.cleanable.dirty.ratio", "0.01".to_string()),
        ("delete.retention.ms", "1000".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let pipeline = TestPipeline::start_with("compaction", PARTITIONS, &settings).await;
    let feed_id = unique("clarity:GA:107556");
    // The member runs through the night, so results are rewritten as the
    // snapshots come; 40 ms apart, the night spans about ten segments.
    let (accepted, results_written) = run_until_idle(
        &pipeline.kafka,
        &pipeline.topics,
        &unique("compaction-a"),
        async {
            // Time for the member to join before the night starts.
            tokio::time::sleep(Duration::from_secs(3)).await;
            publish_ga_runoff(
                &pipeline.publisher,
                &feed_id,
                137,
                Duration::from_millis(40),
            )
            .await
        },
    )
    .await;
    let last = accepted.last().unwrap();
    // What was written, from the publisher's own count (the cleaner may be
    // at work already while the night is read back).
    let cells_written: usize = accepted.iter().map(|a| a.cells_changed).sum();

    let first = compacted(&results_of(
        &pipeline.kafka,
        &pipeline.topics.results,
        PARTITIONS,
    ));
    assert_results_equal_walk(&first, &feed_id, last);

    // The latest value of every votes key before compaction.
    let latest_before: BTreeMap<Vec<u8>, Vec<u8>> =
        drain(&pipeline.kafka, &pipeline.topics.votes, PARTITIONS)
            .into_iter()
            .map(|(_, k, v, _)| (k, v))
            .collect();
    let keys = latest_before.len();
    assert!(
        cells_written > keys * 2,
        "the night rewrote its cells many times: {cells_written} written, {keys} keys"
    );
    roll(&pipeline.kafka, &pipeline.topics.votes).await;
    roll(&pipeline.kafka, &pipeline.topics.results).await;
    // Compacted means well under what was written: at most every key once
    // plus what the uncleaned active segments still hold.
    let votes_now =
        compacted_below(&pipeline.kafka, &pipeline.topics.votes, cells_written / 2).await;
    let results_now = compacted_below(
        &pipeline.kafka,
        &pipeline.topics.results,
        results_written / 2,
    )
    .await;
    let latest_after: BTreeMap<Vec<u8>, Vec<u8>> =
        drain(&pipeline.kafka, &pipeline.topics.votes, PARTITIONS)
            .into_iter()
            .map(|(_, k, v, _)| (k, v))
            .collect();
    assert_eq!(
        latest_after, latest_before,
        "every key keeps its latest value"
    );
    eprintln!(
        "votes: {cells_written} records written for {keys} keys, {votes_now} after compaction; \
         results: {results_written} written for {} keys, {results_now} after",
        first.len()
    );
    assert!(votes_now >= keys, "compaction keeps every key");
    // The compacted results topic still says what the night ended with.
    let results_compacted = compacted(&results_of(
        &pipeline.kafka,
        &pipeline.topics.results,
        PARTITIONS,
    ));
    assert_eq!(votes_by_key(&results_compacted), votes_by_key(&first));

    // A member rebuilding from the compacted votes topic, publishing to a
    // results topic of its own, ends on the same results.
    let rebuilt_topics = TopicsConfig {
        results: format!("{}.rebuilt", pipeline.topics.results),
        results_test: format!("{}.rebuilt", pipeline.topics.results_test),
        alerts: format!("{}.rebuilt", pipeline.topics.alerts),
        ..pipeline.topics.clone()
    };
    ensure_topics(
        &pipeline.kafka,
        &[TopicSpec::new(
            &rebuilt_topics.results,
            PARTITIONS,
            votewire_tests::Stack::load().replication_factor(),
            "compact",
        )],
    )
    .await
    .unwrap();
    run_until_idle(
        &pipeline.kafka,
        &rebuilt_topics,
        &unique("compaction-b"),
        async {},
    )
    .await;
    let rebuilt = compacted(&results_of(
        &pipeline.kafka,
        &rebuilt_topics.results,
        PARTITIONS,
    ));
    assert_results_equal_walk(&rebuilt, &feed_id, last);
    assert_eq!(votes_by_key(&rebuilt), votes_by_key(&first));
}
