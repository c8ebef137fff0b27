//! `votewire smoke`: serve one fixture on a local HTTP server, then run the
//! ingestors' smoke pipeline against it and print what happened.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use votewire_core::VotewireConfig;

#[derive(clap::Args)]
pub struct SmokeArgs {
    /// The payload to serve, fetch and publish.
    #[arg(long)]
    fixture: PathBuf,
    /// Topic to publish to (default: a fresh `votewire.smoke.<unique>` topic).
    #[arg(long)]
    topic: Option<String>,
}

pub async fn run(config: &VotewireConfig, args: SmokeArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.fixture)
        .with_context(|| format!("reading fixture {}", args.fixture.display()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the local fixture server")?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/fixture", get(move || async move { bytes }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/fixture");
    let topic = args.topic.unwrap_or_else(|| {
        format!(
            "votewire.smoke.{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        )
    });
    println!("serving  {} at {url}", args.fixture.display());
    let report = votewire_ingestors::smoke::run(
        &config.kafka,
        &url,
        &topic,
        config.topics.replication_factor,
    )
    .await
    .context("smoke pipeline")?;
    server.abort();
    println!(
        "fetched  {} bytes sha256={} in {} ms",
        report.bytes, report.sha256, report.fetch_ms
    );
    println!(
        "produced to {}[{}]@{} (idempotent, acks=all) in {} ms",
        report.topic, report.partition, report.offset, report.produce_ms
    );
    println!(
        "consumed back in a consumer group, bytes and headers identical, offset committed, in {} ms",
        report.consume_ms
    );
    println!("smoke pipeline OK");
    Ok(ExitCode::SUCCESS)
}
