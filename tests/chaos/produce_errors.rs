//! Scenario 7: produce errors a real broker cannot be made to return on
//! demand, from librdkafka's mock cluster (the one place a mock stands in
//! for the broker). The feed's state is in the real DynamoDB endpoint and
//! its source is a real HTTP server. Whatever the broker answers, a payload
//! whose cells were not all acknowledged leaves the cursor and `source_seq`
//! where they were, and the next poll publishes it.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use votewire_ingestors::feed_tools::FeedTools;
use votewire_ingestors::health::HealthMachine;
use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::live_feed::LiveFeed;
use votewire_ingestors::publish::{ProducerRenewal, Publisher};
use votewire_ingestors::state::FeedStateStore;
use votewire_tests::http::{Canned, FixtureServer};
use votewire_tests::pipeline::{PA_COUNTY_CSV, TestPipeline, http_source, pa_csv_feed};
use votewire_tests::{fixture_bytes, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_and_request_timeouts_leave_the_cursor_where_it_was() {
    // The state store and the topic names of a real pipeline; the broker
    // is the mock cluster.
    let pipeline = TestPipeline::start("chaos-produce", 2).await;
    let mock = MockCluster::new(1).unwrap();
    let topics = pipeline.topics.clone();
    for (t, partitions) in [
        (&topics.votes, 2),
        (&topics.snapshots, 1),
        (&topics.dlq, 1),
        (&topics.feed_status, 1),
    ] {
        mock.create_topic(t, partitions, 1).unwrap();
    }
    let mut kafka = pipeline.kafka.clone();
    kafka.bootstrap_servers = mock.bootstrap_servers();
    // Short timeouts, so that each failure arrives within seconds.
    kafka
        .properties
        .insert("message.timeout.ms".into(), "3000".into());
    kafka
        .properties
        .insert("request.timeout.ms".into(), "1000".into());
    let settings = votewire_core::kafka::producer_config(&kafka, "chaos-produce");
    let publisher = Publisher {
        producer: settings
            .create_with_context(votewire_core::kafka::KafkaClientContext::default())
            .unwrap(),
        topics: topics.clone(),
        schemas: votewire_schemas::schemas().clone(),
        vote_partitions: 2,
        delivery_timeout: Duration::from_secs(10),
        renewal: Some(ProducerRenewal::new(settings)),
    };

    let server = FixtureServer::start().await;
    server.set(
        "/pa.csv",
        Canned::ok(fixture_bytes(PA_COUNTY_CSV)).header("etag", "\"v1\""),
    );
    let feed_id = unique("csv:chaos");
    let state = &pipeline.state;
    let lease = pipeline.lease(&feed_id).await;
    let spec = pa_csv_feed(&feed_id, http_source(server.url("/pa.csv")));
    let tools = FeedTools::new(client(&FetchLimits::default()).unwrap(), 4, None, 4);
    let mut feed = LiveFeed::resume(
        state,
        spec,
        "ingestor-a",
        HealthMachine::new(100, 3_600_000),
    )
    .await
    .unwrap();
    let unmoved = |what: &'static str| {
        let feed_id = feed_id.clone();
        async move {
            let row = state.load(&feed_id).await.unwrap();
            let (seq, etag) = row.map_or((0, None), |r| (r.source_seq, r.cursor.etag));
            assert_eq!((seq, etag), (0, None), "{what}: the cursor did not move");
        }
    };

    // NOT_ENOUGH_REPLICAS on every produce: retried until the message
    // timeout, then the payload fails; three payloads failed in full and a
    // new producer takes over (it fails the same way here: the broker, not
    // the producer, is at fault).
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 5000],
    );
    let renewals = || publisher.renewal.as_ref().unwrap().renewals();
    for (attempt, now) in [2_000, 2_100, 2_200].into_iter().enumerate() {
        assert_eq!(renewals(), 0, "attempt {attempt}");
        let failed = feed.step(&tools, &publisher, state, &lease, now).await;
        assert!(failed.is_err(), "NOT_ENOUGH_REPLICAS: {failed:?}");
        unmoved("NOT_ENOUGH_REPLICAS").await;
    }
    assert_eq!(renewals(), 1, "a new producer after three full failures");
    mock.clear_request_errors(RDKafkaApiKey::Produce);

    // The broker answers later than the request timeout: every produce
    // request times out.
    mock.broker_round_trip_time(1, Duration::from_secs(5))
        .unwrap();
    let started = std::time::Instant::now();
    let timed_out = feed.step(&tools, &publisher, state, &lease, 3_000).await;
    assert!(timed_out.is_err(), "request timeouts: {timed_out:?}");
    unmoved("request timeout").await;
    eprintln!(
        "chaos: produce request timeouts: the payload failed after {} ms",
        started.elapsed().as_millis()
    );
    mock.broker_round_trip_time(1, Duration::ZERO).unwrap();

    // The broker healthy again: the same payload publishes and commits.
    let recovered = std::time::Instant::now();
    let ok = feed
        .step(&tools, &publisher, state, &lease, 4_000)
        .await
        .expect("the healthy broker takes the payload");
    let published = ok.published.expect("the payload, again, not a 304");
    assert_eq!(published.cells_changed, published.cells_total);
    let row = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(row.source_seq, 1);
    assert_eq!(row.cursor.etag.as_deref(), Some("\"v1\""));
    crate::report(
        "produce errors (mock cluster), first good poll",
        Some(recovered.elapsed().as_millis() as i64),
    );
}
