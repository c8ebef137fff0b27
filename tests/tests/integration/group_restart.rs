//! A fleet member its consumer group never takes in: on librdkafka's mock
//! cluster (a real broker cannot be made to refuse every JoinGroup on
//! demand), every JoinGroup is answered `COORDINATOR_NOT_AVAILABLE` for
//! longer than the member's `rejoin_after`. The member must start a new
//! consumer without the old one holding it up, and once JoinGroup answers
//! again the partitions must be held by a consumer it started (its
//! generation, in the stats), rebuilt, and the night's results published,
//! each once.
//!
//! What this stands in for: in CI of ac3ab0a a member stayed outside its
//! group on the real three-node cluster for 3.5 minutes after the whole
//! cluster came back from a 10 s stop (librdkafka's SESSTMOUT, then no
//! assignment). That stall cannot be produced on demand; the way out of it,
//! a new consumer, is what is tested here.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use votewire_aggregator::fleet::FleetConfig;
use votewire_ingestors::publish::Publisher;
use votewire_tests::pipeline::TestPipeline;
use votewire_tests::replay::{assert_results_equal_walk, compacted, publish_ga_runoff, results_of};
use votewire_tests::unique;

use crate::aggregate::member_with;

const PARTITIONS: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_its_group_will_not_take_in_starts_a_new_consumer_and_publishes_once_let_in() {
    // Topic names from a real pipeline; the broker is the mock cluster.
    let pipeline = TestPipeline::start("agg-rejoin", PARTITIONS).await;
    let mock = MockCluster::new(1).unwrap();
    let topics = pipeline.topics.clone();
    for (t, partitions) in [
        (&topics.votes, PARTITIONS),
        (&topics.results, PARTITIONS),
        (&topics.snapshots, 1),
        (&topics.dlq, 1),
        (&topics.feed_status, 1),
    ] {
        mock.create_topic(t, partitions, 1).unwrap();
    }
    let mut kafka = pipeline.kafka.clone();
    kafka.bootstrap_servers = mock.bootstrap_servers();
    // A short session, so that the bound (at least two sessions and 3 s)
    // can be short too.
    kafka
        .properties
        .insert("session.timeout.ms".into(), "3000".into());
    let publisher = Publisher {
        producer: votewire_core::kafka::producer_config(&kafka, "agg-rejoin")
            .create_with_context(votewire_core::kafka::KafkaClientContext::default())
            .unwrap(),
        topics: topics.clone(),
        schemas: votewire_schemas::schemas().clone(),
        vote_partitions: PARTITIONS,
        delivery_timeout: Duration::from_secs(10),
        renewal: None,
    };
    let feed_id = unique("clarity:GA:107556");
    let accepted = publish_ga_runoff(&publisher, &feed_id, 20, Duration::ZERO).await;
    assert!(
        accepted.len() > 5,
        "snapshots published: {}",
        accepted.len()
    );
    let cells_published: usize = accepted.iter().map(|a| a.cells_changed).sum();

    // The group stays closed: far more refusals than the test lasts.
    mock.request_errors(
        RDKafkaApiKey::JoinGroup,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 100_000],
    );
    let mut cfg = FleetConfig::new(&unique("agg-rejoin-group"), "it-agg-rejoin");
    // The first restart comes after 10 s and the member's jitter (under a
    // quarter of the bound); the group opens after that, and the consumer
    // started then is let in after the mock's 3 s initial rebalance delay,
    // well within its own (doubled) bound.
    cfg.rejoin_after = Duration::from_secs(10);
    // Stats (which name the consumer holding the partitions) more often
    // than the 2 s of quiet the run ends on would allow at 1 s.
    cfg.stats_every = Duration::from_secs(3);
    let closed_for = Duration::from_secs(14);
    let (totals, reports, ()) = member_with(&kafka, &topics, cfg, Duration::from_secs(2), async {
        tokio::time::sleep(closed_for).await;
        mock.clear_request_errors(RDKafkaApiKey::JoinGroup);
    })
    .await;

    let restarts: Vec<usize> = reports
        .iter()
        .enumerate()
        .filter(|(_, r)| r.consumer_restarted)
        .map(|(i, _)| i)
        .collect();
    assert!(
        totals.consumer_restarts >= 1,
        "14 s outside the group at a 10 s bound: {} restarts",
        totals.consumer_restarts
    );
    assert_eq!(restarts.len() as u64, totals.consumer_restarts);
    // Nothing was assigned (so nothing consumed) before the group opened.
    let first_cells = reports
        .iter()
        .position(|r| r.cells > 0)
        .expect("cells consumed");
    assert!(
        first_cells > restarts[0],
        "cells consumed before the first restart: {reports:#?}"
    );
    assert_eq!(
        totals.cells as usize, cells_published,
        "every cell consumed once, by the consumer that was let in"
    );
    assert_eq!(totals.rebuilds, PARTITIONS as u64);
    // The partitions are held by a consumer the member started, not by the
    // first one (which the group never let in).
    let held: Vec<u32> = reports
        .iter()
        .filter_map(|r| r.assignment)
        .filter(|a| a.joined && a.partitions > 0)
        .map(|a| a.consumer_generation)
        .collect();
    assert!(
        !held.is_empty() && held.iter().all(|g| *g >= 1),
        "generations holding partitions: {held:?}"
    );
    let records = results_of(&kafka, &topics.results, PARTITIONS);
    let final_state = compacted(&records);
    assert_results_equal_walk(&final_state, &feed_id, accepted.last().unwrap());
    assert_eq!(
        records.len(),
        final_state.len(),
        "each result published once"
    );
}
