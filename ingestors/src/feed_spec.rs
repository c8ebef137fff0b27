//! A feed's registry entry resolved for polling ([`FeedSpec`]): its
//! source resolved by its kind ([`crate::sources`]: secrets read,
//! durations parsed), its companion file read within a limit, its fetch
//! and transform limits.

use std::sync::Arc;
use std::time::Duration;

use votewire_schemas::FeedMode;

use crate::feeds::{ElectionMode, FeedEntry, FeedModeConfig, parse_duration};
use crate::http::FetchLimits;
use crate::result_links::ResultLinker;
use crate::sources::Source;
use crate::transform_run::DEFAULT_TRANSFORM_TIMEOUT;

/// Why a feed's registry entry cannot be turned into a running feed. Not
/// retryable: the entry or the files it names must change.
#[derive(Debug, thiserror::Error)]
#[error("feed {feed_id}: {what}")]
pub struct FeedSpecError {
    /// The id of the feed whose entry could not be resolved.
    pub feed_id: String,
    /// What could not be resolved (a secret, a header, the companion file), for an
    /// operator.
    pub what: String,
}

/// Everything a feed needs to be polled.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// The feed's id, unique across the registry (e.g. `clarity:GA:107556`).
    pub feed_id: String,
    /// votewire's election id the feed reports on (e.g. `2021-01-05-GA-runoff`).
    pub election_id: String,
    /// The transformer family that reads the feed's payloads (e.g. `clarity-json`).
    pub family: String,
    /// Whether the feed carries live, publisher-test or replayed data; stamped on every
    /// cell. `test` whenever its election is `test` or `rehearsal`.
    pub mode: FeedMode,
    /// Its election publishes zero counts (`[[election]] zero_counts`): every
    /// accepted payload's counts are published as zeros.
    pub zero_counts: bool,
    /// The source to poll, resolved from `[feed.source]` (secrets read, durations parsed);
    /// its `Debug` prints no credential.
    pub source: Arc<dyn Source>,
    /// The family's mapping, inline or read from `mapping_file`; `None` when the entry has
    /// none.
    pub mapping: Option<toml::Table>,
    /// The companion file's bytes (at most 32 MiB), read when the spec is built; `None`
    /// when the entry names none.
    pub companion: Option<Arc<[u8]>>,
    /// One fetch's limits: `limits.timeout` and `limits.max_bytes`, the connect timeout at
    /// its default.
    pub limits: FetchLimits,
    /// How long one payload's transform may take (`limits.transform_timeout`).
    pub transform_timeout: Duration,
    /// `[feed.results]` with the feed's priority, stamped on every cell.
    pub result_links: Option<Arc<ResultLinker>>,
}

/// The most a companion file (names for Clarity JSON and AP interactives,
/// a few MB at most) may hold.
const MAX_COMPANION_BYTES: u64 = 32 * 1024 * 1024;

/// A file named in a feed (a companion) or on a command line (a saved
/// payload), read only if it is a regular file within `max` bytes
/// (`/dev/zero` or a FIFO must not take the ingestor down).
pub fn read_regular_file(path: &std::path::Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Opening a FIFO for reading waits for a writer: open without waiting
    // (O_NONBLOCK, which a regular file's reads ignore), then look.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than the {max}-byte limit"));
    }
    Ok(bytes)
}

impl FeedSpec {
    /// How the feed publishes: its mode (`live`, `test`, `replay`), with
    /// `+zero` when its election publishes zero counts. Stamped on every
    /// committed cursor; a feed that starts with another reads its source
    /// afresh, since its cells' values (zeros) or keys (test keys) change
    /// while the source may not.
    pub fn published_as(&self) -> String {
        let zero = if self.zero_counts { "+zero" } else { "" };
        format!("{}{zero}", self.mode.as_str())
    }

    /// Resolves a validated registry entry: reads secrets (environment or
    /// file) and the companion file, parses durations and limits.
    pub fn from_entry(entry: &FeedEntry) -> Result<FeedSpec, FeedSpecError> {
        let feed_id = entry.id.get_ref().clone();
        let err = |what: String| FeedSpecError {
            feed_id: feed_id.clone(),
            what,
        };
        let limits_cfg = entry.limits();
        let defaults = FetchLimits::default();
        let limits = FetchLimits {
            total_timeout: parse_duration(&limits_cfg.timeout).unwrap_or(defaults.total_timeout),
            max_bytes: limits_cfg.max_bytes,
            ..defaults
        };
        let source = entry
            .source
            .get_ref()
            .kind_config()
            .resolve(&limits)
            .map_err(&err)?;
        let companion = match &entry.companion {
            None => None,
            Some(p) => Some(
                read_regular_file(p.get_ref(), MAX_COMPANION_BYTES)
                    .map_err(|e| {
                        err(format!(
                            "reading its companion file {}: {e}",
                            p.get_ref().display()
                        ))
                    })?
                    .into(),
            ),
        };
        let transform_timeout = limits_cfg
            .transform_timeout
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(DEFAULT_TRANSFORM_TIMEOUT);
        Ok(FeedSpec {
            feed_id: feed_id.clone(),
            election_id: entry.election_id.clone(),
            family: entry.family.get_ref().clone(),
            mode: match (entry.election.mode, entry.mode) {
                (ElectionMode::Test | ElectionMode::Rehearsal, _) => FeedMode::Test,
                (ElectionMode::Live, FeedModeConfig::Live) => FeedMode::Live,
                (ElectionMode::Live, FeedModeConfig::Test) => FeedMode::Test,
                (ElectionMode::Live, FeedModeConfig::Replay) => FeedMode::Replay,
            },
            zero_counts: entry.election.zero_counts,
            source,
            mapping: entry.mapping.as_ref().map(|m| m.get_ref().clone()),
            companion,
            limits,
            transform_timeout,
            result_links: entry
                .results
                .as_ref()
                .map(|r| Arc::new(ResultLinker::new(r.get_ref().clone(), entry.priority()))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_or_rehearsal_election_makes_its_feeds_test_data_and_zero_counts_carry_over() {
        use crate::feeds::{ElectionSettings, FeedFile};
        let file: FeedFile = toml::from_str(
            "[[feed]]\nid = \"a\"\nfamily = \"clarity-xml\"\nelection_id = \"e\"\nmode = \"replay\"\n\
             [feed.source]\nkind = \"http\"\nurl = \"https://x/a.xml\"\n",
        )
        .unwrap();
        let mut entry = file.feed[0].get_ref().clone();
        let spec_with = |entry: &FeedEntry| FeedSpec::from_entry(entry).unwrap();
        assert_eq!(
            spec_with(&entry).mode,
            FeedMode::Replay,
            "no election table"
        );
        for (mode, want) in [
            (ElectionMode::Live, FeedMode::Replay),
            (ElectionMode::Test, FeedMode::Test),
            (ElectionMode::Rehearsal, FeedMode::Test),
        ] {
            entry.election = ElectionSettings {
                mode,
                zero_counts: true,
            };
            let spec = spec_with(&entry);
            assert_eq!(spec.mode, want, "{mode:?}");
            assert!(spec.zero_counts);
        }
    }

    #[test]
    fn a_companion_is_a_regular_file_within_its_limit_never_a_device_or_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let names = dir.path().join("names.json");
        std::fs::write(&names, b"{}").unwrap();
        assert_eq!(
            read_regular_file(&names, MAX_COMPANION_BYTES).unwrap(),
            b"{}"
        );
        // An endless device: refused at once, not read until memory runs out.
        let e =
            read_regular_file(std::path::Path::new("/dev/zero"), MAX_COMPANION_BYTES).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        // A FIFO with no writer: refused at once, not waited on.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let started = std::time::Instant::now();
        let e = read_regular_file(&fifo, MAX_COMPANION_BYTES).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // A regular file past the limit (sparse: no disk spent).
        let big = dir.path().join("big.json");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_COMPANION_BYTES + 1)
            .unwrap();
        let e = read_regular_file(&big, MAX_COMPANION_BYTES).unwrap_err();
        assert!(e.contains("limit"), "{e}");
    }
}
