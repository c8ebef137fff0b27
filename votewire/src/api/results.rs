//! The results resource: `/v1/results/{election}` and
//! `/v1/results/{election}/{contest}`, read from the results topic's view,
//! with strong ETags and the caching headers a CDN honours (shared with the
//! live page). Publisher test data's results are on a topic of their own
//! and are served only to a reader who asks for them (`?mode=test`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use super::auth::Caller;
use super::problem::{BearerProblems, Problem};
use super::results_view::ResultsView;

/// Which results a reader asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultsMode {
    /// Live (and replayed) data: what newsrooms publish. The default.
    #[default]
    Live,
    /// Publisher test data (cells marked `test`), from the test results
    /// topic; never mixed into `live`.
    Test,
}

/// `?mode=`: live results (the default) or publisher test data's.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModeQuery {
    /// `live` (default) or `test`.
    pub mode: Option<ResultsMode>,
}

/// The mode a query asks for; a malformed query is a 400 problem.
fn mode_of(
    query: Result<Query<ModeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ResultsMode, Problem> {
    let Query(q) =
        query.map_err(|e| Problem::typed(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))?;
    Ok(q.mode.unwrap_or_default())
}

/// The view that serves `mode`.
fn view_of(state: &Shared, mode: ResultsMode) -> &Arc<ResultsView> {
    match mode {
        ResultsMode::Live => &state.results,
        ResultsMode::Test => &state.results_test,
    }
}

/// Every unit's current result of one contest (the results topic's
/// latest record per key).
#[derive(Debug, Serialize, ToSchema)]
pub struct ContestResults {
    pub election_id: String,
    pub contest_id: String,
    /// Which results these are: `live` or `test` (in the body, so that the
    /// two never share an ETag, even behind a cache that ignores the query).
    pub mode: ResultsMode,
    /// `ContestResult` records (schemas/avro/contest_result.avsc) as JSON.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ElectionContests {
    pub election_id: String,
    /// Which results these are: `live` or `test`.
    pub mode: ResultsMode,
    pub contest_ids: Vec<String>,
}

/// Every unit's current result of one contest.
#[utoipa::path(get, path = "/v1/results/{election}/{contest}", tag = "results", security(("bearer" = [])),
    params(("election" = String, Path, description = "The election id"),
           ("contest" = String, Path, description = "The contest id (shared id for merged contests, else `<feed>/<source contest id>`; percent-encode `/`)"),
           ModeQuery),
    responses(
        (status = 200, description = "The contest's results, with an ETag", body = ContestResults),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 400, description = "A malformed query (an unknown mode)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No results for this contest (yet)", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
    ))]
pub(super) async fn contest_results(
    _caller: Caller,
    State(state): State<Shared>,
    Path((election, contest)): Path<(String, String)>,
    query: Result<Query<ModeQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let mode = mode_of(query)?;
    let view = view_of(&state, mode);
    let not_found = || {
        Problem::not_found(format!(
            "no results for contest {contest:?} of {election:?}; GET /v1/results/{{election}} lists the contests"
        ))
    };
    let version = view.version(&election, &contest).ok_or_else(not_found)?;
    let key = (election.clone(), contest.clone(), mode);
    let cached = state
        .rendered
        .lock()
        .expect("rendered lock")
        .get(&key)
        .filter(|(v, _, _)| *v == version)
        .map(|(_, bytes, etag)| (bytes.clone(), etag.clone()));
    let (bytes, etag) = match cached {
        Some(hit) => hit,
        None => {
            let results = view.contest(&election, &contest).ok_or_else(not_found)?;
            let body = ContestResults {
                election_id: election,
                contest_id: contest,
                mode,
                results: results
                    .iter()
                    .filter_map(|r| serde_json::to_value(r).ok())
                    .collect(),
            };
            let bytes = Arc::new(serde_json::to_vec(&body).unwrap_or_default());
            let etag = etag_of(&bytes);
            state
                .rendered
                .lock()
                .expect("rendered lock")
                .insert(key, (version, bytes.clone(), etag.clone()));
            (bytes, etag)
        }
    };
    Ok(respond_cacheable(&headers, &bytes, etag))
}

/// How results are cached: a CDN may serve them for a second, and for ten
/// more while it revalidates with `If-None-Match`, which costs the origin
/// a 304 and no body when nothing changed.
pub(super) const RESULTS_CACHE_CONTROL: &str = "public, max-age=1, stale-while-revalidate=10";

/// A strong ETag for a body: a hash of its bytes.
pub(super) fn etag_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(bytes)[..12]))
}

/// `body` as JSON with a strong ETag, or 304 when the request already
/// holds that version.
pub(super) fn cacheable(request: &axum::http::HeaderMap, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let etag = etag_of(&bytes);
    respond_cacheable(request, &bytes, etag)
}

/// JSON `bytes` under `etag` with the results' caching headers, or a
/// bodiless 304 when `If-None-Match` names that ETag.
pub(super) fn respond_cacheable(
    request: &axum::http::HeaderMap,
    bytes: &[u8],
    etag: String,
) -> Response {
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let cache = [
        (header::CACHE_CONTROL, RESULTS_CACHE_CONTROL.to_string()),
        (header::ETAG, etag),
    ];
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, "application/json".to_string())],
        bytes.to_vec(),
    )
        .into_response()
}

/// The contests of one election that have results.
#[utoipa::path(get, path = "/v1/results/{election}", tag = "results", security(("bearer" = [])),
    params(("election" = String, Path, description = "The election id"), ModeQuery),
    responses(
        (status = 200, description = "The election's contests, with an ETag", body = ElectionContests),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 400, description = "A malformed query (an unknown mode)", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
    ))]
pub(super) async fn election_contests(
    _caller: Caller,
    State(state): State<Shared>,
    Path(election): Path<String>,
    query: Result<Query<ModeQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let mode = mode_of(query)?;
    let contest_ids = view_of(&state, mode)
        .contest_ids()
        .into_iter()
        .filter(|(e, _)| *e == election)
        .map(|(_, c)| c)
        .collect();
    Ok(cacheable(
        &headers,
        &ElectionContests {
            election_id: election,
            mode,
            contest_ids,
        },
    ))
}

/// The results routes.
pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(contest_results))
        .routes(routes!(election_contests))
}
