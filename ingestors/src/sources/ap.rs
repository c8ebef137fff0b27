//! The AP Elections API as a source: a GET with the API key in the
//! `x-api-key` header, then AP's `nextrequest` links, followed only while
//! they make progress and stay on the base URL's origin.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::http::{HttpSpec, fetch_from_scratch, header, poll_conditional, validators_of};
use super::secrets::{SecretRef, read_secret};
use super::{
    Payload, Polled, Poller, Source, SourceError, SourceFuture, SourceKind, SourceKindConfig,
    SourceProblems,
};
use crate::conditional::HttpValidators;
use crate::feed_tools::FeedTools;
use crate::http::FetchLimits;
use crate::state::FeedCursor;

/// The `ap` kind's entry in [`super::SOURCES`]: the AP Elections API, following
/// `nextrequest`.
pub const KIND: SourceKind = SourceKind {
    name: "ap",
    summary: "the AP Elections API; follows nextrequest",
    path_fields: &[],
};

/// `source = { kind = "ap", url = …, api_key = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApSource {
    /// The AP Elections API request, e.g.
    /// `https://api.ap.org/v2/elections/2021-01-05?statepostal=GA`; https (plain http only
    /// on loopback), since it sends the key.
    pub url: String,
    /// The API key, by reference; sent in the `x-api-key` header.
    pub api_key: SecretRef,
}

impl SourceKindConfig for ApSource {
    fn kind(&self) -> &'static SourceKind {
        &KIND
    }

    fn check(&self, problems: &mut SourceProblems<'_>) {
        problems.http_url("source.url", &self.url);
        problems.secret_transport(&self.url);
        problems.secret("source.api_key", &self.api_key);
    }

    fn resolve(&self, _limits: &FetchLimits) -> Result<Arc<dyn Source>, String> {
        let key = read_secret(&self.api_key).map_err(|why| format!("api_key: {why}"))?;
        let (n, v) = header("x-api-key", &key, true)?;
        let mut headers = HeaderMap::new();
        headers.insert(n, v);
        Ok(Arc::new(ApSpec {
            request: HttpSpec {
                url: self.url.clone(),
                headers,
            },
        }))
    }
}

/// The AP base URL with the key header.
#[derive(Clone)]
pub struct ApSpec {
    /// The feed's URL, with the API key in an `x-api-key` header marked sensitive.
    pub request: HttpSpec,
}

impl std::fmt::Debug for ApSpec {
    // The key is a header: never print header values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let HttpSpec { url, headers } = &self.request;
        write!(f, "ap {url} ({} extra header(s))", headers.len())
    }
}

impl Source for ApSpec {
    fn resume(&self, cursor: FeedCursor) -> Box<dyn Poller> {
        let mut next = ApCursor::new(&self.request.url);
        next.next = cursor.next_request.clone();
        Box::new(ApPoller {
            spec: self.clone(),
            validators: validators_of(&cursor),
            next,
        })
    }

    fn fetch_once<'a>(
        &'a self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Payload, SourceError>> {
        Box::pin(fetch_from_scratch(
            tools,
            limits,
            &self.request.url,
            &self.request.headers,
        ))
    }
}

/// An AP feed's position: the last accepted response's validators and the
/// `nextrequest` link to follow.
struct ApPoller {
    spec: ApSpec,
    validators: HttpValidators,
    next: ApCursor,
}

impl Poller for ApPoller {
    fn poll<'a>(
        &'a mut self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Polled, SourceError>> {
        Box::pin(async move {
            let target = self.next.url().to_string();
            poll_conditional(
                tools,
                limits,
                &target,
                &self.spec.request.headers,
                &mut self.validators,
                self.next.next.clone(),
            )
            .await
        })
    }

    fn accepted(&mut self, feed_id: &str, payload: &Payload, next: Option<&str>) -> FeedCursor {
        let mut cursor = payload.cursor.clone();
        if !self.next.advance(next) && next.is_some() {
            tracing::warn!(
                "feed {feed_id}: nextrequest makes no progress or leaves the source's origin; back to the base URL",
            );
        }
        cursor.next_request = self.next.next.clone();
        cursor
    }

    fn committed<'a>(
        &'a mut self,
        _feed_id: &'a str,
        cursor: &'a FeedCursor,
    ) -> SourceFuture<'a, ()> {
        self.validators = validators_of(cursor);
        Box::pin(std::future::ready(()))
    }

    fn rejected(&mut self, _payload: &Payload) -> Option<FeedCursor> {
        self.next.reset();
        None
    }
}

/// AP's incremental cursor: follow `nextrequest`, but never a link that
/// makes no progress (the same URL again, or one we already followed), and
/// fall back to the feed's base URL after a rejected payload.
#[derive(Debug, Clone)]
pub struct ApCursor {
    /// The feed's configured URL, fetched whenever there is no `nextrequest` link to
    /// follow.
    pub base_url: String,
    /// The `nextrequest` link to fetch next; `None` fetches the base URL.
    pub next: Option<String>,
    followed: Vec<String>,
}

impl ApCursor {
    /// A cursor at `base_url`, with no link to follow yet.
    pub fn new(base_url: &str) -> ApCursor {
        ApCursor {
            base_url: base_url.to_string(),
            next: None,
            followed: Vec::new(),
        }
    }

    /// The URL to fetch now.
    pub fn url(&self) -> &str {
        self.next.as_deref().unwrap_or(&self.base_url)
    }

    /// Records the `nextrequest` of an accepted payload. Returns false (and
    /// falls back to the base URL) when the link makes no progress.
    pub fn advance(&mut self, next_request: Option<&str>) -> bool {
        let current = self.url().to_string();
        // The key goes wherever `nextrequest` points: only within the
        // base URL's origin.
        let same_origin =
            |n: &str| match (reqwest::Url::parse(&self.base_url), reqwest::Url::parse(n)) {
                (Ok(a), Ok(b)) => a.origin() == b.origin(),
                _ => false,
            };
        match next_request {
            Some(n) if n != current && !self.followed.iter().any(|f| f == n) && same_origin(n) => {
                self.followed.push(current);
                if self.followed.len() > 32 {
                    self.followed.remove(0);
                }
                self.next = Some(n.to_string());
                true
            }
            _ => {
                self.next = None;
                false
            }
        }
    }

    /// After a rejected payload, start again from the base URL.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextrequest_is_followed_only_within_the_sources_origin() {
        let base = "https://api.ap.org/v2/elections/2021-01-05?statepostal=GA";
        let mut ap = ApCursor::new(base);
        assert!(ap.advance(Some(
            "https://api.ap.org/v2/elections/2021-01-05?nextrequest=1"
        )));
        assert_eq!(
            ap.url(),
            "https://api.ap.org/v2/elections/2021-01-05?nextrequest=1"
        );
        for elsewhere in [
            "https://collector.example/steal",
            "http://api.ap.org/v2/elections/2021-01-05?nextrequest=2",
            "https://api.ap.org:8443/v2/elections?nextrequest=2",
            "not a url",
        ] {
            assert!(!ap.advance(Some(elsewhere)), "{elsewhere}");
            assert_eq!(ap.url(), base, "{elsewhere}: back to the base URL");
        }
    }
}
