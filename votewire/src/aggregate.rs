//! `votewire aggregate`: one member of the aggregator fleet (see the
//! `votewire_aggregator` crate docs for the delivery semantics).
//!
//! Start as many as there are partitions to share; each joins the same
//! consumer group. A member rebuilds each partition it is given from the
//! compacted votes topic before publishing for it, so members are
//! stateless and can be killed, added or moved at any time.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use votewire_aggregator::fleet::{FleetConfig, run_member};
use votewire_core::config::VotewireConfig;
use votewire_core::topics::ensure_declared_topics;
use votewire_ingestors::feeds::duration_arg;

#[derive(clap::Args)]
pub struct AggregateArgs {
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "VOTEWIRE_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The consumer group every fleet member joins.
    #[arg(
        long,
        env = "VOTEWIRE_AGGREGATOR_GROUP",
        default_value = "votewire-aggregator"
    )]
    group: String,
    /// This member's name (default: `aggregate-<pid>`).
    #[arg(long, env = "VOTEWIRE_INSTANCE")]
    instance: Option<String>,
    /// Stop after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = duration_arg)]
    run_for: Option<Duration>,
    /// Stop once nothing was consumed or published for this long (since
    /// the start or the last batch): replays and tests.
    #[arg(long, value_parser = duration_arg)]
    exit_when_idle: Option<Duration>,
    /// The coalescing window: cells arriving within it yield one result
    /// per unit.
    #[arg(long, default_value = "10ms", value_parser = duration_arg)]
    coalesce: Duration,
    /// Print one line per batch on stdout.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    print_batches: bool,
    /// Linked sources disagree at a unit (an alert on the alerts topic)
    /// when their largest difference over the choices is more than this
    /// many votes ...
    #[arg(long, env = "VOTEWIRE_DISAGREEMENT_VOTES", default_value_t = 0)]
    disagreement_votes: i64,
    /// ... and more than this percentage of the unit's total votes.
    #[arg(long, env = "VOTEWIRE_DISAGREEMENT_PCT", default_value_t = 1.0)]
    disagreement_pct: f64,
}

pub async fn run(config: &VotewireConfig, args: AggregateArgs) -> anyhow::Result<ExitCode> {
    // Spans and metrics go to the configured OTLP endpoint on the SDK's
    // threads (bounded queues; flushed when this returns).
    let observability =
        crate::observability::start("votewire-aggregate", config, args.metrics_listen).await?;
    // Ready when no partition this member holds is still rebuilding (and
    // it has heard from the group at least once).
    let readiness = observability.readiness();
    readiness.set_not_ready("joining the consumer group");
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(|| format!("aggregate-{}", std::process::id()));
    let (run_for, exit_when_idle) = (args.run_for, args.exit_when_idle);
    let mut fleet = FleetConfig::new(&args.group, &instance);
    fleet.coalesce = args.coalesce;
    fleet.disagreement = votewire_aggregator::disagreement::DisagreementThreshold {
        votes: args.disagreement_votes,
        pct: args.disagreement_pct,
    };
    for report in ensure_declared_topics(&config.kafka, &config.topics)
        .await
        .context("ensuring topics")?
    {
        if let Some(line) = report.differences() {
            tracing::warn!("{line}");
        }
    }
    tracing::info!(
        "{instance} joining group {} on {} → {}",
        args.group,
        config.topics.votes,
        config.topics.results
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let activity = Arc::new(Mutex::new(Instant::now()));
    let started = Instant::now();
    let watcher = {
        let activity = activity.clone();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            tokio::pin!(ctrl_c);
            loop {
                tokio::select! {
                    _ = &mut ctrl_c => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                if run_for.is_some_and(|d| started.elapsed() >= d) {
                    break;
                }
                let last = activity.lock().map(|a| *a).unwrap_or(started);
                if exit_when_idle.is_some_and(|d| last.elapsed() >= d) {
                    break;
                }
            }
            let _ = stop_tx.send(true);
        })
    };
    let print = args.print_batches;
    let totals = run_member(&config.kafka, &config.topics, &fleet, stop_rx, |b| {
        let worked = b.cells > 0 || b.results_produced > 0 || !b.caught_up.is_empty();
        if worked && let Ok(mut a) = activity.lock() {
            *a = Instant::now();
        }
        match b.assignment {
            Some(a) if !a.joined => readiness.set_not_ready("joining the consumer group"),
            Some(a) if a.rebuilding > 0 => readiness.set_not_ready(format!(
                "{} of {} partition(s) rebuilding",
                a.rebuilding, a.partitions
            )),
            Some(_) => readiness.set_ready(),
            None => {}
        }
        for ps in &b.partitions {
            tracing::info!(
                partition = ps.partition,
                lag = ps.lag,
                cells_per_s = ps.cells_per_s.round(),
                rebuilding = ps.rebuilding,
                "partition progress"
            );
        }
        if print && worked {
            let mut lat = b.fetch_to_result_ms.clone();
            lat.sort_unstable();
            let p99 = lat
                .get((lat.len() * 99).div_ceil(100).saturating_sub(1))
                .copied();
            println!(
                "batch cells={} rejected={} contests={} results={} unchanged={} caught_up={:?} elapsed_ms={:.1} fetch_to_result_p99_ms={}",
                b.cells,
                b.cells_rejected,
                b.contests_rolled_up,
                b.results_produced,
                b.results_unchanged,
                b.caught_up,
                b.elapsed.as_secs_f64() * 1e3,
                p99.map_or_else(|| "-".to_string(), |v| v.to_string()),
            );
        }
    })
    .await
    .context("running the aggregator")?;
    watcher.abort();
    tracing::info!(
        "{instance} stopped: {} batches, {} cells ({} rejected), {} results, {} partition rebuilds",
        totals.batches,
        totals.cells,
        totals.cells_rejected,
        totals.results_produced,
        totals.rebuilds
    );
    Ok(ExitCode::SUCCESS)
}
