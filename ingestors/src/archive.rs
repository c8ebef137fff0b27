//! The raw payload archive: every accepted or rejected payload is stored
//! once, by sha256, so any result can be replayed and audited.
//!
//! This is the local-filesystem archive (the default, under the state
//! directory). Files are written to a temporary name and renamed into
//! place, so a crash never leaves a partial payload under a real name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Archiving failed. Retryable: the disk may have room again.
#[derive(Debug, thiserror::Error)]
#[error("archiving {sha256} under {dir}: {source}")]
pub struct ArchiveError {
    pub sha256: String,
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A content-addressed directory: `<root>/<aa>/<bb>/<sha256>`.
#[derive(Debug, Clone)]
pub struct RawArchive {
    root: PathBuf,
}

impl RawArchive {
    pub fn new(root: impl Into<PathBuf>) -> RawArchive {
        RawArchive { root: root.into() }
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        let (a, b) = (
            &sha256[..2.min(sha256.len())],
            &sha256[2.min(sha256.len())..4.min(sha256.len())],
        );
        self.root.join(a).join(b).join(sha256)
    }

    /// Stores `bytes` (once) and returns its reference, `file://<path>`.
    pub fn store(&self, bytes: &[u8]) -> Result<(String, String), ArchiveError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let path = self.path_of(&sha256);
        let err = |source| ArchiveError {
            sha256: sha256.clone(),
            dir: self.root.clone(),
            source,
        };
        if !path.exists() {
            let dir = path.parent().expect("sharded path has a parent");
            std::fs::create_dir_all(dir).map_err(err)?;
            let tmp = dir.join(format!(".{sha256}.{}", uuid::Uuid::now_v7().simple()));
            std::fs::write(&tmp, bytes).map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
        }
        let abs = std::fs::canonicalize(&path).map_err(err)?;
        Ok((sha256, format!("file://{}", abs.display())))
    }

    /// The archived bytes of `sha256`, if present.
    pub fn load(&self, sha256: &str) -> Option<Vec<u8>> {
        if sha256.len() != 64 || !sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        std::fs::read(self.path_of(sha256)).ok()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_stored_once_by_content_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let archive = RawArchive::new(dir.path());
        let (sha, r1) = archive.store(b"<html>error</html>").unwrap();
        let (_, r2) = archive.store(b"<html>error</html>").unwrap();
        assert_eq!(r1, r2, "idempotent");
        assert_eq!(sha, hex::encode(Sha256::digest(b"<html>error</html>")));
        assert!(r1.starts_with("file:///") && r1.ends_with(&sha));
        assert_eq!(archive.load(&sha).unwrap(), b"<html>error</html>");
        assert!(
            archive.load("../../etc/passwd").is_none(),
            "only sha256 names are read"
        );
        let files: Vec<_> = walk(dir.path());
        assert_eq!(files.len(), 1, "no temporary files left behind: {files:?}");
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
