//! Polite polling: conditional GETs, content hashing, `Retry-After`, AP's
//! quota answer, exponential backoff with full jitter, and a per-host gate
//! that limits concurrency and shares backoff across every feed on a host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::{FetchError, FetchLimits, FetchedBody, fetch_capped_with};

/// What the last accepted fetch of a feed left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpValidators {
    /// The last `ETag` the source sent, sent back as `If-None-Match`; `None` if it sent
    /// none.
    pub etag: Option<String>,
    /// The last `Last-Modified` the source sent, sent back as `If-Modified-Since`; `None`
    /// if it sent none.
    pub last_modified: Option<String>,
    /// sha256 of the last accepted body.
    pub sha256: Option<String>,
}

/// The outcome of one poll.
#[derive(Debug)]
pub enum PollOutcome {
    /// 304 Not Modified.
    NotModified,
    /// 200, but the body is byte-identical to the last accepted one (the
    /// ETag or version changed without the content).
    Unchanged {
        /// The response's `ETag`, which may differ from the stored one; `None` if it sent
        /// none.
        etag: Option<String>,
        /// The response's `Last-Modified`, which may differ from the stored one; `None` if
        /// it sent none.
        last_modified: Option<String>,
    },
    /// New content.
    Changed(FetchedBody),
    /// The server asked us to wait (429/503 with `Retry-After`, or AP's
    /// "403 quota exceeded").
    Wait {
        /// How long to wait: the `Retry-After`, or 60 s when there was none (AP's quota
        /// answer).
        delay: Duration,
        /// The HTTP status that asked for the wait (429, 503, AP's 403).
        status: u16,
    },
}

/// Sends a conditional GET and classifies the answer.
pub async fn poll(
    client: &reqwest::Client,
    url: &str,
    v: &HttpValidators,
    limits: &FetchLimits,
) -> Result<PollOutcome, FetchError> {
    poll_with(client, url, v, &reqwest::header::HeaderMap::new(), limits).await
}

/// [`poll`] with extra request headers (an API key, a user agent).
pub async fn poll_with(
    client: &reqwest::Client,
    url: &str,
    v: &HttpValidators,
    extra: &reqwest::header::HeaderMap,
    limits: &FetchLimits,
) -> Result<PollOutcome, FetchError> {
    let mut headers = extra.clone();
    if let Some(e) = v.etag.as_deref().and_then(|e| e.parse().ok()) {
        headers.insert(reqwest::header::IF_NONE_MATCH, e);
    }
    if let Some(lm) = v.last_modified.as_deref().and_then(|l| l.parse().ok()) {
        headers.insert(reqwest::header::IF_MODIFIED_SINCE, lm);
    }
    match fetch_capped_with(client, url, headers, limits).await {
        Ok(body) if body.status == 304 => Ok(PollOutcome::NotModified),
        Ok(body) if v.sha256.as_deref() == Some(body.sha256.as_str()) => {
            Ok(PollOutcome::Unchanged {
                etag: body.etag,
                last_modified: body.last_modified,
            })
        }
        Ok(body) => Ok(PollOutcome::Changed(body)),
        Err(FetchError::Status {
            status,
            retry_after,
            quota_exceeded,
            ..
        }) if retry_after.is_some() || quota_exceeded => Ok(PollOutcome::Wait {
            delay: retry_after.unwrap_or(Duration::from_secs(60)),
            status,
        }),
        Err(e) => Err(e),
    }
}

/// Exponential backoff with full jitter: the n-th consecutive failure waits
/// a uniform random time in `[0, min(cap, base * 2^n))`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first failure's ceiling, doubled with each further consecutive failure (default
    /// 500 ms).
    pub base: Duration,
    /// The most any one delay can be (default 15 s; a feed sets its own with
    /// `cadence.retry_max`).
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            // A source that is back is polled again within 15 s: on a
            // results night a minute's silence after an outage is news
            // missed. Feeds set their own cap (`cadence.retry_max`).
            cap: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (`failures >= 1`).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failures.min(20).saturating_sub(1));
        let ceiling = exp.min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// The [`HostGate`]'s name for the host `url` is on: `host:port`, the
/// port said or the scheme's default.
pub fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| url.to_string())
}

/// Per-host concurrency limit and shared backoff: when one feed on a host is
/// told to wait or keeps failing, every feed on that host waits.
#[derive(Clone)]
pub struct HostGate {
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, HostState>>>,
}

#[derive(Clone)]
struct HostState {
    permits: Arc<Semaphore>,
    blocked_until: Option<Instant>,
    failures: u32,
}

impl HostGate {
    /// A gate allowing `per_host` concurrent fetches on each host (at least 1), with no
    /// host backed off.
    pub fn new(per_host: usize) -> HostGate {
        HostGate {
            per_host: per_host.max(1),
            hosts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn state(&self, host: &str) -> HostState {
        let mut hosts = self.hosts.lock().expect("host gate lock");
        hosts
            .entry(host.to_string())
            .or_insert_with(|| HostState {
                permits: Arc::new(Semaphore::new(self.per_host)),
                blocked_until: None,
                failures: 0,
            })
            .clone()
    }

    /// How long `host` is still backed off, if at all.
    pub fn blocked_for(&self, host: &str, now: Instant) -> Option<Duration> {
        self.state(host)
            .blocked_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Waits out the host's backoff, then takes one of its permits.
    pub async fn enter(&self, host: &str) -> OwnedSemaphorePermit {
        if let Some(d) = self.blocked_for(host, Instant::now()) {
            tokio::time::sleep(d).await;
        }
        self.state(host)
            .permits
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    /// Backs the whole host off for `delay` (a `Retry-After`, a quota wait).
    pub fn back_off(&self, host: &str, delay: Duration) {
        let until = Instant::now() + delay;
        let mut hosts = self.hosts.lock().expect("host gate lock");
        if let Some(s) = hosts.get_mut(host) {
            s.blocked_until = Some(s.blocked_until.map_or(until, |t| t.max(until)));
        }
    }

    /// Records a failure (5xx, timeout) and backs the host off with jitter;
    /// returns the delay chosen.
    pub fn failed(&self, host: &str, backoff: &Backoff) -> Duration {
        let failures = {
            let mut hosts = self.hosts.lock().expect("host gate lock");
            let s = hosts.entry(host.to_string()).or_insert_with(|| HostState {
                permits: Arc::new(Semaphore::new(self.per_host)),
                blocked_until: None,
                failures: 0,
            });
            s.failures += 1;
            s.failures
        };
        let d = backoff.delay(failures);
        self.back_off(host, d);
        d
    }

    /// Records a success: the host's failure count resets.
    pub fn succeeded(&self, host: &str) {
        if let Some(s) = self.hosts.lock().expect("host gate lock").get_mut(host) {
            s.failures = 0;
        }
    }

    /// Consecutive failures recorded for `host`.
    pub fn failures(&self, host: &str) -> u32 {
        self.state(host).failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_named_with_their_port() {
        assert_eq!(host_of("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(
            host_of("https://results.enr.clarityelections.com/GA/"),
            "results.enr.clarityelections.com:443"
        );
    }
}
