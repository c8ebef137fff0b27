//! One Clarity feed, one poll step at a time: version poll, transform,
//! publish, fenced cursor commit, health. This is the step a feed loop
//! ([`crate::cadence::run_feed_loop`]) runs for a Clarity source.
//!
//! The order is the commit protocol: every changed cell is acknowledged and
//! the manifest written before the cursor moves, so a crash anywhere
//! republishes and never skips. A rejected payload leaves the cursor, the
//! change memory and the published cells as they were; an identical
//! rejected payload is not dead-lettered twice.

use std::time::Duration;

use votewire_schemas::FeedMode;
use votewire_transformers::{FamilyInputs, PayloadContext};

use crate::cadence::StepOutcome;
use crate::clarity_source::{ClarityCursor, ClarityError, ClarityPoll, poll_clarity};
use crate::conditional::PollOutcome;
use crate::health::{HealthMachine, Observation, Transition};
use crate::http::FetchLimits;
use crate::publish::{FetchFacts, PublishError, Published, PublishedCells, Publisher};
use crate::state::{DynamoFeedState, FeedCursor, HealthEvent, Lease, StateError};

/// A step that could not finish. The cursor did not move.
#[derive(Debug, thiserror::Error)]
pub enum FeedStepError {
    #[error("feed {feed_id}: polling the source: {source}")]
    Fetch {
        feed_id: String,
        #[source]
        source: ClarityError,
    },
    #[error("feed {feed_id}: publishing: {source}")]
    Publish {
        feed_id: String,
        #[source]
        source: PublishError,
    },
    #[error("feed {feed_id}: state store: {source}")]
    State {
        feed_id: String,
        #[source]
        source: StateError,
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
        }
    }
}

/// Where a step's outcomes go: state store, Kafka, under which lease.
type Sinks<'a> = (&'a DynamoFeedState, &'a Publisher, &'a Lease);

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
}

impl StepReport {
    /// How the feed loop should schedule the next step.
    pub fn outcome(&self) -> StepOutcome {
        match self.wait {
            Some(d) => StepOutcome::Wait(d),
            None => StepOutcome::Done,
        }
    }
}

/// One Clarity feed's configuration and in-memory state.
pub struct ClarityFeed {
    pub feed_id: String,
    pub election_id: String,
    /// `clarity-json` or `clarity-xml`.
    pub family: String,
    pub mode: FeedMode,
    pub base_url: String,
    pub file: String,
    pub companion: Option<Vec<u8>>,
    pub limits: FetchLimits,
    /// Fetch the versioned file even under an unchanged version every this
    /// many polls (0: never).
    pub revalidate_every: u64,
    /// This ingestor instance, for health records.
    pub instance: String,
    pub cursor: ClarityCursor,
    pub source_seq: i64,
    pub memory: PublishedCells,
    pub health: HealthMachine,
    polls: u64,
    last_rejected_sha: Option<String>,
}

impl ClarityFeed {
    /// A feed resuming from its stored cursor (or from scratch). The change
    /// memory starts empty, so the first accepted payload republishes every
    /// cell once: harmless, cells are cumulative upserts.
    #[allow(clippy::too_many_arguments)]
    pub async fn resume(
        state: &DynamoFeedState,
        feed_id: &str,
        election_id: &str,
        family: &str,
        base_url: &str,
        file: &str,
        companion: Option<Vec<u8>>,
        instance: &str,
        health: HealthMachine,
    ) -> Result<ClarityFeed, FeedStepError> {
        let stored = state
            .load(feed_id)
            .await
            .map_err(|source| FeedStepError::State {
                feed_id: feed_id.to_string(),
                source,
            })?;
        let (cursor, source_seq) = match stored {
            Some(s) => (
                ClarityCursor {
                    version: s.cursor.version,
                    sha256: s.cursor.sha256,
                },
                s.source_seq,
            ),
            None => (ClarityCursor::default(), 0),
        };
        Ok(ClarityFeed {
            feed_id: feed_id.to_string(),
            election_id: election_id.to_string(),
            family: family.to_string(),
            mode: FeedMode::Live,
            base_url: base_url.to_string(),
            file: file.to_string(),
            companion,
            limits: FetchLimits::default(),
            revalidate_every: 4,
            instance: instance.to_string(),
            cursor,
            source_seq,
            memory: PublishedCells::default(),
            health,
            polls: 0,
            last_rejected_sha: None,
        })
    }

    fn state_err(&self) -> impl FnOnce(StateError) -> FeedStepError + '_ {
        move |source| FeedStepError::State {
            feed_id: self.feed_id.clone(),
            source,
        }
    }

    fn publish_err(&self) -> impl FnOnce(PublishError) -> FeedStepError + '_ {
        move |source| FeedStepError::Publish {
            feed_id: self.feed_id.clone(),
            source,
        }
    }

    /// Stores and publishes a health observation's transition, if any.
    async fn observe(
        &mut self,
        obs: Observation,
        now_ms: i64,
        fetch_id: Option<&str>,
        (state, publisher, lease): Sinks<'_>,
    ) -> Result<Option<Transition>, FeedStepError> {
        let Some(t) = self.health.observe(obs, now_ms) else {
            return Ok(None);
        };
        let record = self
            .health
            .status_record(&self.feed_id, &t, now_ms, &self.instance, fetch_id);
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

    /// Runs one poll. On `Err` nothing was committed; the feed loop backs
    /// off and tries again.
    pub async fn step(
        &mut self,
        http: &reqwest::Client,
        publisher: &Publisher,
        state: &DynamoFeedState,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<StepReport, FeedStepError> {
        if matches!(
            self.health.state,
            votewire_schemas::FeedHealth::Quarantined | votewire_schemas::FeedHealth::Paused
        ) {
            // An operator has to look first; nothing is fetched.
            return Ok(StepReport::default());
        }
        let sinks: Sinks<'_> = (state, publisher, lease);
        self.polls += 1;
        let revalidate =
            self.revalidate_every > 0 && self.polls.is_multiple_of(self.revalidate_every);
        let polled = poll_clarity(
            http,
            &self.base_url,
            &self.file,
            &self.cursor,
            &self.limits,
            revalidate,
        )
        .await;
        let mut report = StepReport::default();
        let (version, body) = match polled {
            Err(source) => {
                let why = source.to_string();
                self.observe(Observation::FetchFailed(why), now_ms, None, sinks)
                    .await?;
                return Err(FeedStepError::Fetch {
                    feed_id: self.feed_id.clone(),
                    source,
                });
            }
            Ok(ClarityPoll::Wait(PollOutcome::Wait { delay, .. })) => {
                report.wait = Some(delay);
                return Ok(report);
            }
            Ok(ClarityPoll::Wait(_)) => return Ok(report),
            Ok(ClarityPoll::SameVersion(version) | ClarityPoll::Unchanged { version }) => {
                self.last_rejected_sha = None;
                // A new version with identical bytes: remember it so a
                // restart doesn't refetch.
                if self.cursor.version.as_deref() != Some(version.as_str()) {
                    let cursor = FeedCursor {
                        version: Some(version.clone()),
                        sha256: self.cursor.sha256.clone(),
                        ..FeedCursor::default()
                    };
                    state
                        .commit_cursor(lease, &cursor, self.source_seq)
                        .await
                        .map_err(self.state_err())?;
                    self.cursor.version = Some(version);
                }
                report.transition = self
                    .observe(Observation::Unchanged, now_ms, None, sinks)
                    .await?;
                return Ok(report);
            }
            Ok(ClarityPoll::Changed { version, body }) => (version, body),
        };
        if self.last_rejected_sha.as_deref() == Some(body.sha256.as_str()) {
            // The same garbage again, right after it was dead-lettered.
            return Ok(report);
        }
        let seq = self.source_seq + 1;
        let fetch_id = format!("{}:{seq}:{now_ms}", self.feed_id);
        let ctx = PayloadContext {
            election_id: self.election_id.clone(),
            feed_id: self.feed_id.clone(),
            mode: self.mode,
            source_seq: seq,
            source_version: Some(version.clone()),
            fetched_at: now_ms,
            fetch_id: fetch_id.clone(),
            source_uri: body.url.clone(),
            payload_sha256: body.sha256.clone(),
            trace_id: None,
            content_type: body.content_type.clone(),
        };
        let facts = FetchFacts::for_payload(&ctx, &self.family, body.bytes.len());
        let inputs = FamilyInputs {
            companion: self.companion.as_deref(),
            ..FamilyInputs::default()
        };
        match votewire_transformers::transform(&self.family, &body.bytes, &ctx, &inputs) {
            Ok(out) => {
                let published = publisher
                    .publish_accepted(&out.cells, &mut self.memory, &facts)
                    .await
                    .map_err(self.publish_err())?;
                let cursor = FeedCursor {
                    version: Some(version.clone()),
                    sha256: Some(body.sha256.clone()),
                    ..FeedCursor::default()
                };
                state
                    .commit_cursor(lease, &cursor, seq)
                    .await
                    .map_err(self.state_err())?;
                self.source_seq = seq;
                self.cursor = ClarityCursor {
                    version: Some(version),
                    sha256: Some(body.sha256.clone()),
                };
                self.last_rejected_sha = None;
                report.published = Some(published);
                report.transition = self
                    .observe(Observation::Accepted, now_ms, Some(&fetch_id), sinks)
                    .await?;
            }
            Err(err) => {
                publisher
                    .publish_rejected(&err, &facts)
                    .await
                    .map_err(self.publish_err())?;
                self.last_rejected_sha = Some(body.sha256.clone());
                report.rejected = true;
                report.transition = self
                    .observe(
                        Observation::Rejected(err.to_string()),
                        now_ms,
                        Some(&fetch_id),
                        sinks,
                    )
                    .await?;
            }
        }
        Ok(report)
    }
}
