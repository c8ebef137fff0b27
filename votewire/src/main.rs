//! `votewire`: one binary, every service.
//!
//! Each service is a subcommand (`ingest`, `aggregate`, `api`, …), so the same
//! image runs every Fargate task and every local process. Subcommands that are
//! not built yet say so and exit with status 69 (EX_UNAVAILABLE); none
//! pretends to work.

mod ingest;
mod smoke;
mod transform;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use votewire_core::VotewireConfig;

#[derive(Parser)]
#[command(
    name = "votewire",
    version,
    about = "Election-night vote feeds into Kafka, rolled up into results."
)]
struct Cli {
    /// Config file (TOML). Without it, the defaults plus VOTEWIRE_… variables.
    #[arg(long, global = true, env = "VOTEWIRE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an ingestor: poll feeds and publish vote cells.
    Ingest(ingest::IngestArgs),
    /// Run an aggregator instance: roll vote cells up into results.
    Aggregate,
    /// Run the operator REST API.
    Api,
    /// Manage and dry-run feeds.
    Feeds {
        #[command(subcommand)]
        action: FeedsAction,
    },
    /// Transform one payload file into vote cells (JSON lines).
    Transform(transform::TransformArgs),
    /// Decode and print a results topic.
    Tail,
    /// Replay an election night through the whole pipeline.
    Demo,
    /// Fetch a fixture over HTTP, publish it to Kafka and read it back.
    Smoke(smoke::SmokeArgs),
    /// Kafka topic administration.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Show the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum FeedsAction {
    /// Check every feed entry in a file or directory; list every problem
    /// with its file, line and field; exit 1 if there is any.
    Validate { path: PathBuf },
    /// List feeds with their health.
    List,
    /// Show one feed's config, cursor and lease.
    Show { id: String },
    /// Fetch once, transform, print the diff against the last published
    /// cells, produce nothing.
    Test { id: String },
    /// Pause a feed.
    Pause { id: String },
    /// Resume a feed.
    Resume { id: String },
    /// A feed's health history.
    History { id: String },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create the declared topics that do not exist yet.
    Ensure,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (no secrets are part of it).
    Show,
    /// List every VOTEWIRE_… environment variable and what it overrides.
    Env,
}

fn not_yet(name: &str, issue: &str) -> ExitCode {
    eprintln!("votewire {name}: not yet implemented (tracked in the {issue} issue)");
    ExitCode::from(69)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = VotewireConfig::load(cli.config.as_deref()).context("loading configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the Tokio runtime")?;
    Ok(match cli.command {
        Command::Ingest(args) => runtime.block_on(ingest::run(&config, args))?,
        Command::Aggregate => not_yet("aggregate", "aggregator"),
        Command::Api => not_yet("api", "operators and engineers"),
        Command::Feeds {
            action: FeedsAction::Validate { path },
        } => feeds_validate(&path),
        Command::Feeds { action } => {
            let name = match action {
                FeedsAction::Validate { .. } => unreachable!("handled above"),
                FeedsAction::List => "feeds list",
                FeedsAction::Show { .. } => "feeds show",
                FeedsAction::Test { .. } => "feeds test",
                FeedsAction::Pause { .. } => "feeds pause",
                FeedsAction::Resume { .. } => "feeds resume",
                FeedsAction::History { .. } => "feeds history",
            };
            not_yet(name, "ingestors")
        }
        Command::Transform(args) => transform::run(args)?,
        Command::Tail => not_yet("tail", "operators and engineers"),
        Command::Demo => not_yet("demo", "election night"),
        Command::Smoke(args) => runtime.block_on(smoke::run(&config, args))?,
        Command::Topics {
            action: TopicsAction::Ensure,
        } => runtime.block_on(topics_ensure(&config))?,
        Command::Config { action } => {
            match action {
                ConfigAction::Show => println!("{config:#?}"),
                ConfigAction::Env => {
                    for o in votewire_core::config::ENV_OVERRIDES {
                        println!("{:<36} {}", o.var, o.describes);
                    }
                    println!(
                        "{:<36} any librdkafka property, _ read as .",
                        format!("{}<NAME>", votewire_core::config::KAFKA_PROPERTY_ENV_PREFIX)
                    );
                }
            }
            ExitCode::SUCCESS
        }
    })
}

fn feeds_validate(path: &std::path::Path) -> ExitCode {
    match votewire_ingestors::feeds::load_registry(path) {
        Ok(feeds) => {
            let files: std::collections::BTreeSet<_> = feeds.iter().map(|f| &f.file).collect();
            let enabled = feeds.iter().filter(|f| f.entry.enabled).count();
            println!(
                "ok: {} feeds ({enabled} enabled) in {} file(s)",
                feeds.len(),
                files.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{} problem(s); fix them and run `votewire feeds validate` again",
                errors.len()
            );
            ExitCode::FAILURE
        }
    }
}

async fn topics_ensure(config: &VotewireConfig) -> anyhow::Result<ExitCode> {
    use votewire_core::kafka::{TopicOutcome, declared_topics, ensure_topics};
    let specs = declared_topics(&config.topics);
    let outcomes = ensure_topics(&config.kafka, &specs, config.topics.replication_factor)
        .await
        .context("ensuring topics")?;
    for (spec, outcome) in outcomes {
        match outcome {
            TopicOutcome::Created => println!(
                "created  {:<28} partitions={} cleanup.policy={}",
                spec.name, spec.partitions, spec.cleanup_policy
            ),
            TopicOutcome::AlreadyExisted { partitions } => println!(
                "exists   {:<28} partitions={partitions} (declared {})",
                spec.name, spec.partitions
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
