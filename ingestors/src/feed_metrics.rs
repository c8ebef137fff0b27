//! The ingestor's metrics, per feed (see `votewire_core::metrics` for
//! where they go):
//!
//! | instrument | kind | attributes |
//! |---|---|---|
//! | `votewire.feed.fetch.duration` (s) | histogram | `votewire.feed_id`, `outcome` (`changed`, `unchanged`, `rejected`, `failed`) |
//! | `votewire.feed.fetch.size` (By) | counter | `votewire.feed_id` |
//! | `votewire.feed.cells_changed` | counter | `votewire.feed_id` |
//! | `votewire.feed.errors` | counter | `votewire.feed_id`, `error.type` (a transform class, or `fetch`, `publish`, `state`, `archive`) |
//! | `votewire.feed.freshness` (s) | gauge | `votewire.feed_id`: seconds since the last change |
//! | `votewire.feed.health` | gauge | `votewire.feed_id`, `state`: 1 for the current state |
//! | `votewire.kafka.produce.duration` (s) | histogram | `messaging.destination.name` |
//! | `votewire.ingest.feeds_owned` | gauge | none: the feeds this process runs |
//! | `votewire.ingest.lease_round.duration` (s) | histogram | none |
//! | `votewire.ingest.lease_changes` | counter | `change` (`taken`, `handed_over`, `lost`) |
//!
//! Instruments bind to the global meter provider the first time they are
//! used, so a process installs it (`init_metrics`) before its feeds run.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

/// Buckets for fetch and produce durations: 5 ms to 60 s.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A feed's standing, read by the gauges' callbacks.
#[derive(Debug, Clone, Default)]
struct FeedStanding {
    last_change_ms: Option<i64>,
    health: &'static str,
}

/// The ingestor's counters and histograms, created once on the global meter; the gauges are
/// callbacks and live outside it.
pub struct FeedMetrics {
    fetch_duration: Histogram<f64>,
    fetch_size: Counter<u64>,
    cells_changed: Counter<u64>,
    errors: Counter<u64>,
    produce_duration: Histogram<f64>,
    lease_round_duration: Histogram<f64>,
    lease_changes: Counter<u64>,
}

static STANDING: LazyLock<Mutex<HashMap<String, FeedStanding>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

static METRICS: LazyLock<FeedMetrics> = LazyLock::new(|| {
    let meter = opentelemetry::global::meter("votewire");
    meter
        .f64_observable_gauge("votewire.feed.freshness")
        .with_unit("s")
        .with_description("Seconds since the feed's last accepted change")
        .with_callback(|o| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            for (feed, s) in STANDING.lock().expect("standing lock").iter() {
                if let Some(t) = s.last_change_ms {
                    o.observe(
                        (now - t).max(0) as f64 / 1000.0,
                        &[KeyValue::new("votewire.feed_id", feed.clone())],
                    );
                }
            }
        })
        .build();
    // What the ingestor service autoscales on (deploy/terraform): the
    // feeds this process runs, one per lease it holds.
    meter
        .u64_observable_gauge("votewire.ingest.feeds_owned")
        .with_description("Feeds this ingestor runs (one lease each)")
        .with_callback(|o| {
            o.observe(STANDING.lock().expect("standing lock").len() as u64, &[]);
        })
        .build();
    meter
        .u64_observable_gauge("votewire.feed.health")
        .with_description("1 for the feed's current health state")
        .with_callback(|o| {
            for (feed, s) in STANDING.lock().expect("standing lock").iter() {
                o.observe(
                    1,
                    &[
                        KeyValue::new("votewire.feed_id", feed.clone()),
                        KeyValue::new("state", s.health),
                    ],
                );
            }
        })
        .build();
    FeedMetrics {
        fetch_duration: meter
            .f64_histogram("votewire.feed.fetch.duration")
            .with_unit("s")
            .with_description("One poll: fetch, transform, publish and commit")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        fetch_size: meter
            .u64_counter("votewire.feed.fetch.size")
            .with_unit("By")
            .with_description("Bytes of payloads fetched")
            .build(),
        cells_changed: meter
            .u64_counter("votewire.feed.cells_changed")
            .with_description("Cells published because their value changed")
            .build(),
        errors: meter
            .u64_counter("votewire.feed.errors")
            .with_description("Failed polls and rejected payloads, by class")
            .build(),
        produce_duration: meter
            .f64_histogram("votewire.kafka.produce.duration")
            .with_unit("s")
            .with_description("Producing one payload's records to a topic until every ack")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        lease_round_duration: meter
            .f64_histogram("votewire.ingest.lease_round.duration")
            .with_unit("s")
            .with_description(
                "One lease round; near a third of the lease TTL, leases start to lapse",
            )
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        lease_changes: meter
            .u64_counter("votewire.ingest.lease_changes")
            .with_description(
                "Leases taken, handed over on request, and lost (lapsed before renewal)",
            )
            .build(),
    }
});

/// What one poll of a feed did, for the metrics.
pub struct PollFacts<'a> {
    /// The feed polled, recorded as the `votewire.feed_id` attribute.
    pub feed_id: &'a str,
    /// How the poll ended: `changed`, `unchanged`, `rejected` or `failed` (the `outcome`
    /// attribute).
    pub outcome: &'static str,
    /// How long the whole step took: fetch, transform, publish and commit.
    pub took: Duration,
    /// Size of the payload fetched, in bytes; `None` when none was fetched or the step
    /// failed.
    pub payload_bytes: Option<usize>,
    /// Cells published because their value changed; `None` unless a payload was accepted.
    pub cells_changed: Option<usize>,
    /// The `error.type` counted: the failed stage (`fetch`, `publish`, `state`, `archive`,
    /// `transform`) or the rejected payload's class; `None` otherwise.
    pub error_type: Option<&'a str>,
    /// The feed's health after the poll.
    pub health: &'static str,
    /// When it last changed (ms since the epoch).
    pub last_change_ms: Option<i64>,
}

/// Records one poll.
pub fn record_poll(p: &PollFacts<'_>) {
    let m = &*METRICS;
    let feed = KeyValue::new("votewire.feed_id", p.feed_id.to_string());
    m.fetch_duration.record(
        p.took.as_secs_f64(),
        &[feed.clone(), KeyValue::new("outcome", p.outcome)],
    );
    if let Some(b) = p.payload_bytes {
        m.fetch_size.add(b as u64, std::slice::from_ref(&feed));
    }
    if let Some(c) = p.cells_changed {
        m.cells_changed.add(c as u64, std::slice::from_ref(&feed));
    }
    if let Some(e) = p.error_type {
        m.errors
            .add(1, &[feed, KeyValue::new("error.type", e.to_string())]);
    }
    let mut standing = STANDING.lock().expect("standing lock");
    let s = standing.entry(p.feed_id.to_string()).or_default();
    s.health = p.health;
    if p.last_change_ms.is_some() {
        s.last_change_ms = p.last_change_ms;
    }
}

/// Records producing one payload's records to `topic`.
pub fn record_produce(topic: &str, took: Duration) {
    METRICS.produce_duration.record(
        took.as_secs_f64(),
        &[KeyValue::new(
            "messaging.destination.name",
            topic.to_string(),
        )],
    );
}

/// What one lease round changed, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseRoundFacts {
    /// How long the lease round took.
    pub took: Duration,
    /// Feeds started under a newly taken lease.
    pub taken: usize,
    /// Feeds stopped because a live instance asked for them.
    pub handed_over: usize,
    /// Feeds stopped because their lease lapsed or moved without a handover.
    pub lost: usize,
}

/// Records one lease round.
pub fn record_lease_round(r: &LeaseRoundFacts) {
    let m = &*METRICS;
    m.lease_round_duration.record(r.took.as_secs_f64(), &[]);
    for (change, n) in [
        ("taken", r.taken),
        ("handed_over", r.handed_over),
        ("lost", r.lost),
    ] {
        if n > 0 {
            m.lease_changes
                .add(n as u64, &[KeyValue::new("change", change)]);
        }
    }
}

/// Forgets a feed this process no longer runs (its gauges stop).
pub fn forget_feed(feed_id: &str) {
    STANDING.lock().expect("standing lock").remove(feed_id);
}
