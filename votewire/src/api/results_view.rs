//! The results topic, materialized: a thread reads every partition of the
//! compacted results topic from the beginning and keeps the latest
//! `ContestResult` per key, grouped by (election, contest). The API reads
//! it; it is ready once every partition has been read to its end once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use votewire_core::config::KafkaConfig;
use votewire_core::kafka::KafkaClientContext;
use votewire_schemas::{ContestResult, codec, schemas};

type ContestUnits = BTreeMap<String, ContestResult>;

/// The latest results, by (election, contest), then unit.
pub struct ResultsView {
    contests: RwLock<HashMap<(String, String), ContestUnits>>,
    /// Record key → where its result is filed (for tombstones).
    keys: RwLock<HashMap<Vec<u8>, (String, String, String)>>,
    /// Per (election, contest): the version of its last change, from one
    /// counter, so a rendered answer can be reused until its contest moves.
    versions: RwLock<HashMap<(String, String), u64>>,
    next_version: AtomicU64,
    caught_up: AtomicBool,
    records: AtomicU64,
    /// Each change's (election, contest), for the live page's streams.
    changes: tokio::sync::broadcast::Sender<(String, String)>,
}

impl Default for ResultsView {
    fn default() -> Self {
        Self {
            contests: RwLock::default(),
            keys: RwLock::default(),
            versions: RwLock::default(),
            next_version: AtomicU64::default(),
            caught_up: AtomicBool::default(),
            records: AtomicU64::default(),
            // A slow stream that falls this far behind resends everything.
            changes: tokio::sync::broadcast::channel(4096).0,
        }
    }
}

impl ResultsView {
    /// Every unit's result of one contest, by unit id.
    pub fn contest(&self, election: &str, contest: &str) -> Option<Vec<ContestResult>> {
        self.contests
            .read()
            .expect("results lock")
            .get(&(election.to_string(), contest.to_string()))
            .map(|units| units.values().cloned().collect())
    }

    /// The version of a contest's last change, if it has results.
    pub fn version(&self, election: &str, contest: &str) -> Option<u64> {
        self.versions
            .read()
            .expect("versions lock")
            .get(&(election.to_string(), contest.to_string()))
            .copied()
    }

    /// Changes from now on, as (election, contest).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(String, String)> {
        self.changes.subscribe()
    }

    fn bump(&self, election: &str, contest: &str) {
        let v = self.next_version.fetch_add(1, Ordering::Relaxed) + 1;
        let id = (election.to_string(), contest.to_string());
        self.versions
            .write()
            .expect("versions lock")
            .insert(id.clone(), v);
        // No live stream open is not an error.
        let _ = self.changes.send(id);
    }

    /// The version of the last change to any contest.
    pub fn last_version(&self) -> u64 {
        self.next_version.load(Ordering::Relaxed)
    }

    /// Every (election, contest) held, sorted.
    pub fn contest_ids(&self) -> Vec<(String, String)> {
        let mut ids: Vec<_> = self
            .contests
            .read()
            .expect("results lock")
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Whether every partition has been read to its end once.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    fn apply(&self, key: &[u8], payload: Option<&[u8]>) {
        self.records.fetch_add(1, Ordering::Relaxed);
        let Some(bytes) = payload else {
            if let Some((e, c, u)) = self.keys.write().expect("keys lock").remove(key)
                && let Some(units) = self
                    .contests
                    .write()
                    .expect("results lock")
                    .get_mut(&(e.clone(), c.clone()))
            {
                units.remove(&u);
                self.bump(&e, &c);
            }
            return;
        };
        let Ok(result) = codec::decode::<ContestResult>(&schemas().contest_result, bytes) else {
            return; // not a ContestResult: nothing this view can serve
        };
        let place = (
            result.election_id.clone(),
            result.contest_id.clone(),
            result.unit_id.clone(),
        );
        self.keys
            .write()
            .expect("keys lock")
            .insert(key.to_vec(), place.clone());
        self.contests
            .write()
            .expect("results lock")
            .entry((place.0.clone(), place.1.clone()))
            .or_default()
            .insert(place.2, result);
        self.bump(&place.0, &place.1);
    }
}

/// Starts the thread that keeps `view` current from `topic`.
pub fn follow(
    kafka: &KafkaConfig,
    topic: &str,
    view: Arc<ResultsView>,
) -> Result<std::thread::JoinHandle<()>, KafkaError> {
    let mut cfg =
        votewire_core::kafka::consumer_config(kafka, "api-results", "votewire-api-results");
    cfg.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<KafkaClientContext> =
        cfg.create_with_context(KafkaClientContext::default())?;
    let partitions = votewire_core::kafka::assign_all_partitions(
        &consumer,
        topic,
        Offset::Beginning,
        Duration::from_secs(10),
    )?;
    if partitions.is_empty() {
        view.caught_up.store(true, Ordering::Relaxed);
    }
    let mut at_end: std::collections::HashSet<i32> = std::collections::HashSet::new();
    let total = partitions.len();
    Ok(std::thread::Builder::new()
        .name("results-view".into())
        .spawn(move || {
            loop {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => view.apply(m.key().unwrap_or_default(), m.payload()),
                    Some(Err(KafkaError::PartitionEOF(p))) => {
                        at_end.insert(p);
                        if at_end.len() >= total {
                            view.caught_up.store(true, Ordering::Relaxed);
                        }
                    }
                    Some(Err(e)) => tracing::warn!("reading results: {e}"),
                    None => {}
                }
            }
        })
        .expect("spawning the results-view thread"))
}
