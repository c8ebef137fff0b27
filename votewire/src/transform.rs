//! `votewire transform`: one payload file in, one JSON object per cell out.
//!
//! The output shape is a contract read by external checks: one JSON object
//! per line on stdout, a one-line summary on stderr, exit 0 on success and
//! exit 3 with the typed error on stderr when the payload is rejected.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use votewire_transformers::{FAMILIES, FamilyInputs, PayloadContext};

#[derive(clap::Args)]
pub struct TransformArgs {
    /// Transformer family (see `votewire transform --list`).
    #[arg(long = "format", required_unless_present = "list")]
    family: Option<String>,
    /// Family mapping (TOML), e.g. CSV columns or HTML selectors.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Companion document with names (Clarity summary.json, AP metadata).
    #[arg(long)]
    companion: Option<PathBuf>,
    /// Feed id to stamp on the cells.
    #[arg(long, default_value = "local")]
    feed_id: String,
    /// List the families and exit.
    #[arg(long)]
    list: bool,
    /// The payload file.
    #[arg(required_unless_present = "list")]
    path: Option<PathBuf>,
}

#[derive(Serialize)]
struct CellLine<'a> {
    contest_source_id: &'a str,
    contest_name: &'a str,
    contest_kind: &'a str,
    choice_source_id: &'a str,
    choice_name: &'a str,
    choice_kind: &'a str,
    choice_party: Option<&'a str>,
    ru_source_id: &'a str,
    ru_name: &'a str,
    ru_type: &'a str,
    ru_parent_source_id: Option<&'a str>,
    vote_type: &'a str,
    vote_type_raw: &'a str,
    votes: i64,
    precincts_reporting: Option<i32>,
    precincts_total: Option<i32>,
    pct_expected_vote: Option<f64>,
    winner: Option<bool>,
    source_feed_id: &'a str,
    as_of: Option<i64>,
    cell_key: String,
}

fn read_mapping(path: &std::path::Path) -> anyhow::Result<toml::Table> {
    votewire_ingestors::feeds::read_mapping(path).map_err(anyhow::Error::msg)
}

pub fn run(args: TransformArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for f in FAMILIES {
            println!("{:<16} {}", f.name, f.reads);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let family = args.family.expect("clap requires it");
    if votewire_transformers::family(&family).is_none() {
        eprintln!(
            "error: unknown format {family:?}; known: {}",
            FAMILIES
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(crate::exit::Exit::Usage.into());
    }
    let path = args.path.expect("clap requires it");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mapping = args.mapping.as_deref().map(read_mapping).transpose()?;
    let companion = args
        .companion
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("reading companion {}", p.display())))
        .transpose()?;
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let mtime = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let ctx = PayloadContext::for_file(&args.feed_id, &path.display().to_string(), &sha, mtime);
    let inputs = FamilyInputs {
        mapping: mapping.as_ref(),
        companion: companion.as_deref(),
    };
    let started = Instant::now();
    let out = match votewire_transformers::transform(&family, &bytes, &ctx, &inputs) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("rejected: {e}");
            return Ok(crate::exit::Exit::Rejected.into());
        }
    };
    let elapsed = started.elapsed();
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    match write_cells(&mut w, &out.cells) {
        Ok(()) => {}
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("writing cells to stdout"),
    }
    let contests: std::collections::BTreeSet<u32> =
        out.cells.rows().iter().map(|r| r.contest).collect();
    eprintln!(
        "{} cells, {} contests from {} ({} bytes, {family}) in {:.1} ms{}",
        out.cells.len(),
        contests.len(),
        path.display(),
        bytes.len(),
        elapsed.as_secs_f64() * 1000.0,
        out.facts
            .next_request
            .as_deref()
            .map(|n| format!("; nextrequest {n}"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_cells(
    w: &mut impl Write,
    cells: &votewire_transformers::cells::CellTable,
) -> std::io::Result<()> {
    for c in cells.iter() {
        let line = CellLine {
            contest_source_id: &c.contest.source_id,
            contest_name: &c.contest.name,
            contest_kind: c.contest.kind.as_str(),
            choice_source_id: &c.choice.source_id,
            choice_name: &c.choice.name,
            choice_kind: c.choice.kind.as_str(),
            choice_party: c.choice.party.as_deref(),
            ru_source_id: &c.unit.source_id,
            ru_name: &c.unit.name,
            ru_type: c.unit.unit_type.as_str(),
            ru_parent_source_id: c.unit.parent_source_id.as_deref(),
            vote_type: c.vote_type.as_str(),
            vote_type_raw: &c.vote_type_raw,
            votes: c.votes,
            precincts_reporting: c.precincts_reporting,
            precincts_total: c.precincts_total,
            pct_expected_vote: c.pct_expected_vote,
            winner: c.winner,
            source_feed_id: &c.header.source_feed_id,
            as_of: c.header.as_of,
            cell_key: c.cell_key().to_hex(),
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}
