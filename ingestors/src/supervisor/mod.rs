//! One ingestor instance's supervisor: it heartbeats, runs lease rounds
//! over the registry's enabled feeds, and runs one feed loop per leased
//! feed (one fetch in flight, scheduled from completion). Feeds handed over
//! or lost are stopped before their lease is released. It is to the
//! ingestors what `votewire_aggregator::fleet::run_member` is to the
//! aggregators; `votewire ingest` builds its parts and runs it.
//!
//! The registry is re-read when its files change: added feeds join the
//! next lease round, removed feeds stop and release their lease, changed
//! feeds restart with their new config, and every other feed keeps running
//! undisturbed. An invalid edit is reported and the previous registry stays
//! in force. Operator actions (`votewire feeds pause|resume`) bump a feed's
//! operator generation; a running feed whose generation moved restarts and
//! reads its new state.
//!
//! Every source kind runs the same step ([`crate::live_feed::LiveFeed`]).
//! A feed whose entry cannot be resolved (a missing secret or companion
//! file) is reported and not started; the others run.
//!
//! Delivery semantics are the step's: a feed stopped anywhere republishes
//! from its stored cursor under its next lease, never skips.

mod feed_task;
mod registry_watch;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::feed_metrics::{self, LeaseRoundFacts};
use crate::feed_tools::FeedTools;
use crate::feeds::{ValidFeed, load_registry};
use crate::lease_plan::{LeaseClock, LeaseRound, lease_round};
use crate::publish::Publisher;
use crate::state::{FeedStateStore, Lease, StateError};
use feed_task::{RunningFeed, spawn_feed};
use registry_watch::{FileStamp, add_mapping_stamps, by_id, registry_stamp};

/// How long after a peer's lease would lapse the round that may take it
/// runs: clock reads and the store's own write time differ by a few ms.
const LAPSE_MARGIN: Duration = Duration::from_millis(100);

/// The least time between the end of a round and an extra round run for a
/// lapse: a dead peer's leases lapse in a few batches, and each extra
/// round reads the whole lease table.
const LAPSE_MIN_GAP: Duration = Duration::from_millis(500);

/// How an instance runs.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// The feed registry: a TOML file, or a folder of them.
    pub feeds: PathBuf,
    /// This instance's name, in leases and health records.
    pub instance: String,
    /// Lease time to live; rounds run every third of it.
    pub lease_ttl: Duration,
    /// Stop after this long, releasing leases.
    pub run_for: Option<Duration>,
    /// Consecutive rejected payloads before a feed is quarantined.
    pub quarantine_after: u32,
    /// Print one line per accepted or rejected payload on stdout
    /// (`feed=… seq=… cells=… changed=…`, `feed=… rejected (dead-lettered)`).
    pub print_payloads: bool,
}

/// What an instance's feeds share: where state and cells go, and the
/// fetch and transform tools.
pub struct InstanceParts {
    /// The feed-state store: leases, cursors and health (DynamoDB or the embedded file).
    pub state: Arc<dyn FeedStateStore>,
    /// Produces the feeds' records to Kafka: cells, snapshots, feed statuses and dead
    /// letters.
    pub publisher: Publisher,
    /// What feeds share for fetching and transforming: HTTP clients, host gate, raw
    /// archive, transform slots.
    pub tools: FeedTools,
}

/// Why an instance could not run. A lease round that fails is not one of
/// these: feeds keep running until their TTL, and the next round tries
/// again.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The first heartbeat did not reach the state store: retry when it
    /// answers.
    #[error("announcing this instance in the feed-state store: {0}")]
    Announce(#[source] StateError),
}

impl SupervisorError {
    /// Whether starting again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SupervisorError::Announce(e) => e.is_retryable(),
        }
    }
}

/// What every feed task of the instance reads.
struct Shared {
    state: Arc<dyn FeedStateStore>,
    /// When each running feed last fetched (ms), stored with its next
    /// lease renewal.
    last_fetch: std::sync::Mutex<HashMap<String, i64>>,
    publisher: Publisher,
    tools: FeedTools,
    instance: String,
    quarantine_after: u32,
    print_payloads: bool,
    /// Feeds loading their state at once: a thousand feeds starting
    /// together must not open a thousand state-store connections.
    resumes: tokio::sync::Semaphore,
}

/// Runs an instance over `registry` (read from `settings.feeds`, enabled
/// feeds only) until `stop` resolves or `settings.run_for` has passed,
/// then withdraws its heartbeat, stops its feeds and releases their
/// leases; returns how many it released. `on_round` sees each lease
/// round's outcome (readiness follows it).
pub async fn run_instance(
    settings: &InstanceSettings,
    parts: InstanceParts,
    registry: Vec<ValidFeed>,
    mut on_round: impl FnMut(Result<(), &StateError>),
    stop: impl Future<Output = ()>,
) -> Result<usize, SupervisorError> {
    let shared = Arc::new(Shared {
        state: parts.state,
        last_fetch: std::sync::Mutex::new(HashMap::new()),
        publisher: parts.publisher,
        tools: parts.tools,
        instance: settings.instance.clone(),
        quarantine_after: settings.quarantine_after,
        print_payloads: settings.print_payloads,
        resumes: tokio::sync::Semaphore::new(16),
    });
    let stamp = registry_stamp(&settings.feeds, registry.iter().filter(|f| f.entry.enabled));
    let mut instance = Instance::new(settings, shared, by_id(registry), stamp);
    let ttl = settings.lease_ttl;
    tracing::info!(
        "instance {}, {} feed(s), lease TTL {ttl:?}",
        settings.instance,
        instance.feeds.len()
    );
    // Announce this instance; the first lease round comes a third of the
    // TTL later, like every other. Instances started together so count each
    // other in it, instead of the first one up taking every feed for the
    // others to ask back. Only an instance past its Kafka checks announces
    // itself, so one crash-looping on a bad config is never counted, and
    // never leaves a share of the feeds waiting for it.
    instance
        .shared
        .state
        .heartbeat(
            &settings.instance,
            votewire_core::unix_ms(),
            instance.ttl_ms(),
        )
        .await
        .map_err(SupervisorError::Announce)?;
    // Rounds start every third of the TTL, however long each took (back to
    // back when one took longer). `run_for` counts from the first.
    let mut next_round = tokio::time::Instant::now() + ttl / 3;
    let started = next_round;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_round) => {}
            _ = &mut stop => break,
        }
        instance.reload_if_edited().await;
        next_round = instance.lease_round(&mut on_round).await;
        if settings.run_for.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    Ok(instance.shutdown().await)
}

/// An instance's running state between rounds.
struct Instance<'a> {
    settings: &'a InstanceSettings,
    shared: Arc<Shared>,
    /// The enabled feeds by id, and their priorities for lease rounds.
    feeds: HashMap<String, ValidFeed>,
    prios: Vec<(String, i32)>,
    /// The registry's files as they looked at the last load.
    stamp: Vec<FileStamp>,
    running: HashMap<String, RunningFeed>,
    held: Vec<Lease>,
    /// How long the last lease round took.
    last_round: Duration,
}

fn prios_of(feeds: &HashMap<String, ValidFeed>) -> Vec<(String, i32)> {
    feeds
        .values()
        .map(|f| (f.entry.id.get_ref().clone(), f.entry.priority()))
        .collect()
}

impl<'a> Instance<'a> {
    fn new(
        settings: &'a InstanceSettings,
        shared: Arc<Shared>,
        feeds: HashMap<String, ValidFeed>,
        stamp: Vec<FileStamp>,
    ) -> Instance<'a> {
        Instance {
            settings,
            shared,
            prios: prios_of(&feeds),
            feeds,
            stamp,
            running: HashMap::new(),
            held: Vec::new(),
            last_round: Duration::ZERO,
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.settings.lease_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Hot reload: re-reads the registry when its files changed. Removed
    /// feeds stop and release their lease, changed ones stop (the next
    /// round restarts them), the rest run on.
    async fn reload_if_edited(&mut self) {
        let now_stamp = registry_stamp(&self.settings.feeds, self.feeds.values());
        if now_stamp == self.stamp {
            return;
        }
        self.stamp = now_stamp;
        let next = match load_registry(&self.settings.feeds) {
            Err(errors) => {
                for e in &errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    "registry edit has {} problem(s); still running the previous registry",
                    errors.len()
                );
                return;
            }
            Ok(next) => by_id(next),
        };
        // The new feeds' mapping files outside the registry join the stamp
        // as they are now (read a moment ago); the rest stays as it was
        // before this load, so an edit made while it ran reloads again.
        add_mapping_stamps(&mut self.stamp, next.values());
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for (id, old) in &self.feeds {
            match next.get(id) {
                None => {
                    removed += 1;
                    feed_metrics::forget_feed(id);
                    if let Some(r) = self.running.remove(id) {
                        r.stop().await;
                    }
                    if let Some(pos) = self.held.iter().position(|l| &l.feed_id == id) {
                        let lease = self.held.remove(pos);
                        let _ = self.shared.state.release_lease(&lease).await;
                    }
                }
                Some(new) if new.entry != old.entry => {
                    changed += 1;
                    if let Some(r) = self.running.remove(id) {
                        r.stop().await;
                    }
                }
                Some(_) => {}
            }
        }
        added += next
            .keys()
            .filter(|id| !self.feeds.contains_key(*id))
            .count();
        tracing::info!(
            "registry reloaded: {added} added, {removed} removed, {changed} changed, {} feed(s)",
            next.len()
        );
        self.feeds = next;
        self.prios = prios_of(&self.feeds);
    }

    /// One lease round, and what it decided applied; when the next one is
    /// due.
    async fn lease_round(
        &mut self,
        on_round: &mut impl FnMut(Result<(), &StateError>),
    ) -> tokio::time::Instant {
        let ttl = self.settings.lease_ttl;
        let round_started = tokio::time::Instant::now();
        let mut next_round = round_started + ttl / 3;
        let last_fetch = self
            .shared
            .last_fetch
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let clock = LeaseClock {
            now_ms: votewire_core::unix_ms(),
            ttl_ms: self.ttl_ms(),
            last_round_ms: i64::try_from(self.last_round.as_millis()).unwrap_or(i64::MAX),
        };
        let round_result = lease_round(
            self.shared.state.as_ref(),
            &self.settings.instance,
            &self.prios,
            &last_fetch,
            clock,
            5,
        )
        .await;
        self.last_round = round_started.elapsed();
        on_round(round_result.as_ref().map(|_| ()));
        let last_round = self.last_round;
        if last_round > ttl / 3 {
            tracing::warn!(
                "lease round took {last_round:?} (TTL {ttl:?}): the state store is slow; leases may lapse"
            );
        }
        // A peer that died leaves its leases to lapse, and its heartbeat
        // lapses no later than they do (`LeaseClock::renew_within_ms`): the
        // next round runs just after the earliest foreign lease would
        // lapse, so a dead peer's feeds move within one round of their
        // lapse, not a third of the TTL later. A live peer renews before
        // that, and the extra round then only renews and reads.
        if let Ok(round) = &round_result
            && let Some(lapse_ms) = round.next_foreign_lapse_ms
        {
            let until = u64::try_from(lapse_ms - clock.now_ms).unwrap_or(0);
            let wake = (round_started + Duration::from_millis(until) + LAPSE_MARGIN)
                .max(tokio::time::Instant::now() + LAPSE_MIN_GAP);
            next_round = next_round.min(wake);
        }
        match round_result {
            Ok(round) => self.apply_round(round).await,
            Err(e) => {
                tracing::warn!("lease round failed (feeds keep running until their TTL): {e}")
            }
        }
        next_round
    }

    /// Hands over what a peer asked for, stops feeds whose lease was lost,
    /// moved or whose operator generation moved, then starts every held
    /// feed not running.
    async fn apply_round(&mut self, round: LeaseRound) {
        for lease in &round.hand_over {
            feed_metrics::forget_feed(&lease.feed_id);
            if let Some(r) = self.running.remove(&lease.feed_id) {
                r.stop().await;
            }
            if let Err(e) = self.shared.state.release_lease(lease).await {
                tracing::warn!(feed = %lease.feed_id, "feed {}: releasing the lease: {e}", lease.feed_id);
            }
            tracing::info!(feed = %lease.feed_id, "feed {}: handed over", lease.feed_id);
        }
        let now_held: HashSet<&str> = round.held.iter().map(|l| l.feed_id.as_str()).collect();
        let lost: Vec<String> = self
            .running
            .keys()
            .filter(|f| !now_held.contains(f.as_str()))
            .cloned()
            .collect();
        let held_before: HashSet<&str> = self.held.iter().map(|l| l.feed_id.as_str()).collect();
        let taken = now_held.difference(&held_before).count();
        feed_metrics::record_lease_round(&LeaseRoundFacts {
            took: self.last_round,
            taken,
            handed_over: round.hand_over.len(),
            lost: lost.len(),
        });
        for f in lost {
            feed_metrics::forget_feed(&f);
            if let Some(r) = self.running.remove(&f) {
                r.stop().await;
                tracing::warn!(feed = %f, "feed {f}: lease lost, stopped");
            }
        }
        self.restart_stale(&round).await;
        // Operator actions: a feed whose generation moved restarts.
        let flags = &round.operator_gens;
        let gen_of = |id: &str| flags.get(id).copied().unwrap_or(0);
        let moved: Vec<String> = self
            .running
            .iter()
            .filter(|(id, r)| flags.contains_key(id.as_str()) && r.operator_gen != gen_of(id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in moved {
            if let Some(r) = self.running.remove(&id) {
                r.stop().await;
                tracing::info!(feed = %id, "feed {id}: operator action, restarting");
            }
        }
        for lease in &round.held {
            if self.running.contains_key(&lease.feed_id) {
                continue;
            }
            if let Some(feed) = self.feeds.get(&lease.feed_id) {
                tracing::info!(feed = %lease.feed_id, fencing = lease.fencing, "feed {}: leased (fencing {})", lease.feed_id, lease.fencing);
                let r = spawn_feed(
                    self.shared.clone(),
                    feed,
                    lease.clone(),
                    gen_of(&lease.feed_id),
                );
                self.running.insert(lease.feed_id.clone(), r);
            }
        }
        self.held = round.held;
    }

    /// A lease this instance let lapse and took straight back (fencing one
    /// higher: nobody held it in between) is handed to the running feed,
    /// which keeps its change memory. A feed loop that ended by itself (a
    /// lost lease, a bug), or whose lease moved further, restarts from
    /// stored state.
    async fn restart_stale(&mut self, round: &LeaseRound) {
        let mut stale: Vec<String> = Vec::new();
        for l in &round.held {
            let Some(r) = self.running.get(&l.feed_id) else {
                continue;
            };
            let current = r.lease.borrow().fencing;
            if l.fencing == current || l.fencing == current + 1 {
                r.lease.send_replace(l.clone());
            } else {
                stale.push(l.feed_id.clone());
            }
        }
        stale.extend(
            self.running
                .iter()
                .filter(|(_, r)| r.task.is_finished())
                .map(|(id, _)| id.clone()),
        );
        for id in stale {
            if let Some(r) = self.running.remove(&id) {
                r.stop().await;
                tracing::info!(feed = %id, "feed {id}: restarting under its current lease");
            }
        }
    }

    /// Withdraws the heartbeat first (it expires now): the others stop
    /// counting this instance and take its released leases in their next
    /// round, instead of leaving its share free until the heartbeat lapses.
    /// Then stops every feed and releases its lease.
    async fn shutdown(mut self) -> usize {
        if let Err(e) = self
            .shared
            .state
            .heartbeat(&self.settings.instance, votewire_core::unix_ms(), 0)
            .await
        {
            tracing::warn!("withdrawing the heartbeat: {e}");
        }
        for (_, r) in self.running.drain() {
            r.stop().await;
        }
        for lease in &self.held {
            let _ = self.shared.state.release_lease(lease).await;
        }
        self.held.len()
    }
}
