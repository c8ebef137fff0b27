//! `LiveFeed` steps for the non-Clarity sources, against the real stack: an
//! HTTP CSV feed served by a real HTTP server (ETag/304, a changed count, an
//! HTML error page), and an SFTP drop feed on the real sshd (stability,
//! order, restart, re-upload). Expected counts come from editing the
//! fixture by hand (one count changed: one cell), not from the code under
//! test.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use votewire_ingestors::feed_tools::FeedTools;
use votewire_ingestors::health::HealthMachine;
use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::live_feed::LiveFeed;
use votewire_ingestors::sources::Source;
use votewire_ingestors::sources::sftp::SftpEndpoint;
use votewire_ingestors::sources::sftp::drop::DropConfig;
use votewire_ingestors::sources::sftp::poller::SftpSpec;
use votewire_ingestors::state::FeedStateStore;
use votewire_tests::http::{Canned, FixtureServer};
use votewire_tests::pipeline::{PA_COUNTY_CSV, TestPipeline, drain, http_source, pa_csv_feed};
use votewire_tests::{Stack, fixture_bytes, unique};

const ONE_COUNT: (&str, &str) = (
    "Clinton,Registered Voters,,,,22387,",
    "Clinton,Registered Voters,,,,22388,",
);

/// The PA county file with one count changed by hand.
fn pa_with_one_count_changed() -> Vec<u8> {
    let text = String::from_utf8(fixture_bytes(PA_COUNTY_CSV)).unwrap();
    assert!(
        text.contains(ONE_COUNT.0),
        "the fixture has the row we edit"
    );
    text.replacen(ONE_COUNT.0, ONE_COUNT.1, 1).into_bytes()
}

fn tools(archive: Option<&Path>) -> FeedTools {
    FeedTools::new(
        client(&FetchLimits::default()).unwrap(),
        4,
        archive.map(votewire_ingestors::archive::RawArchive::local),
        4,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_csv_feed_publishes_only_changes_and_dead_letters_an_error_page() {
    let pipeline = TestPipeline::start("httpfeed", 4).await;
    let (publisher, state) = (&pipeline.publisher, &pipeline.state);
    let archive = tempfile::tempdir().unwrap();
    let tools = tools(Some(archive.path()));
    let server = FixtureServer::start().await;
    let original = fixture_bytes(PA_COUNTY_CSV);
    server.set(
        "/pa/county.csv",
        Canned::ok(original.clone()).header("etag", "\"v1\""),
    );
    let feed_id = unique("csv:PA");
    let lease = pipeline.lease(&feed_id).await;
    let mut feed = LiveFeed::resume(
        state,
        pa_csv_feed(&feed_id, http_source(server.url("/pa/county.csv"))),
        "ingestor-a",
        HealthMachine::new(5, 3_600_000),
    )
    .await
    .unwrap();
    macro_rules! step {
        ($feed:expr, $now:expr) => {
            $feed
                .step(&tools, publisher, state, &lease, $now)
                .await
                .unwrap()
        };
    }

    let first = step!(feed, 1_000);
    let p = first.published.expect("the first payload publishes");
    assert!(p.cells_total > 100, "{p:?}");
    assert_eq!(
        p.cells_changed, p.cells_total,
        "nothing was published before"
    );

    // Same ETag: the server answers 304, nothing is fetched or published.
    let again = step!(feed, 2_000);
    assert!(again.published.is_none() && !again.rejected);
    let conditional = server
        .seen()
        .iter()
        .filter(|(_, h)| h.get("if-none-match").is_some())
        .count();
    assert_eq!(conditional, 1, "the second GET carried If-None-Match");

    // One count changed by hand: one cell.
    server.set(
        "/pa/county.csv",
        Canned::ok(pa_with_one_count_changed()).header("etag", "\"v2\""),
    );
    let changed = step!(feed, 3_000);
    assert_eq!(
        changed
            .published
            .expect("a new body publishes")
            .cells_changed,
        1
    );

    // An HTML error page under a new ETag: rejected, dead-lettered, and
    // the cursor stays on the last good payload.
    server.set(
        "/pa/county.csv",
        Canned::ok("<html><body><h1>502 Bad Gateway</h1></body></html>")
            .header("etag", "\"oops\"")
            .header("content-type", "text/html"),
    );
    let bad = step!(feed, 4_000);
    assert!(bad.rejected && bad.published.is_none());
    let stored = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(stored.source_seq, 2);
    assert_eq!(stored.cursor.etag.as_deref(), Some("\"v2\""));
    // The times the steps ran at: the last change, and the rejection that
    // turned the feed `failing`.
    assert_eq!(stored.last_change_ms, Some(3_000));
    assert_eq!(stored.last_error_ms, Some(4_000));
    assert_eq!(stored.health, "failing");
    assert_eq!(drain(&pipeline.kafka, &pipeline.topics.dlq, 1).len(), 1);
    let manifests = drain(&pipeline.kafka, &pipeline.topics.snapshots, 1);
    assert_eq!(manifests.len(), 3, "two accepted, one rejected");
    // One trace per payload: the cells of the one-count change and its
    // manifest share a trace id, different from the first payload's.
    let s = votewire_schemas::schemas();
    let traces: Vec<String> = manifests
        .iter()
        .map(|(_, _, v, _)| {
            let m: votewire_schemas::SnapshotManifest =
                votewire_schemas::codec::decode(&s.snapshot_manifest, v).unwrap();
            m.trace_id.expect("every manifest carries its trace id")
        })
        .collect();
    assert!(
        traces[0] != traces[1] && traces[1] != traces[2],
        "{traces:?}"
    );
    let votes = drain(&pipeline.kafka, &pipeline.topics.votes, 4);
    let changed_cell_traces: std::collections::BTreeSet<String> = votes
        .iter()
        .map(|(_, _, v, _)| votewire_schemas::codec::decode_vote_cell(v, s.vote_cell.id).unwrap())
        .filter(|c| c.header.source_seq == 2)
        .map(|c| {
            c.header
                .provenance
                .trace_id
                .as_deref()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        changed_cell_traces.into_iter().collect::<Vec<_>>(),
        vec![traces[1].clone()]
    );

    // Every payload, good or bad, is archived once by content.
    let mut archived = 0;
    for entry in walk(archive.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), name);
        archived += 1;
    }
    assert_eq!(archived, 3);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn set_mtime(path: &Path, unix: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(unix))
        .unwrap();
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An SFTP source on the stack's sshd: `*.csv` files in `dir`, stable for
/// 5 s, no marker, no archive.
fn sftp_csv_source(target: &votewire_tests::SftpTarget, dir: &str) -> std::sync::Arc<dyn Source> {
    std::sync::Arc::new(SftpSpec {
        endpoint: SftpEndpoint {
            host: target.host.clone(),
            port: target.port,
            user: target.user.clone(),
            private_key: target.key.clone(),
            known_hosts: target.known_hosts.clone(),
            timeout: Duration::from_secs(5),
        },
        drop: DropConfig {
            dir: dir.to_string(),
            pattern: "*.csv".into(),
            min_age_secs: 5,
            done_marker: None,
            archive_dir: None,
            max_bytes: 1 << 20,
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sftp_drop_feed_reads_stable_files_in_order_once_across_a_restart() {
    let stack = Stack::load();
    let target = stack.sftp();
    let pipeline = TestPipeline::start("sftpfeed", 4).await;
    let (publisher, state) = (&pipeline.publisher, &pipeline.state);
    let tools = tools(None);
    let (remote_dir, local_dir) = target.fresh_dir("livefeed");
    let old = unix_now() - 120;
    std::fs::write(local_dir.join("a.csv"), fixture_bytes(PA_COUNTY_CSV)).unwrap();
    set_mtime(&local_dir.join("a.csv"), old);
    std::fs::write(local_dir.join("b.csv"), pa_with_one_count_changed()).unwrap();
    set_mtime(&local_dir.join("b.csv"), old + 1);
    std::fs::write(local_dir.join("c.csv.part"), b"half a file").unwrap();

    let feed_id = unique("sftp:PA");
    let lease = pipeline.lease(&feed_id).await;
    let source = sftp_csv_source(&target, &remote_dir);
    let spec = pa_csv_feed(&feed_id, source);
    let resume = || {
        LiveFeed::resume(
            state,
            spec.clone(),
            "ingestor-a",
            HealthMachine::new(5, 3_600_000),
        )
    };
    let mut feed = resume().await.unwrap();
    macro_rules! step {
        ($feed:expr) => {
            $feed
                .step(&tools, publisher, state, &lease, 1_000)
                .await
                .unwrap()
        };
    }

    // First listing: nothing is known to be stable yet.
    let r = step!(feed);
    assert!(r.published.is_none() && !r.rejected);
    // Second listing: both stable and old enough; the older first, and the
    // feed asks to step again at once for the next one.
    let r = step!(feed);
    let first = r.published.expect("a.csv publishes");
    assert_eq!(first.cells_changed, first.cells_total);
    assert!(r.more, "b.csv is queued");
    let r = step!(feed);
    assert_eq!(r.published.expect("b.csv publishes").cells_changed, 1);
    assert!(!r.more);
    let r = step!(feed);
    assert!(r.published.is_none(), "the .part file is never read");

    // A restart remembers what was processed (the seen-set is in the
    // cursor): nothing is read again.
    let mut feed = resume().await.unwrap();
    for _ in 0..2 {
        let r = step!(feed);
        assert!(r.published.is_none(), "nothing is re-read after a restart");
    }
    // A re-upload with different content is read again: its one changed
    // count against the restarted feed's empty memory republishes all.
    std::fs::write(local_dir.join("a.csv"), fixture_bytes(PA_COUNTY_CSV)).unwrap();
    let text = String::from_utf8(fixture_bytes(PA_COUNTY_CSV)).unwrap();
    std::fs::write(
        local_dir.join("a.csv"),
        text.replacen(ONE_COUNT.0, "Clinton,Registered Voters,,,,22399,", 1),
    )
    .unwrap();
    set_mtime(&local_dir.join("a.csv"), old + 2);
    let _ = step!(feed);
    let r = step!(feed);
    let p = r.published.expect("the changed re-upload is read");
    assert_eq!(
        p.cells_changed, p.cells_total,
        "a restarted feed republishes once"
    );
    assert_eq!(state.load(&feed_id).await.unwrap().unwrap().source_seq, 3);
}

/// A file whose transform found no free slot goes back to the front of the
/// queue: when slots free up, the older file still publishes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sftp_file_that_waited_in_vain_for_a_transform_slot_still_publishes_first() {
    use votewire_ingestors::live_feed::FeedStepError;
    use votewire_ingestors::transform_run::TransformThreads;
    let stack = Stack::load();
    let target = stack.sftp();
    let pipeline = TestPipeline::start("sftpslot", 4).await;
    let (publisher, state) = (&pipeline.publisher, &pipeline.state);
    let mut tools = tools(None);
    tools.transforms = TransformThreads::new(1).with_slot_wait(Duration::from_millis(200));
    let (remote_dir, local_dir) = target.fresh_dir("livefeed-slot");
    let old = unix_now() - 120;
    std::fs::write(local_dir.join("a.csv"), fixture_bytes(PA_COUNTY_CSV)).unwrap();
    set_mtime(&local_dir.join("a.csv"), old);
    std::fs::write(local_dir.join("b.csv"), pa_with_one_count_changed()).unwrap();
    set_mtime(&local_dir.join("b.csv"), old + 1);
    let feed_id = unique("sftp:PA-slot");
    let lease = pipeline.lease(&feed_id).await;
    let source = sftp_csv_source(&target, &remote_dir);
    let spec = pa_csv_feed(&feed_id, source);
    let mut feed = LiveFeed::resume(state, spec, "ingestor-a", HealthMachine::new(5, 3_600_000))
        .await
        .unwrap();
    // The first listing finds nothing stable yet.
    let r = feed
        .step(&tools, publisher, state, &lease, 1_000)
        .await
        .unwrap();
    assert!(r.published.is_none());
    // Every slot is busy: a.csv's transform waits in vain, retryably.
    let busy = tools.transforms.hold().expect("the one slot");
    let e = feed
        .step(&tools, publisher, state, &lease, 1_000)
        .await
        .expect_err("no slot");
    assert!(matches!(e, FeedStepError::Transform { .. }), "{e}");
    assert!(e.is_retryable());
    drop(busy);
    // a.csv publishes first (every cell new), then b.csv (one changed).
    let r = feed
        .step(&tools, publisher, state, &lease, 1_000)
        .await
        .unwrap();
    assert_eq!(
        r.payload_bytes,
        Some(fixture_bytes(PA_COUNTY_CSV).len()),
        "a.csv first"
    );
    assert!(r.more, "b.csv still queued behind it");
    let first = r.published.expect("a.csv publishes");
    assert_eq!(first.cells_changed, first.cells_total);
    let r = feed
        .step(&tools, publisher, state, &lease, 1_000)
        .await
        .unwrap();
    assert!(!r.more);
    assert_eq!(r.published.expect("b.csv publishes").cells_changed, 1);
}

/// A payload whose transform runs past its time limit is tried again
/// (a busy machine can do that to a sound payload) and rejected only after
/// `MAX_OVERRUNS` in a row: the first tries are retryable step errors that
/// publish nothing and dead-letter nothing, the last is a dead letter. The
/// limit here (zero: the transform, on another thread, is never done when
/// the limit is first checked) is one no transform meets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_past_its_limit_is_tried_again_before_the_payload_is_rejected() {
    use votewire_ingestors::live_feed::{FeedStepError, MAX_OVERRUNS};
    let pipeline = TestPipeline::start("overrun", 2).await;
    let (publisher, state) = (&pipeline.publisher, &pipeline.state);
    let tools = tools(None);
    let server = FixtureServer::start().await;
    server.set(
        "/pa/county.csv",
        Canned::ok(fixture_bytes(PA_COUNTY_CSV)).header("etag", "\"v1\""),
    );
    let feed_id = unique("csv:PA");
    let lease = pipeline.lease(&feed_id).await;
    let mut spec = pa_csv_feed(&feed_id, http_source(server.url("/pa/county.csv")));
    spec.transform_timeout = Duration::ZERO;
    let mut feed = LiveFeed::resume(state, spec, "ingestor-a", HealthMachine::new(5, 3_600_000))
        .await
        .unwrap();
    for n in 1..MAX_OVERRUNS {
        let e = feed
            .step(&tools, publisher, state, &lease, 1_000 * i64::from(n))
            .await
            .expect_err("an overrun is not a verdict yet");
        assert!(
            matches!(e, FeedStepError::Overran { tries, .. } if tries == n),
            "{e}"
        );
        assert!(e.is_retryable());
        assert!(drain(&pipeline.kafka, &pipeline.topics.dlq, 1).is_empty());
    }
    let last = feed
        .step(&tools, publisher, state, &lease, 9_000)
        .await
        .expect("the last overrun is a verdict");
    assert!(
        last.rejected && last.published.is_none(),
        "{:?}",
        last.published
    );
    let letters = drain(&pipeline.kafka, &pipeline.topics.dlq, 1);
    assert_eq!(
        letters.len(),
        1,
        "one dead letter, after {MAX_OVERRUNS} tries"
    );
    let letter: votewire_schemas::DeadLetter =
        votewire_schemas::codec::decode(&votewire_schemas::schemas().dead_letter, &letters[0].2)
            .unwrap();
    assert_eq!(
        letter.error_class,
        votewire_schemas::ErrorClass::LimitExceeded
    );
    assert!(
        letter.error_message.contains("limits.transform_timeout"),
        "{}",
        letter.error_message
    );
    assert!(drain(&pipeline.kafka, &pipeline.topics.votes, 2).is_empty());
}
