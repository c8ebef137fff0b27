//! `votewire export`: an election's current results as a NIST SP 1500-100
//! v2 `ElectionReport` (XML or JSON), from the compacted votes topic (see
//! `votewire_aggregator::nist_export` for the mapping). Also served by the
//! API at `GET /v1/export/{election}`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::Offset;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use votewire_aggregator::nist_export::{ExportFormat, ExportedReport, election_report};
use votewire_core::config::{KafkaConfig, VotewireConfig};
use votewire_core::kafka::KafkaClientContext;
use votewire_schemas::{CellKey, VoteCell, codec, schemas};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// `nist-cdf-xml` or `nist-cdf-json`.
    #[arg(long, value_parser = ["nist-cdf-xml", "nist-cdf-json"])]
    format: String,
    /// The election id (as the feeds name it).
    #[arg(long)]
    election: String,
    /// Write here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn format_of(name: &str) -> Option<ExportFormat> {
    match name {
        "nist-cdf-xml" => Some(ExportFormat::Xml),
        "nist-cdf-json" => Some(ExportFormat::Json),
        _ => None,
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    utc_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (the epoch itself
/// for a time outside jiff's range, years -9999 to 9999).
fn utc_timestamp(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// One scan of the votes topic for one election.
pub struct ElectionScan {
    /// The election's current cells, in a stable order.
    pub cells: Vec<VoteCell>,
    /// Every election with a cell on the topic (so that a request for one
    /// that has none is answered without another scan).
    pub elections: std::collections::HashSet<String>,
}

/// How long one scan may take before it is given up (a partial scan is
/// never exported as if it were whole).
const SCAN_DEADLINE: Duration = Duration::from_secs(300);

/// The current cells of `election`: the votes topic read from its
/// beginning to its end, the newest `source_seq` per cell.
pub fn current_cells(
    kafka: &KafkaConfig,
    topic: &str,
    election: &str,
) -> anyhow::Result<ElectionScan> {
    let mut cfg = votewire_core::kafka::consumer_config(kafka, "export", "votewire-export");
    cfg.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<KafkaClientContext> =
        cfg.create_with_context(KafkaClientContext::default())?;
    let partitions = votewire_core::kafka::assign_all_partitions(
        &consumer,
        topic,
        Offset::Beginning,
        Duration::from_secs(10),
    )?;
    let mut decoder = codec::VoteCellDecoder::new(schemas().vote_cell.id);
    let mut cells: HashMap<CellKey, VoteCell> = HashMap::new();
    let mut elections = std::collections::HashSet::new();
    let mut at_end = std::collections::HashSet::new();
    // The end is each partition's EOF event (librdkafka's
    // `enable.partition.eof`: the position reached the high watermark),
    // with an overall deadline.
    let deadline = Instant::now() + SCAN_DEADLINE;
    while at_end.len() < partitions.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{topic}: {} of {} partitions read to their end within {SCAN_DEADLINE:?}; \
             a partial scan is not exported (retry, or ask when the broker is less busy)",
            at_end.len(),
            partitions.len()
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let Some(bytes) = m.payload() else { continue };
                let Ok((key, cell)) = decoder.decode(bytes) else {
                    continue; // the aggregator dead-letters these; nothing to export
                };
                if &*cell.header.election_id != election {
                    if !elections.contains(&*cell.header.election_id) {
                        elections.insert(cell.header.election_id.to_string());
                    }
                    continue;
                }
                if cell.header.mode == votewire_schemas::FeedMode::Test {
                    continue; // publisher test data never reaches a live export
                }
                match cells.get(&key) {
                    Some(old) if old.header.source_seq > cell.header.source_seq => {}
                    _ => {
                        cells.insert(key, cell);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    if !cells.is_empty() {
        elections.insert(election.to_string());
    }
    let mut out: Vec<VoteCell> = cells.into_values().collect();
    // A stable order: the same cells give the same document.
    out.sort_by(|a, b| {
        (
            &a.header.provenance.feed_id,
            &a.contest.source_id,
            &a.choice.source_id,
            &a.unit.source_id,
            &a.vote_type_raw,
        )
            .cmp(&(
                &b.header.provenance.feed_id,
                &b.contest.source_id,
                &b.choice.source_id,
                &b.unit.source_id,
                &b.vote_type_raw,
            ))
    });
    Ok(ElectionScan {
        cells: out,
        elections,
    })
}

/// The report for `election`, read from `config`'s votes topic.
pub async fn export(
    config: &VotewireConfig,
    election: &str,
    format: ExportFormat,
) -> anyhow::Result<ExportedReport> {
    let (kafka, topic, e) = (
        config.kafka.clone(),
        config.topics.votes.clone(),
        election.to_string(),
    );
    let cells = tokio::task::spawn_blocking(move || current_cells(&kafka, &topic, &e))
        .await?
        .with_context(|| format!("reading {}", config.topics.votes))?
        .cells;
    anyhow::ensure!(
        !cells.is_empty(),
        "no cells of election {election:?} on {}; check the id with `votewire tail results`",
        config.topics.votes
    );
    Ok(election_report(election, &cells, &utc_now(), format))
}

pub async fn run(config: &VotewireConfig, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let format = format_of(&args.format).expect("clap checked the format");
    let report = export(config, &args.election, format).await?;
    match &args.out {
        Some(path) => std::fs::write(path, &report.bytes)
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::stdout().write_all(&report.bytes)?,
    }
    eprintln!(
        "{}: {} contests, {} units, {} vote counts, status {}",
        args.election, report.contests, report.units, report.vote_counts, report.status
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_civil_dates() {
        // Expected values from Python's datetime.fromtimestamp(s, utc).
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_609_891_000, "2021-01-05T23:56:40Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(super::utc_timestamp(secs), want);
        }
    }
}
