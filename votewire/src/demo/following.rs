//! Following the night's results: the results topic read on a thread
//! (latest result per key, fetch → result latencies, regressions of a
//! feed's `source_seq`), and the live page's statewide answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rdkafka::Offset;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Headers, Message};
use votewire_core::config::VotewireConfig;
use votewire_core::kafka::KafkaClientContext;
use votewire_schemas::{ContestResult, DeadLetter, UnitType, codec, schemas};

use super::oracle::{Choice, CountyVotes, Race};
use super::{CSV_FEED, ELECTION, TX_ELECTION, TX_FEED};

/// A statewide result as it came off the results topic.
#[derive(Debug, Clone)]
pub(super) struct StatewideEvent {
    pub(super) contest_id: String,
    /// The record's timestamp (wall ms).
    pub(super) at: i64,
    /// The newest fetch behind it (wall ms).
    pub(super) fetched: i64,
}

/// Recovery from a fault that ended at `over` (wall ms): how long until
/// the first statewide result from a payload fetched after it was
/// produced, that is, until the pipeline ran end to end again (`only`:
/// of the contests whose id starts with it).
pub(super) fn first_result_after(events: &[StatewideEvent], over: i64, only: &str) -> Option<i64> {
    events
        .iter()
        .filter(|e| e.contest_id.starts_with(only) && e.fetched >= over)
        .map(|e| e.at - over)
        .min()
}

/// The results topic as read so far: the latest result per key, and
/// fetch → result latencies (record time minus the newest fetch behind
/// the result).
#[derive(Default)]
pub(super) struct ResultsSeen {
    pub(super) latest: BTreeMap<Vec<u8>, ContestResult>,
    pub(super) latencies_ms: Vec<i64>,
    /// The same, per official source.
    pub(super) latencies_by_source: BTreeMap<String, Vec<i64>>,
    /// Per key and contributing feed: the newest `source_seq` seen.
    pub(super) seqs: BTreeMap<(Vec<u8>, String), i64>,
    /// Results that went back to an older `source_seq` of a feed.
    pub(super) regressions: Vec<String>,
    /// Statewide results as they came: (contest, record time, newest fetch).
    pub(super) statewide_events: Vec<StatewideEvent>,
}

impl ResultsSeen {
    /// The CSV feed's county results, shaped like [`csv_by_county`].
    pub(super) fn csv_counties(&self) -> CountyVotes {
        self.latest
            .values()
            .filter(|r| r.official_feed_id == CSV_FEED && r.unit_type == UnitType::County)
            .map(|r| {
                let contest = r
                    .contest_id
                    .strip_prefix(&format!("{CSV_FEED}/"))
                    .unwrap_or(&r.contest_id)
                    .to_string();
                let choices = r
                    .choices
                    .iter()
                    .map(|c| (c.choice_id.clone(), c.votes))
                    .collect();
                ((contest, r.unit_id.clone()), choices)
            })
            .collect()
    }

    /// Every source's statewide result per race.
    pub(super) fn statewide(&self) -> Vec<Race> {
        let mut out: Vec<Race> = self
            .latest
            .values()
            .filter(|r| {
                r.unit_type == UnitType::State
                    && (r.election_id == ELECTION || r.election_id == TX_ELECTION)
            })
            .map(|r| {
                let contest = r
                    .contest_id
                    .strip_prefix(&format!("{}/", r.official_feed_id))
                    .unwrap_or(&r.contest_id)
                    .to_string();
                let mut choices: Vec<Choice> = r
                    .choices
                    .iter()
                    .map(|c| Choice {
                        choice_source_id: c.choice_id.clone(),
                        choice_name: c.choice_name.clone(),
                        votes: c.votes,
                    })
                    .collect();
                choices.sort_by(|a, b| a.choice_source_id.cmp(&b.choice_source_id));
                Race {
                    source_feed_id: r.official_feed_id.clone(),
                    contest_source_id: contest,
                    unit: "state".into(),
                    choices,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.source_feed_id, &a.contest_source_id)
                .cmp(&(&b.source_feed_id, &b.contest_source_id))
        });
        out
    }
}

/// Follows the results topic on a thread until `stop`.
pub(super) fn follow_results(
    config: &VotewireConfig,
    seen: Arc<std::sync::Mutex<ResultsSeen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let topic = config.topics.results.clone();
    let consumer: BaseConsumer<KafkaClientContext> =
        votewire_core::kafka::consumer_config(&config.kafka, "demo-results", "votewire-demo")
            .create_with_context(KafkaClientContext::default())?;
    votewire_core::kafka::assign_all_partitions(
        &consumer,
        &topic,
        Offset::Beginning,
        Duration::from_secs(10),
    )?;
    Ok(std::thread::spawn(move || {
        let schema = &schemas().contest_result;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let (Some(key), Some(bytes)) = (m.key(), m.payload()) else {
                continue;
            };
            let Ok(r) = codec::decode::<ContestResult>(schema, bytes) else {
                continue;
            };
            let mut seen = seen.lock().expect("results lock");
            for c in &r.contributors {
                let k = (key.to_vec(), c.feed_id.clone());
                match seen.seqs.get(&k).copied() {
                    Some(before) if c.source_seq < before => {
                        let what = format!(
                            "{} / {}: {} went from source_seq {before} back to {}",
                            r.contest_id, r.unit_id, c.feed_id, c.source_seq
                        );
                        seen.regressions.push(what);
                    }
                    _ => {
                        seen.seqs.insert(k, c.source_seq);
                    }
                }
            }
            if let Some(ts) = m.timestamp().to_millis() {
                if r.unit_type == UnitType::State {
                    seen.statewide_events.push(StatewideEvent {
                        contest_id: r.contest_id.clone(),
                        at: ts,
                        fetched: r.last_updated,
                    });
                }
                seen.latencies_ms.push(ts - r.last_updated);
                seen.latencies_by_source
                    .entry(r.official_feed_id.clone())
                    .or_default()
                    .push(ts - r.last_updated);
            }
            seen.latest.insert(key.to_vec(), r);
        }
    }))
}

pub(super) fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p).div_ceil(100).saturating_sub(1)]
}

/// Statewide votes per (contest id, choice id) as `/live/contests` serves
/// them, to know when the page's source has caught up.
pub(super) async fn live_statewide(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<BTreeMap<(String, String), i64>> {
    let body: serde_json::Value = client
        .get(format!("{base}/live/contests?election={ELECTION}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut out = BTreeMap::new();
    for c in body["contests"].as_array().context("contests")? {
        let id = c["contest_id"].as_str().unwrap_or_default().to_string();
        for ch in c["state"]["choices"].as_array().into_iter().flatten() {
            out.insert(
                (
                    id.clone(),
                    ch["choice_id"].as_str().unwrap_or_default().to_string(),
                ),
                ch["votes"].as_i64().unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

pub(super) fn statewide_votes(races: &[Race]) -> BTreeMap<(String, String), i64> {
    races
        .iter()
        .filter(|r| r.source_feed_id != TX_FEED)
        .flat_map(|r| {
            r.choices.iter().map(move |c| {
                (
                    (
                        format!("{}/{}", r.source_feed_id, r.contest_source_id),
                        c.choice_source_id.clone(),
                    ),
                    c.votes,
                )
            })
        })
        .collect()
}

/// What the night's topics hold so far: the cells published (records on
/// the votes topic, per feed and per ingestor) and the payloads rejected
/// (the ingestors' dead letters; an aggregator's own, of family
/// `vote-cell` or `rollup`, are not payloads).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PublishedCounts {
    pub(super) cells: u64,
    pub(super) rejected: u64,
    pub(super) cells_by_feed: BTreeMap<String, u64>,
    /// One ingestor runs at a time (a killed one is replaced once it has
    /// exited): a record is the one's that started last before the
    /// record's timestamp.
    pub(super) cells_by_ingestor: BTreeMap<String, u64>,
    /// Each ingestor and when it started (wall ms), in order.
    pub(super) ingestors: Vec<(i64, String)>,
}

impl PublishedCounts {
    /// Notes that `instance` starts now.
    pub(super) fn ingestor_starts(&mut self, instance: &str) {
        self.ingestors
            .push((votewire_core::unix_ms(), instance.to_string()));
    }
}

/// Counts the night's votes and dead-letter topics from their beginning,
/// on a thread each, until `stop`.
pub(super) fn follow_counts(
    config: &VotewireConfig,
    counts: Arc<Mutex<PublishedCounts>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::new();
    for (topic, votes) in [(&config.topics.votes, true), (&config.topics.dlq, false)] {
        let consumer: BaseConsumer<KafkaClientContext> =
            votewire_core::kafka::consumer_config(&config.kafka, "demo-counts", "votewire-demo")
                .create_with_context(KafkaClientContext::default())?;
        votewire_core::kafka::assign_all_partitions(
            &consumer,
            topic,
            Offset::Beginning,
            Duration::from_secs(10),
        )?;
        let (counts, stop) = (counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
                    continue;
                };
                let mut c = counts.lock().expect("counts lock");
                if votes {
                    let feed = m
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == "feed_id"))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    let at = m.timestamp().to_millis().unwrap_or(0);
                    let by = c
                        .ingestors
                        .iter()
                        .rev()
                        .find(|(started, _)| *started <= at)
                        .map(|(_, name)| name.clone())
                        .unwrap_or_default();
                    c.cells += 1;
                    *c.cells_by_feed.entry(feed).or_default() += 1;
                    *c.cells_by_ingestor.entry(by).or_default() += 1;
                } else if let Some(bytes) = m.payload()
                    && let Ok(letter) = codec::decode::<DeadLetter>(&schemas().dead_letter, bytes)
                    && letter.family != "vote-cell"
                    && letter.family != "rollup"
                {
                    c.rejected += 1;
                }
            }
        }));
    }
    Ok(threads)
}

/// Waits until the counts have stood still for a second (ten at most):
/// the topics' last records are counted before the followers stop.
pub(super) async fn counts_settle(counts: &Mutex<PublishedCounts>) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = counts.lock().expect("counts lock").clone();
    while std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counts.lock().expect("counts lock").clone();
        if now == last {
            return;
        }
        last = now;
    }
}
