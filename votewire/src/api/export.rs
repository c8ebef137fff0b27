//! The export resource: `/v1/export/{election}`, an election's current
//! results as a NIST SP 1500-100 v2 `ElectionReport`, from one scan of the
//! votes topic at a time, kept for a few seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use super::auth::Caller;
use super::problem::{BearerProblems, Problem};

/// `votewire.api.export_scans`: scans of the votes topic for exports.
pub(super) static EXPORT_SCANS: std::sync::LazyLock<opentelemetry::metrics::Counter<u64>> =
    std::sync::LazyLock::new(|| {
        opentelemetry::global::meter("votewire")
            .u64_counter("votewire.api.export_scans")
            .with_description("Scans of the votes topic for GET /v1/export (one serves many)")
            .build()
    });

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `nist-cdf-xml` (default) or `nist-cdf-json`.
    pub format: Option<String>,
}

/// An election's current results as a NIST SP 1500-100 v2
/// `ElectionReport` (read from the votes topic: allow a few seconds).
#[utoipa::path(get, path = "/v1/export/{election}", tag = "results", security(("bearer" = [])),
    params(("election" = String, Path, description = "The election id"), ExportQuery),
    responses(
        (status = 200, description = "The ElectionReport (application/xml or application/json)", content((String = "application/xml"), (Object = "application/json"))),
        (status = 400, description = "An unknown format", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No cells of this election", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not answer", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
    ))]
pub(super) async fn export_election(
    _caller: Caller,
    State(state): State<Shared>,
    Path(election): Path<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) =
        query.map_err(|e| Problem::typed(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))?;
    let name = q.format.as_deref().unwrap_or("nist-cdf-xml");
    let format = crate::export::format_of(name).ok_or_else(|| {
        Problem::typed(
            StatusCode::BAD_REQUEST,
            "bad-query",
            format!("format {name:?} is neither nist-cdf-xml nor nist-cdf-json"),
        )
    })?;
    let content_type = match format {
        votewire_aggregator::nist_export::ExportFormat::Xml => "application/xml",
        votewire_aggregator::nist_export::ExportFormat::Json => "application/json",
    };
    let key = (election.clone(), content_type);
    let answer = |bytes: Arc<[u8]>| ([(header::CONTENT_TYPE, content_type)], bytes.to_vec());
    if let Some(known) = state.exports.lock().expect("exports lock").lookup(&key) {
        return known.map(|b| answer(b).into_response());
    }
    // One scan of the votes topic at a time, whoever asks, and its answer
    // served to everyone for EXPORT_FRESH_FOR (with the elections it saw,
    // so a storm of unknown names costs one scan): a read token cannot
    // start a scan per request. A caller that waits too long for another's
    // scan gets a 503 with Retry-After instead of a queue.
    let scan = tokio::time::timeout(EXPORT_QUEUE_WAIT, state.export_scan.clone().lock_owned())
        .await
        .map_err(|_| {
            Problem::unavailable("an export is being computed; retry shortly".to_string())
                .retry_after(5)
        })?;
    if let Some(known) = state.exports.lock().expect("exports lock").lookup(&key) {
        return known.map(|b| answer(b).into_response());
    }
    // The scan runs in its own task holding the lock: a caller that hangs
    // up does not free the lock for a second scan while the first runs,
    // and the answer is still kept for the next caller.
    let task_state = state.clone();
    let scanned = tokio::spawn(async move {
        let _scan = scan;
        EXPORT_SCANS.add(1, &[]);
        let (kafka, topic, e) = (
            task_state.config.kafka.clone(),
            task_state.config.topics.votes.clone(),
            key.0.clone(),
        );
        let found =
            tokio::task::spawn_blocking(move || crate::export::current_cells(&kafka, &topic, &e))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{e:#}"))?;
        let bytes: Option<Arc<[u8]>> = (!found.cells.is_empty()).then(|| {
            votewire_aggregator::nist_export::election_report(
                &key.0,
                &found.cells,
                &crate::export::utc_now(),
                format,
            )
            .bytes
            .into()
        });
        let mut exports = task_state.exports.lock().expect("exports lock");
        exports.elections = Some((Instant::now(), Arc::new(found.elections)));
        if let Some(bytes) = &bytes {
            exports.keep(key, bytes.clone());
        }
        Ok::<_, String>(bytes)
    })
    .await
    .map_err(|e| Problem::unavailable(format!("reading the votes topic: {e}")))?
    .map_err(|e| Problem::unavailable(format!("reading the votes topic: {e}; retry shortly")))?;
    match scanned {
        Some(bytes) => Ok(answer(bytes).into_response()),
        None => Err(no_such_election(&election)),
    }
}

pub(super) fn no_such_election(election: &str) -> Problem {
    Problem::not_found(format!(
        "no cells of election {election:?}; GET /v1/feeds shows each feed's election"
    ))
}

/// What recent export scans found: reports, and the elections they saw.
#[derive(Default)]
pub(super) struct ExportCache {
    reports: HashMap<(String, &'static str), CachedExport>,
    elections: Option<(Instant, Arc<std::collections::HashSet<String>>)>,
}

impl ExportCache {
    /// A fresh answer for `key`: its report, or a 404 when the last scan
    /// (fresh) saw no cell of its election; `None` when a scan is needed.
    fn lookup(&self, key: &(String, &'static str)) -> Option<Result<Arc<[u8]>, Problem>> {
        if let Some(hit) = self
            .reports
            .get(key)
            .filter(|c| c.at.elapsed() < EXPORT_FRESH_FOR)
        {
            return Some(Ok(hit.bytes.clone()));
        }
        match &self.elections {
            Some((at, seen)) if at.elapsed() < EXPORT_FRESH_FOR && !seen.contains(&key.0) => {
                Some(Err(no_such_election(&key.0)))
            }
            _ => None,
        }
    }

    /// Keeps a report, dropping stale ones, and no more than 64.
    fn keep(&mut self, key: (String, &'static str), bytes: Arc<[u8]>) {
        self.reports
            .retain(|_, c| c.at.elapsed() < EXPORT_FRESH_FOR);
        if self.reports.len() < 64 {
            self.reports.insert(
                key,
                CachedExport {
                    at: Instant::now(),
                    bytes,
                },
            );
        }
    }
}

/// An export's bytes and when they were computed.
pub(super) struct CachedExport {
    at: Instant,
    bytes: Arc<[u8]>,
}

/// How long an export is served from the last scan.
pub(super) const EXPORT_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a caller waits for another's export scan before a 503.
pub(super) const EXPORT_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The export routes.
pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(export_election))
}
