//! Polling a Clarity ENR site: `current_ver.txt` first (tiny, uncached),
//! then the immutable versioned file only when the version moved. The
//! version and the body's sha256 are both part of the cursor: versions move
//! without content changing, and content has changed under one version.

use crate::conditional::{HttpValidators, PollOutcome, poll};
use crate::http::{FetchError, FetchLimits, FetchedBody, fetch_capped};

/// A Clarity poll's outcome.
#[derive(Debug)]
pub enum ClarityPoll {
    /// `current_ver.txt` still names the version we have: nothing fetched.
    SameVersion(String),
    /// A new version whose file is byte-identical to the last accepted one.
    Unchanged { version: String },
    /// A new version with new content.
    Changed { version: String, body: FetchedBody },
    /// The site asked us to wait.
    Wait(PollOutcome),
}

/// What we know of the site from the cursor.
#[derive(Debug, Clone, Default)]
pub struct ClarityCursor {
    pub version: Option<String>,
    pub sha256: Option<String>,
}

/// Why the version pointer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClarityError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{url} is not a version number: {body:?}")]
    BadVersion { url: String, body: String },
}

impl ClarityError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ClarityError::Fetch(e) => e.is_retryable(),
            ClarityError::BadVersion { .. } => true,
        }
    }
}

/// Polls `{base}/current_ver.txt` and, on a new version, `{base}/{version}/{file}`.
///
/// With `revalidate`, the versioned file is fetched even when the version
/// did not move, and compared by sha256: the version pointer and the content
/// move independently (FORMATS §8: in the GA 2021 runoff, 5 consecutive
/// pairs of snapshots differ under one version), so a feed revalidates
/// every few polls instead of trusting the pointer alone.
pub async fn poll_clarity(
    client: &reqwest::Client,
    base_url: &str,
    file: &str,
    cursor: &ClarityCursor,
    limits: &FetchLimits,
    revalidate: bool,
) -> Result<ClarityPoll, ClarityError> {
    let base = base_url.trim_end_matches('/');
    let ver_url = format!("{base}/current_ver.txt");
    let small = FetchLimits {
        max_bytes: 64,
        ..*limits
    };
    // An oversized answer is an error page, not a version: retry later.
    let ver = match fetch_capped(client, &ver_url, &small).await {
        Err(FetchError::TooLarge { .. }) => {
            return Err(ClarityError::BadVersion {
                url: ver_url,
                body: "(more than 64 bytes)".to_string(),
            });
        }
        other => other?,
    };
    let version = String::from_utf8_lossy(&ver.bytes).trim().to_string();
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ClarityError::BadVersion {
            url: ver_url,
            body: version.chars().take(40).collect(),
        });
    }
    if !revalidate && cursor.version.as_deref() == Some(version.as_str()) {
        return Ok(ClarityPoll::SameVersion(version));
    }
    let url = format!("{base}/{version}/{}", file.trim_start_matches('/'));
    let v = HttpValidators {
        sha256: cursor.sha256.clone(),
        ..HttpValidators::default()
    };
    Ok(match poll(client, &url, &v, limits).await? {
        PollOutcome::Changed(body) => ClarityPoll::Changed { version, body },
        PollOutcome::Unchanged { .. } | PollOutcome::NotModified => {
            ClarityPoll::Unchanged { version }
        }
        wait @ PollOutcome::Wait { .. } => ClarityPoll::Wait(wait),
    })
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
