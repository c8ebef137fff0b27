//! The raw payload archive: every accepted or rejected payload is stored
//! once, by sha256, so any result can be replayed and audited. Manifests
//! and dead letters carry the reference.
//!
//! Two places, one interface:
//! - **local files** (the default, under the state directory): written to
//!   a temporary name, fsynced and renamed into place (and the directory
//!   fsynced), so a crash never leaves a partial payload under a real name;
//!   a file already there is used only if its bytes still hash to its name;
//!   referenced as `file://<path>`;
//! - **S3** (when `[archive] s3_bucket` is set): `PutObject` of
//!   `<prefix><aa>/<bb>/<sha256>` unless a `HeadObject` finds it there
//!   already; referenced as `s3://<bucket>/<key>`. Tested against moto's S3
//!   API.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

/// Archiving failed. Retryable: the disk may have room again, the bucket
/// may answer again.
#[derive(Debug, thiserror::Error)]
#[error("archiving {sha256} in {place}: {message}")]
pub struct ArchiveError {
    /// The payload's sha256 (lower-case hex), also its name in the archive.
    pub sha256: String,
    /// Where it was being stored: the local root folder, or `s3://<bucket>/<prefix>`.
    pub place: String,
    /// What failed: the file-system error, or the `HeadObject` or `PutObject` error.
    pub message: String,
}

/// A content-addressed store of raw payloads.
#[derive(Debug, Clone)]
pub enum RawArchive {
    /// `<root>/<aa>/<bb>/<sha256>`.
    Local {
        /// The folder payloads are stored under (`<state_dir>/archive` by default).
        root: PathBuf,
    },
    /// `s3://<bucket>/<prefix><aa>/<bb>/<sha256>`.
    S3 {
        /// The S3 client the objects are written with.
        client: aws_sdk_s3::Client,
        /// The bucket the payloads are stored in (`[archive] s3_bucket`).
        bucket: String,
        /// Prepended to every object key, e.g. `raw/`; may be empty.
        prefix: String,
    },
}

fn shard(sha256: &str) -> (&str, &str) {
    (
        &sha256[..2.min(sha256.len())],
        &sha256[2.min(sha256.len())..4.min(sha256.len())],
    )
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

impl RawArchive {
    /// Files under `root`.
    pub fn local(root: impl Into<PathBuf>) -> RawArchive {
        RawArchive::Local { root: root.into() }
    }

    /// Objects in `bucket`, keys starting with `prefix` (e.g. `raw/`).
    pub fn s3(client: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> RawArchive {
        RawArchive::S3 {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }
    }

    fn key_of(prefix: &str, sha256: &str) -> String {
        let (a, b) = shard(sha256);
        format!("{prefix}{a}/{b}/{sha256}")
    }

    fn path_of(root: &Path, sha256: &str) -> PathBuf {
        let (a, b) = shard(sha256);
        root.join(a).join(b).join(sha256)
    }

    /// Where payloads go, for messages.
    pub fn place(&self) -> String {
        match self {
            RawArchive::Local { root } => root.display().to_string(),
            RawArchive::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Stores `bytes` (once) and returns (sha256, reference).
    pub async fn store(&self, bytes: &[u8]) -> Result<(String, String), ArchiveError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let err = |message: String| ArchiveError {
            sha256: sha256.clone(),
            place: self.place(),
            message,
        };
        match self {
            RawArchive::Local { root } => {
                let path = Self::path_of(root, &sha256);
                let io = |e: std::io::Error| err(e.to_string());
                // A file already there is trusted only if it still holds
                // these bytes (a crash before fsync, a disk fault or a hand
                // edit can leave it short or changed); otherwise it is
                // written again. The write is durable before the archive
                // reference is handed out: file fsync, rename, directory
                // fsync.
                let intact = std::fs::read(&path)
                    .is_ok_and(|there| hex::encode(Sha256::digest(&there)) == sha256);
                if !intact {
                    let dir = path.parent().expect("sharded path has a parent");
                    std::fs::create_dir_all(dir).map_err(io)?;
                    let mut file = atomic_write_file::AtomicWriteFile::open(&path).map_err(io)?;
                    std::io::Write::write_all(&mut file, bytes).map_err(io)?;
                    file.commit().map_err(io)?;
                }
                let abs = std::fs::canonicalize(&path).map_err(io)?;
                Ok((sha256.clone(), format!("file://{}", abs.display())))
            }
            RawArchive::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = Self::key_of(prefix, &sha256);
                let there = client.head_object().bucket(bucket).key(&key).send().await;
                match there {
                    Ok(_) => {}
                    Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => {
                        client
                            .put_object()
                            .bucket(bucket)
                            .key(&key)
                            .body(ByteStream::from(bytes.to_vec()))
                            .checksum_sha256(base64_sha256(bytes))
                            .send()
                            .await
                            .map_err(|e| {
                                err(format!(
                                    "PutObject: {}",
                                    aws_sdk_s3::error::DisplayErrorContext(&e)
                                ))
                            })?;
                    }
                    Err(e) => {
                        return Err(err(format!(
                            "HeadObject: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        )));
                    }
                }
                Ok((sha256.clone(), format!("s3://{bucket}/{key}")))
            }
        }
    }

    /// The archived bytes of `sha256`, if present (capped at `max_bytes`).
    pub async fn load(&self, sha256: &str, max_bytes: u64) -> Option<Vec<u8>> {
        if !is_sha256(sha256) {
            return None;
        }
        match self {
            RawArchive::Local { root } => {
                let path = Self::path_of(root, sha256);
                let len = std::fs::metadata(&path).ok()?.len();
                (len <= max_bytes).then(|| std::fs::read(path).ok())?
            }
            RawArchive::S3 {
                client,
                bucket,
                prefix,
            } => {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(Self::key_of(prefix, sha256))
                    .send()
                    .await
                    .ok()?;
                if out.content_length().is_some_and(|n| n as u64 > max_bytes) {
                    return None;
                }
                let bytes = out.body.collect().await.ok()?.into_bytes();
                (bytes.len() as u64 <= max_bytes).then(|| bytes.to_vec())
            }
        }
    }

    /// Creates the S3 bucket when it does not exist (local stacks; in
    /// production the bucket is provisioned, and this only checks it).
    pub async fn ensure_bucket(&self) -> Result<(), ArchiveError> {
        let RawArchive::S3 { client, bucket, .. } = self else {
            return Ok(());
        };
        let err = |message: String| ArchiveError {
            sha256: String::new(),
            place: self.place(),
            message,
        };
        match client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => client
                .create_bucket()
                .bucket(bucket)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    err(format!(
                        "CreateBucket: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                }),
            Err(e) => Err(err(format!(
                "HeadBucket: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ))),
        }
    }
}

/// The base64 sha256 S3 verifies the upload against.
fn base64_sha256(bytes: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(44);
    for chunk in digest.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payloads_are_stored_once_by_content_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let archive = RawArchive::local(dir.path());
        let (sha, r1) = archive.store(b"<html>error</html>").await.unwrap();
        let (_, r2) = archive.store(b"<html>error</html>").await.unwrap();
        assert_eq!(r1, r2, "idempotent");
        assert_eq!(sha, hex::encode(Sha256::digest(b"<html>error</html>")));
        assert!(r1.starts_with("file:///") && r1.ends_with(&sha));
        assert_eq!(
            archive.load(&sha, 1 << 20).await.unwrap(),
            b"<html>error</html>"
        );
        assert!(archive.load(&sha, 4).await.is_none(), "reads are capped");
        assert!(
            archive.load("../../etc/passwd", 1 << 20).await.is_none(),
            "only sha256 names are read"
        );
        let files: Vec<_> = walk(dir.path());
        assert_eq!(files.len(), 1, "no temporary files left behind: {files:?}");
    }

    #[tokio::test]
    async fn an_archived_file_that_no_longer_matches_its_hash_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let archive = RawArchive::local(dir.path());
        let (sha, _) = archive.store(b"county,votes\nA,35\n").await.unwrap();
        let path = RawArchive::path_of(dir.path(), &sha);
        // A crash before the data reached the disk, or a hand edit.
        std::fs::write(&path, b"county,votes\nA,3").unwrap();
        archive.store(b"county,votes\nA,35\n").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"county,votes\nA,35\n");
        // No temporary file is left beside it.
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn the_upload_checksum_is_standard_base64() {
        // RFC 4648 test vectors through sha256: known digests of "" and "abc".
        assert_eq!(
            base64_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            base64_sha256(b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
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
