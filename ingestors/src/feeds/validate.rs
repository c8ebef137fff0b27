//! Loading a feed registry and checking every entry, collecting every
//! problem with its file, line and field rather than stopping at the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::config::{ElectionEntry, ElectionSettings, FeedEntry, FeedFile};
use crate::durations::parse_duration;
use crate::sources::SourceProblems;

/// One problem in a feed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfigError {
    /// The feed file the problem is in (the registry path itself when it could not be
    /// listed).
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// The feed and field, e.g. `clarity:GA:107556 family`.
    pub field: String,
    /// What is wrong, for an operator.
    pub message: String,
}

impl fmt::Display for FeedConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.field,
            self.message
        )
    }
}

/// A feed that passed validation, with where it was defined.
#[derive(Debug, Clone)]
pub struct ValidFeed {
    /// The entry as validated: its relative paths resolved against its file's folder and
    /// any `mapping_file` read into `mapping`.
    pub entry: FeedEntry,
    /// The feed file the entry is in.
    pub file: PathBuf,
    /// The 1-based line where the entry starts in that file.
    pub line: usize,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// The `.toml` files of `path` (itself, if it is a file) and of every
/// folder under it, sorted by path. Names starting with `.` are skipped
/// (editors' and the API's temporary files), and so are folders named
/// `mappings`: they hold the mapping files feeds name with `mapping_file`.
pub fn feed_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    toml_files(path, false)
}

/// [`feed_files`] and the files in the registry's `mappings` folders:
/// what an ingestor watches for a change to reload (a mapping that a feed
/// waiting to load names included).
pub fn registry_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    toml_files(path, true)
}

/// The `.toml` files of `path` and its folders, `mappings` folders only
/// `with_mappings`.
fn toml_files(path: &Path, with_mappings: bool) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                if with_mappings || entry.file_name() != MAPPINGS_FOLDER {
                    folders.push(p);
                }
            } else if p.extension().is_some_and(|e| e == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A registry folder of mapping files, not feeds.
const MAPPINGS_FOLDER: &str = "mappings";

/// Largest mapping file read (mappings are a few hundred bytes).
const MAX_MAPPING_FILE_BYTES: u64 = 1 << 20;

/// Makes every relative path in `e` relative to `dir`, the folder of the
/// feed file that names it.
fn resolve_paths(e: &mut FeedEntry, dir: &Path) {
    let under = |p: &Path| -> PathBuf {
        if p.is_relative() {
            dir.join(p)
        } else {
            p.to_path_buf()
        }
    };
    let spanned = |p: &Spanned<PathBuf>| Spanned::new(p.span(), under(p.get_ref()));
    e.companion = e.companion.as_ref().map(spanned);
    e.mapping_file = e.mapping_file.as_ref().map(spanned);
    // A `{ file = … }` secret is a plain name in the feed-secrets folder,
    // never a path (`secrets::check_reference`): it is not resolved here.
    e.source.get_mut().kind_config_mut().resolve_paths(&under);
}

/// A mapping file: the table `[feed.mapping]` would hold, bare or as a
/// `[mapping]` section, at most 1 MiB. The error names the file (and the
/// line, for TOML errors). `transform --mapping`, `feeds add` and the
/// registry's `mapping_file` all read mappings here.
pub fn read_mapping(path: &Path) -> Result<toml::Table, String> {
    let cannot = |why: std::io::Error| format!("cannot read {}: {why}", path.display());
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > MAX_MAPPING_FILE_BYTES {
        return Err(format!(
            "{} is {size} bytes; a mapping is at most 1 MiB",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(cannot)?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|why| {
        let line = why.span().map_or(0, |s| line_of(&text, s.start));
        format!("{}:{line}: {}", path.display(), why.message())
    })?;
    if let Some(toml::Value::Table(inner)) = table.remove("mapping") {
        table = inner;
    }
    Ok(table)
}

/// Reads `mapping_file` into `mapping`.
fn read_mapping_file(e: &mut FeedEntry) -> Result<(), (std::ops::Range<usize>, String)> {
    let Some(file) = &e.mapping_file else {
        return Ok(());
    };
    let span = file.span();
    if e.mapping.is_some() {
        return Err((span, "set [feed.mapping] or mapping_file, not both".into()));
    }
    let table = read_mapping(file.get_ref()).map_err(|why| (span.clone(), why))?;
    e.mapping = Some(Spanned::new(span, table));
    Ok(())
}

/// A file the feed names must be readable now, or the feed fails at its
/// first poll.
fn check_readable(
    path: &Path,
    span: std::ops::Range<usize>,
    field: &str,
    err: &mut impl FnMut(std::ops::Range<usize>, &str, String),
) {
    if let Err(why) = std::fs::File::open(path) {
        err(
            span,
            field,
            format!("cannot read {}: {why}", path.display()),
        );
    }
}

/// Loads and validates every feed under `path`. Returns the valid feeds, or
/// every problem found.
pub fn load_registry(path: &Path) -> Result<Vec<ValidFeed>, Vec<FeedConfigError>> {
    let files = feed_files(path).map_err(|e| {
        vec![FeedConfigError {
            file: path.to_path_buf(),
            line: 0,
            field: "-".into(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    let mut errors = Vec::new();
    let mut feeds = Vec::new();
    let mut seen: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    let mut elections = Elections::default();
    for file in files {
        let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(FeedConfigError {
                    file: file.clone(),
                    line: 0,
                    field: "-".into(),
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let parsed: FeedFile = match toml::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                let line = e.span().map_or(0, |s| line_of(&text, s.start));
                errors.push(FeedConfigError {
                    file: file.clone(),
                    line,
                    field: "toml".into(),
                    message: e.message().to_string(),
                });
                continue;
            }
        };
        for spanned in parsed.election {
            elections.add(spanned, &file, &text, &mut errors);
        }
        for spanned in parsed.feed {
            let line = line_of(&text, spanned.span().start);
            let mut entry = spanned.into_inner();
            let before = errors.len();
            resolve_paths(&mut entry, &dir);
            if let Err((span, message)) = read_mapping_file(&mut entry) {
                errors.push(FeedConfigError {
                    file: file.clone(),
                    line: line_of(&text, span.start),
                    field: format!("{} mapping_file", entry.id.get_ref()),
                    message,
                });
            }
            check_entry(&entry, &file, &text, &mut errors);
            let id = entry.id.get_ref().clone();
            if let Some((first_file, first_line)) = seen.get(&id) {
                errors.push(FeedConfigError {
                    file: file.clone(),
                    line: line_of(&text, entry.id.span().start),
                    field: format!("{id} id"),
                    message: format!(
                        "duplicate id; first defined at {}:{first_line}",
                        first_file.display()
                    ),
                });
            } else {
                seen.insert(id, (file.clone(), line));
            }
            if errors.len() == before {
                feeds.push(ValidFeed {
                    entry,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    if errors.is_empty() {
        for feed in &mut feeds {
            feed.entry.election = elections.settings(&feed.entry.election_id);
        }
        Ok(feeds)
    } else {
        Err(errors)
    }
}

/// The registry's `[[election]]` tables by id, with where each was first
/// defined.
#[derive(Default)]
struct Elections {
    by_id: BTreeMap<String, (ElectionSettings, PathBuf, usize)>,
}

impl Elections {
    /// Adds one `[[election]]` table; an empty or repeated id is an error.
    fn add(
        &mut self,
        spanned: Spanned<ElectionEntry>,
        file: &Path,
        text: &str,
        errors: &mut Vec<FeedConfigError>,
    ) {
        let line = line_of(text, spanned.span().start);
        let e = spanned.into_inner();
        let mut err = |message: String| {
            errors.push(FeedConfigError {
                file: file.to_path_buf(),
                line,
                field: format!("election {:?} id", e.id),
                message,
            })
        };
        if e.id.trim().is_empty() {
            err("must not be empty".into());
        } else if let Some((_, first_file, first_line)) = self.by_id.get(&e.id) {
            err(format!(
                "duplicate election; first defined at {}:{first_line}",
                first_file.display()
            ));
        } else {
            let settings = ElectionSettings {
                mode: e.mode,
                zero_counts: e.zero_counts,
            };
            self.by_id
                .insert(e.id.clone(), (settings, file.to_path_buf(), line));
        }
    }

    /// The settings of election `id`: its table's, or `live` without zero
    /// counts when it has none.
    fn settings(&self, id: &str) -> ElectionSettings {
        self.by_id.get(id).map(|(s, _, _)| *s).unwrap_or_default()
    }
}

fn check_entry(e: &FeedEntry, file: &Path, text: &str, errors: &mut Vec<FeedConfigError>) {
    let id = e.id.get_ref();
    let mut err = |span: std::ops::Range<usize>, field: &str, message: String| {
        errors.push(FeedConfigError {
            file: file.to_path_buf(),
            line: line_of(text, span.start),
            field: format!("{id} {field}"),
            message,
        });
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._-".contains(c))
    {
        err(
            e.id.span(),
            "id",
            "must be non-empty letters, digits and :/._-".into(),
        );
    }
    if e.election_id.trim().is_empty() {
        err(e.id.span(), "election_id", "must not be empty".into());
    }
    let family = votewire_transformers::family(e.family.get_ref());
    match family {
        None => err(
            e.family.span(),
            "family",
            format!(
                "unknown family {:?}; known: {}",
                e.family.get_ref(),
                votewire_transformers::FAMILIES
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(f) => match &e.mapping {
            Some(m) => {
                if let Err(why) = (f.check_mapping)(m.get_ref()) {
                    err(m.span(), "mapping", why);
                }
            }
            None if f.needs_mapping => err(
                e.family.span(),
                "mapping",
                format!("family {} needs a [feed.mapping] or a mapping_file", f.name),
            ),
            None => {}
        },
    }
    if let Some(c) = &e.companion {
        check_readable(c.get_ref(), c.span(), "companion", &mut err);
    }
    if let Some(r) = &e.results {
        for why in r.get_ref().problems() {
            let (field, message) = why.split_once(": ").unwrap_or(("results", why.as_str()));
            err(r.span(), field, message.to_string());
        }
    }
    if !(-1000..=1000).contains(&e.priority()) {
        let span = e.priority.as_ref().map_or(e.id.span(), |p| p.span());
        err(span, "priority", "must be between -1000 and 1000".into());
    }
    check_cadence(e, &mut err);
    check_limits(e, &mut err);
    check_source(e, &mut err);
}

/// `[feed.cadence]`: durations, the 1 s floor, the window's times.
fn check_cadence(e: &FeedEntry, err: &mut impl FnMut(std::ops::Range<usize>, &str, String)) {
    let cadence_span = e.cadence.as_ref().map_or(e.id.span(), |c| c.span());
    let c = &e.cadence();
    for (field, value) in [
        ("cadence.interval", &c.interval),
        ("cadence.jitter", &c.jitter),
        ("cadence.stale_after", &c.stale_after),
        ("cadence.retry_max", &c.retry_max),
    ] {
        if parse_duration(value).is_none() {
            err(
                cadence_span.clone(),
                field,
                format!("{value:?} is not a duration like 30s, 5m or 1h"),
            );
        }
    }
    if parse_duration(&c.interval).is_some_and(|d| d < Duration::from_secs(1)) {
        err(
            cadence_span.clone(),
            "cadence.interval",
            "must be at least 1s".into(),
        );
    }
    if let Some(w) = &c.window {
        if parse_duration(&w.interval).is_none() {
            err(
                cadence_span.clone(),
                "cadence.window.interval",
                format!("{:?} is not a duration", w.interval),
            );
        }
        if votewire_transformers::timefmt::parse_iso8601(&w.from, false).is_none() {
            err(
                cadence_span.clone(),
                "cadence.window.from",
                format!("{:?} is not an RFC 3339 time with an offset", w.from),
            );
        }
        let until_ok = match w.until.strip_prefix('+') {
            Some(d) => parse_duration(d).is_some(),
            None => votewire_transformers::timefmt::parse_iso8601(&w.until, false).is_some(),
        };
        if !until_ok {
            err(
                cadence_span.clone(),
                "cadence.window.until",
                format!("{:?} is neither an RFC 3339 time nor +duration", w.until),
            );
        }
    }
}

/// `[feed.limits]`: the fetch timeout, the transform limit, the size cap.
fn check_limits(e: &FeedEntry, err: &mut impl FnMut(std::ops::Range<usize>, &str, String)) {
    let limits_span = e.limits.as_ref().map_or(e.id.span(), |l| l.span());
    let l = &e.limits();
    if parse_duration(&l.timeout).is_none() {
        err(
            limits_span.clone(),
            "limits.timeout",
            format!("{:?} is not a duration", l.timeout),
        );
    }
    if let Some(t) = &l.transform_timeout
        && parse_duration(t).is_none_or(|d| d.is_zero() || d > Duration::from_secs(300))
    {
        err(
            limits_span.clone(),
            "limits.transform_timeout",
            format!("{t:?} is not a duration between 1ms and 300s"),
        );
    }
    if l.max_bytes == 0 || l.max_bytes > 1 << 30 {
        err(
            limits_span.clone(),
            "limits.max_bytes",
            "must be between 1 byte and 1 GiB".into(),
        );
    }
}

/// `[feed.source]`: the kind's own checks; a kind that requires a family
/// reports on the feed's `family`.
fn check_source(e: &FeedEntry, err: &mut impl FnMut(std::ops::Range<usize>, &str, String)) {
    let source_span = e.source.span();
    let mut problems = SourceProblems::new(e.family.get_ref());
    e.source.get_ref().kind_config().check(&mut problems);
    for p in problems.found {
        let span = if p.field == "family" {
            e.family.span()
        } else {
            source_span.clone()
        };
        err(span, &p.field, p.message);
    }
}
