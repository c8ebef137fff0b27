//! An AP feed's `LiveFeed` steps against the real stack and a real HTTP
//! server: a truncated answer (`isTruncated: true`) is followed at once
//! through its `nextrequest`, a whole one waits for the cadence, and a
//! truncated answer whose link cannot be followed (another origin) is not
//! chased from the base URL. The payloads are a real elex fixture with the
//! fields written in by hand; the expected figures come from those edits.

use std::sync::Arc;

use serde_json::{Value, json};
use votewire_ingestors::cadence::StepOutcome;
use votewire_ingestors::feed_tools::FeedTools;
use votewire_ingestors::health::HealthMachine;
use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::live_feed::LiveFeed;
use votewire_ingestors::sources::ap::ApSpec;
use votewire_ingestors::sources::http::HttpSpec;
use votewire_ingestors::state::FeedStateStore;
use votewire_tests::http::{Canned, FixtureServer};
use votewire_tests::pipeline::{TestPipeline, pa_csv_feed};
use votewire_tests::{fixture_bytes, unique};

const NATIONAL: &str = "ap_elections_api/elex_v2_fixtures/20151103_national.json";

/// The national fixture with `nextrequest` and `isTruncated` replaced.
fn answer(v: &Value, next: &str, truncated: bool) -> Vec<u8> {
    let mut v = v.clone();
    v["nextrequest"] = json!(next);
    v["isTruncated"] = json!(truncated);
    serde_json::to_vec(&v).unwrap()
}

/// Only CO's ballot issue 7582, with Adams County's Yes count raised by 5; returns it and the raised count.
fn rest_of_the_answer(v: &Value) -> (Value, i64) {
    let mut race = v["races"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["raceID"] == "7582")
        .unwrap()
        .clone();
    let adams = race["reportingUnits"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|u| u["reportingunitID"] == "6001")
        .unwrap();
    let yes = adams["candidates"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["last"] == "Yes")
        .unwrap();
    let raised = yes["voteCount"].as_i64().unwrap() + 5;
    yes["voteCount"] = json!(raised);
    let mut rest = v.clone();
    rest["races"] = json!([race]);
    (rest, raised)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_ap_answer_is_followed_at_once_and_a_whole_one_waits() {
    let pipeline = TestPipeline::start("apfeed", 4).await;
    let (publisher, state) = (&pipeline.publisher, &pipeline.state);
    let tools = FeedTools::new(client(&FetchLimits::default()).unwrap(), 4, None, 4);
    let server = FixtureServer::start().await;
    let national: Value = serde_json::from_slice(&fixture_bytes(NATIONAL)).unwrap();
    let (rest, raised) = rest_of_the_answer(&national);
    server.set(
        "/v2/elections/2015-11-03",
        Canned::ok(answer(&national, &server.url("/next/1"), true)),
    );
    server.set(
        "/next/1",
        Canned::ok(answer(&rest, &server.url("/next/2"), false)),
    );

    let feed_id = unique("ap:CO");
    let lease = pipeline.lease(&feed_id).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", "k-test".parse().unwrap());
    let source = Arc::new(ApSpec {
        request: HttpSpec {
            url: server.url("/v2/elections/2015-11-03"),
            headers,
        },
    });
    let mut spec = pa_csv_feed(&feed_id, source);
    spec.family = "ap-v2".into();
    spec.mapping = None;
    let mut feed = LiveFeed::resume(state, spec, "ingestor-a", HealthMachine::new(5, 3_600_000))
        .await
        .unwrap();

    let first = feed
        .step(&tools, publisher, state, &lease, 1_000)
        .await
        .unwrap();
    let p = first
        .published
        .as_ref()
        .expect("the first answer publishes");
    assert_eq!(p.cells_changed, p.cells_total);
    assert!(
        matches!(first.outcome(), StepOutcome::Again),
        "a truncated answer is followed at once: {first:?}"
    );

    let second = feed
        .step(&tools, publisher, state, &lease, 1_001)
        .await
        .unwrap();
    assert_eq!(
        second.published.as_ref().map(|p| p.cells_changed),
        Some(1),
        "the rest changes Adams County's Yes only: {second:?}"
    );
    assert!(
        matches!(second.outcome(), StepOutcome::Done),
        "a whole answer waits for the cadence: {second:?}"
    );
    let paths: Vec<String> = server.seen().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["/v2/elections/2015-11-03", "/next/1"]);
    assert!(
        server
            .seen()
            .iter()
            .all(|(_, h)| h.get("x-api-key").map(|v| v.as_bytes()) == Some(b"k-test"))
    );
    let stored = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(stored.source_seq, 2);
    assert_eq!(
        stored.cursor.next_request.as_deref(),
        Some(server.url("/next/2").as_str())
    );
    let votes = votewire_tests::pipeline::drain(&pipeline.kafka, &pipeline.topics.votes, 4);
    let s = votewire_schemas::schemas();
    let adams_yes: Vec<i64> = votes
        .iter()
        .map(|(_, _, v, _)| votewire_schemas::codec::decode_vote_cell(v, s.vote_cell.id).unwrap())
        .filter(|c| {
            &*c.contest.source_id == "7582"
                && &*c.unit.source_id == "6001"
                && &*c.choice.name == "Yes"
        })
        .map(|c| c.votes)
        .collect();
    assert_eq!(adams_yes.last(), Some(&raised), "{adams_yes:?}");

    // A truncated answer whose link leaves the origin: the cursor falls
    // back to the base URL, and the feed waits rather than chasing it.
    server.set(
        "/next/2",
        Canned::ok(answer(&rest, "https://elsewhere.example/next/3", true)),
    );
    let third = feed
        .step(&tools, publisher, state, &lease, 1_002)
        .await
        .unwrap();
    assert!(third.published.is_some(), "{third:?}");
    assert!(
        matches!(third.outcome(), StepOutcome::Done),
        "an unfollowable link is not chased: {third:?}"
    );
    let stored = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(stored.cursor.next_request, None);
}
