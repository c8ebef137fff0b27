//! `votewire feeds`: validate a registry, dry-run one feed (`test`), and
//! look at or act on feed state (`list`, `show`, `history`, `pause`,
//! `resume`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use votewire_core::config::VotewireConfig;
use votewire_ingestors::archive::RawArchive;
use votewire_ingestors::feeds::{ValidFeed, load_registry};
use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::live_feed::{FeedSpec, FeedTools, dry_run};
use votewire_ingestors::published_view::read_published;
use votewire_ingestors::state::{FeedStateStore, open_feed_state};
use votewire_schemas::VoteCell;

pub fn validate(path: &Path) -> ExitCode {
    match load_registry(path) {
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
    /// How long the votes topic must be quiet before the read of the last
    /// published cells stops.
    #[arg(long, default_value = "2s")]
    idle: String,
}

/// `feeds test`: fetch once, transform, diff against the last published
/// cells. Produces nothing, stores nothing. Exit 0 when the payload is
/// accepted, 2 when the transformer rejects it, 1 when it cannot be
/// fetched.
pub async fn test(config: &VotewireConfig, args: TestArgs) -> anyhow::Result<ExitCode> {
    let feed = find(&args.feeds, &args.id)?;
    let spec = FeedSpec::from_entry(&feed.entry)?;
    let idle = votewire_ingestors::feeds::parse_duration(&args.idle)
        .context("--idle is not a duration")?;
    let limits = FetchLimits::default();
    let tools = FeedTools::new(client(&limits)?, 1, None::<RawArchive>, 4);
    println!(
        "feed {} ({}) from {:?}, defined at {}:{}",
        spec.feed_id,
        spec.family,
        spec.source,
        feed.file.display(),
        feed.line
    );
    let run = match dry_run(&spec, &tools).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("feed {}: fetching: {e}", spec.feed_id);
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
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
            return Ok(ExitCode::from(2));
        }
    };
    println!(
        "transformed into {} cells in {:.1} ms",
        out.cells.len(),
        run.transform_time.as_secs_f64() * 1e3
    );
    let kafka = config.kafka.clone();
    let (topic, feed_id) = (config.topics.votes.clone(), spec.feed_id.clone());
    let view = tokio::task::spawn_blocking(move || {
        read_published(&kafka, &topic, &feed_id, idle, Duration::from_secs(120))
    })
    .await??;
    println!(
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
        println!("  ~ {what}: {old} -> {now}");
    }
    for (what, votes) in new.iter().take(limit) {
        println!("  + {what}: {votes}");
    }
    for (what, votes) in gone.iter().take(limit) {
        println!("  - {what}: {votes} (published, not in this payload)");
    }
    let hidden = [changed.len(), new.len(), gone.len()]
        .iter()
        .map(|n| n.saturating_sub(limit))
        .sum::<usize>();
    if hidden > 0 {
        println!("  … {hidden} more (--all prints every one)");
    }
    println!(
        "{} changed, {} new, {} gone, {same} same. Dry run: nothing was produced or stored.",
        changed.len(),
        new.len(),
        gone.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct StateArgs {
    /// The feed registry: a TOML file or a directory of them.
    #[arg(long, env = "VOTEWIRE_FEEDS")]
    feeds: PathBuf,
}

async fn state_store(
    config: &VotewireConfig,
) -> anyhow::Result<std::sync::Arc<dyn FeedStateStore>> {
    open_feed_state(config)
        .await
        .context("opening the feed-state store")
}

/// `feeds list`: every registry entry with its stored state.
pub async fn list(config: &VotewireConfig, args: StateArgs) -> anyhow::Result<ExitCode> {
    let feeds = load_registry(&args.feeds).map_err(|errors| {
        anyhow::anyhow!(
            "the registry has {} problem(s); run `votewire feeds validate`",
            errors.len()
        )
    })?;
    let state = state_store(config).await?;
    println!(
        "{:<32} {:<14} {:<8} {:<12} {:>6} {:<20}",
        "feed", "family", "enabled", "health", "seq", "lease owner"
    );
    for f in &feeds {
        let id = f.entry.id.get_ref();
        let stored = state.load(id).await.context("reading feed state")?;
        let (health, seq, owner) = match &stored {
            Some(s) => (
                s.health.clone(),
                s.source_seq.to_string(),
                s.lease.as_ref().map_or("-".into(), |l| l.owner.clone()),
            ),
            None => ("never run".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<32} {:<14} {:<8} {:<12} {:>6} {:<20}",
            id,
            f.entry.family.get_ref(),
            if f.entry.enabled { "yes" } else { "no" },
            health,
            seq,
            owner
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The feed id.
    id: String,
    #[command(flatten)]
    registry: StateArgs,
}

/// `feeds show`: one feed's config (secrets by reference only), cursor,
/// health and lease.
pub async fn show(config: &VotewireConfig, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let feed = find(&args.registry.feeds, &args.id)?;
    println!(
        "defined at {}:{}\n{:#?}",
        feed.file.display(),
        feed.line,
        feed.entry
    );
    let state = state_store(config).await?;
    match state.load(&args.id).await.context("reading feed state")? {
        Some(s) => println!("{s:#?}"),
        None => println!("no stored state: the feed has never run"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `feeds pause` / `feeds resume`: stored at once, with a history event;
/// running ingestors pick it up on their next lease round.
pub async fn set_paused(
    config: &VotewireConfig,
    id: &str,
    paused: bool,
    by: &str,
) -> anyhow::Result<ExitCode> {
    let state = state_store(config).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let from = state
        .set_paused(id, paused, &format!("operator:{by}"), now)
        .await
        .context("storing the operator action")?;
    println!(
        "feed {id}: {from} -> {} (running ingestors apply it within one lease round)",
        if paused { "paused" } else { "healthy" }
    );
    Ok(ExitCode::SUCCESS)
}

/// `feeds history`: the stored health transitions, newest first.
pub async fn history(config: &VotewireConfig, id: &str) -> anyhow::Result<ExitCode> {
    let state = state_store(config).await?;
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = state
            .history(id, 100, after)
            .await
            .context("reading feed events")?;
        events.extend(page);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if events.is_empty() {
        println!("no health transitions stored for {id}");
    }
    for e in events {
        println!(
            "{} {} -> {} by {}: {}",
            e.at_ms,
            e.from.as_deref().unwrap_or("-"),
            e.to,
            e.actor,
            e.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
