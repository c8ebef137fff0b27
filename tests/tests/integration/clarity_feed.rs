//! A Clarity feed end to end: the GA 2021 runoff series served in order
//! by a real HTTP server (`current_ver.txt` plus versioned files), polled by
//! `LiveFeed` steps that publish to the real broker and commit to the
//! real DynamoDB API. Expected figures come from the fixture index and a
//! generic JSON walk, not from the code under test.

use std::collections::{BTreeMap, HashMap};

use sha2::Digest;
use votewire_ingestors::feed_spec::FeedSpec;
use votewire_ingestors::feed_tools::FeedTools;
use votewire_ingestors::health::HealthMachine;
use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::live_feed::LiveFeed;
use votewire_ingestors::sources::clarity::ClaritySpec;
use votewire_ingestors::state::FeedStateStore;
use votewire_schemas::{FeedMode, codec, schemas};
use votewire_tests::http::{Canned, FixtureServer};
use votewire_tests::pipeline::{TestPipeline, clarity_all_json_walk, drain};
use votewire_tests::{fixture, unique, workspace_root};

const SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_runoff_series_publishes_only_changes_and_dead_letters_the_error_pages() {
    let pipeline = TestPipeline::start("clarityfeed", PARTITIONS).await;
    let (kafka_cfg, topics, publisher, state) = (
        &pipeline.kafka,
        &pipeline.topics,
        &pipeline.publisher,
        &pipeline.state,
    );
    let server = FixtureServer::start().await;
    let tools = FeedTools::new(client(&FetchLimits::default()).unwrap(), 4, None, 4);
    let companion =
        std::fs::read(workspace_root().join("deploy/demo/clarity-GA-107556-companion.json"))
            .unwrap();
    let feed_id = unique("clarity:GA:107556");
    let lease = pipeline.lease(&feed_id).await;
    let spec = FeedSpec {
        feed_id: feed_id.clone(),
        election_id: "2021-01-05-GA-runoff".into(),
        family: "clarity-json".into(),
        mode: FeedMode::Live,
        zero_counts: false,
        // Content moves under an unchanged version in this series:
        // revalidate every poll.
        source: std::sync::Arc::new(ClaritySpec {
            base_url: server.url("/GA/107556"),
            file: "json/ALL.json".into(),
            revalidate_every: 1,
        }),
        mapping: None,
        companion: Some(companion.into()),
        limits: FetchLimits::default(),
        transform_timeout: votewire_ingestors::transform_run::DEFAULT_TRANSFORM_TIMEOUT,
        result_links: None,
    };
    let mut feed = LiveFeed::resume(state, spec, "ingestor-a", HealthMachine::new(5, 3_600_000))
        .await
        .unwrap();

    let index = std::fs::read_to_string(fixture(&format!("{SERIES}/index.csv"))).unwrap();
    let mut last_values: BTreeMap<(String, String, usize), i64> = BTreeMap::new();
    let mut last_sha: Option<Vec<u8>> = None;
    let (mut produced, mut accepted, mut rejected) = (0, 0, 0);
    let (mut html_pages, mut version_failures) = (0, 0);
    for (n, line) in index.lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let (version, kind, path) = (f[3], f[5], f[6]);
        let bytes = std::fs::read(fixture(&format!("{SERIES}/{path}"))).unwrap();
        server.set(
            "/GA/107556/current_ver.txt",
            Canned::ok(version.to_string()),
        );
        server.set(
            &format!("/GA/107556/{version}/json/ALL.json"),
            Canned::ok(bytes.clone()),
        );
        let now = 1_610_000_000_000 + n as i64 * 30_000;
        if version.is_empty() {
            // Three times the version pointer itself was empty (the index
            // has no current_ver): a retryable fetch error, nothing fetched
            // past it, nothing dead-lettered.
            html_pages += usize::from(kind != "json");
            let err = feed
                .step(&tools, publisher, state, &lease, now)
                .await
                .unwrap_err();
            assert!(err.is_retryable(), "{err}");
            version_failures += 1;
            continue;
        }
        let report = feed
            .step(&tools, publisher, state, &lease, now)
            .await
            .unwrap();
        let sha = sha2::Sha256::digest(&bytes).to_vec();
        if kind == "json" {
            let values = clarity_all_json_walk(&bytes);
            let changed = values
                .iter()
                .filter(|(k, v)| last_values.get(*k) != Some(*v))
                .count();
            if last_sha.as_ref() == Some(&sha) {
                assert!(report.published.is_none(), "step {n}: identical bytes");
            } else {
                let p = report.published.as_ref().expect("a new payload publishes");
                assert_eq!(p.cells_changed, changed, "step {n}");
                produced += p.cells_changed;
                accepted += 1;
                last_sha = Some(sha);
            }
            last_values = values;
        } else {
            html_pages += 1;
            assert!(report.rejected, "step {n}: the HTML page is rejected");
            assert!(report.published.is_none());
            rejected += 1;
        }
        // Polling again with nothing new publishes nothing.
        let again = feed
            .step(&tools, publisher, state, &lease, now + 5_000)
            .await
            .unwrap();
        assert!(
            again.published.is_none() && !again.rejected,
            "step {n} repeat"
        );
    }
    assert_eq!(html_pages, 18, "the index lists 18 HTML error pages");
    assert_eq!((rejected, version_failures), (15, 3));

    let stored = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(stored.source_seq, accepted);
    assert_eq!(
        stored.health, "unchanged",
        "the last poll found nothing new"
    );
    let votes = drain(kafka_cfg, &topics.votes, PARTITIONS);
    assert_eq!(votes.len(), produced);
    let s = schemas();
    let mut last: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
    for (_, _, value, _) in &votes {
        let cell = codec::decode_vote_cell(value, s.vote_cell.id).unwrap();
        let key = cell.cell_key().to_hex().into_bytes();
        let e = last.entry(key).or_insert((i64::MIN, 0));
        if cell.header.source_seq >= e.0 {
            *e = (cell.header.source_seq, cell.votes);
        }
    }
    assert_eq!(last.len(), last_values.len());
    assert_eq!(
        last.values().map(|(_, v)| v).sum::<i64>(),
        last_values.values().sum::<i64>()
    );
    assert_eq!(drain(kafka_cfg, &topics.dlq, 1).len(), 15);
    // healthy/unchanged -> failing -> healthy around each of the 18 bad
    // polls: at least two transitions each.
    assert!(drain(kafka_cfg, &topics.feed_status, 1).len() >= 36);
}
