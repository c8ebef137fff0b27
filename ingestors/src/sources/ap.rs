//! The AP Elections API as a source: a GET with the API key in the
//! `x-api-key` header, then AP's `nextrequest` links, followed only while
//! they make progress and stay on the base URL's origin.

use schemars::JsonSchema;
use serde::Deserialize;

use super::secrets::SecretRef;
use super::{SourceKind, SourceKindConfig, SourceProblems};

pub const KIND: SourceKind = SourceKind {
    name: "ap",
    summary: "the AP Elections API; follows nextrequest",
    path_fields: &[],
};

/// `source = { kind = "ap", url = …, api_key = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApSource {
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
}

/// AP's incremental cursor: follow `nextrequest`, but never a link that
/// makes no progress (the same URL again, or one we already followed), and
/// fall back to the feed's base URL after a rejected payload.
#[derive(Debug, Clone)]
pub struct ApCursor {
    pub base_url: String,
    pub next: Option<String>,
    followed: Vec<String>,
}

impl ApCursor {
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
