//! A farm of N HTTP feeds for the ingest bench (`bench/ingest_feeds.sh`):
//! `GET /feed/{i}.csv` serves the PA county CSV with an ETag and answers
//! `If-None-Match` with 304. Every `--change-every`, `--change-percent` of
//! the feeds get a new count (one cell changes) and a new ETag.
//!
//! It records when each feed was polled; `GET /stats?since_ms=T` returns
//! the gaps between consecutive polls of each feed after T (p50, p99, max
//! over every feed), the polls served and the 200s among them, so the
//! bench can tell whether every feed was kept within its cadence.
//!
//! ```text
//! cargo run --release -p votewire-tests --example feed_farm -- \
//!     --listen 127.0.0.1:18080 --feeds 1000 --change-percent 1 --change-every 5s
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

struct Farm {
    base: String,
    /// Per feed: its version (bumped by changes) and when it was polled.
    versions: Vec<u64>,
    polls: Vec<Vec<i64>>,
    served_200: u64,
    served_304: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The fixture with the Clinton "Registered Voters" count raised by `v`.
fn body_for(base: &str, v: u64) -> String {
    base.replacen(
        "Clinton,Registered Voters,,,,22387,",
        &format!("Clinton,Registered Voters,,,,{},", 22387 + v),
        1,
    )
}

async fn feed(
    State(farm): State<Arc<Mutex<Farm>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(i) = name
        .strip_suffix(".csv")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return status(StatusCode::NOT_FOUND);
    };
    let mut f = farm.lock().expect("farm lock");
    if i >= f.versions.len() {
        return status(StatusCode::NOT_FOUND);
    }
    f.polls[i].push(now_ms());
    let etag = format!("\"{i}-{}\"", f.versions[i]);
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        f.served_304 += 1;
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", etag)
            .body(Body::empty())
            .expect("response");
    }
    f.served_200 += 1;
    let body = body_for(&f.base, f.versions[i]);
    Response::builder()
        .header("etag", etag)
        .header("content-type", "text/csv")
        .body(Body::from(body))
        .expect("response")
}

fn status(s: StatusCode) -> Response {
    Response::builder()
        .status(s)
        .body(Body::empty())
        .expect("response")
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

async fn stats(
    State(farm): State<Arc<Mutex<Farm>>>,
    Query(q): Query<HashMap<String, String>>,
) -> String {
    let since: i64 = q.get("since_ms").and_then(|s| s.parse().ok()).unwrap_or(0);
    let f = farm.lock().expect("farm lock");
    let mut gaps = Vec::new();
    let mut never = 0;
    for polls in &f.polls {
        let recent: Vec<i64> = polls.iter().copied().filter(|t| *t >= since).collect();
        if recent.is_empty() {
            never += 1;
        }
        gaps.extend(recent.windows(2).map(|w| w[1] - w[0]));
    }
    gaps.sort_unstable();
    format!(
        "feeds={} polled_none_since={never} polls={} served_200={} served_304={} gap_ms_p50={} gap_ms_p99={} gap_ms_max={}\n",
        f.polls.len(),
        gaps.len() + f.polls.len() - never,
        f.served_200,
        f.served_304,
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.99),
        gaps.last().copied().unwrap_or(0)
    )
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen", "127.0.0.1:18080");
    let feeds: usize = arg(&args, "--feeds", "1000").parse().expect("--feeds N");
    let percent: f64 = arg(&args, "--change-percent", "1")
        .parse()
        .expect("--change-percent P");
    let every = arg(&args, "--change-every", "5s");
    let every = Duration::from_millis(
        every
            .strip_suffix("ms")
            .map(|n| n.parse().expect("ms"))
            .or_else(|| {
                every
                    .strip_suffix('s')
                    .map(|n| n.parse::<u64>().expect("s") * 1000)
            })
            .expect("--change-every like 5s or 500ms"),
    );
    let fixture =
        std::env::var("VOTEWIRE_FIXTURES").unwrap_or_else(|_| "../shared/fixtures".into());
    let base = std::fs::read_to_string(format!(
        "{fixture}/precinct_csv/openelections-data-pa/20201103__pa__general__county.csv"
    ))
    .expect("the PA county fixture (set VOTEWIRE_FIXTURES)");
    let farm = Arc::new(Mutex::new(Farm {
        base,
        versions: vec![0; feeds],
        polls: vec![Vec::new(); feeds],
        served_200: 0,
        served_304: 0,
    }));
    let changer = farm.clone();
    tokio::spawn(async move {
        let per_round = ((feeds as f64) * percent / 100.0).round() as usize;
        let mut next = 0usize;
        loop {
            tokio::time::sleep(every).await;
            let mut f = changer.lock().expect("farm lock");
            for _ in 0..per_round {
                f.versions[next % feeds] += 1;
                next += 1;
            }
        }
    });
    let app = Router::new()
        .route("/feed/{name}", get(feed))
        .route("/stats", get(stats))
        .with_state(farm);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("binding the farm's address");
    eprintln!("feed_farm: {feeds} feeds on http://{listen}/feed/{{i}}.csv");
    axum::serve(listener, app).await.expect("serving");
}
