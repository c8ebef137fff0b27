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
use rebuild::{PartitionState, RebuildContext, finish_rebuilds};
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
}

impl FleetConfig {
    /// A member of `group_id` named `instance`, with the measured
    /// defaults: 10 ms coalescing, 50,000 cells per batch, stats every
    /// 5 s, 10,000 results in flight.
    pub fn new(group_id: &str, instance: &str) -> Self {
        Self {
            group_id: group_id.to_string(),
            instance: instance.to_string(),
            coalesce: Duration::from_millis(10),
            max_batch: 50_000,
            stats_every: Duration::from_secs(5),
            max_in_flight: 10_000,
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
    let clients = connect(kafka, topics, cfg)?;
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
        let delivered = produce(
            &clients.producer,
            &ctx,
            changed,
            dead_letters,
            span.as_ref(),
        )
        .await;
        let failed = delivered.failed_partitions;
        record_landed(delivered.landed, failed.is_empty(), &mut parts, &mut batch);
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
            });
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
        {
            metrics::record_batch(&report);
            on_batch(&report);
        }
    }
    Ok(totals)
}

/// Creates the member's consumer and producer and subscribes to the votes
/// topic.
fn connect(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    cfg: &FleetConfig,
) -> Result<MemberClients, AggregateError> {
    let kafka_err = |what: &'static str| {
        let instance = cfg.instance.clone();
        move |source| AggregateError::Kafka {
            instance,
            what,
            source,
        }
    };
    let context = RebuildContext {
        topic: topics.votes.clone(),
        events: Mutex::new(Vec::new()),
        pending: AtomicBool::new(false),
        joined: AtomicBool::new(false),
        msk_iam: Default::default(),
        high_watermarks: HighWatermarks::default(),
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
        .map_err(kafka_err("creating the consumer"))?;
    consumer
        .subscribe(&[topics.votes.as_str()])
        .map_err(kafka_err("subscribing to the votes topic"))?;
    // A batch's results are all produced before any is awaited, so they
    // batch by themselves; lingering would only add latency.
    let producer: FutureProducer<KafkaClientContext> =
        producer_config(kafka, &format!("aggregate-{}", cfg.instance))
            .set("linger.ms", "1")
            .create_with_context(KafkaClientContext::default())
            .map_err(kafka_err("creating the producer"))?;
    Ok(MemberClients { consumer, producer })
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
