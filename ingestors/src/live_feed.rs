//! One feed, one poll step at a time, whatever its source: fetch, transform,
//! publish, fenced cursor commit, health. This is the step a feed loop
//! ([`crate::cadence::run_feed_loop`]) runs.
//!
//! How a source is fetched and what its cursor holds is its kind's
//! ([`crate::sources`]): the step drives the feed's [`Poller`] and knows
//! no kind.
//!
//! The order within a step is the commit protocol: every changed cell is
//! acknowledged and the manifest written before the cursor moves, so a
//! crash anywhere republishes and never skips. A rejected payload leaves the
//! cursor's content position, the change memory and the published cells as
//! they were; an identical rejected payload is not dead-lettered twice.

use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use votewire_core::trace_context::{self, child_span, end_span, root_span};
use votewire_schemas::FeedHealth;
use votewire_transformers::PayloadContext;

use crate::archive::ArchiveError;
use crate::cadence::StepOutcome;
use crate::conditional::host_of;
use crate::feed_spec::FeedSpec;
use crate::feed_tools::FeedTools;
use crate::health::{HealthMachine, Observation, Transition};
use crate::publish::{FetchFacts, PublishError, Published, PublishedCells, Publisher};
use crate::sources::{Payload, Polled, Poller, SourceError};
use crate::state::{FeedCursor, FeedStateStore, HealthEvent, Lease, StateError};
use crate::transform_run::{NoTransformSlot, TransformJob, run_transform};

mod overruns;
mod truncated;

pub use overruns::MAX_OVERRUNS;
use overruns::Overruns;
pub use truncated::MAX_TRUNCATED_FOLLOWS;
use truncated::TruncatedFollows;

/// A step that could not finish. The cursor did not move.
#[derive(Debug, thiserror::Error)]
pub enum FeedStepError {
    /// Polling the source failed; retryable as its [`SourceError`] says.
    #[error("feed {feed_id}: polling the source: {source}")]
    Fetch {
        /// The feed whose step failed.
        feed_id: String,
        /// Why the poll failed.
        #[source]
        source: SourceError,
    },
    /// Producing records or a status to Kafka failed; retryable as its [`PublishError`]
    /// says.
    #[error("feed {feed_id}: publishing: {source}")]
    Publish {
        /// The feed whose step failed.
        feed_id: String,
        /// Why publishing failed.
        #[source]
        source: PublishError,
    },
    /// The state store failed or the lease was lost; retryable as its [`StateError`] says
    /// (the feed task backs off either way, and a lost lease is settled by the next lease
    /// round).
    #[error("feed {feed_id}: state store: {source}")]
    State {
        /// The feed whose step failed.
        feed_id: String,
        /// What the state store reported.
        #[source]
        source: StateError,
    },
    /// Storing the raw payload in the archive (local disk or S3) failed; retryable.
    #[error("feed {feed_id}: {source}")]
    Archive {
        /// The feed whose step failed.
        feed_id: String,
        /// Why archiving failed.
        #[source]
        source: ArchiveError,
    },
    /// No transform slot came free in time; retryable, and an SFTP file goes back to the
    /// front of its queue.
    #[error("feed {feed_id}: {source}")]
    Transform {
        /// The feed whose step failed.
        feed_id: String,
        /// How long the step waited for a slot.
        #[source]
        source: NoTransformSlot,
    },
    /// The payload's transform ran past its time limit, fewer than
    /// [`MAX_OVERRUNS`] times in a row: a busy machine can do that to a sound
    /// payload, so it is not judged yet. Retryable: the next poll tries it
    /// again (an SFTP file first).
    #[error(
        "feed {feed_id}: try {tries} of {MAX_OVERRUNS} ran past the time limit, tried again before it is rejected: {source}"
    )]
    Overran {
        /// The feed whose step failed.
        feed_id: String,
        /// Overruns of this payload in a row, this one included.
        tries: u32,
        /// The limit's error.
        #[source]
        source: votewire_transformers::TransformError,
    },
}

impl FeedStepError {
    /// Whether the next poll may succeed (transport trouble, a busy
    /// broker) as opposed to a lost lease or a bug.
    pub fn is_retryable(&self) -> bool {
        match self {
            FeedStepError::Fetch { source, .. } => source.is_retryable(),
            FeedStepError::Publish { source, .. } => source.is_retryable(),
            FeedStepError::State { source, .. } => source.is_retryable(),
            FeedStepError::Archive { .. }
            | FeedStepError::Transform { .. }
            | FeedStepError::Overran { .. } => true,
        }
    }
}

/// Where a step's outcomes go: state store, Kafka, under which lease.
#[derive(Clone, Copy)]
struct Sinks<'a> {
    state: &'a dyn FeedStateStore,
    publisher: &'a Publisher,
    lease: &'a Lease,
}

/// A fetched payload on its way through a step: its number, its fetch id,
/// the `feed.fetch` span its trace hangs from, and what its records carry.
struct InFlight {
    payload: Payload,
    seq: i64,
    fetch_id: String,
    fetch_span: opentelemetry::Context,
    facts: FetchFacts,
}

/// What one step did.
#[derive(Debug, Default)]
pub struct StepReport {
    /// Cells published for an accepted payload.
    pub published: Option<Published>,
    /// A payload was rejected and dead-lettered.
    pub rejected: bool,
    /// The health transition, if any (already stored and published).
    pub transition: Option<Transition>,
    /// The source asked for a wait.
    pub wait: Option<Duration>,
    /// More is ready right now (queued SFTP files, or the rest of a
    /// truncated AP answer): step again at once.
    pub more: bool,
    /// The size of the payload fetched, when one was.
    pub payload_bytes: Option<usize>,
    /// The rejected payload's error class.
    pub error_class: Option<&'static str>,
}

impl StepReport {
    /// How the feed loop should schedule the next step.
    pub fn outcome(&self) -> StepOutcome {
        match self.wait {
            Some(d) => StepOutcome::Wait(d),
            None if self.more => StepOutcome::Again,
            None => StepOutcome::Done,
        }
    }
}

/// One running feed: its spec and in-memory state.
pub struct LiveFeed {
    /// Everything the feed needs to be polled: its source, mapping, limits and transform
    /// timeout.
    pub spec: FeedSpec,
    /// This ingestor instance, for health records.
    pub instance: String,
    /// The number of the last committed payload (0 for a feed never committed); the next
    /// payload is `source_seq + 1`.
    pub source_seq: i64,
    /// What this process last published per cell, so only changed cells are produced; empty
    /// after a resume.
    pub memory: PublishedCells,
    /// The feed's health; a stored pause or quarantine is restored on resume.
    pub health: HealthMachine,
    poller: Box<dyn Poller>,
    last_rejected_sha: Option<String>,
    truncated_follows: TruncatedFollows,
    overruns: Overruns,
}

impl LiveFeed {
    /// A feed resuming from its stored cursor (or from scratch). The change
    /// memory starts empty, so the first accepted payload republishes every
    /// cell once: harmless, cells are cumulative upserts.
    pub async fn resume(
        state: &dyn FeedStateStore,
        spec: FeedSpec,
        instance: &str,
        health: HealthMachine,
    ) -> Result<LiveFeed, FeedStepError> {
        let stored = state
            .load(&spec.feed_id)
            .await
            .map_err(|source| FeedStepError::State {
                feed_id: spec.feed_id.clone(),
                source,
            })?;
        let mut health = health;
        let (cursor, source_seq) = match stored {
            Some(s) => {
                // An operator's pause and a quarantine outlive restarts.
                if s.paused {
                    health.state = FeedHealth::Paused;
                } else if s.health == FeedHealth::Quarantined.as_str() {
                    health.state = FeedHealth::Quarantined;
                }
                (s.cursor, s.source_seq)
            }
            None => (FeedCursor::default(), 0),
        };
        // Published otherwise before (zero counts turned off when the
        // election goes live, a rehearsal made live): the source is read
        // afresh, so that the next payload publishes every cell as it now
        // is, not only what changed at the source since.
        let now_as = spec.published_as();
        let was_as = cursor
            .published_as
            .clone()
            .unwrap_or_else(|| spec.mode.as_str().to_string());
        let cursor = if was_as == now_as {
            cursor
        } else {
            tracing::info!(
                "feed {}: published as {was_as}, now as {now_as}; fetching the source afresh",
                spec.feed_id
            );
            FeedCursor::default()
        };
        let poller = spec.source.resume(cursor);
        Ok(LiveFeed {
            instance: instance.to_string(),
            source_seq,
            memory: PublishedCells::default(),
            health,
            poller,
            last_rejected_sha: None,
            truncated_follows: TruncatedFollows::default(),
            overruns: Overruns::default(),
            spec,
        })
    }

    /// The feed's id, from its spec.
    pub fn feed_id(&self) -> &str {
        &self.spec.feed_id
    }

    fn fetch_err(&self, source: impl Into<SourceError>) -> FeedStepError {
        FeedStepError::Fetch {
            feed_id: self.spec.feed_id.clone(),
            source: source.into(),
        }
    }

    fn state_err(&self) -> impl FnOnce(StateError) -> FeedStepError + '_ {
        move |source| FeedStepError::State {
            feed_id: self.spec.feed_id.clone(),
            source,
        }
    }

    fn publish_err(&self) -> impl FnOnce(PublishError) -> FeedStepError + '_ {
        move |source| FeedStepError::Publish {
            feed_id: self.spec.feed_id.clone(),
            source,
        }
    }

    /// Stores and publishes a health observation's transition, if any.
    async fn observe(
        &mut self,
        obs: Observation,
        now_ms: i64,
        fetch_id: Option<&str>,
        sinks: Sinks<'_>,
    ) -> Result<Option<Transition>, FeedStepError> {
        let Sinks {
            state,
            publisher,
            lease,
        } = sinks;
        let Some(t) = self.health.observe(obs, now_ms) else {
            return Ok(None);
        };
        let record =
            self.health
                .status_record(&self.spec.feed_id, &t, now_ms, &self.instance, fetch_id);
        let event = HealthEvent {
            at_ms: now_ms,
            from: Some(t.from.as_str().to_string()),
            to: t.to.as_str().to_string(),
            reason: t.reason.clone(),
            actor: self.instance.clone(),
        };
        state
            .record_health(lease, &event, i64::from(record.consecutive_failures))
            .await
            .map_err(self.state_err())?;
        publisher
            .publish_status(&record)
            .await
            .map_err(self.publish_err())?;
        Ok(Some(t))
    }

    /// Runs one poll and records it in the feed metrics
    /// ([`crate::feed_metrics`]). On `Err` nothing was committed; the feed
    /// loop backs off and tries again.
    pub async fn step(
        &mut self,
        tools: &FeedTools,
        publisher: &Publisher,
        state: &dyn FeedStateStore,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<StepReport, FeedStepError> {
        let started = Instant::now();
        let result = self.poll_once(tools, publisher, state, lease, now_ms).await;
        let (outcome, error_type) = match &result {
            Ok(r) if r.published.is_some() => ("changed", None),
            Ok(r) if r.rejected => ("rejected", r.error_class),
            Ok(_) => ("unchanged", None),
            Err(e) => (
                "failed",
                Some(match e {
                    FeedStepError::Fetch { .. } => "fetch",
                    FeedStepError::Publish { .. } => "publish",
                    FeedStepError::State { .. } => "state",
                    FeedStepError::Archive { .. } => "archive",
                    FeedStepError::Transform { .. } | FeedStepError::Overran { .. } => "transform",
                }),
            ),
        };
        let report = result.as_ref().ok();
        crate::feed_metrics::record_poll(&crate::feed_metrics::PollFacts {
            feed_id: &self.spec.feed_id,
            outcome,
            took: started.elapsed(),
            payload_bytes: report.and_then(|r| r.payload_bytes),
            cells_changed: report.and_then(|r| r.published.as_ref().map(|p| p.cells_changed)),
            error_type,
            health: self.health.state.as_str(),
            last_change_ms: self.health.last_change_ms,
        });
        result
    }

    /// One step: poll, then for a payload archive, transform and accept
    /// or reject it.
    async fn poll_once(
        &mut self,
        tools: &FeedTools,
        publisher: &Publisher,
        state: &dyn FeedStateStore,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<StepReport, FeedStepError> {
        if matches!(
            self.health.state,
            FeedHealth::Quarantined | FeedHealth::Paused
        ) {
            // An operator has to look first; nothing is fetched.
            return Ok(StepReport::default());
        }
        let sinks = Sinks {
            state,
            publisher,
            lease,
        };
        let mut report = StepReport::default();
        let poll_started = std::time::SystemTime::now();
        let limits = self.spec.limits;
        match self.poller.poll(tools, &limits).await {
            Err(e) => {
                let e = self.fetch_err(e);
                let why = e.to_string();
                let failed = root_span(
                    "feed.fetch",
                    SpanKind::Client,
                    poll_started,
                    vec![
                        KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
                        KeyValue::new("votewire.family", self.spec.family.clone()),
                        KeyValue::new("error.type", "fetch"),
                    ],
                );
                end_span(&failed, Some(&why));
                self.observe(Observation::FetchFailed(why), now_ms, None, sinks)
                    .await?;
                Err(e)
            }
            Ok(Polled::Wait(d)) => {
                report.wait = Some(d);
                Ok(report)
            }
            Ok(Polled::Unchanged(moved)) => {
                self.last_rejected_sha = None;
                if let Some(mut cursor) = moved {
                    cursor.published_as = Some(self.spec.published_as());
                    state
                        .commit_cursor(lease, &cursor, self.source_seq)
                        .await
                        .map_err(self.state_err())?;
                }
                report.transition = self
                    .observe(Observation::Unchanged, now_ms, None, sinks)
                    .await?;
                Ok(report)
            }
            Ok(Polled::Payload(payload)) => {
                self.process(tools, payload, poll_started, now_ms, sinks, report)
                    .await
            }
        }
    }

    /// A fetched payload: archived, traced, transformed on the transform
    /// threads, then accepted or rejected, under one of the ingestor's
    /// payload permits.
    async fn process(
        &mut self,
        tools: &FeedTools,
        payload: Payload,
        poll_started: std::time::SystemTime,
        now_ms: i64,
        sinks: Sinks<'_>,
        mut report: StepReport,
    ) -> Result<StepReport, FeedStepError> {
        // When the bytes were in hand: `fetched_at`, where fetch → result
        // latency starts (an SFTP poll lists, waits for a stable file, then
        // reads it, so the poll's start would overstate it).
        let fetched_ms = votewire_core::unix_ms();
        report.more = self.poller.more();
        report.payload_bytes = Some(payload.bytes.len());
        if self.last_rejected_sha.as_deref() == Some(payload.sha256.as_str()) {
            // The same garbage again, right after it was dead-lettered.
            return Ok(report);
        }
        let _permit = tools
            .work
            .clone()
            .acquire_owned()
            .await
            .expect("the work semaphore is never closed");
        let archive_ref = match &tools.archive {
            Some(a) => Some(
                a.store(&payload.bytes)
                    .await
                    .map_err(|source| FeedStepError::Archive {
                        feed_id: self.spec.feed_id.clone(),
                        source,
                    })?
                    .1,
            ),
            None => None,
        };
        let (flight, ctx) = self.in_flight(payload, archive_ref, poll_started, fetched_ms, now_ms);
        let job = TransformJob {
            family: self.spec.family.clone(),
            bytes: flight.payload.bytes.clone(),
            ctx,
            mapping: self.spec.mapping.clone(),
            companion: self.spec.companion.clone(),
        };
        let transform_span = child_span(
            &flight.fetch_span,
            "feed.transform",
            SpanKind::Internal,
            vec![
                KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
                KeyValue::new("votewire.family", self.spec.family.clone()),
            ],
        );
        let transformed =
            match run_transform(&tools.transforms, job, self.spec.transform_timeout).await {
                Ok(run) if run.overran => {
                    let tries = self.overruns.count(&flight.payload.sha256);
                    match run.result {
                        Err(source) if tries < MAX_OVERRUNS => {
                            end_span(&transform_span, Some(&source.to_string()));
                            self.poller.put_back(&flight.payload);
                            return Err(FeedStepError::Overran {
                                feed_id: self.spec.feed_id.clone(),
                                tries,
                                source,
                            });
                        }
                        judged => judged,
                    }
                }
                Ok(run) => {
                    self.overruns = Overruns::default();
                    run.result
                }
                Err(busy) => {
                    end_span(&transform_span, Some(&busy.to_string()));
                    // An SFTP file goes back to the front of the queue: the
                    // next step takes it first, so files publish in order.
                    self.poller.put_back(&flight.payload);
                    return Err(FeedStepError::Transform {
                        feed_id: self.spec.feed_id.clone(),
                        source: busy,
                    });
                }
            };
        match &transformed {
            Ok(out) => {
                transform_span.span().set_attribute(KeyValue::new(
                    "votewire.cells_total",
                    i64::try_from(out.cells.len()).unwrap_or(i64::MAX),
                ));
                end_span(&transform_span, None);
            }
            Err(err) => {
                transform_span
                    .span()
                    .set_attribute(KeyValue::new("error.type", err.class.as_str()));
                end_span(&transform_span, Some(&err.to_string()));
            }
        }
        match transformed {
            Ok(out) => self.accept(tools, out, flight, now_ms, sinks, report).await,
            Err(err) => self.reject(err, flight, now_ms, sinks, report).await,
        }
    }

    /// The payload's number, fetch id and trace, and the context its
    /// transform reads. One trace per fetched payload, rooted at
    /// `feed.fetch` (back-dated to the poll's start, so unchanged polls
    /// make no trace): every cell, the manifest and a dead letter carry it
    /// (`traceparent` header, `trace_id` field).
    fn in_flight(
        &self,
        payload: Payload,
        archive_ref: Option<String>,
        poll_started: std::time::SystemTime,
        fetched_ms: i64,
        now_ms: i64,
    ) -> (InFlight, PayloadContext) {
        let seq = self.source_seq + 1;
        let fetch_id = format!("{}:{seq}:{now_ms}", self.spec.feed_id);
        let mut fetch_attributes = vec![
            KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
            KeyValue::new("votewire.family", self.spec.family.clone()),
            KeyValue::new("votewire.source_seq", seq),
            KeyValue::new("url.full", payload.url.clone()),
            KeyValue::new("server.address", host_of(&payload.url)),
            KeyValue::new(
                "http.response.body.size",
                i64::try_from(payload.bytes.len()).unwrap_or(i64::MAX),
            ),
        ];
        if let Some(v) = &payload.version {
            fetch_attributes.push(KeyValue::new("votewire.source_version", v.clone()));
        }
        let fetch_span = root_span(
            "feed.fetch",
            SpanKind::Client,
            poll_started,
            fetch_attributes,
        );
        let trace_id = trace_context::trace_id_of(&fetch_span);
        let ctx = PayloadContext {
            election_id: self.spec.election_id.clone(),
            feed_id: self.spec.feed_id.clone(),
            mode: self.spec.mode,
            source_seq: seq,
            source_version: payload.version.clone(),
            fetched_at: fetched_ms,
            fetch_id: fetch_id.clone(),
            source_uri: payload.url.clone(),
            payload_sha256: payload.sha256.clone(),
            trace_id: Some(trace_id),
            content_type: payload.content_type.clone(),
        };
        let mut facts = FetchFacts::for_payload(&ctx, &self.spec.family, payload.bytes.len());
        facts.archive_ref = archive_ref;
        facts.trace = fetch_span.clone();
        facts.result_links = self.spec.result_links.clone();
        let flight = InFlight {
            payload,
            seq,
            fetch_id,
            fetch_span,
            facts,
        };
        (flight, ctx)
    }

    /// An accepted payload: its changed cells published and acknowledged,
    /// then the cursor committed under the lease, then the source told.
    async fn accept(
        &mut self,
        tools: &FeedTools,
        out: votewire_transformers::Transformed,
        flight: InFlight,
        now_ms: i64,
        sinks: Sinks<'_>,
        mut report: StepReport,
    ) -> Result<StepReport, FeedStepError> {
        let InFlight {
            payload,
            seq,
            fetch_id,
            fetch_span,
            facts,
        } = flight;
        let mut out = out;
        if self.spec.zero_counts {
            out.cells.zero_counts();
        }
        let published = sinks
            .publisher
            .publish_accepted(&out.cells, &mut self.memory, &facts)
            .await
            .map_err(self.publish_err())?;
        if tools.abort_after_produce {
            tracing::error!(
                "feed {}: VOTEWIRE_FAULT=abort-after-produce: {} cells acknowledged, aborting before the cursor commit",
                self.spec.feed_id,
                published.cells_changed
            );
            std::process::abort();
        }
        let mut cursor = self.poller.accepted(
            &self.spec.feed_id,
            &payload,
            out.facts.next_request.as_deref(),
        );
        cursor.published_as = Some(self.spec.published_as());
        // The rest of a truncated answer is fetched at once only from the
        // link the cursor took (not from the base URL after a bad link).
        let truncated_rest = out.facts.truncated
            && cursor.next_request.is_some()
            && cursor.next_request == out.facts.next_request;
        let commit_span = child_span(
            &fetch_span,
            "state.commit",
            SpanKind::Client,
            vec![
                KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
                KeyValue::new("votewire.source_seq", seq),
            ],
        );
        let committed = sinks
            .state
            .commit_change(sinks.lease, &cursor, seq, now_ms)
            .await;
        end_span(
            &commit_span,
            committed.as_ref().err().map(ToString::to_string).as_deref(),
        );
        committed.map_err(self.state_err())?;
        self.source_seq = seq;
        self.poller.committed(&self.spec.feed_id, &cursor).await;
        self.last_rejected_sha = None;
        fetch_span.span().set_attribute(KeyValue::new(
            "votewire.cells_changed",
            i64::try_from(published.cells_changed).unwrap_or(i64::MAX),
        ));
        end_span(&fetch_span, None);
        report.published = Some(published);
        report.more |= self
            .truncated_follows
            .follow(&self.spec.feed_id, truncated_rest);
        report.transition = self
            .observe(Observation::Accepted, now_ms, Some(&fetch_id), sinks)
            .await?;
        Ok(report)
    }

    /// A rejected payload: dead-lettered, and the source told (the SFTP
    /// processed set stored); the content position stays.
    async fn reject(
        &mut self,
        err: votewire_transformers::TransformError,
        flight: InFlight,
        now_ms: i64,
        sinks: Sinks<'_>,
        mut report: StepReport,
    ) -> Result<StepReport, FeedStepError> {
        tracing::warn!(
            feed = %self.spec.feed_id,
            "feed {}: payload {} ({}) rejected and dead-lettered: {err}",
            self.spec.feed_id,
            flight.facts.source_uri,
            err.class.as_str()
        );
        sinks
            .publisher
            .publish_rejected(&err, &flight.facts)
            .await
            .map_err(self.publish_err())?;
        if let Some(mut cursor) = self.poller.rejected(&flight.payload) {
            cursor.published_as = Some(self.spec.published_as());
            sinks
                .state
                .commit_cursor(sinks.lease, &cursor, self.source_seq)
                .await
                .map_err(self.state_err())?;
        }
        self.last_rejected_sha = Some(flight.payload.sha256.clone());
        flight
            .fetch_span
            .span()
            .set_attribute(KeyValue::new("error.type", err.class.as_str()));
        end_span(&flight.fetch_span, Some(&err.to_string()));
        report.rejected = true;
        report.error_class = Some(err.class.as_str());
        report.transition = self
            .observe(
                Observation::Rejected(err.to_string()),
                now_ms,
                Some(&flight.fetch_id),
                sinks,
            )
            .await?;
        Ok(report)
    }
}
