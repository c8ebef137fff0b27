//! `votewire`: one binary, every service.
//!
//! Each service is a subcommand (`ingest`, `aggregate`, `api`, …), so the same
//! image runs every Fargate task and every local process.

mod aggregate;
mod api;
mod demo;
mod exit;
mod export;
mod feeds;
mod http_server;
mod ingest;
mod observability;
mod operator;
mod smoke;
mod tail;
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
    /// Run an aggregator fleet member: roll vote cells up into results.
    Aggregate(aggregate::AggregateArgs),
    /// Run the operator REST API.
    Api(api::ApiArgs),
    /// Manage and dry-run feeds.
    Feeds {
        #[command(subcommand)]
        action: FeedsAction,
    },
    /// Transform one payload file into vote cells (JSON lines).
    Transform(transform::TransformArgs),
    /// Write an election's current results as a NIST SP 1500-100 v2
    /// ElectionReport (XML or JSON).
    Export(export::ExportArgs),
    /// Decode and print a topic (results) for subscribers.
    Tail {
        #[command(subcommand)]
        what: tail::TailWhat,
    },
    /// Replay the GA 2021 runoff night through the whole pipeline.
    Demo(demo::DemoArgs),
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
    Validate {
        /// The registry: a TOML file or a folder (read with its
        /// sub-folders). The same as `--feeds`, and chosen over it.
        #[arg(required_unless_present = "feeds")]
        path: Option<PathBuf>,
        /// The registry, named as the other feed commands name it.
        #[arg(long, env = "VOTEWIRE_FEEDS")]
        feeds: Option<PathBuf>,
        /// One JSON object: ok, counts, and every problem.
        #[arg(long)]
        json: bool,
    },
    /// List the feeds with their health, seq, last change and lease owner.
    List(operator::Via),
    /// Show one feed's config (secrets by reference only), cursor, health
    /// and lease.
    Show {
        id: String,
        #[command(flatten)]
        via: operator::Via,
    },
    /// Fetch once, transform, print the diff against the last published
    /// cells. Produces nothing and stores nothing.
    Test(feeds::TestArgs),
    /// A feed's stored transitions and operator actions, newest first.
    History {
        id: String,
        #[command(flatten)]
        via: operator::Via,
    },
    /// Add the feeds of a TOML file (validated first).
    Add(operator::AddArgs),
    /// Print the JSON Schema of feed files (for editors), or write it and
    /// the mapping files' schemas into a folder (docs/schemas/ holds them).
    Schema {
        /// Write every schema into this folder instead of printing the
        /// feed file's.
        #[arg(long, value_name = "FOLDER")]
        write: Option<PathBuf>,
    },
    #[command(flatten)]
    Action(operator::ActionName),
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create the declared topics that do not exist yet.
    Ensure,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration as TOML (the form --config
    /// reads), Kafka properties holding secrets redacted.
    Show,
    /// List every VOTEWIRE_… environment variable and what it overrides
    /// (docs/configuration.md is this list as Markdown).
    Env {
        #[arg(long, value_enum, default_value_t = EnvListFormat::Text)]
        format: EnvListFormat,
    },
}

/// How `config env` prints its list.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum EnvListFormat {
    /// Aligned lines under `# section` headings.
    Text,
    /// Markdown tables, as in docs/configuration.md.
    Markdown,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match VotewireConfig::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: loading configuration: {:#}", anyhow::Error::from(e));
            return exit::Exit::Config.into();
        }
    };
    match run(cli, config) {
        Ok(code) => code,
        // `votewire tail results | head`: the reader has what it wanted.
        Err(e) if exit::is_closed_stdout(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::of_error(&e).into()
        }
    }
}

fn run(cli: Cli, config: VotewireConfig) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the Tokio runtime")?;
    let outcome = run_on(&runtime, cli, config);
    // A blocking task that never ends (a Kafka client whose close waits on
    // a broker that does not answer) must not hold the exit: a dropped
    // runtime waits for its blocking tasks without a bound.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    outcome
}

fn run_on(
    runtime: &tokio::runtime::Runtime,
    cli: Cli,
    config: VotewireConfig,
) -> anyhow::Result<ExitCode> {
    // The services install their own subscriber (with export); the other
    // subcommands still show the libraries' warnings.
    if !matches!(
        cli.command,
        Command::Ingest(_) | Command::Aggregate(_) | Command::Api(_)
    ) {
        votewire_core::telemetry::init_report_logs(&config.log);
    }
    Ok(match cli.command {
        Command::Ingest(args) => runtime.block_on(ingest::run(&config, args))?,
        Command::Aggregate(args) => runtime.block_on(aggregate::run(&config, args))?,
        Command::Api(args) => runtime.block_on(api::run(&config, args))?,
        Command::Feeds { action } => match action {
            FeedsAction::Validate { path, feeds, json } => {
                let registry = path.or(feeds).expect("clap requires one");
                feeds::validate(&registry, json)
            }
            FeedsAction::Schema { write } => feeds::schema(write.as_deref())?,
            FeedsAction::List(via) => runtime.block_on(operator::list(&config, via))?,
            FeedsAction::Show { id, via } => runtime.block_on(operator::show(&config, &id, via))?,
            FeedsAction::Test(args) => runtime.block_on(feeds::test(&config, args))?,
            FeedsAction::History { id, via } => {
                runtime.block_on(operator::history(&config, &id, via))?
            }
            FeedsAction::Add(args) => runtime.block_on(operator::add(&config, args))?,
            FeedsAction::Action(which) => runtime.block_on(operator::act(&config, which))?,
        },
        Command::Transform(args) => transform::run(args)?,
        Command::Tail { what } => tail::run(&config, what)?,
        Command::Export(args) => runtime.block_on(export::run(&config, args))?,
        Command::Demo(args) => runtime.block_on(demo::run(&config, args))?,
        Command::Smoke(args) => runtime.block_on(smoke::run(&config, args))?,
        Command::Topics {
            action: TopicsAction::Ensure,
        } => runtime.block_on(topics_ensure(&config))?,
        Command::Config { action } => {
            match action {
                ConfigAction::Show => {
                    let text = config
                        .to_redacted_toml()
                        .context("writing the configuration as TOML")?;
                    exit::stdout_write(std::io::Write::write_all(
                        &mut std::io::stdout(),
                        text.as_bytes(),
                    ))?;
                }
                ConfigAction::Env { format } => {
                    use votewire_core::config::reference;
                    let text = match format {
                        EnvListFormat::Text => reference::to_text(),
                        EnvListFormat::Markdown => reference::to_markdown(),
                    };
                    exit::stdout_write(std::io::Write::write_all(
                        &mut std::io::stdout(),
                        text.as_bytes(),
                    ))?;
                }
            }
            ExitCode::SUCCESS
        }
    })
}

async fn topics_ensure(config: &VotewireConfig) -> anyhow::Result<ExitCode> {
    use votewire_core::topics::{TopicOutcome, ensure_declared_topics};
    let reports = ensure_declared_topics(&config.kafka, &config.topics)
        .await
        .context("ensuring topics")?;
    let mut differ = 0;
    for report in &reports {
        let spec = &report.spec;
        let shape = format!(
            "partitions={} replication={} cleanup.policy={}",
            spec.partitions, spec.replication_factor, spec.cleanup_policy
        );
        match &report.outcome {
            TopicOutcome::Created => println!("created  {:<28} {shape}", spec.name),
            TopicOutcome::Matches => println!("exists   {:<28} {shape}", spec.name),
            TopicOutcome::Unreadable(why) => {
                println!("UNREAD   {:<28} not checked: {why}", spec.name)
            }
            TopicOutcome::Differs(_) => {
                differ += 1;
                println!("DIFFERS  {:<28} declared {shape}", spec.name);
                if let Some(line) = report.differences() {
                    eprintln!("votewire topics ensure: {line}");
                }
            }
        }
    }
    for report in &reports {
        if let Some(why) = &report.settings_unread {
            eprintln!(
                "votewire topics ensure: warning: {}'s settings were not compared: {why}",
                report.spec.name
            );
        }
    }
    if differ > 0 {
        eprintln!(
            "votewire topics ensure: {differ} existing topic(s) differ from the declaration; \
             nothing was changed on them (alter them with Kafka's tools, or change [topics] to match)"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    fn env_vars(cmd: &clap::Command, out: &mut std::collections::BTreeSet<String>) {
        for a in cmd.get_arguments() {
            if let Some(v) = a.get_env() {
                out.insert(v.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            env_vars(sub, out);
        }
    }

    #[test]
    fn every_variable_an_argument_reads_is_listed_and_nothing_else() {
        let mut read = std::collections::BTreeSet::new();
        env_vars(&super::Cli::command(), &mut read);
        // `feeds pause --by` defaults to the login name.
        read.retain(|v| v.starts_with("VOTEWIRE_"));
        let listed: std::collections::BTreeSet<String> = votewire_core::config::SERVICE_VARIABLES
            .iter()
            .map(|(v, _)| v.to_string())
            .collect();
        let overrides: std::collections::BTreeSet<String> = votewire_core::config::ENV_OVERRIDES
            .iter()
            .map(|o| o.var.to_string())
            .collect();
        assert!(
            read.is_disjoint(&overrides),
            "an argument reads a config variable: {:?}",
            read.intersection(&overrides).collect::<Vec<_>>()
        );
        // Nor one named by a config field's path: one variable, one meaning.
        let fields: std::collections::BTreeSet<String> =
            votewire_core::config::vars::field_variables()
                .iter()
                .map(|f| f.var.clone())
                .collect();
        assert!(
            read.is_disjoint(&fields),
            "an argument reads a config field's variable: {:?}",
            read.intersection(&fields).collect::<Vec<_>>()
        );
        assert_eq!(
            read, listed,
            "SERVICE_VARIABLES lists what the arguments read"
        );
    }
}
