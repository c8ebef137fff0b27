//! The feeds resource: `/v1/feeds` (list, show, history, add, replace,
//! delete) and the operator actions on one feed (pause, resume, poll-now,
//! unquarantine, reset-cursor), with the bodies they answer. The CLI's
//! operator commands ([`crate::operator`]) answer in the same shapes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use votewire_ingestors::feeds::ValidFeed;
use votewire_ingestors::state::{FeedState, FeedStateStore, OperatorAction};

use super::auth::Caller;
use super::problem::{AdminProblems, BearerProblems, BodyProblems, Problem, StoreProblems};
use super::registry::FeedRegistry;
use super::{ApiState, Shared, json_body, store_problem};

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
pub(super) fn source_kind_schema() -> utoipa::openapi::schema::Object {
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

/// Every feed in the registry with its health, last change and freshness.
#[utoipa::path(get, path = "/v1/feeds", tag = "feeds", security(("bearer" = [])),
    responses(
        (status = 200, description = "The feeds", body = FeedList),
        (status = 409, description = "The registry has problems", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
        StoreProblems,
    ))]
pub(super) async fn list_feeds(
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
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The registry has problems", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
        StoreProblems,
    ))]
pub(super) async fn show_feed(
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
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The registry has problems", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
        StoreProblems,
    ))]
pub(super) async fn feed_history(
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
        (status = 409, description = "The id exists, or the registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The feed fails validation", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
        AdminProblems,
        BodyProblems,
        StoreProblems,
    ))]
pub(super) async fn create_feed(
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
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The feed shares its file, or the registry has problems", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The feed fails validation", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
        AdminProblems,
        BodyProblems,
        StoreProblems,
    ))]
pub(super) async fn replace_feed(
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
        (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The feed shares its file, or the registry has problems", body = Problem, content_type = "application/problem+json"),
        BearerProblems,
        AdminProblems,
        StoreProblems,
    ))]
pub(super) async fn delete_feed(
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
pub(super) async fn record(state: &ApiState, id: &str, caller: &Caller, what: &str) {
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

pub(super) fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) async fn act(
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
                (status = 404, description = "No such feed", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "Not possible in the feed's state", body = Problem, content_type = "application/problem+json"),
                BearerProblems,
                AdminProblems,
                StoreProblems,
            ))]
        pub(super) async fn $fn_name(
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

/// The feed and feed-action routes.
pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_feeds, create_feed))
        .routes(routes!(show_feed, replace_feed, delete_feed))
        .routes(routes!(feed_history))
        .routes(routes!(pause_feed))
        .routes(routes!(resume_feed))
        .routes(routes!(poll_now))
        .routes(routes!(unquarantine_feed))
        .routes(routes!(reset_cursor))
}
