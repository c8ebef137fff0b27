//! Watching an SFTP drop directory for complete files.
//!
//! A file is **ready** only when its size and mtime are the same across two
//! listings **and** its mtime is at least `min_age` old; `.part`, `.tmp`,
//! `.filepart` and dot files are never read, and with a done-marker
//! convention (`x.csv` is ready once `x.csv.done` exists) the marker is
//! required too. Ready files are returned in (mtime, name) order.
//!
//! Only regular files are read: a symlink (which could point anywhere the
//! account can read) or a FIFO (which blocks a reader) is skipped, and a
//! file is read only if exactly its listed size comes back.
//!
//! A file's identity is (path, size, mtime, sha256). A re-upload under the
//! same name is read again; if its bytes are identical to what was last
//! processed for that path it is recorded and skipped. The processed set is
//! part of the feed cursor, so a restart does not re-read processed files.
//! It is bounded ([`MAX_REMEMBERED`] files): when older entries are
//! dropped, the **floor** rises past their mtimes, and a file whose mtime
//! is below the floor counts as processed. A file is recorded before it is
//! moved to the archive directory, so a failed move never republishes it.
//!
//! All calls block (`ssh2`): run them in `tokio::task::spawn_blocking`.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::{RemoteFile, SftpError, SftpSession};

/// Where and how to watch.
#[derive(Debug, Clone)]
pub struct DropConfig {
    /// The remote directory.
    pub dir: String,
    /// A file-name pattern with `*` wildcards, e.g. `*.csv`.
    pub pattern: String,
    /// Minimum age of the mtime, in seconds.
    pub min_age_secs: u64,
    /// Done-marker suffix, e.g. `.done`.
    pub done_marker: Option<String>,
    /// Move processed files here (after the Kafka ack).
    pub archive_dir: Option<String>,
    /// The largest file read, in bytes (the feed's `limits.max_bytes`); a larger file is
    /// refused, not read.
    pub max_bytes: u64,
}

/// A processed file's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileIdentity {
    /// The file's remote path: the drop directory joined with its name.
    pub path: String,
    /// Its size in bytes, as listed.
    pub size: u64,
    /// Its modification time as listed, in seconds since the Unix epoch.
    pub mtime: u64,
    /// Lower-case hex sha256 of its bytes.
    pub sha256: String,
}

/// A ready file and its bytes.
#[derive(Debug, Clone)]
pub struct ReadyFile {
    /// The file's path, size, mtime and sha256.
    pub identity: FileIdentity,
    /// The file's whole content, read once it was ready.
    pub bytes: Vec<u8>,
}

/// `*` matches any run of characters; everything else literally.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name.ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        || [".part", ".tmp", ".filepart"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The most processed files remembered by name (newest by mtime); older
/// ones are covered by the floor.
pub const MAX_REMEMBERED: usize = 2_000;

/// The most memory the remembered names take (the cursor keeps less).
/// Past [`MAX_REMEMBERED`], names newer than a file still waiting are kept
/// up to twice this.
pub const MAX_REMEMBERED_BYTES: usize = 4 << 20;

/// What a drop feed has processed, as its cursor keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessedFiles {
    /// Files with an mtime below this count as processed.
    pub floor_mtime: u64,
    /// The processed files remembered by identity; older ones are covered by `floor_mtime`.
    pub files: Vec<FileIdentity>,
}

impl ProcessedFiles {
    /// Keeps the newest `max` files and at most `max_bytes` of encoded
    /// entries (a long name costs its length), raising the floor past every
    /// file dropped, but not past `floor_cap` (the mtime of the oldest file
    /// in the folder not processed yet: one waiting for its marker, still
    /// being written, or uploaded with an old mtime), so the floor never
    /// hides a file nobody processed. Files at or past the cap are kept
    /// beyond `max`, up to twice `max_bytes`; past that the floor rises
    /// anyway (more than ~1,600 processed files newer than one stuck file).
    pub fn bounded(
        mut self,
        max: usize,
        max_bytes: usize,
        floor_cap: Option<u64>,
    ) -> ProcessedFiles {
        self.files
            .sort_by(|a, b| (b.mtime, &b.path).cmp(&(a.mtime, &a.path)));
        let mut bytes = 0usize;
        let mut keep = self
            .files
            .iter()
            .take(max)
            .take_while(|f| {
                bytes += f.path.len() + f.sha256.len() + 42;
                bytes <= max_bytes
            })
            .count();
        let mut bytes: usize = self.files[..keep]
            .iter()
            .map(|f| f.path.len() + f.sha256.len() + 42)
            .sum();
        if let Some(cap) = floor_cap {
            while let Some(f) = self.files.get(keep).filter(|f| f.mtime >= cap) {
                bytes += f.path.len() + f.sha256.len() + 42;
                if bytes > max_bytes.saturating_mul(2) {
                    break;
                }
                keep += 1;
            }
        }
        if let Some(newest_dropped) = self.files.get(keep).map(|f| f.mtime) {
            self.floor_mtime = self.floor_mtime.max(newest_dropped + 1);
        }
        self.files.truncate(keep);
        self
    }
}

/// Watches one drop directory.
pub struct DropWatcher {
    /// The drop directory, file pattern and readiness rules watched.
    pub config: DropConfig,
    /// The previous listing: path -> (size, mtime).
    last_listing: HashMap<String, (u64, u64)>,
    /// Processed identities (persisted in the cursor).
    processed: BTreeMap<String, FileIdentity>,
    /// Files older than this count as processed.
    floor_mtime: u64,
    /// The files of the last listing not processed yet (path -> mtime),
    /// less those processed since: the floor stays at or below the oldest.
    pending: HashMap<String, u64>,
    /// Whether the folder was listed since the watcher started (only then
    /// are processed files no longer in it forgotten).
    listed: bool,
}

impl DropWatcher {
    /// A watcher that already processed `processed` (from the cursor).
    pub fn new(
        config: DropConfig,
        processed: impl IntoIterator<Item = FileIdentity>,
    ) -> DropWatcher {
        DropWatcher::resume(
            config,
            ProcessedFiles {
                floor_mtime: 0,
                files: processed.into_iter().collect(),
            },
        )
    }

    /// A watcher resumed from its cursor's processed files and floor.
    pub fn resume(config: DropConfig, processed: ProcessedFiles) -> DropWatcher {
        DropWatcher {
            config,
            last_listing: HashMap::new(),
            processed: processed
                .files
                .into_iter()
                .map(|i| (i.path.clone(), i))
                .collect(),
            floor_mtime: processed.floor_mtime,
            pending: HashMap::new(),
            listed: false,
        }
    }

    /// The processed set, for the cursor.
    pub fn processed(&self) -> Vec<FileIdentity> {
        self.processed.values().cloned().collect()
    }

    /// The processed set and floor, for the cursor.
    pub fn processed_files(&self) -> ProcessedFiles {
        ProcessedFiles {
            floor_mtime: self.floor_mtime,
            files: self.processed(),
        }
    }

    /// Whether `f`, as listed, was processed (or is below the floor).
    fn already(&self, f: &RemoteFile) -> bool {
        f.mtime < self.floor_mtime
            || self
                .processed
                .get(&f.path)
                .is_some_and(|p| p.size == f.size && p.mtime == f.mtime)
    }

    /// The highest the floor may rise: the oldest unprocessed file's mtime.
    pub fn floor_cap(&self) -> Option<u64> {
        self.pending.values().min().copied()
    }

    /// Records `identity` and, past [`MAX_REMEMBERED`], forgets processed
    /// files no longer in the folder, then the oldest names behind a
    /// raised floor.
    fn record(&mut self, identity: FileIdentity) {
        self.pending.remove(&identity.path);
        self.processed.insert(identity.path.clone(), identity);
        if self.processed.len() > MAX_REMEMBERED && self.listed {
            let listing = &self.last_listing;
            self.processed.retain(|path, _| listing.contains_key(path));
        }
        if self.processed.len() > MAX_REMEMBERED {
            let bounded = self.processed_files().bounded(
                MAX_REMEMBERED,
                MAX_REMEMBERED_BYTES,
                self.floor_cap(),
            );
            self.floor_mtime = bounded.floor_mtime;
            self.processed = bounded
                .files
                .into_iter()
                .map(|i| (i.path.clone(), i))
                .collect();
        }
    }

    /// Lists the directory and returns the files that became ready and were
    /// not processed, in (mtime, name) order. Identical re-uploads are
    /// recorded as processed and not returned.
    pub fn poll(
        &mut self,
        session: &SftpSession,
        now_unix: u64,
    ) -> Result<Vec<ReadyFile>, SftpError> {
        let listing: Vec<RemoteFile> = session.list(&self.config.dir)?;
        let names: std::collections::HashSet<String> = listing
            .iter()
            .filter_map(|f| f.path.rsplit('/').next().map(str::to_string))
            .collect();
        let mut candidates: Vec<&RemoteFile> = listing
            .iter()
            .filter(|f| f.is_file)
            .filter(|f| {
                let name = f.path.rsplit('/').next().unwrap_or(&f.path);
                !is_temporary(name)
                    && matches(&self.config.pattern, name)
                    && self
                        .config
                        .done_marker
                        .as_ref()
                        .is_none_or(|m| names.contains(&format!("{name}{m}")))
            })
            .collect();
        candidates.sort_by(|a, b| (a.mtime, &a.path).cmp(&(b.mtime, &b.path)));
        // Marker or not, a matching file nobody processed holds the floor.
        self.pending = listing
            .iter()
            .filter(|f| f.is_file && !self.already(f))
            .filter(|f| {
                let name = f.path.rsplit('/').next().unwrap_or(&f.path);
                !is_temporary(name) && matches(&self.config.pattern, name)
            })
            .map(|f| (f.path.clone(), f.mtime))
            .collect();
        let mut ready = Vec::new();
        for f in candidates {
            let stable = self.last_listing.get(&f.path) == Some(&(f.size, f.mtime));
            let old_enough = now_unix.saturating_sub(f.mtime) >= self.config.min_age_secs;
            if !stable || !old_enough || self.already(f) {
                continue;
            }
            let bytes = match session.read_listed(&f.path, f.size, self.config.max_bytes) {
                Ok(b) => b,
                // Replaced by a symlink or a FIFO since the listing, or
                // still being written: not a payload; looked at again on
                // the next poll.
                Err(SftpError::NotARegularFile { .. } | SftpError::ChangedWhileRead { .. }) => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let identity = FileIdentity {
                path: f.path.clone(),
                size: f.size,
                mtime: f.mtime,
                sha256,
            };
            let identical = self
                .processed
                .get(&f.path)
                .is_some_and(|p| p.sha256 == identity.sha256);
            if identical {
                self.record(identity);
                continue;
            }
            ready.push(ReadyFile { identity, bytes });
        }
        self.last_listing = listing
            .iter()
            .map(|f| (f.path.clone(), (f.size, f.mtime)))
            .collect();
        self.listed = true;
        Ok(ready)
    }

    /// Records a file as handled without moving it (a rejected payload:
    /// the same bytes are not read again, a changed re-upload is).
    pub fn remember(&mut self, identity: FileIdentity) {
        self.record(identity);
    }

    /// Records a file as processed, after every cell from it was
    /// acknowledged, then moves it to the archive directory when
    /// configured. It is recorded first: a move that fails leaves the file
    /// in the folder, processed, and it is not published again.
    pub fn mark_processed(
        &mut self,
        session: &SftpSession,
        identity: FileIdentity,
    ) -> Result<(), SftpError> {
        let from = identity.path.clone();
        self.record(identity);
        if let Some(archive) = &self.config.archive_dir {
            let name = from.rsplit('/').next().unwrap_or(&from);
            session.rename(&from, &format!("{}/{name}", archive.trim_end_matches('/')))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remembered_set_is_bounded_and_the_floor_covers_what_it_forgets() {
        let id = |i: u64, name: &str| FileIdentity {
            path: format!("/drop/{name}"),
            size: 1,
            mtime: 1_000 + i,
            sha256: "ab".repeat(32),
        };
        let all = ProcessedFiles {
            floor_mtime: 0,
            files: (0..10).map(|i| id(i, &format!("{i}.csv"))).collect(),
        };
        let kept = all.clone().bounded(4, usize::MAX, None);
        assert_eq!(kept.files.len(), 4);
        assert!(kept.files.iter().all(|f| f.mtime >= 1_006));
        assert_eq!(
            kept.floor_mtime, 1_006,
            "every forgotten file is below the floor"
        );
        // Long names: the encoded size is bounded too.
        let long = ProcessedFiles {
            floor_mtime: 0,
            files: (0..10).map(|i| id(i, &"x".repeat(10_000))).collect(),
        };
        let kept = long.bounded(2_000, 64 * 1024, None);
        assert!(kept.files.len() <= 6, "{}", kept.files.len());
        assert!(kept.floor_mtime > 1_000);
        // Nothing forgotten, no floor.
        assert_eq!(all.clone().bounded(100, usize::MAX, None).floor_mtime, 0);
        // A file not processed yet, from mtime 1,003, holds the floor there:
        // the processed files at or past it are kept beyond the count.
        let held = all.clone().bounded(4, usize::MAX, Some(1_003));
        assert_eq!(held.floor_mtime, 1_003);
        assert_eq!(held.files.len(), 7);
        // Past twice the byte limit the floor rises anyway.
        let long = ProcessedFiles {
            floor_mtime: 0,
            files: (0..10).map(|i| id(i, &"x".repeat(10_000))).collect(),
        };
        let kept = long.bounded(2_000, 20_000, Some(1_000));
        assert!(kept.files.len() <= 4, "{}", kept.files.len());
    }

    #[test]
    fn patterns_and_temporary_names() {
        assert!(matches("*.csv", "20210105__ga__runoff.csv"));
        assert!(matches("ga_*_precinct*.csv", "ga_fulton_precinct_v2.csv"));
        assert!(!matches("*.csv", "runoff.csv.part"));
        assert!(!matches("*.csv", "x.txt"));
        assert!(
            is_temporary("x.csv.part")
                && is_temporary(".x.csv")
                && is_temporary("x.tmp")
                && is_temporary("x.filepart")
        );
        assert!(!is_temporary("x.csv"));
    }
}
