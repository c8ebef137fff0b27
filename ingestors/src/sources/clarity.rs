//! Polling a Clarity ENR site: `current_ver.txt` first (tiny, uncached),
//! then the immutable versioned file only when the version moved. The
//! version and the body's sha256 are both part of the cursor: versions move
//! without content changing, and content has changed under one version.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{SourceKind, SourceKindConfig, SourceProblems};
use crate::conditional::{HttpValidators, PollOutcome, poll};
use crate::http::{FetchError, FetchLimits, FetchedBody, fetch_capped};

pub const KIND: SourceKind = SourceKind {
    name: "clarity",
    summary: "a Clarity ENR site: current_ver.txt, then the versioned file",
    path_fields: &[],
};

/// `source = { kind = "clarity", base_url = …, file = … }`: polls
/// `{base_url}/current_ver.txt`, then fetches `{base_url}/{version}/{file}`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaritySource {
    pub base_url: String,
    pub file: String,
}

impl SourceKindConfig for ClaritySource {
    fn kind(&self) -> &'static SourceKind {
        &KIND
    }

    fn check(&self, problems: &mut SourceProblems<'_>) {
        problems.http_url("source.base_url", &self.base_url);
        if self.file.is_empty() || self.file.starts_with('/') {
            problems.add(
                "source.file",
                "must be a path under the versioned folder, e.g. json/ALL.json",
            );
        }
    }
}

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
