//! Dry runs: one payload of a feed transformed with nothing published,
//! stored or moved (`votewire feeds test`). The payload is fetched from
//! the feed's source ([`dry_run`]) or is one saved earlier
//! ([`dry_run_saved`], offline).

use std::time::{Duration, Instant};

use sha2::Digest;
use votewire_transformers::PayloadContext;

use crate::conditional::{HttpValidators, PollOutcome, poll_with};
use crate::live_feed::{FeedSpec, FeedTools, SourceError, SourceSpec, unix_now};
use crate::sources::clarity::{ClarityCursor, ClarityPoll, poll_clarity};
use crate::sources::sftp::drop::DropWatcher;
use crate::sources::sftp::{SftpError, SftpSession};
use crate::transform_run::{TransformJob, run_transform};

/// One payload fetched by [`dry_run`], transformed, nothing committed.
pub struct DryRun {
    pub url: String,
    pub bytes: usize,
    pub sha256: String,
    pub version: Option<String>,
    pub transform_time: Duration,
    pub result: Result<votewire_transformers::Transformed, votewire_transformers::TransformError>,
}

/// Fetches a feed once from scratch (no cursor: no conditional headers, the
/// current Clarity version, the newest ready SFTP file) and transforms it.
/// Nothing is published, stored or moved: `votewire feeds test`.
pub async fn dry_run(spec: &FeedSpec, tools: &FeedTools) -> Result<DryRun, SourceError> {
    let limits = spec.limits;
    let (bytes, sha256, url, version, content_type) = match &spec.source {
        SourceSpec::Clarity { base_url, file, .. } => {
            match poll_clarity(
                &tools.http,
                base_url,
                file,
                &ClarityCursor::default(),
                &limits,
                true,
            )
            .await?
            {
                ClarityPoll::Changed { version, body } => (
                    body.bytes,
                    body.sha256,
                    body.url,
                    Some(version),
                    body.content_type,
                ),
                ClarityPoll::Wait(PollOutcome::Wait { delay, .. }) => {
                    return Err(SourceError::Wait(delay));
                }
                _ => return Err(SourceError::NothingReady),
            }
        }
        SourceSpec::Http { url, headers, .. } => {
            match poll_with(
                tools.client_for(headers),
                url,
                &HttpValidators::default(),
                headers,
                &limits,
            )
            .await?
            {
                PollOutcome::Changed(body) => {
                    (body.bytes, body.sha256, body.url, None, body.content_type)
                }
                PollOutcome::Wait { delay, .. } => return Err(SourceError::Wait(delay)),
                _ => return Err(SourceError::NothingReady),
            }
        }
        SourceSpec::Sftp { endpoint, drop } => {
            let (ep, drop) = (endpoint.clone(), drop.clone());
            let newest = tokio::task::spawn_blocking(move || {
                let session = SftpSession::connect(&ep)?;
                let mut watcher = DropWatcher::new(drop, Vec::new());
                // Two listings: a file must be stable across them.
                watcher.poll(&session, unix_now())?;
                std::thread::sleep(Duration::from_millis(500));
                Ok::<_, SftpError>(watcher.poll(&session, unix_now())?.pop())
            })
            .await
            .map_err(|e| SourceError::Task(e.to_string()))??;
            let file = newest.ok_or(SourceError::NothingReady)?;
            let url = format!(
                "sftp://{}@{}:{}{}",
                endpoint.user, endpoint.host, endpoint.port, file.identity.path
            );
            (file.bytes.into(), file.identity.sha256, url, None, None)
        }
    };
    let fetched = Payload {
        bytes,
        sha256,
        url,
        version,
        content_type,
    };
    Ok(transform(spec, tools, fetched).await)
}

/// A payload saved earlier (an archived fetch, a file a source sent), for
/// a dry run with no source involved.
pub struct SavedPayload {
    pub bytes: bytes::Bytes,
    /// Where it came from, as the cells' source URI says (`file://…`).
    pub uri: String,
    /// The content type it was served with, when known.
    pub content_type: Option<String>,
}

/// Transforms `saved` as `spec`'s payload: [`dry_run`] without the fetch.
pub async fn dry_run_saved(spec: &FeedSpec, tools: &FeedTools, saved: SavedPayload) -> DryRun {
    let sha256 = hex::encode(sha2::Sha256::digest(&saved.bytes));
    let payload = Payload {
        bytes: saved.bytes,
        sha256,
        url: saved.uri,
        version: None,
        content_type: saved.content_type,
    };
    transform(spec, tools, payload).await
}

/// One payload in hand, fetched or saved.
struct Payload {
    bytes: bytes::Bytes,
    sha256: String,
    url: String,
    version: Option<String>,
    content_type: Option<String>,
}

/// Transforms `payload` as `spec` says, on the feed's transform threads.
async fn transform(spec: &FeedSpec, tools: &FeedTools, payload: Payload) -> DryRun {
    let Payload {
        bytes,
        sha256,
        url,
        version,
        content_type,
    } = payload;
    let ctx = PayloadContext {
        election_id: spec.election_id.clone(),
        feed_id: spec.feed_id.clone(),
        mode: spec.mode,
        source_seq: 0,
        source_version: version.clone(),
        fetched_at: 0,
        fetch_id: format!("{}:dry-run", spec.feed_id),
        source_uri: url.clone(),
        payload_sha256: sha256.clone(),
        trace_id: None,
        content_type,
    };
    let job = TransformJob {
        family: spec.family.clone(),
        bytes: bytes.clone(),
        ctx,
        mapping: spec.mapping.clone(),
        companion: spec.companion.clone(),
    };
    let started = Instant::now();
    // A dry run judges the payload only: a busy instance says so in its
    // result, and nothing is recorded either way.
    let result = run_transform(&tools.transforms, job, spec.transform_timeout)
        .await
        .unwrap_or_else(|busy| {
            Err(votewire_transformers::TransformError {
                family: "transform",
                feed_id: spec.feed_id.clone(),
                class: votewire_transformers::error::ErrorClass::LimitExceeded,
                location: votewire_transformers::Location::Whole,
                message: busy.to_string(),
            })
        });
    DryRun {
        url,
        bytes: bytes.len(),
        sha256,
        version,
        transform_time: started.elapsed(),
        result,
    }
}
