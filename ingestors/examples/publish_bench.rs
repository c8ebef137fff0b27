//! Publish throughput and fetch-to-ack latency against the local broker
//! (`bench/publish.sh` runs it with the stack's environment):
//!
//! 1. **Throughput**: every cell of a payload through
//!    `Publisher::publish_accepted` (encode, key, partition, headers, wait
//!    for every delivery report, then the manifest), against a raw rdkafka
//!    `FutureProducer` sending the same number of records of the same key
//!    and value sizes to a topic with the same partitions, with the same
//!    producer settings, awaiting every delivery. Runs alternate, so both
//!    see the same broker.
//! 2. **Fetch-complete to all cells acked**, per payload size: transform
//!    plus publish of a payload already in memory, every cell new each time.
//! 3. **Transactions**: the same records sent by an idempotent producer
//!    (today's publish, every delivery awaited) and by a transactional one
//!    (begin, send, commit: what publishing a payload's cells and manifest
//!    atomically would cost), alternating, for the large payload and for a
//!    small one (300 cells, a county page's worth).
//!
//! ```text
//! cargo run --release -p votewire-ingestors --example publish_bench -- [RUNS]
//! ```

use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use votewire_core::VotewireConfig;
use votewire_core::config::TopicsConfig;
use votewire_core::kafka::producer_config;
use votewire_core::topics::{TopicSpec, ensure_topics};
use votewire_ingestors::publish::{FetchFacts, PublishedCells, Publisher, contest_partition};
use votewire_schemas::codec;
use votewire_transformers::{FamilyInputs, PayloadContext, transform};

const PARTITIONS: i32 = 6;

fn fixture(relative: &str) -> Vec<u8> {
    let base = std::env::var("VOTEWIRE_FIXTURES").unwrap_or_else(|_| "../shared/fixtures".into());
    let path = format!("{base}/{relative}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path} is missing: {e}"))
}

fn ctx(feed: &str, seq: i64, sha: &str) -> PayloadContext {
    PayloadContext {
        election_id: "bench".into(),
        feed_id: feed.into(),
        mode: votewire_schemas::FeedMode::Replay,
        source_seq: seq,
        source_version: None,
        fetched_at: 0,
        fetch_id: format!("{feed}:{seq}"),
        source_uri: "bench".into(),
        payload_sha256: sha.into(),
        trace_id: None,
        content_type: None,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What every measurement shares: the configuration, the bench's topics,
/// one producer and the publisher built on it.
struct Bench {
    config: VotewireConfig,
    raw_topic: String,
    producer: FutureProducer<votewire_core::kafka::KafkaClientContext>,
    publisher: Publisher,
}

/// Creates the bench's topics and its producer and publisher.
async fn setup() -> Bench {
    let config = VotewireConfig::load(None).expect("configuration from VOTEWIRE_… variables");
    let run = format!("pubbench{}", std::process::id());
    let topics = TopicsConfig {
        votes: format!("{run}.votes"),
        snapshots: format!("{run}.snapshots"),
        dlq: format!("{run}.dlq"),
        feed_status: format!("{run}.status"),
        ..TopicsConfig::default()
    };
    let raw_topic = format!("{run}.raw");
    let rf = config.topics.replication_factor;
    let spec = |name: &str, partitions| TopicSpec::new(name, partitions, rf, "delete");
    ensure_topics(
        &config.kafka,
        &[
            spec(&topics.votes, PARTITIONS),
            spec(&raw_topic, PARTITIONS),
            spec(&topics.snapshots, 1),
        ],
    )
    .await
    .expect("creating bench topics");
    let producer: FutureProducer<votewire_core::kafka::KafkaClientContext> =
        producer_config(&config.kafka, "publish-bench")
            .create_with_context(votewire_core::kafka::KafkaClientContext::default())
            .expect("producer");
    let publisher = Publisher {
        producer: producer.clone(),
        topics: topics.clone(),
        schemas: votewire_schemas::schemas().clone(),
        vote_partitions: PARTITIONS,
        delivery_timeout: Duration::from_secs(60),
        renewal: None,
    };
    Bench {
        config,
        raw_topic,
        producer,
        publisher,
    }
}

/// The raw records of the GA 2018 primary (51,444 cells) and the headers
/// each votewire record carries: the baselines' inputs.
struct RawRecords {
    raw: Vec<(i32, String, Vec<u8>)>,
    same_headers: OwnedHeaders,
}

/// Throughput (the first measurement): votewire's publish against raw
/// rdkafka sends of the same records, with and without the same headers,
/// alternating.
async fn throughput(bench: &Bench, xml: &[u8], runs: usize) -> RawRecords {
    let Bench {
        raw_topic,
        producer,
        publisher,
        ..
    } = bench;
    let out = transform(
        "clarity-xml",
        xml,
        &ctx("bench:ga", 1, "00"),
        &FamilyInputs::default(),
    )
    .expect("the fixture parses");
    let table = out.cells;
    let schema_id = publisher.schemas.vote_cell.id;
    // The raw records: the same keys and encoded values, prepared up front.
    let raw: Vec<(i32, String, Vec<u8>)> = (0..table.len())
        .map(|i| {
            let cell = table.cell(i);
            let mut v = Vec::with_capacity(256);
            codec::encode_vote_cell(&cell, schema_id, &mut v);
            let p = contest_partition("bench", &cell.contest.source_id, PARTITIONS);
            (p, table.cell_key(i).to_hex(), v)
        })
        .collect();
    let bytes: usize = raw.iter().map(|(_, k, v)| k.len() + v.len()).sum();
    println!(
        "throughput: {} records per run, {:.1} MB of keys+values, {PARTITIONS} partitions, {runs} alternating runs",
        raw.len(),
        bytes as f64 / 1e6
    );
    // The headers every votewire record carries, with the same sizes: the
    // "same-sized messages" baseline sends them too.
    let facts0 = FetchFacts::for_payload(&ctx("bench:ga", 1, "00"), "clarity-xml", xml.len());
    let same_headers = OwnedHeaders::new()
        .insert(Header {
            key: "feed_id",
            value: Some(facts0.feed_id.as_str()),
        })
        .insert(Header {
            key: "fetch_id",
            value: Some(facts0.fetch_id.as_str()),
        })
        .insert(Header {
            key: "payload_sha256",
            value: Some(facts0.payload_sha256.as_str()),
        })
        .insert(Header {
            key: "schema_id",
            value: Some("1"),
        });
    let (mut ours, mut theirs, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..runs {
        for (with_headers, times) in [(false, &mut bare), (true, &mut theirs)] {
            let t = Instant::now();
            let futures = raw.iter().map(|(p, k, v)| {
                let mut rec = FutureRecord::to(raw_topic)
                    .partition(*p)
                    .key(k.as_str())
                    .payload(v.as_slice());
                if with_headers {
                    rec = rec.headers(same_headers.clone());
                }
                producer.send(rec, Duration::from_secs(60))
            });
            let failed = join_all(futures)
                .await
                .iter()
                .filter(|r| r.is_err())
                .count();
            assert_eq!(failed, 0, "raw deliveries failed");
            times.push(t.elapsed().as_secs_f64());
        }

        let facts = FetchFacts::for_payload(
            &ctx("bench:ga", n as i64 + 1, "00"),
            "clarity-xml",
            xml.len(),
        );
        let t = Instant::now();
        let mut memory = PublishedCells::default();
        let p = publisher
            .publish_accepted(&table, &mut memory, &facts)
            .await
            .expect("publishing");
        assert_eq!(p.cells_changed, table.len());
        ours.push(t.elapsed().as_secs_f64());
    }
    ours.sort_by(f64::total_cmp);
    theirs.sort_by(f64::total_cmp);
    bare.sort_by(f64::total_cmp);
    let rate = |s: f64| raw.len() as f64 / s;
    println!(
        "raw rdkafka, no headers: median {:>8.0} records/s (best {:.0})",
        rate(percentile(&bare, 0.5)),
        rate(bare[0])
    );
    println!(
        "raw rdkafka, same headers: median {:>6.0} records/s (best {:.0})",
        rate(percentile(&theirs, 0.5)),
        rate(theirs[0])
    );
    println!(
        "votewire publish:       median {:>8.0} cells/s   (best {:.0})",
        rate(percentile(&ours, 0.5)),
        rate(ours[0])
    );
    println!(
        "ratio votewire / raw with the same headers: {:.2}; / raw without headers: {:.2} (medians)",
        percentile(&theirs, 0.5) / percentile(&ours, 0.5),
        percentile(&bare, 0.5) / percentile(&ours, 0.5)
    );
    RawRecords { raw, same_headers }
}

/// Fetch-complete -> all cells acked, per payload size (the second
/// measurement).
async fn latency_by_size(publisher: &Publisher, xml: &[u8], runs: usize) {
    let payloads = [
        (
            "csv",
            "PA county CSV (26 KB)",
            fixture("precinct_csv/openelections-data-pa/20201103__pa__general__county.csv"),
        ),
        (
            "clarity-json",
            "GA 2021 ALL.json (1.1 MB)",
            fixture(
                "clarity_enr/GA_107556_runoff_2021_ALLjson_series/135_20210116T000509Z_v275235/ALL.json",
            ),
        ),
        ("clarity-xml", "GA 2018 detail.xml (3.95 MB)", xml.to_vec()),
    ];
    println!("fetch-complete -> all cells acked ({runs} runs each, every cell new):");
    // The PA county file ends without a newline.
    let lenient_csv: toml::Table = toml::toml! { final_newline = "optional" };
    for (family, what, payload) in payloads {
        let inputs = FamilyInputs {
            mapping: (family == "csv").then_some(&lenient_csv),
            ..FamilyInputs::default()
        };
        let mut times = Vec::new();
        let mut cells = 0;
        for n in 0..runs {
            let c = ctx(&format!("bench:{family}"), n as i64 + 1, "00");
            let t = Instant::now();
            let out = match transform(family, &payload, &c, &inputs) {
                Ok(out) => out,
                Err(e) => {
                    println!("  {what}: not measured ({e})");
                    break;
                }
            };
            let facts = FetchFacts::for_payload(&c, family, payload.len());
            let mut memory = PublishedCells::default();
            let p = publisher
                .publish_accepted(&out.cells, &mut memory, &facts)
                .await
                .expect("publishing");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            cells = p.cells_changed;
        }
        if times.is_empty() {
            continue;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {what:<32} {cells:>6} cells  p50 {:>7.1} ms  p99 {:>7.1} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let bench = setup().await;
    let xml = fixture("clarity_enr/openelections-data-ga_raw_xml/20180522__ga__primary.xml");
    let RawRecords { raw, same_headers } = throughput(&bench, &xml, runs).await;
    latency_by_size(&bench.publisher, &xml, runs).await;
    // 3. Transactions against idempotent sends.
    let records: Vec<Record> = raw
        .iter()
        .map(|(p, k, v)| Record {
            partition: *p,
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    transactions(
        &bench.config,
        &bench.raw_topic,
        &records,
        &same_headers,
        runs,
    )
    .await;
}

/// One record of the throughput table.
struct Record {
    partition: i32,
    key: String,
    value: Vec<u8>,
}

/// Sends `records` with `producer`, awaiting every delivery; inside one
/// transaction when `transactional`. Returns the seconds taken.
async fn send_all(
    producer: &FutureProducer<votewire_core::kafka::KafkaClientContext>,
    topic: &str,
    records: &[Record],
    headers: &OwnedHeaders,
    transactional: bool,
) -> f64 {
    use rdkafka::producer::Producer;
    let t = Instant::now();
    if transactional {
        producer.begin_transaction().expect("begin_transaction");
    }
    let futures = records.iter().map(|r| {
        producer.send(
            FutureRecord::to(topic)
                .partition(r.partition)
                .key(r.key.as_str())
                .payload(r.value.as_slice())
                .headers(headers.clone()),
            Duration::from_secs(60),
        )
    });
    let failed = join_all(futures)
        .await
        .iter()
        .filter(|r| r.is_err())
        .count();
    assert_eq!(failed, 0, "deliveries failed");
    if transactional {
        producer
            .commit_transaction(Duration::from_secs(60))
            .expect("commit_transaction");
    }
    t.elapsed().as_secs_f64()
}

async fn transactions(
    config: &VotewireConfig,
    topic: &str,
    records: &[Record],
    headers: &OwnedHeaders,
    runs: usize,
) {
    use rdkafka::producer::Producer;
    let idempotent: FutureProducer<votewire_core::kafka::KafkaClientContext> =
        producer_config(&config.kafka, "txn-bench-idempotent")
            .create_with_context(votewire_core::kafka::KafkaClientContext::default())
            .expect("producer");
    let mut txn_config = producer_config(&config.kafka, "txn-bench-transactional");
    txn_config.set(
        "transactional.id",
        format!("votewire-txn-bench-{}", std::process::id()),
    );
    let transactional: FutureProducer<votewire_core::kafka::KafkaClientContext> = txn_config
        .create_with_context(votewire_core::kafka::KafkaClientContext::default())
        .expect("transactional producer");
    let t = Instant::now();
    transactional
        .init_transactions(Duration::from_secs(60))
        .expect("init_transactions");
    println!(
        "transactions: init_transactions took {:.0} ms (once per producer)",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Every n-th record: the small payload touches every partition, as a
    // county page's contests do.
    let step = (records.len() / 300).max(1);
    let small: Vec<Record> = records
        .iter()
        .step_by(step)
        .take(300)
        .map(|r| Record {
            partition: r.partition,
            key: r.key.clone(),
            value: r.value.clone(),
        })
        .collect();
    let small = small.as_slice();
    for (what, set, n) in [
        ("large payload", records, runs),
        ("small payload", small, runs * 10),
    ] {
        let (mut plain, mut txn) = (Vec::new(), Vec::new());
        for _ in 0..n {
            plain.push(send_all(&idempotent, topic, set, headers, false).await);
            txn.push(send_all(&transactional, topic, set, headers, true).await);
        }
        plain.sort_by(f64::total_cmp);
        txn.sort_by(f64::total_cmp);
        let (p, t) = (percentile(&plain, 0.5), percentile(&txn, 0.5));
        println!(
            "  {what} ({} records, {n} alternating runs): idempotent p50 {:.1} ms ({:.0} records/s), \
             one transaction p50 {:.1} ms ({:.0} records/s); transaction/idempotent time {:.2}",
            set.len(),
            p * 1e3,
            set.len() as f64 / p,
            t * 1e3,
            set.len() as f64 / t,
            t / p
        );
    }
}
