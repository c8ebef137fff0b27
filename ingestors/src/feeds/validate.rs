//! Loading a feed registry and checking every entry, collecting every
//! problem with its file, line and field rather than stopping at the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::config::{FeedEntry, FeedFile, SecretRef, SourceConfig};

/// One problem in a feed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfigError {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// The feed and field, e.g. `clarity:GA:107556 family`.
    pub field: String,
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
    pub entry: FeedEntry,
    pub file: PathBuf,
    pub line: usize,
}

/// A duration as operators write one, through jiff's parser: the friendly
/// form (`30s`, `500ms`, `1h30m`, `1.5s`, `2d`, `5 minutes`) or ISO 8601
/// (`PT90S`). A day is 24 hours; months and years (which have no fixed
/// length) and negative durations are refused.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let span: jiff::Span = s.trim().parse().ok()?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    Duration::try_from(signed).ok()
}

/// [`parse_duration`] as a clap value parser: a flag's duration is checked
/// when the command line is read, and a bad one is a usage error.
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| {
        format!("{s:?} is not a duration (write e.g. 30s, 500ms, 1h30m, 1.5s or PT90S)")
    })
}

/// Headers that carry credentials and so must come from `secret_headers`.
const SECRET_HEADER_WORDS: [&str; 6] = [
    "authorization",
    "api-key",
    "apikey",
    "token",
    "cookie",
    "secret",
];

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
    if let SourceConfig::Sftp {
        key_file,
        known_hosts,
        ..
    } = e.source.get_mut()
    {
        *key_file = under(key_file);
        *known_hosts = under(known_hosts);
    }
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
        Ok(feeds)
    } else {
        Err(errors)
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
    let source_span = e.source.span();
    let url_ok = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    match e.source.get_ref() {
        SourceConfig::Http {
            url,
            headers,
            secret_headers,
        } => {
            if !url_ok(url) {
                err(
                    source_span.clone(),
                    "source.url",
                    format!("{url:?} is not an http(s) URL"),
                );
            }
            for name in headers.keys() {
                let lower = name.to_ascii_lowercase();
                if SECRET_HEADER_WORDS.iter().any(|w| lower.contains(w)) {
                    err(
                        source_span.clone(),
                        "source.headers",
                        format!(
                            "{name} carries a credential: put it in secret_headers as {{ env = \"VAR\" }} or {{ file = \"path\" }}"
                        ),
                    );
                }
            }
            if !secret_headers.is_empty() {
                check_secret_transport(url, source_span.clone(), &mut err);
            }
            for (name, r) in secret_headers {
                check_secret(
                    r,
                    &format!("source.secret_headers.{name}"),
                    source_span.clone(),
                    &mut err,
                );
            }
        }
        SourceConfig::Clarity { base_url, file } => {
            if !url_ok(base_url) {
                err(
                    source_span.clone(),
                    "source.base_url",
                    format!("{base_url:?} is not an http(s) URL"),
                );
            }
            if file.is_empty() || file.starts_with('/') {
                err(
                    source_span.clone(),
                    "source.file",
                    "must be a path under the versioned folder, e.g. json/ALL.json".into(),
                );
            }
        }
        SourceConfig::Ap { url, api_key } => {
            if !url_ok(url) {
                err(
                    source_span.clone(),
                    "source.url",
                    format!("{url:?} is not an http(s) URL"),
                );
            }
            check_secret_transport(url, source_span.clone(), &mut err);
            check_secret(api_key, "source.api_key", source_span.clone(), &mut err);
        }
        SourceConfig::Sftp {
            glob,
            min_age,
            host,
            key_file,
            known_hosts,
            ..
        } => {
            check_readable(key_file, source_span.clone(), "source.key_file", &mut err);
            check_readable(
                known_hosts,
                source_span.clone(),
                "source.known_hosts",
                &mut err,
            );
            if host.is_empty() {
                err(
                    source_span.clone(),
                    "source.host",
                    "must not be empty".into(),
                );
            }
            if !glob.starts_with('/') {
                err(
                    source_span.clone(),
                    "source.glob",
                    format!("{glob:?} must be an absolute remote path"),
                );
            }
            if parse_duration(min_age).is_none() {
                err(
                    source_span.clone(),
                    "source.min_age",
                    format!("{min_age:?} is not a duration"),
                );
            }
        }
        SourceConfig::Html { url } => {
            if !url_ok(url) {
                err(
                    source_span.clone(),
                    "source.url",
                    format!("{url:?} is not an http(s) URL"),
                );
            }
            if e.family.get_ref() != "html-table" {
                err(
                    e.family.span(),
                    "family",
                    "an html source is read by the html-table family".into(),
                );
            }
        }
    }
}

fn check_secret(
    r: &SecretRef,
    field: &str,
    span: std::ops::Range<usize>,
    err: &mut impl FnMut(std::ops::Range<usize>, &str, String),
) {
    if let Err(why) = super::secrets::check_reference(r) {
        err(span, field, why);
    }
}

/// Whether `url`'s host is this machine (plain http is allowed only there
/// for a source that sends a credential).
fn is_loopback_url(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = u.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A source that sends a credential sends it over https only, unless the
/// source is on this machine.
fn check_secret_transport(
    url: &str,
    span: std::ops::Range<usize>,
    err: &mut impl FnMut(std::ops::Range<usize>, &str, String),
) {
    if !url.starts_with("https://") && !is_loopback_url(url) {
        err(
            span,
            "source.url",
            format!(
                "{url:?} is not https, and this source sends a credential: only a loopback \
                 source may be plain http"
            ),
        );
    }
}
