//! Scenarios 1, 2 and 6: processes killed with SIGKILL, and sources that
//! misbehave; the demo injects these itself (`--chaos`).

use crate::{replay, report};

/// 1. `kill -9` the ingestor at 40% of the night; a new one starts a
///    second later and takes the feeds over once their leases (3 s) lapse.
#[test]
fn an_ingestor_killed_mid_night_loses_and_doubles_nothing() {
    let run = replay(&["--chaos", "kill-ingestor"], &[], || {});
    assert!(
        run.stderr.contains("chaos: KillIngestor injected"),
        "{}",
        run.stderr
    );
    // The second ingestor took the feeds over and published cells.
    let published: u64 = run
        .stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("votewire demo: demo-ingest-2 published ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("the restarted ingestor's count:\n{}", run.stderr));
    assert!(published > 0, "the restarted ingestor published nothing");
    assert!(
        run.log_text("demo-ingest-2").contains("leased"),
        "it took the leases over"
    );
    run.report_measured("kill -9 ingestor", run.recovery_ms());
}

/// 2. Two aggregators share the group; `kill -9` one at 40% of the night,
///    and a new one joins a second later.
#[test]
fn an_aggregator_killed_mid_night_loses_and_doubles_nothing() {
    let run = replay(&["--chaos", "kill-aggregator"], &[], || {});
    assert!(
        run.stderr.contains("chaos: KillAggregator injected"),
        "{}",
        run.stderr
    );
    // The new member took partitions and rolled cells up: its summary
    // line counts them.
    let joined = run.log_text("demo-aggregate-3");
    let cells: u64 = joined
        .lines()
        .find_map(|l| {
            l.split(" batches, ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("the new member's summary:\n{joined}"));
    assert!(cells > 0, "the new member consumed no cell:\n{joined}");
    run.report_measured("kill -9 aggregator, a new one joins", run.recovery_ms());
}

/// 6. From 40% to 60% of the night: Clarity's version file answers 500 to
///    every other request and its ALL.json is truncated, AP hangs past the client's timeout, the
///    Texas page is an HTML error page, and the first CSV is written
///    slowly in place. Every bad payload is refused; nothing of it
///    reaches the results.
#[test]
fn misbehaving_sources_are_refused_and_the_night_recovers() {
    let run = replay(&["--chaos", "upstream-faults"], &[], || {});
    assert!(
        run.stderr.contains("chaos: UpstreamFaults injected"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the sources behave again"),
        "{}",
        run.stderr
    );
    let ingest = run.log_text("demo-ingest");
    // The fetch failures and the rejected payloads, each as the ingestor
    // classified it.
    assert!(ingest.contains("500"), "Clarity's 500 was seen:\n{ingest}");
    assert!(
        ingest.contains("timed out") || ingest.contains("timeout"),
        "AP's hang timed out:\n{ingest}"
    );
    assert!(
        run.contract["payloads_rejected"].as_u64().unwrap() >= 1,
        "the truncated JSON and the error page were dead-lettered: {}",
        run.contract
    );
    report("misbehaving upstreams", run.recovery_ms());
}
