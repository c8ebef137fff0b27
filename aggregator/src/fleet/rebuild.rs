//! Rebuild on assignment: the rebalance callback that starts every
//! assigned partition from its beginning, the per-partition state, and
//! the high watermark a partition must reach before it publishes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use votewire_schemas::ContestResult;

use super::{BatchReport, FleetTotals};
use crate::contest_cells::{ContestCells, ContestKey};
use crate::high_watermarks::HighWatermarks;

#[derive(Debug)]
pub(super) enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Rewrites every assignment to start at the beginning (the rebuild) and
/// tells the loop which partitions came and went.
pub(super) struct RebuildContext {
    pub(super) topic: String,
    pub(super) events: Mutex<Vec<RebalanceEvent>>,
    pub(super) pending: AtomicBool,
    /// An assignment (possibly empty) was applied and not revoked whole
    /// or lost since.
    pub(super) joined: AtomicBool,
    /// MSK IAM tokens, as every votewire client signs them.
    pub(super) msk_iam: votewire_core::msk_iam::MskIamTokens,
    /// The votes partitions' watermarks from librdkafka's statistics.
    pub(super) high_watermarks: HighWatermarks,
    /// Which of the member's consumers this is (0 for the first).
    pub(super) generation: u32,
}

impl ClientContext for RebuildContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn stats_raw(&self, statistics: &[u8]) {
        self.high_watermarks.record(statistics, &self.topic);
    }

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        Ok(self.msk_iam.generate(oauthbearer_config)?)
    }
}

impl ConsumerContext for RebuildContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let ours: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let _ = tpl.set_all_offsets(Offset::Beginning);
                self.push(RebalanceEvent::Assigned(ours));
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // An eager revoke (everything, before a new assignment) or
                // a lost assignment leaves the member outside the group
                // until it is assigned again; a cooperative revoke of some
                // partitions does not.
                if !cooperative || consumer.assignment_lost() {
                    self.joined.store(false, Ordering::Release);
                }
                self.push(RebalanceEvent::Revoked(ours));
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!("aggregator: rebalance error {other:?}; dropping the assignment");
                self.joined.store(false, Ordering::Release);
                self.push(RebalanceEvent::Revoked(ours));
                consumer.unassign()
            }
        };
        if let Err(e) = outcome {
            tracing::error!("aggregator: applying a rebalance: {e}");
        }
    }
}

impl RebuildContext {
    pub(super) fn push(&self, e: RebalanceEvent) {
        if let Ok(mut v) = self.events.lock() {
            v.push(e);
        }
        self.pending.store(true, Ordering::Release);
    }

    pub(super) fn take(&self) -> Vec<RebalanceEvent> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.events
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// A result's place: its key, on the results topic or (for publisher test
/// data) the test results topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PublishedKey {
    /// Published to the test results topic.
    pub(super) test: bool,
    /// The record key.
    pub(super) key: String,
}

/// Where a rebuilding partition is in its catch-up.
#[derive(Debug)]
pub(super) struct Rebuild {
    /// The high watermark read at assignment (`None` until a read
    /// succeeds).
    pub(super) assigned_hw: Option<i64>,
    /// When the watermark was last asked for: a failed read is tried again
    /// every [`WATERMARK_RETRY`], not every batch (each try blocks the
    /// member for up to [`WATERMARK_TIMEOUT`]).
    pub(super) last_try: Instant,
}

/// How long one high-watermark read may block the member. A read answers
/// within `fetch.wait.max.ms` (100 ms) and a round trip; after a broker
/// outage every partition without a leader fails its read, and this is
/// what each of them costs the batch loop.
pub(super) const WATERMARK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a partition whose watermark could not be read tries again.
const WATERMARK_RETRY: Duration = Duration::from_secs(2);

/// One assigned partition's state.
#[derive(Debug)]
pub(super) struct PartitionState {
    /// Per contest fingerprint: the contest and its cells.
    pub(super) contests: FxHashMap<u128, (ContestKey, ContestCells)>,
    /// `Some` until the partition has caught up; nothing is published
    /// before.
    pub(super) rebuild: Option<Rebuild>,
    /// The next offset to commit.
    pub(super) next_offset: Option<i64>,
    /// Cells consumed since the last stats report.
    pub(super) cells_since_stats: u64,
    /// What each result was last published as, by its topic (test or
    /// not) and key: a result equal to it is not encoded or produced
    /// again.
    pub(super) published: HashMap<PublishedKey, ContestResult>,
    pub(super) dirty: HashSet<u128>,
    /// Per live result key: the source-disagreement alerts that landed and
    /// are open.
    pub(super) alerts: HashMap<String, super::alerts::OpenAlerts>,
}

impl PartitionState {
    pub(super) fn new(assigned_hw: Option<i64>) -> Self {
        Self {
            contests: FxHashMap::default(),
            rebuild: Some(Rebuild {
                assigned_hw,
                last_try: Instant::now(),
            }),
            next_offset: None,
            published: HashMap::new(),
            dirty: HashSet::new(),
            alerts: HashMap::new(),
            cells_since_stats: 0,
        }
    }
}

/// The high watermark of `partition`, or `None` when the broker did not
/// answer within [`WATERMARK_TIMEOUT`] (the partition then stays in
/// rebuild).
fn high_watermark(
    consumer: &StreamConsumer<RebuildContext>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    match consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT) {
        Ok((_, hw)) => Some(hw),
        Err(e) => {
            tracing::warn!(
                "aggregator: reading {topic} partition {partition}'s high watermark: {e}; still rebuilding, trying again"
            );
            None
        }
    }
}

/// The consumer's position in each rebuilding partition (empty when none
/// is rebuilding).
fn rebuild_positions(
    consumer: &StreamConsumer<RebuildContext>,
    topic: &str,
    parts: &FxHashMap<i32, PartitionState>,
) -> HashMap<i32, i64> {
    if parts.values().all(|s| s.rebuild.is_none()) {
        return HashMap::new();
    }
    let Ok(tpl) = consumer.position() else {
        return HashMap::new();
    };
    tpl.elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Applies the rebalance events the callback recorded: assigned partitions
/// start rebuilding, revoked ones are dropped with their state.
pub(super) fn apply_events(
    consumer: &StreamConsumer<RebuildContext>,
    topic: &str,
    parts: &mut FxHashMap<i32, PartitionState>,
) {
    for event in consumer.context().take() {
        match event {
            RebalanceEvent::Assigned(ps) => {
                // Joined once the assignment is applied (its partitions
                // are in `parts`, rebuilding), never before.
                consumer.context().joined.store(true, Ordering::Release);
                for p in ps {
                    parts.insert(p, PartitionState::new(high_watermark(consumer, topic, p)));
                }
            }
            RebalanceEvent::Revoked(ps) => {
                for p in ps {
                    parts.remove(&p);
                }
            }
        }
    }
}

/// Ends the rebuild of every partition whose position has reached the
/// high watermark read at its assignment (reading it again, every
/// [`WATERMARK_RETRY`], where that read failed): such a partition has
/// consumed its whole compacted history, and every contest it holds is
/// rolled up and published in this batch.
pub(super) fn finish_rebuilds(
    consumer: &StreamConsumer<RebuildContext>,
    topic: &str,
    parts: &mut FxHashMap<i32, PartitionState>,
    report: &mut BatchReport,
    totals: &mut FleetTotals,
) {
    let positions = rebuild_positions(consumer, topic, parts);
    for (p, state) in parts.iter_mut() {
        let Some(r) = state.rebuild.as_mut() else {
            continue;
        };
        if r.assigned_hw.is_none() && r.last_try.elapsed() >= WATERMARK_RETRY {
            r.last_try = Instant::now();
            r.assigned_hw = high_watermark(consumer, topic, *p);
        }
        let Some(assigned_hw) = r.assigned_hw else {
            continue;
        };
        // Once a record of this assignment arrived, the consumer's
        // position also moves past offsets that hold no record for us
        // (compacted away, transaction markers); before that it may still
        // be a previous assignment's.
        let position = match state.next_offset {
            Some(next) => next.max(positions.get(p).copied().unwrap_or(0)),
            None => 0,
        };
        if position >= assigned_hw {
            state.rebuild = None;
            state.dirty = state.contests.keys().cloned().collect();
            report.caught_up.push(*p);
            totals.rebuilds += 1;
        }
    }
}
