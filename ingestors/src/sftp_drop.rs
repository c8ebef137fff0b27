//! Watching an SFTP drop directory for complete files.
//!
//! A file is **ready** only when its size and mtime are the same across two
//! listings **and** its mtime is at least `min_age` old; `.part`, `.tmp`,
//! `.filepart` and dot files are never read, and with a done-marker
//! convention (`x.csv` is ready once `x.csv.done` exists) the marker is
//! required too. Ready files are returned in (mtime, name) order.
//!
//! A file's identity is (path, size, mtime, sha256). A re-upload under the
//! same name is read again; if its bytes are identical to what was last
//! processed for that path it is recorded and skipped. The processed set is
//! part of the feed cursor, so a restart does not re-read processed files.
//!
//! All calls block (`ssh2`): run them in `tokio::task::spawn_blocking`.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::sftp::{RemoteFile, SftpError, SftpSession};

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
    pub max_bytes: u64,
}

/// A processed file's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileIdentity {
    pub path: String,
    pub size: u64,
    pub mtime: u64,
    pub sha256: String,
}

/// A ready file and its bytes.
#[derive(Debug, Clone)]
pub struct ReadyFile {
    pub identity: FileIdentity,
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

/// Watches one drop directory.
pub struct DropWatcher {
    pub config: DropConfig,
    /// The previous listing: path -> (size, mtime).
    last_listing: HashMap<String, (u64, u64)>,
    /// Processed identities (persisted in the cursor).
    processed: BTreeMap<String, FileIdentity>,
}

impl DropWatcher {
    /// A watcher that already processed `processed` (from the cursor).
    pub fn new(
        config: DropConfig,
        processed: impl IntoIterator<Item = FileIdentity>,
    ) -> DropWatcher {
        DropWatcher {
            config,
            last_listing: HashMap::new(),
            processed: processed.into_iter().map(|i| (i.path.clone(), i)).collect(),
        }
    }

    /// The processed set, for the cursor.
    pub fn processed(&self) -> Vec<FileIdentity> {
        self.processed.values().cloned().collect()
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
            .filter(|f| !f.is_dir)
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
        let mut ready = Vec::new();
        for f in candidates {
            let stable = self.last_listing.get(&f.path) == Some(&(f.size, f.mtime));
            let old_enough = now_unix.saturating_sub(f.mtime) >= self.config.min_age_secs;
            let already = self
                .processed
                .get(&f.path)
                .is_some_and(|p| p.size == f.size && p.mtime == f.mtime);
            if !stable || !old_enough || already {
                continue;
            }
            let bytes = session.read(&f.path, self.config.max_bytes)?;
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
                self.processed.insert(f.path.clone(), identity);
                continue;
            }
            ready.push(ReadyFile { identity, bytes });
        }
        self.last_listing = listing
            .iter()
            .map(|f| (f.path.clone(), (f.size, f.mtime)))
            .collect();
        Ok(ready)
    }

    /// Records a file as handled without moving it (a rejected payload:
    /// the same bytes are not read again, a changed re-upload is).
    pub fn remember(&mut self, identity: FileIdentity) {
        self.processed.insert(identity.path.clone(), identity);
    }

    /// Records a file as processed, after every cell from it was
    /// acknowledged; moves it to the archive directory when configured.
    pub fn mark_processed(
        &mut self,
        session: &SftpSession,
        identity: FileIdentity,
    ) -> Result<(), SftpError> {
        if let Some(archive) = &self.config.archive_dir {
            let name = identity.path.rsplit('/').next().unwrap_or(&identity.path);
            session.rename(
                &identity.path,
                &format!("{}/{name}", archive.trim_end_matches('/')),
            )?;
        }
        self.processed.insert(identity.path.clone(), identity);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
