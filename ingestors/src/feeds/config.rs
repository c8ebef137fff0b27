//! What an operator writes to add a feed: one `[[feed]]` entry in a TOML
//! file (a file may hold many; a registry is a directory tree of files).
//! Relative paths in a file resolve against that file's directory. The
//! doc comments on these fields (and on each source kind's config, in its
//! module under `crate::sources`) are the operator documentation.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::sources::SourceKindConfig;
use crate::sources::ap::ApSource;
use crate::sources::clarity::ClaritySource;
use crate::sources::html::HtmlSource;
use crate::sources::http::HttpSource;
use crate::sources::sftp::SftpSource;

/// One feed file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedFile {
    /// The file's feeds, one `[[feed]]` table each; a file may hold none.
    #[serde(default)]
    #[schemars(with = "Vec<FeedEntry>")]
    pub feed: Vec<Spanned<FeedEntry>>,
    /// How elections run, one `[[election]]` table each: at most one per
    /// election id across the registry. An election without one is `live`.
    #[serde(default)]
    #[schemars(with = "Vec<ElectionEntry>")]
    pub election: Vec<Spanned<ElectionEntry>>,
}

/// How one election runs tonight: every feed with its `election_id` follows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ElectionEntry {
    /// The election's id, as the feeds' `election_id`.
    pub id: String,
    /// `live` (default), `test` or `rehearsal`.
    #[serde(default)]
    pub mode: ElectionMode,
    /// Before polls close: every race the sources list is published with zero
    /// counts (votes, precincts reporting and expected vote at 0, no source calls),
    /// so that pages show every race from the start, as elex's `--set-zero-counts`
    /// does. Turning it off (going live) makes each feed fetch its source afresh and
    /// publish the real counts over the zeros. Default false.
    #[serde(default)]
    pub zero_counts: bool,
}

/// What an election's data is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElectionMode {
    /// `live` (the default): each feed's own `mode` stands.
    #[default]
    Live,
    /// `test`: every feed of the election is test data, whatever its own `mode`: its
    /// cells are marked `test` and never reach live results.
    Test,
    /// `rehearsal`: the pool's dress rehearsal; its data is test data, as in `test`.
    Rehearsal,
}

/// An election's settings as a feed runs with them ([`FeedEntry::election`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElectionSettings {
    /// The election's mode.
    pub mode: ElectionMode,
    /// Whether its counts are published as zeros.
    pub zero_counts: bool,
}

/// One feed.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedEntry {
    /// Unique across the registry, e.g. `clarity:GA:107556`. Letters,
    /// digits and `:/._-`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// A transformer family (`votewire transform --list`).
    #[schemars(with = "String")]
    pub family: Spanned<String>,
    /// votewire's election id, e.g. `2021-01-05-GA-runoff`.
    pub election_id: String,
    /// `live` (default), `test` (publisher test data) or `replay`.
    #[serde(default)]
    pub mode: FeedModeConfig,
    /// Higher wins when several sources report the same unit (aggregator);
    /// default 0.
    #[serde(default)]
    #[schemars(with = "Option<i32>")]
    pub priority: Option<Spanned<i32>>,
    /// Disabled feeds are validated but never polled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the payload comes from.
    #[schemars(with = "SourceConfig")]
    pub source: Spanned<SourceConfig>,
    /// How often the feed is polled (`[feed.cadence]`); when set, `interval` and
    /// `stale_after` are required. Default: every 30s, stale after 30m.
    #[serde(default)]
    #[schemars(with = "Option<CadenceConfig>")]
    pub cadence: Option<Spanned<CadenceConfig>>,
    /// Limits on one fetch and its transform (`[feed.limits]`). Default: timeout 20s,
    /// max_bytes 64 MiB, transform_timeout 10s.
    #[serde(default)]
    #[schemars(with = "Option<LimitsConfig>")]
    pub limits: Option<Spanned<LimitsConfig>>,
    /// The family's mapping (CSV columns, HTML selectors), checked by the
    /// family itself.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub mapping: Option<Spanned<toml::Table>>,
    /// A file holding the mapping instead (`deploy/mappings/*.toml`, the
    /// files `votewire transform --mapping` reads), so many feeds share
    /// one; set `mapping` or `mapping_file`, not both. Relative to the
    /// feed file, like every path in it.
    #[serde(default)]
    #[schemars(with = "Option<PathBuf>")]
    pub mapping_file: Option<Spanned<PathBuf>>,
    /// A companion file with names (Clarity JSON, AP interactives), read
    /// by the ingestor and handed to the transformer. Relative to the feed
    /// file.
    #[serde(default)]
    #[schemars(with = "Option<PathBuf>")]
    pub companion: Option<Spanned<PathBuf>>,
    /// How this feed's contests, units and choices line up with other
    /// sources' for the aggregator (`[feed.results]`).
    #[serde(default)]
    #[schemars(with = "Option<crate::result_links::ResultsConfig>")]
    pub results: Option<Spanned<crate::result_links::ResultsConfig>>,
    /// The settings of the feed's election (`[[election]]`), filled in by
    /// [`crate::feeds::load_registry`]; never written in a feed. Part of the
    /// entry, so that editing an election restarts its feeds.
    #[serde(skip)]
    #[schemars(skip)]
    pub election: ElectionSettings,
}

fn yes() -> bool {
    true
}

impl FeedEntry {
    /// The feed's `priority`, or 0 when it sets none.
    pub fn priority(&self) -> i32 {
        self.priority.as_ref().map_or(0, |p| *p.get_ref())
    }

    /// The feed's `[feed.cadence]`, or the defaults (every 30 s, `stale` after 30 min) when
    /// it has none.
    pub fn cadence(&self) -> CadenceConfig {
        self.cadence
            .as_ref()
            .map(|c| c.get_ref().clone())
            .unwrap_or_default()
    }

    /// The feed's `[feed.limits]`, or the defaults (20 s, 64 MiB) when it has none.
    pub fn limits(&self) -> LimitsConfig {
        self.limits
            .as_ref()
            .map(|l| l.get_ref().clone())
            .unwrap_or_default()
    }
}

/// Feed mode as written in config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeedModeConfig {
    /// `live` (the default): election-night data.
    #[default]
    Live,
    /// `test`: the publisher's test data (zeros, made-up counts); its cells are marked
    /// `test`, kept apart from live cells by the aggregator, and their results go to the
    /// test results topic (`topics.results_test`), never to the live one.
    Test,
    /// `replay`: a recorded night played back; its cells are marked `replay`.
    Replay,
}

/// Where a feed's payloads come from: `kind` names the source kind, and
/// the other fields are that kind's.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
// One variant per entry of `crate::sources::SOURCES`, each wrapping the
// kind's own config struct.
pub enum SourceConfig {
    /// A plain HTTP(S) GET with conditional requests.
    Http(HttpSource),
    /// A Clarity ENR site: polls `{base_url}/current_ver.txt`, then fetches
    /// `{base_url}/{version}/{file}`.
    Clarity(ClaritySource),
    /// The AP Elections API; follows `nextrequest`.
    Ap(ApSource),
    /// Files dropped on an SFTP server.
    Sftp(SftpSource),
    /// An HTML page, read with the `html-table` mapping.
    Html(HtmlSource),
}

impl SourceConfig {
    /// The kind's own config: the one place the variants are matched.
    pub fn kind_config(&self) -> &dyn SourceKindConfig {
        match self {
            SourceConfig::Http(c) => c,
            SourceConfig::Clarity(c) => c,
            SourceConfig::Ap(c) => c,
            SourceConfig::Sftp(c) => c,
            SourceConfig::Html(c) => c,
        }
    }

    /// The kind's own config, mutably: how the registry resolves its local paths against
    /// the feed file's folder.
    pub fn kind_config_mut(&mut self) -> &mut dyn SourceKindConfig {
        match self {
            SourceConfig::Http(c) => c,
            SourceConfig::Clarity(c) => c,
            SourceConfig::Ap(c) => c,
            SourceConfig::Sftp(c) => c,
            SourceConfig::Html(c) => c,
        }
    }
}

/// How often a feed is polled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CadenceConfig {
    /// Time between the end of one fetch and the start of the next.
    pub interval: String,
    /// Random extra delay, up to this, so feeds don't poll in lockstep.
    /// Default 1 s.
    #[serde(default = "jitter")]
    pub jitter: String,
    /// A tighter cadence for a window such as poll close to +6 h.
    pub window: Option<CadenceWindow>,
    /// The feed is `stale` after this long without a change.
    pub stale_after: String,
    /// The longest wait between retries after failures (exponential backoff
    /// with full jitter up to this): how late, at most, a source that comes
    /// back is polled again. Default 15 s.
    #[serde(default = "retry_max")]
    pub retry_max: String,
}

fn jitter() -> String {
    "1s".into()
}

fn retry_max() -> String {
    "15s".into()
}

impl Default for CadenceConfig {
    fn default() -> Self {
        Self {
            interval: "30s".into(),
            jitter: jitter(),
            window: None,
            stale_after: "30m".into(),
            retry_max: retry_max(),
        }
    }
}

/// A period with its own polling interval.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CadenceWindow {
    /// RFC 3339 start, e.g. `2021-01-05T19:00:00-05:00`.
    pub from: String,
    /// RFC 3339 end, or a duration after `from` such as `+6h`.
    pub until: String,
    /// Time between the end of one fetch and the start of the next inside the window (e.g.
    /// `10s`), instead of the feed's `interval`.
    pub interval: String,
}

/// Limits on one fetch. A field left out keeps its default, so a
/// `[feed.limits]` may set just the one it changes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Total time for one fetch.
    pub timeout: String,
    /// Largest accepted payload, in bytes.
    pub max_bytes: u64,
    /// Most time one payload's transform may take (default `10s`); a
    /// payload past it 3 times in a row is rejected as `LimitExceeded`
    /// (until then, the next poll tries it again).
    pub transform_timeout: Option<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            timeout: "20s".into(),
            max_bytes: 64 * 1024 * 1024,
            transform_timeout: None,
        }
    }
}
