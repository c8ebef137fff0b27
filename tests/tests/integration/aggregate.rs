//! The aggregator fleet member on the real broker, fed a real night: the
//! GA 2021 runoff `ALL.json` series. Expected results come from a generic
//! JSON walk of the snapshots (`clarity_all_json_walk`), never from the
//! rollup under test.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use votewire_aggregator::fleet::{BatchReport, FleetConfig, FleetTotals, run_member};
use votewire_schemas::UnitType;
use votewire_tests::pipeline::TestPipeline;
use votewire_tests::replay::{
    AcceptedSnapshot, GA_RUNOFF_ELECTION, assert_no_regression, assert_results_equal_walk,
    compacted, publish_ga_runoff, results_of,
};
use votewire_tests::unique;

const PARTITIONS: i32 = 3;

/// Runs one fleet member until it has published and then been idle for
/// `idle`; returns its totals and batch reports.
async fn member_until_idle(
    pipeline: &TestPipeline,
    group: &str,
    idle: Duration,
    during: impl std::future::Future<Output = Vec<AcceptedSnapshot>>,
) -> (FleetTotals, Vec<BatchReport>, Vec<AcceptedSnapshot>) {
    member_with(
        &pipeline.kafka,
        &pipeline.topics,
        FleetConfig::new(group, "it-agg-1"),
        idle,
        during,
    )
    .await
}

/// [`member_until_idle`] on any topics, with a given fleet config: one
/// member runs while `during` runs, then until it has published and been
/// idle for `idle`.
pub(crate) async fn member_with<T>(
    kafka: &votewire_core::config::KafkaConfig,
    topics: &votewire_core::config::TopicsConfig,
    cfg: FleetConfig,
    idle: Duration,
    during: impl std::future::Future<Output = T>,
) -> (FleetTotals, Vec<BatchReport>, T) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let last = Arc::new(Mutex::new((Instant::now(), false)));
    let member = {
        let (kafka, topics) = (kafka.clone(), topics.clone());
        let (reports, last) = (reports.clone(), last.clone());
        tokio::spawn(async move {
            run_member(&kafka, &topics, &cfg, stop_rx, |b| {
                reports.lock().unwrap().push(b.clone());
                let mut l = last.lock().unwrap();
                *l = (Instant::now(), l.1 || b.results_produced > 0);
            })
            .await
            .expect("the member runs")
        })
    };
    let accepted = during.await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (at, published) = *last.lock().unwrap();
        if published && at.elapsed() >= idle {
            break;
        }
        assert!(Instant::now() < deadline, "the member never went idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true).unwrap();
    let totals = member.await.unwrap();
    let reports = reports.lock().unwrap().clone();
    (totals, reports, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_after_the_night_rebuilds_it_and_publishes_each_result_once() {
    let pipeline = TestPipeline::start("agg-rebuild", PARTITIONS).await;
    let feed_id = unique("clarity:GA:107556");
    let accepted = publish_ga_runoff(&pipeline.publisher, &feed_id, 137, Duration::ZERO).await;
    assert_eq!(accepted.len(), 119, "18 HTML error pages skipped");
    let cells_published: usize = accepted.iter().map(|a| a.cells_changed).sum();

    let (totals, reports, _) = member_until_idle(
        &pipeline,
        &unique("agg-group"),
        Duration::from_secs(2),
        async { Vec::new() },
    )
    .await;
    assert_eq!(
        totals.cells as usize, cells_published,
        "every cell consumed once"
    );
    assert_eq!(totals.rebuilds, PARTITIONS as u64);
    let records = results_of(&pipeline.kafka, &pipeline.topics.results, PARTITIONS);
    let final_state = compacted(&records);
    assert_results_equal_walk(&final_state, &feed_id, accepted.last().unwrap());
    // Rebuilt before publishing: one record per key, not one per cell or
    // per snapshot.
    assert_eq!(records.len(), final_state.len(), "{reports:#?}");
    assert_eq!(
        final_state.len(),
        3 * 160,
        "3 contests at 159 counties and the state"
    );

    // Counts that went down during the night: the later, lower value won.
    let mut max_seen: BTreeMap<&(String, String, usize), i64> = BTreeMap::new();
    for a in &accepted {
        for (k, v) in &a.walk {
            let m = max_seen.entry(k).or_insert(*v);
            *m = (*m).max(*v);
        }
    }
    let last = &accepted.last().unwrap().walk;
    let lowered: Vec<_> = last.iter().filter(|(k, v)| max_seen[k] > **v).collect();
    assert!(
        !lowered.is_empty(),
        "the series has corrected (lowered) counts"
    );
    for ((contest, area, pos), v) in lowered {
        let r = &final_state[&format!("{GA_RUNOFF_ELECTION}/{feed_id}/{contest}/{area}")];
        let c = r
            .choices
            .iter()
            .find(|c| c.choice_id == pos.to_string())
            .unwrap();
        assert_eq!(
            c.votes, *v,
            "{contest}/{area}/{pos}: the lower, later count"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_running_through_the_night_coalesces_and_ends_on_the_final_snapshot() {
    let pipeline = TestPipeline::start("agg-live", PARTITIONS).await;
    let feed_id = unique("clarity:GA:107556");
    let (totals, reports, accepted) = member_until_idle(
        &pipeline,
        &unique("agg-group"),
        Duration::from_secs(2),
        // Give the member time to join before the night starts.
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            publish_ga_runoff(
                &pipeline.publisher,
                &feed_id,
                137,
                Duration::from_millis(30),
            )
            .await
        },
    )
    .await;
    let cells_published: usize = accepted.iter().map(|a| a.cells_changed).sum();
    assert_eq!(totals.cells as usize, cells_published);
    let records = results_of(&pipeline.kafka, &pipeline.topics.results, PARTITIONS);
    let final_state = compacted(&records);
    assert_results_equal_walk(&final_state, &feed_id, accepted.last().unwrap());
    assert_no_regression(&records);
    // Coalescing: fewer records than changed cells (a county's candidates
    // change together), and a key gets about one record per snapshot that
    // changed anything. Not exactly one: on
    // Kafka a payload's cells of one partition can reach the member in
    // two fetches (the high watermark moves per replicated produce
    // request), and a batch that ends between them publishes the contest
    // once with part of the snapshot applied and again with all of it.
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for (k, _) in &records {
        *per_key.entry(k).or_insert(0) += 1;
    }
    let changing = accepted.iter().filter(|a| a.cells_changed > 0).count();
    assert!(
        records.len() < cells_published,
        "{} records for {cells_published} cells",
        records.len()
    );
    let over: Vec<(&&str, &usize)> = per_key.iter().filter(|(_, n)| **n > 2 * changing).collect();
    assert!(
        over.is_empty(),
        "more than two records per changing snapshot ({changing}): {over:?}"
    );
    // Lag and throughput per partition were reported while it ran.
    let stats: Vec<_> = reports.iter().flat_map(|r| r.partitions.iter()).collect();
    assert!(
        stats.iter().any(|p| p.cells_per_s > 0.0 && !p.rebuilding),
        "{stats:?}"
    );
    assert!(stats.iter().all(|p| p.lag >= 0 && p.partition < PARTITIONS));
    let lat: Vec<i64> = reports
        .iter()
        .flat_map(|r| r.fetch_to_result_ms.iter().copied())
        .collect();
    assert!(!lat.is_empty());
    eprintln!(
        "cells={cells_published} results={} batches={} max fetch→result {} ms",
        records.len(),
        reports.len(),
        lat.iter().max().unwrap()
    );
}

/// Bad input on the votes topic itself (a stray producer, a truncated
/// record, an HTML page, another schema's id): each record becomes a dead
/// letter naming its place on the topic, the member carries on, and every
/// result still equals the independent walk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_votes_topic_is_dead_lettered_and_leaves_results_untouched() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    use votewire_schemas::{DeadLetter, ErrorClass, codec, schemas};

    let pipeline = TestPipeline::start("agg-garbage", PARTITIONS).await;
    let feed_id = unique("clarity:GA:107556");
    let accepted = publish_ga_runoff(&pipeline.publisher, &feed_id, 137, Duration::ZERO).await;
    // A real cell record, truncated: take one from the topic.
    let real = votewire_tests::pipeline::drain(&pipeline.kafka, &pipeline.topics.votes, PARTITIONS)
        .into_iter()
        .next()
        .expect("a published cell")
        .2;
    let mut wrong_id = real.clone();
    wrong_id[4] ^= 0x7f;
    // Well-formed cells whose count no ingestor publishes: past the
    // documented ceiling either way (only a stray producer writes one).
    let (schema_id, _) = codec::split_frame(&real).expect("a framed cell");
    let past_bound = |votes: i64| {
        let mut cell = codec::decode_vote_cell(&real, schema_id).expect("a real cell");
        cell.votes = votes;
        let mut out = Vec::new();
        codec::encode_vote_cell(&cell, schema_id, &mut out);
        out
    };
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        (
            "past-max-votes",
            past_bound(votewire_schemas::MAX_VOTES + 1),
        ),
        ("negative-past-max-votes", past_bound(-2_000_000_000)),
        ("truncated", real[..real.len() / 2].to_vec()),
        (
            "html",
            b"<html><body>Election Night Reporting is unavailable</body></html>".to_vec(),
        ),
        ("wrong-schema-id", wrong_id),
        ("empty", Vec::new()),
    ];
    for (i, (what, bytes)) in garbage.iter().enumerate() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "feed_id",
            value: Some("stray-producer"),
        });
        pipeline
            .publisher
            .producer
            .send(
                FutureRecord::to(&pipeline.topics.votes)
                    .partition(i as i32 % PARTITIONS)
                    .key(*what)
                    .payload(bytes)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .expect("the garbage lands");
    }

    let (totals, _, _) = member_until_idle(
        &pipeline,
        &unique("agg-group"),
        Duration::from_secs(2),
        async { Vec::new() },
    )
    .await;
    assert_eq!(totals.cells_rejected, garbage.len() as u64);
    let records = results_of(&pipeline.kafka, &pipeline.topics.results, PARTITIONS);
    assert_results_equal_walk(&compacted(&records), &feed_id, accepted.last().unwrap());

    let s = schemas();
    let dead: Vec<DeadLetter> =
        votewire_tests::pipeline::drain(&pipeline.kafka, &pipeline.topics.dlq, 1)
            .into_iter()
            .map(|(_, _, v, _)| codec::decode(&s.dead_letter, &v).expect("a DeadLetter"))
            .collect();
    assert_eq!(dead.len(), garbage.len(), "{dead:#?}");
    for d in &dead {
        assert_eq!(d.feed_id, "stray-producer");
        assert_eq!(d.error_class, ErrorClass::SchemaViolation);
        assert!(!d.retryable);
        let place = d.archive_ref.as_deref().unwrap();
        assert!(
            place.starts_with(&format!("kafka://{}/", pipeline.topics.votes)),
            "{place}"
        );
        assert_eq!(d.source_uri, place);
        assert_eq!(d.payload_sha256.len(), 64);
        assert!(d.error_location.as_deref().unwrap().contains("offset"));
    }
}

/// The values of one contest in a Clarity `detail.xml`, by a plain tag
/// walk (no votewire code): per choice, the site's aggregate (the sum of
/// its `VoteType@votes`), and per (leaf unit, choice) the sum over vote
/// types of the leaves' votes. Contest-level vote types (under and over
/// votes) are choices of their own.
#[allow(clippy::type_complexity)]
fn clarity_detail_walk(
    xml: &str,
    contest_text: &str,
) -> (BTreeMap<String, i64>, BTreeMap<(String, String), i64>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = tag[at..].find('"')? + at;
        Some(tag[at..end].to_string())
    };
    let (mut aggregate, mut leaves) = (BTreeMap::new(), BTreeMap::new());
    let (mut inside, mut choice, mut vote_type_choice): (bool, Option<String>, Option<String>) =
        (false, None, None);
    for piece in xml.split('<').skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        if tag.starts_with("Contest ") {
            inside = attr(tag, "text").as_deref() == Some(contest_text);
        } else if tag.starts_with("/Contest") {
            inside = false;
        } else if !inside {
            continue;
        } else if tag.starts_with("Choice ") {
            choice = attr(tag, "text");
        } else if tag.starts_with("/Choice") {
            choice = None;
        } else if tag.starts_with("VoteType ") {
            let c = choice.clone().or_else(|| attr(tag, "name")).unwrap();
            let votes: i64 = attr(tag, "votes").unwrap().parse().unwrap();
            *aggregate.entry(c.clone()).or_insert(0) += votes;
            vote_type_choice = Some(c);
        } else if (tag.starts_with("Precinct ") || tag.starts_with("County "))
            && let (Some(c), Some(v)) = (&vote_type_choice, attr(tag, "votes"))
        {
            *leaves
                .entry((attr(tag, "name").unwrap(), c.clone()))
                .or_insert(0) += v.parse::<i64>().unwrap();
        }
    }
    (aggregate, leaves)
}

/// GA 2020: the state site (counties, priority 10) and two county sites
/// (precincts, priority 5) report the presidential race; their contests
/// link to one shared id and the county sites name the state as their
/// counties' parent. The merged results hold each county from the state
/// site (official) and from its county site (in `by_source`), the
/// precincts under their county, and the state both as reported and as
/// the sum of the counties, all equal to a plain walk of the three files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_sites_and_the_state_site_merge_into_one_contest_by_priority() {
    use std::sync::Arc;
    use votewire_ingestors::publish::{FetchFacts, PublishedCells};
    use votewire_ingestors::result_links::{ResultLinker, ResultsConfig};
    use votewire_schemas::FeedMode;
    use votewire_transformers::{FamilyInputs, PayloadContext};

    const RACE: &str = "President of the United States";
    const SHARED: &str = "ga-2020-president";
    const ELECTION: &str = "2020-11-03-GA-general";
    let pipeline = TestPipeline::start("agg-merge", PARTITIONS).await;
    let base = unique("clarity:GA");
    let files = [
        (
            "ga_counties_11-3.xml",
            format!("{base}:state"),
            "5000",
            10,
            None,
        ),
        (
            "ga_atkinson_precincts_11-3.xml",
            format!("{base}:atkinson"),
            "1",
            5,
            Some("GA"),
        ),
        (
            "ga_bacon_precincts_11-3.xml",
            format!("{base}:bacon"),
            "1",
            5,
            Some("GA"),
        ),
    ];
    let mut walks = Vec::new();
    for (file, feed_id, contest, priority, parent) in &files {
        let bytes = votewire_tests::fixture_bytes(&format!("clarity_enr/elex-clarity/{file}"));
        walks.push(clarity_detail_walk(
            std::str::from_utf8(&bytes).unwrap(),
            RACE,
        ));
        let ctx = PayloadContext {
            election_id: ELECTION.into(),
            feed_id: feed_id.clone(),
            mode: FeedMode::Replay,
            source_seq: 1,
            source_version: None,
            fetched_at: 1_604_700_000_000,
            fetch_id: format!("fetch-{file}"),
            source_uri: format!("file://{file}"),
            payload_sha256: format!("{:064}", priority),
            trace_id: None,
            content_type: None,
        };
        let out =
            votewire_transformers::transform("clarity-xml", &bytes, &ctx, &FamilyInputs::default())
                .unwrap();
        let config = ResultsConfig {
            contests: [(contest.to_string(), SHARED.to_string())].into(),
            parent: parent.map(str::to_string),
            ..ResultsConfig::default()
        };
        let mut facts = FetchFacts::for_payload(&ctx, "clarity-xml", bytes.len());
        facts.result_links = Some(Arc::new(ResultLinker::new(config, *priority)));
        pipeline
            .publisher
            .publish_accepted(&out.cells, &mut PublishedCells::default(), &facts)
            .await
            .unwrap();
    }
    member_until_idle(
        &pipeline,
        &unique("agg-group"),
        Duration::from_secs(2),
        async { Vec::new() },
    )
    .await;
    let results = compacted(&results_of(
        &pipeline.kafka,
        &pipeline.topics.results,
        PARTITIONS,
    ));
    let unit = |id: &str| {
        results
            .get(&format!("{ELECTION}/{SHARED}/{id}"))
            .unwrap_or_else(|| panic!("no merged result for {id}"))
    };
    let votes_of = |r: &votewire_schemas::ContestResult, choice: &str| {
        r.choices
            .iter()
            .find(|c| c.choice_name == choice)
            .unwrap_or_else(|| panic!("{}: no {choice}", r.unit_id))
            .clone()
    };
    let (state_agg, state_counties) = &walks[0];
    let candidates: Vec<&String> = state_agg.keys().collect();
    assert!(candidates.len() >= 3, "{candidates:?}");

    // The state: reported by the state site, and the sum of its counties
    // (each county's official value: the state site's).
    let ga = unit("GA");
    assert_eq!(ga.unit_type, UnitType::State);
    assert_eq!(ga.official_feed_id, files[0].1);
    for name in &candidates {
        let c = votes_of(ga, name);
        let counties: i64 = state_counties
            .iter()
            .filter(|((_, ch), _)| ch == *name)
            .map(|(_, v)| v)
            .sum();
        assert_eq!(c.reported, Some(state_agg[*name]), "{name}");
        assert_eq!(c.votes, state_agg[*name]);
        assert_eq!(c.sum_of_children, Some(counties), "{name}");
    }

    // Each county site's county: official from the state site (priority
    // 10), the county site's own value beside it, its precincts summed.
    let mut counties_disagreeing = 0;
    for (i, county) in [(1, "Atkinson"), (2, "Bacon")] {
        let (site_agg, precincts) = &walks[i];
        // Units of a merged contest are paths: a name alone repeats
        // (Bacon County's one precinct is "Douglas", like Douglas County).
        let r = unit(&format!("GA/{county}"));
        assert_eq!(r.official_feed_id, files[0].1, "{county}");
        assert_eq!(r.parent_unit_id.as_deref(), Some("GA"));
        let mut disagree = false;
        for name in &candidates {
            let c = votes_of(r, name);
            let from_state = state_counties[&(county.to_string(), name.to_string())];
            let from_site = site_agg[*name];
            let summed: i64 = precincts
                .iter()
                .filter(|((_, ch), _)| ch == *name)
                .map(|(_, v)| v)
                .sum();
            assert_eq!(
                c.votes, from_state,
                "{county} {name}: the state site is official"
            );
            assert_eq!(c.sum_of_children, Some(summed), "{county} {name}");
            let by: BTreeMap<&str, i64> = c
                .by_source
                .iter()
                .map(|s| (s.feed_id.as_str(), s.votes))
                .collect();
            assert_eq!(by.get(files[0].1.as_str()), Some(&from_state));
            assert_eq!(by.get(files[i].1.as_str()), Some(&from_site));
            disagree |= from_state != summed;
        }
        assert_eq!(r.aggregates_disagree, disagree, "{county}");
        counties_disagreeing += usize::from(disagree);
        // Its precincts, from the county site alone.
        for ((precinct, name), v) in precincts {
            if !candidates.contains(&name) {
                continue;
            }
            let p = unit(&format!("GA/{county}/{precinct}"));
            assert_eq!(p.official_feed_id, files[i].1);
            assert_eq!(p.parent_unit_id, Some(format!("GA/{county}")));
            assert_eq!(votes_of(p, name).votes, *v, "{precinct} {name}");
        }
    }
    // Atkinson's precincts do not add up to its reported totals (FORMATS.md
    // §1.2): the merged result says so rather than recomputing either.
    assert!(counties_disagreeing >= 1, "a real disagreeing aggregate");
    // A county only the state site reports has only the state site's value.
    let appling = unit("GA/Appling");
    assert!(
        appling
            .choices
            .iter()
            .all(|c| c.by_source.len() == 1 && c.sum_of_children.is_none())
    );
}
