//! Feed state: cursors, `source_seq`, health, leases, and the history of
//! health transitions (the state keeper), behind one trait,
//! [`FeedStateStore`], with two backends: [`dynamodb`] (the production
//! store, shared by a fleet) and [`embedded`] (one redb file, for a single
//! process). [`open_feed_state`] opens the one the config names.
//!
//! # Leases and fencing (the Kinesis Client Library pattern)
//!
//! An ingestor owns a feed while it holds an unexpired lease. Renewing keeps
//! the fencing counter; taking over an expired (or never-held) lease
//! increments it. Every cursor commit is conditional on the committer still
//! being the owner **with the same fencing counter**, so an ingestor that was
//! paused past its lease (a zombie) cannot commit after another took over:
//! its write fails with [`StateError::Fenced`], and its payload is simply
//! republished by the new owner (harmless: cells are upserts).

pub mod dynamodb;
pub mod embedded;

pub use dynamodb::DynamoFeedState;
pub use embedded::EmbeddedFeedState;

use votewire_core::config::StateStoreKind;

/// What a feed's next fetch starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedCursor {
    /// The HTTP `ETag` last served for this content, sent back as `If-None-Match`; `None`
    /// when the server sends none or the source is not HTTP.
    pub etag: Option<String>,
    /// The HTTP `Last-Modified` last served for this content, sent back as
    /// `If-Modified-Since`; `None` when the server sends none or the source is not HTTP.
    pub last_modified: Option<String>,
    /// The publisher's version (Clarity `current_ver.txt`).
    pub version: Option<String>,
    /// sha256 of the last accepted payload.
    pub sha256: Option<String>,
    /// AP's `nextrequest`.
    pub next_request: Option<String>,
    /// SFTP: the processed files, one `sha256 size mtime path` per line.
    pub sftp_seen: Option<String>,
    /// How the feed published when this cursor was committed
    /// ([`crate::feed_spec::FeedSpec::published_as`]: its mode, and
    /// `+zero` under its election's zero counts). A feed that starts with
    /// another (an election going live, a rehearsal becoming live) reads
    /// its source afresh; `None` (a row from before this field) counts as
    /// the feed's own mode without zeros.
    #[serde(default)]
    pub published_as: Option<String>,
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The feed leased.
    pub feed_id: String,
    /// The ingestor instance holding the lease.
    pub owner: String,
    /// When the lease expires unless renewed (ms since the epoch).
    pub expires_ms: i64,
    /// The fencing counter: kept by a renewal, incremented by a takeover; a commit must
    /// match it.
    pub fencing: i64,
}

/// A feed row's lease, as seen by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The feed.
    pub feed_id: String,
    /// The instance that holds (or last held) the lease; `None` when the feed was never
    /// leased.
    pub owner: Option<String>,
    /// When the lease expires (ms since the epoch); 0 when never leased or released.
    pub expires_ms: i64,
    /// The fencing counter (0 when never leased).
    pub fencing: i64,
    /// An instance asked the owner to hand this feed over.
    pub handover_to: Option<String>,
    /// Bumped by every operator action (`feeds pause|resume`).
    pub operator_gen: i64,
}

/// A feed's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    /// The feed.
    pub feed_id: String,
    /// Where the next fetch starts from.
    pub cursor: FeedCursor,
    /// The sequence number of the last accepted payload (0 before any); never moves
    /// backwards.
    pub source_seq: i64,
    /// The stored health (`healthy`, `unchanged`, `stale`, `failing`, `quarantined` or
    /// `paused`); `healthy` when none was recorded.
    pub health: String,
    /// Failed or rejected polls in a row: set by each health record, reset to 0 by every
    /// cursor commit and by pause or resume.
    pub consecutive_failures: i64,
    /// The feed's lease as stored, possibly expired; `None` when the feed was never leased.
    pub lease: Option<Lease>,
    /// Paused by an operator (`votewire feeds pause`).
    pub paused: bool,
    /// Bumped by every operator action, so running ingestors restart the
    /// feed and pick the action up.
    pub operator_gen: i64,
    /// When the last accepted payload was fetched, and when the feed last
    /// went into `failing` or `quarantined` (milliseconds since the epoch).
    pub last_change_ms: Option<i64>,
    /// When the feed last went into `failing` or `quarantined` (ms since the epoch); `None`
    /// if it never has.
    pub last_error_ms: Option<i64>,
    /// When the owner last fetched the feed, stored with its lease
    /// renewals: up to half a lease TTL old.
    pub last_fetch_ms: Option<i64>,
}

/// One stored health transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// When it happened (ms since the epoch, UTC).
    pub at_ms: i64,
    /// The health before; `None` when unknown.
    pub from: Option<String>,
    /// The health after (`healthy`, `failing`, `paused`...).
    pub to: String,
    /// Why it changed: the health machine's reason or the operator action's.
    pub reason: String,
    /// Who caused it: an ingestor instance id, `api:<token name>` or `operator:<name>`.
    pub actor: String,
}

/// A state-store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The caller's lease was lost (expired and taken over, or renewed by
    /// someone else): it must stop working on the feed. Not retryable.
    #[error("feed {feed_id}: lease lost (owner {owner}, fencing {fencing}); not committing")]
    Fenced {
        /// The feed.
        feed_id: String,
        /// The owner named by the caller's (lost) lease.
        owner: String,
        /// The fencing counter of the caller's lease.
        fencing: i64,
    },
    /// A commit would move `source_seq` backwards: a bug or a replayed
    /// commit. Not retryable.
    #[error("feed {feed_id}: source_seq {attempted} is below the committed {committed}")]
    SeqRegressed {
        /// The feed.
        feed_id: String,
        /// The `source_seq` the commit carried.
        attempted: i64,
        /// The `source_seq` already stored.
        committed: i64,
    },
    /// The store could not be reached or refused the call.
    #[error("state store {op} on {table}: {message}")]
    Store {
        /// The store operation that failed (`get_item`, `update_item`, `scan`...).
        op: &'static str,
        /// The table it ran on (`embedded <name>` for the redb store).
        table: String,
        /// The store's error, as the AWS SDK or redb words it.
        message: String,
    },
}

impl StateError {
    /// Store errors are worth retrying (the endpoint may be back); a fenced
    /// write never is.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StateError::Store { .. })
    }
}

/// Where feed state lives. DynamoDB ([`DynamoFeedState`]) is the
/// production store, shared by every ingestor of a fleet; the embedded
/// store ([`EmbeddedFeedState`], one redb file) is
/// the single-process default. Both keep the same semantics: fenced
/// commits, `source_seq` that never moves backwards, and the health
/// history newest first.
#[async_trait::async_trait]
pub trait FeedStateStore: Send + Sync {
    /// Creates the tables when missing. Safe to run from several
    /// processes at once (DynamoDB) and on every start.
    async fn ensure_tables(&self) -> Result<(), StateError>;

    /// The stored state of `feed_id`, if any (strongly consistent).
    async fn load(&self, feed_id: &str) -> Result<Option<FeedState>, StateError>;

    /// Renews `owner`'s lease, or takes the feed when its lease is free or
    /// expired (incrementing the fencing counter). `None` when another
    /// owner holds an unexpired lease.
    async fn acquire_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StateError> {
        match self
            .renew_lease(feed_id, owner, now_ms, ttl_ms, None)
            .await?
        {
            Some(lease) => Ok(Some(lease)),
            None => self.take_lease(feed_id, owner, now_ms, ttl_ms).await,
        }
    }

    /// Extends `owner`'s unexpired lease, keeping its fencing counter, and
    /// stores the feed's last fetch time when given (it rides on the
    /// renewal: no write per poll). `None` when `owner` does not hold the
    /// lease (any more).
    async fn renew_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
        last_fetch_ms: Option<i64>,
    ) -> Result<Option<Lease>, StateError>;

    /// Takes the feed when its lease is free or expired, incrementing the
    /// fencing counter. `None` when someone holds an unexpired lease.
    async fn take_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StateError>;

    /// Asks `seen.owner` to hand the feed over to `requester` (the lease
    /// plan's rebalancing), only if it still holds it with the fencing
    /// counter we saw. The owner stops the feed and releases the lease in
    /// its next round; nobody polls the feed twice.
    async fn request_handover(&self, seen: &LeaseRow, requester: &str) -> Result<bool, StateError>;

    /// Gives a lease up (graceful shutdown): it expires now, so any live
    /// instance takes it in its next round. A no-op if it was lost already.
    async fn release_lease(&self, lease: &Lease) -> Result<bool, StateError>;

    /// Every feed row's lease, for the lease plan.
    async fn lease_rows(&self) -> Result<Vec<LeaseRow>, StateError>;

    /// Records that `instance` is alive until `now_ms + ttl_ms`; a `ttl_ms`
    /// of 0 withdraws it (a stopping instance).
    async fn heartbeat(&self, instance: &str, now_ms: i64, ttl_ms: i64) -> Result<(), StateError>;

    /// Instances whose heartbeat has not expired at `now_ms`, sorted.
    async fn live_instances(&self, now_ms: i64) -> Result<Vec<String>, StateError>;

    /// Commits the cursor and `source_seq` (and, for an accepted payload
    /// fetched at `changed_at_ms`, the feed's last change) after every cell
    /// of a payload was acknowledged. Fenced: refused unless `lease` is
    /// still the current one; a `source_seq` below the stored one is
    /// [`StateError::SeqRegressed`].
    async fn commit(
        &self,
        lease: &Lease,
        cursor: &FeedCursor,
        source_seq: i64,
        changed_at_ms: Option<i64>,
    ) -> Result<(), StateError>;

    /// [`commit`](Self::commit) for a payload that changed nothing.
    async fn commit_cursor(
        &self,
        lease: &Lease,
        cursor: &FeedCursor,
        source_seq: i64,
    ) -> Result<(), StateError> {
        self.commit(lease, cursor, source_seq, None).await
    }

    /// [`commit`](Self::commit) for an accepted payload fetched at `at_ms`.
    async fn commit_change(
        &self,
        lease: &Lease,
        cursor: &FeedCursor,
        source_seq: i64,
        at_ms: i64,
    ) -> Result<(), StateError> {
        self.commit(lease, cursor, source_seq, Some(at_ms)).await
    }

    /// Records a health transition (fenced like a commit) and appends it to
    /// the feed's history. A transition into `failing` or `quarantined` is
    /// also the feed's last error.
    async fn record_health(
        &self,
        lease: &Lease,
        event: &HealthEvent,
        consecutive_failures: i64,
    ) -> Result<(), StateError>;

    /// Stores an operator action without a lease: pause and resume set
    /// the paused flag and the health they leave (`paused`, or `healthy`,
    /// which also ends a quarantine) with no failures; reset-cursor clears
    /// the stored cursor (never `source_seq`); every action bumps the
    /// operator generation, so the feed's owner restarts it within a lease
    /// round (a restart reads the stored cursor and polls at once: that is
    /// poll-now). Returns the health before. [`act`](Self::act) adds the
    /// history event.
    async fn store_operator_action(
        &self,
        feed_id: &str,
        action: OperatorAction,
    ) -> Result<String, StateError>;

    /// An operator acts on a feed ([`OperatorAction`]), recorded in the
    /// feed's history as done by `actor`. Returns the health before and
    /// after.
    async fn act(
        &self,
        feed_id: &str,
        action: OperatorAction,
        actor: &str,
        now_ms: i64,
    ) -> Result<(String, String), StateError> {
        let from = self.store_operator_action(feed_id, action).await?;
        let to = action.health_after().unwrap_or(&from).to_string();
        let event = HealthEvent {
            at_ms: now_ms,
            from: Some(from.clone()),
            to: to.clone(),
            reason: action.reason().to_string(),
            actor: actor.to_string(),
        };
        self.append_event(feed_id, &event).await?;
        Ok((from, to))
    }

    /// An operator pauses (`true`) or resumes (`false`) a feed; resuming
    /// also releases it from quarantine. Returns the health before.
    async fn set_paused(
        &self,
        feed_id: &str,
        paused: bool,
        actor: &str,
        now_ms: i64,
    ) -> Result<String, StateError> {
        let action = if paused {
            OperatorAction::Pause
        } else {
            OperatorAction::Resume
        };
        Ok(self.act(feed_id, action, actor, now_ms).await?.0)
    }

    /// Appends one event to a feed's history (also used for operator
    /// actions, which hold no lease).
    async fn append_event(&self, feed_id: &str, event: &HealthEvent) -> Result<(), StateError>;

    /// A page of a feed's history, newest first; pass the returned token to
    /// get the next page.
    async fn history(
        &self,
        feed_id: &str,
        limit: i32,
        after: Option<String>,
    ) -> Result<(Vec<HealthEvent>, Option<String>), StateError>;
}

/// The feed-state store `config` names: DynamoDB (the default, shared by a
/// fleet) or the embedded file under `state_dir`. Tables are created when
/// missing.
pub async fn open_feed_state(
    config: &votewire_core::config::VotewireConfig,
) -> Result<std::sync::Arc<dyn FeedStateStore>, StateError> {
    let store: std::sync::Arc<dyn FeedStateStore> = match config.state_store.kind {
        StateStoreKind::Dynamodb => {
            let client = votewire_core::state::dynamodb_client(&config.state_store).await;
            std::sync::Arc::new(DynamoFeedState::new(client, &config.state_store))
        }
        StateStoreKind::Embedded => {
            let file = config.state_store.embedded_file(&config.state_dir);
            std::sync::Arc::new(EmbeddedFeedState::open(&file)?)
        }
    };
    store.ensure_tables().await?;
    Ok(store)
}

/// The health an operator action leaves a feed in, and the reason stored
/// with it.
/// What an operator can do to a feed without holding its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    /// Stop polling until resumed.
    Pause,
    /// Poll again; also ends a quarantine.
    Resume,
    /// Restart the feed now: it polls at once instead of at its next tick.
    PollNow,
    /// Forget the cursor (ETag, version, AP `nextrequest`, SFTP files
    /// seen): the next poll fetches everything again. `source_seq` stays.
    ResetCursor,
}

impl OperatorAction {
    /// The health the action leaves, when it sets one.
    pub fn health_after(self) -> Option<&'static str> {
        match self {
            OperatorAction::Pause => Some("paused"),
            OperatorAction::Resume => Some("healthy"),
            OperatorAction::PollNow | OperatorAction::ResetCursor => None,
        }
    }

    /// The history event's reason.
    pub fn reason(self) -> &'static str {
        match self {
            OperatorAction::Pause => "paused by an operator",
            OperatorAction::Resume => "resumed by an operator",
            OperatorAction::PollNow => "poll requested by an operator",
            OperatorAction::ResetCursor => "cursor reset by an operator; the next poll refetches",
        }
    }
}
