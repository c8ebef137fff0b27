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
mod report;

pub use report::{AssignmentStat, BatchReport, FleetTotals, PartitionStat};

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use tokio::sync::watch;
use votewire_core::config::{KafkaConfig, TopicsConfig};
use votewire_core::kafka::{KafkaClientContext, consumer_config, producer_config};
use votewire_core::trace_context::{child_span, end_span, linked_span, parse_traceparent};
use votewire_schemas::{DeadLetter, MAX_VOTES, codec, schemas};

use crate::contest_cells::{ContestCells, ContestKey, contest_fingerprint};
use crate::high_watermarks::HighWatermarks;
use crate::rollup::{result_key, roll_up};
use dead_letters::{overflowed_contest, undecodable_cell};
use produce::{SentResult, settle};
use rebuild::{
    PartitionState, RebuildContext, WATERMARK_RETRY, apply_events, high_watermark,
    rebuild_positions,
};

/// The aggregator could not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// Creating or subscribing the consumer or producer failed. Retrying
    /// helps only if the broker comes back.
    #[error("aggregator {instance}: {what}: {source}")]
    Kafka {
        instance: String,
        what: &'static str,
        #[source]
        source: KafkaError,
    },
}

impl AggregateError {
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// At most this many producer contexts are linked from one
/// `aggregate.batch` span (the OpenTelemetry SDK's default link limit);
/// the rest are counted in `votewire.links_dropped`.
const MAX_LINKS_PER_BATCH: usize = 128;

/// At most this many contest ids are named on a `rollup.apply` span.
const MAX_CONTEST_IDS_ON_SPAN: usize = 32;

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

/// Runs one fleet member until `stop` turns true. `on_batch` sees every
/// batch that did something.
pub async fn run_member(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    cfg: &FleetConfig,
    mut stop: watch::Receiver<bool>,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<FleetTotals, AggregateError> {
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
    let schema = &schemas().contest_result;
    let mut decoder = codec::VoteCellDecoder::new(schemas().vote_cell.id);
    let mut parts: FxHashMap<i32, PartitionState> = FxHashMap::default();
    let mut totals = FleetTotals::default();
    let mut last_stats = Instant::now();
    // Spans (and the producer contexts they link) are built only when
    // they are exported at all.
    let tracing = votewire_core::telemetry::exporting();

    loop {
        if *stop.borrow() {
            break;
        }
        // Wait for the first record (or a tick for housekeeping).
        let first = tokio::select! {
            m = consumer.recv() => Some(m),
            _ = tokio::time::sleep(Duration::from_millis(100)) => None,
            _ = stop.changed() => None,
        };
        let started = Instant::now();
        let started_wall = SystemTime::now();
        // The distinct producer contexts (`traceparent`) of this batch's
        // records; a payload's cells share one, so only a change is parsed.
        let mut upstream: Vec<SpanContext> = Vec::new();
        let mut upstream_dropped = 0_usize;
        let mut last_traceparent: Vec<u8> = Vec::new();
        let mut report = BatchReport::default();
        let mut per_partition: FxHashMap<i32, usize> = FxHashMap::default();
        let mut cell_stamps: Vec<i64> = Vec::new();
        let mut dead_letters: Vec<(i32, DeadLetter)> = Vec::new();
        let mut handle = |m: Result<rdkafka::message::BorrowedMessage<'_>, KafkaError>,
                          parts: &mut FxHashMap<i32, PartitionState>,
                          report: &mut BatchReport| {
            apply_events(&consumer, &topics.votes, parts);
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!("aggregator {}: consuming: {e}", cfg.instance);
                    return;
                }
            };
            let p = m.partition();
            let Some(state) = parts.get_mut(&p) else {
                return;
            };
            state.next_offset = Some(m.offset() + 1);
            *per_partition.entry(p).or_insert(0) += 1;
            state.cells_since_stats += 1;
            if state.rebuild.is_none()
                && let Some(ts) = m.timestamp().to_millis()
            {
                cell_stamps.push(ts);
            }
            if tracing
                && let Some(tp) = header_bytes(&m, "traceparent")
                && tp != last_traceparent.as_slice()
            {
                last_traceparent.clear();
                last_traceparent.extend_from_slice(tp);
                if let Some(sc) = parse_traceparent(tp, header_bytes(&m, "tracestate"))
                    && !upstream.contains(&sc)
                {
                    if upstream.len() < MAX_LINKS_PER_BATCH {
                        upstream.push(sc);
                    } else {
                        upstream_dropped += 1;
                    }
                }
            }
            let Some(payload) = m.payload() else {
                return; // A tombstone: cells are never deleted by one.
            };
            match decoder.decode(payload) {
                Ok((_, cell)) if cell.votes.unsigned_abs() > MAX_VOTES as u64 => {
                    // Only a producer other than votewire's ingestors can
                    // write one; it must not reach a sum.
                    report.cells_rejected += 1;
                    let why = format!(
                        "votes {} is past the {MAX_VOTES} bound of one cell",
                        cell.votes
                    );
                    dead_letters.push((p, undecodable_cell(&topics.votes, &m, &why)));
                }
                Ok((ck, cell)) => {
                    report.cells += 1;
                    let fp = contest_fingerprint(&cell);
                    state
                        .contests
                        .entry(fp)
                        .or_insert_with(|| (ContestKey::of(&cell), ContestCells::default()))
                        .1
                        .apply(ck.0, cell);
                    state.dirty.insert(fp);
                }
                Err(e) => {
                    report.cells_rejected += 1;
                    tracing::warn!(
                        "aggregator {}: {} partition {p} offset {}: undecodable cell skipped: {e}",
                        cfg.instance,
                        topics.votes,
                        m.offset()
                    );
                    dead_letters.push((p, undecodable_cell(&topics.votes, &m, &e)));
                }
            }
        };
        match first {
            Some(m) => {
                handle(m, &mut parts, &mut report);
                let deadline = tokio::time::Instant::now() + cfg.coalesce;
                while report.cells + report.cells_rejected < cfg.max_batch {
                    match tokio::time::timeout_at(deadline, consumer.recv()).await {
                        Ok(m) => handle(m, &mut parts, &mut report),
                        Err(_) => break,
                    }
                }
            }
            None => apply_events(&consumer, &topics.votes, &mut parts),
        }
        report.per_partition = per_partition.into_iter().collect();
        report.per_partition.sort();

        // Partitions that caught up publish every contest they hold.
        let positions = rebuild_positions(&consumer, &topics.votes, &parts);
        for (p, state) in parts.iter_mut() {
            let Some(r) = state.rebuild.as_mut() else {
                continue;
            };
            if r.assigned_hw.is_none() && r.last_try.elapsed() >= WATERMARK_RETRY {
                r.last_try = Instant::now();
                r.assigned_hw = high_watermark(&consumer, &topics.votes, *p);
            }
            let Some(assigned_hw) = r.assigned_hw else {
                continue;
            };
            // Once a record of this assignment arrived, the consumer's
            // position also moves past offsets that hold no record for us
            // (compacted away, transaction markers); before that it may
            // still be a previous assignment's.
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

        // One `aggregate.batch` span per batch that did work: its parent is
        // the newest producer context among its records (so a single
        // payload's trace runs from `feed.fetch` to `results.produce`) and
        // it links every distinct producer context it consumed.
        let batch_span = (tracing
            && (report.cells + report.cells_rejected > 0 || !report.caught_up.is_empty()))
        .then(|| {
            let parent = upstream
                .last()
                .map(|sc| Context::new().with_remote_span_context(sc.clone()))
                .unwrap_or_default();
            linked_span(
                &parent,
                "aggregate.batch",
                SpanKind::Consumer,
                Some(started_wall),
                vec![
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.operation.type", "process"),
                    KeyValue::new("messaging.operation.name", "process"),
                    KeyValue::new("messaging.destination.name", topics.votes.clone()),
                    KeyValue::new("messaging.consumer.group.name", cfg.group_id.clone()),
                    KeyValue::new(
                        "messaging.batch.message_count",
                        (report.cells + report.cells_rejected) as i64,
                    ),
                    KeyValue::new("votewire.instance", cfg.instance.clone()),
                    KeyValue::new("votewire.links_dropped", upstream_dropped as i64),
                ],
                std::mem::take(&mut upstream),
            )
        });

        // Roll up every dirty contest of every caught-up partition and keep
        // the results that differ from what this member last published.
        let rollup_span = batch_span
            .as_ref()
            .map(|b| child_span(b, "rollup.apply", SpanKind::Internal, Vec::new()));
        let mut changed: Vec<(SentResult, Vec<u8>)> = Vec::new();
        let mut contest_ids: Vec<StringValue> = Vec::new();
        for (p, state) in parts.iter_mut() {
            if state.rebuild.is_some() || state.dirty.is_empty() {
                continue;
            }
            // In contest order, so a run's output order is reproducible.
            let mut dirty: Vec<&(ContestKey, ContestCells)> = state
                .dirty
                .drain()
                .filter_map(|fp| state.contests.get(&fp))
                .collect();
            dirty.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, cells) in dirty {
                report.contests_rolled_up += 1;
                if rollup_span.is_some() && contest_ids.len() < MAX_CONTEST_IDS_ON_SPAN {
                    contest_ids.push(key.contest_id.clone().into());
                }
                let results = match roll_up(key, cells) {
                    Ok(results) => results,
                    Err(overflow) => {
                        report.contests_overflowed += 1;
                        tracing::error!("aggregator {}: {overflow}", cfg.instance);
                        let feeds: BTreeSet<&str> = cells
                            .iter()
                            .map(|(_, c)| &*c.header.provenance.feed_id)
                            .collect();
                        let feed_id = feeds.into_iter().collect::<Vec<_>>().join(",");
                        let dead = overflowed_contest(&topics.votes, key, &feed_id, &overflow);
                        dead_letters.push((*p, dead));
                        continue;
                    }
                };
                for result in results {
                    let rk = result_key(&result);
                    if state.published.get(&rk) == Some(&result) {
                        report.results_unchanged += 1;
                        continue;
                    }
                    match codec::encode(schema, &result) {
                        Ok(bytes) => {
                            let sent = SentResult {
                                partition: *p,
                                key: rk,
                                newest_fetch_ms: result.last_updated,
                                result,
                            };
                            changed.push((sent, bytes));
                        }
                        Err(e) => {
                            tracing::error!(
                                "aggregator {}: encoding result {rk}: {e}",
                                cfg.instance
                            );
                        }
                    }
                }
            }
        }
        if let Some(span) = &rollup_span {
            span.span().set_attribute(KeyValue::new(
                "votewire.contest_id",
                opentelemetry::Value::Array(contest_ids.into()),
            ));
            span.span().set_attribute(KeyValue::new(
                "votewire.contests_rolled_up",
                report.contests_rolled_up as i64,
            ));
            span.span().set_attribute(KeyValue::new(
                "votewire.results_changed",
                changed.len() as i64,
            ));
            end_span(span, None);
        }

        // Produce what changed and wait for every ack.
        // In flight: at most `max_in_flight` results; past that the oldest
        // is awaited before another is sent (consumption is paused all the
        // while: nothing is polled until the batch has landed).
        let produce_span = batch_span.as_ref().map(|b| {
            child_span(
                b,
                "results.produce",
                SpanKind::Producer,
                vec![
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.operation.type", "send"),
                    KeyValue::new("messaging.operation.name", "send"),
                    KeyValue::new("messaging.destination.name", topics.results.clone()),
                    KeyValue::new("messaging.batch.message_count", changed.len() as i64),
                ],
            )
        });
        let mut in_flight: std::collections::VecDeque<(Option<DeliveryFuture>, SentResult)> =
            std::collections::VecDeque::new();
        let mut landed: Vec<SentResult> = Vec::new();
        let mut failed_partitions: HashSet<i32> = HashSet::new();
        for (sent, bytes) in changed {
            let rk = &sent.key;
            let mut record = FutureRecord::to(&topics.results).key(rk).payload(&bytes);
            let headers = sent.result.trace_id.as_deref().map(|t| {
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "trace_id",
                    value: Some(t),
                })
            });
            if let Some(h) = headers {
                record = record.headers(h);
            }
            let delivery = loop {
                match producer.send_result(record) {
                    Ok(d) => break Some(d),
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        tracing::warn!("aggregator {}: producing {rk}: {e}", cfg.instance);
                        break None;
                    }
                }
            };
            in_flight.push_back((delivery, sent));
            if in_flight.len() >= cfg.max_in_flight
                && let Some((d, sent)) = in_flight.pop_front()
            {
                settle(d, sent, &mut landed, &mut failed_partitions, &cfg.instance).await;
            }
        }
        // Undecodable records go to the dead-letter topic, keyed by their
        // place on the votes topic (a rebuild dead-letters them again under
        // the same key), and are committed only once that is acknowledged.
        let mut dlq_deliveries = Vec::new();
        for (p, dead) in dead_letters {
            let key = dead.archive_ref.clone().unwrap_or_default();
            let sent = codec::encode(&schemas().dead_letter, &dead)
                .ok()
                .and_then(|bytes| {
                    producer
                        .send_result(FutureRecord::to(&topics.dlq).key(&key).payload(&bytes))
                        .ok()
                });
            dlq_deliveries.push((p, sent));
        }
        for (p, sent) in dlq_deliveries {
            let landed = match sent {
                Some(d) => matches!(d.await, Ok(Ok(_))),
                None => false,
            };
            if !landed {
                tracing::error!(
                    "aggregator {}: a dead letter for partition {p} did not land",
                    cfg.instance
                );
                failed_partitions.insert(p);
            }
        }
        while let Some((d, sent)) = in_flight.pop_front() {
            settle(d, sent, &mut landed, &mut failed_partitions, &cfg.instance).await;
        }
        if let Some(span) = &produce_span {
            let failed = (!failed_partitions.is_empty()).then(|| {
                format!(
                    "deliveries failed on partition(s) {failed_partitions:?}; they are rolled up again"
                )
            });
            end_span(span, failed.as_deref());
        }
        for SentResult {
            partition: p,
            key: rk,
            result,
            newest_fetch_ms: newest_fetch,
        } in landed
        {
            report.results_produced += 1;
            report
                .fetch_to_result_ms
                .push(votewire_core::unix_ms().saturating_sub(newest_fetch));
            if let Some(state) = parts.get_mut(&p) {
                state.published.insert(rk, result);
            }
        }
        if failed_partitions.is_empty() {
            let acked = votewire_core::unix_ms();
            report.cell_to_result_ms = cell_stamps.iter().map(|t| acked - t).collect();
        }
        // Commit what was consumed, except partitions whose results did not
        // all land: those are re-consumed after a restart or rebalance, and
        // their contests are rolled up again next batch.
        let mut tpl = TopicPartitionList::new();
        for (p, state) in parts.iter_mut() {
            if failed_partitions.contains(p) {
                state.dirty.extend(state.contests.keys().cloned());
                continue;
            }
            if let Some(next) = state.next_offset {
                let _ = tpl.add_partition_offset(&topics.votes, *p, Offset::Offset(next));
            }
        }
        let consumed = !report.per_partition.is_empty() || report.results_produced > 0;
        if tpl.count() > 0
            && consumed
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!("aggregator {}: committing offsets: {e}", cfg.instance);
        }
        if last_stats.elapsed() >= cfg.stats_every {
            let secs = last_stats.elapsed().as_secs_f64();
            last_stats = Instant::now();
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
            report.assignment = Some(AssignmentStat {
                joined: consumer.context().joined.load(Ordering::Acquire),
                partitions: stats.len(),
                rebuilding: stats.iter().filter(|s| s.rebuilding).count(),
            });
            report.partitions = stats;
        }
        report.elapsed = started.elapsed();
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

/// The value of `m`'s header `name`, if it has one. Searched from the
/// last header back: the trace context is written last, and each header
/// read is a call into librdkafka (a forward scan of every record's six
/// headers cost a measured fifth of the rebuild throughput).
pub(super) fn header_bytes<'a>(
    m: &'a rdkafka::message::BorrowedMessage<'_>,
    name: &str,
) -> Option<&'a [u8]> {
    use rdkafka::message::Headers;
    let h = m.headers()?;
    (0..h.count())
        .rev()
        .map(|i| h.get(i))
        .find(|h| h.key == name)
        .and_then(|h| h.value)
}
