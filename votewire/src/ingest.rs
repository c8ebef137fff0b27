//! `votewire ingest`: one ingestor instance. It heartbeats, runs lease
//! rounds over the registry's enabled feeds, and runs one feed loop per
//! leased feed (one fetch in flight, scheduled from completion). Feeds
//! handed over or lost are stopped before their lease is released.
//!
//! The registry is re-read when its files change: added feeds join the
//! next lease round, removed feeds stop and release their lease, changed
//! feeds restart with their new config, and every other feed keeps running
//! undisturbed. An invalid edit is reported and the previous registry stays
//! in force. Operator actions (`votewire feeds pause|resume`) bump a feed's
//! operator generation; a running feed whose generation moved restarts and
//! reads its new state.
//!
//! Every source kind (Clarity, HTTP, HTML, AP, SFTP) runs the same step
//! ([`votewire_ingestors::live_feed::LiveFeed`]). A feed whose entry cannot
//! be resolved (a missing secret or companion file) is reported and not
//! started; the others run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::{Mutex, watch};
use votewire_core::config::VotewireConfig;
use votewire_core::kafka::{producer_config, topic_partitions};
use votewire_core::topics::ensure_declared_topics;
use votewire_ingestors::archive::RawArchive;
use votewire_ingestors::cadence::{FeedCadence, StepOutcome, run_feed_loop};
use votewire_ingestors::conditional::Backoff;
use votewire_ingestors::feeds::{
    ValidFeed, duration_arg, load_registry, parse_duration, registry_files,
};
use votewire_ingestors::health::HealthMachine;
use votewire_ingestors::http::{FetchLimits, client_for, credentialed_client_for};
use votewire_ingestors::lease_plan::{LeaseClock, lease_round};
use votewire_ingestors::live_feed::{FeedSpec, FeedStepError, FeedTools, LiveFeed};
use votewire_ingestors::publish::Publisher;
use votewire_ingestors::state::{FeedStateStore, Lease, StateError, open_feed_state};

/// How long after a peer's lease would lapse the round that may take it
/// runs: clock reads and the store's own write time differ by a few ms.
const LAPSE_MARGIN: Duration = Duration::from_millis(100);

/// The least time between the end of a round and an extra round run for a
/// lapse: a dead peer's leases lapse in a few batches, and each extra
/// round reads the whole lease table.
const LAPSE_MIN_GAP: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "VOTEWIRE_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The feed registry: a TOML file, or a folder of them read with its
    /// sub-folders.
    #[arg(long, env = "VOTEWIRE_FEEDS")]
    feeds: PathBuf,
    /// This instance's name (default: host name and process id).
    #[arg(long, env = "VOTEWIRE_INSTANCE")]
    instance: Option<String>,
    /// Lease time to live; rounds run every third of it.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    lease_ttl: Duration,
    /// Stop after this long (for replays and tests), releasing leases.
    #[arg(long, value_parser = duration_arg)]
    run_for: Option<Duration>,
    /// Consecutive rejected payloads before a feed is quarantined.
    #[arg(long, default_value_t = 5)]
    quarantine_after: u32,
    /// Concurrent fetches per host (every feed on a host shares them).
    #[arg(long, default_value_t = 8)]
    per_host: usize,
    /// Print one line per accepted or rejected payload on stdout.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    print_payloads: bool,
}

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

struct RunningFeed {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The operator generation it started under.
    operator_gen: i64,
    /// The lease it commits under; updated in place when this instance
    /// re-takes its own lapsed lease.
    lease: watch::Sender<Lease>,
}

impl RunningFeed {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One file as it looked: what a registry change is noticed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    mtime: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: PathBuf) -> FileStamp {
        let meta = std::fs::metadata(&path).ok();
        FileStamp {
            len: meta.as_ref().map_or(0, |m| m.len()),
            mtime: meta.and_then(|m| m.modified().ok()),
            path,
        }
    }
}

/// The mapping files `feeds` name.
fn mapping_files<'a>(feeds: impl Iterator<Item = &'a ValidFeed>) -> impl Iterator<Item = PathBuf> {
    feeds.filter_map(|f| f.entry.mapping_file.as_ref().map(|m| m.get_ref().clone()))
}

/// The registry's files (its feed files and its `mappings` folders) and
/// the mapping files `feeds` name elsewhere, as they look now, by path. An
/// edit to any of them reloads the registry.
fn registry_stamp<'a>(
    path: &std::path::Path,
    feeds: impl Iterator<Item = &'a ValidFeed>,
) -> Vec<FileStamp> {
    let mut files = registry_files(path).unwrap_or_default();
    files.extend(mapping_files(feeds));
    files.sort();
    files.dedup();
    files.into_iter().map(FileStamp::of).collect()
}

/// Adds to `stamp` the mapping files `feeds` name that it lacks, as they
/// look now.
fn add_mapping_stamps<'a>(stamp: &mut Vec<FileStamp>, feeds: impl Iterator<Item = &'a ValidFeed>) {
    for path in mapping_files(feeds) {
        if !stamp.iter().any(|s| s.path == path) {
            stamp.push(FileStamp::of(path));
        }
    }
    stamp.sort();
}

fn by_id(feeds: Vec<ValidFeed>) -> HashMap<String, ValidFeed> {
    feeds
        .into_iter()
        .filter(|f| f.entry.enabled)
        .map(|f| (f.entry.id.get_ref().clone(), f))
        .collect()
}

pub async fn run(config: &VotewireConfig, args: IngestArgs) -> anyhow::Result<ExitCode> {
    // Spans and metrics go to the configured OTLP endpoint on the SDK's
    // threads (bounded queues; flushed when this returns).
    let observability =
        crate::observability::start("votewire-ingest", config, args.metrics_listen).await?;
    // Ready once a lease round reached the state store; a failed round
    // makes it not ready until the next one succeeds.
    let readiness = observability.readiness();
    let registry = match load_registry(&args.feeds) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!("{} problem(s) in the registry; not starting", errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    if registry.is_empty() {
        tracing::warn!(
            "no feeds in {} yet; polling nothing until the registry gains some",
            args.feeds.display()
        );
    }
    let mut stamp = registry_stamp(&args.feeds, registry.iter().filter(|f| f.entry.enabled));
    let (ttl, run_for) = (args.lease_ttl, args.run_for);
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(|| format!("ingest-{}", std::process::id()));

    let state = open_feed_state(config)
        .await
        .context("opening the feed-state store")?;
    for report in ensure_declared_topics(&config.kafka, &config.topics)
        .await
        .context("ensuring topics")?
    {
        if let Some(line) = report.differences() {
            tracing::warn!("{line}");
        }
    }
    // Partition by the topic's real partition count: a topic created
    // earlier with another count than this config declares must still get
    // every cell of a contest on one partition, and never an unknown one.
    let vote_partitions = match topic_partitions(&config.kafka, &config.topics.votes)
        .context("reading the votes topic's metadata")?
    {
        Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
        None => config.topics.contest_partitions,
    };
    if vote_partitions != config.topics.contest_partitions {
        tracing::warn!(
            "{} has {vote_partitions} partitions (config declares {}); using {vote_partitions}",
            config.topics.votes,
            config.topics.contest_partitions
        );
    }
    let producer_settings = producer_config(&config.kafka, &instance);
    let producer = producer_settings
        .create_with_context(votewire_core::kafka::KafkaClientContext::default())
        .context("creating the Kafka producer")?;
    let limits = FetchLimits::default();
    let archive = match &config.archive.s3_bucket {
        Some(bucket) => {
            let client =
                votewire_core::state::s3_client(&config.archive, &config.state_store).await;
            RawArchive::s3(client, bucket, &config.archive.s3_prefix)
        }
        None => RawArchive::local(config.state_dir.join("archive")),
    };
    archive
        .ensure_bucket()
        .await
        .context("checking the raw archive's bucket")?;
    tracing::info!("raw payloads archived in {}", archive.place());
    // Fault injection for the crash-safety test, in debug builds only (the
    // tests' binary): a release binary says so and ignores the variable.
    let fault = std::env::var("VOTEWIRE_FAULT").ok();
    let fault = match fault {
        Some(f) if cfg!(debug_assertions) => {
            tracing::warn!("fault injection {f:?} is ON");
            Some(f)
        }
        Some(f) => {
            tracing::warn!("VOTEWIRE_FAULT={f:?} ignored: fault hooks exist in debug builds only");
            None
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        state,
        last_fetch: std::sync::Mutex::new(HashMap::new()),
        publisher: Publisher {
            producer,
            topics: config.topics.clone(),
            schemas: votewire_schemas::schemas().clone(),
            vote_partitions,
            delivery_timeout: Duration::from_secs(30),
            renewal: Some(votewire_ingestors::publish::ProducerRenewal::new(
                producer_settings,
            )),
        },
        tools: FeedTools {
            abort_after_produce: fault.as_deref() == Some("abort-after-produce"),
            http_credentialed: credentialed_client_for(&limits, Some(&instance))
                .context("building the HTTP client for sources with credentials")?,
            ..FeedTools::new(
                client_for(&limits, Some(&instance)).context("building the HTTP client")?,
                args.per_host,
                Some(archive),
                4,
            )
        },
        instance: instance.clone(),
        quarantine_after: args.quarantine_after,
        print_payloads: args.print_payloads,
        resumes: tokio::sync::Semaphore::new(16),
    });
    let mut feeds: HashMap<String, ValidFeed> = by_id(registry);
    let prios_of = |feeds: &HashMap<String, ValidFeed>| -> Vec<(String, i32)> {
        feeds
            .values()
            .map(|f| (f.entry.id.get_ref().clone(), f.entry.priority()))
            .collect()
    };
    let mut prios = prios_of(&feeds);
    tracing::info!(
        "instance {instance}, {} feed(s), lease TTL {ttl:?}",
        feeds.len()
    );

    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // Announce this instance; the first lease round comes a third of the
    // TTL later, like every other. Instances started together so count each
    // other in it, instead of the first one up taking every feed for the
    // others to ask back. Only an instance past its Kafka checks announces
    // itself, so one crash-looping on a bad config is never counted, and
    // never leaves a share of the feeds waiting for it.
    shared
        .state
        .heartbeat(&instance, votewire_core::unix_ms(), ttl_ms)
        .await
        .context("announcing this instance in the feed-state store")?;
    // Rounds start every third of the TTL, however long each took (back to
    // back when one took longer). `--run-for` counts from the first.
    let mut next_round = tokio::time::Instant::now() + ttl / 3;
    let started = next_round;
    let mut last_round = Duration::ZERO;
    let mut running: HashMap<String, RunningFeed> = HashMap::new();
    let mut held: Vec<Lease> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_round) => {}
            _ = &mut ctrl_c => break,
        }
        // Hot reload: re-read the registry when its files changed.
        let now_stamp = registry_stamp(&args.feeds, feeds.values());
        if now_stamp != stamp {
            stamp = now_stamp;
            match load_registry(&args.feeds) {
                Err(errors) => {
                    for e in &errors {
                        tracing::error!("{e}");
                    }
                    tracing::error!(
                        "registry edit has {} problem(s); still running the previous registry",
                        errors.len()
                    );
                }
                Ok(next) => {
                    let next = by_id(next);
                    // The new feeds' mapping files outside the registry
                    // join the stamp as they are now (read a moment ago);
                    // the rest stays as it was before this load, so an
                    // edit made while it ran reloads again.
                    add_mapping_stamps(&mut stamp, next.values());
                    let (mut added, mut removed, mut changed) = (0, 0, 0);
                    for (id, old) in &feeds {
                        match next.get(id) {
                            None => {
                                removed += 1;
                                votewire_ingestors::feed_metrics::forget_feed(id);
                                if let Some(r) = running.remove(id) {
                                    r.stop().await;
                                }
                                if let Some(pos) = held.iter().position(|l| &l.feed_id == id) {
                                    let lease = held.remove(pos);
                                    let _ = shared.state.release_lease(&lease).await;
                                }
                            }
                            Some(new) if new.entry != old.entry => {
                                changed += 1;
                                if let Some(r) = running.remove(id) {
                                    r.stop().await;
                                }
                            }
                            Some(_) => {}
                        }
                    }
                    added += next.keys().filter(|id| !feeds.contains_key(*id)).count();
                    tracing::info!(
                        "registry reloaded: {added} added, {removed} removed, {changed} changed, {} feed(s)",
                        next.len()
                    );
                    feeds = next;
                    prios = prios_of(&feeds);
                }
            }
        }
        let round_started = tokio::time::Instant::now();
        next_round = round_started + ttl / 3;
        let last_fetch = shared
            .last_fetch
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let clock = LeaseClock {
            now_ms: votewire_core::unix_ms(),
            ttl_ms,
            last_round_ms: i64::try_from(last_round.as_millis()).unwrap_or(i64::MAX),
        };
        let round_result = lease_round(
            shared.state.as_ref(),
            &instance,
            &prios,
            &last_fetch,
            clock,
            5,
        )
        .await;
        last_round = round_started.elapsed();
        match &round_result {
            Ok(_) => readiness.set_ready(),
            Err(e) => readiness.set_not_ready(format!("the last lease round failed: {e}")),
        }
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
            Ok(round) => {
                for lease in &round.hand_over {
                    votewire_ingestors::feed_metrics::forget_feed(&lease.feed_id);
                    if let Some(r) = running.remove(&lease.feed_id) {
                        r.stop().await;
                    }
                    if let Err(e) = shared.state.release_lease(lease).await {
                        tracing::warn!(feed = %lease.feed_id, "feed {}: releasing the lease: {e}", lease.feed_id);
                    }
                    tracing::info!(feed = %lease.feed_id, "feed {}: handed over", lease.feed_id);
                }
                let now_held: std::collections::HashSet<&str> =
                    round.held.iter().map(|l| l.feed_id.as_str()).collect();
                let lost: Vec<String> = running
                    .keys()
                    .filter(|f| !now_held.contains(f.as_str()))
                    .cloned()
                    .collect();
                let held_before: std::collections::HashSet<&str> =
                    held.iter().map(|l| l.feed_id.as_str()).collect();
                let taken = now_held.difference(&held_before).count();
                votewire_ingestors::feed_metrics::record_lease_round(
                    &votewire_ingestors::feed_metrics::LeaseRoundFacts {
                        took: last_round,
                        taken,
                        handed_over: round.hand_over.len(),
                        lost: lost.len(),
                    },
                );
                for f in lost {
                    votewire_ingestors::feed_metrics::forget_feed(&f);
                    if let Some(r) = running.remove(&f) {
                        r.stop().await;
                        tracing::warn!(feed = %f, "feed {f}: lease lost, stopped");
                    }
                }
                // A lease this instance let lapse and took straight back
                // (fencing one higher: nobody held it in between) is handed
                // to the running feed, which keeps its change memory. A
                // feed loop that ended by itself (a lost lease, a bug), or
                // whose lease moved further, restarts from stored state.
                let mut stale: Vec<String> = Vec::new();
                for l in &round.held {
                    let Some(r) = running.get(&l.feed_id) else {
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
                    running
                        .iter()
                        .filter(|(_, r)| r.task.is_finished())
                        .map(|(id, _)| id.clone()),
                );
                for id in stale {
                    if let Some(r) = running.remove(&id) {
                        r.stop().await;
                        tracing::info!(feed = %id, "feed {id}: restarting under its current lease");
                    }
                }
                // Operator actions: a feed whose generation moved restarts.
                let flags = &round.operator_gens;
                let gen_of = |id: &str| flags.get(id).copied().unwrap_or(0);
                let moved: Vec<String> = running
                    .iter()
                    .filter(|(id, r)| {
                        flags.contains_key(id.as_str()) && r.operator_gen != gen_of(id)
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in moved {
                    if let Some(r) = running.remove(&id) {
                        r.stop().await;
                        tracing::info!(feed = %id, "feed {id}: operator action, restarting");
                    }
                }
                for lease in &round.held {
                    if running.contains_key(&lease.feed_id) {
                        continue;
                    }
                    if let Some(feed) = feeds.get(&lease.feed_id) {
                        tracing::info!(feed = %lease.feed_id, fencing = lease.fencing, "feed {}: leased (fencing {})", lease.feed_id, lease.fencing);
                        let r =
                            spawn_feed(shared.clone(), feed, lease.clone(), gen_of(&lease.feed_id));
                        running.insert(lease.feed_id.clone(), r);
                    }
                }
                held = round.held;
            }
            Err(e) => {
                tracing::warn!("lease round failed (feeds keep running until their TTL): {e}")
            }
        }
        if run_for.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    // Withdraw the heartbeat first (it expires now): the others stop
    // counting this instance and take its released leases in their next
    // round, instead of leaving its share free until the heartbeat lapses.
    if let Err(e) = shared
        .state
        .heartbeat(&instance, votewire_core::unix_ms(), 0)
        .await
    {
        tracing::warn!("withdrawing the heartbeat: {e}");
    }
    for (_, r) in running.drain() {
        r.stop().await;
    }
    for lease in &held {
        let _ = shared.state.release_lease(lease).await;
    }
    tracing::info!("stopped, {} lease(s) released", held.len());
    Ok(ExitCode::SUCCESS)
}

fn spawn_feed(
    shared: Arc<Shared>,
    feed: &ValidFeed,
    lease: Lease,
    operator_gen: i64,
) -> RunningFeed {
    let (stop, stop_rx) = watch::channel(false);
    let entry = feed.entry.clone();
    let (lease_tx, lease_rx) = watch::channel(lease);
    let task = tokio::spawn(async move {
        let feed_id = entry.id.get_ref().clone();
        let spec = match FeedSpec::from_entry(&entry) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::error!("{e}; not started");
                return;
            }
        };
        let cadence_cfg = entry.cadence();
        let Some(cadence) = FeedCadence::from_config(&cadence_cfg) else {
            tracing::error!(feed = %feed_id, "feed {feed_id}: invalid cadence; not started");
            return;
        };
        let stale_ms = parse_duration(&cadence_cfg.stale_after).map_or(i64::MAX, |d| {
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        });
        // Resuming reads the stored cursor; a busy state store is waited
        // out (with backoff) rather than leaving a leased feed dead.
        let mut stop_wait = stop_rx.clone();
        let backoff = Backoff::default();
        let mut failures = 0u32;
        let live = loop {
            let attempt = {
                let _permit = shared.resumes.acquire().await;
                LiveFeed::resume(
                    shared.state.as_ref(),
                    spec.clone(),
                    &shared.instance,
                    HealthMachine::new(shared.quarantine_after, stale_ms),
                )
                .await
            };
            match attempt {
                Ok(f) => break f,
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    let wait = backoff.delay(failures);
                    tracing::warn!(
                        feed = %feed_id, "feed {feed_id}: resuming (attempt {failures}, next in {wait:?}): {e}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop_wait.changed() => return,
                    }
                }
                Err(e) => {
                    tracing::error!(feed = %feed_id, "feed {feed_id}: resuming: {e}; not started");
                    return;
                }
            }
        };
        let live = Arc::new(Mutex::new(live));
        run_feed_loop(
            &cadence,
            &cadence.backoff(),
            stop_rx,
            votewire_core::unix_ms,
            || {
                let (live, shared) = (live.clone(), shared.clone());
                let lease = lease_rx.borrow().clone();
                async move {
                    let mut f = live.lock().await;
                    let fetched_at = votewire_core::unix_ms();
                    let result = f
                        .step(
                            &shared.tools,
                            &shared.publisher,
                            shared.state.as_ref(),
                            &lease,
                            fetched_at,
                        )
                        .await;
                    if let Ok(mut m) = shared.last_fetch.lock() {
                        m.insert(f.feed_id().to_string(), fetched_at);
                    }
                    match result {
                        Ok(report) => {
                            if shared.print_payloads {
                                if let Some(p) = &report.published {
                                    println!(
                                        "feed={} seq={} cells={} changed={}",
                                        f.feed_id(),
                                        f.source_seq,
                                        p.cells_total,
                                        p.cells_changed
                                    );
                                }
                                if report.rejected {
                                    println!("feed={} rejected (dead-lettered)", f.feed_id());
                                }
                            }
                            report.outcome()
                        }
                        Err(e) if e.is_retryable() => {
                            tracing::warn!("{e}");
                            StepOutcome::Failed
                        }
                        // Fenced: the lease lapsed. The next lease round either
                        // hands this loop the re-taken lease or stops it; until
                        // then, back off.
                        Err(FeedStepError::State {
                            source: StateError::Fenced { .. },
                            ..
                        }) => StepOutcome::Failed,
                        Err(e) => {
                            tracing::error!("{e}; stopping this feed");
                            StepOutcome::Stop
                        }
                    }
                }
            },
        )
        .await;
    });
    RunningFeed {
        stop,
        task,
        operator_gen,
        lease: lease_tx,
    }
}
