//! Dry runs: one payload of a feed transformed with nothing published,
//! stored or moved (`votewire feeds test`). The payload is fetched from
//! the feed's source ([`dry_run`]) or is one saved earlier
//! ([`dry_run_saved`], offline).

use std::time::{Duration, Instant};

use sha2::Digest;
use votewire_transformers::PayloadContext;

use crate::feed_spec::FeedSpec;
use crate::feed_tools::FeedTools;
use crate::sources::{Payload, SourceError};
use crate::state::FeedCursor;
use crate::transform_run::{TransformJob, run_transform};

/// One payload fetched by [`dry_run`], transformed, nothing committed.
pub struct DryRun {
    /// Where the payload was read (the URL requested, or a saved payload's `file://` URI),
    /// as the cells' source URI says.
    pub url: String,
    /// The payload's size, in bytes.
    pub bytes: usize,
    /// Lower-case hex sha256 of the payload.
    pub sha256: String,
    /// The Clarity version the payload was fetched under; `None` for other sources and for
    /// saved payloads.
    pub version: Option<String>,
    /// How long the transform took, including any wait for a transform slot.
    pub transform_time: Duration,
    /// The cells, or why the payload was rejected; an instance with no free transform slot
    /// reports a `LimitExceeded` error.
    pub result: Result<votewire_transformers::Transformed, votewire_transformers::TransformError>,
}

/// Fetches a feed once from scratch (no cursor: no conditional headers, the
/// current Clarity version, the newest ready SFTP file) and transforms it.
/// Nothing is published, stored or moved: `votewire feeds test`.
pub async fn dry_run(spec: &FeedSpec, tools: &FeedTools) -> Result<DryRun, SourceError> {
    let fetched = spec.source.fetch_once(tools, &spec.limits).await?;
    Ok(transform(spec, tools, fetched).await)
}

/// A payload saved earlier (an archived fetch, a file a source sent), for
/// a dry run with no source involved.
pub struct SavedPayload {
    /// The payload's bytes, exactly as saved.
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
        cursor: FeedCursor::default(),
    };
    transform(spec, tools, payload).await
}

/// Transforms `payload` as `spec` says, on the feed's transform threads.
async fn transform(spec: &FeedSpec, tools: &FeedTools, payload: Payload) -> DryRun {
    let Payload {
        bytes,
        sha256,
        url,
        version,
        content_type,
        ..
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
        .map(|run| run.result)
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
