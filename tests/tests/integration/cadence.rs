//! One in-flight fetch per feed, scheduled from completion: a slow source,
//! a 500 storm and a Retry-After, against a real local HTTP server.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use votewire_ingestors::cadence::{FeedCadence, StepOutcome, run_feed_loop};
use votewire_ingestors::conditional::{Backoff, HttpValidators, PollOutcome, poll};
use votewire_ingestors::http::{FetchLimits, client};
use votewire_tests::http::{Canned, FixtureServer};

fn every(ms: u64) -> FeedCadence {
    FeedCadence {
        interval: Duration::from_millis(ms),
        jitter: Duration::ZERO,
        window: None,
        retry_max: Duration::from_secs(15),
    }
}

fn now_ms() -> i64 {
    0
}

/// Runs a feed loop polling `url` for `run_for`, returning each fetch's
/// start time.
async fn run_for(
    url: String,
    cadence: FeedCadence,
    backoff: Backoff,
    run_for: Duration,
) -> Vec<Instant> {
    let limits = FetchLimits::default();
    let http = client(&limits).unwrap();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let s2 = starts.clone();
    let task = tokio::spawn(async move {
        run_feed_loop(&cadence, &backoff, stop_rx, now_ms, || {
            let http = http.clone();
            let url = url.clone();
            let starts = s2.clone();
            async move {
                starts.lock().unwrap().push(Instant::now());
                match poll(&http, &url, &HttpValidators::default(), &limits).await {
                    Ok(PollOutcome::Wait { delay, .. }) => StepOutcome::Wait(delay),
                    Ok(_) => StepOutcome::Done,
                    Err(_) => StepOutcome::Failed,
                }
            }
        })
        .await
    });
    tokio::time::sleep(run_for).await;
    let stopped_at = Instant::now();
    stop_tx.send(true).unwrap();
    let end = task.await.unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_millis(700),
        "the stop signal ends the loop without waiting out a sleep or a slow fetch"
    );
    assert!(!end.stopped_by_step);
    let v = starts.lock().unwrap().clone();
    assert_eq!(end.steps as usize, v.len());
    v
}

#[tokio::test]
async fn a_slow_source_never_gets_overlapping_fetches_of_one_feed() {
    let server = FixtureServer::start().await;
    server.set(
        "/slow.json",
        Canned::ok("{}").delayed(Duration::from_millis(400)),
    );
    let starts = run_for(
        server.url("/slow.json"),
        every(50),
        Backoff::default(),
        Duration::from_millis(2_300),
    )
    .await;
    assert_eq!(server.max_in_flight("/slow.json"), 1);
    // Each fetch starts only after the last completed (400 ms) plus the
    // interval (50 ms): at most ceil(2300 / 450) = 6 fetches.
    assert!(
        (3..=6).contains(&starts.len()),
        "{} fetches in 2.3 s",
        starts.len()
    );
    for w in starts.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(450),
            "fetches were {:?} apart",
            w[1] - w[0]
        );
    }
}

#[tokio::test]
async fn a_500_storm_backs_off_instead_of_polling_at_cadence() {
    let server = FixtureServer::start().await;
    server.set("/storm.json", Canned::status(500, "oops"));
    let starts = run_for(
        server.url("/storm.json"),
        every(10),
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(800),
        },
        Duration::from_millis(2_000),
    )
    .await;
    // At a 10 ms cadence this would be ~200 fetches. With full-jitter
    // backoff (ceilings 100, 200, 400, 800, 800, ... ms) the expected count
    // is about 7; 40 would need the jitter to stay near zero throughout.
    assert!(
        (2..40).contains(&starts.len()),
        "{} fetches in 2 s",
        starts.len()
    );
}

#[tokio::test]
async fn retry_after_holds_the_feed_back_for_the_asked_time() {
    let server = FixtureServer::start().await;
    server.set(
        "/busy.json",
        Canned::status(429, "slow down").header("retry-after", "1"),
    );
    let starts = run_for(
        server.url("/busy.json"),
        every(10),
        Backoff::default(),
        Duration::from_millis(2_500),
    )
    .await;
    assert!(
        (2..=3).contains(&starts.len()),
        "{} fetches in 2.5 s",
        starts.len()
    );
    for w in starts.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_step_can_end_its_own_loop() {
    let mut n = 0;
    let end = run_feed_loop(
        &every(1),
        &Backoff::default(),
        watch::channel(false).1,
        now_ms,
        || {
            n += 1;
            let out = if n == 3 {
                StepOutcome::Stop
            } else {
                StepOutcome::Done
            };
            async move { out }
        },
    )
    .await;
    assert_eq!(end.steps, 3);
    assert!(end.stopped_by_step);
}
