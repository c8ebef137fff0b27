//! `votewire feeds validate` and `feeds test`: check a registry, and
//! dry-run one feed. The state commands (`list`, `show`, `history`, the
//! operator actions, `add`) are in [`crate::operator`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use votewire_core::config::VotewireConfig;
use votewire_ingestors::archive::RawArchive;
use votewire_ingestors::feeds::{FeedConfigError, ValidFeed, load_registry};
use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::live_feed::{FeedSpec, FeedTools, dry_run};
use votewire_ingestors::published_view::read_published;
use votewire_schemas::VoteCell;

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
        println!(
            "{}",
            serde_json::json!({"ok": ok, "feeds": feeds, "enabled": enabled, "files": files, "problems": problems})
        );
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
    /// Print every difference, not the first 20 of each kind.
    #[arg(long)]
    all: bool,
    /// One JSON object instead of the report: `{feed_id, url, bytes,
    /// sha256, version, cells, changed: [{cell, old, new}], new: [{cell,
    /// votes}], gone: [{cell, votes}], same}`, or `{feed_id, rejected}` /
    /// `{feed_id, fetch_error}`.
    #[arg(long)]
    json: bool,
}

/// `feeds test`: fetch once, transform, diff against the last published
/// cells. Produces nothing, stores nothing. Exit 0 when the payload is
/// accepted, 2 when the transformer rejects it, 1 when it cannot be
/// fetched.
pub async fn test(config: &VotewireConfig, args: TestArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    // The human report; with --json only the final object is printed.
    macro_rules! say {
        ($($t:tt)*) => {
            if !json {
                println!($($t)*);
            }
        };
    }
    let feed = find(&args.feeds, &args.id)?;
    let spec = FeedSpec::from_entry(&feed.entry)?;
    let limits = FetchLimits::default();
    let tools = FeedTools::new(client(&limits)?, 1, None::<RawArchive>, 4);
    say!(
        "feed {} ({}) from {:?}, defined at {}:{}",
        spec.feed_id,
        spec.family,
        spec.source,
        feed.file.display(),
        feed.line
    );
    let progress = spinner(&format!("fetching {}", spec.feed_id));
    let fetched = dry_run(&spec, &tools).await;
    progress.finish_and_clear();
    let run = match fetched {
        Ok(r) => r,
        Err(e) => {
            eprintln!("feed {}: fetching: {e}", spec.feed_id);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"feed_id": spec.feed_id, "fetch_error": e.to_string()})
                );
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    say!(
        "fetched {} bytes from {} (sha256 {}{})",
        run.bytes,
        run.url,
        &run.sha256[..16.min(run.sha256.len())],
        run.version
            .as_deref()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default()
    );
    let out = match run.result {
        Ok(out) => out,
        Err(e) => {
            eprintln!("rejected: {e}");
            eprintln!("dry run: nothing was produced or stored");
            if json {
                println!(
                    "{}",
                    serde_json::json!({"feed_id": spec.feed_id, "rejected": {
                        "class": e.class.as_str(),
                        "location": e.location.to_string(),
                        "message": e.message,
                    }})
                );
            }
            return Ok(crate::exit::Exit::Rejected.into());
        }
    };
    say!(
        "transformed into {} cells in {:.1} ms",
        out.cells.len(),
        run.transform_time.as_secs_f64() * 1e3
    );
    let kafka = config.kafka.clone();
    let (topic, feed_id) = (config.topics.votes.clone(), spec.feed_id.clone());
    let progress = spinner(&format!(
        "reading what {} published on {}",
        spec.feed_id, config.topics.votes
    ));
    let view = tokio::task::spawn_blocking(move || {
        read_published(&kafka, &topic, &feed_id, Duration::from_secs(120))
    })
    .await??;
    progress.finish_and_clear();
    say!(
        "last published on {}: {} cells of this feed ({} records read)",
        config.topics.votes,
        view.cells.len(),
        view.records_read
    );
    let mut changed = Vec::new();
    let mut new = Vec::new();
    let mut same = 0usize;
    let mut seen = std::collections::HashSet::new();
    for cell in out.cells.iter() {
        let key = cell.cell_key();
        seen.insert(key);
        match view.cells.get(&key) {
            Some(old) if old.votes == cell.votes => same += 1,
            Some(old) => changed.push((describe(&cell), old.votes, cell.votes)),
            None => new.push((describe(&cell), cell.votes)),
        }
    }
    let gone: BTreeMap<String, i64> = view
        .cells
        .iter()
        .filter(|(k, _)| !seen.contains(k))
        .map(|(_, c)| (describe(c), c.votes))
        .collect();
    changed.sort();
    new.sort();
    let limit = if args.all { usize::MAX } else { 20 };
    for (what, old, now) in changed.iter().take(limit) {
        say!("  ~ {what}: {old} -> {now}");
    }
    for (what, votes) in new.iter().take(limit) {
        say!("  + {what}: {votes}");
    }
    for (what, votes) in gone.iter().take(limit) {
        say!("  - {what}: {votes} (published, not in this payload)");
    }
    let hidden = [changed.len(), new.len(), gone.len()]
        .iter()
        .map(|n| n.saturating_sub(limit))
        .sum::<usize>();
    if hidden > 0 {
        say!("  … {hidden} more (--all prints every one)");
    }
    say!(
        "{} changed, {} new, {} gone, {same} same. Dry run: nothing was produced or stored.",
        changed.len(),
        new.len(),
        gone.len()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "feed_id": spec.feed_id,
                "url": run.url,
                "bytes": run.bytes,
                "sha256": run.sha256,
                "version": run.version,
                "cells": out.cells.len(),
                "changed": changed.iter().map(|(c, o, n)| serde_json::json!({"cell": c, "old": o, "new": n})).collect::<Vec<_>>(),
                "new": new.iter().map(|(c, v)| serde_json::json!({"cell": c, "votes": v})).collect::<Vec<_>>(),
                "gone": gone.iter().map(|(c, v)| serde_json::json!({"cell": c, "votes": v})).collect::<Vec<_>>(),
                "same": same,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
