//! The GA 2021 Senate runoff night (Clarity `ALL.json` series) published
//! straight through the transformer and the publisher, for tests that need
//! a real night's cells on a votes topic. HTML error snapshots are
//! skipped here (the ingestor tests cover their dead letters).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use votewire_ingestors::publish::{FetchFacts, PublishedCells, Publisher};
use votewire_schemas::{ContestResult, FeedMode, UnitType, codec, schemas};
use votewire_transformers::{FamilyInputs, PayloadContext};

use crate::pipeline::{clarity_all_json_walk, drain};
use crate::{fixture, workspace_root};

/// The GA 2021 runoff's Clarity `ALL.json` series, under the fixtures.
pub const GA_RUNOFF_SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
/// That night's election id.
pub const GA_RUNOFF_ELECTION: &str = "2021-01-05-GA-runoff";

/// One accepted snapshot: its `source_seq` and the independent walk of
/// its JSON ((contest, area, choice position) → votes).
pub struct AcceptedSnapshot {
    /// The feed's `source_seq` for it.
    pub source_seq: i64,
    /// The independent walk of its JSON.
    pub walk: BTreeMap<(String, String, usize), i64>,
    /// Cells it changed (and published).
    pub cells_changed: usize,
}

/// What a replayed snapshot's `fetched_at` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayClock {
    /// Now: fetch-to-result latencies can be read off the results.
    Wall,
    /// The time the scraper recorded the snapshot (index.csv): two replays
    /// produce byte-identical cells and results.
    Recorded,
}

/// How a replayed snapshot is stamped: its `fetched_at` and its cells'
/// mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayAs {
    /// What `fetched_at` is.
    pub clock: ReplayClock,
    /// The cells' mode (`replay` for a night played back, `test` for a
    /// publisher's test data).
    pub mode: FeedMode,
}

impl ReplayAs {
    /// A night played back (`mode = replay`) stamped with `clock`.
    pub fn replay(clock: ReplayClock) -> Self {
        Self {
            clock,
            mode: FeedMode::Replay,
        }
    }
}

/// Publishes the snapshots `range` of the series as feed `feed_id` (each
/// accepted one gets the next `source_seq` after `first_seq - 1`; only
/// changed cells are produced, against `published`), sleeping `pause`
/// between snapshots.
pub async fn publish_ga_runoff_range(
    publisher: &Publisher,
    published: &mut PublishedCells,
    feed_id: &str,
    range: std::ops::Range<usize>,
    first_seq: i64,
    pause: Duration,
    how: ReplayAs,
) -> Vec<AcceptedSnapshot> {
    let companion =
        std::fs::read(workspace_root().join("deploy/demo/clarity-GA-107556-companion.json"))
            .expect("the demo's companion file");
    let inputs = FamilyInputs {
        companion: Some(&companion),
        ..FamilyInputs::default()
    };
    let index = fixture(&format!("{GA_RUNOFF_SERIES}/index.csv"));
    let series = votewire_ingestors::recorded::read_series(index.parent().unwrap())
        .expect("the GA runoff series");
    let mut accepted = Vec::new();
    for n in range {
        let Some(snapshot) = series.get(n) else { break };
        let (recorded_ms, bytes) = (snapshot.recorded_ms, &snapshot.bytes[..]);
        let version = snapshot
            .version
            .as_deref()
            .expect("a Clarity series has versions");
        let seq = first_seq + accepted.len() as i64;
        let ctx = PayloadContext {
            election_id: GA_RUNOFF_ELECTION.into(),
            feed_id: feed_id.to_string(),
            mode: how.mode,
            source_seq: seq,
            source_version: Some(version.into()),
            fetched_at: match how.clock {
                ReplayClock::Wall => wall_ms(),
                ReplayClock::Recorded => recorded_ms,
            },
            fetch_id: format!("fetch-{n}"),
            source_uri: format!(
                "https://results.enr.clarityelections.com//GA/107556/{version}/json/ALL.json"
            ),
            payload_sha256: format!("{n:064}"),
            trace_id: Some(format!("{:032x}", n + 1)),
            content_type: None,
        };
        let Ok(out) = votewire_transformers::transform("clarity-json", bytes, &ctx, &inputs) else {
            continue; // an HTML error page served as ALL.json
        };
        let facts = FetchFacts::for_payload(&ctx, "clarity-json", bytes.len());
        let result = publisher
            .publish_accepted(&out.cells, published, &facts)
            .await
            .expect("publishing a snapshot");
        accepted.push(AcceptedSnapshot {
            source_seq: seq,
            walk: clarity_all_json_walk(bytes),
            cells_changed: result.cells_changed,
        });
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    accepted
}

/// The whole series (or its first `limit` snapshots) from scratch.
pub async fn publish_ga_runoff(
    publisher: &Publisher,
    feed_id: &str,
    limit: usize,
    pause: Duration,
) -> Vec<AcceptedSnapshot> {
    publish_ga_runoff_range(
        publisher,
        &mut PublishedCells::default(),
        feed_id,
        0..limit,
        1,
        pause,
        ReplayAs::replay(ReplayClock::Wall),
    )
    .await
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The GA runoff's contests: Perdue–Ossoff, Loeffler–Warnock, PSC District 4.
pub const CONTESTS: [&str; 3] = ["10000", "10100", "28400"];

/// Every result record in topic order, decoded.
pub fn results_of(
    kafka: &votewire_core::config::KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Vec<(String, ContestResult)> {
    let s = schemas();
    drain(kafka, topic, partitions)
        .into_iter()
        .map(|(_, key, value, _)| {
            (
                String::from_utf8(key).unwrap(),
                codec::decode(&s.contest_result, &value).expect("a ContestResult"),
            )
        })
        .collect()
}

/// The last record per key: what the compacted topic converges to.
pub fn compacted(records: &[(String, ContestResult)]) -> BTreeMap<String, ContestResult> {
    records.iter().cloned().collect()
}

/// Checks the compacted results against the final snapshot's walk: every
/// county and the state, for every contest; the state both as reported
/// (area `-1`) and as the sum of the counties.
pub fn assert_results_equal_walk(
    results: &BTreeMap<String, ContestResult>,
    feed_id: &str,
    last: &AcceptedSnapshot,
) {
    let mut checked = 0;
    for ((contest, area, pos), votes) in &last.walk {
        let key = format!("{GA_RUNOFF_ELECTION}/{feed_id}/{contest}/{area}");
        let r = results
            .get(&key)
            .unwrap_or_else(|| panic!("no result for {key}"));
        let choice = r
            .choices
            .iter()
            .find(|c| c.choice_id == pos.to_string())
            .unwrap_or_else(|| panic!("{key}: no choice {pos}"));
        assert_eq!(choice.votes, *votes, "{key} choice {pos}");
        checked += 1;
    }
    for contest in CONTESTS {
        let state = &results[&format!("{GA_RUNOFF_ELECTION}/{feed_id}/{contest}/-1")];
        assert_eq!(state.unit_type, UnitType::State);
        let mut disagree = false;
        for c in &state.choices {
            let pos: usize = c.choice_id.parse().unwrap();
            let counties: i64 = last
                .walk
                .iter()
                .filter(|((k, a, p), _)| k == contest && a != "-1" && *p == pos)
                .map(|(_, v)| v)
                .sum();
            let reported = last.walk[&(contest.to_string(), "-1".to_string(), pos)];
            assert_eq!(c.reported, Some(reported), "{contest} {pos}");
            assert_eq!(c.sum_of_children, Some(counties), "{contest} {pos}");
            disagree |= reported != counties;
        }
        assert_eq!(state.aggregates_disagree, disagree, "{contest}");
        let total: i64 = state.choices.iter().map(|c| c.votes).sum();
        assert_eq!(state.total_votes, total);
        let top = state.choices.iter().max_by_key(|c| c.votes).unwrap();
        assert_eq!(
            state.leader_choice_id.as_deref(),
            Some(top.choice_id.as_str())
        );
    }
    assert_eq!(
        checked, 960,
        "159 counties and the state, 3 contests, 2 choices"
    );
}

/// No key's results ever go back to an older `source_seq`.
pub fn assert_no_regression(records: &[(String, ContestResult)]) {
    let mut seen: HashMap<&str, i64> = HashMap::new();
    for (key, r) in records {
        let seq = r.contributors.iter().map(|c| c.source_seq).max().unwrap();
        let before = seen.insert(key, seq).unwrap_or(0);
        assert!(seq >= before, "{key} regressed from seq {before} to {seq}");
    }
}
