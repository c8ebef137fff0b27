//! The aggregator bench on the local stack (`bench/aggregate.sh` runs it).
//!
//! **Throughput**: publishes `ROUNDS` copies of the GA 2018 primary
//! `detail.xml` (51,444 cells, 469 contests; each round a newer
//! `source_seq`, so every cell is an update) to a fresh votes topic, then
//! starts one fleet member and times its rebuild: consuming, decoding and
//! applying every cell, then rolling every contest up and producing the
//! results. Prints the cells, the wall time and this process's CPU time
//! over the rebuild (librdkafka's threads included), and cells per
//! CPU-second.
//!
//! **Latency**: a second member on another fresh topic while the GA 2021
//! runoff night is published at one snapshot per 20 ms; prints cell
//! produced → result acknowledged, p50/p99/max over every cell.
//!
//! ```text
//! cargo run --release -p votewire-tests --example aggregate_bench -- 20
//! VOTEWIRE_BENCH_OTLP=1 cargo run …   # with span and metric export on
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use votewire_aggregator::fleet::{BatchReport, FleetConfig, run_member};
use votewire_ingestors::publish::{FetchFacts, PublishedCells};
use votewire_schemas::FeedMode;
use votewire_tests::pipeline::TestPipeline;
use votewire_tests::replay::publish_ga_runoff;
use votewire_tests::{fixture, unique};
use votewire_transformers::{FamilyInputs, PayloadContext};

const DETAIL: &str = "clarity_enr/openelections-data-ga_raw_xml/20180522__ga__primary.xml";

/// This process's user + system CPU time (`/proc/self/stat`, in USER_HZ =
/// 100 ticks per second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn percentile(sorted: &[i64], p: usize) -> i64 {
    sorted[(sorted.len() * p).div_ceil(100).saturating_sub(1)]
}

/// Runs a member until `done(&reports)` says so; returns its reports and
/// the wall time from the start of its first batch to the end of its last.
async fn run_until(
    pipeline: &TestPipeline,
    during: impl std::future::Future<Output = ()>,
    done: impl Fn(&[BatchReport]) -> bool,
) -> (Vec<BatchReport>, Duration) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let reports = Arc::new(Mutex::new(Vec::<BatchReport>::new()));
    let span = Arc::new(Mutex::new(None::<(Instant, Instant)>));
    let member = {
        let (kafka, topics) = (pipeline.kafka.clone(), pipeline.topics.clone());
        let (reports, span) = (reports.clone(), span.clone());
        tokio::spawn(async move {
            let mut cfg = FleetConfig::new(&unique("bench-agg"), "bench");
            if let Some(ms) = std::env::var("BENCH_COALESCE_MS")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                cfg.coalesce = Duration::from_millis(ms);
            }
            run_member(&kafka, &topics, &cfg, stop_rx, |b| {
                let now = Instant::now();
                let mut sp = span.lock().unwrap();
                let first = sp.map_or(now - b.elapsed, |(f, _)| f);
                *sp = Some((first, now));
                if std::env::var_os("BENCH_TRACE").is_some() {
                    eprintln!(
                        "t={:.3} cells={} elapsed_ms={:.1} caught_up={:?} results={}",
                        (now - first).as_secs_f64(),
                        b.cells,
                        b.elapsed.as_secs_f64() * 1e3,
                        b.caught_up,
                        b.results_produced
                    );
                }
                reports.lock().unwrap().push(b.clone())
            })
            .await
            .expect("the member runs")
        })
    };
    during.await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done(&reports.lock().unwrap()) {
        assert!(Instant::now() < deadline, "the member never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    member.await.unwrap();
    let out = reports.lock().unwrap().clone();
    let span = span.lock().unwrap().map_or(Duration::ZERO, |(f, l)| l - f);
    (out, span)
}

/// Reads every partition of the votes topic from the beginning with a
/// bare consumer until `target` records arrived.
fn raw_consume(pipeline: &TestPipeline, target: usize) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let cfg = votewire_core::kafka::consumer_config(&pipeline.kafka, "bench", &unique("raw"));
    let consumer: BaseConsumer = cfg.create().expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..pipeline.vote_partitions {
        tpl.add_partition_offset(&pipeline.topics.votes, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while n < target && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            n += 1;
        }
    }
    n
}

#[tokio::main]
async fn main() {
    let rounds: i64 = std::env::args()
        .nth(1)
        .map_or(20, |r| r.parse().expect("ROUNDS is a number"));
    // With VOTEWIRE_BENCH_OTLP=1, spans and metrics are exported to the
    // stack's OTLP receiver, as a deployed aggregator does; without it the
    // global tracer and meter are no-ops.
    let _export = std::env::var("VOTEWIRE_BENCH_OTLP").is_ok().then(|| {
        let otlp = votewire_core::config::OtlpConfig {
            endpoint: Some(
                std::env::var("VOTEWIRE_OTLP_ENDPOINT").expect("the stack's OTLP endpoint"),
            ),
            protocol: votewire_core::config::OtlpProtocol::Grpc,
            timeout_ms: 3_000,
        };
        println!("exporting spans and metrics over OTLP");
        (
            votewire_core::telemetry::init("aggregate-bench", &otlp, &Default::default())
                .expect("span export"),
            votewire_core::metrics::init_metrics("aggregate-bench", &otlp).expect("metrics"),
        )
    });

    // Throughput: a rebuild of ROUNDS × 51,444 cells.
    let pipeline = TestPipeline::start("bench-agg", 12).await;
    let bytes = std::fs::read(fixture(DETAIL)).expect("the GA 2018 primary detail.xml");
    let mut cells_published = 0usize;
    let publish_started = Instant::now();
    for round in 1..=rounds {
        let ctx = PayloadContext {
            election_id: "2018-05-22-GA-primary".into(),
            feed_id: "clarity:GA:2018P".into(),
            mode: FeedMode::Replay,
            source_seq: round,
            source_version: Some(format!("v{round}")),
            fetched_at: 1_527_000_000_000 + round,
            fetch_id: format!("fetch-{round}"),
            source_uri: "file://20180522__ga__primary.xml".into(),
            payload_sha256: format!("{round:064}"),
            trace_id: None,
            content_type: None,
        };
        let out =
            votewire_transformers::transform("clarity-xml", &bytes, &ctx, &FamilyInputs::default())
                .expect("the fixture parses");
        let facts = FetchFacts::for_payload(&ctx, "clarity-xml", bytes.len());
        // A fresh memory each round: every cell is published again.
        let r = pipeline
            .publisher
            .publish_accepted(&out.cells, &mut PublishedCells::default(), &facts)
            .await
            .expect("publishing");
        cells_published += r.cells_changed;
    }
    eprintln!(
        "published {cells_published} cells in {:.1} s",
        publish_started.elapsed().as_secs_f64()
    );
    let cpu0 = cpu_seconds();
    let target = cells_published;
    let partitions = pipeline.vote_partitions as usize;
    let (reports, span) = run_until(&pipeline, async {}, |r| {
        let consumed: usize = r.iter().map(|b| b.cells).sum();
        let caught_up: usize = r.iter().map(|b| b.caught_up.len()).sum();
        consumed >= target && caught_up == partitions
    })
    .await;
    // Wall: from the first cell's batch to the last result's ack (the
    // group join before it is not the aggregator's work).
    let (wall, cpu) = (span.as_secs_f64(), cpu_seconds() - cpu0);
    let results: usize = reports.iter().map(|b| b.results_produced).sum();
    let busy: f64 = reports.iter().map(|b| b.elapsed.as_secs_f64()).sum();
    eprintln!(
        "rebuild batches={} busy_s={busy:.2} max_batch_cells={}",
        reports.len(),
        reports.iter().map(|b| b.cells).max().unwrap_or(0)
    );
    // Until every partition caught up (reached the high watermark read at
    // assignment) and published.
    println!(
        "rebuild cells={target} results={results} wall_s={wall:.2} cpu_s={cpu:.2} cells_per_cpu_s={:.0} cells_per_wall_s={:.0}",
        target as f64 / cpu,
        target as f64 / wall
    );

    // Baseline, same topic, same run: a plain rdkafka consumer that only
    // counts the records (no decoding, no state, no results).
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let raw = raw_consume(&pipeline, target);
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    println!(
        "baseline raw_consume records={raw} wall_s={wall:.2} cpu_s={cpu:.2} records_per_cpu_s={:.0} records_per_wall_s={:.0}",
        raw as f64 / cpu,
        raw as f64 / wall
    );

    // Latency at replay load.
    let live = TestPipeline::start("bench-agg-live", 12).await;
    let feed_id = unique("clarity:GA:107556");
    let (reports, _) = run_until(
        &live,
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            publish_ga_runoff(&live.publisher, &feed_id, 137, Duration::from_millis(20)).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        },
        |_| true,
    )
    .await;
    let mut lat: Vec<i64> = reports
        .iter()
        .flat_map(|b| b.cell_to_result_ms.iter().copied())
        .collect();
    lat.sort_unstable();
    assert!(!lat.is_empty(), "no cell reached a caught-up partition");
    println!(
        "replay cells={} batches={} cell_to_result_ms p50={} p99={} max={}",
        lat.len(),
        reports.len(),
        percentile(&lat, 50),
        percentile(&lat, 99),
        lat.last().unwrap()
    );
}
