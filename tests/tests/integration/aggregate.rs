//! The aggregator fleet member on the real broker, fed a real night: the
//! GA 2021 runoff `ALL.json` series. Expected results come from a generic
//! JSON walk of the snapshots (`clarity_all_json_walk`), never from the
//! rollup under test.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use votewire_aggregator::fleet::{BatchReport, FleetConfig, FleetTotals, run_member};
use votewire_tests::pipeline::TestPipeline;
use votewire_tests::replay::{
    AcceptedSnapshot, GA_RUNOFF_ELECTION, assert_no_regression, assert_results_equal_walk,
    compacted, publish_ga_runoff, results_of,
};
use votewire_tests::unique;

const PARTITIONS: i32 = 3;

/// Runs one fleet member until it has published and then been idle for
/// `idle`; returns its totals and batch reports.
async fn member_until_idle(
    pipeline: &TestPipeline,
    group: &str,
    idle: Duration,
    during: impl std::future::Future<Output = Vec<AcceptedSnapshot>>,
) -> (FleetTotals, Vec<BatchReport>, Vec<AcceptedSnapshot>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let last = Arc::new(Mutex::new((Instant::now(), false)));
    let member = {
        let (kafka, topics) = (pipeline.kafka.clone(), pipeline.topics.clone());
        let cfg = FleetConfig::new(group, "it-agg-1");
        let (reports, last) = (reports.clone(), last.clone());
        tokio::spawn(async move {
            run_member(&kafka, &topics, &cfg, stop_rx, |b| {
                reports.lock().unwrap().push(b.clone());
                let mut l = last.lock().unwrap();
                *l = (Instant::now(), l.1 || b.results_produced > 0);
            })
            .await
            .expect("the member runs")
        })
    };
    let accepted = during.await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (at, published) = *last.lock().unwrap();
        if published && at.elapsed() >= idle {
            break;
        }
        assert!(Instant::now() < deadline, "the member never went idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true).unwrap();
    let totals = member.await.unwrap();
    let reports = reports.lock().unwrap().clone();
    (totals, reports, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_after_the_night_rebuilds_it_and_publishes_each_result_once() {
    let pipeline = TestPipeline::start("agg-rebuild", PARTITIONS).await;
    let feed_id = unique("clarity:GA:107556");
    let accepted = publish_ga_runoff(&pipeline.publisher, &feed_id, 137, Duration::ZERO).await;
    assert_eq!(accepted.len(), 119, "18 HTML error pages skipped");
    let cells_published: usize = accepted.iter().map(|a| a.cells_changed).sum();

    let (totals, reports, _) = member_until_idle(
        &pipeline,
        &unique("agg-group"),
        Duration::from_secs(2),
        async { Vec::new() },
    )
    .await;
    assert_eq!(
        totals.cells as usize, cells_published,
        "every cell consumed once"
    );
    assert_eq!(totals.rebuilds, PARTITIONS as u64);
    let records = results_of(&pipeline.kafka, &pipeline.topics.results, PARTITIONS);
    let final_state = compacted(&records);
    assert_results_equal_walk(&final_state, &feed_id, accepted.last().unwrap());
    // Rebuilt before publishing: one record per key, not one per cell or
    // per snapshot.
    assert_eq!(records.len(), final_state.len(), "{reports:#?}");
    assert_eq!(
        final_state.len(),
        3 * 160,
        "3 contests at 159 counties and the state"
    );

    // Counts that went down during the night: the later, lower value won.
    let mut max_seen: BTreeMap<&(String, String, usize), i64> = BTreeMap::new();
    for a in &accepted {
        for (k, v) in &a.walk {
            let m = max_seen.entry(k).or_insert(*v);
            *m = (*m).max(*v);
        }
    }
    let last = &accepted.last().unwrap().walk;
    let lowered: Vec<_> = last.iter().filter(|(k, v)| max_seen[k] > **v).collect();
    assert!(
        !lowered.is_empty(),
        "the series has corrected (lowered) counts"
    );
    for ((contest, area, pos), v) in lowered {
        let r = &final_state[&format!("{GA_RUNOFF_ELECTION}/{feed_id}/{contest}/{area}")];
        let c = r
            .choices
            .iter()
            .find(|c| c.choice_id == pos.to_string())
            .unwrap();
        assert_eq!(
            c.votes, *v,
            "{contest}/{area}/{pos}: the lower, later count"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_running_through_the_night_coalesces_and_ends_on_the_final_snapshot() {
    let pipeline = TestPipeline::start("agg-live", PARTITIONS).await;
    let feed_id = unique("clarity:GA:107556");
    let (totals, reports, accepted) = member_until_idle(
        &pipeline,
        &unique("agg-group"),
        Duration::from_secs(2),
        // Give the member time to join before the night starts.
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            publish_ga_runoff(
                &pipeline.publisher,
                &feed_id,
                137,
                Duration::from_millis(30),
            )
            .await
        },
    )
    .await;
    let cells_published: usize = accepted.iter().map(|a| a.cells_changed).sum();
    assert_eq!(totals.cells as usize, cells_published);
    let records = results_of(&pipeline.kafka, &pipeline.topics.results, PARTITIONS);
    let final_state = compacted(&records);
    assert_results_equal_walk(&final_state, &feed_id, accepted.last().unwrap());
    assert_no_regression(&records);
    // Coalescing: no key gets more records than there were snapshots that
    // changed anything, and far fewer records than cells overall.
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for (k, _) in &records {
        *per_key.entry(k).or_insert(0) += 1;
    }
    let changing = accepted.iter().filter(|a| a.cells_changed > 0).count();
    assert!(per_key.values().all(|n| *n <= changing), "{per_key:?}");
    // Lag and throughput per partition were reported while it ran.
    let stats: Vec<_> = reports.iter().flat_map(|r| r.partitions.iter()).collect();
    assert!(
        stats.iter().any(|p| p.cells_per_s > 0.0 && !p.rebuilding),
        "{stats:?}"
    );
    assert!(stats.iter().all(|p| p.lag >= 0 && p.partition < PARTITIONS));
    let lat: Vec<i64> = reports
        .iter()
        .flat_map(|r| r.fetch_to_result_ms.iter().copied())
        .collect();
    assert!(!lat.is_empty());
    eprintln!(
        "cells={cells_published} results={} batches={} max fetch→result {} ms",
        records.len(),
        reports.len(),
        lat.iter().max().unwrap()
    );
}

/// Bad input on the votes topic itself (a stray producer, a truncated
/// record, an HTML page, another schema's id): each record becomes a dead
/// letter naming its place on the topic, the member carries on, and every
/// result still equals the independent walk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_votes_topic_is_dead_lettered_and_leaves_results_untouched() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    use votewire_schemas::{DeadLetter, ErrorClass, codec, schemas};

    let pipeline = TestPipeline::start("agg-garbage", PARTITIONS).await;
    let feed_id = unique("clarity:GA:107556");
    let accepted = publish_ga_runoff(&pipeline.publisher, &feed_id, 137, Duration::ZERO).await;
    // A real cell record, truncated: take one from the topic.
    let real = votewire_tests::pipeline::drain(&pipeline.kafka, &pipeline.topics.votes, PARTITIONS)
        .into_iter()
        .next()
        .expect("a published cell")
        .2;
    let mut wrong_id = real.clone();
    wrong_id[4] ^= 0x7f;
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", real[..real.len() / 2].to_vec()),
        (
            "html",
            b"<html><body>Election Night Reporting is unavailable</body></html>".to_vec(),
        ),
        ("wrong-schema-id", wrong_id),
        ("empty", Vec::new()),
    ];
    for (i, (what, bytes)) in garbage.iter().enumerate() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "feed_id",
            value: Some("stray-producer"),
        });
        pipeline
            .publisher
            .producer
            .send(
                FutureRecord::to(&pipeline.topics.votes)
                    .partition(i as i32 % PARTITIONS)
                    .key(*what)
                    .payload(bytes)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .expect("the garbage lands");
    }

    let (totals, _, _) = member_until_idle(
        &pipeline,
        &unique("agg-group"),
        Duration::from_secs(2),
        async { Vec::new() },
    )
    .await;
    assert_eq!(totals.cells_rejected, garbage.len() as u64);
    let records = results_of(&pipeline.kafka, &pipeline.topics.results, PARTITIONS);
    assert_results_equal_walk(&compacted(&records), &feed_id, accepted.last().unwrap());

    let s = schemas();
    let dead: Vec<DeadLetter> =
        votewire_tests::pipeline::drain(&pipeline.kafka, &pipeline.topics.dlq, 1)
            .into_iter()
            .map(|(_, _, v, _)| codec::decode(&s.dead_letter, &v).expect("a DeadLetter"))
            .collect();
    assert_eq!(dead.len(), garbage.len(), "{dead:#?}");
    for d in &dead {
        assert_eq!(d.feed_id, "stray-producer");
        assert_eq!(d.error_class, ErrorClass::SchemaViolation);
        assert!(!d.retryable);
        let place = d.archive_ref.as_deref().unwrap();
        assert!(
            place.starts_with(&format!("kafka://{}/", pipeline.topics.votes)),
            "{place}"
        );
        assert_eq!(d.source_uri, place);
        assert_eq!(d.payload_sha256.len(), 64);
        assert!(d.error_location.as_deref().unwrap().contains("offset"));
    }
}
