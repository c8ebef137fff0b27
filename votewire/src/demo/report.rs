//! What the demo prints at the end: fetch → result latency per source,
//! each source's final statewide results, where the night's results stay
//! and how to read them; under `--check`, the comparison with the
//! independent computation, the services' log tails when it fails, and
//! the JSON line external checks read.

use std::process::ExitCode;
use std::sync::Mutex;

use votewire_core::config::VotewireConfig;

use super::following::{PublishedCounts, ResultsSeen, first_result_after, percentile};
use super::services::Launcher;
use super::{CSV_FEED, DemoArgs, FaultTimes, NightPlan};

/// Prints the night's outcome; under `--check`, fails on any difference
/// from the independent computation or any regressed result.
pub(super) fn report(
    args: &DemoArgs,
    plan: &NightPlan,
    seen: &Mutex<ResultsSeen>,
    fault: FaultTimes,
    counts: &PublishedCounts,
    launcher: &Launcher,
) -> anyhow::Result<ExitCode> {
    let (races, counties, mut latencies, by_source, regressions, events) = {
        let s = seen.lock().expect("results lock");
        (
            s.statewide(),
            s.csv_counties(),
            s.latencies_ms.clone(),
            s.latencies_by_source.clone(),
            s.regressions.clone(),
            s.statewide_events.clone(),
        )
    };
    let external = args
        .fault_cleared_file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| t.trim().parse::<i64>().ok());
    let label = args
        .chaos
        .map_or_else(|| "external fault".to_string(), |c| format!("{c:?}"));
    if let Some(over) = fault.cleared.or(external) {
        let recovery = first_result_after(&events, over, "");
        // The CSV's first statewide result from a file fetched after it.
        let csv = first_result_after(&events, over, CSV_FEED);
        let ms = |v: Option<i64>| v.map_or_else(|| "none".to_string(), |ms| ms.to_string());
        eprintln!(
            "votewire demo: chaos: {label} recovery_ms={} csv_ms={}",
            ms(recovery),
            ms(csv)
        );
    }
    latencies.sort_unstable();
    println!("Fetch -> result latency, per source (every result at every unit):");
    for (source, mut ms) in by_source {
        ms.sort_unstable();
        println!(
            "  {source:<28} {:>6} results  p50 {:>5} ms  p99 {:>5} ms",
            ms.len(),
            percentile(&ms, 50),
            percentile(&ms, 99)
        );
    }
    println!("Final statewide results, as each source reported them:");
    for r in &races {
        println!("  {} / {}", r.source_feed_id, r.contest_source_id);
        for c in &r.choices {
            println!("      {:<40} {:>10}", c.choice_name, c.votes);
        }
    }
    let expected_counties = &plan.expected_counties;
    if plan.sftp.is_some() {
        let equal = expected_counties
            .iter()
            .filter(|(k, v)| counties.get(*k) == Some(*v))
            .count();
        println!(
            "{CSV_FEED} (dropped over SFTP): {equal} of {} (contest, county) results equal the file's own sums",
            expected_counties.len()
        );
    }
    print_where_the_results_are(&plan.config);
    for r in regressions.iter().take(10) {
        eprintln!("votewire demo: a result regressed: {r}");
    }
    let matches =
        races == plan.expected && counties == *expected_counties && regressions.is_empty();
    if args.check {
        if !matches {
            eprintln!(
                "votewire demo --check: the results differ from the independent computation, or regressed ({} times)",
                regressions.len()
            );
            for path in &launcher.logs()? {
                let name = path.file_stem().unwrap_or_default().to_string_lossy();
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- the last lines of {name}'s log:");
                for l in tail.iter().rev() {
                    eprintln!("  {l}");
                }
            }
            for (k, want) in expected_counties
                .iter()
                .filter(|(k, v)| counties.get(*k) != Some(*v))
                .take(10)
            {
                eprintln!(
                    "  {CSV_FEED} {k:?}: want {want:?}, got {:?}",
                    counties.get(k)
                );
            }
            for want in &plan.expected {
                match races.iter().find(|r| {
                    r.source_feed_id == want.source_feed_id
                        && r.contest_source_id == want.contest_source_id
                }) {
                    Some(got) if got == want => {}
                    Some(got) => eprintln!("  {want:?}\n  != {got:?}"),
                    None => eprintln!("  missing: {want:?}"),
                }
            }
        }
        println!(
            "{}",
            serde_json::json!({
                "races": races,
                "cells_published": counts.cells,
                "payloads_rejected": counts.rejected,
                "latency_ms": {"p50": percentile(&latencies, 50), "p99": percentile(&latencies, 99)},
            })
        );
        if !matches {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's topics outlive it: how a subscriber reads its results
/// with the tools docs/subscribers.md describes. The night's topic
/// names also go to `state_dir/demo/night.env` (`export` lines), so a
/// shell can point every votewire command at them with one `source`.
fn print_where_the_results_are(config: &VotewireConfig) {
    let topics = &config.topics;
    let bootstrap = &config.kafka.bootstrap_servers;
    let env_file = config.state_dir.join("demo").join("night.env");
    let lines = [
        ("VOTEWIRE_TOPIC_VOTES", &topics.votes),
        ("VOTEWIRE_TOPIC_SNAPSHOTS", &topics.snapshots),
        ("VOTEWIRE_TOPIC_RESULTS", &topics.results),
        ("VOTEWIRE_TOPIC_RESULTS_TEST", &topics.results_test),
        ("VOTEWIRE_TOPIC_FEED_STATUS", &topics.feed_status),
        ("VOTEWIRE_TOPIC_ALERTS", &topics.alerts),
        ("VOTEWIRE_TOPIC_DLQ", &topics.dlq),
    ]
    .iter()
    .map(|(var, topic)| format!("export {var}={topic}\n"))
    .collect::<String>();
    let written =
        std::fs::create_dir_all(env_file.parent().unwrap_or(&config.state_dir)).and_then(|()| {
            std::fs::write(
                &env_file,
                format!("# votewire demo: this night's topics\n{lines}"),
            )
        });
    let topic = &topics.results;
    println!("This night's results stay on {topic}; read them with:");
    match written {
        Ok(()) => {
            println!(
                "  source {}   # this night's topic names",
                env_file.display()
            );
            println!("  votewire tail results --idle 5s");
        }
        Err(e) => {
            // An earlier night's file must not pass for this one's.
            let _ = std::fs::remove_file(&env_file);
            eprintln!("votewire demo: could not write {}: {e}", env_file.display());
            println!("  VOTEWIRE_TOPIC_RESULTS={topic} votewire tail results --idle 5s");
        }
    }
    println!(
        "  python3 docs/examples/consume_results.py --bootstrap {bootstrap} --topic {topic} --idle 5"
    );
}
