//! Linked sources that disagree, on the real broker: two CSV feeds linked
//! to one shared contest report the same county; the official (higher
//! priority) source has Alice at 100, the other at 90. A fleet member
//! raises a `SourceDisagreement` on the alerts topic saying where and by
//! how much; when the other source's next payload agrees, the alert is
//! tombstoned. The expected figures are the CSVs' own numbers.

use std::sync::Arc;
use std::time::Duration;

use votewire_aggregator::fleet::FleetConfig;
use votewire_ingestors::publish::{FetchFacts, PublishedCells, Publisher};
use votewire_ingestors::result_links::{ResultLinker, ResultsConfig};
use votewire_schemas::{FeedMode, SourceDisagreement, codec, schemas};
use votewire_tests::pipeline::{TestPipeline, drain};
use votewire_tests::unique;
use votewire_transformers::{FamilyInputs, PayloadContext};

use crate::aggregate::member_with;

const SHARED: &str = "governor";
const ELECTION: &str = "2026-11-03-XX";

/// Publishes `csv` as payload `seq` of `feed_id`, its contest linked to
/// [`SHARED`] with `priority`.
async fn publish(
    publisher: &Publisher,
    memory: &mut PublishedCells,
    feed_id: &str,
    seq: i64,
    priority: i32,
    csv: &str,
) {
    let ctx = PayloadContext {
        election_id: ELECTION.into(),
        feed_id: feed_id.into(),
        mode: FeedMode::Live,
        source_seq: seq,
        source_version: None,
        fetched_at: 1_800_000_000_000 + seq,
        fetch_id: format!("fetch-{feed_id}-{seq}"),
        source_uri: format!("file://{feed_id}.csv"),
        payload_sha256: format!("{seq:064}"),
        trace_id: None,
        content_type: None,
    };
    let mapping = toml::toml! { final_newline = "optional" };
    let inputs = FamilyInputs {
        mapping: Some(&mapping),
        ..FamilyInputs::default()
    };
    let out = votewire_transformers::transform("csv", csv.as_bytes(), &ctx, &inputs).unwrap();
    let contest = out
        .cells
        .contest(out.cells.rows()[0].contest)
        .source_id
        .to_string();
    let config = ResultsConfig {
        contests: [(contest, SHARED.to_string())].into(),
        ..ResultsConfig::default()
    };
    let mut facts = FetchFacts::for_payload(&ctx, "csv", csv.len());
    facts.result_links = Some(Arc::new(ResultLinker::new(config, priority)));
    publisher
        .publish_accepted(&out.cells, memory, &facts)
        .await
        .unwrap();
}

/// Every record of the alerts topic in order: (key, the alert or `None`
/// for a tombstone).
fn alerts(pipeline: &TestPipeline) -> Vec<(String, Option<SourceDisagreement>)> {
    drain(&pipeline.kafka, &pipeline.topics.alerts, 1)
        .into_iter()
        .map(|(_, key, value, _)| {
            let key = String::from_utf8(key).unwrap();
            let alert = (!value.is_empty())
                .then(|| codec::decode(&schemas().source_disagreement, &value).unwrap());
            (key, alert)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_sources_that_disagree_raise_an_alert_that_clears_when_they_agree() {
    let pipeline = TestPipeline::start("agg-disagree", 2).await;
    let (official, other) = (unique("csv:sos"), unique("csv:county"));
    let header = "county,office,district,party,candidate,votes\n";
    let rows = |alice: i64| {
        format!("{header}Lanier,Governor,,DEM,Alice,{alice}\nLanier,Governor,,REP,Bob,50\n")
    };
    let mut other_memory = PublishedCells::default();
    let key = format!("{ELECTION}/{SHARED}/Lanier/{other}");
    let cfg = FleetConfig::new(&unique("agg-disagree-group"), "it-agg-disagree");
    let (totals, reports, raised) = member_with(
        &pipeline.kafka,
        &pipeline.topics,
        cfg,
        Duration::from_secs(2),
        async {
            publish(
                &pipeline.publisher,
                &mut PublishedCells::default(),
                &official,
                1,
                10,
                &rows(100),
            )
            .await;
            publish(
                &pipeline.publisher,
                &mut other_memory,
                &other,
                1,
                5,
                &rows(90),
            )
            .await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let raised = loop {
                let found = alerts(&pipeline);
                if !found.is_empty() {
                    break found;
                }
                assert!(tokio::time::Instant::now() < deadline, "no alert raised");
                tokio::time::sleep(Duration::from_millis(300)).await;
            };
            // The other source corrects: they agree again.
            publish(
                &pipeline.publisher,
                &mut other_memory,
                &other,
                2,
                5,
                &rows(100),
            )
            .await;
            raised
        },
    )
    .await;
    assert_eq!(totals.cells, 5, "4 cells, then Alice's corrected one");
    assert_eq!(raised.len(), 1, "one alert, at the county: {raised:#?}");
    let (k, alert) = &raised[0];
    assert_eq!(k, &key);
    let alert = alert.as_ref().expect("an alert, not a tombstone");
    assert_eq!(
        (
            alert.official_feed_id.as_str(),
            alert.other_feed_id.as_str(),
            alert.unit_id.as_str(),
            alert.official_votes,
            alert.other_votes,
            alert.difference,
            alert.choices_disagreeing,
        ),
        (official.as_str(), other.as_str(), "Lanier", 100, 90, 10, 1)
    );
    // 10 of the official 150.
    assert!((alert.difference_pct - 10.0 * 100.0 / 150.0).abs() < 1e-9);
    let count = |f: fn(&votewire_aggregator::fleet::BatchReport) -> usize| {
        reports.iter().map(f).sum::<usize>()
    };
    assert_eq!(
        (count(|r| r.alerts_raised), count(|r| r.alerts_cleared)),
        (1, 1)
    );

    let after = alerts(&pipeline);
    let last = after.iter().rev().find(|(k, _)| *k == key).unwrap();
    assert!(
        last.1.is_none(),
        "the key's last record is a tombstone: {after:#?}"
    );
}
