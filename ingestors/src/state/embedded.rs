//! Feed state in one local file (redb): the single-process default.
//!
//! A single `votewire ingest` on one machine needs no DynamoDB: this store
//! keeps the same rows (cursor, `source_seq`, health, lease, operator
//! generation, last fetch/change/error), the same health history and the
//! same rules as [`DynamoFeedState`](super::DynamoFeedState), behind
//! the same [`FeedStateStore`] trait. Every call is one redb write or read
//! transaction, committed durably (fsync) before the call returns, so a
//! cursor commit survives `kill -9` exactly as a DynamoDB write does.
//!
//! Leases work too (the same conditional checks run inside a transaction),
//! but redb locks its file to one process, so a fleet of ingestors sharing
//! feeds needs DynamoDB. Opening a file another process holds fails with a
//! [`StateError::Store`] that says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    FeedCursor, FeedState, FeedStateStore, HealthEvent, Lease, LeaseRow, OperatorAction, StateError,
};

/// `feed_id` → a JSON [`FeedRow`].
const FEEDS: TableDefinition<&str, &[u8]> = TableDefinition::new("feeds");
/// `feed_id \0 <at_ms:013>#<uuid v7>` → a JSON [`EventRow`].
const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("feed_events");
/// `instance_id` → heartbeat expiry (ms).
const INSTANCES: TableDefinition<&str, i64> = TableDefinition::new("instances");

/// One feed's stored row: the DynamoDB item's attributes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FeedRow {
    cursor: FeedCursor,
    source_seq: Option<i64>,
    health: Option<String>,
    consecutive_failures: i64,
    paused: bool,
    operator_gen: i64,
    last_change_ms: Option<i64>,
    last_error_ms: Option<i64>,
    last_fetch_ms: Option<i64>,
    lease_owner: Option<String>,
    lease_expires_ms: i64,
    fencing: i64,
    handover_to: Option<String>,
}

impl FeedRow {
    fn holds(&self, lease: &Lease) -> bool {
        self.lease_owner.as_deref() == Some(lease.owner.as_str()) && self.fencing == lease.fencing
    }

    fn lease(&self, feed_id: &str) -> Option<Lease> {
        self.lease_owner.as_ref().map(|owner| Lease {
            feed_id: feed_id.to_string(),
            owner: owner.clone(),
            expires_ms: self.lease_expires_ms,
            fencing: self.fencing,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct EventRow {
    at_ms: i64,
    from: Option<String>,
    to: String,
    reason: String,
    actor: String,
    expires_at_ms: i64,
}

/// Feed state in a redb file.
#[derive(Clone)]
pub struct EmbeddedFeedState {
    db: Arc<Database>,
    path: PathBuf,
    /// How long health events are kept.
    pub event_ttl_ms: i64,
}

fn store_err(op: &'static str, table: &str) -> impl FnOnce(String) -> StateError + use<> {
    let table = format!("embedded {table}");
    move |message| StateError::Store { op, table, message }
}

/// Maps a redb error (any of its per-call error types) to a store error.
fn redb_err<E: std::fmt::Display>(
    op: &'static str,
    table: &'static str,
) -> impl Fn(E) -> StateError {
    move |e| store_err(op, table)(e.to_string())
}

fn read_row(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    feed_id: &str,
) -> Result<Option<FeedRow>, StateError> {
    let Some(raw) = t.get(feed_id).map_err(redb_err("get", "feeds"))? else {
        return Ok(None);
    };
    serde_json::from_slice(raw.value())
        .map(Some)
        .map_err(|e| store_err("decode", "feeds")(format!("row {feed_id}: {e}")))
}

fn write_row(txn: &WriteTransaction, feed_id: &str, row: &FeedRow) -> Result<(), StateError> {
    let bytes = serde_json::to_vec(row).map_err(|e| store_err("encode", "feeds")(e.to_string()))?;
    let mut t = txn.open_table(FEEDS).map_err(redb_err("open", "feeds"))?;
    t.insert(feed_id, bytes.as_slice())
        .map_err(redb_err("insert", "feeds"))?;
    Ok(())
}

/// Reads `feed_id`'s row inside `txn`, lets `change` decide (returning
/// `None` leaves the row alone, like a failed DynamoDB condition), and
/// writes the changed row back.
fn update_row<T>(
    txn: &WriteTransaction,
    feed_id: &str,
    change: impl FnOnce(&mut FeedRow, bool) -> Option<T>,
) -> Result<Option<T>, StateError> {
    let existing = {
        let t = txn.open_table(FEEDS).map_err(redb_err("open", "feeds"))?;
        read_row(&t, feed_id)?
    };
    let exists = existing.is_some();
    let mut row = existing.unwrap_or_default();
    let out = change(&mut row, exists);
    if out.is_some() {
        write_row(txn, feed_id, &row)?;
    }
    Ok(out)
}

fn event_key(feed_id: &str, sk: &str) -> String {
    format!("{feed_id}\0{sk}")
}

impl EmbeddedFeedState {
    /// Opens (or creates) the store at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| store_err("create_dir", "file")(format!("{}: {e}", dir.display())))?;
        }
        let db = Database::create(path).map_err(|e| {
            store_err("open", "file")(format!(
                "{}: {e} (the embedded store serves one process; a fleet of ingestors needs DynamoDB)",
                path.display()
            ))
        })?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
            event_ttl_ms: 30 * 86_400_000,
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction on a blocking thread and commits
    /// it (durably) when `f` succeeds; an error aborts the transaction.
    async fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(redb_err(op, "file"))?;
            let out = f(&txn)?;
            txn.commit().map_err(redb_err(op, "file"))?;
            Ok(out)
        })
        .await
        .map_err(|e| store_err(op, "file")(e.to_string()))?
    }

    /// Runs `f` on a read snapshot on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(redb_err(op, "file"))?;
            f(&txn)
        })
        .await
        .map_err(|e| store_err(op, "file")(e.to_string()))?
    }
}

#[async_trait::async_trait]
impl FeedStateStore for EmbeddedFeedState {
    async fn ensure_tables(&self) -> Result<(), StateError> {
        self.write("create_table", |txn| {
            txn.open_table(FEEDS).map_err(redb_err("open", "feeds"))?;
            txn.open_table(EVENTS)
                .map_err(redb_err("open", "feed_events"))?;
            txn.open_table(INSTANCES)
                .map_err(redb_err("open", "instances"))?;
            Ok(())
        })
        .await
    }

    async fn load(&self, feed_id: &str) -> Result<Option<FeedState>, StateError> {
        let id = feed_id.to_string();
        self.read("get_item", move |txn| {
            let t = txn.open_table(FEEDS).map_err(redb_err("open", "feeds"))?;
            Ok(read_row(&t, &id)?.map(|row| FeedState {
                lease: row.lease(&id),
                feed_id: id,
                cursor: row.cursor,
                source_seq: row.source_seq.unwrap_or(0),
                health: row.health.unwrap_or_else(|| "healthy".into()),
                consecutive_failures: row.consecutive_failures,
                paused: row.paused,
                operator_gen: row.operator_gen,
                last_change_ms: row.last_change_ms,
                last_error_ms: row.last_error_ms,
                last_fetch_ms: row.last_fetch_ms,
            }))
        })
        .await
    }

    async fn renew_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
        last_fetch_ms: Option<i64>,
    ) -> Result<Option<Lease>, StateError> {
        let (id, me) = (feed_id.to_string(), owner.to_string());
        self.write("renew_lease", move |txn| {
            update_row(txn, &id, |row, _| {
                if row.lease_owner.as_deref() != Some(me.as_str()) || row.lease_expires_ms < now_ms
                {
                    return None;
                }
                row.lease_expires_ms = now_ms + ttl_ms;
                if last_fetch_ms.is_some() {
                    row.last_fetch_ms = last_fetch_ms;
                }
                row.lease(&id)
            })
        })
        .await
    }

    async fn take_lease(
        &self,
        feed_id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StateError> {
        let (id, me) = (feed_id.to_string(), owner.to_string());
        self.write("take_lease", move |txn| {
            update_row(txn, &id, |row, _| {
                if row.lease_owner.is_some() && row.lease_expires_ms >= now_ms {
                    return None;
                }
                row.lease_owner = Some(me);
                row.lease_expires_ms = now_ms + ttl_ms;
                row.fencing += 1;
                row.handover_to = None;
                row.lease(&id)
            })
        })
        .await
    }

    async fn request_handover(&self, seen: &LeaseRow, requester: &str) -> Result<bool, StateError> {
        let Some(owner) = seen.owner.clone() else {
            return Ok(false);
        };
        let (id, fencing, me) = (seen.feed_id.clone(), seen.fencing, requester.to_string());
        self.write("request_handover", move |txn| {
            update_row(txn, &id, |row, exists| {
                let held = exists
                    && row.lease_owner.as_deref() == Some(owner.as_str())
                    && row.fencing == fencing;
                held.then(|| row.handover_to = Some(me))
            })
        })
        .await
        .map(|done| done.is_some())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<bool, StateError> {
        let lease = lease.clone();
        self.write("release_lease", move |txn| {
            update_row(txn, &lease.feed_id, |row, _| {
                row.holds(&lease).then(|| {
                    row.lease_expires_ms = 0;
                    row.handover_to = None;
                })
            })
        })
        .await
        .map(|done| done.is_some())
    }

    async fn lease_rows(&self) -> Result<Vec<LeaseRow>, StateError> {
        self.read("scan", |txn| {
            let t = txn.open_table(FEEDS).map_err(redb_err("open", "feeds"))?;
            let mut rows = Vec::new();
            for entry in t.iter().map_err(redb_err("scan", "feeds"))? {
                let (k, v) = entry.map_err(redb_err("scan", "feeds"))?;
                let feed_id = k.value().to_string();
                let row: FeedRow = serde_json::from_slice(v.value())
                    .map_err(|e| store_err("decode", "feeds")(format!("row {feed_id}: {e}")))?;
                rows.push(LeaseRow {
                    feed_id,
                    owner: row.lease_owner,
                    expires_ms: row.lease_expires_ms,
                    fencing: row.fencing,
                    handover_to: row.handover_to,
                    operator_gen: row.operator_gen,
                });
            }
            Ok(rows)
        })
        .await
    }

    async fn heartbeat(&self, instance: &str, now_ms: i64, ttl_ms: i64) -> Result<(), StateError> {
        let id = instance.to_string();
        self.write("put_item", move |txn| {
            let mut t = txn
                .open_table(INSTANCES)
                .map_err(redb_err("open", "instances"))?;
            t.insert(id.as_str(), now_ms + ttl_ms)
                .map_err(redb_err("insert", "instances"))?;
            Ok(())
        })
        .await
    }

    async fn live_instances(&self, now_ms: i64) -> Result<Vec<String>, StateError> {
        self.read("scan", move |txn| {
            let t = txn
                .open_table(INSTANCES)
                .map_err(redb_err("open", "instances"))?;
            let mut live = Vec::new();
            for entry in t.iter().map_err(redb_err("scan", "instances"))? {
                let (k, v) = entry.map_err(redb_err("scan", "instances"))?;
                if v.value() > now_ms {
                    live.push(k.value().to_string());
                }
            }
            Ok(live)
        })
        .await
    }

    async fn commit(
        &self,
        lease: &Lease,
        cursor: &FeedCursor,
        source_seq: i64,
        changed_at_ms: Option<i64>,
    ) -> Result<(), StateError> {
        let (lease, cursor) = (lease.clone(), cursor.clone());
        self.write("update_item", move |txn| {
            let outcome = update_row(txn, &lease.feed_id, |row, _| {
                if !row.holds(&lease) {
                    return Some(Err(StateError::Fenced {
                        feed_id: lease.feed_id.clone(),
                        owner: lease.owner.clone(),
                        fencing: lease.fencing,
                    }));
                }
                if let Some(committed) = row.source_seq.filter(|c| *c > source_seq) {
                    return Some(Err(StateError::SeqRegressed {
                        feed_id: lease.feed_id.clone(),
                        attempted: source_seq,
                        committed,
                    }));
                }
                row.cursor = cursor;
                row.source_seq = Some(source_seq);
                row.consecutive_failures = 0;
                if changed_at_ms.is_some() {
                    row.last_change_ms = changed_at_ms;
                }
                Some(Ok(()))
            })?;
            // A refused commit aborts the transaction: nothing is written.
            outcome.expect("the closure always answers")
        })
        .await
    }

    async fn record_health(
        &self,
        lease: &Lease,
        event: &HealthEvent,
        consecutive_failures: i64,
    ) -> Result<(), StateError> {
        let (lease, event) = (lease.clone(), event.clone());
        let feed_id = lease.feed_id.clone();
        let recorded = event.clone();
        self.write("update_item", move |txn| {
            update_row(txn, &lease.feed_id, |row, _| {
                row.holds(&lease).then(|| {
                    row.health = Some(event.to.clone());
                    row.consecutive_failures = consecutive_failures;
                    if matches!(event.to.as_str(), "failing" | "quarantined") {
                        row.last_error_ms = Some(event.at_ms);
                    }
                })
            })?
            .ok_or_else(|| StateError::Fenced {
                feed_id: lease.feed_id.clone(),
                owner: lease.owner.clone(),
                fencing: lease.fencing,
            })
        })
        .await?;
        self.append_event(&feed_id, &recorded).await
    }

    async fn store_operator_action(
        &self,
        feed_id: &str,
        action: OperatorAction,
    ) -> Result<String, StateError> {
        let id = feed_id.to_string();
        self.write("update_item", move |txn| {
            update_row(txn, &id, |row, _| {
                let before = row.health.clone();
                match action {
                    OperatorAction::Pause | OperatorAction::Resume => {
                        row.health = action.health_after().map(str::to_string);
                        row.paused = action == OperatorAction::Pause;
                        row.consecutive_failures = 0;
                    }
                    OperatorAction::PollNow => {}
                    OperatorAction::ResetCursor => row.cursor = FeedCursor::default(),
                }
                row.operator_gen += 1;
                Some(before.unwrap_or_else(|| "healthy".into()))
            })
            .map(|from| from.expect("always written"))
        })
        .await
    }

    async fn append_event(&self, feed_id: &str, event: &HealthEvent) -> Result<(), StateError> {
        let key = event_key(
            feed_id,
            &format!("{:013}#{}", event.at_ms, uuid::Uuid::now_v7()),
        );
        let row = EventRow {
            at_ms: event.at_ms,
            from: event.from.clone(),
            to: event.to.clone(),
            reason: event.reason.clone(),
            actor: event.actor.clone(),
            expires_at_ms: event.at_ms + self.event_ttl_ms,
        };
        let bytes = serde_json::to_vec(&row)
            .map_err(|e| store_err("encode", "feed_events")(e.to_string()))?;
        let (prefix, now) = (event_key(feed_id, ""), event.at_ms);
        self.write("put_item", move |txn| {
            let mut t = txn
                .open_table(EVENTS)
                .map_err(redb_err("open", "feed_events"))?;
            t.insert(key.as_str(), bytes.as_slice())
                .map_err(redb_err("insert", "feed_events"))?;
            // The TTL: this feed's expired events are the oldest keys.
            let expired: Vec<String> = t
                .range(prefix.as_str()..)
                .map_err(redb_err("scan", "feed_events"))?
                .map_while(|entry| {
                    let (k, v) = entry.ok()?;
                    let k = k.value();
                    let row: EventRow = serde_json::from_slice(v.value()).ok()?;
                    (k.starts_with(prefix.as_str()) && row.expires_at_ms < now)
                        .then(|| k.to_string())
                })
                .collect();
            for k in expired {
                t.remove(k.as_str())
                    .map_err(redb_err("delete", "feed_events"))?;
            }
            Ok(())
        })
        .await
    }

    async fn history(
        &self,
        feed_id: &str,
        limit: i32,
        after: Option<String>,
    ) -> Result<(Vec<HealthEvent>, Option<String>), StateError> {
        let prefix = event_key(feed_id, "");
        let end = match after {
            Some(sk) => event_key(feed_id, &sk),
            // `\u{1}` sorts after the `\0` separator: the end of this feed.
            None => format!("{feed_id}\u{1}"),
        };
        let limit = limit.max(1) as usize;
        self.read("query", move |txn| {
            let t = txn
                .open_table(EVENTS)
                .map_err(redb_err("open", "feed_events"))?;
            let mut events = Vec::new();
            let mut next = None;
            for entry in t
                .range(prefix.as_str()..end.as_str())
                .map_err(redb_err("query", "feed_events"))?
                .rev()
            {
                let (k, v) = entry.map_err(redb_err("query", "feed_events"))?;
                if events.len() == limit {
                    next = events
                        .last()
                        .map(|(sk, _): &(String, HealthEvent)| sk.clone());
                    break;
                }
                let row: EventRow = serde_json::from_slice(v.value())
                    .map_err(|e| store_err("decode", "feed_events")(e.to_string()))?;
                let sk = k.value()[prefix.len()..].to_string();
                events.push((
                    sk,
                    HealthEvent {
                        at_ms: row.at_ms,
                        from: row.from,
                        to: row.to,
                        reason: row.reason,
                        actor: row.actor,
                    },
                ));
            }
            Ok((events.into_iter().map(|(_, e)| e).collect(), next))
        })
        .await
    }
}
