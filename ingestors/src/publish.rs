//! Publishing one payload's cells with no loss and no gap.
//!
//! For an accepted payload, [`Publisher::publish_accepted`]:
//!
//! 1. diffs the payload's cells against what this process last published for
//!    the feed ([`PublishedCells`]) and keeps only the changed ones (a full
//!    snapshot is re-parsed every time, but Kafka only sees changes);
//! 2. produces every changed cell and **waits for every delivery report**;
//! 3. produces the `SnapshotManifest`;
//! 4. only then records the new values as published.
//!
//! The caller commits the cursor to the state store (fenced) after this
//! returns `Ok`. A delivery failure returns an error before the manifest, the
//! in-memory record is unchanged, and the cursor must not advance; the next
//! fetch republishes, which is harmless because cells are keyed upserts.
//! After a restart the memory is empty, so everything is republished once, by
//! design.
//!
//! A rejected payload produces a `DeadLetter` and a rejected manifest, and
//! touches nothing else: earlier cells stand.
//!
//! Records are keyed by cell key, partitioned explicitly by
//! `xxh3(election, contest) % partitions` so a whole contest lands in one
//! partition, and carry `feed_id`, `fetch_id`, `source_version`,
//! `payload_sha256`, `schema_id`, and the W3C `traceparent` (plus
//! `tracestate` when there is vendor state) of the `kafka.produce` span
//! that sent them.
//!
//! # A stuck producer is replaced
//!
//! An idempotent producer carries a producer id and sequence numbers the
//! broker must remember. A broker that lost them (a Kafka cluster restored
//! from backup, or a young Kafka-protocol broker after a restart) fails every later
//! delivery of that producer, while a new producer is served. With
//! [`ProducerRenewal`], after [`ProducerRenewal::AFTER_FAILED_PAYLOADS`]
//! payloads in a row failed in full, the publisher builds a new producer
//! from the same configuration and uses it from the next payload on. Cells
//! are keyed upserts, so what the old producer may still deliver late is
//! harmless; the cursor still advances only after a full acknowledgement.
//!
//! # Spans
//!
//! Under the payload's `feed.fetch` span ([`FetchFacts::trace`]):
//! `feed.diff` (the changed-cell count) and one `kafka.produce` per topic
//! written, with the `messaging.*` attributes of the semantic conventions.

use std::time::Duration;

use futures::future::join_all;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use votewire_core::config::TopicsConfig;
use votewire_core::kafka::KafkaClientContext;
use votewire_core::trace_context::{self, child_span, end_span};
use votewire_schemas::codec::{self, CodecError};
use votewire_schemas::{
    CellKey, DeadLetter, FeedStatus, SchemaSet, SnapshotManifest, SnapshotStatus,
};
use votewire_transformers::TransformError;
use votewire_transformers::cells::{CellRow, CellTable};
use votewire_transformers::error::bounded_to;

/// The most bytes one text field of a dead letter or a rejected manifest
/// carries (a source URI with a long query string, an error message).
const MAX_DEAD_LETTER_FIELD_BYTES: usize = 2048;

/// A 64-bit fingerprint (xxh3) of everything a cell's published value is
/// compared on: votes, precincts reporting and total, expected-vote share,
/// winner. Memory per remembered cell is 24 bytes instead of 64, which is
/// what lets one process remember a thousand feeds; two different values
/// share a fingerprint with probability 2^-64 per change.
fn value_of(r: &CellRow) -> u64 {
    let mut buf = [0u8; 30];
    buf[..8].copy_from_slice(&r.votes.to_le_bytes());
    let mut put = |at: usize, v: Option<i32>| {
        if let Some(v) = v {
            buf[at] = 1;
            buf[at + 1..at + 5].copy_from_slice(&v.to_le_bytes());
        }
    };
    put(8, r.precincts_reporting);
    put(13, r.precincts_total);
    if let Some(p) = r.pct_expected_vote {
        buf[18] = 1;
        buf[19..27].copy_from_slice(&p.to_bits().to_le_bytes());
    }
    buf[27] = match r.winner {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    xxhash_rust::xxh3::xxh3_64(&buf)
}

/// A cell key as two words: 8-byte alignment keeps map entries at 24 bytes.
fn words(k: &CellKey) -> (u64, u64) {
    ((k.0 >> 64) as u64, k.0 as u64)
}

/// What this process last published, per cell key, for one feed.
#[derive(Debug, Default)]
pub struct PublishedCells {
    values: rustc_hash::FxHashMap<(u64, u64), u64>,
}

impl PublishedCells {
    /// How many cell keys are remembered as published.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is remembered yet (a feed's first payload, or after a restart).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Indices of the rows of `table` whose value differs from what was
    /// published (or that were never published), with their keys.
    pub fn changed(&self, table: &CellTable) -> Vec<(usize, CellKey)> {
        (0..table.len())
            .filter_map(|i| {
                let key = table.cell_key(i);
                let v = value_of(&table.rows()[i]);
                (self.values.get(&words(&key)) != Some(&v)).then_some((i, key))
            })
            .collect()
    }
}

/// Facts about one fetch, for the manifest and the headers.
#[derive(Debug, Clone)]
pub struct FetchFacts {
    /// The feed fetched.
    pub feed_id: String,
    /// The feed's election.
    pub election_id: String,
    /// This fetch's id (`<feed_id>:<source_seq>:<ms>` on a live feed), sent as every
    /// record's `fetch_id` header.
    pub fetch_id: String,
    /// The transformer family that read the payload, e.g. `clarity-xml`.
    pub family: String,
    /// The URL or SFTP path (`sftp://user@host:port/path`) fetched.
    pub source_uri: String,
    /// The publisher's version (Clarity `current_ver.txt`), when known; sent as the
    /// `source_version` header.
    pub source_version: Option<String>,
    /// Hex sha256 of the payload bytes, sent as the `payload_sha256` header.
    pub payload_sha256: String,
    /// The payload's size in bytes.
    pub payload_bytes: i64,
    /// Where the raw payload is archived (`file://` or `s3://`); `None` when it is not
    /// archived.
    pub archive_ref: Option<String>,
    /// When the bytes were in hand (ms since the epoch, UTC).
    pub fetched_at: i64,
    /// The payload's `feed.fetch` span: the diff and produce spans open
    /// under it, and every record's `traceparent` names its produce span.
    pub trace: opentelemetry::Context,
    /// Live, publisher-test or replayed data, as the feed declares.
    pub mode: votewire_schemas::FeedMode,
    /// The feed's `[feed.results]`: stamped on every cell, and a linked
    /// contest is partitioned by its shared id.
    pub result_links: Option<std::sync::Arc<crate::result_links::ResultLinker>>,
}

impl FetchFacts {
    /// The payload's trace id (32 hex digits), when it has a trace.
    pub fn trace_id(&self) -> Option<String> {
        use opentelemetry::trace::TraceContextExt;
        self.trace
            .span()
            .span_context()
            .is_valid()
            .then(|| trace_context::trace_id_of(&self.trace))
    }

    /// The facts of a payload the transformer saw as `ctx`, fetched by a
    /// feed of `family`, `payload_bytes` long (no archive reference or
    /// trace context yet).
    pub fn for_payload(
        ctx: &votewire_transformers::PayloadContext,
        family: &str,
        payload_bytes: usize,
    ) -> FetchFacts {
        FetchFacts {
            feed_id: ctx.feed_id.clone(),
            election_id: ctx.election_id.clone(),
            fetch_id: ctx.fetch_id.clone(),
            family: family.to_string(),
            source_uri: ctx.source_uri.clone(),
            source_version: ctx.source_version.clone(),
            payload_sha256: ctx.payload_sha256.clone(),
            payload_bytes: i64::try_from(payload_bytes).unwrap_or(i64::MAX),
            archive_ref: None,
            fetched_at: ctx.fetched_at,
            trace: opentelemetry::Context::new(),
            mode: ctx.mode,
            result_links: None,
        }
    }
}

/// What publishing an accepted payload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Cells in the payload.
    pub cells_total: usize,
    /// Of those, cells that differed from what was last published and were produced.
    pub cells_changed: usize,
}

/// Publishing failed; the cursor must not advance.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A record did not encode against its schema: a bug, not retryable.
    #[error("encoding {what}: {source}")]
    Encode {
        /// The record being encoded (`SnapshotManifest`, `DeadLetter` or `FeedStatus`).
        what: &'static str,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// Kafka did not acknowledge some records sent to one topic; retryable (the next fetch
    /// republishes).
    #[error(
        "delivery to {topic} failed for {failed} of {total} records (first: {first}); the cursor must not advance"
    )]
    Delivery {
        /// The topic written.
        topic: String,
        /// Records whose delivery failed.
        failed: usize,
        /// Records sent to the topic.
        total: usize,
        /// The first delivery error, as rdkafka words it.
        first: String,
    },
}

impl PublishError {
    /// Delivery failures are worth retrying (the next fetch republishes);
    /// an encoding failure is a bug.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PublishError::Delivery { .. })
    }
}

/// Produces a feed's records.
pub struct Publisher {
    /// The Kafka producer records are sent with, until `renewal` replaces it.
    pub producer: FutureProducer<KafkaClientContext>,
    /// The topics written: votes, snapshots, feed status and dead letters.
    pub topics: TopicsConfig,
    /// The Avro schemas (with their registry ids) records are encoded with and stamped
    /// with.
    pub schemas: SchemaSet,
    /// Partitions of the votes topic (the declared count).
    pub vote_partitions: i32,
    /// How long a send retries while librdkafka's queue is full (rdkafka's
    /// `queue_timeout`); once queued, delivery is bounded by the producer's
    /// `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
    /// How to replace a stuck producer (module doc); `None` keeps
    /// `producer` for good.
    pub renewal: Option<ProducerRenewal>,
}

/// A replacement producer, built from the first one's configuration once
/// payloads keep failing in full.
pub struct ProducerRenewal {
    config: rdkafka::ClientConfig,
    current: std::sync::RwLock<Option<FutureProducer<KafkaClientContext>>>,
    failed_in_a_row: std::sync::atomic::AtomicU32,
    renewals: std::sync::atomic::AtomicU32,
}

impl ProducerRenewal {
    /// Payloads failed in full, one after another, before a new producer.
    pub const AFTER_FAILED_PAYLOADS: u32 = 3;

    /// A renewal that builds replacement producers from `config`, the first producer's
    /// settings; nothing is built until payloads fail in full.
    pub fn new(config: rdkafka::ClientConfig) -> ProducerRenewal {
        ProducerRenewal {
            config,
            current: std::sync::RwLock::new(None),
            failed_in_a_row: Default::default(),
            renewals: Default::default(),
        }
    }

    /// How many times the producer was replaced.
    pub fn renewals(&self) -> u32 {
        self.renewals.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a payload's outcome; builds a new producer after enough
    /// full failures in a row.
    fn record(&self, failed_in_full: bool) {
        use std::sync::atomic::Ordering;
        if !failed_in_full {
            self.failed_in_a_row.store(0, Ordering::Relaxed);
            return;
        }
        let n = self.failed_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if n < Self::AFTER_FAILED_PAYLOADS {
            return;
        }
        match self
            .config
            .create_with_context::<_, FutureProducer<KafkaClientContext>>(
                KafkaClientContext::default(),
            ) {
            Ok(fresh) => {
                *self.current.write().expect("producer lock") = Some(fresh);
                self.failed_in_a_row.store(0, Ordering::Relaxed);
                let total = self.renewals.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    "{n} payloads in a row failed in full; a new Kafka producer takes over (renewal {total})"
                );
            }
            Err(e) => tracing::error!("building a new Kafka producer: {e}"),
        }
    }
}

/// A cell key as its 32 lower-case hex digits, without allocating.
fn hex_key(key: &CellKey) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in key.0.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// The partition of a contest: `xxh3(election, contest) % partitions`.
pub fn contest_partition(election_id: &str, contest_source_id: &str, partitions: i32) -> i32 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(election_id.as_bytes());
    h.update(&[0x1f]);
    h.update(contest_source_id.as_bytes());
    (h.digest() % partitions.max(1) as u64) as i32
}

impl Publisher {
    fn headers(&self, f: &FetchFacts, produce: &Context, schema_id: u32) -> OwnedHeaders {
        let schema_id = schema_id.to_string();
        let mut h = OwnedHeaders::new()
            .insert(Header {
                key: "feed_id",
                value: Some(f.feed_id.as_str()),
            })
            .insert(Header {
                key: "fetch_id",
                value: Some(f.fetch_id.as_str()),
            })
            .insert(Header {
                key: "payload_sha256",
                value: Some(f.payload_sha256.as_str()),
            })
            .insert(Header {
                key: "schema_id",
                value: Some(schema_id.as_str()),
            });
        if let Some(v) = &f.source_version {
            h = h.insert(Header {
                key: "source_version",
                value: Some(v.as_str()),
            });
        }
        if produce.span().span_context().is_valid() {
            let w3c = trace_context::w3c_headers(produce);
            h = h.insert(Header {
                key: "traceparent",
                value: Some(w3c.traceparent.as_str()),
            });
            if let Some(state) = &w3c.tracestate {
                h = h.insert(Header {
                    key: "tracestate",
                    value: Some(state.as_str()),
                });
            }
        }
        h
    }

    /// Sends one payload's `records` to `topic` under a `kafka.produce`
    /// span (a child of the payload's `feed.fetch`) whose context every
    /// record carries, and waits for every delivery report.
    async fn send_traced<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        facts: &FetchFacts,
        topic: &str,
        schema_id: u32,
        records: &[(Option<i32>, K, V)],
    ) -> Result<(), PublishError> {
        let span = child_span(
            &facts.trace,
            "kafka.produce",
            SpanKind::Producer,
            vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.operation.name", "send"),
                KeyValue::new("messaging.destination.name", topic.to_string()),
                KeyValue::new(
                    "messaging.batch.message_count",
                    i64::try_from(records.len()).unwrap_or(i64::MAX),
                ),
                KeyValue::new("votewire.feed_id", facts.feed_id.clone()),
            ],
        );
        let headers = self.headers(facts, &span, schema_id);
        let started = std::time::Instant::now();
        let sent = self.send_all(topic, records, &headers).await;
        crate::feed_metrics::record_produce(topic, started.elapsed());
        end_span(
            &span,
            sent.as_ref().err().map(ToString::to_string).as_deref(),
        );
        sent
    }

    /// Sends `records`, each with `headers`, and waits for every delivery
    /// report.
    async fn send_all<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        topic: &str,
        records: &[(Option<i32>, K, V)],
        headers: &OwnedHeaders,
    ) -> Result<(), PublishError> {
        let total = records.len();
        let producer = self
            .renewal
            .as_ref()
            .and_then(|r| r.current.read().expect("producer lock").clone())
            .unwrap_or_else(|| self.producer.clone());
        let futures = records.iter().map(|(partition, key, value)| {
            let mut rec = FutureRecord::to(topic)
                .key(key.as_ref())
                .payload(value.as_ref())
                .headers(headers.clone());
            if let Some(p) = partition {
                rec = rec.partition(*p);
            }
            producer.send(rec, self.delivery_timeout)
        });
        let results = join_all(futures).await;
        let failures: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|(e, _)| e.to_string()))
            .collect();
        if let Some(r) = &self.renewal
            && total > 0
        {
            r.record(failures.len() == total);
        }
        if let Some(first) = failures.first() {
            return Err(PublishError::Delivery {
                topic: topic.to_string(),
                failed: failures.len(),
                total,
                first: first.clone(),
            });
        }
        Ok(())
    }

    fn manifest(
        &self,
        f: &FetchFacts,
        status: SnapshotStatus,
        source_seq: Option<i64>,
    ) -> SnapshotManifest {
        SnapshotManifest {
            feed_id: f.feed_id.clone(),
            election_id: f.election_id.clone(),
            mode: f.mode,
            fetch_id: f.fetch_id.clone(),
            status,
            source_seq,
            source_uri: f.source_uri.clone(),
            source_version: f.source_version.clone(),
            payload_sha256: f.payload_sha256.clone(),
            payload_bytes: f.payload_bytes,
            archive_ref: f.archive_ref.clone(),
            family: f.family.clone(),
            cells_total: 0,
            cells_changed: 0,
            error_class: None,
            error_location: None,
            error_message: None,
            as_of: None,
            as_of_raw: None,
            fetched_at: f.fetched_at,
            trace_id: f.trace_id(),
        }
    }

    /// Steps 1 to 4 of the module doc for an accepted payload.
    pub async fn publish_accepted(
        &self,
        table: &CellTable,
        published: &mut PublishedCells,
        facts: &FetchFacts,
    ) -> Result<Published, PublishError> {
        let diff = child_span(
            &facts.trace,
            "feed.diff",
            SpanKind::Internal,
            vec![KeyValue::new("votewire.feed_id", facts.feed_id.clone())],
        );
        let changed = published.changed(table);
        diff.span().set_attribute(KeyValue::new(
            "votewire.cells_changed",
            i64::try_from(changed.len()).unwrap_or(i64::MAX),
        ));
        diff.span().set_attribute(KeyValue::new(
            "votewire.cells_total",
            i64::try_from(table.len()).unwrap_or(i64::MAX),
        ));
        end_span(&diff, None);
        let vote_schema = &self.schemas.vote_cell;
        // A contest's partition, computed once per contest, not per cell.
        let mut partition_of: Vec<Option<i32>> = Vec::new();
        // Links per (contest, unit, choice), shared by its vote types.
        let mut links_of: rustc_hash::FxHashMap<
            (u32, u32, u32),
            std::sync::Arc<votewire_schemas::ResultLinks>,
        > = rustc_hash::FxHashMap::default();
        // Every value is encoded into one buffer (one allocation, not one
        // per cell); records point into it.
        let mut arena: Vec<u8> = Vec::with_capacity(changed.len() * 300);
        let encoded: Vec<(Option<i32>, [u8; 32], std::ops::Range<usize>)> = changed
            .iter()
            .map(|(i, key)| {
                let mut cell = table.cell(*i);
                if let Some(linker) = &facts.result_links {
                    let r = &table.rows()[*i];
                    let slot = (r.contest, r.unit, r.choice);
                    let links = links_of
                        .entry(slot)
                        .or_insert_with(|| linker.links(&cell.contest, &cell.unit, &cell.choice));
                    cell.links = Some(links.clone());
                }
                let start = arena.len();
                let hex = hex_key(key);
                let hex_str = std::str::from_utf8(&hex).expect("hex digits are ASCII");
                codec::encode_vote_cell_keyed(&cell, hex_str, vote_schema.id, &mut arena);
                let c = table.rows()[*i].contest as usize;
                if partition_of.len() <= c {
                    partition_of.resize(c + 1, None);
                }
                let partition = *partition_of[c].get_or_insert_with(|| {
                    let contest = match &facts.result_links {
                        Some(linker) => linker.partition_contest(&cell.contest.source_id),
                        None => &cell.contest.source_id,
                    };
                    contest_partition(&cell.header.election_id, contest, self.vote_partitions)
                });
                (Some(partition), hex, start..arena.len())
            })
            .collect();
        let records: Vec<(Option<i32>, [u8; 32], &[u8])> = encoded
            .into_iter()
            .map(|(p, k, r)| (p, k, &arena[r]))
            .collect();
        self.send_traced(facts, &self.topics.votes, vote_schema.id, &records)
            .await?;

        let header = table.header();
        let mut manifest = self.manifest(facts, SnapshotStatus::Accepted, Some(header.source_seq));
        manifest.cells_total = table.len() as i32;
        manifest.cells_changed = changed.len() as i32;
        manifest.as_of = header.as_of;
        manifest.as_of_raw = header.as_of_raw.as_deref().map(str::to_string);
        let bytes =
            codec::encode(&self.schemas.snapshot_manifest, &manifest).map_err(|source| {
                PublishError::Encode {
                    what: "SnapshotManifest",
                    source,
                }
            })?;
        self.send_traced(
            facts,
            &self.topics.snapshots,
            self.schemas.snapshot_manifest.id,
            &[(None, facts.feed_id.clone(), bytes)],
        )
        .await?;

        for (i, key) in &changed {
            published
                .values
                .insert(words(key), value_of(&table.rows()[*i]));
        }
        Ok(Published {
            cells_total: table.len(),
            cells_changed: changed.len(),
        })
    }

    /// A rejected payload: a `DeadLetter` and a rejected manifest; nothing
    /// else changes.
    pub async fn publish_rejected(
        &self,
        err: &TransformError,
        facts: &FetchFacts,
    ) -> Result<(), PublishError> {
        let bounded = |s: &str| bounded_to(s.to_string(), MAX_DEAD_LETTER_FIELD_BYTES);
        let dead = dead_letter(err, facts);
        let bytes = codec::encode(&self.schemas.dead_letter, &dead).map_err(|source| {
            PublishError::Encode {
                what: "DeadLetter",
                source,
            }
        })?;
        self.send_traced(
            facts,
            &self.topics.dlq,
            self.schemas.dead_letter.id,
            &[(None, facts.feed_id.clone(), bytes)],
        )
        .await?;
        let mut manifest = self.manifest(facts, SnapshotStatus::Rejected, None);
        manifest.error_class = Some(err.class.as_str().to_string());
        manifest.error_location = Some(bounded(&err.location.to_string()));
        manifest.error_message = Some(bounded(&err.message));
        let bytes =
            codec::encode(&self.schemas.snapshot_manifest, &manifest).map_err(|source| {
                PublishError::Encode {
                    what: "SnapshotManifest",
                    source,
                }
            })?;
        self.send_traced(
            facts,
            &self.topics.snapshots,
            self.schemas.snapshot_manifest.id,
            &[(None, facts.feed_id.clone(), bytes)],
        )
        .await
    }

    /// A health transition, on the compacted feed-status topic keyed by
    /// feed: the latest record per feed is its current health.
    pub async fn publish_status(&self, status: &FeedStatus) -> Result<(), PublishError> {
        let bytes = codec::encode(&self.schemas.feed_status, status).map_err(|source| {
            PublishError::Encode {
                what: "FeedStatus",
                source,
            }
        })?;
        let schema_id = self.schemas.feed_status.id.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "feed_id",
                value: Some(status.feed_id.as_str()),
            })
            .insert(Header {
                key: "schema_id",
                value: Some(schema_id.as_str()),
            });
        self.send_all(
            &self.topics.feed_status,
            &[(None, status.feed_id.clone(), bytes)],
            &headers,
        )
        .await
    }
}

/// The dead letter for a rejected payload. Every text field is bounded, so
/// that a dead letter always fits a record whatever the payload or its
/// source quoted.
fn dead_letter(err: &TransformError, facts: &FetchFacts) -> DeadLetter {
    let bounded = |s: &str| bounded_to(s.to_string(), MAX_DEAD_LETTER_FIELD_BYTES);
    DeadLetter {
        feed_id: bounded(&facts.feed_id),
        election_id: bounded(&facts.election_id),
        fetch_id: bounded(&facts.fetch_id),
        family: bounded(&facts.family),
        source_uri: bounded(&facts.source_uri),
        payload_sha256: facts.payload_sha256.clone(),
        payload_bytes: facts.payload_bytes,
        archive_ref: facts.archive_ref.clone(),
        error_class: err.class,
        error_location: Some(bounded(&err.location.to_string())),
        error_message: bounded(&err.message),
        retryable: err.is_retryable(),
        fetched_at: facts.fetched_at,
        trace_id: facts.trace_id(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dead_letter_fits_a_record_whatever_the_payload_and_its_source_quoted() {
        use votewire_transformers::{ErrorClass, Location, TransformError};
        let huge = "9".repeat(32 << 20);
        let err = TransformError {
            family: "csv",
            feed_id: "csv:x".into(),
            class: ErrorClass::SchemaViolation,
            location: Location::Path(format!("/contest[{huge}]")),
            message: format!("votes = {huge:?} is not a number"),
        };
        let facts = super::FetchFacts {
            feed_id: "csv:x".into(),
            election_id: "e".repeat(1 << 20),
            fetch_id: "f".into(),
            family: "csv".into(),
            source_uri: format!("https://results.example.org/{}", "a".repeat(1 << 20)),
            source_version: None,
            payload_sha256: "ab".repeat(32),
            payload_bytes: 32 << 20,
            archive_ref: None,
            fetched_at: 0,
            trace: opentelemetry::Context::new(),
            mode: votewire_schemas::FeedMode::Live,
            result_links: None,
        };
        let dead = super::dead_letter(&err, &facts);
        let bytes =
            votewire_schemas::codec::encode(&votewire_schemas::schemas().dead_letter, &dead)
                .unwrap();
        assert!(bytes.len() < 16 * 1024, "{} bytes", bytes.len());
        // Still says what and where.
        assert!(
            dead.error_message.starts_with("votes = \"999"),
            "{}",
            &dead.error_message[..40]
        );
        assert!(dead.source_uri.starts_with("https://results.example.org/"));
    }

    #[test]
    fn hex_keys_match_the_schema_crates_rendering() {
        for k in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ] {
            let key = votewire_schemas::CellKey(k);
            assert_eq!(super::hex_key(&key).as_slice(), key.to_hex().as_bytes());
        }
    }
}
