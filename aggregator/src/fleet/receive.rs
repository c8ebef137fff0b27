//! A batch's first phase: receiving cells for at most the coalescing
//! window (or up to `max_batch`), applying each to its partition's
//! contests, and gathering what the later phases need (the producer trace
//! contexts, the cells' append times, the dead letters).

use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rustc_hash::FxHashMap;
use tokio::sync::watch;
use votewire_core::trace_context::{linked_span, parse_traceparent};
use votewire_schemas::{DeadLetter, MAX_VOTES, codec};

use super::dead_letters::undecodable_cell;
use super::rebuild::{PartitionState, RebuildContext, apply_events};
use super::{BatchReport, MemberContext, header_bytes};
use crate::contest_cells::{ContestCells, ContestKey, contest_fingerprint};

/// At most this many producer contexts are linked from one
/// `aggregate.batch` span (the OpenTelemetry SDK's default link limit);
/// the rest are counted in `votewire.links_dropped`.
const MAX_LINKS_PER_BATCH: usize = 128;

/// A dead letter and the votes partition whose commit waits for it.
pub(super) struct PartitionDeadLetter {
    pub partition: i32,
    pub letter: DeadLetter,
}

/// What one batch received.
pub(super) struct Received {
    pub report: BatchReport,
    /// When the batch's first record (or the idle tick) arrived.
    pub started: Instant,
    pub started_wall: SystemTime,
    /// The distinct producer contexts (`traceparent`) of the batch's
    /// records; a payload's cells share one, so only a change is parsed.
    upstream: Vec<SpanContext>,
    upstream_dropped: usize,
    last_traceparent: Vec<u8>,
    per_partition: FxHashMap<i32, usize>,
    /// Per cell of a caught-up partition: its record's append time (ms).
    pub cell_stamps: Vec<i64>,
    /// Records and contests bound for the dead-letter topic.
    pub dead_letters: Vec<PartitionDeadLetter>,
    /// Source-disagreement alerts to upsert or tombstone.
    pub alert_changes: Vec<super::alerts::AlertChange>,
}

impl Received {
    fn new() -> Received {
        Received {
            report: BatchReport::default(),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            upstream: Vec::new(),
            upstream_dropped: 0,
            last_traceparent: Vec::new(),
            per_partition: FxHashMap::default(),
            cell_stamps: Vec::new(),
            dead_letters: Vec::new(),
            alert_changes: Vec::new(),
        }
    }

    fn records(&self) -> usize {
        self.report.cells + self.report.cells_rejected
    }

    /// Notes `m`'s producer context, when it differs from the last one.
    fn note_upstream(&mut self, m: &BorrowedMessage<'_>) {
        let Some(tp) = header_bytes(m, "traceparent") else {
            return;
        };
        if tp == self.last_traceparent.as_slice() {
            return;
        }
        self.last_traceparent.clear();
        self.last_traceparent.extend_from_slice(tp);
        if let Some(sc) = parse_traceparent(tp, header_bytes(m, "tracestate"))
            && !self.upstream.contains(&sc)
        {
            if self.upstream.len() < MAX_LINKS_PER_BATCH {
                self.upstream.push(sc);
            } else {
                self.upstream_dropped += 1;
            }
        }
    }
}

/// Waits for the first record (or a 100 ms tick for housekeeping, or
/// `stop`), then takes records until the coalescing window closes or the
/// batch is full. Rebalance events are applied before each record.
pub(super) async fn receive(
    consumer: &StreamConsumer<RebuildContext>,
    ctx: &MemberContext<'_>,
    stop: &mut watch::Receiver<bool>,
    decoder: &mut codec::VoteCellDecoder,
    parts: &mut FxHashMap<i32, PartitionState>,
) -> Received {
    let first = tokio::select! {
        m = consumer.recv() => Some(m),
        _ = tokio::time::sleep(Duration::from_millis(100)) => None,
        _ = stop.changed() => None,
    };
    let mut batch = Received::new();
    match first {
        Some(m) => {
            take_record(m, consumer, ctx, decoder, parts, &mut batch);
            let deadline = tokio::time::Instant::now() + ctx.cfg.coalesce;
            while batch.records() < ctx.cfg.max_batch {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(m) => take_record(m, consumer, ctx, decoder, parts, &mut batch),
                    Err(_) => break,
                }
            }
        }
        None => apply_events(consumer, &ctx.topics.votes, parts),
    }
    batch.report.per_partition = batch.per_partition.drain().collect();
    batch.report.per_partition.sort();
    batch
}

/// Applies one received record: a cell goes into its partition's
/// contests (and marks the contest dirty); one that does not decode, or
/// that is past the bound on a cell's votes, becomes a dead letter.
fn take_record(
    m: Result<BorrowedMessage<'_>, KafkaError>,
    consumer: &StreamConsumer<RebuildContext>,
    ctx: &MemberContext<'_>,
    decoder: &mut codec::VoteCellDecoder,
    parts: &mut FxHashMap<i32, PartitionState>,
    batch: &mut Received,
) {
    let topic = &ctx.topics.votes;
    apply_events(consumer, topic, parts);
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("aggregator {}: consuming: {e}", ctx.cfg.instance);
            return;
        }
    };
    let p = m.partition();
    let Some(state) = parts.get_mut(&p) else {
        return;
    };
    state.next_offset = Some(m.offset() + 1);
    *batch.per_partition.entry(p).or_insert(0) += 1;
    state.cells_since_stats += 1;
    if state.rebuild.is_none()
        && let Some(ts) = m.timestamp().to_millis()
    {
        batch.cell_stamps.push(ts);
    }
    if ctx.tracing {
        batch.note_upstream(&m);
    }
    let Some(payload) = m.payload() else {
        return; // A tombstone: cells are never deleted by one.
    };
    match decoder.decode(payload) {
        Ok((_, cell)) if cell.votes.unsigned_abs() > MAX_VOTES as u64 => {
            // Only a producer other than votewire's ingestors can write
            // one; it must not reach a sum.
            batch.report.cells_rejected += 1;
            let why = format!(
                "votes {} is past the {MAX_VOTES} bound of one cell",
                cell.votes
            );
            batch.dead_letters.push(PartitionDeadLetter {
                partition: p,
                letter: undecodable_cell(topic, &m, &why),
            });
        }
        Ok((ck, cell)) => {
            batch.report.cells += 1;
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
            batch.report.cells_rejected += 1;
            tracing::warn!(
                "aggregator {}: {topic} partition {p} offset {}: undecodable cell skipped: {e}",
                ctx.cfg.instance,
                m.offset()
            );
            batch.dead_letters.push(PartitionDeadLetter {
                partition: p,
                letter: undecodable_cell(topic, &m, &e),
            });
        }
    }
}

/// One `aggregate.batch` span per batch that did work (only when spans
/// are exported at all): its parent is the newest producer context among
/// its records (so a single payload's trace runs from `feed.fetch` to
/// `results.produce`) and it links every distinct producer context it
/// consumed.
pub(super) fn batch_span(ctx: &MemberContext<'_>, batch: &mut Received) -> Option<Context> {
    if !ctx.tracing || (batch.records() == 0 && batch.report.caught_up.is_empty()) {
        return None;
    }
    let parent = batch
        .upstream
        .last()
        .map(|sc| Context::new().with_remote_span_context(sc.clone()))
        .unwrap_or_default();
    Some(linked_span(
        &parent,
        "aggregate.batch",
        SpanKind::Consumer,
        Some(batch.started_wall),
        vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.destination.name", ctx.topics.votes.clone()),
            KeyValue::new("messaging.consumer.group.name", ctx.cfg.group_id.clone()),
            KeyValue::new("messaging.batch.message_count", batch.records() as i64),
            KeyValue::new("votewire.instance", ctx.cfg.instance.clone()),
            KeyValue::new("votewire.links_dropped", batch.upstream_dropped as i64),
        ],
        std::mem::take(&mut batch.upstream),
    ))
}
