//! Feed state in DynamoDB: cursors, `source_seq`, health, leases, and the
//! history of health transitions (the state keeper).
//!
//! Two tables, named `<prefix>feeds` and `<prefix>feed_events`:
//!
//! * `feeds` (pk `feed_id`): the cursor (ETag, Last-Modified, publisher
//!   version, payload sha256, AP next link), `source_seq`, health, and the
//!   lease (`lease_owner`, `lease_expires_ms`, `fencing`).
//! * `feed_events` (pk `feed_id`, sk `<at_ms>#<fetch>`): every health
//!   transition with its reason, expiring through the `expires_at` TTL.
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

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use votewire_core::config::{StateStoreConfig, StateStoreKind};
use votewire_core::state::table_name;

/// What a feed's next fetch starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedCursor {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The publisher's version (Clarity `current_ver.txt`).
    pub version: Option<String>,
    /// sha256 of the last accepted payload.
    pub sha256: Option<String>,
    /// AP's `nextrequest`.
    pub next_request: Option<String>,
    /// SFTP: the processed files, one `sha256 size mtime path` per line.
    pub sftp_seen: Option<String>,
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub feed_id: String,
    pub owner: String,
    pub expires_ms: i64,
    pub fencing: i64,
}

/// A feed row's lease, as seen by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub feed_id: String,
    pub owner: Option<String>,
    pub expires_ms: i64,
    pub fencing: i64,
    /// An instance asked the owner to hand this feed over.
    pub handover_to: Option<String>,
    /// Bumped by every operator action (`feeds pause|resume`).
    pub operator_gen: i64,
}

/// A feed's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    pub feed_id: String,
    pub cursor: FeedCursor,
    pub source_seq: i64,
    pub health: String,
    pub consecutive_failures: i64,
    pub lease: Option<Lease>,
    /// Paused by an operator (`votewire feeds pause`).
    pub paused: bool,
    /// Bumped by every operator action, so running ingestors restart the
    /// feed and pick the action up.
    pub operator_gen: i64,
    /// When the last accepted payload was fetched, and when the feed last
    /// went into `failing` or `quarantined` (milliseconds since the epoch).
    pub last_change_ms: Option<i64>,
    pub last_error_ms: Option<i64>,
    /// When the owner last fetched the feed, stored with its lease
    /// renewals: up to half a lease TTL old.
    pub last_fetch_ms: Option<i64>,
}

/// One stored health transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub at_ms: i64,
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    pub actor: String,
}

/// A state-store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The caller's lease was lost (expired and taken over, or renewed by
    /// someone else): it must stop working on the feed. Not retryable.
    #[error("feed {feed_id}: lease lost (owner {owner}, fencing {fencing}); not committing")]
    Fenced {
        feed_id: String,
        owner: String,
        fencing: i64,
    },
    /// A commit would move `source_seq` backwards: a bug or a replayed
    /// commit. Not retryable.
    #[error("feed {feed_id}: source_seq {attempted} is below the committed {committed}")]
    SeqRegressed {
        feed_id: String,
        attempted: i64,
        committed: i64,
    },
    /// The store could not be reached or refused the call.
    #[error("state store {op} on {table}: {message}")]
    Store {
        op: &'static str,
        table: String,
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

fn store_err<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
    table: &str,
) -> impl FnOnce(SdkError<E>) -> StateError {
    let table = table.to_string();
    move |e| StateError::Store {
        op,
        table,
        message: format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)),
    }
}

fn is_condition_failure<E>(e: &SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// A `create_table` answer: "already in use" means another process won
/// the race, which is as good as creating it.
fn created_or_in_use<'a>(
    table: &'a str,
) -> impl FnOnce(
    SdkError<aws_sdk_dynamodb::operation::create_table::CreateTableError>,
) -> Result<(), StateError>
+ 'a {
    move |e| {
        if e.as_service_error()
            .is_some_and(|se| se.is_resource_in_use_exception())
        {
            Ok(())
        } else {
            Err(store_err("create_table", table)(e))
        }
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Where feed state lives. DynamoDB ([`DynamoFeedState`]) is the
/// production store, shared by every ingestor of a fleet; the embedded
/// store ([`crate::embedded_state::EmbeddedFeedState`], one redb file) is
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
            std::sync::Arc::new(crate::embedded_state::EmbeddedFeedState::open(&file)?)
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

/// Feed state on DynamoDB.
#[derive(Clone)]
pub struct DynamoFeedState {
    client: Client,
    feeds: String,
    events: String,
    instances: String,
    /// How long health events are kept.
    pub event_ttl_secs: i64,
}

impl DynamoFeedState {
    pub fn new(client: Client, cfg: &StateStoreConfig) -> Self {
        Self {
            client,
            feeds: table_name(cfg, "feeds"),
            events: table_name(cfg, "feed_events"),
            instances: table_name(cfg, "instances"),
            event_ttl_secs: 30 * 86_400,
        }
    }

    /// Whether `table` exists. `describe_table`, not `list_tables`: a
    /// listing is paged (100 names a page) and an account may hold more.
    async fn table_exists(&self, table: &str) -> Result<bool, StateError> {
        match self.client.describe_table().table_name(table).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_err("describe_table", table)(e)),
        }
    }

    /// Creates `table` with string key `hash` (and sort key `range`) unless
    /// it exists; true when this call created it. A table another process
    /// created in the meantime counts as existing.
    async fn create_if_missing(
        &self,
        table: &str,
        hash: &str,
        range: Option<&str>,
    ) -> Result<bool, StateError> {
        if self.table_exists(table).await? {
            return Ok(false);
        }
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .expect("static")
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("static")
        };
        let mut req = self
            .client
            .create_table()
            .table_name(table)
            .attribute_definitions(attr(hash))
            .key_schema(key(hash, KeyType::Hash))
            .billing_mode(BillingMode::PayPerRequest);
        if let Some(range) = range {
            req = req
                .attribute_definitions(attr(range))
                .key_schema(key(range, KeyType::Range));
        }
        req.send()
            .await
            .map_or_else(created_or_in_use(table), |_| Ok(()))?;
        Ok(true)
    }

    /// Sends a conditional `UpdateItem` on the feeds table: the item's new
    /// attributes when the condition held, `None` when it did not.
    async fn update_if(
        &self,
        req: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StateError> {
        match req
            .table_name(&self.feeds)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(store_err("update_item", &self.feeds)(e)),
        }
    }
}

#[async_trait::async_trait]
impl FeedStateStore for DynamoFeedState {
    async fn ensure_tables(&self) -> Result<(), StateError> {
        self.create_if_missing(&self.feeds, "feed_id", None).await?;
        self.create_if_missing(&self.instances, "instance_id", None)
            .await?;
        if self
            .create_if_missing(&self.events, "feed_id", Some("sk"))
            .await?
        {
            self.client
                .update_time_to_live()
                .table_name(&self.events)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name("expires_at")
                        .enabled(true)
                        .build()
                        .expect("static"),
                )
                .send()
                .await
                .map_err(store_err("update_time_to_live", &self.events))?;
        }
        Ok(())
    }

    async fn load(&self, feed_id: &str) -> Result<Option<FeedState>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.feeds)
            .key("feed_id", s(feed_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_err("get_item", &self.feeds))?;
        Ok(out.item.map(|i| FeedState {
            feed_id: feed_id.to_string(),
            cursor: FeedCursor {
                etag: get_s(&i, "etag"),
                last_modified: get_s(&i, "last_modified"),
                version: get_s(&i, "version"),
                sha256: get_s(&i, "sha256"),
                next_request: get_s(&i, "next_request"),
                sftp_seen: get_s(&i, "sftp_seen"),
            },
            source_seq: get_n(&i, "source_seq").unwrap_or(0),
            health: get_s(&i, "health").unwrap_or_else(|| "healthy".into()),
            consecutive_failures: get_n(&i, "consecutive_failures").unwrap_or(0),
            paused: i.get("paused").and_then(|v| v.as_bool().ok()).copied() == Some(true),
            operator_gen: get_n(&i, "operator_gen").unwrap_or(0),
            last_change_ms: get_n(&i, "last_change_ms"),
            last_error_ms: get_n(&i, "last_error_ms"),
            last_fetch_ms: get_n(&i, "last_fetch_ms"),
            lease: match (
                get_s(&i, "lease_owner"),
                get_n(&i, "lease_expires_ms"),
                get_n(&i, "fencing"),
            ) {
                (Some(owner), Some(expires_ms), Some(fencing)) => Some(Lease {
                    feed_id: feed_id.to_string(),
                    owner,
                    expires_ms,
                    fencing,
                }),
                _ => None,
            },
        }))
    }

    async fn renew_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
        last_fetch_ms: Option<i64>,
    ) -> Result<Option<Lease>, StateError> {
        let expires = now_ms + ttl_ms;
        // Renewal: same owner, keep the fencing counter.
        let mut req = self
            .client
            .update_item()
            .key("feed_id", s(feed_id))
            .condition_expression("lease_owner = :me AND lease_expires_ms >= :now")
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now_ms));
        req = match last_fetch_ms {
            Some(at) => req
                .update_expression("SET lease_expires_ms = :exp, last_fetch_ms = :fetched")
                .expression_attribute_values(":fetched", n(at)),
            None => req.update_expression("SET lease_expires_ms = :exp"),
        };
        Ok(self.update_if(req).await?.map(|item| Lease {
            feed_id: feed_id.to_string(),
            owner: owner.to_string(),
            expires_ms: expires,
            fencing: get_n(&item, "fencing").unwrap_or(0),
        }))
    }

    async fn take_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StateError> {
        let expires = now_ms + ttl_ms;
        let req = self
            .client
            .update_item()
            .key("feed_id", s(feed_id))
            .update_expression(
                "SET lease_owner = :me, lease_expires_ms = :exp ADD fencing :one REMOVE handover_to",
            )
            .condition_expression("attribute_not_exists(lease_owner) OR lease_expires_ms < :now")
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1));
        Ok(self.update_if(req).await?.map(|item| Lease {
            feed_id: feed_id.to_string(),
            owner: owner.to_string(),
            expires_ms: expires,
            fencing: get_n(&item, "fencing").unwrap_or(1),
        }))
    }

    async fn request_handover(&self, seen: &LeaseRow, requester: &str) -> Result<bool, StateError> {
        let Some(owner) = seen.owner.as_deref() else {
            return Ok(false);
        };
        let req = self
            .client
            .update_item()
            .key("feed_id", s(&seen.feed_id))
            .update_expression("SET handover_to = :me")
            .condition_expression("lease_owner = :owner AND fencing = :seen")
            .expression_attribute_values(":me", s(requester))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":seen", n(seen.fencing));
        Ok(self.update_if(req).await?.is_some())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<bool, StateError> {
        let req = self
            .client
            .update_item()
            .key("feed_id", s(&lease.feed_id))
            .update_expression("SET lease_expires_ms = :zero REMOVE handover_to")
            .condition_expression("lease_owner = :me AND fencing = :f")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":me", s(&lease.owner))
            .expression_attribute_values(":f", n(lease.fencing));
        Ok(self.update_if(req).await?.is_some())
    }

    async fn lease_rows(&self) -> Result<Vec<LeaseRow>, StateError> {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.feeds)
                .consistent_read(true)
                .projection_expression(
                    "feed_id, lease_owner, lease_expires_ms, fencing, handover_to, operator_gen",
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_err("scan", &self.feeds))?;
            for item in out.items() {
                if let Some(feed_id) = get_s(item, "feed_id") {
                    rows.push(LeaseRow {
                        feed_id,
                        owner: get_s(item, "lease_owner"),
                        expires_ms: get_n(item, "lease_expires_ms").unwrap_or(0),
                        fencing: get_n(item, "fencing").unwrap_or(0),
                        handover_to: get_s(item, "handover_to"),
                        operator_gen: get_n(item, "operator_gen").unwrap_or(0),
                    });
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(rows);
            }
        }
    }

    async fn heartbeat(&self, instance: &str, now_ms: i64, ttl_ms: i64) -> Result<(), StateError> {
        self.client
            .put_item()
            .table_name(&self.instances)
            .item("instance_id", s(instance))
            .item("expires_ms", n(now_ms + ttl_ms))
            .item("seen_ms", n(now_ms))
            .send()
            .await
            .map_err(store_err("put_item", &self.instances))?;
        Ok(())
    }

    async fn live_instances(&self, now_ms: i64) -> Result<Vec<String>, StateError> {
        let mut live = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.instances)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_err("scan", &self.instances))?;
            for item in out.items() {
                let fresh = get_n(item, "expires_ms").is_some_and(|e| e > now_ms);
                if let Some(id) = get_s(item, "instance_id").filter(|_| fresh) {
                    live.push(id);
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                live.sort();
                return Ok(live);
            }
        }
    }

    async fn commit(
        &self,
        lease: &Lease,
        cursor: &FeedCursor,
        source_seq: i64,
        changed_at_ms: Option<i64>,
    ) -> Result<(), StateError> {
        let mut set = vec!["source_seq = :seq", "consecutive_failures = :zero"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.feeds)
            .key("feed_id", s(&lease.feed_id))
            .condition_expression("lease_owner = :me AND fencing = :fence AND (attribute_not_exists(source_seq) OR source_seq <= :seq)")
            .expression_attribute_values(":me", s(&lease.owner))
            .expression_attribute_values(":fence", n(lease.fencing))
            .expression_attribute_values(":seq", n(source_seq))
            .expression_attribute_values(":zero", n(0));
        let mut remove = Vec::new();
        for (field, value) in [
            ("etag", &cursor.etag),
            ("last_modified", &cursor.last_modified),
            ("version", &cursor.version),
            ("sha256", &cursor.sha256),
            ("next_request", &cursor.next_request),
            ("sftp_seen", &cursor.sftp_seen),
        ] {
            match value {
                Some(v) => {
                    set.push(match field {
                        "etag" => "etag = :etag",
                        "last_modified" => "last_modified = :last_modified",
                        "version" => "version = :version",
                        "sha256" => "sha256 = :sha256",
                        "next_request" => "next_request = :next_request",
                        _ => "sftp_seen = :sftp_seen",
                    });
                    req = req.expression_attribute_values(format!(":{field}"), s(v));
                }
                None => remove.push(field),
            }
        }
        if let Some(at) = changed_at_ms {
            set.push("last_change_ms = :changed");
            req = req.expression_attribute_values(":changed", n(at));
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        match req.update_expression(expr).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => {
                // Tell a lost lease from a backwards sequence number.
                let current = self.load(&lease.feed_id).await?;
                match current {
                    Some(st)
                        if st.lease.as_ref() == Some(lease)
                            || st.lease.as_ref().is_some_and(|l| {
                                l.owner == lease.owner && l.fencing == lease.fencing
                            }) =>
                    {
                        Err(StateError::SeqRegressed {
                            feed_id: lease.feed_id.clone(),
                            attempted: source_seq,
                            committed: st.source_seq,
                        })
                    }
                    _ => Err(StateError::Fenced {
                        feed_id: lease.feed_id.clone(),
                        owner: lease.owner.clone(),
                        fencing: lease.fencing,
                    }),
                }
            }
            Err(e) => Err(store_err("update_item", &self.feeds)(e)),
        }
    }

    async fn record_health(
        &self,
        lease: &Lease,
        event: &HealthEvent,
        consecutive_failures: i64,
    ) -> Result<(), StateError> {
        // A transition into trouble is also the feed's last error.
        let trouble = matches!(event.to.as_str(), "failing" | "quarantined");
        let mut req = self
            .client
            .update_item()
            .table_name(&self.feeds)
            .key("feed_id", s(&lease.feed_id))
            .update_expression(if trouble {
                "SET health = :h, consecutive_failures = :f, last_error_ms = :at"
            } else {
                "SET health = :h, consecutive_failures = :f"
            })
            .condition_expression("lease_owner = :me AND fencing = :fence")
            .expression_attribute_values(":h", s(&event.to))
            .expression_attribute_values(":f", n(consecutive_failures))
            .expression_attribute_values(":me", s(&lease.owner))
            .expression_attribute_values(":fence", n(lease.fencing));
        if trouble {
            req = req.expression_attribute_values(":at", n(event.at_ms));
        }
        let res = req.send().await;
        match res {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => {
                return Err(StateError::Fenced {
                    feed_id: lease.feed_id.clone(),
                    owner: lease.owner.clone(),
                    fencing: lease.fencing,
                });
            }
            Err(e) => return Err(store_err("update_item", &self.feeds)(e)),
        }
        self.append_event(&lease.feed_id, event).await
    }

    async fn store_operator_action(
        &self,
        feed_id: &str,
        action: OperatorAction,
    ) -> Result<String, StateError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.feeds)
            .key("feed_id", s(feed_id))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        let bump = "operator_gen = if_not_exists(operator_gen, :zero) + :one";
        req = match action {
            OperatorAction::Pause | OperatorAction::Resume => req
                .update_expression(format!(
                    "SET paused = :p, health = :h, consecutive_failures = :zero, {bump}"
                ))
                .expression_attribute_values(
                    ":p",
                    AttributeValue::Bool(action == OperatorAction::Pause),
                )
                .expression_attribute_values(":h", s(action.health_after().unwrap_or("healthy"))),
            OperatorAction::PollNow => req.update_expression(format!("SET {bump}")),
            OperatorAction::ResetCursor => req.update_expression(format!(
                "SET {bump} REMOVE etag, last_modified, version, sha256, next_request, sftp_seen"
            )),
        };
        let out = req
            .send()
            .await
            .map_err(store_err("update_item", &self.feeds))?;
        Ok(out
            .attributes()
            .and_then(|a| get_s(a, "health"))
            .unwrap_or_else(|| "healthy".into()))
    }

    async fn append_event(&self, feed_id: &str, event: &HealthEvent) -> Result<(), StateError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.events)
            .item("feed_id", s(feed_id))
            .item(
                "sk",
                s(&format!("{:013}#{}", event.at_ms, uuid::Uuid::now_v7())),
            )
            .item("at_ms", n(event.at_ms))
            .item("to", s(&event.to))
            .item("reason", s(&event.reason))
            .item("actor", s(&event.actor))
            .item("expires_at", n(event.at_ms / 1000 + self.event_ttl_secs));
        if let Some(from) = &event.from {
            req = req.item("from", s(from));
        }
        req.send()
            .await
            .map_err(store_err("put_item", &self.events))?;
        Ok(())
    }

    async fn history(
        &self,
        feed_id: &str,
        limit: i32,
        after: Option<String>,
    ) -> Result<(Vec<HealthEvent>, Option<String>), StateError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.events)
            .key_condition_expression("feed_id = :f")
            .expression_attribute_values(":f", s(feed_id))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(sk) = after {
            q = q
                .exclusive_start_key("feed_id", s(feed_id))
                .exclusive_start_key("sk", s(&sk));
        }
        let out = q.send().await.map_err(store_err("query", &self.events))?;
        let events = out
            .items()
            .iter()
            .map(|i| HealthEvent {
                at_ms: get_n(i, "at_ms").unwrap_or(0),
                from: get_s(i, "from"),
                to: get_s(i, "to").unwrap_or_default(),
                reason: get_s(i, "reason").unwrap_or_default(),
                actor: get_s(i, "actor").unwrap_or_default(),
            })
            .collect();
        let next = out.last_evaluated_key().and_then(|k| get_s(k, "sk"));
        Ok((events, next))
    }
}
