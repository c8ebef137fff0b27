//! Running a transform off the async workers, a bounded number at a time,
//! each within a time limit.
//!
//! A transform is pure CPU on untrusted bytes. Run inline on a tokio worker,
//! one slow payload (a pathological HTML page, a huge CSV) would stall every
//! other feed of the instance, lease renewals included, and a lapsed lease
//! moves feeds to another instance that then stalls the same way. Here each
//! transform runs on tokio's blocking pool, holding one of a fixed number of
//! [`TransformThreads`] slots, and the feed waits at most its
//! `limits.transform_timeout`. A transform past its limit becomes a typed
//! `LimitExceeded` error, marked as an overrun ([`TransformRun::overran`]):
//! a busy machine can push a sound payload past its limit, so the feed
//! tries it again before it rejects it ([`crate::live_feed`]; then dead
//! letter, health change, last good results untouched). Slots are handed out in arrival order; a feed that waits
//! a minute for one gets [`NoTransformSlot`]
//! instead: its payload is not judged, and the next poll tries again (an
//! SFTP file first, so files still publish in order). Its thread cannot be stopped from outside; it keeps its slot
//! until it returns, so runaways can never hold more than every slot, and
//! the parsers' own bounds (depth, size, node counts) make sure it returns.
//! A panic inside a transformer becomes a typed error too, not a crash.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;
use votewire_transformers::error::ErrorClass;
use votewire_transformers::{FamilyInputs, Location, PayloadContext, TransformError, Transformed};

/// The default time one payload's transform may take (the largest real
/// payloads, a national Clarity detail.xml, take well under a second).
pub const DEFAULT_TRANSFORM_TIMEOUT: Duration = Duration::from_secs(10);

/// The slots transforms run in: at most this many run at once, on the
/// blocking pool.
#[derive(Debug, Clone)]
pub struct TransformThreads {
    slots: Arc<Semaphore>,
    /// How long a feed waits for a slot before it gives up: slots are
    /// handed out in arrival order, and a feed that gave up would rejoin at
    /// the back, so it waits for many transforms first (a minute, six of
    /// the default limits, unless set).
    slot_wait: Duration,
}

impl TransformThreads {
    /// `n` slots (at least one).
    pub fn new(n: usize) -> TransformThreads {
        TransformThreads {
            slots: Arc::new(Semaphore::new(n.max(1))),
            slot_wait: Duration::from_secs(60),
        }
    }

    /// The same slots, with feeds giving up on them after `wait`.
    pub fn with_slot_wait(mut self, wait: Duration) -> TransformThreads {
        self.slot_wait = wait;
        self
    }

    /// Takes one slot until the permit is dropped, as a transform would
    /// (how a test makes an instance busy); `None` when every slot is
    /// taken.
    pub fn hold(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// One slot per core of this machine.
    pub fn per_core() -> TransformThreads {
        TransformThreads::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

/// One payload to transform, owned so that it can move to another thread.
#[derive(Debug, Clone)]
pub struct TransformJob {
    /// The transformer family to run, as the feed's `family` names it.
    pub family: String,
    /// The payload's raw bytes.
    pub bytes: Bytes,
    /// Where the payload came from (feed, election, mode, source URI, sha256, fetch time),
    /// stamped on its cells.
    pub ctx: PayloadContext,
    /// The feed's mapping; `None` when it has none.
    pub mapping: Option<toml::Table>,
    /// The companion file's bytes; `None` when the feed names none.
    pub companion: Option<Arc<[u8]>>,
}

/// No transform slot came free in time: every slot is busy with other
/// payloads (runaways on a pathological source, or more feeds than cores
/// can transform). Not the payload's fault, so it is not rejected: the
/// next poll fetches and tries again.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "waiting for a transform slot: none came free within {waited:?} (every one is busy with \
     another payload); retryable, the next poll tries again"
)]
pub struct NoTransformSlot {
    /// How long the feed waited for a slot before giving up.
    pub waited: Duration,
}

/// A transform that ran: its verdict, and whether that verdict is only
/// that it ran past its time limit (which a busy machine, not the payload,
/// may be the cause of).
#[derive(Debug)]
pub struct TransformRun {
    /// The cells, or why the payload was refused.
    pub result: Result<Transformed, TransformError>,
    /// The error is the time limit's (`LimitExceeded`, nothing read wrong).
    pub overran: bool,
}

/// Runs `job` on the blocking pool within `limit`, after waiting for a
/// slot at most the threads' slot wait.
pub async fn run_transform(
    threads: &TransformThreads,
    job: TransformJob,
    limit: Duration,
) -> Result<TransformRun, NoTransformSlot> {
    run_transform_waiting(threads, job, limit, threads.slot_wait).await
}

/// [`run_transform`] with an explicit wait for a slot.
pub async fn run_transform_waiting(
    threads: &TransformThreads,
    job: TransformJob,
    limit: Duration,
    wait: Duration,
) -> Result<TransformRun, NoTransformSlot> {
    let family = votewire_transformers::family(&job.family).map_or("transform", |f| f.name);
    let feed_id = job.ctx.feed_id.clone();
    let slot = match tokio::time::timeout(wait, threads.slots.clone().acquire_owned()).await {
        Ok(slot) => slot.expect("the transform slots are never closed"),
        Err(_) => return Err(NoTransformSlot { waited: wait }),
    };
    let task = spawn_transform(slot, job);
    match tokio::time::timeout(limit, task).await {
        Ok(joined) => Ok(TransformRun {
            result: joined_result(joined, family, &feed_id),
            overran: false,
        }),
        Err(_) => Ok(TransformRun {
            result: Err(limit_error(
                family,
                &feed_id,
                format!(
                    "the {family} transform ran past its {limit:?} limit (limits.transform_timeout); its \
                     thread finishes in the background and its result is dropped"
                ),
            )),
            overran: true,
        }),
    }
}

/// The transform of `job` on the blocking pool, holding `slot`.
fn spawn_transform(
    slot: tokio::sync::OwnedSemaphorePermit,
    job: TransformJob,
) -> tokio::task::JoinHandle<Result<Transformed, TransformError>> {
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let inputs = FamilyInputs {
            mapping: job.mapping.as_ref(),
            companion: job.companion.as_deref(),
        };
        votewire_transformers::transform(&job.family, &job.bytes, &job.ctx, &inputs)
    })
}

/// A finished transform task's verdict: its own, or a typed error when it
/// panicked or was cancelled.
fn joined_result(
    joined: Result<Result<Transformed, TransformError>, tokio::task::JoinError>,
    family: &'static str,
    feed_id: &str,
) -> Result<Transformed, TransformError> {
    match joined {
        Ok(result) => result,
        Err(join) if join.is_panic() => Err(limit_error(
            family,
            feed_id,
            format!(
                "the {family} transformer panicked on this payload (a bug: the payload is kept for the report): {}",
                panic_text(join.into_panic())
            ),
        )),
        Err(join) => Err(limit_error(
            family,
            feed_id,
            format!("the transform was cancelled: {join}"),
        )),
    }
}

/// A `LimitExceeded` error about the whole payload.
fn limit_error(family: &'static str, feed_id: &str, message: String) -> TransformError {
    TransformError {
        family,
        feed_id: feed_id.to_string(),
        class: ErrorClass::LimitExceeded,
        location: Location::Whole,
        message,
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    votewire_transformers::error::bounded_quote(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(bytes: Bytes) -> TransformJob {
        TransformJob {
            family: "csv".into(),
            bytes,
            ctx: PayloadContext::for_file("csv:job", "file:///job", "00", 0),
            mapping: None,
            companion: None,
        }
    }

    /// A valid CSV of `rows` rows.
    fn csv(rows: usize) -> Bytes {
        let mut text = String::from("county,precinct,office,district,party,candidate,votes\n");
        for i in 0..rows {
            text.push_str(&format!("A,{i},Gov,,D,X,35\n"));
        }
        Bytes::from(text)
    }

    #[tokio::test]
    async fn a_transform_runs_off_the_async_workers_and_past_its_limit_is_a_typed_error() {
        let threads = TransformThreads::new(1);
        let run = run_transform(&threads, job(csv(1)), DEFAULT_TRANSFORM_TIMEOUT)
            .await
            .unwrap();
        assert!(!run.overran);
        assert_eq!(run.result.unwrap().cells.rows()[0].votes, 35);
        // 200,000 rows take far longer than a millisecond: the limit
        // answers, marked as an overrun.
        let run = run_transform(&threads, job(csv(200_000)), Duration::from_millis(1))
            .await
            .unwrap();
        assert!(run.overran);
        let e = run.result.unwrap_err();
        assert_eq!(e.class, ErrorClass::LimitExceeded);
        assert_eq!((e.family, e.feed_id.as_str()), ("csv", "csv:job"));
        assert!(e.message.contains("limits.transform_timeout"), "{e}");
        // The slot comes back once the late transform returns.
        let again = run_transform(&threads, job(csv(1)), DEFAULT_TRANSFORM_TIMEOUT).await;
        assert!(matches!(
            again,
            Ok(TransformRun {
                result: Ok(_),
                overran: false
            })
        ));
    }

    #[tokio::test]
    async fn a_feed_waiting_behind_busy_slots_gives_up_retryably_without_a_rejection() {
        let threads = TransformThreads::new(1);
        // A slow payload holds the only slot (its own limit is the longest
        // a feed may set: how slow it is depends on the machine's load, and
        // what is tested here is the other feed's wait)...
        let slow = {
            let threads = threads.clone();
            tokio::spawn(async move {
                run_transform(&threads, job(csv(300_000)), Duration::from_secs(300)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // ...so another feed's good payload waits its limit, and is not
        // judged: it is no TransformError, so nothing is dead-lettered.
        let waited = run_transform_waiting(
            &threads,
            job(csv(1)),
            DEFAULT_TRANSFORM_TIMEOUT,
            Duration::from_millis(5),
        )
        .await;
        let e = waited.expect_err("no slot");
        assert_eq!(e.waited, Duration::from_millis(5));
        assert!(e.to_string().contains("retryable"), "{e}");
        assert!(matches!(
            slow.await.unwrap(),
            Ok(TransformRun { result: Ok(_), .. })
        ));
    }
}
