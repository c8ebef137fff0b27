//! `[[election]]` in the registry, end to end through `votewire ingest` on
//! the real stack: a rehearsal election's feed publishes test cells (its
//! feed says nothing of test), and a zero-counts election's feed publishes
//! every cell at zero until the election goes live, when the unchanged
//! source (same ETag) is read afresh and every cell is published with its
//! real count over the zeros.
//!
//! The real counts are the `csv` transformer's cells of the same file (the
//! transformer is checked against independent walks elsewhere; what is
//! under test here is what the ingestor does with its cells).

use std::collections::HashMap;
use std::time::Duration;

use votewire_ingestors::state::FeedStateStore;
use votewire_schemas::{FeedMode, VoteCell, codec, schemas};
use votewire_tests::Stack;
use votewire_tests::http::{Canned, FixtureServer};
use votewire_tests::pipeline::{TestPipeline, drain};

use crate::support::{finish, interrupt, votewire_on};

const PA_CSV: &str = "precinct_csv/openelections-data-pa/20201103__pa__general__county.csv";

/// The `csv` transformer's counts of `bytes` per cell key.
fn real_counts(bytes: &[u8], feed_id: &str) -> HashMap<String, i64> {
    let ctx = votewire_transformers::PayloadContext {
        election_id: "E".into(),
        feed_id: feed_id.into(),
        mode: FeedMode::Live,
        source_seq: 1,
        source_version: None,
        fetched_at: 0,
        fetch_id: "f".into(),
        source_uri: "http://x/z.csv".into(),
        payload_sha256: "0".repeat(64),
        trace_id: None,
        content_type: None,
    };
    let mapping = toml::toml! { final_newline = "optional" };
    let inputs = votewire_transformers::FamilyInputs {
        mapping: Some(&mapping),
        ..Default::default()
    };
    let out = votewire_transformers::transform("csv", bytes, &ctx, &inputs).unwrap();
    (0..out.cells.len())
        .map(|i| (out.cells.cell_key(i).to_hex(), out.cells.rows()[i].votes))
        .collect()
}

/// Every cell of `feed_id` on the votes topic, in topic order.
fn cells_of(pipeline: &TestPipeline, feed_id: &str) -> Vec<VoteCell> {
    let id = schemas().vote_cell.id;
    drain(
        &pipeline.kafka,
        &pipeline.topics.votes,
        pipeline.vote_partitions,
    )
    .into_iter()
    .filter_map(|(_, _, value, _)| codec::decode_vote_cell(&value, id).ok())
    .filter(|c| &*c.header.source_feed_id == feed_id)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_is_test_data_and_zero_counts_give_way_to_real_ones_going_live() {
    let stack = Stack::load();
    let pipeline = TestPipeline::start("elections", 2).await;
    let server = FixtureServer::start().await;
    let csv = votewire_tests::fixture_bytes(PA_CSV);
    server.set("/z.csv", Canned::ok(csv.clone()).header("etag", "\"z1\""));
    server.set("/r.csv", Canned::ok(csv.clone()).header("etag", "\"r1\""));
    let (zero_feed, rehearsal_feed) = (
        votewire_tests::unique("csv:zero"),
        votewire_tests::unique("csv:rehearsal"),
    );
    let (zero_election, rehearsal_election) = (
        votewire_tests::unique("E-zero"),
        votewire_tests::unique("E-rehearsal"),
    );
    let feed = |id: &str, election: &str, path: &str| {
        format!(
            "[[feed]]\nid = \"{id}\"\nfamily = \"csv\"\nelection_id = \"{election}\"\n\
             [feed.source]\nkind = \"http\"\nurl = \"{}\"\n\
             [feed.cadence]\ninterval = \"1s\"\njitter = \"0s\"\nstale_after = \"10m\"\n\
             [feed.mapping]\nfinal_newline = \"optional\"\n",
            server.url(path)
        )
    };
    let elections = |zero_counts: bool| {
        format!(
            "[[election]]\nid = \"{zero_election}\"\nzero_counts = {zero_counts}\n\n\
             [[election]]\nid = \"{rehearsal_election}\"\nmode = \"rehearsal\"\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("elections.toml"), elections(true)).unwrap();
    std::fs::write(
        dir.path().join("feeds.toml"),
        feed(&zero_feed, &zero_election, "/z.csv")
            + &feed(&rehearsal_feed, &rehearsal_election, "/r.csv"),
    )
    .unwrap();
    let child = tokio::process::Command::from(votewire_on(&stack, &pipeline))
        .args([
            "ingest",
            "--lease-ttl",
            "1500ms",
            "--run-for",
            "90s",
            "--instance",
            "elections-1",
            "--feeds",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seq_of = async |feed: &str| {
        pipeline
            .state
            .load(feed)
            .await
            .unwrap()
            .map_or(0, |r| r.source_seq)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while seq_of(&zero_feed).await < 1 || seq_of(&rehearsal_feed).await < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no first payloads");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The source rotates its ETag over the same bytes while the zeros are
    // up: an unchanged payload, whose cursor is committed (and must still
    // say the feed publishes zeros).
    server.set("/z.csv", Canned::ok(csv.clone()).header("etag", "\"z2\""));
    let z2_seen = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = pipeline.state.load(&zero_feed).await.unwrap().unwrap();
        if row.cursor.etag.as_deref() == Some("\"z2\"") {
            assert_eq!(row.source_seq, 1, "the same bytes are not a new payload");
            assert_eq!(row.cursor.published_as.as_deref(), Some("live+zero"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < z2_seen,
            "the new ETag was never taken"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Polls close: the election goes live. The source has not changed
    // (it answers 304 to the cursor's ETag).
    std::fs::write(dir.path().join("elections.toml"), elections(false)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while seq_of(&zero_feed).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "going live published nothing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    interrupt(&child);
    let (status, stdout, stderr) = finish(child, Duration::from_secs(60)).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "feed {zero_feed}: published as live+zero, now as live; fetching the source afresh"
        )),
        "{stderr}"
    );

    let real = real_counts(&csv, &zero_feed);
    assert!(real.values().any(|v| *v > 0));
    let cells = cells_of(&pipeline, &zero_feed);
    let zeros: Vec<&VoteCell> = cells.iter().filter(|c| c.header.source_seq == 1).collect();
    assert_eq!(zeros.len(), real.len(), "every cell of the source at zero");
    assert!(zeros.iter().all(|c| c.votes == 0
        && c.precincts_reporting.unwrap_or(0) == 0
        && c.winner.is_none()
        && c.header.mode == FeedMode::Live));
    // Going live: every cell again, with its real count, also those whose
    // count is 0 at the source (nothing is left to the zeros by chance).
    let mut latest: HashMap<String, (i64, i64)> = HashMap::new();
    for c in &cells {
        let e = latest
            .entry(c.cell_key().to_hex())
            .or_insert((c.header.source_seq, c.votes));
        if c.header.source_seq >= e.0 {
            *e = (c.header.source_seq, c.votes);
        }
    }
    assert!(
        latest.values().all(|(seq, _)| *seq == 2),
        "every cell republished"
    );
    let got: HashMap<String, i64> = latest.into_iter().map(|(k, (_, v))| (k, v)).collect();
    assert_eq!(got, real);

    // The rehearsal's feed: test data, with its real counts.
    let rehearsal = cells_of(&pipeline, &rehearsal_feed);
    assert!(!rehearsal.is_empty());
    assert!(rehearsal.iter().all(|c| c.header.mode == FeedMode::Test));
    assert!(rehearsal.iter().any(|c| c.votes > 0));
}
