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
//!
//! One module per resource, each with its routes, merged in [`router`]:
//! [`feeds`] (the registry and the operator actions), [`authoring`]
//! (validate, families), [`results`], [`export`] and [`live`]; health
//! probes, `/metrics` and the fallbacks are here.

mod auth;
mod authoring;
mod export;
pub(crate) mod feeds;
mod live;
mod problem;
mod registry;
mod results;
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
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use votewire_core::config::VotewireConfig;
use votewire_ingestors::state::{FeedStateStore, open_feed_state};

use crate::http_server::client_limits::{
    self, ClientKey, HoldsPerClient, RateLimiter, TrustedProxies,
};
use auth::{ApiTokens, Caller};
use export::ExportCache;
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
    rendered: Mutex<HashMap<(String, String, results::ResultsMode), RenderedContest>>,
    config: VotewireConfig,
    prometheus: votewire_core::metrics::PrometheusText,
    tokens: ApiTokens,
    registry: FeedRegistry,
    state: Arc<dyn FeedStateStore>,
    results: Arc<ResultsView>,
    /// Publisher test data's results (`?mode=test`), from their own topic.
    results_test: Arc<ResultsView>,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub results_records_read: u64,
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
        .merge(feeds::routes())
        .routes(routes!(authoring::validate_feed))
        .routes(routes!(authoring::families))
        .merge(results::routes())
        .merge(export::routes())
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
    let results_test = Arc::new(ResultsView::default());
    results_view::follow(
        &config.kafka,
        &config.topics.results_test,
        results_test.clone(),
    )
    .context("reading the test results topic")?;
    let state = Arc::new(ApiState {
        rendered: Mutex::new(HashMap::new()),
        config: config.clone(),
        prometheus: observability.prometheus(),
        tokens,
        registry: FeedRegistry::new(args.feeds.clone()),
        state: state_store,
        results,
        results_test,
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
