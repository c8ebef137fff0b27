//! The spine's smoke pipeline against the real broker: a real fixture served
//! over real HTTP, fetched, produced with the idempotent producer (acks=all),
//! consumed in a consumer group, bytes and headers compared.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};
use votewire_core::kafka;
use votewire_core::topics::{self, TopicSpec};
use votewire_ingestors::http::{FetchLimits, client, fetch_capped};
use votewire_tests::http::{Canned, FixtureServer};
use votewire_tests::{Stack, fixture_bytes, unique};

const FIXTURE: &str =
    "clarity_enr/GA_107556_runoff_2021_ALLjson_series/000_20210105T224741Z_v273729/ALL.json";

#[tokio::test]
async fn a_fetched_fixture_round_trips_through_kafka_with_bytes_and_headers_intact() {
    let stack = Stack::load();
    let kafka_cfg = stack.kafka();
    let original = fixture_bytes(FIXTURE);

    let server = FixtureServer::start().await;
    server.set(
        "/GA/107556/273729/json/ALL.json",
        Canned::ok(original.clone()).header("etag", "\"v273729\""),
    );
    let limits = FetchLimits::default();
    let fetched = fetch_capped(
        &client(&limits).unwrap(),
        &server.url("/GA/107556/273729/json/ALL.json"),
        &limits,
    )
    .await
    .expect("fetch from the local HTTP server");
    assert_eq!(fetched.bytes.as_ref(), original.as_slice());
    assert_eq!(fetched.sha256, hex::encode(Sha256::digest(&original)));
    assert_eq!(fetched.etag.as_deref(), Some("\"v273729\""));

    let topic = unique("smoke");
    topics::ensure_topics(
        &kafka_cfg,
        &[TopicSpec::new(
            &topic,
            3,
            stack.replication_factor(),
            "delete",
        )],
    )
    .await
    .expect("create the test topic");

    let producer: FutureProducer = kafka::producer_config(&kafka_cfg, "test").create().unwrap();
    let fetch_id = unique("fetch");
    let binary_header: &[u8] = &[0, 159, 255];
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "feed_id",
            value: Some("clarity:GA:107556"),
        })
        .insert(Header {
            key: "fetch_id",
            value: Some(fetch_id.as_str()),
        })
        .insert(Header {
            key: "payload_sha256",
            value: Some(fetched.sha256.as_str()),
        })
        .insert(Header {
            key: "raw",
            value: Some(binary_header),
        });
    let (partition, offset) = producer
        .send(
            FutureRecord::to(&topic)
                .key("cell-key")
                .payload(fetched.bytes.as_ref())
                .headers(headers),
            Duration::from_secs(20),
        )
        .await
        .map(|d| (d.partition, d.offset))
        .expect("delivery report for an acks=all produce");

    let group = unique("smoke-group");
    let consumer: StreamConsumer = kafka::consumer_config(&kafka_cfg, "test", &group)
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a record within 30 s")
        .expect("consume without error");
    assert_eq!((msg.partition(), msg.offset()), (partition, offset));
    assert_eq!(msg.key(), Some(&b"cell-key"[..]));
    assert_eq!(msg.payload(), Some(original.as_slice()));
    let headers = msg.headers().expect("headers survive");
    let got: Vec<(String, Option<Vec<u8>>)> = headers
        .iter()
        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("feed_id".into(), Some(b"clarity:GA:107556".to_vec())),
            ("fetch_id".into(), Some(fetch_id.into_bytes())),
            ("payload_sha256".into(), Some(fetched.sha256.into_bytes())),
            ("raw".into(), Some(binary_header.to_vec())),
        ]
    );
    consumer
        .commit_message(&msg, CommitMode::Sync)
        .expect("the group commits its offset");
    let committed = consumer
        .committed(Duration::from_secs(10))
        .expect("read committed offsets");
    let mine = committed
        .elements()
        .into_iter()
        .find(|e| e.topic() == topic && e.partition() == partition)
        .expect("a committed offset for the partition");
    assert_eq!(mine.offset(), rdkafka::Offset::Offset(offset + 1));
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_buffered() {
    let server = FixtureServer::start().await;
    server.set("/big", Canned::ok(vec![b'x'; 10_000]));
    let limits = FetchLimits {
        max_bytes: 4_096,
        ..FetchLimits::default()
    };
    let err = fetch_capped(&client(&limits).unwrap(), &server.url("/big"), &limits)
        .await
        .expect_err("a body over the cap is an error");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("4096-byte limit"), "{err}");
}
