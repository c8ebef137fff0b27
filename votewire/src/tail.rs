//! `votewire tail results`: decode the results topic for people and
//! scripts. Reads every partition (no consumer group, nothing committed)
//! from the beginning (the compacted state of every race) or the end, and
//! prints each `ContestResult` as a table row, or as a JSON line with
//! `--json`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::Offset;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use votewire_core::config::VotewireConfig;
use votewire_core::kafka::KafkaClientContext;
use votewire_ingestors::feeds::duration_arg;
use votewire_schemas::{ContestResult, codec, schemas};

#[derive(clap::Subcommand)]
pub enum TailWhat {
    /// The results topic (`topics.results`).
    Results(TailArgs),
}

#[derive(clap::Args)]
pub struct TailArgs {
    /// Only this contest id (exact).
    #[arg(long)]
    contest: Option<String>,
    /// Only this election id.
    #[arg(long)]
    election: Option<String>,
    /// Only units whose name contains this (case-insensitive).
    #[arg(long)]
    unit: Option<String>,
    /// Start at the `beginning` (every race's latest state first) or the
    /// `end` (only what arrives from now on).
    #[arg(long, default_value = "beginning", value_parser = ["beginning", "end"])]
    from: String,
    /// One JSON object per line: `{"key", "partition", "offset", "result"}`.
    #[arg(long)]
    json: bool,
    /// Stop after nothing arrived for this long (default: follow until
    /// Ctrl-C).
    #[arg(long, value_parser = duration_arg)]
    idle: Option<Duration>,
}

fn wanted(a: &TailArgs, r: &ContestResult) -> bool {
    a.contest.as_ref().is_none_or(|c| *c == r.contest_id)
        && a.election.as_ref().is_none_or(|e| *e == r.election_id)
        && a.unit
            .as_ref()
            .is_none_or(|u| r.unit_name.to_lowercase().contains(&u.to_lowercase()))
}

/// One human line: contest, unit, precincts, then each choice with votes
/// and percent, leader first.
fn human(r: &ContestResult) -> String {
    let mut choices: Vec<_> = r.choices.iter().collect();
    choices.sort_by(|a, b| {
        b.votes
            .cmp(&a.votes)
            .then(a.choice_name.cmp(&b.choice_name))
    });
    let shown: Vec<String> = choices
        .iter()
        .take(4)
        .map(|c| format!("{} {} ({:.1}%)", c.choice_name, c.votes, c.percent))
        .collect();
    let more = choices.len().saturating_sub(4);
    let precincts = match (r.precincts_reporting, r.precincts_total) {
        (Some(a), Some(b)) => format!(" {a}/{b} precincts"),
        _ => String::new(),
    };
    format!(
        "{} | {} ({:?}){} | {}{} | total {}{}",
        r.contest_name,
        r.unit_name,
        r.unit_type,
        precincts,
        shown.join(", "),
        if more > 0 {
            format!(", +{more} more")
        } else {
            String::new()
        },
        r.total_votes,
        if r.aggregates_disagree {
            " | reported total disagrees with the sum of its units"
        } else {
            ""
        }
    )
}

pub fn run(config: &VotewireConfig, what: TailWhat) -> anyhow::Result<ExitCode> {
    let TailWhat::Results(args) = what;
    let idle = args.idle;
    let topic = &config.topics.results;
    let consumer: BaseConsumer<KafkaClientContext> =
        votewire_core::kafka::consumer_config(&config.kafka, "tail", "votewire-tail")
            .create_with_context(KafkaClientContext::default())
            .context("creating the consumer")?;
    let start = if args.from == "end" {
        Offset::End
    } else {
        Offset::Beginning
    };
    let partitions = votewire_core::kafka::assign_all_partitions(
        &consumer,
        topic,
        start,
        Duration::from_secs(10),
    )
    .with_context(|| format!("reading the metadata of {topic}"))?;
    if partitions.is_empty() {
        anyhow::bail!(
            "{topic} has no partitions: is this the right topic (topics.results, VOTEWIRE_TOPIC_RESULTS) and broker?"
        );
    }
    let schema = &schemas().contest_result;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut shown, mut read, mut undecodable) = (0u64, 0u64, 0u64);
    let mut last = Instant::now();
    loop {
        if idle.is_some_and(|d| last.elapsed() >= d) {
            break;
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            out.flush()?;
            continue;
        };
        let m = m.with_context(|| format!("reading {topic}"))?;
        last = Instant::now();
        read += 1;
        let Some(bytes) = m.payload() else { continue };
        let result: ContestResult = match codec::decode(schema, bytes) {
            Ok(r) => r,
            Err(e) => {
                undecodable += 1;
                eprintln!(
                    "{topic} partition {} offset {}: not a ContestResult: {e}",
                    m.partition(),
                    m.offset()
                );
                continue;
            }
        };
        if !wanted(&args, &result) {
            continue;
        }
        shown += 1;
        if args.json {
            let line = serde_json::json!({
                "key": String::from_utf8_lossy(m.key().unwrap_or_default()),
                "partition": m.partition(),
                "offset": m.offset(),
                "result": result,
            });
            crate::exit::stdout_write(writeln!(out, "{line}"))?;
        } else {
            crate::exit::stdout_write(writeln!(out, "{}", human(&result)))?;
        }
    }
    crate::exit::stdout_write(out.flush())?;
    eprintln!("{read} record(s) read, {shown} shown, {undecodable} undecodable");
    Ok(ExitCode::SUCCESS)
}
