//! When a feed is polled: one fetch in flight per feed, the next one
//! scheduled from the *completion* of the last, never piled up.
//!
//! A feed's loop awaits its step (fetch, transform, publish, commit), then
//! sleeps. The sleep is the cadence interval (the tighter window interval
//! while the cadence window is open) plus random jitter, or the wait the
//! source asked for, or the failure backoff, whichever applies. A slow
//! source therefore slows its own feed down; it never causes overlapping
//! fetches, which is how Kafka Connect's HTTP connectors and NiFi's
//! InvokeHTTP pile up work on election night.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::conditional::Backoff;
use crate::feeds::CadenceConfig;
use crate::feeds::parse_duration;

/// A feed's resolved cadence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCadence {
    /// The delay between polls outside the window (`cadence.interval`), before jitter.
    pub interval: Duration,
    /// The most random delay added to each interval: the extra delay is uniform in `[0,
    /// jitter]`.
    pub jitter: Duration,
    /// `(from_ms, until_ms, interval)`: a tighter cadence inside the window.
    pub window: Option<(i64, i64, Duration)>,
    /// The cap of the failure backoff ([`FeedCadence::backoff`]).
    pub retry_max: Duration,
}

impl FeedCadence {
    /// Resolves a validated cadence config; `None` if a field does not parse
    /// (which `feeds validate` reports with its file and line).
    pub fn from_config(c: &CadenceConfig) -> Option<FeedCadence> {
        let interval = parse_duration(&c.interval)?;
        let jitter = parse_duration(&c.jitter)?;
        let window = match &c.window {
            None => None,
            Some(w) => {
                let from = votewire_transformers::timefmt::parse_iso8601(&w.from, false)?;
                let until = match w.until.strip_prefix('+') {
                    Some(d) => from + i64::try_from(parse_duration(d)?.as_millis()).ok()?,
                    None => votewire_transformers::timefmt::parse_iso8601(&w.until, false)?,
                };
                Some((from, until, parse_duration(&w.interval)?))
            }
        };
        Some(FeedCadence {
            interval,
            jitter,
            window,
            retry_max: parse_duration(&c.retry_max)?,
        })
    }

    /// The backoff after failed steps: exponential with full jitter, up to
    /// `retry_max`.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            cap: self.retry_max,
            ..Backoff::default()
        }
    }

    /// The interval in force at `now_ms` (Unix milliseconds), without jitter.
    pub fn interval_at(&self, now_ms: i64) -> Duration {
        match self.window {
            Some((from, until, tight)) if (from..until).contains(&now_ms) => tight,
            _ => self.interval,
        }
    }

    /// The delay before the next fetch after a completed one: the interval
    /// in force plus uniform jitter in `[0, jitter]`.
    pub fn next_delay(&self, now_ms: i64) -> Duration {
        self.interval_at(now_ms) + self.jitter.mul_f64(fastrand::f64())
    }
}

/// What one step of a feed loop concluded, which decides the next delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Fetched (changed or not): wait the cadence.
    Done,
    /// The source asked for a wait (Retry-After, AP quota): wait at least
    /// that, and never less than the cadence.
    Wait(Duration),
    /// More work is ready now (queued SFTP files, the rest of a truncated AP
    /// answer): step again at once.
    Again,
    /// The step failed and a retry may help: back off with full jitter.
    Failed,
    /// Stop this feed's loop (removed from the registry, lease lost).
    Stop,
}

/// How a loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopEnd {
    /// Steps run, the stopping one included.
    pub steps: u64,
    /// Whether a step returned [`StepOutcome::Stop`]; false when `stop` turned true or its
    /// sender was dropped.
    pub stopped_by_step: bool,
}

/// Runs `step` until `stop` turns true or a step returns
/// [`StepOutcome::Stop`]. At most one step is in flight at any time: the next
/// starts only after the previous completed and the delay elapsed.
pub async fn run_feed_loop<F, Fut>(
    cadence: &FeedCadence,
    backoff: &Backoff,
    mut stop: watch::Receiver<bool>,
    now_ms: impl Fn() -> i64,
    mut step: F,
) -> LoopEnd
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StepOutcome>,
{
    let mut steps = 0u64;
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return LoopEnd {
                steps,
                stopped_by_step: false,
            };
        }
        let outcome = step().await;
        steps += 1;
        let delay = match outcome {
            StepOutcome::Stop => {
                return LoopEnd {
                    steps,
                    stopped_by_step: true,
                };
            }
            StepOutcome::Done => {
                failures = 0;
                cadence.next_delay(now_ms())
            }
            StepOutcome::Wait(d) => {
                failures = 0;
                d.max(cadence.next_delay(now_ms()))
            }
            StepOutcome::Again => {
                failures = 0;
                Duration::ZERO
            }
            StepOutcome::Failed => {
                failures = failures.saturating_add(1);
                backoff.delay(failures).max(Duration::from_millis(1))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return LoopEnd { steps, stopped_by_step: false };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::CadenceWindow;

    #[test]
    fn the_window_tightens_the_interval_only_inside_it() {
        let c = CadenceConfig {
            interval: "60s".into(),
            jitter: "0s".into(),
            window: Some(CadenceWindow {
                from: "2021-01-05T19:00:00-05:00".into(),
                until: "+6h".into(),
                interval: "5s".into(),
            }),
            stale_after: "30m".into(),
            retry_max: "15s".into(),
        };
        let fc = FeedCadence::from_config(&c).expect("valid cadence");
        // 2021-01-06T00:00:00Z is poll close, computed by hand.
        let close = 1_609_891_200_000i64;
        assert_eq!(fc.interval_at(close - 1), Duration::from_secs(60));
        assert_eq!(fc.interval_at(close), Duration::from_secs(5));
        assert_eq!(
            fc.interval_at(close + 6 * 3_600_000 - 1),
            Duration::from_secs(5)
        );
        assert_eq!(
            fc.interval_at(close + 6 * 3_600_000),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn failures_back_off_up_to_the_feeds_retry_max() {
        let mut c = CadenceConfig::default();
        let fc = FeedCadence::from_config(&c).unwrap();
        assert_eq!(fc.retry_max, Duration::from_secs(15), "the default");
        c.retry_max = "4s".into();
        let b = FeedCadence::from_config(&c).unwrap().backoff();
        assert_eq!(b.cap, Duration::from_secs(4));
        // After 20 failures the ceiling is far past the cap: every wait is
        // within it, and they still vary (full jitter).
        let waits: Vec<Duration> = (0..200).map(|_| b.delay(20)).collect();
        assert!(waits.iter().all(|d| *d <= Duration::from_secs(4)));
        assert!(waits.iter().any(|d| *d > Duration::from_secs(2)));
        assert!(waits.iter().any(|d| *d != waits[0]));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let fc = FeedCadence {
            interval: Duration::from_secs(5),
            jitter: Duration::from_secs(2),
            window: None,
            retry_max: Duration::from_secs(15),
        };
        let delays: Vec<Duration> = (0..200).map(|_| fc.next_delay(0)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(5)));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(7)));
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "jitter actually varies"
        );
    }
}
