//! `votewire demo`: the Georgia 2021 Senate runoff night, replayed through
//! the whole pipeline.
//!
//! A replay server on 127.0.0.1 plays the captured sources back on a
//! compressed clock: the Clarity `ALL.json` series as a live Clarity site
//! (`current_ver.txt` and versioned paths, HTML error snapshots included),
//! the AP interactives series as a live API, and a Texas SOS
//! race-by-county page for the scrape path. The OpenElections precinct
//! CSV is dropped onto the local SFTP server in two parts (counties A–L
//! at 45% of the night, every county at 85%), written as `.part`, renamed,
//! then marked `.done`, as a careful uploader does. `votewire ingest`,
//! `votewire aggregate` and `votewire api` (the live page, `/live`) run as
//! separate processes on fresh topics and tables, exactly as deployed. At
//! the end the demo prints each race's statewide result as every source
//! reported it, and what the night published, counted on the topics
//! themselves (records on the votes topic per feed and per ingestor, the
//! ingestors' dead letters), never from a service's output.
//!
//! The parts: [`night`] (the series on the compressed clock),
//! [`replay_server`], [`feed_files`] (the registry the services read),
//! [`services`] (the processes), [`oracle`] (the independent
//! computation), [`following`] (the topics read as the night goes) and
//! [`report`].
//!
//! `--check` brings the local stack up first when its broker does not
//! answer, and compares the results with an independent computation from
//! the final snapshots (statewide sums of the Clarity counties, AP's own
//! statewide summary, the CSV summed per county and statewide by a plain
//! split, the Texas page's ALL COUNTIES row), exits non-zero on any
//! difference, and prints one JSON object as its last stdout line (the
//! contract external checks read).
//!
//! The clock: gaps between snapshots longer than ten minutes of night are
//! cut to ten minutes (the capture runs for two weeks after the night),
//! and the result is played back in `--seconds` (60 by default).

mod feed_files;
mod following;
mod night;
mod oracle;
mod replay_server;
mod report;
mod services;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use votewire_core::config::VotewireConfig;

use feed_files::{SftpDrop, feeds_toml, tx_feed_toml};
use following::{
    PublishedCounts, ResultsSeen, counts_settle, follow_counts, follow_results, live_statewide,
    statewide_votes,
};
use night::{Night, csv_counties_a_to_l, drip_file, drop_file};
use oracle::{Companions, CountyVotes, Race, csv_by_county, csv_statewide, independent};
use replay_server::Replay;
use services::{Launcher, Services};

pub const ELECTION: &str = "2021-01-05-GA-runoff";
pub(super) const CLARITY_FEED: &str = "clarity:GA:107556";
pub(super) const AP_FEED: &str = "ap:GA:2021-01-05";
pub(super) const CLARITY_SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
pub(super) const AP_SERIES: &str = "ap_elections_api/ap_interactives_live_GA_2021-01-05";
/// OpenElections' precinct file of the runoff, dropped onto SFTP in two
/// parts (counties A–L, then every county) as county uploads would be.
pub(super) const CSV_FEED: &str = "csv:GA:openelections";
pub(super) const CSV_FILE: &str = "precinct_csv/openelections-data-ga/20210105__ga__runoff.csv";
/// Where in the night (as a fraction) the two CSV drops land.
pub(super) const CSV_DROPS: [(f64, &str); 2] = [
    (0.45, "20210105__ga__runoff__counties-a-l.csv"),
    (0.85, "20210105__ga__runoff.csv"),
];
/// A Texas SOS race-by-county page, served for the scrape path.
pub(super) const TX_FEED: &str = "html:txsos:2014-senate";
pub(super) const TX_ELECTION: &str = "2014-11-04-TX-general";
pub(super) const TX_PAGE: &str = "sos_html/rc-2014_general_senate.html";
pub(super) const TX_MAPPING: &str = "deploy/mappings/txsos-race-by-county.toml";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// How long the whole night takes, in seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Or the replay speed, as a multiple of real time (780 plays the
    /// 13 h night in a minute); overrides --seconds.
    #[arg(long)]
    speed: Option<f64>,
    /// Compare the final results with an independent computation; exit
    /// non-zero on a difference; the last stdout line is the JSON summary.
    #[arg(long)]
    check: bool,
    /// The real election-results fixtures.
    #[arg(long, env = "VOTEWIRE_FIXTURES", default_value = "../shared/fixtures")]
    fixtures: PathBuf,
    /// Serve the live results page (`votewire api`) here during the
    /// replay; port 0 picks a free port; `off` serves none.
    #[arg(long, default_value = "127.0.0.1:8090")]
    live_listen: String,
    /// Inject a fault at 40% of the night (the chaos suite, tests/chaos):
    /// the final results must still equal the undisturbed computation.
    #[arg(long, value_enum)]
    chaos: Option<Chaos>,
    /// A fault injected from outside (the chaos suite) writes the wall
    /// time it cleared (ms since the epoch) here; the demo measures the
    /// recovery from it.
    #[arg(long, hide = true)]
    fault_cleared_file: Option<PathBuf>,
    /// Keep the services' logs in this directory.
    #[arg(long, env = "VOTEWIRE_DEMO_LOGS")]
    keep_logs: Option<PathBuf>,
}

/// The faults the demo injects itself (the chaos suite injects the others
/// from outside: broker, DynamoDB and sshd outages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Chaos {
    /// `kill -9` the ingestor; a new one starts a second later and takes
    /// the feeds over once their leases expire.
    KillIngestor,
    /// Two aggregators share the group from the start; `kill -9` one, and
    /// a new one joins a second later.
    KillAggregator,
    /// From 40% to 60% of the night the sources misbehave: Clarity's
    /// version file answers 500 to every other request, its ALL.json is
    /// truncated, AP's API hangs
    /// past the client's timeout, the Texas page is an HTML error page,
    /// and the first CSV drop is written slowly in place.
    UpstreamFaults,
}

/// Where in the night (as a fraction) a fault starts, and where an
/// upstream fault ends.
const CHAOS_AT: f64 = 0.40;
const CHAOS_UNTIL: f64 = 0.60;

/// The night as this run plays it: its fresh topics and tables, the
/// replay speed, the SFTP drop (when the stack names an SFTP server) and
/// what the independent computation expects.
struct NightPlan {
    /// The caller's config on this run's topics and table prefix.
    config: VotewireConfig,
    run_id: String,
    speed: f64,
    sftp: Option<SftpDrop>,
    /// Every source's statewide result per race.
    expected: Vec<Race>,
    /// The CSV's results per (contest, county); empty without SFTP.
    expected_counties: CountyVotes,
    /// The two CSV drops: counties A–L, then the whole file.
    csv_parts: [Vec<u8>; 2],
    clarity_companion: PathBuf,
    ap_companion: PathBuf,
    tx_mapping: String,
}

impl NightPlan {
    /// Reads the night and its companions, computes what the results must
    /// be, and creates the run's topics.
    async fn prepare(
        config: &VotewireConfig,
        args: &DemoArgs,
    ) -> anyhow::Result<(NightPlan, Night)> {
        let root = std::env::current_dir()?;
        let clarity_companion = root.join("deploy/demo/clarity-GA-107556-companion.json");
        let ap_companion = root.join("deploy/demo/ap-GA-2021-01-05-companion.json");
        let companions = Companions {
            clarity: serde_json::from_slice(&std::fs::read(&clarity_companion).with_context(
                || {
                    format!(
                        "reading {} (run from the repository root)",
                        clarity_companion.display()
                    )
                },
            )?)?,
            ap: serde_json::from_slice(&std::fs::read(&ap_companion)?)?,
        };
        let night = night::night(&args.fixtures)?;
        let speed = match args.speed {
            Some(s) => s.max(1.0),
            None => night.length_ms as f64 / (args.seconds.max(1.0) * 1000.0),
        };

        // Fresh topics and tables for this run.
        // Unique per run, also when several demos start in one second.
        let run_id = format!(
            "demo-{}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            std::process::id()
        );
        let sftp = SftpDrop::from_env(&run_id)?;
        if sftp.is_none() {
            eprintln!(
                "votewire demo: no VOTEWIRE_SFTP_* variables (the stack's env file sets them): the CSV drop is left out"
            );
        }
        let mut expected = independent(&night, &companions)?;
        let expected_counties = if sftp.is_some() {
            csv_by_county(&night.csv)?
        } else {
            BTreeMap::new()
        };
        expected.extend(csv_statewide(&expected_counties));
        expected.sort_by(|a, b| {
            (&a.source_feed_id, &a.contest_source_id)
                .cmp(&(&b.source_feed_id, &b.contest_source_id))
        });
        let tx_mapping = std::fs::read_to_string(root.join(TX_MAPPING))
            .with_context(|| format!("reading {TX_MAPPING}"))?;
        let csv_parts = [csv_counties_a_to_l(&night.csv), night.csv.clone()];
        let mut config = config.clone();
        config.topics.votes = format!("{run_id}.votes");
        config.topics.snapshots = format!("{run_id}.snapshots");
        config.topics.results = format!("{run_id}.results");
        config.topics.results_test = format!("{run_id}.results-test");
        config.topics.feed_status = format!("{run_id}.status");
        config.topics.alerts = format!("{run_id}.alerts");
        config.topics.dlq = format!("{run_id}.dlq");
        config.state_store.table_prefix = format!("{}_", run_id.replace('-', "_"));
        votewire_core::topics::ensure_declared_topics(&config.kafka, &config.topics)
            .await
            .context("creating the demo's topics (is the stack up? deploy/local/stack up)")?;
        let plan = NightPlan {
            config,
            run_id,
            speed,
            sftp,
            expected,
            expected_counties,
            csv_parts,
            clarity_companion,
            ap_companion,
            tx_mapping,
        };
        Ok((plan, night))
    }
}

/// When an injected fault started and when it was over, as wall
/// milliseconds since the epoch.
#[derive(Debug, Default, Clone, Copy)]
struct FaultTimes {
    injected: Option<i64>,
    cleared: Option<i64>,
}

pub async fn run(config: &VotewireConfig, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.check
        && let Some(code) = services::stack_up_and_rerun(config, &args).await?
    {
        return Ok(code);
    }
    let (plan, night) = NightPlan::prepare(config, &args).await?;
    let (clarity_n, ap_n, length_ms) = (night.clarity.len(), night.ap.len(), night.length_ms);
    let (replay, base) = replay_server::start(night, plan.speed).await?;
    eprintln!(
        "votewire demo: GA 2021 runoff night: {clarity_n} Clarity and {ap_n} AP snapshots, {:.1} h of night in {:.0} s, served at {base}",
        length_ms as f64 / 3.6e6,
        length_ms as f64 / plan.speed / 1000.0
    );

    // The feeds, and the services as processes.
    let feed_files = [
        (
            "ga-runoff.toml",
            feeds_toml(
                &base,
                &plan.clarity_companion,
                &plan.ap_companion,
                plan.sftp.as_ref(),
            ),
        ),
        ("tx-senate.toml", tx_feed_toml(&base, &plan.tx_mapping)?),
    ];
    let launcher = Launcher::new(&plan.config, &plan.run_id, &feed_files)?;
    let counts = Arc::new(Mutex::new(PublishedCounts::default()));
    counts
        .lock()
        .expect("counts lock")
        .ingestor_starts("demo-ingest");
    let mut services = Services::start(launcher, &args).await?;
    let seen = Arc::new(Mutex::new(ResultsSeen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let follower = follow_results(&plan.config, seen.clone(), stop.clone())?;
    let counters = follow_counts(&plan.config, counts.clone(), stop.clone())?;

    let fault = play_night(&args, &plan, &replay, &mut services, &counts).await?;
    converge(&args, &plan, &seen).await;
    live_page_catches_up(&services, &seen).await;
    let launcher = services.stop().await;
    counts_settle(&counts).await;
    stop.store(true, Ordering::Relaxed);
    let _ = follower.join();
    for counter in counters {
        let _ = counter.join();
    }
    let counts = counts.lock().expect("counts lock").clone();
    for (who, cells) in counts.cells_by_ingestor.iter().chain(&counts.cells_by_feed) {
        eprintln!("votewire demo: {who} published {cells} cells");
    }
    // The services' logs, kept where asked (the chaos suite reads them).
    if let Some(keep) = &args.keep_logs {
        std::fs::create_dir_all(keep)?;
        for e in std::fs::read_dir(launcher.dir())?.flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                std::fs::copy(e.path(), keep.join(e.file_name()))?;
            }
        }
    }
    report::report(&args, &plan, &seen, fault, &counts, &launcher)
}

/// Plays the night to its end, with a progress bar of the replay clock:
/// the injected fault (`--chaos`) and the CSV drops land at their
/// fractions of the night, and a service that stops on its own ends the
/// demo at once.
async fn play_night(
    args: &DemoArgs,
    plan: &NightPlan,
    replay: &Replay,
    services: &mut Services,
    counts: &Mutex<PublishedCounts>,
) -> anyhow::Result<FaultTimes> {
    let length_ms = replay.night.length_ms;
    let bar = indicatif::ProgressBar::new(length_ms.max(1) as u64);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut drops = 0;
    let mut fault = FaultTimes::default();
    while replay.now_ms() < length_ms {
        services.check_running()?;
        let now = replay.now_ms();
        let at_fraction = |f: f64| now as f64 >= f * length_ms as f64;
        if let Some(chaos) = args.chaos
            && fault.injected.is_none()
            && at_fraction(CHAOS_AT)
        {
            fault.injected = Some(votewire_core::unix_ms());
            inject(chaos, replay, services, counts, &mut fault).await?;
            eprintln!("votewire demo: chaos: {chaos:?} injected");
        }
        if args.chaos == Some(Chaos::UpstreamFaults)
            && fault.cleared.is_none()
            && at_fraction(CHAOS_UNTIL)
        {
            replay.faulty.store(false, Ordering::Relaxed);
            fault.cleared = Some(votewire_core::unix_ms());
            eprintln!("votewire demo: chaos: the sources behave again");
        }
        if let Some(d) = &plan.sftp
            && let Some((at, name)) = CSV_DROPS.get(drops)
            && at_fraction(*at)
        {
            if replay.faulty() {
                // A slow uploader, in place: the ingestor must wait for
                // the whole file (stable size, age, the .done marker).
                let (dir, name, bytes) = (
                    d.local.clone(),
                    name.to_string(),
                    plan.csv_parts[drops].clone(),
                );
                tokio::task::spawn_blocking(move || drip_file(&dir, &name, &bytes));
            } else {
                drop_file(&d.local, name, &plan.csv_parts[drops])
                    .with_context(|| format!("dropping {name} into {}", d.local.display()))?;
            }
            drops += 1;
        }
        let s = replay.current(&replay.night.clarity);
        let c = counts.lock().expect("counts lock").clone();
        bar.set_position(now.max(0) as u64);
        bar.set_message(format!(
            "night clock {} | {} cells published, {} payloads rejected",
            s.recorded, c.cells, c.rejected
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bar.finish_and_clear();
    Ok(fault)
}

/// Injects `chaos`: a killed service is replaced a second later (its
/// replacement's start is when the fault is over); upstream faults last
/// until [`CHAOS_UNTIL`].
async fn inject(
    chaos: Chaos,
    replay: &Replay,
    services: &mut Services,
    counts: &Mutex<PublishedCounts>,
    fault: &mut FaultTimes,
) -> anyhow::Result<()> {
    match chaos {
        Chaos::KillIngestor => {
            services.ingestor.start_kill()?; // SIGKILL
            services.ingestor.wait().await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            counts
                .lock()
                .expect("counts lock")
                .ingestor_starts("demo-ingest-2");
            services.ingestor = services.launcher.ingestor("demo-ingest-2")?;
            fault.cleared = Some(votewire_core::unix_ms());
        }
        Chaos::KillAggregator => {
            let mut victim = services.aggregators.remove(0);
            victim.start_kill()?;
            victim.wait().await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let joined = services.launcher.aggregator("demo-aggregate-3")?;
            services.aggregators.push(joined);
            fault.cleared = Some(votewire_core::unix_ms());
        }
        Chaos::UpstreamFaults => {
            replay.faulty.store(true, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// The last snapshots stay up until the results have converged. On an
/// idle machine that takes a few seconds; a starved one (the chaos
/// suite's nights under the whole suite's load) has needed over 60 s to
/// drain a partition that lost its leader, so the check allows 120.
/// Without `--check`, five quiet seconds end the wait.
async fn converge(args: &DemoArgs, plan: &NightPlan, seen: &Mutex<ResultsSeen>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    let mut last_count = 0;
    loop {
        let (now_races, counties, n) = {
            let s = seen.lock().expect("results lock");
            (s.statewide(), s.csv_counties(), s.latest.len())
        };
        if n != last_count {
            last_count = n;
            quiet_since = Instant::now();
        }
        let converged = now_races == plan.expected && counties == plan.expected_counties;
        if converged
            || Instant::now() >= deadline
            || (!args.check && quiet_since.elapsed() > Duration::from_secs(5))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The live page's source catches up before it stops: what readers see
/// last is the final result.
async fn live_page_catches_up(services: &Services, seen: &Mutex<ResultsSeen>) {
    if let Some(api) = &services.api {
        let want = statewide_votes(&seen.lock().expect("results lock").statewide());
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until
            && live_statewide(&api.client, &api.base).await.ok().as_ref() != Some(&want)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // One more stream tick, so every open page has the last event.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stack_env_file_reads_as_variables() {
        let vars = super::services::stack_env(
            "# written by deploy/local/stack\nexport VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092\n\nAWS_ACCESS_KEY_ID=x=y\nnot a variable\n",
        );
        assert_eq!(
            vars,
            [
                (
                    "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS".to_string(),
                    "127.0.0.1:9092".to_string()
                ),
                ("AWS_ACCESS_KEY_ID".to_string(), "x=y".to_string()),
            ]
        );
    }

    #[test]
    fn recovery_is_the_first_result_from_a_payload_fetched_after_the_fault() {
        use super::following::{StatewideEvent, first_result_after};
        let e = |contest: &str, at: i64, fetched: i64| StatewideEvent {
            contest_id: contest.into(),
            at,
            fetched,
        };
        let events = [
            e("clarity/1", 21_000, 19_000), // fetched before the fault ended
            e("csv/1", 26_000, 25_500),
            e("clarity/1", 23_400, 23_000),
        ];
        assert_eq!(first_result_after(&events, 20_000, ""), Some(3_400));
        assert_eq!(first_result_after(&events, 20_000, "csv"), Some(6_000));
        assert_eq!(first_result_after(&events, 30_000, ""), None);
    }
}
