//! Health transitions end to end: the health machine's transitions are
//! stored (fenced) in DynamoDB and published on the compacted feed-status
//! topic of the real broker, and both read back the same, in order.

use votewire_ingestors::health::{HealthMachine, Observation};
use votewire_ingestors::state::FeedStateStore;
use votewire_ingestors::state::HealthEvent;
use votewire_schemas::{FeedHealth, FeedStatus, codec, schemas};
use votewire_tests::pipeline::{TestPipeline, drain};
use votewire_tests::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_are_stored_and_published_in_order_and_quarantine_holds() {
    let pipeline = TestPipeline::start("status", 1).await;
    let (publisher, state) = (&pipeline.publisher, &pipeline.state);
    let feed = unique("sos:XX");
    let lease = state
        .acquire_lease(&feed, "ingestor-a", 1_000, 600_000)
        .await
        .unwrap()
        .unwrap();

    let mut machine = HealthMachine::new(3, 60_000);
    let observations = [
        Observation::Accepted,
        Observation::Rejected("HTML served as JSON at byte 0".into()),
        Observation::Rejected("truncated at byte 4096".into()),
        Observation::Rejected("truncated at byte 4096".into()),
        Observation::Accepted,
        Observation::Unquarantine,
        Observation::Accepted,
        Observation::Unchanged,
        Observation::Unchanged,
    ];
    for (i, obs) in observations.into_iter().enumerate() {
        // One poll every 40 s: the first Unchanged is 40 s after the last
        // accepted change, the second 80 s, past the 60 s staleness SLO.
        let at = 1_700_000_000_000 + i as i64 * 40_000;
        if let Some(t) = machine.observe(obs, at) {
            let record = machine.status_record(&feed, &t, at, "ingestor-a", None);
            let event = HealthEvent {
                at_ms: at,
                from: Some(t.from.as_str().to_string()),
                to: t.to.as_str().to_string(),
                reason: t.reason.clone(),
                actor: "ingestor-a".into(),
            };
            state
                .record_health(&lease, &event, i64::from(record.consecutive_failures))
                .await
                .unwrap();
            publisher.publish_status(&record).await.unwrap();
        }
    }

    // Expected, from the rules in GUIDE §3 (the machine starts healthy):
    // the first rejection fails the feed, the third quarantines it, an
    // accepted payload does not lift quarantine (nor count as a change),
    // the operator does, and unchanged polls go unchanged, then stale.
    let expected = [
        (FeedHealth::Healthy, FeedHealth::Failing),
        (FeedHealth::Failing, FeedHealth::Quarantined),
        (FeedHealth::Quarantined, FeedHealth::Healthy),
        (FeedHealth::Healthy, FeedHealth::Unchanged),
        (FeedHealth::Unchanged, FeedHealth::Stale),
    ];

    let mut published: Vec<FeedStatus> = Vec::new();
    for (_, key, value, _) in drain(&pipeline.kafka, &pipeline.topics.feed_status, 1) {
        assert_eq!(key, feed.as_bytes(), "keyed by feed");
        published.push(codec::decode(&schemas().feed_status, &value).unwrap());
    }
    let got: Vec<(FeedHealth, FeedHealth)> = published
        .iter()
        .map(|s| (s.from_state.unwrap(), s.to_state))
        .collect();
    assert_eq!(got, expected);
    assert!(
        published[1]
            .reason
            .contains("3 consecutive rejected payloads")
    );
    assert_eq!(published[1].consecutive_failures, 3);

    // The state keeper holds the same history, newest first.
    let (history, _) = state.history(&feed, 20, None).await.unwrap();
    let stored: Vec<(String, String)> = history
        .iter()
        .rev()
        .map(|e| (e.from.clone().unwrap(), e.to.clone()))
        .collect();
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(f, t)| (f.as_str().to_string(), t.as_str().to_string()))
        .collect();
    assert_eq!(stored, want);
    let row = state.load(&feed).await.unwrap().unwrap();
    assert_eq!(row.health, "stale");
}
