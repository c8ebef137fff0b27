//! Scenarios 3, 3a and 3b: Apache Kafka itself failing mid-night, on a
//! private three-node cluster (replication factor 3, `min.insync.replicas`
//! 2, as on MSK) started by `deploy/local/stack` for each scenario, so the
//! shared stack's brokers are never touched.
//!
//! * 3: the whole cluster stopped (SIGTERM to every node) for 10 s and
//!   started again from its own data;
//! * 3a: `kill -9` of the broker leading most of the votes topic's
//!   partitions (its partitions elect new leaders from the in-sync
//!   replicas; it is started again 10 s later);
//! * 3b: a rolling restart of all three brokers, each stopped with SIGTERM
//!   and started again once the one before is back in every ISR.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use votewire_tests::kafka_cluster::KafkaCluster;

use crate::{NIGHT_SECONDS, Replay, replay_night};

const OUTAGE: Duration = Duration::from_secs(10);

/// The replay's environment on `cluster`.
fn on(cluster: &KafkaCluster) -> Vec<(&'static str, String)> {
    vec![
        ("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS", cluster.bootstrap()),
        (
            "VOTEWIRE_TOPICS_REPLICATION_FACTOR",
            cluster.replication_factor().to_string(),
        ),
    ]
}

/// Replays a night of `seconds` on `cluster`; at `at` (a fraction) of it
/// calls `fault`, which hands the demo the wall time (ms) from which
/// recovery is measured by calling its argument as soon as that time is
/// known (the demo may end before the fault's own clean-up does: a node
/// killed mid-night is started again after the night is over).
fn replay_with_fault(
    cluster: &KafkaCluster,
    seconds: &str,
    at: f64,
    fault: impl FnOnce(&dyn Fn(u128)),
) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let cleared = dir.path().join("cleared");
    let night: f64 = seconds.parse().expect("seconds");
    replay_night(
        seconds,
        &["--fault-cleared-file", cleared.to_str().unwrap()],
        &on(cluster),
        || {
            std::thread::sleep(Duration::from_secs_f64(night * at));
            fault(&|from| std::fs::write(&cleared, from.to_string()).unwrap());
        },
    )
}

fn wall_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A metadata client on `cluster`.
fn metadata_client(cluster: &KafkaCluster) -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("socket.timeout.ms", "3000")
        .create()
        .expect("a metadata client")
}

/// The node leading most partitions of the demo's votes topic.
fn votes_leader(cluster: &KafkaCluster) -> (usize, usize) {
    let md = metadata_client(cluster)
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("cluster metadata");
    let votes = md
        .topics()
        .iter()
        .find(|t| t.name().ends_with(".votes"))
        .expect("the demo's votes topic");
    let mut led = vec![0usize; cluster.nodes + 1];
    for p in votes.partitions() {
        led[usize::try_from(p.leader()).expect("a leader")] += 1;
    }
    let (node, count) = led
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .expect("a leader");
    (node, *count)
}

/// Waits until every partition of every topic has its whole replica set
/// in sync (a rolling restart moves on only then); panics after 60 s.
fn wait_fully_replicated(cluster: &KafkaCluster) {
    let client = metadata_client(cluster);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let short: usize = client
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|md| {
                md.topics()
                    .iter()
                    .flat_map(|t| t.partitions())
                    .filter(|p| p.isr().len() < p.replicas().len())
                    .count()
            })
            .unwrap_or(usize::MAX);
        if short == 0 {
            return;
        }
        assert!(
            Instant::now() < until,
            "{short} partition(s) still under-replicated 60 s after a restart\n{}",
            cluster.log_tails()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn node_log(cluster: &KafkaCluster, i: usize) -> String {
    std::fs::read_to_string(cluster.dir().join(format!("logs/kafka-{i}.log"))).unwrap_or_default()
}

fn starts_in_log(cluster: &KafkaCluster, i: usize) -> usize {
    node_log(cluster, i).matches("Kafka Server started").count()
}

/// Scenario 3: the whole cluster stopped for 10 s mid-night and started again.
/// Stopping and starting three nodes takes up to a minute here (the last
/// node's controlled shutdown has no quorum left, and each start replays
/// the metadata log), so this night lasts 120 s and the fault comes at 18 s
/// (on the default 24 s night the outage outlasted the demo's wait for the
/// results to converge; on a 60 s night with the fault at 30%, the suite's
/// load stretched the start to 33 s, the cluster was back only after the
/// night, and the CSV whose delivery timed out in the outage was never
/// published again before the check: CI of 5c5ed49).
#[test]
fn the_whole_cluster_stopped_for_ten_seconds_loses_and_doubles_nothing() {
    let cluster = KafkaCluster::start(3);
    let run = replay_with_fault(&cluster, "120", 0.15, |measure_from| {
        let t0 = Instant::now();
        let down = cluster.stack(&["down", "kafka"]);
        eprintln!("{down}stopped in {:.1} s", t0.elapsed().as_secs_f64());
        std::thread::sleep(OUTAGE);
        let t0 = Instant::now();
        let up = cluster.stack(&["up", "kafka"]);
        eprintln!("{up}started in {:.1} s", t0.elapsed().as_secs_f64());
        measure_from(wall_ms());
    });
    for i in 1..=3 {
        assert_eq!(starts_in_log(&cluster, i), 2, "kafka-{i} restarted once");
    }
    let ingest = run.log_text("demo-ingest");
    assert!(
        ingest.contains("Disconnected") || ingest.contains("failed"),
        "the ingestor saw the cluster go:\n{ingest}"
    );
    run.report_measured("whole Kafka cluster stopped 10 s", run.recovery_ms());
}

/// 3a. `kill -9` of the broker leading most votes partitions; recovery is
/// measured from the kill (the cluster elects new leaders itself), and the
/// broker is started again after 10 s.
#[test]
fn a_kill_9_of_the_votes_leader_loses_and_doubles_nothing() {
    let cluster = KafkaCluster::start(3);
    let killed = std::cell::Cell::new((0, 0));
    let run = replay_with_fault(&cluster, NIGHT_SECONDS, 0.4, |measure_from| {
        let (node, led) = votes_leader(&cluster);
        killed.set((node, led));
        cluster.kill_9(node);
        measure_from(wall_ms());
        std::thread::sleep(OUTAGE);
        cluster.stack(&["up", &format!("kafka-{node}")]);
    });
    let (node, led) = killed.get();
    assert!(
        led > 0,
        "kafka-{node} led votes partitions when it was killed"
    );
    assert_eq!(starts_in_log(&cluster, node), 2, "kafka-{node} came back");
    eprintln!("killed kafka-{node}, leader of {led} votes partition(s)");
    run.report_measured(
        &format!("kill -9 of the votes leader (kafka-{node}, {led} of 12 partitions)"),
        run.recovery_ms(),
    );
}

/// 3b. A rolling restart: each broker in turn stopped (SIGTERM) and
/// started, the next only once every partition is fully replicated again.
/// Recovery is measured from the last broker's return, so the night must
/// outlast the restart: three restarts take over a minute here and 104 s
/// under the full suite's load (a 120 s night starting them at 24 s ended
/// first, with nothing after the fault to measure), so this night lasts
/// 180 s and the restart begins at a tenth of it.
#[test]
fn a_rolling_restart_of_every_broker_loses_and_doubles_nothing() {
    let cluster = KafkaCluster::start(3);
    let took = std::cell::Cell::new(Duration::ZERO);
    let run = replay_with_fault(&cluster, "180", 0.1, |measure_from| {
        let t0 = Instant::now();
        for i in 1..=3 {
            let node = format!("kafka-{i}");
            cluster.stack(&["down", &node]);
            cluster.stack(&["up", &node]);
            wait_fully_replicated(&cluster);
        }
        took.set(t0.elapsed());
        measure_from(wall_ms());
    });
    for i in 1..=3 {
        assert_eq!(starts_in_log(&cluster, i), 2, "kafka-{i} restarted once");
    }
    eprintln!("rolling restart took {:.1} s", took.get().as_secs_f64());
    run.report_measured(
        &format!(
            "rolling restart of 3 brokers ({:.0} s)",
            took.get().as_secs_f64()
        ),
        run.recovery_ms(),
    );
}
