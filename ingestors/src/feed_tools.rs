//! What every feed of an ingestor shares: the HTTP clients, the per-host
//! gate and its backoff, the raw archive, the bound on payloads processed
//! at once and the transform threads. Sources poll with it; the commit
//! protocol archives and transforms with it.

use reqwest::header::{HeaderMap, HeaderValue};

use crate::archive::RawArchive;
use crate::conditional::{Backoff, HostGate};
use crate::http::FetchLimits;
use crate::transform_run::TransformThreads;

/// What the ingestor shares across feeds: the HTTP client, the per-host
/// gate, the raw archive, and a bound on payloads processed at once (a
/// thousand feeds starting together must not hold a thousand transformed
/// payloads in memory).
#[derive(Clone)]
pub struct FeedTools {
    /// The client for sources that send no credential; it follows redirects to any origin.
    pub http: reqwest::Client,
    /// For sources that send a credential: redirects within the origin only.
    pub http_credentialed: reqwest::Client,
    /// Per-host concurrency limit and shared backoff for the HTTP-like sources: when one
    /// feed on a host must wait, every feed on it waits.
    pub gate: HostGate,
    /// How a host's failures back its feeds off ([`HostGate::failed`]): 500 ms doubling up
    /// to 15 s by default.
    pub backoff: Backoff,
    /// Where raw payloads are stored before they are transformed; `None` stores none (a dry
    /// run).
    pub archive: Option<RawArchive>,
    /// Bounds the payloads archived, transformed and published at once, across all feeds;
    /// each holds one permit.
    pub work: std::sync::Arc<tokio::sync::Semaphore>,
    /// Where transforms run: off the async workers, one per core at most.
    pub transforms: TransformThreads,
    /// Fault injection for the crash-safety test only: abort the process
    /// right after a payload's cells were acknowledged and before its
    /// cursor is committed (`VOTEWIRE_FAULT=abort-after-produce`).
    pub abort_after_produce: bool,
}

impl FeedTools {
    /// The client for a request with `headers`: the credentialed one when
    /// any of them is a secret, so a credential never follows a redirect to
    /// another origin, in a poll or in a dry run.
    pub fn client_for(&self, headers: &HeaderMap) -> &reqwest::Client {
        if headers.values().any(HeaderValue::is_sensitive) {
            &self.http_credentialed
        } else {
            &self.http
        }
    }

    /// `per_host` concurrent fetches per host, `concurrent_payloads`
    /// payloads transformed and published at once.
    pub fn new(
        http: reqwest::Client,
        per_host: usize,
        archive: Option<RawArchive>,
        concurrent_payloads: usize,
    ) -> FeedTools {
        FeedTools {
            http,
            http_credentialed: crate::http::credentialed_client_for(&FetchLimits::default(), None)
                .expect("a client with default settings builds"),
            gate: HostGate::new(per_host),
            backoff: Backoff::default(),
            archive,
            work: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent_payloads.max(1))),
            transforms: TransformThreads::per_core(),
            abort_after_produce: false,
        }
    }
}
