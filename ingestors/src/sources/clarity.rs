//! Polling a Clarity ENR site: `current_ver.txt` first (tiny, uncached),
//! then the immutable versioned file only when the version moved. The
//! version and the body's sha256 are both part of the cursor: versions move
//! without content changing, and content has changed under one version.

use std::sync::Arc;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{
    Payload, Polled, Poller, Source, SourceError, SourceFuture, SourceKind, SourceKindConfig,
    SourceProblems,
};
use crate::conditional::{HttpValidators, PollOutcome, host_of, poll};
use crate::feed_tools::FeedTools;
use crate::http::{FetchError, FetchLimits, FetchedBody, fetch_capped};
use crate::state::FeedCursor;

/// The `clarity` kind's entry in [`super::SOURCES`]: `current_ver.txt`, then the versioned
/// file.
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
    /// The site's address up to the election id, e.g.
    /// `https://results.enr.clarityelections.com/GA/107556`; `current_ver.txt` is read
    /// under it.
    pub base_url: String,
    /// The file to fetch under the version's folder, e.g. `json/ALL.json` or
    /// `reports/detailxml.zip`; must not start with `/`.
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

    fn resolve(&self, _limits: &FetchLimits) -> Result<Arc<dyn Source>, String> {
        Ok(Arc::new(ClaritySpec {
            base_url: self.base_url.clone(),
            file: self.file.clone(),
            revalidate_every: 4,
        }))
    }
}

/// A Clarity site to poll.
#[derive(Clone)]
pub struct ClaritySpec {
    /// The site's address up to the election id, as configured (a trailing `/` is ignored).
    pub base_url: String,
    /// The file fetched under the version's folder, e.g. `json/ALL.json`.
    pub file: String,
    /// Fetch the versioned file even under an unchanged version every
    /// this many polls (0: never).
    pub revalidate_every: u64,
}

impl std::fmt::Debug for ClaritySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "clarity {} {}", self.base_url, self.file)
    }
}

impl Source for ClaritySpec {
    fn resume(&self, cursor: FeedCursor) -> Box<dyn Poller> {
        Box::new(ClarityPoller {
            spec: self.clone(),
            cursor: ClarityCursor {
                version: cursor.version,
                sha256: cursor.sha256,
            },
            polls: 0,
        })
    }

    fn fetch_once<'a>(
        &'a self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Payload, SourceError>> {
        Box::pin(async move {
            let polled = poll_clarity(
                &tools.http,
                &self.base_url,
                &self.file,
                &ClarityCursor::default(),
                limits,
                true,
            )
            .await?;
            match polled {
                ClarityPoll::Changed { version, body } => Ok(Payload {
                    bytes: body.bytes,
                    sha256: body.sha256,
                    url: body.url,
                    content_type: body.content_type,
                    version: Some(version),
                    cursor: FeedCursor::default(),
                }),
                ClarityPoll::Wait(PollOutcome::Wait { delay, .. }) => Err(SourceError::Wait(delay)),
                _ => Err(SourceError::NothingReady),
            }
        })
    }
}

/// A Clarity feed's position: the accepted version and body, and the
/// polls so far (every `revalidate_every`-th refetches).
struct ClarityPoller {
    spec: ClaritySpec,
    cursor: ClarityCursor,
    polls: u64,
}

impl Poller for ClarityPoller {
    fn poll<'a>(
        &'a mut self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Polled, SourceError>> {
        Box::pin(self.poll_site(tools, limits))
    }

    fn committed<'a>(
        &'a mut self,
        _feed_id: &'a str,
        cursor: &'a FeedCursor,
    ) -> SourceFuture<'a, ()> {
        self.cursor = ClarityCursor {
            version: cursor.version.clone(),
            sha256: cursor.sha256.clone(),
        };
        Box::pin(std::future::ready(()))
    }
}

impl ClarityPoller {
    /// The version pointer through the host gate, then the versioned file
    /// when the version moved or a revalidation is due.
    async fn poll_site(
        &mut self,
        tools: &FeedTools,
        limits: &FetchLimits,
    ) -> Result<Polled, SourceError> {
        let ClaritySpec {
            base_url,
            file,
            revalidate_every,
        } = &self.spec;
        let cursor = &mut self.cursor;
        self.polls += 1;
        let revalidate = *revalidate_every > 0 && self.polls.is_multiple_of(*revalidate_every);
        let host = host_of(base_url);
        if let Some(d) = tools.gate.blocked_for(&host, Instant::now()) {
            return Ok(Polled::Wait(d));
        }
        let permit = tools.gate.enter(&host).await;
        let polled = poll_clarity(&tools.http, base_url, file, cursor, limits, revalidate).await;
        drop(permit);
        let base = FeedCursor {
            version: cursor.version.clone(),
            sha256: cursor.sha256.clone(),
            ..FeedCursor::default()
        };
        match polled {
            Err(e) => {
                // Only the host's own trouble backs every feed on it off; a
                // bad version file is this site's content.
                if matches!(&e, ClarityError::Fetch(f) if f.is_retryable()) {
                    tools.gate.failed(&host, &tools.backoff);
                }
                Err(e.into())
            }
            Ok(ClarityPoll::Wait(PollOutcome::Wait { delay, .. })) => {
                tools.gate.back_off(&host, delay);
                Ok(Polled::Wait(delay))
            }
            Ok(ClarityPoll::Wait(_)) => Ok(Polled::Unchanged(None)),
            Ok(ClarityPoll::SameVersion(version) | ClarityPoll::Unchanged { version }) => {
                tools.gate.succeeded(&host);
                // A new version with identical bytes: remember it so a
                // restart doesn't refetch.
                if base.version.as_deref() == Some(version.as_str()) {
                    Ok(Polled::Unchanged(None))
                } else {
                    cursor.version = Some(version.clone());
                    Ok(Polled::Unchanged(Some(FeedCursor {
                        version: Some(version),
                        ..base
                    })))
                }
            }
            Ok(ClarityPoll::Changed { version, body }) => {
                tools.gate.succeeded(&host);
                Ok(Polled::Payload(Payload {
                    cursor: FeedCursor {
                        version: Some(version.clone()),
                        sha256: Some(body.sha256.clone()),
                        ..FeedCursor::default()
                    },
                    bytes: body.bytes,
                    sha256: body.sha256,
                    url: body.url,
                    content_type: body.content_type,
                    version: Some(version),
                }))
            }
        }
    }
}

/// A Clarity poll's outcome.
#[derive(Debug)]
pub enum ClarityPoll {
    /// `current_ver.txt` still names the version we have: nothing fetched.
    SameVersion(String),
    /// A new version whose file is byte-identical to the last accepted one.
    Unchanged {
        /// The version `current_ver.txt` names now.
        version: String,
    },
    /// A new version with new content.
    Changed {
        /// The version `current_ver.txt` names now.
        version: String,
        /// The versioned file, as fetched.
        body: FetchedBody,
    },
    /// The site asked us to wait.
    Wait(PollOutcome),
}

/// What we know of the site from the cursor.
#[derive(Debug, Clone, Default)]
pub struct ClarityCursor {
    /// The version of the last accepted payload; `None` before any.
    pub version: Option<String>,
    /// Lower-case hex sha256 of the last accepted versioned file; a refetch with the same
    /// hash is unchanged.
    pub sha256: Option<String>,
}

/// Why the version pointer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClarityError {
    /// Fetching `current_ver.txt` or the versioned file failed; retryable as its
    /// [`FetchError`] says.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// `current_ver.txt` did not hold a version number (empty, not all digits, or over 64
    /// bytes); retryable, as it is usually an error page.
    #[error("{url} is not a version number: {body:?}")]
    BadVersion {
        /// The `current_ver.txt` URL read.
        url: String,
        /// What it held, trimmed and cut to 40 characters, or `(more than 64 bytes)`.
        body: String,
    },
}

impl ClarityError {
    /// Whether the next poll may succeed: always for a bad version, as
    /// [`FetchError::is_retryable`] says for a fetch.
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
