//! The aggregator's metrics (see `votewire_core::metrics` for where they
//! go), recorded once per batch from its [`BatchReport`]:
//!
//! | instrument | kind | attributes |
//! |---|---|---|
//! | `votewire.aggregator.cells` | counter | `outcome` (`applied`, `dead_lettered`) |
//! | `votewire.aggregator.results` | counter | (results produced and acknowledged) |
//! | `votewire.aggregator.fetch_to_result` (s) | histogram | from a result's newest fetch to its ack |
//! | `votewire.aggregator.cell_to_result` (s) | histogram | from a cell's produce to its batch's acks |
//! | `votewire.aggregator.batch.duration` (s) | histogram | |
//! | `votewire.aggregator.lag` | gauge | `messaging.destination.partition.id`: records behind the high watermark |
//! | `votewire.aggregator.rebuilds` | counter | partitions rebuilt after an assignment |
//! | `votewire.aggregator.source_disagreements` | counter | `change` (`raised`: an alert upserted, `cleared`: tombstoned) |
//! | `votewire.aggregator.consumer_restarts` | counter | new consumers started after `rejoin_after` without an assignment |

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

use super::report::BatchReport;

/// Buckets for latencies: 5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

struct FleetMetrics {
    cells: Counter<u64>,
    results: Counter<u64>,
    overflows: Counter<u64>,
    rebuilds: Counter<u64>,
    consumer_restarts: Counter<u64>,
    disagreements: Counter<u64>,
    fetch_to_result: Histogram<f64>,
    cell_to_result: Histogram<f64>,
    batch_duration: Histogram<f64>,
}

static LAG: LazyLock<Mutex<HashMap<i32, i64>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

static METRICS: LazyLock<FleetMetrics> = LazyLock::new(|| {
    let meter = opentelemetry::global::meter("votewire");
    meter
        .i64_observable_gauge("votewire.aggregator.lag")
        .with_description(
            "Records between this member's position and the partition's high watermark",
        )
        .with_callback(|o| {
            for (p, lag) in LAG.lock().expect("lag lock").iter() {
                o.observe(
                    *lag,
                    &[KeyValue::new(
                        "messaging.destination.partition.id",
                        p.to_string(),
                    )],
                );
            }
        })
        .build();
    // What the aggregator service autoscales on (deploy/terraform): this
    // member's unconsumed records over all its partitions.
    meter
        .i64_observable_gauge("votewire.aggregator.lag.total")
        .with_description("Records this member has not consumed, over all its partitions")
        .with_callback(|o| {
            o.observe(LAG.lock().expect("lag lock").values().sum(), &[]);
        })
        .build();
    let latency = |name: &'static str, description: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(description)
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build()
    };
    FleetMetrics {
        cells: meter
            .u64_counter("votewire.aggregator.cells")
            .with_description("Vote cells consumed, applied or dead-lettered")
            .build(),
        results: meter
            .u64_counter("votewire.aggregator.results")
            .with_description("Contest results produced and acknowledged")
            .build(),
        overflows: meter
            .u64_counter("votewire.aggregator.contest_overflows")
            .with_description(
                "Contest roll-ups whose sums overflowed: dead-lettered, results left as published",
            )
            .build(),
        rebuilds: meter
            .u64_counter("votewire.aggregator.rebuilds")
            .with_description("Partitions rebuilt from the beginning after an assignment")
            .build(),
        consumer_restarts: meter
            .u64_counter("votewire.aggregator.consumer_restarts")
            .with_description(
                "New consumers started because the member had no assignment for rejoin_after",
            )
            .build(),
        disagreements: meter
            .u64_counter("votewire.aggregator.source_disagreements")
            .with_description(
                "Alerts of linked sources disagreeing at a unit: raised (or updated) and cleared",
            )
            .build(),
        fetch_to_result: latency(
            "votewire.aggregator.fetch_to_result",
            "From a result's newest source fetch to its acknowledgement",
        ),
        cell_to_result: latency(
            "votewire.aggregator.cell_to_result",
            "From a cell's produce to the acknowledgement of its batch's results",
        ),
        batch_duration: latency(
            "votewire.aggregator.batch.duration",
            "One batch, first cell to last ack",
        ),
    }
});

/// Records one batch.
pub fn record_batch(r: &BatchReport) {
    let m = &*METRICS;
    m.cells
        .add(r.cells as u64, &[KeyValue::new("outcome", "applied")]);
    if r.cells_rejected > 0 {
        m.cells.add(
            r.cells_rejected as u64,
            &[KeyValue::new("outcome", "dead_lettered")],
        );
    }
    m.results.add(r.results_produced as u64, &[]);
    if r.contests_overflowed > 0 {
        m.overflows.add(r.contests_overflowed as u64, &[]);
    }
    m.rebuilds.add(r.caught_up.len() as u64, &[]);
    if r.alerts_raised > 0 {
        m.disagreements
            .add(r.alerts_raised as u64, &[KeyValue::new("change", "raised")]);
    }
    if r.alerts_cleared > 0 {
        m.disagreements.add(
            r.alerts_cleared as u64,
            &[KeyValue::new("change", "cleared")],
        );
    }
    if r.consumer_restarted {
        m.consumer_restarts.add(1, &[]);
    }
    for ms in &r.fetch_to_result_ms {
        m.fetch_to_result.record(*ms as f64 / 1000.0, &[]);
    }
    for ms in &r.cell_to_result_ms {
        m.cell_to_result.record(*ms as f64 / 1000.0, &[]);
    }
    m.batch_duration.record(r.elapsed.as_secs_f64(), &[]);
    // Every stats report, an empty one included: a member that lost its
    // partitions exports no lag for them.
    if r.assignment.is_some() {
        let mut lag = LAG.lock().expect("lag lock");
        lag.clear();
        lag.extend(r.partitions.iter().map(|p| (p.partition, p.lag)));
    }
}
