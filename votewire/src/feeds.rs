//! `votewire feeds validate` and `feeds test`: check a registry, and
//! dry-run one feed. The state commands (`list`, `show`, `history`, the
//! operator actions, `add`) are in [`crate::operator`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use votewire_core::config::VotewireConfig;
use votewire_ingestors::archive::RawArchive;
use votewire_ingestors::dry_run::{DryRun, SavedPayload, dry_run, dry_run_saved};
use votewire_ingestors::feed_spec::{FeedSpec, read_regular_file};
use votewire_ingestors::feed_tools::FeedTools;
use votewire_ingestors::feeds::{FeedConfigError, ValidFeed, load_registry};
use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::published_view::read_published;
use votewire_schemas::{CellKey, VoteCell};
use votewire_transformers::cells::CellTable;

/// `feeds validate`: every problem with its file, line and field; exit 1
/// when there is any. With `json`, one object: `{ok, feeds, enabled,
/// files, problems: [{file, line, field, message}]}`.
pub fn validate(path: &Path, json: bool) -> ExitCode {
    // An empty registry loads (the API starts from one and fills it), but
    // validating one is a mistake: the path is wrong or the feeds are
    // elsewhere.
    let result = load_registry(path).and_then(|feeds| {
        if feeds.is_empty() {
            Err(vec![FeedConfigError {
                file: path.to_path_buf(),
                line: 0,
                field: "-".into(),
                message: "no feeds: no [[feed]] in any *.toml file here or in a folder under it"
                    .into(),
            }])
        } else {
            Ok(feeds)
        }
    });
    if json {
        let (ok, feeds, enabled, files, problems) = match &result {
            Ok(feeds) => (
                true,
                feeds.len(),
                feeds.iter().filter(|f| f.entry.enabled).count(),
                feeds
                    .iter()
                    .map(|f| &f.file)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
                Vec::new(),
            ),
            Err(errors) => (
                false,
                0,
                0,
                0,
                errors
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "file": e.file.display().to_string(),
                            "line": e.line,
                            "field": e.field,
                            "message": e.message,
                        })
                    })
                    .collect(),
            ),
        };
        let _ = crate::exit::print(&format!(
            "{}\n",
            serde_json::json!({"ok": ok, "feeds": feeds, "enabled": enabled, "files": files, "problems": problems})
        ));
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match result {
        Ok(feeds) => {
            let files: std::collections::BTreeSet<_> = feeds.iter().map(|f| &f.file).collect();
            let enabled = feeds.iter().filter(|f| f.entry.enabled).count();
            let _ = crate::exit::print(&format!(
                "ok: {} feeds ({enabled} enabled) in {} file(s)\n",
                feeds.len(),
                files.len()
            ));
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

fn find(registry: &Path, id: &str) -> anyhow::Result<ValidFeed> {
    let feeds = load_registry(registry).map_err(|errors| {
        anyhow::anyhow!(
            "the registry has {} problem(s); run `votewire feeds validate {}`",
            errors.len(),
            registry.display()
        )
    })?;
    feeds
        .into_iter()
        .find(|f| f.entry.id.get_ref() == id)
        .with_context(|| format!("no feed {id:?} in {}", registry.display()))
}

/// A spinner on stderr while a long step runs (hidden when stderr is not
/// a terminal, so scripts and logs stay clean).
fn spinner(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// One line naming a cell for people.
fn describe(c: &VoteCell) -> String {
    format!(
        "{} | {} | {} | {}",
        c.contest.name, c.unit.name, c.choice.name, c.vote_type_raw
    )
}

#[derive(clap::Args)]
pub struct TestArgs {
    /// The feed id.
    id: String,
    /// The feed registry: a TOML file or a directory of them.
    #[arg(long, env = "VOTEWIRE_FEEDS")]
    feeds: PathBuf,
    /// Transform this saved payload (an archived fetch, a file the source
    /// sent) instead of fetching: offline, the source is never asked. The
    /// diff against the votes topic is printed when a broker answers
    /// within 10 s.
    #[arg(long)]
    payload: Option<PathBuf>,
    /// Print every difference, not the first 20 of each kind.
    #[arg(long)]
    all: bool,
    /// One JSON object instead of the report: `{feed_id, url, bytes,
    /// sha256, version, cells, changed: [{cell, old, new}], new: [{cell,
    /// votes}], gone: [{cell, votes}], same}` (`published_error` instead
    /// of the diff when `--payload` found no broker), or `{feed_id,
    /// rejected}` / `{feed_id, fetch_error}`.
    #[arg(long)]
    json: bool,
}

/// The human report of `feeds test`; with `--json` only the final object
/// is printed.
struct Say {
    json: bool,
    /// Set once a write failed (the reader closed the pipe: `| head`):
    /// the rest of the report is dropped and the command still finishes.
    stopped: std::cell::Cell<bool>,
}

impl Say {
    fn new(json: bool) -> Self {
        Self {
            json,
            stopped: std::cell::Cell::new(false),
        }
    }

    fn line(&self, text: impl std::fmt::Display) {
        if self.json || self.stopped.get() {
            return;
        }
        if let Err(e) =
            std::io::Write::write_fmt(&mut std::io::stdout().lock(), format_args!("{text}\n"))
        {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("writing the report: {e}");
            }
            self.stopped.set(true);
        }
    }
}

/// `feeds test`: fetch once (or read `--payload`), transform, diff against
/// the last published cells. Produces nothing, stores nothing. Exit 0 when
/// the payload is accepted, 3 when the transformer rejects it, 1 when it
/// cannot be fetched or read.
pub async fn test(config: &VotewireConfig, args: TestArgs) -> anyhow::Result<ExitCode> {
    let say = Say::new(args.json);
    let feed = find(&args.feeds, &args.id)?;
    let spec = FeedSpec::from_entry(&feed.entry)?;
    let limits = FetchLimits::default();
    let tools = FeedTools::new(client(&limits)?, 1, None::<RawArchive>, 4);
    say.line(format_args!(
        "feed {} ({}) from {:?}, defined at {}:{}",
        spec.feed_id,
        spec.family,
        spec.source,
        feed.file.display(),
        feed.line
    ));
    let run = match obtain(&spec, &tools, args.payload.as_deref(), &say).await? {
        Ok(run) => run,
        Err(code) => return Ok(code),
    };
    say.line(format_args!(
        "{} {} bytes from {} (sha256 {}{})",
        if args.payload.is_some() {
            "read"
        } else {
            "fetched"
        },
        run.bytes,
        run.url,
        &run.sha256[..16.min(run.sha256.len())],
        run.version
            .as_deref()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default()
    ));
    let out = match run.result {
        Ok(out) => out,
        Err(e) => {
            eprintln!("rejected: {e}");
            eprintln!("dry run: nothing was produced or stored");
            if say.json {
                let _ = crate::exit::print(&format!(
                    "{}\n",
                    serde_json::json!({"feed_id": spec.feed_id, "rejected": {
                        "class": e.class.as_str(),
                        "location": e.location.to_string(),
                        "message": e.message,
                    }})
                ));
            }
            return Ok(crate::exit::Exit::Rejected.into());
        }
    };
    say.line(format_args!(
        "transformed into {} cells in {:.1} ms",
        out.cells.len(),
        run.transform_time.as_secs_f64() * 1e3
    ));
    let summary = serde_json::json!({
        "feed_id": spec.feed_id,
        "url": run.url,
        "bytes": run.bytes,
        "sha256": run.sha256,
        "version": run.version,
        "cells": out.cells.len(),
    });
    // Offline, a broker that does not answer soon means no diff, not a
    // two-minute wait.
    let wait = if args.payload.is_some() { 10 } else { 120 };
    let kafka = config.kafka.clone();
    let (topic, feed_id) = (config.topics.votes.clone(), spec.feed_id.clone());
    let progress = spinner(&format!(
        "reading what {} published on {}",
        spec.feed_id, config.topics.votes
    ));
    let view = tokio::task::spawn_blocking(move || {
        read_published(&kafka, &topic, &feed_id, Duration::from_secs(wait))
    })
    .await?;
    progress.finish_and_clear();
    let view = match view {
        Ok(view) => view,
        Err(e) if args.payload.is_some() => {
            say.line(format_args!(
                "no diff: {} could not be read ({e}). Dry run: nothing was produced or stored.",
                config.topics.votes
            ));
            if say.json {
                let mut summary = summary;
                summary["published_error"] = e.to_string().into();
                crate::exit::print(&format!("{summary}\n"))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    say.line(format_args!(
        "last published on {}: {} cells of this feed ({} records read)",
        config.topics.votes,
        view.cells.len(),
        view.records_read
    ));
    let diff = CellDiff::of(&out.cells, &view.cells);
    diff.print(&say, if args.all { usize::MAX } else { 20 });
    if say.json {
        let mut summary = summary;
        summary["changed"] = diff
            .changed
            .iter()
            .map(|(c, o, n)| serde_json::json!({"cell": c, "old": o, "new": n}))
            .collect();
        summary["new"] = diff
            .new
            .iter()
            .map(|(c, v)| serde_json::json!({"cell": c, "votes": v}))
            .collect();
        summary["gone"] = diff
            .gone
            .iter()
            .map(|(c, v)| serde_json::json!({"cell": c, "votes": v}))
            .collect();
        summary["same"] = diff.same.into();
        crate::exit::print(&format!("{summary}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The dry run of `spec`: fetched from its source, or read from `payload`.
/// `Err` is the exit code of a payload that could not be had (reported).
async fn obtain(
    spec: &FeedSpec,
    tools: &FeedTools,
    payload: Option<&Path>,
    say: &Say,
) -> anyhow::Result<Result<DryRun, ExitCode>> {
    if let Some(path) = payload {
        // The feed's fetch limit, and a regular file only (a FIFO would
        // hold the command in open()).
        let bytes = read_regular_file(path, spec.limits.max_bytes)
            .map_err(|why| anyhow::anyhow!("reading {}: {why}", path.display()))?;
        let uri = format!(
            "file://{}",
            std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
        );
        let saved = SavedPayload {
            bytes: bytes.into(),
            uri,
            content_type: None,
        };
        return Ok(Ok(dry_run_saved(spec, tools, saved).await));
    }
    let progress = spinner(&format!("fetching {}", spec.feed_id));
    let fetched = dry_run(spec, tools).await;
    progress.finish_and_clear();
    Ok(match fetched {
        Ok(run) => Ok(run),
        Err(e) => {
            eprintln!("feed {}: fetching: {e}", spec.feed_id);
            if say.json {
                let _ = crate::exit::print(&format!(
                    "{}\n",
                    serde_json::json!({"feed_id": spec.feed_id, "fetch_error": e.to_string()})
                ));
            }
            Err(ExitCode::FAILURE)
        }
    })
}

/// A payload's cells against what the feed last published, for people.
struct CellDiff {
    changed: Vec<(String, i64, i64)>,
    new: Vec<(String, i64)>,
    gone: BTreeMap<String, i64>,
    same: usize,
}

impl CellDiff {
    fn of(cells: &CellTable, published: &HashMap<CellKey, VoteCell>) -> CellDiff {
        let mut diff = CellDiff {
            changed: Vec::new(),
            new: Vec::new(),
            gone: BTreeMap::new(),
            same: 0,
        };
        let mut seen = std::collections::HashSet::new();
        for cell in cells.iter() {
            let key = cell.cell_key();
            seen.insert(key);
            match published.get(&key) {
                Some(old) if old.votes == cell.votes => diff.same += 1,
                Some(old) => diff.changed.push((describe(&cell), old.votes, cell.votes)),
                None => diff.new.push((describe(&cell), cell.votes)),
            }
        }
        diff.gone = published
            .iter()
            .filter(|(k, _)| !seen.contains(k))
            .map(|(_, c)| (describe(c), c.votes))
            .collect();
        diff.changed.sort();
        diff.new.sort();
        diff
    }

    fn print(&self, say: &Say, limit: usize) {
        for (what, old, now) in self.changed.iter().take(limit) {
            say.line(format_args!("  ~ {what}: {old} -> {now}"));
        }
        for (what, votes) in self.new.iter().take(limit) {
            say.line(format_args!("  + {what}: {votes}"));
        }
        for (what, votes) in self.gone.iter().take(limit) {
            say.line(format_args!(
                "  - {what}: {votes} (published, not in this payload)"
            ));
        }
        let hidden = [self.changed.len(), self.new.len(), self.gone.len()]
            .iter()
            .map(|n| n.saturating_sub(limit))
            .sum::<usize>();
        if hidden > 0 {
            say.line(format_args!("  … {hidden} more (--all prints every one)"));
        }
        say.line(format_args!(
            "{} changed, {} new, {} gone, {} same. Dry run: nothing was produced or stored.",
            self.changed.len(),
            self.new.len(),
            self.gone.len(),
            self.same
        ));
    }
}

/// `votewire feeds schema`: the feed file's JSON Schema on stdout, or
/// every published schema written into `folder`.
pub fn schema(folder: Option<&Path>) -> anyhow::Result<ExitCode> {
    use votewire_ingestors::feeds::schema;
    match folder {
        None => {
            let text = schema::render(&schema::feed_file_schema());
            crate::exit::stdout_write(std::io::Write::write_all(
                &mut std::io::stdout(),
                text.as_bytes(),
            ))?;
        }
        Some(folder) => {
            for path in schema::write_schemas(folder)
                .with_context(|| format!("writing the schemas into {}", folder.display()))?
            {
                crate::exit::print(&format!("wrote {}\n", path.display()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
