//! Publisher test data on the real broker: the same feed sends test data
//! before the night (its cells marked `test`, as AP's `test=true` answers
//! are) and then the live night, under the same contest ids. The live
//! results topic must hold the live night alone and the test results
//! topic the test data alone, each equal to the independent walk of its
//! own last snapshot.

use std::time::Duration;

use votewire_aggregator::fleet::FleetConfig;
use votewire_ingestors::publish::PublishedCells;
use votewire_schemas::FeedMode;
use votewire_tests::pipeline::TestPipeline;
use votewire_tests::replay::{
    ReplayAs, ReplayClock, assert_results_equal_walk, compacted, publish_ga_runoff_range,
    results_of,
};
use votewire_tests::unique;

use crate::aggregate::member_with;

const PARTITIONS: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_data_of_a_feed_never_reaches_its_live_results_and_has_its_own() {
    let pipeline = TestPipeline::start("agg-test-mode", PARTITIONS).await;
    let feed_id = unique("clarity:GA:107556");
    // The morning's test data: the first snapshots of the night, as test.
    let test = publish_ga_runoff_range(
        &pipeline.publisher,
        &mut PublishedCells::default(),
        &feed_id,
        0..12,
        1,
        Duration::ZERO,
        ReplayAs {
            clock: ReplayClock::Wall,
            mode: FeedMode::Test,
        },
    )
    .await;
    // Then the night itself, live, with later sequence numbers.
    let live = publish_ga_runoff_range(
        &pipeline.publisher,
        &mut PublishedCells::default(),
        &feed_id,
        0..137,
        100,
        Duration::ZERO,
        ReplayAs {
            clock: ReplayClock::Wall,
            mode: FeedMode::Live,
        },
    )
    .await;
    let (test_last, live_last) = (test.last().unwrap(), live.last().unwrap());
    assert_ne!(
        test_last.walk, live_last.walk,
        "the test data's counts differ from the night's end"
    );

    let cfg = FleetConfig::new(&unique("agg-test-mode-group"), "it-agg-test-mode");
    let (totals, _, ()) = member_with(
        &pipeline.kafka,
        &pipeline.topics,
        cfg,
        Duration::from_secs(2),
        async {},
    )
    .await;
    let cells: usize = test.iter().chain(&live).map(|a| a.cells_changed).sum();
    assert_eq!(totals.cells as usize, cells, "every cell consumed once");

    let live_records = results_of(&pipeline.kafka, &pipeline.topics.results, PARTITIONS);
    assert!(
        live_records.iter().all(|(_, r)| r.mode == FeedMode::Live),
        "only the night's results on the live topic"
    );
    assert_results_equal_walk(&compacted(&live_records), &feed_id, live_last);

    let test_records = results_of(&pipeline.kafka, &pipeline.topics.results_test, PARTITIONS);
    assert!(
        !test_records.is_empty() && test_records.iter().all(|(_, r)| r.mode == FeedMode::Test),
        "the test data's results, all marked test, on the test topic"
    );
    let test_state = compacted(&test_records);
    assert_results_equal_walk(&test_state, &feed_id, test_last);
    assert_eq!(
        test_state.len(),
        compacted(&live_records).len(),
        "the same contests and units, apart"
    );
}
