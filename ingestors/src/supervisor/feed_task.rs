//! One leased feed's task: its entry resolved, its state resumed (a busy
//! state store waited out with backoff), then its feed loop, until it is
//! told to stop. The lease it commits under can be replaced in place.

use std::sync::Arc;

use tokio::sync::{Mutex, watch};

use super::Shared;
use crate::cadence::{FeedCadence, StepOutcome, run_feed_loop};
use crate::conditional::Backoff;
use crate::feed_spec::FeedSpec;
use crate::feeds::{ValidFeed, parse_duration};
use crate::health::HealthMachine;
use crate::live_feed::{FeedStepError, LiveFeed};
use crate::state::{Lease, StateError};

/// A feed's running task.
pub(super) struct RunningFeed {
    stop: watch::Sender<bool>,
    pub(super) task: tokio::task::JoinHandle<()>,
    /// The operator generation it started under.
    pub(super) operator_gen: i64,
    /// The lease it commits under; updated in place when this instance
    /// re-takes its own lapsed lease.
    pub(super) lease: watch::Sender<Lease>,
}

impl RunningFeed {
    /// Stops the feed loop and waits for it.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts `feed`'s task under `lease`.
pub(super) fn spawn_feed(
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
