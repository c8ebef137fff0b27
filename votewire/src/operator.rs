//! The operator's feed commands (`votewire feeds list|show|history|add`
//! and the actions `pause|resume|poll-now|unquarantine|reset-cursor`),
//! through the operator API (`--api URL` or `VOTEWIRE_API_URL`, with
//! `VOTEWIRE_API_TOKEN`) or straight on the state store and registry
//! (`--local`, or when no API is named). Both ways print the same: a table
//! for people, or with `--json` the API's own JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use votewire_core::config::VotewireConfig;
use votewire_ingestors::feeds::load_registry;
use votewire_ingestors::state::{FeedStateStore, OperatorAction, open_feed_state};

use crate::api::FeedRegistry;
use crate::api::feeds::{self, ActionDone, FeedDetail, FeedList, HistoryEvent, HistoryPage};

/// Where the command goes.
#[derive(clap::Args, Clone)]
pub struct Via {
    /// The operator API, e.g. `http://127.0.0.1:8080` (token in
    /// `VOTEWIRE_API_TOKEN`).
    #[arg(long, env = "VOTEWIRE_API_URL")]
    api: Option<String>,
    /// The API token. Prefer the variable: a command line is visible to
    /// every user of the machine.
    #[arg(long, env = "VOTEWIRE_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Work on the state store and registry directly, even when an API is
    /// named.
    #[arg(long)]
    local: bool,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The feed registry (file or directory): needed with `--local` for
    /// `list`, `show` and `add`.
    #[arg(long, env = "VOTEWIRE_FEEDS")]
    feeds: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum ActionName {
    /// Stop polling the feed (running ingestors apply it within a lease
    /// round).
    Pause(ActionArgs),
    /// Poll again; also releases a quarantine.
    Resume(ActionArgs),
    /// Restart the feed so it polls at once.
    PollNow(ActionArgs),
    /// Release a quarantined feed.
    Unquarantine(ActionArgs),
    /// Forget the feed's cursor: the next poll fetches everything.
    ResetCursor(ActionArgs),
}

#[derive(clap::Args)]
pub struct ActionArgs {
    id: String,
    /// Who is acting, for the history with `--local` (through the API the
    /// token's name is recorded).
    #[arg(long, env = "USER", default_value = "operator")]
    by: String,
    #[command(flatten)]
    via: Via,
}

/// A call through the API failed in a way the operator can act on.
fn explain(status: reqwest::StatusCode, body: &serde_json::Value, what: &str) -> anyhow::Error {
    let detail = body["detail"].as_str().unwrap_or("no detail given");
    let mut msg = format!("{what}: the API answered {status}: {detail}");
    for e in body["errors"].as_array().into_iter().flatten() {
        msg.push_str(&format!("\n  {}", e.as_str().unwrap_or_default()));
    }
    let hint = match status.as_u16() {
        401 => "\nset VOTEWIRE_API_TOKEN to a token the API knows (ask the pool's admin)",
        403 => "\nthis needs an admin token",
        404 => "\ncheck the id with `votewire feeds list`",
        422 => "\nfix the listed problems; `votewire feeds validate FILE` checks a file locally",
        429 => "\nthe API is rate limiting this address; wait a second and retry",
        _ => "",
    };
    msg.push_str(hint);
    anyhow::anyhow!(msg)
}

struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn segment(id: &str) -> String {
    id.replace('%', "%25")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('#', "%23")
}

impl ApiClient {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base.trim_end_matches('/')))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "{what}: reaching the API at {}; is `votewire api` running?",
                self.base
            )
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("{what}: reading the answer"))?;
        let body: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{what}: the API's answer is not JSON"))?
        };
        if !status.is_success() {
            return Err(explain(status, &body, what));
        }
        Ok(body)
    }
}

enum Target {
    Api(ApiClient),
    Local {
        state: std::sync::Arc<dyn FeedStateStore>,
        registry: Option<PathBuf>,
    },
}

async fn target(config: &VotewireConfig, via: &Via) -> anyhow::Result<Target> {
    match (&via.api, via.local) {
        (Some(base), false) => {
            let token = via.token.clone().context(
                "set VOTEWIRE_API_TOKEN to use the API (or pass --local to work on the state store)",
            )?;
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(5))
                .build()?;
            Ok(Target::Api(ApiClient {
                http,
                base: base.clone(),
                token,
            }))
        }
        _ => Ok(Target::Local {
            state: open_feed_state(config)
                .await
                .context("opening the feed-state store (or name the API with --api)")?,
            registry: via.feeds.clone(),
        }),
    }
}

fn need_registry(registry: &Option<PathBuf>) -> anyhow::Result<&Path> {
    registry.as_deref().context(
        "name the feed registry with --feeds (or VOTEWIRE_FEEDS), or use the API with --api",
    )
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    print(&format!("{}\n", serde_json::to_string_pretty(v)?)).map(|_| ())
}

/// Writes a command's whole output; a reader that closed the pipe
/// (`| head`) ends it quietly.
fn print(text: &str) -> anyhow::Result<ExitCode> {
    crate::exit::print(text)?;
    Ok(ExitCode::SUCCESS)
}

fn ago(ms: Option<i64>) -> String {
    match ms {
        Some(t) => format!("{}s ago", (votewire_core::unix_ms() - t).max(0) / 1000),
        None => "-".into(),
    }
}

/// `feeds list`.
pub async fn list(config: &VotewireConfig, via: Via) -> anyhow::Result<ExitCode> {
    let feeds: FeedList = match target(config, &via).await? {
        Target::Api(c) => serde_json::from_value(
            c.call(reqwest::Method::GET, "/v1/feeds", None, "listing feeds")
                .await?,
        )?,
        Target::Local { state, registry } => {
            let registry = FeedRegistry::new(need_registry(&registry)?.to_path_buf());
            let all = registry
                .feeds()
                .map_err(|p| anyhow::anyhow!("{}\n{}", p.detail, p.errors.join("\n")))?;
            let now = votewire_core::unix_ms();
            let mut out = Vec::new();
            for f in &all {
                let stored = state
                    .load(f.entry.id.get_ref())
                    .await
                    .context("reading feed state")?;
                out.push(feeds::summary(f, stored.as_ref(), now));
            }
            FeedList { feeds: out }
        }
    };
    if via.json {
        print_json(&feeds)?;
        return Ok(ExitCode::SUCCESS);
    }
    print(&render_list(&feeds))
}

/// `feeds list`'s table.
fn render_list(feeds: &FeedList) -> String {
    let mut out = format!(
        "{:<32} {:<14} {:<8} {:<12} {:>6} {:<12} {:<12} {:<20}\n",
        "feed", "family", "enabled", "health", "seq", "changed", "fetched", "lease owner"
    );
    for f in &feeds.feeds {
        out.push_str(&format!(
            "{:<32} {:<14} {:<8} {:<12} {:>6} {:<12} {:<12} {:<20}\n",
            f.id,
            f.family,
            if f.enabled { "yes" } else { "no" },
            f.health,
            if f.source_seq > 0 {
                f.source_seq.to_string()
            } else {
                "-".into()
            },
            ago(f.last_change_ms),
            ago(f.last_fetch_ms),
            match (&f.lease_owner, f.lease_live) {
                (Some(o), true) => o.clone(),
                // Released or lapsed: nobody holds it now.
                (Some(o), false) => format!("- (last {o})"),
                (None, _) => "-".into(),
            }
        ));
    }
    out
}

/// `feeds show`.
pub async fn show(config: &VotewireConfig, id: &str, via: Via) -> anyhow::Result<ExitCode> {
    let detail: FeedDetail = match target(config, &via).await? {
        Target::Api(c) => serde_json::from_value(
            c.call(
                reqwest::Method::GET,
                &format!("/v1/feeds/{}", segment(id)),
                None,
                &format!("showing feed {id}"),
            )
            .await?,
        )?,
        Target::Local { state, registry } => {
            let registry = FeedRegistry::new(need_registry(&registry)?.to_path_buf());
            let feed = registry
                .find(id)
                .map_err(|p| anyhow::anyhow!("{}", p.detail))?;
            feeds::detail(state.as_ref(), &registry, feed)
                .await
                .map_err(|p| anyhow::anyhow!("{}", p.detail))?
        }
    };
    if via.json {
        print_json(&detail)?;
        return Ok(ExitCode::SUCCESS);
    }
    print(&render_detail(&detail)?)
}

/// `feeds show`'s text.
fn render_detail(detail: &FeedDetail) -> anyhow::Result<String> {
    use std::fmt::Write;
    let s = &detail.summary;
    let mut out = String::new();
    writeln!(
        out,
        "feed {} ({}), election {}",
        s.id, s.family, s.election_id
    )?;
    writeln!(out, "  defined at      {}", detail.defined_at)?;
    writeln!(
        out,
        "  health          {}{}",
        s.health,
        if s.paused { " (paused)" } else { "" }
    )?;
    writeln!(out, "  source_seq      {}", s.source_seq)?;
    writeln!(out, "  last change     {}", ago(s.last_change_ms))?;
    writeln!(out, "  last fetch      {}", ago(s.last_fetch_ms))?;
    writeln!(out, "  last error      {}", ago(s.last_error_ms))?;
    // The detail carries a lease only while it is live; the summary keeps
    // the last owner of a released or lapsed one.
    match (&detail.lease, &s.lease_owner) {
        (None, Some(last)) => writeln!(
            out,
            "  lease           none (last held by {last}: released or lapsed)"
        )?,
        (Some(l), _) => writeln!(
            out,
            "  lease           {} (fencing {}, expires in {}s)",
            l.owner,
            l.fencing,
            (l.expires_ms - votewire_core::unix_ms()).max(0) / 1000
        )?,
        (None, None) => writeln!(out, "  lease           none (no ingestor has held it)")?,
    }
    if let Some(c) = &detail.cursor {
        writeln!(
            out,
            "  cursor          version {} etag {} last-modified {} sha256 {} nextrequest {} sftp files {}",
            c.version.as_deref().unwrap_or("-"),
            c.etag.as_deref().unwrap_or("-"),
            c.last_modified.as_deref().unwrap_or("-"),
            c.sha256.as_deref().map_or("-", |h| &h[..h.len().min(16)]),
            c.next_request.as_deref().unwrap_or("-"),
            c.sftp_files_seen
        )?;
    }
    writeln!(out, "  config (secrets by reference):")?;
    for line in serde_json::to_string_pretty(&detail.config)?.lines() {
        writeln!(out, "    {line}")?;
    }
    Ok(out)
}

/// `feeds history`: every stored transition, newest first.
pub async fn history(config: &VotewireConfig, id: &str, via: Via) -> anyhow::Result<ExitCode> {
    let mut events: Vec<HistoryEvent> = Vec::new();
    let mut token: Option<String> = None;
    let target = target(config, &via).await?;
    loop {
        let page: HistoryPage = match &target {
            Target::Api(c) => {
                let mut path = format!("/v1/feeds/{}/history?limit=500", segment(id));
                if let Some(t) = &token {
                    path.push_str(&format!("&page_token={}", segment(t)));
                }
                serde_json::from_value(
                    c.call(
                        reqwest::Method::GET,
                        &path,
                        None,
                        &format!("reading {id}'s history"),
                    )
                    .await?,
                )?
            }
            Target::Local { state, .. } => {
                let (page, next) = state
                    .history(id, 500, token.clone())
                    .await
                    .context("reading feed events")?;
                HistoryPage {
                    events: page.into_iter().map(feeds::history_event).collect(),
                    next_page_token: next,
                }
            }
        };
        events.extend(page.events);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    if via.json {
        print_json(&events)?;
        return Ok(ExitCode::SUCCESS);
    }
    print(&render_history(id, &events))
}

/// `feeds history`'s lines, times in UTC.
fn render_history(id: &str, events: &[HistoryEvent]) -> String {
    if events.is_empty() {
        return format!("no transitions stored for {id}\n");
    }
    events
        .iter()
        .map(|e| {
            let at = jiff::Timestamp::from_millisecond(e.at_ms)
                .map_or_else(|_| format!("{} ms", e.at_ms), |t| format!("{t:.3}"));
            format!(
                "{at} {} -> {} by {}: {}\n",
                e.from.as_deref().unwrap_or("-"),
                e.to,
                e.actor,
                e.reason
            )
        })
        .collect()
}

/// `feeds pause|resume|poll-now|unquarantine|reset-cursor`.
pub async fn act(config: &VotewireConfig, which: ActionName) -> anyhow::Result<ExitCode> {
    let (args, action, name) = match which {
        ActionName::Pause(a) => (a, OperatorAction::Pause, "pause"),
        ActionName::Resume(a) => (a, OperatorAction::Resume, "resume"),
        ActionName::PollNow(a) => (a, OperatorAction::PollNow, "poll-now"),
        ActionName::Unquarantine(a) => (a, OperatorAction::Resume, "unquarantine"),
        ActionName::ResetCursor(a) => (a, OperatorAction::ResetCursor, "reset-cursor"),
    };
    let id = &args.id;
    let done: ActionDone = match target(config, &args.via).await? {
        Target::Api(c) => serde_json::from_value(
            c.call(
                reqwest::Method::POST,
                &format!("/v1/feeds/{}/{name}", segment(id)),
                None,
                &format!("{name} {id}"),
            )
            .await?,
        )?,
        Target::Local { state, .. } => {
            let stored = state.load(id).await.context("reading feed state")?;
            let health = stored.as_ref().map_or("never run", |s| s.health.as_str());
            if let Some(why) = feeds::refusal(action, name, id, health) {
                anyhow::bail!("{why}");
            }
            let at_ms = votewire_core::unix_ms();
            let actor = format!("operator:{}", args.by);
            let (before, after) = state
                .act(id, action, &actor, at_ms)
                .await
                .context("storing the operator action")?;
            feeds::action_done(id, name, before, after, actor, at_ms)
        }
    };
    if args.via.json {
        print_json(&done)?;
    } else {
        crate::exit::print(&format!(
            "feed {}: {} -> {} ({} by {}; {})\n",
            done.feed_id,
            done.health_before,
            done.health_after,
            done.action,
            done.actor,
            done.applies
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// A TOML file of `[[feed]]` entries.
    file: PathBuf,
    #[command(flatten)]
    via: Via,
}

/// The folder holding `file`, absolute (a bare `tx.toml` is in the
/// working directory: its parent is the empty path).
fn folder_of(file: &Path) -> anyhow::Result<PathBuf> {
    let file =
        std::path::absolute(file).with_context(|| format!("making {} absolute", file.display()))?;
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// What `feeds add` does with an entry's `mapping_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MappingFile {
    /// Read into `mapping`: the entry goes to an API, which may run where
    /// the file is not.
    Inline,
    /// Kept as a reference (made absolute): an edit of the shared file
    /// reaches every feed that names it.
    Reference,
}

/// The feed file `text` (read from `file`) as it means the same anywhere:
/// every relative path (`companion`, the SFTP key files, a referenced
/// `mapping_file`) made absolute against `file`'s folder, as the registry
/// reads them.
fn anchored(text: &str, file: &Path, mapping_file: MappingFile) -> anyhow::Result<toml::Table> {
    let mut table: toml::Table = text.parse().context("parsing the file as TOML")?;
    let dir = folder_of(file)?;
    let absolute = |v: &mut toml::Value| {
        if let Some(p) = v.as_str().map(Path::new).filter(|p| p.is_relative()) {
            *v = toml::Value::String(dir.join(p).to_string_lossy().into_owned());
        }
    };
    let entries = table.get_mut("feed").and_then(|f| f.as_array_mut());
    for entry in entries
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_table_mut())
    {
        match mapping_file {
            MappingFile::Reference => {
                entry.get_mut("mapping_file").map(absolute);
            }
            MappingFile::Inline => {
                if let Some(mut path) = entry.remove("mapping_file") {
                    absolute(&mut path);
                    let path = PathBuf::from(path.as_str().unwrap_or_default());
                    let mapping = votewire_ingestors::feeds::read_mapping(&path)
                        .map_err(anyhow::Error::msg)?;
                    entry.insert("mapping".into(), toml::Value::Table(mapping));
                }
            }
        }
        entry.get_mut("companion").map(absolute);
        if let Some(source) = entry.get_mut("source").and_then(|s| s.as_table_mut()) {
            for kind in votewire_ingestors::sources::SOURCES {
                for field in kind.path_fields {
                    source.get_mut(*field).map(absolute);
                }
            }
        }
    }
    Ok(table)
}

/// `feeds add FILE`: through the API, one POST per entry; with `--local`,
/// the file is validated with the registry and copied into it.
pub async fn add(config: &VotewireConfig, args: AddArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    // Every entry must be valid before anything is sent or written.
    if let Err(errors) = load_registry(&args.file) {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::bail!("{} problem(s); nothing was added", errors.len());
    }
    match target(config, &args.via).await? {
        Target::Api(c) => {
            let file = anchored(&text, &args.file, MappingFile::Inline)?;
            anyhow::ensure!(
                !file.contains_key("election"),
                "{} has [[election]] tables, which the API does not take (it adds feeds \
                 only); put them in a registry file by hand. Nothing was added",
                args.file.display()
            );
            let entries = file
                .get("feed")
                .and_then(|f| f.as_array())
                .cloned()
                .unwrap_or_default();
            for entry in entries {
                let json = serde_json::to_value(&entry)?;
                let id = json["id"].as_str().unwrap_or("?").to_string();
                c.call(
                    reqwest::Method::POST,
                    "/v1/feeds",
                    Some(&json),
                    &format!("adding {id}"),
                )
                .await?;
                crate::exit::print(&format!("added {id}\n"))?;
            }
        }
        Target::Local { registry, .. } => {
            let dir = need_registry(&registry)?;
            anyhow::ensure!(
                dir.is_dir(),
                "{} is a file; --local add copies into a registry directory",
                dir.display()
            );
            let name = args.file.file_name().context("the file has no name")?;
            let dest = dir.join(name);
            anyhow::ensure!(
                !dest.exists(),
                "{} exists; edit it, or give the new file another name",
                dest.display()
            );
            // Copied elsewhere, the file's relative paths would point
            // elsewhere too: write them anchored (comments are lost then).
            let same_folder = folder_of(&args.file).ok() == dir.canonicalize().ok();
            let content = if same_folder {
                text.clone()
            } else {
                toml::to_string(&anchored(&text, &args.file, MappingFile::Reference)?)?
            };
            let mut file = atomic_write_file::AtomicWriteFile::open(&dest)?;
            std::io::Write::write_all(&mut file, content.as_bytes())?;
            file.commit()?;
            if let Err(errors) = load_registry(dir) {
                std::fs::remove_file(&dest)?;
                for e in &errors {
                    eprintln!("{e}");
                }
                anyhow::bail!(
                    "with the rest of the registry: {} problem(s); nothing was added",
                    errors.len()
                );
            }
            crate::exit::print(&format!(
                "added {} (ingestors pick it up at their next registry check)\n",
                dest.display()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use crate::api::feeds::{FeedDetail, FeedList, FeedSummary, HistoryEvent};

    fn summary(owner: Option<&str>, live: bool) -> FeedSummary {
        FeedSummary {
            id: "clarity:GA:107556".into(),
            family: "clarity-json".into(),
            election_id: "ga-2021".into(),
            enabled: true,
            health: "healthy".into(),
            paused: false,
            source_seq: 3,
            last_change_ms: None,
            last_fetch_ms: None,
            last_error_ms: None,
            freshness_s: None,
            lease_owner: owner.map(str::to_string),
            lease_live: live,
        }
    }

    /// A lease nobody holds now shows no owner, and names the last one.
    #[test]
    fn a_released_lease_shows_no_owner_and_history_shows_utc_times() {
        let table = super::render_list(&FeedList {
            feeds: vec![
                summary(Some("ingest-1"), true),
                summary(Some("ingest-2"), false),
                summary(None, false),
            ],
        });
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 4, "{table}");
        assert!(rows[1].trim_end().ends_with(" ingest-1"), "{table}");
        assert!(
            rows[2].trim_end().ends_with(" - (last ingest-2)"),
            "{table}"
        );
        assert!(rows[3].trim_end().ends_with(" -"), "{table}");
        let history = super::render_history(
            "x",
            &[HistoryEvent {
                at_ms: 1_609_459_200_123,
                from: Some("healthy".into()),
                to: "paused".into(),
                reason: "operator".into(),
                actor: "operator:ana".into(),
            }],
        );
        assert_eq!(
            history,
            "2021-01-01T00:00:00.123Z healthy -> paused by operator:ana: operator\n"
        );
        assert_eq!(
            super::render_history("x", &[]),
            "no transitions stored for x\n"
        );
        // The detail view: the API sends no lease once it is released, and
        // the summary still names who held it last.
        let detail = |owner: Option<&str>| FeedDetail {
            summary: summary(owner, false),
            defined_at: "feeds.toml:1".into(),
            config: serde_json::json!({}),
            cursor: None,
            lease: None,
            operator_generation: 0,
        };
        let released = super::render_detail(&detail(Some("ingest-2"))).unwrap();
        assert!(
            released
                .contains("  lease           none (last held by ingest-2: released or lapsed)\n"),
            "{released}"
        );
        let never = super::render_detail(&detail(None)).unwrap();
        assert!(
            never.contains("  lease           none (no ingestor has held it)\n"),
            "{never}"
        );
    }

    /// `feeds add tx.toml` names a file in the working directory: its
    /// folder is that directory, absolute, not the empty path (against
    /// which relative paths stayed relative).
    #[test]
    fn a_bare_file_name_is_in_the_working_directory() {
        let here = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(
            super::folder_of(std::path::Path::new("tx.toml")).unwrap(),
            here
        );
        let table = super::anchored(
            "[[feed]]\nid = \"x\"\ncompanion = \"names.json\"\n",
            std::path::Path::new("tx.toml"),
            super::MappingFile::Reference,
        )
        .unwrap();
        assert_eq!(
            table["feed"][0]["companion"].as_str(),
            here.join("names.json").to_str()
        );
    }

    /// A feed file sent to the API or copied into another folder keeps
    /// meaning the same files: its relative paths are anchored to where it
    /// was written, its mapping file inlined for the API and kept as a
    /// reference in a copy; secret names are left as names in the
    /// feed-secrets folder.
    #[test]
    fn an_added_feed_means_the_same_files_wherever_it_lands() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tx-map.toml"), "layout = \"unit-rows\"\n").unwrap();
        let file = dir.path().join("tx.toml");
        let text = "[[feed]]\nid = \"x\"\nmapping_file = \"tx-map.toml\"\ncompanion = \"names.json\"\n\
                    [feed.source]\nkind = \"sftp\"\nkey_file = \"/etc/key\"\nknown_hosts = \"kh\"\n\
                    secret_headers = { x-token = { file = \"token\" } }\n";
        let copy = super::anchored(text, &file, super::MappingFile::Reference).unwrap();
        let here = dir.path().canonicalize().unwrap();
        assert_eq!(
            copy["feed"][0]["mapping_file"].as_str(),
            here.join("tx-map.toml").to_str()
        );
        assert!(!copy["feed"][0].as_table().unwrap().contains_key("mapping"));
        let table = super::anchored(text, &file, super::MappingFile::Inline).unwrap();
        let entry = table["feed"][0].as_table().unwrap();
        assert!(!entry.contains_key("mapping_file"));
        assert_eq!(entry["mapping"]["layout"].as_str(), Some("unit-rows"));
        assert_eq!(
            entry["companion"].as_str(),
            here.join("names.json").to_str()
        );
        let source = entry["source"].as_table().unwrap();
        assert_eq!(source["key_file"].as_str(), Some("/etc/key"));
        assert_eq!(source["known_hosts"].as_str(), here.join("kh").to_str());
        assert_eq!(
            source["secret_headers"]["x-token"]["file"].as_str(),
            Some("token")
        );
    }
}
