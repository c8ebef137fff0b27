//! A batch's middle phases: rolling up the dirty contests of every
//! caught-up partition into the results that changed, producing them and
//! the batch's dead letters, and settling every delivery report.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rustc_hash::FxHashMap;
use votewire_core::kafka::KafkaClientContext;
use votewire_core::trace_context::{child_span, end_span};
use votewire_schemas::{ContestResult, codec, schemas};

use super::MemberContext;
use super::alerts::{self, AlertChange};
use super::dead_letters::overflowed_contest;
use super::rebuild::{PartitionState, PublishedKey};
use super::receive::{PartitionDeadLetter, Received};
use crate::contest_cells::{ContestCells, ContestKey};
use crate::rollup::{result_key, roll_up};

/// At most this many contest ids are named on a `rollup.apply` span.
const MAX_CONTEST_IDS_ON_SPAN: usize = 32;

/// A result produced in this batch.
pub(super) struct SentResult {
    pub partition: i32,
    /// Its topic (test or not) and key.
    pub key: PublishedKey,
    pub result: ContestResult,
    /// Its newest cell's fetch time (ms since the epoch).
    pub newest_fetch_ms: i64,
}

/// A changed result and its encoded bytes, ready to produce.
pub(super) struct EncodedResult {
    pub sent: SentResult,
    pub bytes: Vec<u8>,
}

/// What the produce phase ended with.
pub(super) struct Delivered {
    /// The results whose delivery was acknowledged.
    pub landed: Vec<SentResult>,
    /// Partitions with a result, a dead letter or an alert that did not
    /// land: not committed this batch, and rolled up again.
    pub failed_partitions: HashSet<i32>,
    /// The alert records that landed.
    pub alerts_landed: Vec<AlertChange>,
}

/// Rolls up every dirty contest of every caught-up partition (in contest
/// order, so a run's output is reproducible) and keeps the results that
/// differ from what this member last published. A contest whose sums
/// overflow becomes a dead letter and keeps its last published results.
pub(super) fn changed_results(
    parts: &mut FxHashMap<i32, PartitionState>,
    ctx: &MemberContext<'_>,
    batch: &mut Received,
    batch_span: Option<&Context>,
) -> Vec<EncodedResult> {
    let span = batch_span.map(|b| child_span(b, "rollup.apply", SpanKind::Internal, Vec::new()));
    let report = &mut batch.report;
    let mut changed = Vec::new();
    let mut contest_ids: Vec<StringValue> = Vec::new();
    for (p, state) in parts.iter_mut() {
        if state.rebuild.is_some() || state.dirty.is_empty() {
            continue;
        }
        let mut dirty: Vec<&(ContestKey, ContestCells)> = state
            .dirty
            .drain()
            .filter_map(|fp| state.contests.get(&fp))
            .collect();
        dirty.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, cells) in dirty {
            report.contests_rolled_up += 1;
            if span.is_some() && contest_ids.len() < MAX_CONTEST_IDS_ON_SPAN {
                contest_ids.push(key.contest_id.clone().into());
            }
            let results = match roll_up(key, cells) {
                Ok(results) => results,
                Err(overflow) => {
                    report.contests_overflowed += 1;
                    tracing::error!("aggregator {}: {overflow}", ctx.cfg.instance);
                    let feeds: BTreeSet<&str> = cells
                        .iter()
                        .map(|(_, c)| &*c.header.provenance.feed_id)
                        .collect();
                    let feed_id = feeds.into_iter().collect::<Vec<_>>().join(",");
                    batch.dead_letters.push(PartitionDeadLetter {
                        partition: *p,
                        letter: overflowed_contest(&ctx.topics.votes, key, &feed_id, &overflow),
                    });
                    continue;
                }
            };
            for result in results {
                let rk = PublishedKey {
                    test: key.test,
                    key: result_key(&result),
                };
                if !key.test {
                    batch.alert_changes.extend(alerts::changes(
                        *p,
                        &rk.key,
                        &result,
                        state.alerts.get(&rk.key),
                        ctx.cfg.disagreement,
                    ));
                }
                if state.published.get(&rk) == Some(&result) {
                    report.results_unchanged += 1;
                    continue;
                }
                match codec::encode(&schemas().contest_result, &result) {
                    Ok(bytes) => changed.push(EncodedResult {
                        sent: SentResult {
                            partition: *p,
                            key: rk,
                            newest_fetch_ms: result.last_updated,
                            result,
                        },
                        bytes,
                    }),
                    Err(e) => {
                        tracing::error!(
                            "aggregator {}: encoding result {}: {e}",
                            ctx.cfg.instance,
                            rk.key
                        );
                    }
                }
            }
        }
    }
    if let Some(span) = &span {
        let s = span.span();
        s.set_attribute(KeyValue::new(
            "votewire.contest_id",
            opentelemetry::Value::Array(contest_ids.into()),
        ));
        s.set_attribute(KeyValue::new(
            "votewire.contests_rolled_up",
            report.contests_rolled_up as i64,
        ));
        s.set_attribute(KeyValue::new(
            "votewire.results_changed",
            changed.len() as i64,
        ));
        end_span(span, None);
    }
    changed
}

/// Produces what changed and the batch's dead letters, and waits for every
/// ack. At most `max_in_flight` results are in flight; past that the
/// oldest is awaited before another is sent (consumption is paused all
/// the while: nothing is polled until the batch has landed). Dead letters
/// are keyed by their place on the votes topic (a rebuild dead-letters
/// them again under the same key), and their partition is committed only
/// once they are acknowledged.
pub(super) async fn produce(
    producer: &FutureProducer<KafkaClientContext>,
    ctx: &MemberContext<'_>,
    changed: Vec<EncodedResult>,
    dead_letters: Vec<PartitionDeadLetter>,
    alert_changes: Vec<AlertChange>,
    batch_span: Option<&Context>,
) -> Delivered {
    let topics = ctx.topics;
    let span = batch_span.map(|b| {
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
    let mut in_flight: VecDeque<(Option<DeliveryFuture>, SentResult)> = VecDeque::new();
    let mut delivered = Delivered {
        landed: Vec::new(),
        failed_partitions: HashSet::new(),
        alerts_landed: Vec::new(),
    };
    for EncodedResult { sent, bytes } in changed {
        let delivery = send_result(producer, ctx, &sent, &bytes).await;
        in_flight.push_back((delivery, sent));
        if in_flight.len() >= ctx.cfg.max_in_flight
            && let Some((d, sent)) = in_flight.pop_front()
        {
            settle(d, sent, &mut delivered, &ctx.cfg.instance).await;
        }
    }
    let mut dlq_deliveries = Vec::new();
    for PartitionDeadLetter { partition, letter } in dead_letters {
        let key = letter.archive_ref.clone().unwrap_or_default();
        let sent = codec::encode(&schemas().dead_letter, &letter)
            .ok()
            .and_then(|bytes| {
                producer
                    .send_result(FutureRecord::to(&topics.dlq).key(&key).payload(&bytes))
                    .ok()
            });
        dlq_deliveries.push((partition, sent));
    }
    for (p, sent) in dlq_deliveries {
        let landed = match sent {
            Some(d) => matches!(d.await, Ok(Ok(_))),
            None => false,
        };
        if !landed {
            tracing::error!(
                "aggregator {}: a dead letter for partition {p} did not land",
                ctx.cfg.instance
            );
            delivered.failed_partitions.insert(p);
        }
    }
    send_alerts(producer, ctx, alert_changes, &mut delivered).await;
    while let Some((d, sent)) = in_flight.pop_front() {
        settle(d, sent, &mut delivered, &ctx.cfg.instance).await;
    }
    if let Some(span) = &span {
        let failed = &delivered.failed_partitions;
        let why = (!failed.is_empty()).then(|| {
            format!("deliveries failed on partition(s) {failed:?}; they are rolled up again")
        });
        end_span(span, why.as_deref());
    }
    delivered
}

/// Sends one result (its trace id as a header), waiting while the
/// producer's queue is full; `None` when the send itself failed.
async fn send_result(
    producer: &FutureProducer<KafkaClientContext>,
    ctx: &MemberContext<'_>,
    sent: &SentResult,
    bytes: &[u8],
) -> Option<DeliveryFuture> {
    let rk = &sent.key.key;
    let topic = if sent.key.test {
        &ctx.topics.results_test
    } else {
        &ctx.topics.results
    };
    let mut record = FutureRecord::to(topic).key(rk).payload(bytes);
    if let Some(t) = sent.result.trace_id.as_deref() {
        record = record.headers(OwnedHeaders::new().insert(Header {
            key: "trace_id",
            value: Some(t),
        }));
    }
    loop {
        match producer.send_result(record) {
            Ok(d) => return Some(d),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => {
                tracing::warn!("aggregator {}: producing {rk}: {e}", ctx.cfg.instance);
                return None;
            }
        }
    }
}

/// Produces the alert upserts and tombstones and waits for their acks, at
/// most `max_in_flight` at a time, waiting while the producer's queue is
/// full; a partition with one that did not land is not committed this
/// batch.
async fn send_alerts(
    producer: &FutureProducer<KafkaClientContext>,
    ctx: &MemberContext<'_>,
    changes: Vec<AlertChange>,
    delivered: &mut Delivered,
) {
    let mut in_flight: VecDeque<(AlertChange, Option<DeliveryFuture>)> = VecDeque::new();
    for change in changes {
        let bytes = match &change.alert {
            Some(a) => match codec::encode(&schemas().source_disagreement, a) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(
                        "aggregator {}: encoding alert {}: {e}",
                        ctx.cfg.instance,
                        change.key
                    );
                    continue;
                }
            },
            None => None,
        };
        let sent = send_alert(producer, ctx, &change.key, bytes.as_deref()).await;
        in_flight.push_back((change, sent));
        if in_flight.len() >= ctx.cfg.max_in_flight
            && let Some((change, sent)) = in_flight.pop_front()
        {
            settle_alert(change, sent, delivered, &ctx.cfg.instance).await;
        }
    }
    while let Some((change, sent)) = in_flight.pop_front() {
        settle_alert(change, sent, delivered, &ctx.cfg.instance).await;
    }
}

/// Sends one alert record (`None`: a tombstone), waiting while the
/// producer's queue is full; `None` when the send itself failed.
async fn send_alert(
    producer: &FutureProducer<KafkaClientContext>,
    ctx: &MemberContext<'_>,
    key: &str,
    bytes: Option<&[u8]>,
) -> Option<DeliveryFuture> {
    let mut record = FutureRecord::<str, [u8]>::to(&ctx.topics.alerts).key(key);
    if let Some(b) = bytes {
        record = record.payload(b);
    }
    loop {
        match producer.send_result(record) {
            Ok(d) => return Some(d),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => {
                tracing::warn!(
                    "aggregator {}: producing alert {key}: {e}",
                    ctx.cfg.instance
                );
                return None;
            }
        }
    }
}

/// Waits for one alert's delivery report.
async fn settle_alert(
    change: AlertChange,
    sent: Option<DeliveryFuture>,
    delivered: &mut Delivered,
    instance: &str,
) {
    let landed = match sent {
        Some(d) => matches!(d.await, Ok(Ok(_))),
        None => false,
    };
    if landed {
        delivered.alerts_landed.push(change);
    } else {
        tracing::warn!("aggregator {instance}: alert {} did not land", change.key);
        delivered.failed_partitions.insert(change.partition);
    }
}

/// Waits for one result's delivery report: landed, or its partition is
/// not committed this batch.
async fn settle(
    delivery: Option<DeliveryFuture>,
    sent: SentResult,
    delivered: &mut Delivered,
    instance: &str,
) {
    let outcome = match delivery {
        Some(d) => d.await,
        None => {
            delivered.failed_partitions.insert(sent.partition);
            return;
        }
    };
    match outcome {
        Ok(Ok(_)) => delivered.landed.push(sent),
        Ok(Err((e, _))) => {
            tracing::warn!("aggregator {instance}: delivering {}: {e}", sent.key.key);
            delivered.failed_partitions.insert(sent.partition);
        }
        Err(_) => {
            delivered.failed_partitions.insert(sent.partition);
        }
    }
}
