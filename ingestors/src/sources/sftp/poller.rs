//! An SFTP feed's polls: the drop directory's ready files, one per step,
//! oldest first, over one session kept between polls; the processed set
//! is part of the cursor (as text, `encode_seen`).

use std::collections::VecDeque;
use std::time::Duration;

use super::drop::{DropConfig, DropWatcher, FileIdentity, ProcessedFiles, ReadyFile};
use super::{SftpEndpoint, SftpError, SftpSession};
use crate::feed_tools::FeedTools;
use crate::http::FetchLimits;
use crate::sources::{Payload, Polled, Poller, Source, SourceError, SourceFuture};
use crate::state::FeedCursor;

/// A drop directory on an SFTP server.
#[derive(Clone)]
pub struct SftpSpec {
    /// The server, the user, key and known_hosts files, and the timeout (the feed's
    /// `limits.timeout`).
    pub endpoint: SftpEndpoint,
    /// The drop directory and file pattern (split from `glob`), readiness rules and read
    /// cap.
    pub drop: DropConfig,
}

impl std::fmt::Debug for SftpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let SftpSpec { endpoint, drop } = self;
        write!(
            f,
            "sftp {}@{}:{}{}/{}",
            endpoint.user, endpoint.host, endpoint.port, drop.dir, drop.pattern
        )
    }
}

impl SftpSpec {
    /// The URI a file read from here is named by.
    fn uri_of(&self, path: &str) -> String {
        let ep = &self.endpoint;
        format!("sftp://{}@{}:{}{}", ep.user, ep.host, ep.port, path)
    }
}

impl Source for SftpSpec {
    fn resume(&self, cursor: FeedCursor) -> Box<dyn Poller> {
        Box::new(SftpPoller {
            watcher: Some(DropWatcher::resume(
                self.drop.clone(),
                decode_seen(cursor.sftp_seen.as_deref()),
            )),
            spec: self.clone(),
            session: None,
            ready: VecDeque::new(),
            current: None,
        })
    }

    fn fetch_once<'a>(
        &'a self,
        _tools: &'a FeedTools,
        _limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Payload, SourceError>> {
        Box::pin(async move {
            let (ep, drop) = (self.endpoint.clone(), self.drop.clone());
            let newest = tokio::task::spawn_blocking(move || {
                let session = SftpSession::connect(&ep)?;
                let mut watcher = DropWatcher::new(drop, Vec::new());
                // Two listings: a file must be stable across them.
                watcher.poll(&session, unix_now())?;
                std::thread::sleep(Duration::from_millis(500));
                Ok::<_, SftpError>(watcher.poll(&session, unix_now())?.pop())
            })
            .await
            .map_err(|e| SourceError::Task(e.to_string()))??;
            let file = newest.ok_or(SourceError::NothingReady)?;
            Ok(Payload {
                url: self.uri_of(&file.identity.path),
                sha256: file.identity.sha256,
                bytes: file.bytes.into(),
                content_type: None,
                version: None,
                cursor: FeedCursor::default(),
            })
        })
    }
}

/// An SFTP feed's position: the watcher (with the processed set), the
/// session, the files found ready and not yet taken, and the file the
/// last poll returned.
struct SftpPoller {
    spec: SftpSpec,
    /// `None` only while a blocking task holds it.
    watcher: Option<DropWatcher>,
    session: Option<SftpSession>,
    ready: VecDeque<ReadyFile>,
    current: Option<FileIdentity>,
}

impl Poller for SftpPoller {
    fn poll<'a>(
        &'a mut self,
        _tools: &'a FeedTools,
        _limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Polled, SourceError>> {
        Box::pin(self.next_file())
    }

    fn more(&self) -> bool {
        !self.ready.is_empty()
    }

    fn put_back(&mut self, payload: &Payload) {
        if let Some(identity) = self.current.take() {
            self.ready.push_front(ReadyFile {
                identity,
                bytes: payload.bytes.to_vec(),
            });
        }
    }

    fn accepted(&mut self, _feed_id: &str, payload: &Payload, _next: Option<&str>) -> FeedCursor {
        let mut cursor = payload.cursor.clone();
        cursor.sftp_seen = self.seen_with(self.current.as_ref());
        cursor
    }

    fn committed<'a>(
        &'a mut self,
        feed_id: &'a str,
        _cursor: &'a FeedCursor,
    ) -> SourceFuture<'a, ()> {
        Box::pin(async move {
            if let Some(file) = self.current.take() {
                self.finish_file(feed_id, file).await;
            }
        })
    }

    fn rejected(&mut self, _payload: &Payload) -> Option<FeedCursor> {
        let file = self.current.take()?;
        // Its identity, not its cells: the same bytes are not dead-lettered
        // again.
        if let Some(w) = &mut self.watcher {
            w.remember(file);
        }
        Some(FeedCursor {
            sftp_seen: self.seen_with(None),
            ..FeedCursor::default()
        })
    }
}

impl SftpPoller {
    /// The oldest ready file, listing the directory (and connecting) when
    /// none is queued.
    async fn next_file(&mut self) -> Result<Polled, SourceError> {
        self.current = None;
        if self.ready.is_empty() {
            let (Some(mut w), s) = (self.watcher.take(), self.session.take()) else {
                return Err(SourceError::Task(
                    "the drop watcher was lost by an earlier failure".into(),
                ));
            };
            // What the watcher knew, to rebuild it from if the listing's
            // thread dies with it.
            let before = w.processed_files();
            let ep = self.spec.endpoint.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let result = match s {
                    Some(s) => Ok(s),
                    None => SftpSession::connect(&ep),
                }
                .and_then(|s| w.poll(&s, unix_now()).map(|files| (s, files)));
                (w, result)
            })
            .await;
            let (w, result) = match joined {
                Ok(v) => v,
                Err(e) => {
                    self.watcher = Some(DropWatcher::resume(self.spec.drop.clone(), before));
                    return Err(SourceError::Task(e.to_string()));
                }
            };
            self.watcher = Some(w);
            match result {
                Ok((s, files)) => {
                    self.session = Some(s);
                    self.ready.extend(files);
                }
                // The session is dropped; the next poll reconnects.
                Err(e) => return Err(e.into()),
            }
        }
        let Some(file) = self.ready.pop_front() else {
            return Ok(Polled::Unchanged(None));
        };
        self.current = Some(file.identity.clone());
        Ok(Polled::Payload(Payload {
            cursor: FeedCursor::default(),
            sha256: file.identity.sha256.clone(),
            url: self.spec.uri_of(&file.identity.path),
            content_type: None,
            version: None,
            bytes: file.bytes.into(),
        }))
    }

    /// The processed set, for the cursor, with `extra` added.
    fn seen_with(&self, extra: Option<&FileIdentity>) -> Option<String> {
        let w = self.watcher.as_ref()?;
        let mut seen = w.processed_files();
        if let Some(e) = extra {
            seen.files.retain(|i| i.path != e.path);
            seen.files.push(e.clone());
        }
        encode_seen(&seen.bounded(SEEN_CAP, SEEN_MAX_BYTES, w.floor_cap()))
    }

    /// After a file's cells were acknowledged and the cursor stored: record
    /// it as processed and move it to the archive directory when
    /// configured. A failed move is reported, not retried: the file is
    /// already in the processed set.
    async fn finish_file(&mut self, feed_id: &str, file: FileIdentity) {
        let Some(mut w) = self.watcher.take() else {
            return;
        };
        let Some(s) = self.session.take() else {
            // No session (a dead thread took it): recorded, not moved; the
            // next listing reconnects.
            tracing::warn!(
                "feed {feed_id}: {} processed; not moved to the archive directory (no SFTP session)",
                file.path
            );
            w.remember(file);
            self.watcher = Some(w);
            return;
        };
        // The stored cursor already holds the file: a watcher rebuilt after
        // a dead thread holds it too.
        let mut after = w.processed_files();
        after.files.retain(|i| i.path != file.path);
        after.files.push(file.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let moved = w.mark_processed(&s, file);
            (w, s, moved)
        })
        .await;
        match joined {
            Ok((w, s, moved)) => {
                self.watcher = Some(w);
                self.session = Some(s);
                if let Err(e) = moved {
                    tracing::warn!(
                        "feed {feed_id}: processed, but moving it to the archive directory failed: {e}",
                    );
                }
            }
            Err(e) => {
                tracing::warn!("feed {feed_id}: recording the processed file failed: {e}");
                self.watcher = Some(DropWatcher::resume(self.spec.drop.clone(), after));
            }
        }
    }
}

/// The most files the processed set keeps by name (newest by mtime), and
/// the most bytes their entries take: it lives in one DynamoDB item (400
/// KB at most), beside the rest of the cursor. Older files are covered by
/// the floor.
const SEEN_CAP: usize = super::drop::MAX_REMEMBERED;
const SEEN_MAX_BYTES: usize = 128 * 1024;

/// Seconds since the epoch, as file mtimes are.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The SFTP processed set: a `floor <mtime>` line when the floor is set,
/// then one `sha256 size mtime path` line per file (the path last, so it
/// may hold spaces).
fn encode_seen(seen: &ProcessedFiles) -> Option<String> {
    let floor = (seen.floor_mtime > 0).then(|| format!("floor {}", seen.floor_mtime));
    let lines: Vec<String> = floor
        .into_iter()
        .chain(
            seen.files
                .iter()
                .filter(|i| !i.path.contains('\n'))
                .map(|i| format!("{} {} {} {}", i.sha256, i.size, i.mtime, i.path)),
        )
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn decode_seen(s: Option<&str>) -> ProcessedFiles {
    let mut seen = ProcessedFiles::default();
    for l in s.unwrap_or_default().lines() {
        if let Some(floor) = l.strip_prefix("floor ") {
            seen.floor_mtime = floor.parse().unwrap_or(0);
            continue;
        }
        let mut parts = l.splitn(4, ' ');
        let file = (|| {
            Some(FileIdentity {
                sha256: parts.next()?.to_string(),
                size: parts.next()?.parse().ok()?,
                mtime: parts.next()?.parse().ok()?,
                path: parts.next()?.to_string(),
            })
        })();
        seen.files.extend(file);
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sftp_seen_set_round_trips_through_its_cursor_text() {
        let seen = vec![
            FileIdentity {
                path: "/drop/a b.csv".into(),
                size: 10,
                mtime: 1_700_000_000,
                sha256: "ab".repeat(32),
            },
            FileIdentity {
                path: "/drop/c.csv".into(),
                size: 0,
                mtime: 1,
                sha256: "cd".repeat(32),
            },
        ];
        let seen = ProcessedFiles {
            floor_mtime: 0,
            files: seen,
        };
        assert_eq!(decode_seen(encode_seen(&seen).as_deref()), seen);
        let floored = ProcessedFiles {
            floor_mtime: 1_699_999_000,
            ..seen.clone()
        };
        assert_eq!(decode_seen(encode_seen(&floored).as_deref()), floored);
        assert_eq!(encode_seen(&ProcessedFiles::default()), None);
        assert_eq!(decode_seen(Some("garbage")), ProcessedFiles::default());
    }
}
