//! The live results page: `/live` (a static page, no external assets),
//! `/live/contests` (its data as cacheable JSON) and `/live/events` (the
//! same data pushed as Server-Sent Events whenever a contest changes).
//!
//! These three are public and read-only: they show what a newsroom
//! publishes anyway, the statewide and county results of each contest,
//! and nothing about feeds or operators. Reader traffic belongs on a CDN:
//! `/live/contests` carries an ETag and `Cache-Control` like the `/v1`
//! results, so a CDN absorbs readers and the origin answers
//! revalidations. A stream is one long request per reader, so streams are
//! capped ([`MAX_STREAMS`]); past the cap a reader gets 503 and the page
//! falls back to polling the JSON.
//!
//! A stream sends every contest of the election first, then each contest
//! again when it changes, at most every [`STREAM_TICK`]: a burst of
//! results for one contest becomes one event.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use votewire_schemas::{ContestResult, UnitType};

use super::Shared;
use super::problem::Problem;
use super::results::{etag_of, respond_cacheable};
use super::results_view::ResultsView;

/// The page and its script, served as they are.
const PAGE: &str = include_str!("live.html");
const SCRIPT: &str = include_str!("live.js");

/// Everything the page needs comes from this origin; no inline script.
const PAGE_POLICY: &str =
    "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// The most streams open at once.
pub const MAX_STREAMS: usize = 10_000;

/// The shortest time between two events of one stream.
const STREAM_TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// Only this election's contests (default: every election).
    pub election: Option<String>,
}

/// One contest as the page shows it: its statewide card and its counties.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveContest {
    pub election_id: String,
    /// The results' contest id (`<feed>/<source contest id>`, or the
    /// shared id of merged sources).
    pub contest_id: String,
    pub contest_name: String,
    /// The source official at the statewide unit (or at the first county
    /// when the source reports no state).
    pub official_feed_id: String,
    /// The statewide result; `null` when the source names no state.
    pub state: Option<LiveUnit>,
    /// Every county's result, by name.
    pub counties: Vec<LiveUnit>,
    /// The newest fetch behind any of these results (ms since the epoch).
    pub last_updated: i64,
}

/// One unit's result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveUnit {
    pub unit_id: String,
    pub unit_name: String,
    pub choices: Vec<LiveChoice>,
    pub total_votes: i64,
    pub leader_choice_id: Option<String>,
    pub margin_votes: Option<i64>,
    /// Percentage points between the leader and the runner-up.
    pub margin_pct: Option<f64>,
    pub precincts_reporting: Option<i32>,
    pub precincts_total: Option<i32>,
    /// Percent of the expected vote counted (0–100), where the source says.
    pub pct_expected_vote: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveChoice {
    pub choice_id: String,
    pub choice_name: String,
    pub party: Option<String>,
    pub votes: i64,
    /// Percent of the unit's votes (0–100).
    pub percent: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveContests {
    pub contests: Vec<LiveContest>,
}

fn live_unit(r: &ContestResult) -> LiveUnit {
    LiveUnit {
        unit_id: r.unit_id.clone(),
        unit_name: r.unit_name.clone(),
        choices: r
            .choices
            .iter()
            .map(|c| LiveChoice {
                choice_id: c.choice_id.clone(),
                choice_name: c.choice_name.clone(),
                party: c.party.clone(),
                votes: c.votes,
                percent: c.percent,
            })
            .collect(),
        total_votes: r.total_votes,
        leader_choice_id: r.leader_choice_id.clone(),
        margin_votes: r.margin_votes,
        margin_pct: r.margin_pct,
        precincts_reporting: r.precincts_reporting,
        precincts_total: r.precincts_total,
        pct_expected_vote: r.pct_expected_vote,
    }
}

/// One contest's card and county table, from the view; `None` when the
/// contest has no statewide or county result.
pub fn live_contest(view: &ResultsView, election: &str, contest: &str) -> Option<LiveContest> {
    let results = view.contest(election, contest)?;
    let state = results.iter().find(|r| r.unit_type == UnitType::State);
    let mut counties: Vec<&ContestResult> = results
        .iter()
        .filter(|r| r.unit_type == UnitType::County)
        .collect();
    let first = state.or_else(|| counties.first().copied())?;
    counties.sort_by(|a, b| a.unit_name.cmp(&b.unit_name));
    Some(LiveContest {
        election_id: election.to_string(),
        contest_id: contest.to_string(),
        contest_name: first.contest_name.clone(),
        official_feed_id: first.official_feed_id.clone(),
        state: state.map(live_unit),
        last_updated: state
            .into_iter()
            .chain(counties.iter().copied())
            .map(|r| r.last_updated)
            .max()
            .unwrap_or_default(),
        counties: counties.into_iter().map(live_unit).collect(),
    })
}

fn contests_of(view: &ResultsView, election: Option<&str>) -> BTreeSet<(String, String)> {
    view.contest_ids()
        .into_iter()
        .filter(|(e, _)| election.is_none_or(|want| want == e))
        .collect()
}

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        ],
        PAGE,
    )
        .into_response()
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// Every contest's statewide and county results (public; cacheable).
#[utoipa::path(get, path = "/live/contests", tag = "live",
    params(LiveQuery),
    responses(
        (status = 200, description = "Every contest as the live page shows it, with an ETag", body = LiveContests),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn contests(
    State(state): State<Shared>,
    Query(q): Query<LiveQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    // Rendered once per change of the view: a CDN's revalidations, and
    // every reader between two changes, cost a lookup.
    let version = state.results.last_version();
    let cached = state
        .live_rendered
        .lock()
        .expect("live cache lock")
        .get(&q.election)
        .filter(|(v, _, _)| *v == version)
        .map(|(_, bytes, etag)| (bytes.clone(), etag.clone()));
    let (bytes, etag) = match cached {
        Some(hit) => hit,
        None => {
            let contests: Vec<LiveContest> = contests_of(&state.results, q.election.as_deref())
                .into_iter()
                .filter_map(|(e, c)| live_contest(&state.results, &e, &c))
                .collect();
            let known = !contests.is_empty();
            let bytes =
                Arc::new(serde_json::to_vec(&LiveContests { contests }).unwrap_or_default());
            let etag = etag_of(&bytes);
            if known {
                // Only elections that exist are kept, and not too many:
                // a query string must not grow the cache without bound.
                let mut cache = state.live_rendered.lock().expect("live cache lock");
                if cache.len() >= 1024 {
                    cache.clear();
                }
                cache.insert(q.election.clone(), (version, bytes.clone(), etag.clone()));
            }
            (bytes, etag)
        }
    };
    respond_cacheable(&headers, &bytes, etag)
}

/// The live stream: an `event: contest` per contest, then per change.
pub async fn events(
    State(state): State<Shared>,
    who: Option<axum::Extension<crate::http_server::client_limits::ClientKey>>,
    Query(q): Query<LiveQuery>,
) -> Response {
    let who = who.map_or(
        crate::http_server::client_limits::ClientKey::of(std::net::IpAddr::from([127, 0, 0, 1])),
        |w| w.0,
    );
    let Some(hold) = state.streams_per_client.hold(who) else {
        return Problem::typed(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!(
                "this client holds {} live streams already; close one or poll /live/contests",
                crate::http_server::client_limits::MAX_STREAMS_PER_CLIENT
            ),
        )
        .retry_after(5)
        .into_response();
    };
    let Ok(permit) = state.live_streams.clone().try_acquire_owned() else {
        return Problem::unavailable(format!(
            "{MAX_STREAMS} live streams are open; poll /live/contests instead"
        ))
        .into_response();
    };
    let mut changes = state.results.subscribe();
    let mut stopping = state.stopping.subscribe();
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Event, Infallible>>(64);
    let view = state.results.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let _hold = hold;
        let election = q.election;
        let mut pending = contests_of(&view, election.as_deref());
        loop {
            for (e, c) in std::mem::take(&mut pending) {
                let Some(contest) = live_contest(&view, &e, &c) else {
                    continue;
                };
                let Ok(event) = Event::default().event("contest").json_data(&contest) else {
                    continue;
                };
                if tx.send(Ok(event)).await.is_err() {
                    return; // the reader left
                }
            }
            let wanted = |id: &(String, String)| election.as_deref().is_none_or(|e| e == id.0);
            let change = tokio::select! {
                c = changes.recv() => c,
                _ = stopping.wait_for(|stop| *stop) => return,
            };
            match change {
                Ok(id) if wanted(&id) => {
                    pending.insert(id);
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    pending = contests_of(&view, election.as_deref());
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            tokio::time::sleep(STREAM_TICK).await;
            loop {
                match changes.try_recv() {
                    Ok(id) if wanted(&id) => {
                        pending.insert(id);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                        pending = contests_of(&view, election.as_deref());
                    }
                    Err(_) => break,
                }
            }
        }
    });
    Sse::new(rx)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
