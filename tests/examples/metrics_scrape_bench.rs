//! The `/metrics` scrape at election-night cardinality
//! (`bench/metrics_scrape.sh` runs it).
//!
//! Records one poll's metrics for each of `FEEDS` feeds through the
//! ingestors' real instruments (`feed_metrics::record_poll`, on the meter
//! provider `init_metrics` installs, with no OTLP endpoint), then times
//! `SCRAPES` renderings of `/metrics` (the OpenTelemetry Prometheus
//! exporter: collect, convert, encode). The baseline, in the same run, is
//! the `prometheus` crate's own registry holding the same series (the same
//! names, labels and buckets) gathered and encoded by the same encoder:
//! the cost of the OpenTelemetry layer in between.
//!
//! ```text
//! cargo run --release -p votewire-tests --example metrics_scrape_bench -- 1000 50
//! ```

use std::time::{Duration, Instant};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use votewire_core::config::OtlpConfig;
use votewire_core::metrics::init_metrics;
use votewire_ingestors::feed_metrics::{PollFacts, record_poll};

const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// This process's resident memory (`/proc/self/status`), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The feed ids of the run: a national night's naming.
fn feed_ids(feeds: usize) -> Vec<String> {
    (0..feeds)
        .map(|i| format!("clarity:county-{i:04}:general-2026"))
        .collect()
}

/// p50 and max of `SCRAPES` renderings, and the last one's bytes.
struct ScrapeFigures {
    p50: Duration,
    max: Duration,
    bytes: usize,
    series: usize,
    /// Lines of the SDK's overflow series (a series limit was reached).
    overflow: usize,
}

fn time_scrapes(scrapes: usize, mut render: impl FnMut() -> String) -> ScrapeFigures {
    let mut took = Vec::with_capacity(scrapes);
    let mut last = String::new();
    for _ in 0..scrapes {
        let start = Instant::now();
        last = render();
        took.push(start.elapsed());
    }
    took.sort();
    ScrapeFigures {
        p50: took[took.len() / 2],
        max: took[took.len() - 1],
        bytes: last.len(),
        series: last.lines().filter(|l| !l.starts_with('#')).count(),
        overflow: last
            .lines()
            .filter(|l| l.contains("otel_metric_overflow"))
            .count(),
    }
}

/// The same series in the `prometheus` crate's own types.
fn native_registry(ids: &[String]) -> Registry {
    let registry = Registry::new();
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "votewire_feed_fetch_duration_seconds",
            "One poll: fetch, transform, publish and commit",
        )
        .buckets(BUCKETS.to_vec()),
        &["outcome", "votewire_feed_id"],
    )
    .expect("histogram");
    let size = IntCounterVec::new(
        Opts::new(
            "votewire_feed_fetch_size_bytes_total",
            "Bytes of payloads fetched",
        ),
        &["votewire_feed_id"],
    )
    .expect("counter");
    let cells = IntCounterVec::new(
        Opts::new(
            "votewire_feed_cells_changed_total",
            "Cells published because their value changed",
        ),
        &["votewire_feed_id"],
    )
    .expect("counter");
    let health = IntGaugeVec::new(
        Opts::new(
            "votewire_feed_health",
            "1 for the feed's current health state",
        ),
        &["state", "votewire_feed_id"],
    )
    .expect("gauge");
    for c in [
        Box::new(duration.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(size.clone()),
        Box::new(cells.clone()),
        Box::new(health.clone()),
    ] {
        registry.register(c).expect("register");
    }
    for id in ids {
        duration.with_label_values(&["changed", id]).observe(0.42);
        size.with_label_values(&[id]).inc_by(48_213);
        cells.with_label_values(&[id]).inc_by(1_024);
        health.with_label_values(&["healthy", id]).set(1);
    }
    registry
}

fn main() {
    let mut args = std::env::args().skip(1);
    let feeds: usize = args.next().map_or(1000, |a| a.parse().expect("FEEDS"));
    let scrapes: usize = args.next().map_or(50, |a| a.parse().expect("SCRAPES"));
    let ids = feed_ids(feeds);

    let rss_before = rss_mib();
    let guard = init_metrics("metrics-scrape-bench", &OtlpConfig::default()).expect("metrics");
    for id in &ids {
        record_poll(&PollFacts {
            feed_id: id,
            outcome: "changed",
            took: Duration::from_millis(420),
            payload_bytes: Some(48_213),
            cells_changed: Some(1_024),
            error_type: None,
            health: "healthy",
            last_change_ms: None,
        });
    }
    let text = guard.prometheus();
    let otel = time_scrapes(scrapes, || text.render());
    let rss_otel = rss_mib();

    let registry = native_registry(&ids);
    let native = time_scrapes(scrapes, || {
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode")
    });

    println!(
        "machine: {} cores; {feeds} feeds, {scrapes} scrapes each",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, f) in [
        ("opentelemetry-prometheus (/metrics)", &otel),
        ("prometheus crate, same series", &native),
    ] {
        println!(
            "{name}: p50 {:.2} ms, max {:.2} ms, {} series lines ({} overflow), {} bytes",
            f.p50.as_secs_f64() * 1e3,
            f.max.as_secs_f64() * 1e3,
            f.series,
            f.overflow,
            f.bytes
        );
    }
    println!(
        "scrape cost against the baseline: {:.2}x; resident memory {rss_before:.1} MiB before, \
         {rss_otel:.1} MiB with the OpenTelemetry metrics recorded and scraped, {:.1} MiB with the \
         baseline's too",
        otel.p50.as_secs_f64() / native.p50.as_secs_f64(),
        rss_mib()
    );
}
