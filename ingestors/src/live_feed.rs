//! One feed, one poll step at a time, whatever its source: fetch, transform,
//! publish, fenced cursor commit, health. This is the step a feed loop
//! ([`crate::cadence::run_feed_loop`]) runs.
//!
//! Sources differ only in how they fetch and what their cursor holds:
//! - **Clarity**: `current_ver.txt`, then the versioned file when the
//!   version moved (and every `revalidate_every`-th poll regardless);
//! - **HTTP** and **HTML**: a conditional GET; a 304 or a byte-identical
//!   body is "unchanged";
//! - **AP**: a conditional GET of the `nextrequest` link the last accepted
//!   payload named (never one that makes no progress), with the API key in
//!   a header;
//! - **SFTP**: the drop directory's ready files, one per step, oldest first;
//!   the processed set is part of the cursor.
//!
//! HTTP-like sources go through a shared [`HostGate`]: a per-host
//! concurrency limit, and one backoff for every feed on a host that failed
//! or asked for a wait.
//!
//! The order within a step is the commit protocol: every changed cell is
//! acknowledged and the manifest written before the cursor moves, so a
//! crash anywhere republishes and never skips. A rejected payload leaves the
//! cursor's content position, the change memory and the published cells as
//! they were; an identical rejected payload is not dead-lettered twice.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use votewire_core::trace_context::{self, child_span, end_span, root_span};
use votewire_schemas::{FeedHealth, FeedMode};
use votewire_transformers::PayloadContext;

use crate::archive::{ArchiveError, RawArchive};
use crate::cadence::StepOutcome;
use crate::conditional::{Backoff, HostGate, HttpValidators, PollOutcome, poll_with};
use crate::feeds::{FeedEntry, FeedModeConfig, SecretRef, SourceConfig, parse_duration};
use crate::health::{HealthMachine, Observation, Transition};
use crate::http::{FetchError, FetchLimits};
use crate::publish::{FetchFacts, PublishError, Published, PublishedCells, Publisher};
use crate::result_links::ResultLinker;
use crate::sources::ap::{ApCursor, ApSource};
use crate::sources::clarity::{
    ClarityCursor, ClarityError, ClarityPoll, ClaritySource, poll_clarity,
};
use crate::sources::html::HtmlSource;
use crate::sources::http::HttpSource;
use crate::sources::sftp::drop::{
    DropConfig, DropWatcher, FileIdentity, ProcessedFiles, ReadyFile,
};
use crate::sources::sftp::{SftpEndpoint, SftpError, SftpSession, SftpSource};
use crate::state::{FeedCursor, FeedStateStore, HealthEvent, Lease, StateError};
use crate::transform_run::{
    DEFAULT_TRANSFORM_TIMEOUT, NoTransformSlot, TransformJob, TransformThreads, run_transform,
};

/// Why a feed's registry entry cannot be turned into a running feed. Not
/// retryable: the entry or the files it names must change.
#[derive(Debug, thiserror::Error)]
#[error("feed {feed_id}: {what}")]
pub struct FeedSpecError {
    pub feed_id: String,
    pub what: String,
}

/// Why a source could not be polled.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Clarity(#[from] ClarityError),
    #[error(transparent)]
    Http(#[from] FetchError),
    #[error(transparent)]
    Sftp(#[from] SftpError),
    #[error("the SFTP task failed: {0}")]
    Task(String),
    #[error("the source asked to wait {0:?}")]
    Wait(Duration),
    #[error("no ready file in the drop directory")]
    NothingReady,
}

impl SourceError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Clarity(e) => e.is_retryable(),
            SourceError::Http(e) => e.is_retryable(),
            SourceError::Sftp(e) => e.is_retryable(),
            SourceError::Task(_) | SourceError::Wait(_) | SourceError::NothingReady => true,
        }
    }
}

/// A step that could not finish. The cursor did not move.
#[derive(Debug, thiserror::Error)]
pub enum FeedStepError {
    #[error("feed {feed_id}: polling the source: {source}")]
    Fetch {
        feed_id: String,
        #[source]
        source: SourceError,
    },
    #[error("feed {feed_id}: publishing: {source}")]
    Publish {
        feed_id: String,
        #[source]
        source: PublishError,
    },
    #[error("feed {feed_id}: state store: {source}")]
    State {
        feed_id: String,
        #[source]
        source: StateError,
    },
    #[error("feed {feed_id}: {source}")]
    Archive {
        feed_id: String,
        #[source]
        source: ArchiveError,
    },
    #[error("feed {feed_id}: {source}")]
    Transform {
        feed_id: String,
        #[source]
        source: NoTransformSlot,
    },
}

impl FeedStepError {
    /// Whether the next poll may succeed (transport trouble, a busy
    /// broker) as opposed to a lost lease or a bug.
    pub fn is_retryable(&self) -> bool {
        match self {
            FeedStepError::Fetch { source, .. } => source.is_retryable(),
            FeedStepError::Publish { source, .. } => source.is_retryable(),
            FeedStepError::State { source, .. } => source.is_retryable(),
            FeedStepError::Archive { .. } | FeedStepError::Transform { .. } => true,
        }
    }
}

/// Where a feed's payloads come from, resolved from its registry entry:
/// secrets read, durations parsed.
#[derive(Clone)]
pub enum SourceSpec {
    Clarity {
        base_url: String,
        file: String,
        /// Fetch the versioned file even under an unchanged version every
        /// this many polls (0: never).
        revalidate_every: u64,
    },
    /// HTTP, HTML and AP: a conditional GET with these extra headers. AP
    /// also follows `nextrequest`.
    Http {
        url: String,
        headers: HeaderMap,
        follow_next_request: bool,
    },
    Sftp {
        endpoint: SftpEndpoint,
        drop: DropConfig,
    },
}

impl std::fmt::Debug for SourceSpec {
    // Headers may hold credentials: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Clarity { base_url, file, .. } => {
                write!(f, "clarity {base_url} {file}")
            }
            SourceSpec::Http { url, headers, .. } => {
                write!(f, "http {url} ({} extra header(s))", headers.len())
            }
            SourceSpec::Sftp { endpoint, drop } => write!(
                f,
                "sftp {}@{}:{}{}/{}",
                endpoint.user, endpoint.host, endpoint.port, drop.dir, drop.pattern
            ),
        }
    }
}

/// Everything a feed needs to be polled.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    pub feed_id: String,
    pub election_id: String,
    pub family: String,
    pub mode: FeedMode,
    pub source: SourceSpec,
    pub mapping: Option<toml::Table>,
    pub companion: Option<Arc<[u8]>>,
    pub limits: FetchLimits,
    /// How long one payload's transform may take (`limits.transform_timeout`).
    pub transform_timeout: Duration,
    /// `[feed.results]` with the feed's priority, stamped on every cell.
    pub result_links: Option<Arc<ResultLinker>>,
}

fn secret(feed_id: &str, what: &str, r: &SecretRef) -> Result<String, FeedSpecError> {
    let err = |why: String| FeedSpecError {
        feed_id: feed_id.to_string(),
        what: format!("{what}: {why}"),
    };
    crate::sources::secrets::read_secret(r).map_err(err)
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

/// A request header; `secret` marks its value sensitive, which keeps it out
/// of debug output and sends the source's requests through the client that
/// follows no cross-origin redirect ([`FeedTools::client_for`]).
fn header(
    feed_id: &str,
    name: &str,
    value: &str,
    secret: bool,
) -> Result<(HeaderName, HeaderValue), FeedSpecError> {
    let err = |why: String| FeedSpecError {
        feed_id: feed_id.to_string(),
        what: format!("header {name}: {why}"),
    };
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| err(e.to_string()))?;
    let mut v = HeaderValue::from_str(value).map_err(|e| err(e.to_string()))?;
    v.set_sensitive(secret);
    Ok((n, v))
}

impl FeedSpec {
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
        let source = match entry.source.get_ref().clone() {
            SourceConfig::Clarity(ClaritySource { base_url, file }) => SourceSpec::Clarity {
                base_url,
                file,
                revalidate_every: 4,
            },
            SourceConfig::Http(HttpSource {
                url,
                headers,
                secret_headers,
            }) => {
                let mut map = HeaderMap::new();
                for (name, value) in &headers {
                    let (n, v) = header(&feed_id, name, value, false)?;
                    map.insert(n, v);
                }
                for (name, r) in &secret_headers {
                    let value = secret(&feed_id, &format!("header {name}"), r)?;
                    let (n, v) = header(&feed_id, name, &value, true)?;
                    map.insert(n, v);
                }
                SourceSpec::Http {
                    url,
                    headers: map,
                    follow_next_request: false,
                }
            }
            SourceConfig::Html(HtmlSource { url }) => SourceSpec::Http {
                url,
                headers: HeaderMap::new(),
                follow_next_request: false,
            },
            SourceConfig::Ap(ApSource { url, api_key }) => {
                let key = secret(&feed_id, "api_key", &api_key)?;
                let (n, v) = header(&feed_id, "x-api-key", &key, true)?;
                let mut headers = HeaderMap::new();
                headers.insert(n, v);
                SourceSpec::Http {
                    url,
                    headers,
                    follow_next_request: true,
                }
            }
            SourceConfig::Sftp(SftpSource {
                host,
                port,
                user,
                key_file,
                known_hosts,
                glob,
                min_age,
                archive_dir,
                done_marker,
            }) => {
                let (dir, pattern) = match glob.rsplit_once('/') {
                    Some((d, p)) if !d.is_empty() => (d.to_string(), p.to_string()),
                    Some((_, p)) => ("/".to_string(), p.to_string()),
                    None => (".".to_string(), glob.clone()),
                };
                let min_age = parse_duration(&min_age)
                    .ok_or_else(|| err(format!("min_age {min_age:?} is not a duration")))?;
                SourceSpec::Sftp {
                    endpoint: SftpEndpoint {
                        host,
                        port,
                        user,
                        private_key: key_file,
                        known_hosts,
                        timeout: limits.total_timeout,
                    },
                    drop: DropConfig {
                        dir,
                        pattern,
                        min_age_secs: min_age.as_secs(),
                        done_marker,
                        archive_dir,
                        max_bytes: limits.max_bytes,
                    },
                }
            }
        };
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
            mode: match entry.mode {
                FeedModeConfig::Live => FeedMode::Live,
                FeedModeConfig::Test => FeedMode::Test,
                FeedModeConfig::Replay => FeedMode::Replay,
            },
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

/// What the ingestor shares across feeds: the HTTP client, the per-host
/// gate, the raw archive, and a bound on payloads processed at once (a
/// thousand feeds starting together must not hold a thousand transformed
/// payloads in memory).
#[derive(Clone)]
pub struct FeedTools {
    pub http: reqwest::Client,
    /// For sources that send a credential: redirects within the origin only.
    pub http_credentialed: reqwest::Client,
    pub gate: HostGate,
    pub backoff: Backoff,
    pub archive: Option<RawArchive>,
    pub work: std::sync::Arc<tokio::sync::Semaphore>,
    /// Where transforms run: off the async workers, one per core at most.
    pub transforms: TransformThreads,
    /// Fault injection for the crash-safety test only: abort the process
    /// right after a payload's cells were acknowledged and before its
    /// cursor is committed (`VOTEWIRE_FAULT=abort-after-produce`).
    pub abort_after_produce: bool,
}

impl FeedTools {
    /// The client for a request with `headers`: the credentialed one when
    /// any of them is a secret, so a credential never follows a redirect to
    /// another origin, in a poll or in a dry run.
    pub fn client_for(&self, headers: &HeaderMap) -> &reqwest::Client {
        if headers.values().any(HeaderValue::is_sensitive) {
            &self.http_credentialed
        } else {
            &self.http
        }
    }

    /// `per_host` concurrent fetches per host, `concurrent_payloads`
    /// payloads transformed and published at once.
    pub fn new(
        http: reqwest::Client,
        per_host: usize,
        archive: Option<RawArchive>,
        concurrent_payloads: usize,
    ) -> FeedTools {
        FeedTools {
            http,
            http_credentialed: crate::http::credentialed_client_for(&FetchLimits::default(), None)
                .expect("a client with default settings builds"),
            gate: HostGate::new(per_host),
            backoff: Backoff::default(),
            archive,
            work: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent_payloads.max(1))),
            transforms: TransformThreads::per_core(),
            abort_after_produce: false,
        }
    }
}

/// A source's position between steps.
enum Poller {
    Clarity {
        cursor: ClarityCursor,
        polls: u64,
    },
    Http {
        validators: HttpValidators,
        next: Option<ApCursor>,
    },
    Sftp {
        watcher: Option<DropWatcher>,
        session: Option<SftpSession>,
        ready: VecDeque<ReadyFile>,
    },
}

/// One fetched payload and what committing it moves.
struct Payload {
    bytes: bytes::Bytes,
    sha256: String,
    url: String,
    content_type: Option<String>,
    version: Option<String>,
    /// The source position once this payload is accepted.
    cursor: FeedCursor,
    /// The SFTP file it came from.
    file: Option<FileIdentity>,
}

enum Polled {
    Payload(Payload),
    /// Nothing new; store this cursor when it moved (a new ETag or version
    /// with identical content).
    Unchanged(Option<FeedCursor>),
    Wait(Duration),
}

/// Where a step's outcomes go: state store, Kafka, under which lease.
type Sinks<'a> = (&'a dyn FeedStateStore, &'a Publisher, &'a Lease);

/// What one step did.
#[derive(Debug, Default)]
pub struct StepReport {
    /// Cells published for an accepted payload.
    pub published: Option<Published>,
    /// A payload was rejected and dead-lettered.
    pub rejected: bool,
    /// The health transition, if any (already stored and published).
    pub transition: Option<Transition>,
    /// The source asked for a wait.
    pub wait: Option<Duration>,
    /// More is ready right now (queued SFTP files): step again at once.
    pub more: bool,
    /// The size of the payload fetched, when one was.
    pub payload_bytes: Option<usize>,
    /// The rejected payload's error class.
    pub error_class: Option<&'static str>,
}

impl StepReport {
    /// How the feed loop should schedule the next step.
    pub fn outcome(&self) -> StepOutcome {
        match self.wait {
            Some(d) => StepOutcome::Wait(d),
            None if self.more => StepOutcome::Again,
            None => StepOutcome::Done,
        }
    }
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

/// The most files the processed set keeps by name (newest by mtime), and
/// the most bytes their entries take: it lives in one DynamoDB item (400
/// KB at most), beside the rest of the cursor. Older files are covered by
/// the floor.
const SEEN_CAP: usize = crate::sources::sftp::drop::MAX_REMEMBERED;
const SEEN_MAX_BYTES: usize = 128 * 1024;

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| url.to_string())
}

/// One running feed: its spec and in-memory state.
pub struct LiveFeed {
    pub spec: FeedSpec,
    /// This ingestor instance, for health records.
    pub instance: String,
    pub source_seq: i64,
    pub memory: PublishedCells,
    pub health: HealthMachine,
    poller: Poller,
    last_rejected_sha: Option<String>,
}

impl LiveFeed {
    /// A feed resuming from its stored cursor (or from scratch). The change
    /// memory starts empty, so the first accepted payload republishes every
    /// cell once: harmless, cells are cumulative upserts.
    pub async fn resume(
        state: &dyn FeedStateStore,
        spec: FeedSpec,
        instance: &str,
        health: HealthMachine,
    ) -> Result<LiveFeed, FeedStepError> {
        let stored = state
            .load(&spec.feed_id)
            .await
            .map_err(|source| FeedStepError::State {
                feed_id: spec.feed_id.clone(),
                source,
            })?;
        let mut health = health;
        let (cursor, source_seq) = match stored {
            Some(s) => {
                // An operator's pause and a quarantine outlive restarts.
                if s.paused {
                    health.state = FeedHealth::Paused;
                } else if s.health == FeedHealth::Quarantined.as_str() {
                    health.state = FeedHealth::Quarantined;
                }
                (s.cursor, s.source_seq)
            }
            None => (FeedCursor::default(), 0),
        };
        let poller = match &spec.source {
            SourceSpec::Clarity { .. } => Poller::Clarity {
                cursor: ClarityCursor {
                    version: cursor.version,
                    sha256: cursor.sha256,
                },
                polls: 0,
            },
            SourceSpec::Http {
                url,
                follow_next_request,
                ..
            } => Poller::Http {
                validators: HttpValidators {
                    etag: cursor.etag,
                    last_modified: cursor.last_modified,
                    sha256: cursor.sha256,
                },
                next: follow_next_request.then(|| {
                    let mut ap = ApCursor::new(url);
                    ap.next = cursor.next_request;
                    ap
                }),
            },
            SourceSpec::Sftp { drop, .. } => Poller::Sftp {
                watcher: Some(DropWatcher::resume(
                    drop.clone(),
                    decode_seen(cursor.sftp_seen.as_deref()),
                )),
                session: None,
                ready: VecDeque::new(),
            },
        };
        Ok(LiveFeed {
            instance: instance.to_string(),
            source_seq,
            memory: PublishedCells::default(),
            health,
            poller,
            last_rejected_sha: None,
            spec,
        })
    }

    pub fn feed_id(&self) -> &str {
        &self.spec.feed_id
    }

    /// Makes the next step fetch the content even if the source says it is
    /// unchanged (Clarity: every `n`-th poll).
    pub fn set_revalidate_every(&mut self, n: u64) {
        if let SourceSpec::Clarity {
            revalidate_every, ..
        } = &mut self.spec.source
        {
            *revalidate_every = n;
        }
    }

    fn fetch_err(&self, source: impl Into<SourceError>) -> FeedStepError {
        FeedStepError::Fetch {
            feed_id: self.spec.feed_id.clone(),
            source: source.into(),
        }
    }

    fn state_err(&self) -> impl FnOnce(StateError) -> FeedStepError + '_ {
        move |source| FeedStepError::State {
            feed_id: self.spec.feed_id.clone(),
            source,
        }
    }

    fn publish_err(&self) -> impl FnOnce(PublishError) -> FeedStepError + '_ {
        move |source| FeedStepError::Publish {
            feed_id: self.spec.feed_id.clone(),
            source,
        }
    }

    /// The processed SFTP set, for the cursor, with `extra` added.
    fn seen_with(&self, extra: Option<&FileIdentity>) -> Option<String> {
        let Poller::Sftp {
            watcher: Some(w), ..
        } = &self.poller
        else {
            return None;
        };
        let mut seen = w.processed_files();
        if let Some(e) = extra {
            seen.files.retain(|i| i.path != e.path);
            seen.files.push(e.clone());
        }
        encode_seen(&seen.bounded(SEEN_CAP, SEEN_MAX_BYTES, w.floor_cap()))
    }

    /// Polls the source once.
    async fn poll_source(&mut self, tools: &FeedTools) -> Result<Polled, FeedStepError> {
        let limits = self.spec.limits;
        match (&self.spec.source, &mut self.poller) {
            (
                SourceSpec::Clarity {
                    base_url,
                    file,
                    revalidate_every,
                },
                Poller::Clarity { cursor, polls },
            ) => {
                *polls += 1;
                let revalidate = *revalidate_every > 0 && polls.is_multiple_of(*revalidate_every);
                let host = host_of(base_url);
                if let Some(d) = tools.gate.blocked_for(&host, Instant::now()) {
                    return Ok(Polled::Wait(d));
                }
                let permit = tools.gate.enter(&host).await;
                let polled =
                    poll_clarity(&tools.http, base_url, file, cursor, &limits, revalidate).await;
                drop(permit);
                let base = FeedCursor {
                    version: cursor.version.clone(),
                    sha256: cursor.sha256.clone(),
                    ..FeedCursor::default()
                };
                match polled {
                    Err(e) => {
                        // Only the host's own trouble backs every feed on it
                        // off; a bad version file is this site's content.
                        if matches!(&e, ClarityError::Fetch(f) if f.is_retryable()) {
                            tools.gate.failed(&host, &tools.backoff);
                        }
                        Err(self.fetch_err(e))
                    }
                    Ok(ClarityPoll::Wait(PollOutcome::Wait { delay, .. })) => {
                        tools.gate.back_off(&host, delay);
                        Ok(Polled::Wait(delay))
                    }
                    Ok(ClarityPoll::Wait(_)) => Ok(Polled::Unchanged(None)),
                    Ok(ClarityPoll::SameVersion(version) | ClarityPoll::Unchanged { version }) => {
                        tools.gate.succeeded(&host);
                        // A new version with identical bytes: remember it so
                        // a restart doesn't refetch.
                        if base.version.as_deref() == Some(version.as_str()) {
                            Ok(Polled::Unchanged(None))
                        } else {
                            cursor.version = Some(version.clone());
                            Ok(Polled::Unchanged(Some(FeedCursor {
                                version: Some(version),
                                ..base
                            })))
                        }
                    }
                    Ok(ClarityPoll::Changed { version, body }) => {
                        tools.gate.succeeded(&host);
                        Ok(Polled::Payload(Payload {
                            cursor: FeedCursor {
                                version: Some(version.clone()),
                                sha256: Some(body.sha256.clone()),
                                ..FeedCursor::default()
                            },
                            bytes: body.bytes,
                            sha256: body.sha256,
                            url: body.url,
                            content_type: body.content_type,
                            version: Some(version),
                            file: None,
                        }))
                    }
                }
            }
            (SourceSpec::Http { url, headers, .. }, Poller::Http { validators, next }) => {
                let target = next
                    .as_ref()
                    .map_or(url.as_str(), ApCursor::url)
                    .to_string();
                let host = host_of(&target);
                if let Some(d) = tools.gate.blocked_for(&host, Instant::now()) {
                    return Ok(Polled::Wait(d));
                }
                let permit = tools.gate.enter(&host).await;
                let client = tools.client_for(headers);
                let polled = poll_with(client, &target, validators, headers, &limits).await;
                drop(permit);
                let cursor_with =
                    |etag: Option<String>, lm: Option<String>, sha: Option<String>| FeedCursor {
                        etag,
                        last_modified: lm,
                        sha256: sha,
                        next_request: next.as_ref().and_then(|n| n.next.clone()),
                        ..FeedCursor::default()
                    };
                match polled {
                    Err(e) => {
                        if e.is_retryable() {
                            tools.gate.failed(&host, &tools.backoff);
                        }
                        Err(self.fetch_err(e))
                    }
                    Ok(PollOutcome::Wait { delay, .. }) => {
                        tools.gate.back_off(&host, delay);
                        Ok(Polled::Wait(delay))
                    }
                    Ok(PollOutcome::NotModified) => {
                        tools.gate.succeeded(&host);
                        Ok(Polled::Unchanged(None))
                    }
                    Ok(PollOutcome::Unchanged {
                        etag,
                        last_modified,
                    }) => {
                        tools.gate.succeeded(&host);
                        if etag == validators.etag && last_modified == validators.last_modified {
                            return Ok(Polled::Unchanged(None));
                        }
                        validators.etag = etag.clone();
                        validators.last_modified = last_modified.clone();
                        Ok(Polled::Unchanged(Some(cursor_with(
                            etag,
                            last_modified,
                            validators.sha256.clone(),
                        ))))
                    }
                    Ok(PollOutcome::Changed(body)) => {
                        tools.gate.succeeded(&host);
                        Ok(Polled::Payload(Payload {
                            cursor: cursor_with(
                                body.etag.clone(),
                                body.last_modified.clone(),
                                Some(body.sha256.clone()),
                            ),
                            bytes: body.bytes,
                            sha256: body.sha256,
                            url: body.url,
                            content_type: body.content_type,
                            version: None,
                            file: None,
                        }))
                    }
                }
            }
            (
                SourceSpec::Sftp { endpoint, .. },
                Poller::Sftp {
                    watcher,
                    session,
                    ready,
                },
            ) => {
                if ready.is_empty() {
                    let (Some(mut w), s) = (watcher.take(), session.take()) else {
                        return Err(self.fetch_err(SourceError::Task(
                            "the drop watcher was lost by an earlier failure".into(),
                        )));
                    };
                    let ep = endpoint.clone();
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
                        Err(e) => return Err(self.fetch_err(SourceError::Task(e.to_string()))),
                    };
                    *watcher = Some(w);
                    match result {
                        Ok((s, files)) => {
                            *session = Some(s);
                            ready.extend(files);
                        }
                        // The session is dropped; the next poll reconnects.
                        Err(e) => return Err(self.fetch_err(e)),
                    }
                }
                let Some(file) = ready.pop_front() else {
                    return Ok(Polled::Unchanged(None));
                };
                let path = file.identity.path.clone();
                Ok(Polled::Payload(Payload {
                    cursor: FeedCursor::default(),
                    sha256: file.identity.sha256.clone(),
                    url: format!(
                        "sftp://{}@{}:{}{}",
                        endpoint.user, endpoint.host, endpoint.port, path
                    ),
                    content_type: None,
                    version: None,
                    file: Some(file.identity),
                    bytes: file.bytes.into(),
                }))
            }
            _ => unreachable!("the poller is built from the spec"),
        }
    }

    /// After an SFTP file's cells were acknowledged and the cursor stored:
    /// record it as processed and move it to the archive directory when
    /// configured. A failed move is reported, not retried: the file is
    /// already in the processed set.
    async fn finish_file(&mut self, file: FileIdentity) {
        let Poller::Sftp {
            watcher, session, ..
        } = &mut self.poller
        else {
            return;
        };
        let (Some(mut w), Some(s)) = (watcher.take(), session.take()) else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let moved = w.mark_processed(&s, file);
            (w, s, moved)
        })
        .await;
        if let Ok((w, s, moved)) = joined {
            *watcher = Some(w);
            *session = Some(s);
            if let Err(e) = moved {
                tracing::warn!(
                    "feed {}: processed, but moving it to the archive directory failed: {e}",
                    self.spec.feed_id
                );
            }
        }
    }

    /// Records a rejected SFTP file as seen (its identity, not its cells),
    /// so the same bytes are not dead-lettered again.
    fn seen_rejected(&mut self, file: &FileIdentity) {
        if let Poller::Sftp {
            watcher: Some(w), ..
        } = &mut self.poller
        {
            w.remember(file.clone());
        }
    }

    /// Stores and publishes a health observation's transition, if any.
    async fn observe(
        &mut self,
        obs: Observation,
        now_ms: i64,
        fetch_id: Option<&str>,
        (state, publisher, lease): Sinks<'_>,
    ) -> Result<Option<Transition>, FeedStepError> {
        let Some(t) = self.health.observe(obs, now_ms) else {
            return Ok(None);
        };
        let record =
            self.health
                .status_record(&self.spec.feed_id, &t, now_ms, &self.instance, fetch_id);
        let event = HealthEvent {
            at_ms: now_ms,
            from: Some(t.from.as_str().to_string()),
            to: t.to.as_str().to_string(),
            reason: t.reason.clone(),
            actor: self.instance.clone(),
        };
        state
            .record_health(lease, &event, i64::from(record.consecutive_failures))
            .await
            .map_err(self.state_err())?;
        publisher
            .publish_status(&record)
            .await
            .map_err(self.publish_err())?;
        Ok(Some(t))
    }

    /// Runs one poll and records it in the feed metrics
    /// ([`crate::feed_metrics`]). On `Err` nothing was committed; the feed
    /// loop backs off and tries again.
    pub async fn step(
        &mut self,
        tools: &FeedTools,
        publisher: &Publisher,
        state: &dyn FeedStateStore,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<StepReport, FeedStepError> {
        let started = Instant::now();
        let result = self.poll_once(tools, publisher, state, lease, now_ms).await;
        let (outcome, error_type) = match &result {
            Ok(r) if r.published.is_some() => ("changed", None),
            Ok(r) if r.rejected => ("rejected", r.error_class),
            Ok(_) => ("unchanged", None),
            Err(e) => (
                "failed",
                Some(match e {
                    FeedStepError::Fetch { .. } => "fetch",
                    FeedStepError::Publish { .. } => "publish",
                    FeedStepError::State { .. } => "state",
                    FeedStepError::Archive { .. } => "archive",
                    FeedStepError::Transform { .. } => "transform",
                }),
            ),
        };
        let report = result.as_ref().ok();
        crate::feed_metrics::record_poll(&crate::feed_metrics::PollFacts {
            feed_id: &self.spec.feed_id,
            outcome,
            took: started.elapsed(),
            payload_bytes: report.and_then(|r| r.payload_bytes),
            cells_changed: report.and_then(|r| r.published.as_ref().map(|p| p.cells_changed)),
            error_type,
            health: self.health.state.as_str(),
            last_change_ms: self.health.last_change_ms,
        });
        result
    }

    async fn poll_once(
        &mut self,
        tools: &FeedTools,
        publisher: &Publisher,
        state: &dyn FeedStateStore,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<StepReport, FeedStepError> {
        if matches!(
            self.health.state,
            FeedHealth::Quarantined | FeedHealth::Paused
        ) {
            // An operator has to look first; nothing is fetched.
            return Ok(StepReport::default());
        }
        let sinks: Sinks<'_> = (state, publisher, lease);
        let mut report = StepReport::default();
        let poll_started = std::time::SystemTime::now();
        let payload = match self.poll_source(tools).await {
            Err(e) => {
                let why = e.to_string();
                let failed = root_span(
                    "feed.fetch",
                    SpanKind::Client,
                    poll_started,
                    vec![
                        KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
                        KeyValue::new("votewire.family", self.spec.family.clone()),
                        KeyValue::new("error.type", "fetch"),
                    ],
                );
                end_span(&failed, Some(&why));
                self.observe(Observation::FetchFailed(why), now_ms, None, sinks)
                    .await?;
                return Err(e);
            }
            Ok(Polled::Wait(d)) => {
                report.wait = Some(d);
                return Ok(report);
            }
            Ok(Polled::Unchanged(moved)) => {
                self.last_rejected_sha = None;
                if let Some(cursor) = moved {
                    state
                        .commit_cursor(lease, &cursor, self.source_seq)
                        .await
                        .map_err(self.state_err())?;
                }
                report.transition = self
                    .observe(Observation::Unchanged, now_ms, None, sinks)
                    .await?;
                return Ok(report);
            }
            Ok(Polled::Payload(p)) => p,
        };
        // When the bytes were in hand: `fetched_at`, where fetch → result
        // latency starts (an SFTP poll lists, waits for a stable file, then
        // reads it, so the poll's start would overstate it).
        let fetched_ms = votewire_core::unix_ms();
        report.more = matches!(&self.poller, Poller::Sftp { ready, .. } if !ready.is_empty());
        report.payload_bytes = Some(payload.bytes.len());
        if self.last_rejected_sha.as_deref() == Some(payload.sha256.as_str()) {
            // The same garbage again, right after it was dead-lettered.
            return Ok(report);
        }
        let _permit = tools
            .work
            .clone()
            .acquire_owned()
            .await
            .expect("the work semaphore is never closed");
        let archive_ref = match &tools.archive {
            Some(a) => Some(
                a.store(&payload.bytes)
                    .await
                    .map_err(|source| FeedStepError::Archive {
                        feed_id: self.spec.feed_id.clone(),
                        source,
                    })?
                    .1,
            ),
            None => None,
        };
        let seq = self.source_seq + 1;
        let fetch_id = format!("{}:{seq}:{now_ms}", self.spec.feed_id);
        // One trace per fetched payload, rooted at `feed.fetch` (back-dated
        // to the poll's start, so unchanged polls make no trace): every
        // cell, the manifest and a dead letter carry it (`traceparent`
        // header, `trace_id` field).
        let mut fetch_attributes = vec![
            KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
            KeyValue::new("votewire.family", self.spec.family.clone()),
            KeyValue::new("votewire.source_seq", seq),
            KeyValue::new("url.full", payload.url.clone()),
            KeyValue::new("server.address", host_of(&payload.url)),
            KeyValue::new(
                "http.response.body.size",
                i64::try_from(payload.bytes.len()).unwrap_or(i64::MAX),
            ),
        ];
        if let Some(v) = &payload.version {
            fetch_attributes.push(KeyValue::new("votewire.source_version", v.clone()));
        }
        let fetch_span = root_span(
            "feed.fetch",
            SpanKind::Client,
            poll_started,
            fetch_attributes,
        );
        let trace_id = trace_context::trace_id_of(&fetch_span);
        let ctx = PayloadContext {
            election_id: self.spec.election_id.clone(),
            feed_id: self.spec.feed_id.clone(),
            mode: self.spec.mode,
            source_seq: seq,
            source_version: payload.version.clone(),
            fetched_at: fetched_ms,
            fetch_id: fetch_id.clone(),
            source_uri: payload.url.clone(),
            payload_sha256: payload.sha256.clone(),
            trace_id: Some(trace_id),
            content_type: payload.content_type.clone(),
        };
        let mut facts = FetchFacts::for_payload(&ctx, &self.spec.family, payload.bytes.len());
        facts.archive_ref = archive_ref;
        facts.trace = fetch_span.clone();
        facts.result_links = self.spec.result_links.clone();
        let job = TransformJob {
            family: self.spec.family.clone(),
            bytes: payload.bytes.clone(),
            ctx: ctx.clone(),
            mapping: self.spec.mapping.clone(),
            companion: self.spec.companion.clone(),
        };
        let transform_span = child_span(
            &fetch_span,
            "feed.transform",
            SpanKind::Internal,
            vec![
                KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
                KeyValue::new("votewire.family", self.spec.family.clone()),
            ],
        );
        let transformed =
            match run_transform(&tools.transforms, job, self.spec.transform_timeout).await {
                Ok(transformed) => transformed,
                Err(busy) => {
                    end_span(&transform_span, Some(&busy.to_string()));
                    // An SFTP file goes back to the front of the queue: the
                    // next step takes it first, so files publish in order.
                    if let (Some(identity), Poller::Sftp { ready, .. }) =
                        (payload.file.clone(), &mut self.poller)
                    {
                        ready.push_front(crate::sources::sftp::drop::ReadyFile {
                            identity,
                            bytes: payload.bytes.to_vec(),
                        });
                    }
                    return Err(FeedStepError::Transform {
                        feed_id: self.spec.feed_id.clone(),
                        source: busy,
                    });
                }
            };
        match &transformed {
            Ok(out) => {
                transform_span.span().set_attribute(KeyValue::new(
                    "votewire.cells_total",
                    i64::try_from(out.cells.len()).unwrap_or(i64::MAX),
                ));
                end_span(&transform_span, None);
            }
            Err(err) => {
                transform_span
                    .span()
                    .set_attribute(KeyValue::new("error.type", err.class.as_str()));
                end_span(&transform_span, Some(&err.to_string()));
            }
        }
        match transformed {
            Ok(out) => {
                let published = publisher
                    .publish_accepted(&out.cells, &mut self.memory, &facts)
                    .await
                    .map_err(self.publish_err())?;
                if tools.abort_after_produce {
                    tracing::error!(
                        "feed {}: VOTEWIRE_FAULT=abort-after-produce: {} cells acknowledged, aborting before the cursor commit",
                        self.spec.feed_id,
                        published.cells_changed
                    );
                    std::process::abort();
                }
                let mut cursor = payload.cursor;
                if let Poller::Http { next: Some(ap), .. } = &mut self.poller {
                    if !ap.advance(out.facts.next_request.as_deref())
                        && out.facts.next_request.is_some()
                    {
                        tracing::warn!(
                            "feed {}: nextrequest makes no progress or leaves the source's origin; back to the base URL",
                            self.spec.feed_id
                        );
                    }
                    cursor.next_request = ap.next.clone();
                }
                cursor.sftp_seen = self.seen_with(payload.file.as_ref());
                let commit_span = child_span(
                    &fetch_span,
                    "state.commit",
                    SpanKind::Client,
                    vec![
                        KeyValue::new("votewire.feed_id", self.spec.feed_id.clone()),
                        KeyValue::new("votewire.source_seq", seq),
                    ],
                );
                let committed = state.commit_change(lease, &cursor, seq, now_ms).await;
                end_span(
                    &commit_span,
                    committed.as_ref().err().map(ToString::to_string).as_deref(),
                );
                committed.map_err(self.state_err())?;
                self.source_seq = seq;
                match &mut self.poller {
                    Poller::Clarity { cursor: c, .. } => {
                        *c = ClarityCursor {
                            version: cursor.version.clone(),
                            sha256: cursor.sha256.clone(),
                        }
                    }
                    Poller::Http { validators, .. } => {
                        *validators = HttpValidators {
                            etag: cursor.etag.clone(),
                            last_modified: cursor.last_modified.clone(),
                            sha256: cursor.sha256.clone(),
                        }
                    }
                    Poller::Sftp { .. } => {}
                }
                if let Some(file) = payload.file {
                    self.finish_file(file).await;
                }
                self.last_rejected_sha = None;
                fetch_span.span().set_attribute(KeyValue::new(
                    "votewire.cells_changed",
                    i64::try_from(published.cells_changed).unwrap_or(i64::MAX),
                ));
                end_span(&fetch_span, None);
                report.published = Some(published);
                report.transition = self
                    .observe(Observation::Accepted, now_ms, Some(&fetch_id), sinks)
                    .await?;
            }
            Err(err) => {
                publisher
                    .publish_rejected(&err, &facts)
                    .await
                    .map_err(self.publish_err())?;
                if let Poller::Http { next: Some(ap), .. } = &mut self.poller {
                    ap.reset();
                }
                if let Some(file) = &payload.file {
                    self.seen_rejected(file);
                    let cursor = FeedCursor {
                        sftp_seen: self.seen_with(None),
                        ..FeedCursor::default()
                    };
                    state
                        .commit_cursor(lease, &cursor, self.source_seq)
                        .await
                        .map_err(self.state_err())?;
                }
                self.last_rejected_sha = Some(payload.sha256.clone());
                fetch_span
                    .span()
                    .set_attribute(KeyValue::new("error.type", err.class.as_str()));
                end_span(&fetch_span, Some(&err.to_string()));
                report.rejected = true;
                report.error_class = Some(err.class.as_str());
                report.transition = self
                    .observe(
                        Observation::Rejected(err.to_string()),
                        now_ms,
                        Some(&fetch_id),
                        sinks,
                    )
                    .await?;
            }
        }
        Ok(report)
    }
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

    #[test]
    fn a_request_with_a_secret_header_goes_through_the_credentialed_client() {
        let tools = FeedTools::new(
            crate::http::client(&FetchLimits::default()).unwrap(),
            1,
            None,
            1,
        );
        let (plain_name, plain) = header("f", "accept", "text/csv", false).unwrap();
        let (key_name, key) = header("f", "x-api-key", "k", true).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(plain_name, plain);
        assert!(std::ptr::eq(tools.client_for(&headers), &tools.http));
        headers.insert(key_name, key);
        assert!(std::ptr::eq(
            tools.client_for(&headers),
            &tools.http_credentialed
        ));
    }

    #[test]
    fn hosts_are_named_with_their_port() {
        assert_eq!(host_of("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(
            host_of("https://results.enr.clarityelections.com/GA/"),
            "results.enr.clarityelections.com:443"
        );
    }
}
