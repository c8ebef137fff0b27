//! The GA 2021 runoff ALL.json series, in order, through transform → publish
//! (real broker) → fenced cursor commit (real DynamoDB API): every step
//! publishes exactly the changed cells, the HTML error pages go to the DLQ
//! and leave earlier cells alone, and the topic ends holding the final
//! snapshot's values. Expected values come from a generic JSON walk of the
//! snapshots, not from the code under test.

use std::collections::{BTreeMap, HashMap};

use votewire_ingestors::publish::{FetchFacts, PublishedCells, Publisher, contest_partition};
use votewire_ingestors::state::FeedCursor;
use votewire_ingestors::state::FeedStateStore;
use votewire_schemas::{FeedMode, SnapshotStatus, codec, schemas};
use votewire_tests::pipeline::{TestPipeline, clarity_all_json_walk, drain};
use votewire_tests::{fixture, fixture_bytes, unique, workspace_root};
use votewire_transformers::{FamilyInputs, PayloadContext};

const SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runoff_series_publishes_exactly_the_changed_cells_and_dead_letters_the_html_pages() {
    let pipeline = TestPipeline::start("series", PARTITIONS).await;
    let (kafka_cfg, topics, publisher, state) = (
        &pipeline.kafka,
        &pipeline.topics,
        &pipeline.publisher,
        &pipeline.state,
    );
    let companion =
        std::fs::read(workspace_root().join("deploy/demo/clarity-GA-107556-companion.json"))
            .unwrap();
    let inputs = FamilyInputs {
        companion: Some(&companion),
        ..FamilyInputs::default()
    };
    let feed_id = unique("clarity:GA:107556");
    let index = String::from_utf8(fixture_bytes(&format!("{SERIES}/index.csv"))).unwrap();

    let mut published = PublishedCells::default();
    let mut last_accepted: BTreeMap<(String, String, usize), i64> = BTreeMap::new();
    let (mut produced, mut accepted, mut rejected) = (0usize, 0i64, 0usize);
    for (n, line) in index.lines().skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let (version, path) = (fields[3], fields[6]);
        let bytes = std::fs::read(fixture(&format!("{SERIES}/{path}"))).unwrap();
        let sha = format!("{n:064}");
        let seq = accepted + 1;
        let ctx = PayloadContext {
            election_id: "2021-01-05-GA-runoff".into(),
            feed_id: feed_id.clone(),
            mode: FeedMode::Replay,
            source_seq: seq,
            source_version: Some(version.into()),
            fetched_at: 1_610_000_000_000 + n as i64,
            fetch_id: format!("fetch-{n}"),
            source_uri: format!(
                "https://results.enr.clarityelections.com//GA/107556/{version}/json/ALL.json"
            ),
            payload_sha256: sha.clone(),
            trace_id: None,
            content_type: None,
        };
        let facts = FetchFacts::for_payload(&ctx, "clarity-json", bytes.len());
        match votewire_transformers::transform("clarity-json", &bytes, &ctx, &inputs) {
            Ok(out) => {
                let now = clarity_all_json_walk(&bytes);
                let expected_changed = now
                    .iter()
                    .filter(|(k, v)| last_accepted.get(*k) != Some(*v))
                    .count();
                let result = publisher
                    .publish_accepted(&out.cells, &mut published, &facts)
                    .await
                    .unwrap();
                assert_eq!(result.cells_changed, expected_changed, "snapshot {path}");
                let lease = state
                    .acquire_lease(&feed_id, "ingestor-test", 1_000 + n as i64, 60_000)
                    .await
                    .unwrap()
                    .unwrap();
                let cursor = FeedCursor {
                    version: Some(version.into()),
                    sha256: Some(sha),
                    ..FeedCursor::default()
                };
                state.commit_cursor(&lease, &cursor, seq).await.unwrap();
                produced += result.cells_changed;
                accepted += 1;
                last_accepted = now;
            }
            Err(e) => {
                publisher.publish_rejected(&e, &facts).await.unwrap();
                rejected += 1;
            }
        }
    }
    assert_eq!((accepted, rejected), (119, 18));
    let stored = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(
        stored.source_seq, 119,
        "the cursor advanced once per accepted payload"
    );

    // The votes topic: exactly the changed cells, a contest per partition,
    // and the last record of every cell equals the final snapshot.
    let votes = drain(kafka_cfg, &topics.votes, PARTITIONS);
    assert_eq!(votes.len(), produced);
    let s = schemas();
    let mut last: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
    let mut contest_partitions: HashMap<String, i32> = HashMap::new();
    for (partition, key, value, feed) in &votes {
        assert_eq!(feed.as_deref(), Some(feed_id.as_str()));
        let cell = codec::decode_vote_cell(value, s.vote_cell.id).unwrap();
        assert_eq!(key, cell.cell_key().to_hex().as_bytes());
        assert_eq!(
            *partition,
            contest_partition("2021-01-05-GA-runoff", &cell.contest.source_id, PARTITIONS)
        );
        assert_eq!(
            *contest_partitions
                .entry(cell.contest.source_id.to_string())
                .or_insert(*partition),
            *partition
        );
        let e = last.entry(key.clone()).or_insert((i64::MIN, 0));
        if cell.header.source_seq >= e.0 {
            *e = (cell.header.source_seq, cell.votes);
        }
    }
    let final_total: i64 = last_accepted.values().sum();
    assert_eq!(last.len(), last_accepted.len(), "every cell was published");
    assert_eq!(last.values().map(|(_, v)| v).sum::<i64>(), final_total);

    // The DLQ holds the 18 HTML pages; the manifests cover every fetch.
    let dlq = drain(kafka_cfg, &topics.dlq, 1);
    assert_eq!(dlq.len(), 18);
    for (_, _, value, _) in &dlq {
        let d: votewire_schemas::DeadLetter = codec::decode(&s.dead_letter, value).unwrap();
        assert_eq!(
            (d.error_class, d.feed_id.as_str()),
            (
                votewire_schemas::ErrorClass::NotThisFormat,
                feed_id.as_str()
            )
        );
        assert_eq!(d.payload_bytes, 2616, "the HTML error page");
    }
    let manifests = drain(kafka_cfg, &topics.snapshots, 1);
    let statuses: Vec<SnapshotStatus> = manifests
        .iter()
        .map(|(_, _, v, _)| {
            codec::decode::<votewire_schemas::SnapshotManifest>(&s.snapshot_manifest, v)
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == SnapshotStatus::Accepted)
            .count(),
        119
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == SnapshotStatus::Rejected)
            .count(),
        18
    );
}

/// Crash safety, in process: an ingestor produces every cell of a payload
/// and its manifest, then dies before the cursor commit (its producer and
/// its change memory are dropped). The restarted ingestor finds the old
/// cursor, re-fetches the same payload, republishes every cell once (its
/// memory is empty) and commits; the next payload publishes only changes.
/// The topic ends with the right values, and the dead instance's late
/// commit is refused by the fencing counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_produce_and_commit_republishes_and_the_cursor_still_advances() {
    use sha2::Digest;
    let pipeline = TestPipeline::start("crash", PARTITIONS).await;
    let (kafka_cfg, topics, state) = (&pipeline.kafka, &pipeline.topics, &pipeline.state);
    let new_publisher = || pipeline.new_publisher();
    let companion =
        std::fs::read(workspace_root().join("deploy/demo/clarity-GA-107556-companion.json"))
            .unwrap();
    let inputs = FamilyInputs {
        companion: Some(&companion),
        ..FamilyInputs::default()
    };
    let feed_id = unique("clarity:GA:107556");
    let snaps = [
        "000_20210105T224741Z_v273729/ALL.json",
        "002_20210106T001230Z_v273739/ALL.json",
        "003_20210106T001600Z_v273739/ALL.json",
    ];
    let payloads: Vec<Vec<u8>> = snaps
        .iter()
        .map(|p| std::fs::read(fixture(&format!("{SERIES}/{p}"))).unwrap())
        .collect();
    let sha = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));

    // Transform payload `i` as source_seq `seq`: its cells and fetch facts.
    let prepare = |i: usize, seq: i64| {
        let bytes = payloads[i].clone();
        let ctx = PayloadContext {
            election_id: "2021-01-05-GA-runoff".into(),
            feed_id: feed_id.clone(),
            mode: FeedMode::Replay,
            source_seq: seq,
            source_version: Some("273739".into()),
            fetched_at: 1_610_000_000_000 + seq,
            fetch_id: format!("fetch-{seq}"),
            source_uri: format!("file:{}", snaps[i]),
            payload_sha256: sha(&bytes),
            trace_id: None,
            content_type: None,
        };
        let facts = FetchFacts::for_payload(&ctx, "clarity-json", bytes.len());
        let out = votewire_transformers::transform("clarity-json", &bytes, &ctx, &inputs).unwrap();
        (out.cells, facts)
    };
    async fn publish(
        publisher: &Publisher,
        memory: &mut PublishedCells,
        (cells, facts): (votewire_transformers::cells::CellTable, FetchFacts),
    ) -> votewire_ingestors::publish::Published {
        publisher
            .publish_accepted(&cells, memory, &facts)
            .await
            .unwrap()
    }
    let cursor_of = |i: usize| FeedCursor {
        sha256: Some(sha(&payloads[i])),
        ..FeedCursor::default()
    };

    // Instance 1: payload 0 committed, payload 1 produced, then it dies.
    let p1 = new_publisher();
    let mut mem = PublishedCells::default();
    let lease1 = state
        .acquire_lease(&feed_id, "ingestor-1", 1_000, 10_000)
        .await
        .unwrap()
        .unwrap();
    let r0 = publish(&p1, &mut mem, prepare(0, 1)).await;
    state
        .commit_cursor(&lease1, &cursor_of(0), 1)
        .await
        .unwrap();
    let r1 = publish(&p1, &mut mem, prepare(1, 2)).await;
    drop((p1, mem)); // crash: no commit, the change memory is gone
    assert!(r1.cells_changed > 0);

    // Instance 2 takes the expired lease and finds the old cursor.
    let lease2 = state
        .acquire_lease(&feed_id, "ingestor-2", 20_000, 10_000)
        .await
        .unwrap()
        .unwrap();
    assert!(lease2.fencing > lease1.fencing);
    let found = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(found.source_seq, 1);
    assert_eq!(found.cursor.sha256, Some(sha(&payloads[0])));
    assert_ne!(
        found.cursor.sha256,
        Some(sha(&payloads[1])),
        "payload 1 is new to it"
    );
    let p2 = new_publisher();
    let mut mem2 = PublishedCells::default();
    let r1b = publish(&p2, &mut mem2, prepare(1, 2)).await;
    assert_eq!(
        r1b.cells_changed, r1b.cells_total,
        "an empty memory republishes everything, once"
    );
    state
        .commit_cursor(&lease2, &cursor_of(1), 2)
        .await
        .unwrap();
    let r2 = publish(&p2, &mut mem2, prepare(2, 3)).await;
    let expected_changed = {
        let (a, b) = (
            clarity_all_json_walk(&payloads[1]),
            clarity_all_json_walk(&payloads[2]),
        );
        b.iter().filter(|(k, v)| a.get(*k) != Some(*v)).count()
    };
    assert_eq!(r2.cells_changed, expected_changed);
    state
        .commit_cursor(&lease2, &cursor_of(2), 3)
        .await
        .unwrap();
    // The dead instance's commit, arriving late, is fenced off.
    assert!(
        state
            .commit_cursor(&lease1, &cursor_of(1), 2)
            .await
            .is_err()
    );
    let found = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(
        (found.source_seq, found.cursor.sha256.clone()),
        (3, Some(sha(&payloads[2])))
    );

    // The topic: the records produced, and the latest value of every cell
    // (by source_seq) is the last payload's, by an independent JSON walk.
    let votes = drain(kafka_cfg, &topics.votes, PARTITIONS);
    assert_eq!(
        votes.len(),
        r0.cells_changed + r1.cells_changed + r1b.cells_changed + r2.cells_changed
    );
    let s = schemas();
    let mut last: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
    for (_, key, value, _) in &votes {
        let cell = codec::decode_vote_cell(value, s.vote_cell.id).unwrap();
        let e = last.entry(key.clone()).or_insert((i64::MIN, 0));
        if cell.header.source_seq >= e.0 {
            *e = (cell.header.source_seq, cell.votes);
        }
    }
    let want = clarity_all_json_walk(&payloads[2]);
    assert_eq!(last.len(), want.len());
    assert_eq!(
        last.values().map(|(_, v)| v).sum::<i64>(),
        want.values().sum::<i64>()
    );
}
