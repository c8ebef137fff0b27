//! The GA 2021 Senate runoff night (Clarity `ALL.json` series) published
//! straight through the transformer and the publisher, for tests that need
//! a real night's cells on a votes topic. HTML error snapshots are
//! skipped here (the ingestor tests cover their dead letters).

use std::collections::BTreeMap;
use std::time::Duration;

use votewire_ingestors::publish::{FetchFacts, PublishedCells, Publisher};
use votewire_schemas::FeedMode;
use votewire_transformers::{FamilyInputs, PayloadContext};

use crate::pipeline::clarity_all_json_walk;
use crate::{fixture, fixture_bytes, workspace_root};

pub const GA_RUNOFF_SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
pub const GA_RUNOFF_ELECTION: &str = "2021-01-05-GA-runoff";

/// One accepted snapshot: its `source_seq` and the independent walk of
/// its JSON ((contest, area, choice position) → votes).
pub struct AcceptedSnapshot {
    pub source_seq: i64,
    pub walk: BTreeMap<(String, String, usize), i64>,
    pub cells_changed: usize,
}

/// Publishes the first `limit` snapshots of the series as feed `feed_id`
/// (each accepted one gets the next `source_seq`, only changed cells are
/// produced), sleeping `pause` between snapshots. `fetched_at` is the wall
/// clock, so fetch-to-result latencies can be read off the results.
pub async fn publish_ga_runoff(
    publisher: &Publisher,
    feed_id: &str,
    limit: usize,
    pause: Duration,
) -> Vec<AcceptedSnapshot> {
    let companion =
        std::fs::read(workspace_root().join("deploy/demo/clarity-GA-107556-companion.json"))
            .expect("the demo's companion file");
    let inputs = FamilyInputs {
        companion: Some(&companion),
        ..FamilyInputs::default()
    };
    let index = String::from_utf8(fixture_bytes(&format!("{GA_RUNOFF_SERIES}/index.csv")))
        .expect("index.csv is text");
    let mut published = PublishedCells::default();
    let mut accepted = Vec::new();
    for (n, line) in index.lines().skip(1).take(limit).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let (version, path) = (fields[3], fields[6]);
        let bytes = std::fs::read(fixture(&format!("{GA_RUNOFF_SERIES}/{path}")))
            .expect("a series snapshot");
        let seq = accepted.len() as i64 + 1;
        let ctx = PayloadContext {
            election_id: GA_RUNOFF_ELECTION.into(),
            feed_id: feed_id.to_string(),
            mode: FeedMode::Replay,
            source_seq: seq,
            source_version: Some(version.into()),
            fetched_at: wall_ms(),
            fetch_id: format!("fetch-{n}"),
            source_uri: format!(
                "https://results.enr.clarityelections.com//GA/107556/{version}/json/ALL.json"
            ),
            payload_sha256: format!("{n:064}"),
            trace_id: Some(format!("{:032x}", n + 1)),
            content_type: None,
        };
        let Ok(out) = votewire_transformers::transform("clarity-json", &bytes, &ctx, &inputs)
        else {
            continue; // an HTML error page served as ALL.json
        };
        let facts = FetchFacts::for_payload(&ctx, "clarity-json", bytes.len());
        let result = publisher
            .publish_accepted(&out.cells, &mut published, &facts)
            .await
            .expect("publishing a snapshot");
        accepted.push(AcceptedSnapshot {
            source_seq: seq,
            walk: clarity_all_json_walk(&bytes),
            cells_changed: result.cells_changed,
        });
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    accepted
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
