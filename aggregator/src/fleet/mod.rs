//! One member of the aggregator fleet: a consumer-group member on the
//! votes topic that keeps the cells of its partitions, rolls touched
//! contests up and publishes the results that changed.
//!
//! The loop, per batch: receive cells for at most the coalescing window
//! (or up to `max_batch` cells), apply them, roll up every touched contest
//! of every caught-up partition, produce the results whose bytes changed,
//! wait for all of their delivery reports, and only then commit the
//! batch's offsets. Nothing is consumed while a batch's results are in
//! flight: that is the backpressure, and it bounds the in-flight produce
//! to one batch's results.
//!
//! # Rebuild on assignment
//!
//! An assigned partition is read from its beginning (the rebalance
//! callback rewrites the assignment's offsets), and nothing is published
//! for it until it has caught up: until its position has reached the high
//! watermark read at assignment. Every record that existed when the
//! partition was assigned then lies behind the position, so the first
//! results it publishes are computed from the whole compacted history, and
//! no quiet period is waited for. A partition whose watermark cannot be
//! read stays in rebuild, and the read is tried again each batch: a
//! partition assumed empty would publish partial results.
//!
//! # A member left outside its group
//!
//! A member with no assignment for longer than
//! [`FleetConfig::rejoin_after`] (since it started, or since its last
//! assignment was revoked whole or lost) drops its consumer and starts a
//! new one, which joins the group afresh and rebuilds what it is given.
//! librdkafka's consumer can stay outside its group for good after the
//! group coordinator went away and came back: in CI of ac3ab0a, after the
//! whole three-node cluster was stopped for 10 s, the member's session
//! timed out (`SESSTMOUT ... revoking assignment and rejoining group`) and
//! it was given nothing for the remaining 3.5 minutes while the cluster
//! was back and the ingestor kept publishing (the class of
//! confluentinc/librdkafka#2944 and #3082, both worked around there by a
//! restart). Nothing is lost by the restart: offsets were committed only
//! for results that landed, and an assignment is rebuilt from the
//! beginning of the compacted votes topic anyway.

mod alerts;
mod dead_letters;
pub mod metrics;
mod produce;
mod rebuild;
mod receive;
mod report;

pub use report::{AssignmentStat, BatchReport, FleetTotals, PartitionStat};

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use tokio::sync::watch;
use votewire_core::config::{KafkaConfig, TopicsConfig};
use votewire_core::kafka::{KafkaClientContext, consumer_config, producer_config};
use votewire_schemas::{codec, schemas};

use crate::high_watermarks::HighWatermarks;
use produce::{SentResult, changed_results, produce};
use rebuild::{PartitionState, RebuildContext, apply_events, finish_rebuilds};
use receive::{Received, batch_span, receive};

/// The aggregator could not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// Creating or subscribing the consumer or producer failed. Retrying
    /// helps only if the broker comes back.
    #[error("aggregator {instance}: {what}: {source}")]
    Kafka {
        /// The member.
        instance: String,
        /// What was being done (creating the consumer, subscribing, …).
        what: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
}

impl AggregateError {
    /// Whether starting the member again may succeed: when the broker
    /// answers again.
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// How one fleet member runs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The consumer group every member joins.
    pub group_id: String,
    /// This member's name (logs, client ids).
    pub instance: String,
    /// The coalescing window, from a batch's first cell: a burst (one
    /// payload's cells) yields one result per unit, not one per cell, and
    /// the added latency stays bounded. Measured at replay load: 10 ms
    /// gave p99 cell→result 40-57 ms, 20 ms 50-68 ms; closing a batch
    /// after a 3 ms gap instead split bursts (40% more batches) and made
    /// p99 worse (62-72 ms).
    pub coalesce: Duration,
    /// Cells per batch at most.
    pub max_batch: usize,
    /// How often lag and throughput per partition are reported.
    pub stats_every: Duration,
    /// Results produced and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// When linked sources' values at a unit count as disagreeing (an alert
    /// on the alerts topic).
    pub disagreement: crate::disagreement::DisagreementThreshold,
    /// How long the member may be without an assignment before it drops
    /// its consumer and starts a new one (see the module docs); never less
    /// than twice the consumer's `session.timeout.ms` and 3 s more
    /// ([`rejoin_bound`]).
    pub rejoin_after: Duration,
}

impl FleetConfig {
    /// A member of `group_id` named `instance`, with the measured
    /// defaults: 10 ms coalescing, 50,000 cells per batch, stats every
    /// 5 s, 10,000 results in flight, a new consumer after 30 s outside
    /// the group.
    pub fn new(group_id: &str, instance: &str) -> Self {
        Self {
            group_id: group_id.to_string(),
            instance: instance.to_string(),
            coalesce: Duration::from_millis(10),
            max_batch: 50_000,
            stats_every: Duration::from_secs(5),
            max_in_flight: 10_000,
            rejoin_after: Duration::from_secs(30),
            disagreement: Default::default(),
        }
    }
}

/// What every phase of a member's batch reads.
pub(super) struct MemberContext<'a> {
    pub topics: &'a TopicsConfig,
    pub cfg: &'a FleetConfig,
    /// Spans (and the producer contexts they link) are built only when
    /// they are exported at all.
    pub tracing: bool,
}

/// A member's consumer (on the votes topic, rebuilding on assignment) and
/// producer (results and dead letters).
struct MemberClients {
    consumer: StreamConsumer<RebuildContext>,
    producer: FutureProducer<KafkaClientContext>,
    /// A replaced consumer's close (still running or done) and when it
    /// began.
    closing: Option<(tokio::task::JoinHandle<()>, Instant)>,
}

/// Runs one fleet member until `stop` turns true. `on_batch` sees every
/// batch that did something.
///
/// Each batch runs its phases in order: receive ([`receive::receive`]),
/// finish the rebuilds that caught up, roll up what changed
/// ([`produce::changed_results`]), produce it and the dead letters and
/// wait for every ack ([`produce::produce`]), then commit what landed.
pub async fn run_member(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    cfg: &FleetConfig,
    mut stop: watch::Receiver<bool>,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<FleetTotals, AggregateError> {
    let mut clients = MemberClients {
        consumer: connect_consumer(kafka, topics, cfg, 0)?,
        producer: connect_producer(kafka, cfg)?,
        closing: None,
    };
    let bound = rejoin_bound(kafka, cfg);
    let mut outside = OutsideGroup::new(bound, jitter_of(&cfg.instance, bound), Instant::now());
    let ctx = MemberContext {
        topics,
        cfg,
        tracing: votewire_core::telemetry::exporting(),
    };
    let mut decoder = codec::VoteCellDecoder::new(schemas().vote_cell.id);
    let mut parts: FxHashMap<i32, PartitionState> = FxHashMap::default();
    let mut totals = FleetTotals::default();
    let mut last_stats = Instant::now();
    while !*stop.borrow() {
        let mut batch = receive(&clients.consumer, &ctx, &mut stop, &mut decoder, &mut parts).await;
        finish_rebuilds(
            &clients.consumer,
            &topics.votes,
            &mut parts,
            &mut batch.report,
            &mut totals,
        );
        let span = batch_span(&ctx, &mut batch);
        let changed = changed_results(&mut parts, &ctx, &mut batch, span.as_ref());
        let dead_letters = std::mem::take(&mut batch.dead_letters);
        let alert_changes = std::mem::take(&mut batch.alert_changes);
        let delivered = produce(
            &clients.producer,
            &ctx,
            changed,
            dead_letters,
            alert_changes,
            span.as_ref(),
        )
        .await;
        let failed = delivered.failed_partitions;
        record_landed(delivered.landed, failed.is_empty(), &mut parts, &mut batch);
        record_alerts(delivered.alerts_landed, &mut parts, &mut batch.report);
        let mut report = batch.report;
        commit(&clients.consumer, &ctx, &mut parts, &failed, &report);
        if last_stats.elapsed() >= cfg.stats_every {
            let secs = last_stats.elapsed().as_secs_f64();
            last_stats = Instant::now();
            report.partitions = partition_stats(&clients.consumer, &mut parts, secs);
            report.assignment = Some(AssignmentStat {
                joined: clients.consumer.context().joined.load(Ordering::Acquire),
                partitions: report.partitions.len(),
                rebuilding: report.partitions.iter().filter(|s| s.rebuilding).count(),
                consumer_generation: clients.consumer.context().generation,
            });
        }
        // An assignment that came during the batch's last receive counts.
        apply_events(&clients.consumer, &topics.votes, &mut parts);
        let joined = clients.consumer.context().joined.load(Ordering::Acquire);
        let outside_for = outside.wait();
        if outside.too_long(joined, Instant::now())
            && restart_consumer(&mut clients, kafka, topics, cfg, outside_for)?
        {
            parts.clear();
            report.consumer_restarted = true;
            totals.consumer_restarts += 1;
        }
        report.elapsed = batch.started.elapsed();
        totals.batches += 1;
        totals.cells += report.cells as u64;
        totals.cells_rejected += report.cells_rejected as u64;
        totals.results_produced += report.results_produced as u64;
        if report.cells > 0
            || report.results_produced > 0
            || !report.caught_up.is_empty()
            || report.assignment.is_some()
            || report.consumer_restarted
            || report.alerts_raised + report.alerts_cleared > 0
        {
            metrics::record_batch(&report);
            on_batch(&report);
        }
    }
    // Closing the consumer leaves the group (its partitions move at once,
    // not after a session timeout), and blocks until the coordinator
    // answers: on a blocking thread, waited for a bounded time.
    let MemberClients { consumer, .. } = clients;
    let close = tokio::task::spawn_blocking(move || drop(consumer));
    if tokio::time::timeout(Duration::from_secs(10), close)
        .await
        .is_err()
    {
        tracing::warn!(
            "aggregator {}: the consumer did not close within 10 s; stopping without it",
            cfg.instance
        );
    }
    Ok(totals)
}

/// How long a member has been without an assignment, and whether that is
/// past its bound: the bound, doubled for each restart in a row (at most
/// 8 times it), plus a jitter of the member's own, so that the members of
/// a fleet left outside by one outage do not all restart together and
/// each restart (itself a rebalance) has time to settle.
#[derive(Debug)]
struct OutsideGroup {
    bound: Duration,
    jitter: Duration,
    /// Since when the member has had no assignment (`None` while it has
    /// one).
    since: Option<Instant>,
    /// Restarts since the member last had an assignment.
    restarts: u32,
}

impl OutsideGroup {
    /// A member that starts outside its group at `now`.
    fn new(bound: Duration, jitter: Duration, now: Instant) -> Self {
        Self {
            bound,
            jitter,
            since: Some(now),
            restarts: 0,
        }
    }

    /// How long the member may stay outside before its next restart.
    fn wait(&self) -> Duration {
        self.bound * 2u32.pow(self.restarts.min(3)) + self.jitter
    }

    /// Records whether the member is `joined` at `now`; true when it has
    /// been outside for its wait, and the count starts again from `now`
    /// (the new consumer gets its own, longer, wait to join).
    fn too_long(&mut self, joined: bool, now: Instant) -> bool {
        if joined {
            self.since = None;
            self.restarts = 0;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) < self.wait() {
            return false;
        }
        self.since = Some(now);
        self.restarts += 1;
        true
    }
}

/// A member's own share of a quarter of `bound`, from its name.
fn jitter_of(instance: &str, bound: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    instance.hash(&mut h);
    let quarter = (bound.as_millis() / 4).max(1) as u64;
    Duration::from_millis(h.finish() % quarter)
}

/// How long a member may be without an assignment before it starts a new
/// consumer: [`FleetConfig::rejoin_after`], but at least twice the session
/// timeout and 3 s more. A join waits a broker's initial rebalance delay
/// (3 s) in an empty group, and up to a session timeout for a member that
/// died without leaving, which a restarted consumer (dropped mid-join) may
/// itself be: a shorter bound would restart each new consumer before the
/// group let it in. Measured on the mock cluster with a 3 s session
/// timeout: at a 5 s bound the member never got in (26 restarts in 2
/// minutes); at 10 s it was in 4 s after the group opened.
fn rejoin_bound(kafka: &KafkaConfig, cfg: &FleetConfig) -> Duration {
    let session_ms: u64 = consumer_config(kafka, "aggregate", &cfg.group_id)
        .get("session.timeout.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(45_000);
    cfg.rejoin_after
        .max(Duration::from_millis(2 * session_ms) + Duration::from_secs(3))
}

/// Replaces the member's consumer with a new one, subscribed afresh, and
/// says whether it did. The old one is closed on a blocking thread, not
/// waited for (closing leaves the group, which waits on a coordinator that
/// may not answer); while that close is still going on, no other consumer
/// is started, so a long outage cannot pile up closing clients.
fn restart_consumer(
    clients: &mut MemberClients,
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    cfg: &FleetConfig,
    outside_for: Duration,
) -> Result<bool, AggregateError> {
    // A close that hangs for good (a coordinator that never answers) is
    // left behind after twice the wait, so the member is never locked out.
    if let Some((close, since)) = &clients.closing
        && !close.is_finished()
        && since.elapsed() < 2 * outside_for
    {
        tracing::warn!(
            "aggregator {}: no assignment from group {} for {outside_for:?}, but the previous consumer is still closing; not starting another yet",
            cfg.instance,
            cfg.group_id
        );
        return Ok(false);
    }
    tracing::warn!(
        "aggregator {}: no assignment from group {} for {outside_for:?}; starting a new consumer",
        cfg.instance,
        cfg.group_id
    );
    let generation = clients.consumer.context().generation + 1;
    let fresh = connect_consumer(kafka, topics, cfg, generation)?;
    let old = std::mem::replace(&mut clients.consumer, fresh);
    clients.closing = Some((
        tokio::task::spawn_blocking(move || drop(old)),
        Instant::now(),
    ));
    Ok(true)
}

/// The error of `what` failing for the member `cfg`.
fn kafka_err(cfg: &FleetConfig, what: &'static str) -> impl FnOnce(KafkaError) -> AggregateError {
    let instance = cfg.instance.clone();
    move |source| AggregateError::Kafka {
        instance,
        what,
        source,
    }
}

/// Creates the member's consumer and subscribes it to the votes topic.
fn connect_consumer(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    cfg: &FleetConfig,
    generation: u32,
) -> Result<StreamConsumer<RebuildContext>, AggregateError> {
    let context = RebuildContext {
        topic: topics.votes.clone(),
        events: Mutex::new(Vec::new()),
        pending: AtomicBool::new(false),
        joined: AtomicBool::new(false),
        msk_iam: Default::default(),
        high_watermarks: HighWatermarks::default(),
        generation,
    };
    let mut consumer_cfg =
        consumer_config(kafka, &format!("aggregate-{}", cfg.instance), &cfg.group_id);
    // When the prefetch queue is full (64 MB, about 140,000 cells) the
    // next fetch is postponed by this much: librdkafka's default (1 s)
    // made a rebuild crawl at one queue-full per second.
    consumer_cfg.set("fetch.queue.backoff.ms", "10");
    // A ListOffsets request (the watermark read at assignment) waits on the
    // broker connection behind a long-poll fetch: bounded to 100 ms here,
    // not librdkafka's 500. New records end a fetch's wait at once.
    consumer_cfg.set("fetch.wait.max.ms", "100");
    // The lag figures come from the statistics, not from requests.
    consumer_cfg.set(
        "statistics.interval.ms",
        cfg.stats_every.as_millis().clamp(100, 60_000).to_string(),
    );
    let consumer: StreamConsumer<RebuildContext> = consumer_cfg
        .create_with_context(context)
        .map_err(kafka_err(cfg, "creating the consumer"))?;
    consumer
        .subscribe(&[topics.votes.as_str()])
        .map_err(kafka_err(cfg, "subscribing to the votes topic"))?;
    Ok(consumer)
}

/// Creates the member's producer (results and dead letters).
fn connect_producer(
    kafka: &KafkaConfig,
    cfg: &FleetConfig,
) -> Result<FutureProducer<KafkaClientContext>, AggregateError> {
    // A batch's results are all produced before any is awaited, so they
    // batch by themselves; lingering would only add latency.
    producer_config(kafka, &format!("aggregate-{}", cfg.instance))
        .set("linger.ms", "1")
        .create_with_context(KafkaClientContext::default())
        .map_err(kafka_err(cfg, "creating the producer"))
}

/// Counts what landed and remembers it as published (the next roll-up
/// compares against it). The batch's cell-to-result latencies count only
/// when every result landed.
fn record_landed(
    landed: Vec<SentResult>,
    all_landed: bool,
    parts: &mut FxHashMap<i32, PartitionState>,
    batch: &mut Received,
) {
    let report = &mut batch.report;
    for sent in landed {
        report.results_produced += 1;
        report
            .fetch_to_result_ms
            .push(votewire_core::unix_ms().saturating_sub(sent.newest_fetch_ms));
        if let Some(state) = parts.get_mut(&sent.partition) {
            state.published.insert(sent.key, sent.result);
        }
    }
    if all_landed {
        let acked = votewire_core::unix_ms();
        report.cell_to_result_ms = batch.cell_stamps.iter().map(|t| acked - t).collect();
    }
}

/// Remembers the alert records that landed and counts them.
fn record_alerts(
    landed: Vec<alerts::AlertChange>,
    parts: &mut FxHashMap<i32, PartitionState>,
    report: &mut BatchReport,
) {
    for change in landed {
        if change.alert.is_some() {
            report.alerts_raised += 1;
        } else {
            report.alerts_cleared += 1;
        }
        if let Some(state) = parts.get_mut(&change.partition) {
            alerts::remember(&mut state.alerts, change);
        }
    }
}

/// Commits what was consumed, except partitions whose results did not all
/// land: those are re-consumed after a restart or rebalance, and their
/// contests are rolled up again next batch.
fn commit(
    consumer: &StreamConsumer<RebuildContext>,
    ctx: &MemberContext<'_>,
    parts: &mut FxHashMap<i32, PartitionState>,
    failed_partitions: &HashSet<i32>,
    report: &BatchReport,
) {
    let mut tpl = TopicPartitionList::new();
    for (p, state) in parts.iter_mut() {
        if failed_partitions.contains(p) {
            state.dirty.extend(state.contests.keys().cloned());
            continue;
        }
        if let Some(next) = state.next_offset {
            let _ = tpl.add_partition_offset(&ctx.topics.votes, *p, Offset::Offset(next));
        }
    }
    let consumed = !report.per_partition.is_empty() || report.results_produced > 0;
    if tpl.count() > 0
        && consumed
        && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
    {
        tracing::warn!("aggregator {}: committing offsets: {e}", ctx.cfg.instance);
    }
}

/// Lag and throughput per assigned partition over the last `secs`.
fn partition_stats(
    consumer: &StreamConsumer<RebuildContext>,
    parts: &mut FxHashMap<i32, PartitionState>,
    secs: f64,
) -> Vec<PartitionStat> {
    let mut stats: Vec<PartitionStat> = parts
        .iter_mut()
        .map(|(p, state)| {
            let position = state.next_offset.unwrap_or(0);
            let lag = consumer
                .context()
                .high_watermarks
                .get(*p)
                .map_or(0, |hw| (hw - position).max(0));
            let rate = state.cells_since_stats as f64 / secs;
            state.cells_since_stats = 0;
            PartitionStat {
                partition: *p,
                lag,
                cells_per_s: rate,
                rebuilding: state.rebuild.is_some(),
            }
        })
        .collect();
    stats.sort_by_key(|s| s.partition);
    stats
}

/// The value of `m`'s header `name`, if it has one. Searched from the
/// last header back: the trace context is written last, and each header
/// read is a call into librdkafka (a forward scan of every record's six
/// headers cost a measured fifth of the rebuild throughput).
pub(super) fn header_bytes<'a>(
    m: &'a rdkafka::message::BorrowedMessage<'_>,
    name: &str,
) -> Option<&'a [u8]> {
    use rdkafka::message::{Headers, Message};
    let h = m.headers()?;
    (0..h.count())
        .rev()
        .map(|i| h.get(i))
        .find(|h| h.key == name)
        .and_then(|h| h.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_outside_its_group_restarts_after_a_bound_that_doubles_in_a_row() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut outside = OutsideGroup::new(s(30), s(2), t0);
        // Starting outside: the first join may take the bound and the jitter.
        assert!(!outside.too_long(false, t0 + s(31)));
        assert!(outside.too_long(false, t0 + s(32)));
        // The new consumer gets twice the bound, then four times.
        assert!(!outside.too_long(false, t0 + s(32 + 61)));
        assert!(outside.too_long(false, t0 + s(32 + 62)));
        assert!(!outside.too_long(false, t0 + s(94 + 121)));
        assert!(outside.too_long(false, t0 + s(94 + 122)));
        // Joined: never, however long; and the doubling starts over.
        assert!(!outside.too_long(true, t0 + s(300)));
        assert!(!outside.too_long(true, t0 + s(900)));
        // Outside again (revoked or lost): counted from the first batch
        // that saw it, at the plain bound.
        assert!(!outside.too_long(false, t0 + s(901)));
        assert!(!outside.too_long(false, t0 + s(932)));
        assert!(outside.too_long(false, t0 + s(933)));
    }

    #[test]
    fn members_of_a_fleet_have_their_own_jitter_within_a_quarter_of_the_bound() {
        let bound = Duration::from_secs(30);
        let jitters: Vec<Duration> = (0..8)
            .map(|i| jitter_of(&format!("aggregate-{i}"), bound))
            .collect();
        assert!(jitters.iter().all(|j| *j < bound / 4));
        assert_eq!(
            jitter_of("aggregate-0", bound),
            jitters[0],
            "stable per member"
        );
        let distinct: std::collections::HashSet<_> = jitters.iter().collect();
        assert!(distinct.len() > 4, "{jitters:?}");
    }
}
