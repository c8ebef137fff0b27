//! A crash between produce and commit republishes and never skips, on
//! DynamoDB and on the embedded store.

use votewire_ingestors::state::FeedStateStore;
use votewire_tests::Stack;

use crate::support::{finish, one_http_feed, votewire_on};

/// The commit protocol under a real crash: the process aborts after every
/// cell was acknowledged and before the cursor commit. The cursor did not
/// move; the restarted ingestor republishes the same values (harmless
/// upserts) and then commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_produce_and_commit_republishes_and_the_cursor_advances() {
    crash_between_produce_and_commit(None).await;
}

/// The same crash with the embedded state store (a redb file under the
/// process's state directory) instead of DynamoDB: the cursor commit is
/// as durable, and `feeds show` reads the file after the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_state_store_survives_the_same_crash() {
    let state_dir = tempfile::tempdir().unwrap();
    crash_between_produce_and_commit(Some(state_dir.path())).await;
}

/// A feed's stored row: from DynamoDB, or from the embedded store's file
/// under `embedded` (opened only while no ingestor holds it).
async fn stored_row(
    pipeline: &votewire_tests::pipeline::TestPipeline,
    embedded: Option<&std::path::Path>,
    feed_id: &str,
) -> votewire_ingestors::state::FeedState {
    match embedded {
        None => pipeline.state.load(feed_id).await.unwrap(),
        Some(dir) => {
            votewire_ingestors::state::EmbeddedFeedState::open(&dir.join("feed-state.redb"))
                .expect("the ingestor released the file")
                .load(feed_id)
                .await
                .unwrap()
        }
    }
    .expect("the feed has a stored row")
}

async fn crash_between_produce_and_commit(embedded: Option<&std::path::Path>) {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;
    use votewire_tests::http::{Canned, FixtureServer};
    use votewire_tests::pipeline::{TestPipeline, drain};

    let stack = Stack::load();
    let pipeline = TestPipeline::start("crash", 2).await;
    let server = FixtureServer::start().await;
    let csv = votewire_tests::fixture_bytes(
        "precinct_csv/openelections-data-pa/20201103__pa__general__county.csv",
    );
    server.set("/pa.csv", Canned::ok(csv).header("etag", "\"v1\""));
    let dir = tempfile::tempdir().unwrap();
    let feed_id = votewire_tests::unique("csv:crash");
    one_http_feed(dir.path(), "f.toml", &feed_id, &server.url("/pa.csv"));
    let ingest = |instance: &str, run_for: &str| {
        let mut c = tokio::process::Command::from(votewire_on(&stack, &pipeline));
        c.args([
            "ingest",
            "--lease-ttl",
            "3s",
            "--run-for",
            run_for,
            "--instance",
            instance,
        ])
        .arg("--feeds")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        if let Some(state_dir) = embedded {
            c.env("VOTEWIRE_STATE_STORE", "embedded")
                .env("VOTEWIRE_STATE_DIR", state_dir);
        }
        c
    };

    let crashed = ingest("crash-1", "30s")
        .env("VOTEWIRE_FAULT", "abort-after-produce")
        .spawn()
        .unwrap();
    let (status, _, stderr) = finish(crashed, Duration::from_secs(60)).await;
    assert_eq!(
        status.signal(),
        Some(6),
        "SIGABRT after the produce:\n{stderr}"
    );
    let first = drain(&pipeline.kafka, &pipeline.topics.votes, 2);
    assert!(
        !first.is_empty(),
        "the cells were acknowledged before the crash"
    );
    let row = stored_row(&pipeline, embedded, &feed_id).await;
    assert_eq!(row.source_seq, 0, "the cursor was not committed");
    assert_eq!(row.cursor.etag, None);

    let restarted = ingest("crash-2", "8s").spawn().unwrap();
    let (status, stdout, stderr) = finish(restarted, Duration::from_secs(60)).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "feed={feed_id} seq=1 cells={n} changed={n}",
            n = first.len()
        )),
        "the restart republishes every cell once:\n{stdout}\n{stderr}"
    );
    let row = stored_row(&pipeline, embedded, &feed_id).await;
    assert_eq!(row.source_seq, 1, "the cursor advances");
    assert_eq!(row.cursor.etag.as_deref(), Some("\"v1\""));
    // The last fetch rode on a lease renewal (every TTL/2 = 1.5 s here)
    // during the 8 s run, after the accepted payload's fetch.
    let (fetched, changed) = (row.last_fetch_ms, row.last_change_ms);
    assert!(
        changed.is_some() && fetched >= changed,
        "last fetch {fetched:?}, last change {changed:?}"
    );
    if let Some(state_dir) = embedded {
        assert!(
            state_dir.join("feed-state.redb").is_file(),
            "the state lived in the embedded file"
        );
        assert!(
            pipeline.state.load(&feed_id).await.unwrap().is_none(),
            "and never in DynamoDB"
        );
    }
    // Every key now holds the same value twice: nothing lost, nothing
    // double-counted by an upserting consumer.
    let all = drain(&pipeline.kafka, &pipeline.topics.votes, 2);
    assert_eq!(all.len(), 2 * first.len());
    let mut by_key: std::collections::HashMap<Vec<u8>, Vec<Vec<u8>>> = Default::default();
    for (_, key, value, _) in all {
        by_key.entry(key).or_default().push(value);
    }
    assert_eq!(by_key.len(), first.len());
    let s = votewire_schemas::schemas();
    for values in by_key.values() {
        let votes: Vec<i64> = values
            .iter()
            .map(|v| {
                votewire_schemas::codec::decode_vote_cell(v, s.vote_cell.id)
                    .unwrap()
                    .votes
            })
            .collect();
        assert_eq!(votes.len(), 2);
        assert_eq!(votes[0], votes[1]);
    }
}
