//! `votewire ingest`: one ingestor instance, run by
//! [`votewire_ingestors::supervisor::run_instance`] (heartbeats, lease
//! rounds, a feed loop per leased feed, registry hot reload). This
//! command reads the registry, checks the topics, and builds what the
//! instance's feeds share: the state store, the producer (partitioning by
//! the votes topic's real partition count), the HTTP clients and the raw
//! archive.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use votewire_core::config::VotewireConfig;
use votewire_core::kafka::{producer_config, topic_partitions};
use votewire_core::topics::ensure_declared_topics;
use votewire_ingestors::archive::RawArchive;
use votewire_ingestors::feed_tools::FeedTools;
use votewire_ingestors::feeds::{duration_arg, load_registry};
use votewire_ingestors::http::{FetchLimits, client_for, credentialed_client_for};
use votewire_ingestors::publish::Publisher;
use votewire_ingestors::state::open_feed_state;
use votewire_ingestors::supervisor::{InstanceParts, InstanceSettings, run_instance};

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "VOTEWIRE_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The feed registry: a TOML file, or a folder of them read with its
    /// sub-folders.
    #[arg(long, env = "VOTEWIRE_FEEDS")]
    feeds: PathBuf,
    /// This instance's name (default: host name and process id).
    #[arg(long, env = "VOTEWIRE_INSTANCE")]
    instance: Option<String>,
    /// Lease time to live; rounds run every third of it.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    lease_ttl: Duration,
    /// Stop after this long (for replays and tests), releasing leases.
    #[arg(long, value_parser = duration_arg)]
    run_for: Option<Duration>,
    /// Consecutive rejected payloads before a feed is quarantined.
    #[arg(long, default_value_t = 5)]
    quarantine_after: u32,
    /// Concurrent fetches per host (every feed on a host shares them).
    #[arg(long, default_value_t = 8)]
    per_host: usize,
    /// Print one line per accepted or rejected payload on stdout.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    print_payloads: bool,
}

pub async fn run(config: &VotewireConfig, args: IngestArgs) -> anyhow::Result<ExitCode> {
    // Spans and metrics go to the configured OTLP endpoint on the SDK's
    // threads (bounded queues; flushed when this returns).
    let observability =
        crate::observability::start("votewire-ingest", config, args.metrics_listen).await?;
    let readiness = observability.readiness();
    let registry = match load_registry(&args.feeds) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!("{} problem(s) in the registry; not starting", errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    if registry.is_empty() {
        tracing::warn!(
            "no feeds in {} yet; polling nothing until the registry gains some",
            args.feeds.display()
        );
    }
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(|| format!("ingest-{}", std::process::id()));

    let state = open_feed_state(config)
        .await
        .context("opening the feed-state store")?;
    for report in ensure_declared_topics(&config.kafka, &config.topics)
        .await
        .context("ensuring topics")?
    {
        if let Some(line) = report.differences() {
            tracing::warn!("{line}");
        }
    }
    // Partition by the topic's real partition count: a topic created
    // earlier with another count than this config declares must still get
    // every cell of a contest on one partition, and never an unknown one.
    let vote_partitions = match topic_partitions(&config.kafka, &config.topics.votes)
        .context("reading the votes topic's metadata")?
    {
        Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
        None => config.topics.contest_partitions,
    };
    if vote_partitions != config.topics.contest_partitions {
        tracing::warn!(
            "{} has {vote_partitions} partitions (config declares {}); using {vote_partitions}",
            config.topics.votes,
            config.topics.contest_partitions
        );
    }
    let producer_settings = producer_config(&config.kafka, &instance);
    let producer = producer_settings
        .create_with_context(votewire_core::kafka::KafkaClientContext::default())
        .context("creating the Kafka producer")?;
    let limits = FetchLimits::default();
    let archive = match &config.archive.s3_bucket {
        Some(bucket) => {
            let client =
                votewire_core::state::s3_client(&config.archive, &config.state_store).await;
            RawArchive::s3(client, bucket, &config.archive.s3_prefix)
        }
        None => RawArchive::local(config.state_dir.join("archive")),
    };
    archive
        .ensure_bucket()
        .await
        .context("checking the raw archive's bucket")?;
    tracing::info!("raw payloads archived in {}", archive.place());
    // Fault injection for the crash-safety test, in debug builds only (the
    // tests' binary): a release binary says so and ignores the variable.
    let fault = std::env::var("VOTEWIRE_FAULT").ok();
    let fault = match fault {
        Some(f) if cfg!(debug_assertions) => {
            tracing::warn!("fault injection {f:?} is ON");
            Some(f)
        }
        Some(f) => {
            tracing::warn!("VOTEWIRE_FAULT={f:?} ignored: fault hooks exist in debug builds only");
            None
        }
        None => None,
    };
    let parts = InstanceParts {
        state,
        publisher: Publisher {
            producer,
            topics: config.topics.clone(),
            schemas: votewire_schemas::schemas().clone(),
            vote_partitions,
            delivery_timeout: Duration::from_secs(30),
            renewal: Some(votewire_ingestors::publish::ProducerRenewal::new(
                producer_settings,
            )),
        },
        tools: FeedTools {
            abort_after_produce: fault.as_deref() == Some("abort-after-produce"),
            http_credentialed: credentialed_client_for(&limits, Some(&instance))
                .context("building the HTTP client for sources with credentials")?,
            ..FeedTools::new(
                client_for(&limits, Some(&instance)).context("building the HTTP client")?,
                args.per_host,
                Some(archive),
                4,
            )
        },
    };
    let settings = InstanceSettings {
        feeds: args.feeds.clone(),
        instance,
        lease_ttl: args.lease_ttl,
        run_for: args.run_for,
        quarantine_after: args.quarantine_after,
        print_payloads: args.print_payloads,
    };
    // Ready once a lease round reached the state store; a failed round
    // makes it not ready until the next one succeeds.
    let on_round = |round: Result<(), &votewire_ingestors::state::StateError>| match round {
        Ok(()) => readiness.set_ready(),
        Err(e) => readiness.set_not_ready(format!("the last lease round failed: {e}")),
    };
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let released = run_instance(&settings, parts, registry, on_round, ctrl_c)
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!("stopped, {released} lease(s) released");
    Ok(ExitCode::SUCCESS)
}
