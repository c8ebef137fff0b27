//! What a fleet member reports: per batch, and over a run.

use std::time::Duration;

/// What one batch did.
#[derive(Debug, Default, Clone)]
pub struct BatchReport {
    /// Cells received.
    pub cells: usize,
    /// Of those, cells that could not be decoded or held (dead-lettered).
    pub cells_rejected: usize,
    /// Contests whose results were computed again.
    pub contests_rolled_up: usize,
    /// Results produced (and acknowledged).
    pub results_produced: usize,
    /// Results computed equal to the last produced, so not produced again.
    pub results_unchanged: usize,
    /// Contests whose sums overflowed: dead-lettered, their results left
    /// as last published.
    pub contests_overflowed: usize,
    /// Partitions that finished rebuilding in this batch.
    pub caught_up: Vec<i32>,
    /// Per partition: cells consumed in this batch.
    pub per_partition: Vec<(i32, usize)>,
    /// From the first cell received to the last result acknowledged.
    pub elapsed: Duration,
    /// Per produced result: from its newest cell's fetch to its ack (ms).
    pub fetch_to_result_ms: Vec<i64>,
    /// Per cell of a caught-up partition: from the cell's produce (its
    /// record timestamp) to the ack of the batch's results (ms).
    pub cell_to_result_ms: Vec<i64>,
    /// Every `stats_every`: lag and throughput per assigned partition.
    pub partitions: Vec<PartitionStat>,
    /// Every `stats_every` (also when no partition is assigned): where
    /// this member stands in its group.
    pub assignment: Option<AssignmentStat>,
    /// Source-disagreement alerts upserted (raised or updated) and landed.
    pub alerts_raised: usize,
    /// Alerts tombstoned (the sources agree again) and landed.
    pub alerts_cleared: usize,
    /// The member had been without an assignment for
    /// `FleetConfig::rejoin_after` and started a new consumer after this
    /// batch.
    pub consumer_restarted: bool,
}

/// Where a member stands in its group: what readiness probes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignmentStat {
    /// The group has given this member its share at least once (an empty
    /// share included: more members than partitions).
    pub joined: bool,
    /// Partitions assigned now.
    pub partitions: usize,
    /// Of those, still rebuilding (publishing nothing yet).
    pub rebuilding: usize,
    /// Which of the member's consumers holds them: 0 for the first, one
    /// more for each new consumer started after `rejoin_after` outside
    /// the group.
    pub consumer_generation: u32,
}

/// One assigned partition's lag and throughput over the last interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStat {
    /// The votes topic's partition.
    pub partition: i32,
    /// Records between this member's position and the partition's high
    /// watermark (never below 0).
    pub lag: i64,
    /// Cells consumed per second over the interval.
    pub cells_per_s: f64,
    /// Still rebuilding (nothing published for it yet).
    pub rebuilding: bool,
}

/// Totals over a run.
#[derive(Debug, Default, Clone)]
pub struct FleetTotals {
    /// Batches that did something.
    pub batches: u64,
    /// Cells received.
    pub cells: u64,
    /// Cells dead-lettered.
    pub cells_rejected: u64,
    /// Results produced and acknowledged.
    pub results_produced: u64,
    /// Partition rebuilds finished (one per assignment of a partition).
    pub rebuilds: u64,
    /// New consumers started because the member was left outside its
    /// group.
    pub consumer_restarts: u64,
}
