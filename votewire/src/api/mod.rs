//! `votewire api`: the operator REST API.
//!
//! Feeds (list, show, history, add, replace, delete, and the operator
//! actions pause / resume / poll-now / unquarantine / reset-cursor),
//! results read from the results topic, health probes and the OpenAPI
//! document generated from these handlers (`/openapi.json`).
//!
//! Every `/v1` call needs a bearer token ([`auth`]); changing calls need
//! the `admin` scope and are recorded in the feed's history as
//! `api:<token name>`. Errors are RFC 9457 problems ([`problem`]). Bodies
//! are capped at 64 KiB and each client address at `--rate-limit`
//! requests per second (twice that in a burst).
//!
//! The live results page ([`live`]: `/live`, `/live/contests`,
//! `/live/events`) is for readers: public, read-only, results only.

mod auth;
mod authoring;
mod live;
mod problem;
mod registry;
mod results_view;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use votewire_core::config::VotewireConfig;
use votewire_ingestors::feeds::ValidFeed;
use votewire_ingestors::state::{FeedState, FeedStateStore, OperatorAction, open_feed_state};

use crate::http_server::client_limits::{
    self, ClientKey, HoldsPerClient, RateLimiter, TrustedProxies,
};
use auth::{ApiTokens, Caller};
use problem::Problem;
pub(crate) use registry::FeedRegistry;
use results_view::ResultsView;

/// The largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(clap::Args)]
pub struct ApiArgs {
    /// Where to listen (default: the config's `api.listen`,
    /// `VOTEWIRE_API_LISTEN`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The feed registry directory (the one the ingestors follow).
    #[arg(long, env = "VOTEWIRE_FEEDS")]
    feeds: PathBuf,
    /// Tokens: lines of `<name> <read|admin> <token>`.
    #[arg(long, env = "VOTEWIRE_API_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// The same lines, `;`-separated. Prefer the variable: a command line
    /// is visible to every user of the machine.
    #[arg(long, env = "VOTEWIRE_API_TOKENS", hide_env_values = true)]
    tokens: Option<String>,
    /// Requests per second per client address (bursts of twice that).
    #[arg(long, default_value_t = 50.0)]
    rate_limit: f64,
    /// Stop after this long (tests); default: until Ctrl-C.
    #[arg(long, value_parser = votewire_ingestors::feeds::duration_arg)]
    run_for: Option<std::time::Duration>,
}

pub struct ApiState {
    /// Rendered contest answers (version, JSON, ETag), reused until the
    /// contest changes: a CDN's revalidations cost a lookup, not a render.
    rendered: Mutex<HashMap<(String, String), RenderedContest>>,
    config: VotewireConfig,
    prometheus: votewire_core::metrics::PrometheusText,
    tokens: ApiTokens,
    registry: FeedRegistry,
    state: Arc<dyn FeedStateStore>,
    results: Arc<ResultsView>,
    limiter: RateLimiter,
    /// Whose `X-Forwarded-For` names the client.
    proxies: TrustedProxies,
    /// Live streams per client, at most [`client_limits::MAX_STREAMS_PER_CLIENT`] each.
    streams_per_client: HoldsPerClient,
    /// The last export per (election, format), and the elections the last
    /// scan saw.
    exports: Mutex<ExportCache>,
    /// Held by the one export scan that runs at a time.
    export_scan: Arc<tokio::sync::Mutex<()>>,
    /// `/live/contests` answers by election filter, reused until any
    /// result changes: (view version, JSON, ETag).
    live_rendered: Mutex<HashMap<Option<String>, RenderedContest>>,
    /// Open live streams, at most [`live::MAX_STREAMS`].
    live_streams: Arc<tokio::sync::Semaphore>,
    /// Set when the API stops: live streams end, so the graceful shutdown
    /// does not wait on readers who never hang up.
    stopping: tokio::sync::watch::Sender<bool>,
}

type Shared = Arc<ApiState>;

/// A contest's rendered answer: (contest version, JSON bytes, ETag).
type RenderedContest = (u64, Arc<Vec<u8>>, String);

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Problem> {
        state.tokens.caller(
            parts
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
    }
}

/// `http.server.request.duration` (s) by method, route and status.
static HTTP_DURATION: std::sync::LazyLock<opentelemetry::metrics::Histogram<f64>> =
    std::sync::LazyLock::new(|| {
        opentelemetry::global::meter("votewire")
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("API requests, by method, route and status")
            .with_boundaries(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ])
            .build()
    });

/// `votewire.api.export_scans`: scans of the votes topic for exports.
static EXPORT_SCANS: std::sync::LazyLock<opentelemetry::metrics::Counter<u64>> =
    std::sync::LazyLock::new(|| {
        opentelemetry::global::meter("votewire")
            .u64_counter("votewire.api.export_scans")
            .with_description("Scans of the votes topic for GET /v1/export (one serves many)")
            .build()
    });

async fn http_metrics(req: Request, next: Next) -> Response {
    use opentelemetry::KeyValue;
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    HTTP_DURATION.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new(
                "http.response.status_code",
                i64::from(resp.status().as_u16()),
            ),
        ],
    );
    resp
}

async fn rate_limit(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let forwarded = client_limits::forwarded_for(req.headers());
    let who = ClientKey::of(state.proxies.client_of(peer, forwarded.as_deref()));
    req.extensions_mut().insert(who);
    if state.limiter.allow(who) {
        next.run(req).await
    } else {
        Problem::typed(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "too many requests from this address; slow down and retry after the given seconds",
        )
        .retry_after(1)
        .into_response()
    }
}

fn store_problem(e: votewire_ingestors::state::StateError) -> Problem {
    Problem::unavailable(format!("the feed-state store: {e}; retry shortly"))
}

/// A JSON body, or a problem (400 when it is not JSON, 413 past the cap).
fn json_body(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<serde_json::Value, Problem> {
    let bytes = body.map_err(|e| {
        Problem::typed(
            e.status(),
            "bad-body",
            format!(
                "{}; bodies are at most {MAX_BODY_BYTES} bytes of JSON",
                e.body_text()
            ),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Problem::typed(
            StatusCode::BAD_REQUEST,
            "bad-json",
            format!("the body is not JSON ({e}); send one feed as a JSON object"),
        )
    })
}

// ---------------------------------------------------------------- schemas

/// One feed's standing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedSummary {
    pub id: String,
    pub family: String,
    pub election_id: String,
    pub enabled: bool,
    /// `healthy`, `stale`, `failing`, `quarantined`, `paused`, or `never
    /// run`.
    pub health: String,
    pub paused: bool,
    /// The last accepted payload's sequence number (0: none yet).
    pub source_seq: i64,
    /// When the last accepted payload was fetched (ms since the epoch).
    pub last_change_ms: Option<i64>,
    /// When the owner last fetched (ms; up to half a lease TTL old).
    pub last_fetch_ms: Option<i64>,
    pub last_error_ms: Option<i64>,
    /// Seconds since the last change.
    pub freshness_s: Option<f64>,
    /// The ingestor holding the feed's lease (`lease_live`), or the last
    /// one that did.
    pub lease_owner: Option<String>,
    /// Whether `lease_owner` holds an unexpired lease now.
    pub lease_live: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedList {
    pub feeds: Vec<FeedSummary>,
}

/// What the next fetch starts from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CursorView {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub next_request: Option<String>,
    /// SFTP: how many processed files are remembered.
    pub sftp_files_seen: usize,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    pub owner: String,
    pub expires_ms: i64,
    pub fencing: i64,
}

/// One feed: its standing, its config as written, cursor and lease.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedDetail {
    #[serde(flatten)]
    pub summary: FeedSummary,
    /// Where the entry is defined (`file:line`).
    pub defined_at: String,
    /// The `[[feed]]` entry as JSON; secrets appear by reference only.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub cursor: Option<CursorView>,
    pub lease: Option<LeaseView>,
    pub operator_generation: i64,
}

/// A feed to add or replace: the fields of a `[[feed]]` entry
/// (docs/operators.md), e.g. `{"id": "clarity:GA:107556", "family":
/// "clarity-json", "election_id": "2021-01-05-GA-runoff", "source":
/// {"kind": "clarity", "base_url": "https://…/GA/107556", "file":
/// "json/ALL.json"}}`. The schema names the required fields; the
/// registry's validation (the same as `votewire feeds validate`) has the
/// last word and answers 422 with every problem.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documents the body; the registry validates it
pub struct FeedConfigBody {
    /// Unique across the registry: letters, digits and `:/._-`.
    #[schema(pattern = "^[A-Za-z0-9:/._-]+$", min_length = 1, max_length = 200)]
    pub id: String,
    /// A transformer family (`votewire transform --list`).
    pub family: String,
    #[schema(min_length = 1)]
    pub election_id: String,
    pub source: FeedSourceBody,
}

/// Where the payload comes from; the other fields depend on `kind`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct FeedSourceBody {
    /// The source kind (`votewire_ingestors::sources::SOURCES`).
    #[schema(schema_with = source_kind_schema)]
    pub kind: String,
}

/// `kind`'s schema: a string naming one of the registry's source kinds.
fn source_kind_schema() -> utoipa::openapi::schema::Object {
    use votewire_ingestors::sources::SOURCES;
    let listed: Vec<String> = SOURCES
        .iter()
        .map(|k| format!("`{}`: {}", k.name, k.summary))
        .collect();
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(SOURCES.iter().map(|k| k.name)))
        .description(Some(format!("One of: {}.", listed.join("; "))))
        .build()
}

/// One stored transition.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEvent {
    pub at_ms: i64,
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    /// Who: an ingestor instance, or `api:<token name>` / `operator:<user>`.
    pub actor: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    /// Pass as `page_token` for the next (older) page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Events per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The previous page's `next_page_token`.
    pub page_token: Option<String>,
}

/// An operator action, as stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionDone {
    pub feed_id: String,
    pub action: String,
    pub health_before: String,
    pub health_after: String,
    pub actor: String,
    pub at_ms: i64,
    /// When running ingestors apply it.
    pub applies: String,
}

/// Every unit's current result of one contest (the results topic's
/// latest record per key).
#[derive(Debug, Serialize, ToSchema)]
pub struct ContestResults {
    pub election_id: String,
    pub contest_id: String,
    /// `ContestResult` records (schemas/avro/contest_result.avsc) as JSON.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ElectionContests {
    pub election_id: String,
    pub contest_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub results_records_read: u64,
}

// --------------------------------------------------------------- handlers

pub(crate) fn summary(feed: &ValidFeed, stored: Option<&FeedState>, now: i64) -> FeedSummary {
    let e = &feed.entry;
    FeedSummary {
        id: e.id.get_ref().clone(),
        family: e.family.get_ref().clone(),
        election_id: e.election_id.clone(),
        enabled: e.enabled,
        health: stored.map_or("never run".into(), |s| s.health.clone()),
        paused: stored.is_some_and(|s| s.paused),
        source_seq: stored.map_or(0, |s| s.source_seq),
        last_change_ms: stored.and_then(|s| s.last_change_ms),
        last_fetch_ms: stored.and_then(|s| s.last_fetch_ms),
        last_error_ms: stored.and_then(|s| s.last_error_ms),
        freshness_s: stored
            .and_then(|s| s.last_change_ms)
            .map(|t| (now - t).max(0) as f64 / 1000.0),
        lease_owner: stored
            .and_then(|s| s.lease.as_ref())
            .map(|l| l.owner.clone()),
        lease_live: stored
            .and_then(|s| s.lease.as_ref())
            .is_some_and(|l| l.expires_ms > now),
    }
}

pub(crate) async fn detail(
    store: &dyn FeedStateStore,
    registry: &FeedRegistry,
    feed: ValidFeed,
) -> Result<FeedDetail, Problem> {
    let id = feed.entry.id.get_ref().clone();
    let stored = store.load(&id).await.map_err(store_problem)?;
    let now = votewire_core::unix_ms();
    Ok(FeedDetail {
        summary: summary(&feed, stored.as_ref(), now),
        defined_at: format!("{}:{}", feed.file.display(), feed.line),
        config: registry.entry_json(&feed),
        cursor: stored.as_ref().map(|s| CursorView {
            etag: s.cursor.etag.clone(),
            last_modified: s.cursor.last_modified.clone(),
            version: s.cursor.version.clone(),
            sha256: s.cursor.sha256.clone(),
            next_request: s.cursor.next_request.clone(),
            sftp_files_seen: s
                .cursor
                .sftp_seen
                .as_deref()
                .map_or(0, |t| t.lines().count()),
        }),
        lease: stored.as_ref().and_then(|s| {
            s.lease
                .as_ref()
                .filter(|l| l.expires_ms > now)
                .map(|l| LeaseView {
                    owner: l.owner.clone(),
                    expires_ms: l.expires_ms,
                    fencing: l.fencing,
                })
        }),
        operator_generation: stored.map_or(0, |s| s.operator_gen),
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Liveness)))]
async fn healthz() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
    })
}

/// Readiness: the state store answers and the results topic has been read
/// to its end once.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready yet", body = Problem, content_type = "application/problem+json"),
    ))]
async fn readyz(State(state): State<Shared>) -> Result<Json<Readiness>, Problem> {
    state
        .state
        .load("readyz-probe")
        .await
        .map_err(store_problem)?;
    if !state.results.caught_up() {
        return Err(Problem::unavailable(
            "still reading the results topic from its beginning; retry shortly",
        ));
    }
    Ok(Json(Readiness {
        status: "ready".into(),
        results_records_read: state.results.records(),
    }))
}

/// Every feed in the registry with its health, last change and freshness.
#[utoipa::path(get, path = "/v1/feeds", tag = "feeds", security(("bearer" = [])),
    responses(
        (status = 200, description = "The feeds", body = FeedList),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The state store did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_feeds(
    _caller: Caller,
    State(state): State<Shared>,
) -> Result<Json<FeedList>, Problem> {
    let feeds = state.registry.feeds()?;
    let now = votewire_core::unix_ms();
    let mut out = Vec::with_capacity(feeds.len());
    for f in &feeds {
        let stored = state
            .state
            .load(f.entry.id.get_ref())
            .await
            .map_err(store_problem)?;
        out.push(summary(f, stored.as_ref(), now));
    }
    Ok(Json(FeedList { feeds: out }))
}

/// One feed: config (secrets by reference), cursor, lease owner.
#[utoipa::path(get, path = "/v1/feeds/{id}", tag = "feeds", security(("bearer" = [])),
    params(("id" = String, Path, description = "The feed id (percent-encode `/`)")),
    responses(
        (status = 200, description = "The feed", body = FeedDetail),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The state store did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn show_feed(
    _caller: Caller,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<FeedDetail>, Problem> {
    let feed = state.registry.find(&id)?;
    Ok(Json(
        detail(state.state.as_ref(), &state.registry, feed).await?,
    ))
}

/// The feed's stored transitions (health changes and operator actions),
/// newest first, paginated.
#[utoipa::path(get, path = "/v1/feeds/{id}/history", tag = "feeds", security(("bearer" = [])),
    params(("id" = String, Path, description = "The feed id"), HistoryQuery),
    responses(
        (status = 200, description = "A page of history", body = HistoryPage),
        (status = 400, description = "A bad limit or page token", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The state store did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn feed_history(
    _caller: Caller,
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryPage>, Problem> {
    let Query(q) =
        query.map_err(|e| Problem::typed(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::typed(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "limit must be between 1 and 500",
        ));
    }
    state.registry.find(&id)?;
    let (events, next) = state
        .state
        .history(&id, limit as i32, q.page_token.clone())
        .await
        .map_err(|e| match (&q.page_token, &e) {
            (Some(_), votewire_ingestors::state::StateError::Store { .. }) => Problem::typed(
                StatusCode::BAD_REQUEST,
                "bad-query",
                format!("page_token is not one this API gave out ({e})"),
            ),
            _ => store_problem(e),
        })?;
    Ok(Json(HistoryPage {
        events: events.into_iter().map(history_event).collect(),
        next_page_token: next,
    }))
}

pub(crate) fn history_event(e: votewire_ingestors::state::HealthEvent) -> HistoryEvent {
    HistoryEvent {
        at_ms: e.at_ms,
        from: e.from,
        to: e.to,
        reason: e.reason,
        actor: e.actor,
    }
}

/// Adds a feed to the registry (admin). Running ingestors pick it up at
/// their next registry check.
#[utoipa::path(post, path = "/v1/feeds", tag = "feeds", security(("bearer" = [])),
    request_body(content = FeedConfigBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = FeedDetail),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id exists, or the registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The feed fails validation", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The state store did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_feed(
    caller: Caller,
    State(state): State<Shared>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let body = json_body(body)?;
    let feed = state.registry.create(&body).await?;
    let id = feed.entry.id.get_ref().clone();
    record(&state, &id, &caller, "added through the API").await;
    let location = format!("/v1/feeds/{}", encode_segment(&id));
    let detail = detail(state.state.as_ref(), &state.registry, feed).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(detail),
    )
        .into_response())
}

/// Replaces a feed's entry (admin). The feed must be alone in its file.
#[utoipa::path(put, path = "/v1/feeds/{id}", tag = "feeds", security(("bearer" = [])),
    params(("id" = String, Path, description = "The feed id")),
    request_body(content = FeedConfigBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = FeedDetail),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The feed shares its file, or the registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The feed fails validation", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The state store did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn replace_feed(
    caller: Caller,
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<FeedDetail>, Problem> {
    caller.require_admin()?;
    let body = json_body(body)?;
    let feed = state.registry.replace(&id, &body).await?;
    record(&state, &id, &caller, "replaced through the API").await;
    Ok(Json(
        detail(state.state.as_ref(), &state.registry, feed).await?,
    ))
}

/// Removes a feed from the registry (admin); its stored state and history
/// stay. Running ingestors stop it at their next registry check.
#[utoipa::path(delete, path = "/v1/feeds/{id}", tag = "feeds", security(("bearer" = [])),
    params(("id" = String, Path, description = "The feed id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The feed shares its file, or the registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The state store did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_feed(
    caller: Caller,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require_admin()?;
    state.registry.delete(&id).await?;
    record(&state, &id, &caller, "deleted through the API").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a registry edit in the feed's history (who, what, when). The
/// edit itself has landed; a history write that fails is reported on
/// stderr rather than undoing it.
async fn record(state: &ApiState, id: &str, caller: &Caller, what: &str) {
    let health = match state.state.load(id).await {
        Ok(Some(s)) => s.health,
        _ => "never run".into(),
    };
    let event = votewire_ingestors::state::HealthEvent {
        at_ms: votewire_core::unix_ms(),
        from: Some(health.clone()),
        to: health,
        reason: what.to_string(),
        actor: caller.actor(),
    };
    if let Err(e) = state.state.append_event(id, &event).await {
        tracing::error!("feed {id}: recording {what:?} in the history: {e}");
    }
}

fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn act(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    action: OperatorAction,
    name: &str,
) -> Result<Json<ActionDone>, Problem> {
    caller.require_admin()?;
    state.registry.find(id)?;
    let stored = state.state.load(id).await.map_err(store_problem)?;
    let health = stored.as_ref().map_or("never run", |s| s.health.as_str());
    if let Some(why) = refusal(action, name, id, health) {
        return Err(Problem::conflict(why));
    }
    let at_ms = votewire_core::unix_ms();
    let actor = caller.actor();
    let (before, after) = state
        .state
        .act(id, action, &actor, at_ms)
        .await
        .map_err(store_problem)?;
    Ok(Json(action_done(id, name, before, after, actor, at_ms)))
}

/// Why `action` (called `name`) cannot be done to a feed in `health`.
pub(crate) fn refusal(
    action: OperatorAction,
    name: &str,
    id: &str,
    health: &str,
) -> Option<String> {
    match action {
        OperatorAction::PollNow if matches!(health, "paused" | "quarantined") => Some(format!(
            "feed {id} is {health}; resume (or unquarantine) it first"
        )),
        OperatorAction::Resume if name == "unquarantine" && health != "quarantined" => Some(
            format!("feed {id} is {health}, not quarantined; nothing to release"),
        ),
        _ => None,
    }
}

pub(crate) fn action_done(
    id: &str,
    name: &str,
    health_before: String,
    health_after: String,
    actor: String,
    at_ms: i64,
) -> ActionDone {
    ActionDone {
        feed_id: id.to_string(),
        action: name.to_string(),
        health_before,
        health_after,
        actor,
        at_ms,
        applies: "running ingestors restart the feed at their next lease round (a third of the lease TTL)"
            .into(),
    }
}

macro_rules! action_handler {
    ($fn_name:ident, $path:literal, $action:expr, $name:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "feed actions", security(("bearer" = [])),
            params(("id" = String, Path, description = "The feed id")),
            responses(
                (status = 200, description = "Stored; applied within a lease round", body = ActionDone),
                (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
                (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
                (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "Not possible in the feed's state", body = Problem, content_type = "application/problem+json"),
                (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "The state store did not answer", body = Problem, content_type = "application/problem+json"),
            ))]
        async fn $fn_name(
            caller: Caller,
            State(state): State<Shared>,
            Path(id): Path<String>,
        ) -> Result<Json<ActionDone>, Problem> {
            act(&state, &caller, &id, $action, $name).await
        }
    };
}

action_handler!(
    pause_feed,
    "/v1/feeds/{id}/pause",
    OperatorAction::Pause,
    "pause",
    "Pauses a feed (admin): ingestors stop polling it."
);
action_handler!(
    resume_feed,
    "/v1/feeds/{id}/resume",
    OperatorAction::Resume,
    "resume",
    "Resumes a paused or quarantined feed (admin)."
);
action_handler!(
    poll_now,
    "/v1/feeds/{id}/poll-now",
    OperatorAction::PollNow,
    "poll-now",
    "Restarts a feed so it polls at once (admin)."
);
action_handler!(
    unquarantine_feed,
    "/v1/feeds/{id}/unquarantine",
    OperatorAction::Resume,
    "unquarantine",
    "Releases a quarantined feed (admin); 409 when it is not quarantined."
);
action_handler!(
    reset_cursor,
    "/v1/feeds/{id}/reset-cursor",
    OperatorAction::ResetCursor,
    "reset-cursor",
    "Forgets the feed's cursor so the next poll fetches everything (admin); source_seq stays."
);

/// Every unit's current result of one contest.
#[utoipa::path(get, path = "/v1/results/{election}/{contest}", tag = "results", security(("bearer" = [])),
    params(("election" = String, Path, description = "The election id"),
           ("contest" = String, Path, description = "The contest id (shared id for merged contests, else `<feed>/<source contest id>`; percent-encode `/`)")),
    responses(
        (status = 200, description = "The contest's results, with an ETag", body = ContestResults),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No results for this contest (yet)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ))]
async fn contest_results(
    _caller: Caller,
    State(state): State<Shared>,
    Path((election, contest)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let not_found = || {
        Problem::not_found(format!(
            "no results for contest {contest:?} of {election:?}; GET /v1/results/{{election}} lists the contests"
        ))
    };
    let version = state
        .results
        .version(&election, &contest)
        .ok_or_else(not_found)?;
    let key = (election.clone(), contest.clone());
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
            let results = state
                .results
                .contest(&election, &contest)
                .ok_or_else(not_found)?;
            let body = ContestResults {
                election_id: election,
                contest_id: contest,
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
const RESULTS_CACHE_CONTROL: &str = "public, max-age=1, stale-while-revalidate=10";

/// A strong ETag for a body: a hash of its bytes.
fn etag_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(bytes)[..12]))
}

/// `body` as JSON with a strong ETag, or 304 when the request already
/// holds that version.
fn cacheable(request: &axum::http::HeaderMap, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let etag = etag_of(&bytes);
    respond_cacheable(request, &bytes, etag)
}

/// JSON `bytes` under `etag` with the results' caching headers, or a
/// bodiless 304 when `If-None-Match` names that ETag.
fn respond_cacheable(request: &axum::http::HeaderMap, bytes: &[u8], etag: String) -> Response {
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
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No cells of this election", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not answer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn export_election(
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

fn no_such_election(election: &str) -> Problem {
    Problem::not_found(format!(
        "no cells of election {election:?}; GET /v1/feeds shows each feed's election"
    ))
}

/// What recent export scans found: reports, and the elections they saw.
#[derive(Default)]
struct ExportCache {
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
struct CachedExport {
    at: Instant,
    bytes: Arc<[u8]>,
}

/// How long an export is served from the last scan.
const EXPORT_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a caller waits for another's export scan before a 503.
const EXPORT_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The contests of one election that have results.
#[utoipa::path(get, path = "/v1/results/{election}", tag = "results", security(("bearer" = [])),
    params(("election" = String, Path, description = "The election id")),
    responses(
        (status = 200, description = "The election's contests, with an ETag", body = ElectionContests),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ))]
async fn election_contests(
    _caller: Caller,
    State(state): State<Shared>,
    Path(election): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let contest_ids = state
        .results
        .contest_ids()
        .into_iter()
        .filter(|(e, _)| *e == election)
        .map(|(_, c)| c)
        .collect();
    cacheable(
        &headers,
        &ElectionContests {
            election_id: election,
            contest_ids,
        },
    )
}

/// Prometheus scrapes this process here (no token: metrics hold no
/// secrets, and scrapers rarely carry one).
async fn prometheus_metrics(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render_off_runtime().await,
    )
        .into_response()
}

async fn not_found() -> Problem {
    Problem::not_found("no such endpoint; GET /openapi.json lists them")
}

async fn method_not_allowed() -> Problem {
    Problem::typed(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not take that method; GET /openapi.json lists what it takes",
    )
}

/// Adds the bearer scheme, and the registered transformer families as the
/// feed body's `family` enum (the list lives in code, not in the schema).
struct BearerAuthAndFamilies;

impl Modify for BearerAuthAndFamilies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        if let Some(RefOr::T(Schema::Object(body))) = components.schemas.get_mut("FeedConfigBody")
            && let Some(RefOr::T(Schema::Object(family))) = body.properties.get_mut("family")
        {
            family.enum_values = Some(
                votewire_transformers::FAMILIES
                    .iter()
                    .map(|f| serde_json::Value::String(f.name.to_string()))
                    .collect(),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "votewire operator API",
        description = "Feeds, operator actions and results of a votewire election-night pool."
    ),
    components(schemas(Problem))
)]
struct ApiDoc;

/// The router and the OpenAPI document, both built from the handlers.
pub fn router(state: Shared) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(list_feeds, create_feed))
        .routes(routes!(authoring::validate_feed))
        .routes(routes!(authoring::families))
        .routes(routes!(show_feed, replace_feed, delete_feed))
        .routes(routes!(feed_history))
        .routes(routes!(pause_feed))
        .routes(routes!(resume_feed))
        .routes(routes!(poll_now))
        .routes(routes!(unquarantine_feed))
        .routes(routes!(reset_cursor))
        .routes(routes!(contest_results))
        .routes(routes!(election_contests))
        .routes(routes!(export_election))
        .routes(routes!(live::contests))
        .split_for_parts();
    // After the routes: their schemas are in the components only now.
    BearerAuthAndFamilies.modify(&mut openapi);
    let spec = openapi.clone();
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move { Json(spec) }
            }),
        )
        .route("/metrics", axum::routing::get(prometheus_metrics))
        .route("/live", axum::routing::get(live::page))
        .route("/live/events", axum::routing::get(live::events))
        .route("/live/live.js", axum::routing::get(live::script))
        .route(
            "/favicon.ico",
            axum::routing::get(|| async { StatusCode::NO_CONTENT }),
        )
        .route_layer(axum::middleware::from_fn(http_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    (router, openapi)
}

pub async fn run(config: &VotewireConfig, args: ApiArgs) -> anyhow::Result<ExitCode> {
    let observability = crate::observability::start("votewire-api", config, None).await?;
    let tokens = ApiTokens::load(args.tokens_file.as_deref(), args.tokens.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    let listen = match args.listen {
        Some(a) => a,
        None => config.api.listen.parse().with_context(|| {
            format!(
                "api.listen {:?} is not an address like 127.0.0.1:8080",
                config.api.listen
            )
        })?,
    };
    let state_store = open_feed_state(config)
        .await
        .context("opening the feed-state store")?;
    let results = Arc::new(ResultsView::default());
    results_view::follow(&config.kafka, &config.topics.results, results.clone())
        .context("reading the results topic")?;
    let state = Arc::new(ApiState {
        rendered: Mutex::new(HashMap::new()),
        config: config.clone(),
        prometheus: observability.prometheus(),
        tokens,
        registry: FeedRegistry::new(args.feeds.clone()),
        state: state_store,
        results,
        live_streams: Arc::new(tokio::sync::Semaphore::new(live::MAX_STREAMS)),
        live_rendered: Mutex::new(HashMap::new()),
        stopping: tokio::sync::watch::channel(false).0,
        limiter: RateLimiter::new(args.rate_limit),
        proxies: TrustedProxies::parse(&config.api.trusted_proxies)
            .map_err(|e| anyhow::anyhow!(e))?,
        streams_per_client: HoldsPerClient::streams(),
        exports: Mutex::default(),
        export_scan: Arc::default(),
    });
    state
        .registry
        .feeds()
        .map_err(|p| anyhow::anyhow!("{}\n{}", p.detail, p.errors.join("\n")))?;
    let stopping = state.stopping.clone();
    let proxies = state.proxies.clone();
    let (app, _) = router(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(
        "listening on http://{} (registry {})",
        listener.local_addr()?,
        args.feeds.display()
    );
    let run_for = args.run_for;
    crate::http_server::serve(
        listener,
        app,
        proxies,
        crate::http_server::ServeLimits::default(),
        async move {
            match run_for {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            stopping.send_replace(true);
        },
    )
    .await
    .context("serving the API")?;
    Ok(ExitCode::SUCCESS)
}
