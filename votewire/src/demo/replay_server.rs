//! The replay server: the night played back on 127.0.0.1 as live
//! sources (a Clarity site with its version pointer, AP's API, the Texas
//! page), each answering from the snapshot current on the replay clock,
//! misbehaving on purpose under `--chaos upstream-faults`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::night::{Night, Snapshot};

/// The replay server's state: the night and its clock.
pub(super) struct Replay {
    pub(super) night: Night,
    pub(super) started: Instant,
    /// Night milliseconds per wall millisecond.
    pub(super) speed: f64,
    /// Sources misbehave while set (`--chaos upstream-faults`).
    pub(super) faulty: std::sync::atomic::AtomicBool,
    /// Requests for Clarity's version file while faulty: every other one
    /// answers 500, the others lead to a truncated ALL.json.
    pub(super) version_requests: std::sync::atomic::AtomicU64,
}

impl Replay {
    pub(super) fn faulty(&self) -> bool {
        self.faulty.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn now_ms(&self) -> i64 {
        (self.started.elapsed().as_secs_f64() * 1000.0 * self.speed) as i64
    }

    pub(super) fn current<'a>(&self, series: &'a [Snapshot]) -> &'a Snapshot {
        let now = self.now_ms();
        series
            .iter()
            .rev()
            .find(|s| s.at_ms <= now)
            .unwrap_or(&series[0])
    }
}

fn serve(s: &Snapshot, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:x}-{}\"", s.at_ms, s.bytes.len());
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let content_type = if s.is_json {
        "application/json"
    } else {
        "text/html"
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
        ],
        s.bytes.clone(),
    )
        .into_response()
}

async fn clarity_version(State(r): State<Arc<Replay>>) -> Response {
    if r.faulty()
        && r.version_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 2
            == 0
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream fault").into_response();
    }
    let s = r.current(&r.night.clarity);
    s.version.clone().unwrap_or_default().into_response()
}

async fn clarity_file(
    State(r): State<Arc<Replay>>,
    UrlPath(version): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let now = r.now_ms();
    // The newest snapshot of that version played so far.
    match r
        .night
        .clarity
        .iter()
        .rev()
        .find(|s| s.at_ms <= now && s.version.as_deref() == Some(version.as_str()))
    {
        // Truncated: the first half of the body, as a cut connection leaves it.
        Some(s) if r.faulty() => (
            [(header::CONTENT_TYPE, "application/json")],
            s.bytes.slice(..s.bytes.len() / 2),
        )
            .into_response(),
        Some(s) => serve(s, &headers),
        None => (StatusCode::NOT_FOUND, "no such version yet").into_response(),
    }
}

async fn ap_file(State(r): State<Arc<Replay>>, headers: HeaderMap) -> Response {
    if r.faulty() {
        // Hangs past any client timeout.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    serve(r.current(&r.night.ap), &headers)
}

async fn tx_page(State(r): State<Arc<Replay>>) -> Response {
    if r.faulty() {
        return (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=ISO-8859-1")],
        r.night.tx_page.clone(),
    )
        .into_response()
}

/// Serves `night` on a free port of 127.0.0.1, its clock starting now at
/// `speed` night milliseconds per wall millisecond; the base URL.
pub(super) async fn start(night: Night, speed: f64) -> anyhow::Result<(Arc<Replay>, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let replay = Arc::new(Replay {
        night,
        started: Instant::now(),
        speed,
        faulty: std::sync::atomic::AtomicBool::new(false),
        version_requests: std::sync::atomic::AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route(
            "/GA/107556/current_ver.txt",
            axum::routing::get(clarity_version),
        )
        .route(
            "/GA/107556/{version}/json/ALL.json",
            axum::routing::get(clarity_file),
        )
        .route("/ap/GA.json", axum::routing::get(ap_file))
        .route("/tx/elchist175_race1.htm", axum::routing::get(tx_page))
        .with_state(replay.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((replay, base))
}
