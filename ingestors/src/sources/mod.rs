//! Where feeds' payloads come from: one module per source kind, each
//! listed once in [`SOURCES`], as the transformer families are in
//! `votewire_transformers::FAMILIES`.
//!
//! A kind owns its `[feed.source]` config struct (a variant of
//! [`crate::feeds::SourceConfig`], whose `kind` tag is the registry name),
//! its checks and its resolution ([`SourceKindConfig`]), the resolved
//! source ([`Source`]: secrets read, durations parsed, a `Debug` that
//! prints no credential; [`Source::resume`] decodes a feed's stored
//! cursor) and the per-feed position between polls ([`Poller`], which
//! encodes the cursor when a payload is accepted). The feed registry, `feeds validate`, the operator
//! API's feed schema and its path checks read the kinds from here; the
//! commit protocol in [`crate::live_feed`] drives a [`Poller`] without
//! knowing its kind.
//!
//! * [`http`]: a plain HTTP(S) GET with conditional requests.
//! * [`clarity`]: a Clarity ENR site's version pointer, then the
//!   versioned file.
//! * [`ap`]: the AP Elections API and its `nextrequest` cursor.
//! * [`sftp`]: files dropped on an SFTP server, host keys verified.
//! * [`html`]: an HTML page read with the `html-table` mapping.
//!
//! [`secrets`] confines the credential references a source may name.

pub mod ap;
pub mod clarity;
pub mod html;
pub mod http;
pub mod secrets;
pub mod sftp;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use secrets::SecretRef;

use crate::feed_tools::FeedTools;
use crate::http::{FetchError, FetchLimits};
use crate::state::FeedCursor;

/// One source kind's registry entry.
#[derive(Debug)]
pub struct SourceKind {
    /// As a feed's `source.kind` says it.
    pub name: &'static str,
    /// One line for listings and the API's schema.
    pub summary: &'static str,
    /// The `source` fields that name local files, relative to the feed
    /// file (made absolute when the registry is read, and refused
    /// relative in a body sent to the operator API).
    pub path_fields: &'static [&'static str],
}

/// Every source kind, in the order the feed schema lists them.
pub const SOURCES: &[SourceKind] = &[http::KIND, clarity::KIND, ap::KIND, sftp::KIND, html::KIND];

/// The kind named `name`.
pub fn source_kind(name: &str) -> Option<&'static SourceKind> {
    SOURCES.iter().find(|k| k.name == name)
}

/// What each source kind's config does before anything is fetched.
pub trait SourceKindConfig {
    /// The kind's registry entry.
    fn kind(&self) -> &'static SourceKind;

    /// Checks the config without the network: every problem, not only the
    /// first.
    fn check(&self, problems: &mut SourceProblems<'_>);

    /// Resolves the local files the config names (the kind's
    /// [`SourceKind::path_fields`]) with `under`, relative to the feed
    /// file's folder.
    fn resolve_paths(&mut self, _under: &dyn Fn(&Path) -> PathBuf) {}

    /// The source to poll: secrets read (environment or file), durations
    /// parsed, under the feed's fetch `limits`. `Err` says what could not
    /// be resolved; the entry or the files it names must change.
    fn resolve(&self, limits: &FetchLimits) -> Result<Arc<dyn Source>, String>;
}

/// A boxed future, so that [`Source`] and [`Poller`] stay object-safe.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A feed's source, resolved from its config. `Debug` never prints a
/// credential.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// The feed's position between polls, decoded from its stored cursor
    /// (the default cursor: from scratch).
    fn resume(&self, cursor: FeedCursor) -> Box<dyn Poller>;

    /// One payload fetched from scratch (no cursor: no conditional
    /// headers, the current Clarity version, the newest ready SFTP file),
    /// with nothing stored or moved: `votewire feeds test`.
    fn fetch_once<'a>(
        &'a self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Payload, SourceError>>;
}

/// One feed's position in its source, between polls. The commit protocol
/// calls [`Poller::poll`], then, for a payload, at most one of
/// [`Poller::put_back`] (no transform slot now), [`Poller::accepted`]
/// then [`Poller::committed`] once the cursor is stored, or
/// [`Poller::rejected`]; none for the same bytes rejected just before.
/// A step that fails in between (archive, publish, commit) stores no
/// cursor: the source's stored position is where it was, so a restart
/// fetches the payload again. In memory a poller may have moved on: an
/// SFTP file not put back is read again only once the queue is drained
/// and the folder listed anew, and AP follows the `nextrequest` that
/// [`Poller::accepted`] took.
pub trait Poller: Send {
    /// Polls the source once. HTTP-like sources go through the shared
    /// [`crate::conditional::HostGate`].
    fn poll<'a>(
        &'a mut self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Polled, SourceError>>;

    /// More is ready right now (queued SFTP files): step again at once.
    fn more(&self) -> bool {
        false
    }

    /// The last polled payload could not be processed now (no transform
    /// slot): the next poll returns it first, so payloads keep their order.
    fn put_back(&mut self, _payload: &Payload) {}

    /// The cursor to store for the last polled payload, accepted;
    /// `next_request` is the link the payload named to what follows (AP,
    /// which follows it from now on, before the cursor is stored). By
    /// default the one the poll returned with the payload.
    fn accepted(
        &mut self,
        _feed_id: &str,
        payload: &Payload,
        _next_request: Option<&str>,
    ) -> FeedCursor {
        payload.cursor.clone()
    }

    /// The accepted payload's `cursor` is stored: it is the position now
    /// (an SFTP file is recorded as processed and moved).
    fn committed<'a>(
        &'a mut self,
        feed_id: &'a str,
        cursor: &'a FeedCursor,
    ) -> SourceFuture<'a, ()>;

    /// The last polled payload was rejected and dead-lettered: the cursor
    /// to store now, when the source keeps one for rejected payloads (the
    /// SFTP processed set), so the same bytes are not read again. By
    /// default none: the content position stays where it was.
    fn rejected(&mut self, _payload: &Payload) -> Option<FeedCursor> {
        None
    }
}

/// One fetched payload and the position once it is accepted.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The payload's bytes, as read (within the feed's `limits.max_bytes`).
    pub bytes: bytes::Bytes,
    /// Lower-case hex sha256 of `bytes`.
    pub sha256: String,
    /// Where it was read, as the cells' source URI says.
    pub url: String,
    /// The `Content-Type` it was served with; `None` when absent, or for an SFTP file.
    pub content_type: Option<String>,
    /// The source's version (Clarity).
    pub version: Option<String>,
    /// The source position once this payload is accepted.
    pub cursor: FeedCursor,
}

/// What one poll found.
#[derive(Debug)]
pub enum Polled {
    /// A new payload to archive, transform and publish.
    Payload(Payload),
    /// Nothing new; store this cursor when it moved (a new ETag or version
    /// with identical content).
    Unchanged(Option<FeedCursor>),
    /// The source or its host asked for a wait.
    Wait(Duration),
}

/// Why a source could not be polled.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The Clarity version pointer or versioned file could not be fetched or read;
    /// retryable as its [`clarity::ClarityError`] says.
    #[error(transparent)]
    Clarity(#[from] clarity::ClarityError),
    /// An HTTP fetch failed; retryable as its [`FetchError`] says.
    #[error(transparent)]
    Http(#[from] FetchError),
    /// Connecting, listing or reading on the SFTP server failed; retryable as its
    /// [`sftp::SftpError`] says.
    #[error(transparent)]
    Sftp(#[from] sftp::SftpError),
    /// The blocking SFTP task panicked or was cancelled (or an earlier such failure lost
    /// the drop watcher); counted retryable.
    #[error("the SFTP task failed: {0}")]
    Task(String),
    /// A dry run's fetch was told to wait this long (`Retry-After`, a quota answer);
    /// retryable after it.
    #[error("the source asked to wait {0:?}")]
    Wait(Duration),
    /// A dry run found nothing to read (no ready file in the SFTP drop, no new body);
    /// retryable.
    #[error("no ready file in the drop directory")]
    NothingReady,
}

impl SourceError {
    /// Whether the next poll may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Clarity(e) => e.is_retryable(),
            SourceError::Http(e) => e.is_retryable(),
            SourceError::Sftp(e) => e.is_retryable(),
            SourceError::Task(_) | SourceError::Wait(_) | SourceError::NothingReady => true,
        }
    }
}

/// One problem with a feed's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The field, e.g. `source.url`; `family` when the kind is read by
    /// one family only and the feed names another.
    pub field: String,
    /// What is wrong with that field, for an operator.
    pub message: String,
}

/// Where a kind's checks put what they find, with the checks several kinds
/// share.
#[derive(Debug)]
pub struct SourceProblems<'a> {
    /// The feed's transformer family.
    pub family: &'a str,
    /// Every problem found so far, in the order found.
    pub found: Vec<SourceProblem>,
}

impl<'a> SourceProblems<'a> {
    /// An empty list of problems, for a feed whose transformer family is `family`.
    pub fn new(family: &'a str) -> SourceProblems<'a> {
        SourceProblems {
            family,
            found: Vec::new(),
        }
    }

    /// Records a problem with `field` (e.g. `source.url`).
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.found.push(SourceProblem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `url` must be an http(s) URL.
    pub fn http_url(&mut self, field: &str, url: &str) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.add(field, format!("{url:?} is not an http(s) URL"));
        }
    }

    /// A credential reference must stay within the feed-secret confines
    /// ([`secrets::check_reference`]).
    pub fn secret(&mut self, field: &str, r: &SecretRef) {
        if let Err(why) = secrets::check_reference(r) {
            self.add(field, why);
        }
    }

    /// A source that sends a credential sends it over https only, unless
    /// the source is on this machine.
    pub fn secret_transport(&mut self, url: &str) {
        if !url.starts_with("https://") && !is_loopback_url(url) {
            self.add(
                "source.url",
                format!(
                    "{url:?} is not https, and this source sends a credential: only a loopback \
                     source may be plain http"
                ),
            );
        }
    }

    /// A local file the source reads must be readable now.
    pub fn readable(&mut self, field: &str, path: &Path) {
        if let Err(why) = std::fs::File::open(path) {
            self.add(field, format!("cannot read {}: {why}", path.display()));
        }
    }

    /// A duration as operators write one ([`crate::durations::parse_duration`]).
    pub fn duration(&mut self, field: &str, value: &str) {
        if crate::durations::parse_duration(value).is_none() {
            self.add(field, format!("{value:?} is not a duration"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind is found by its name (the feed schema's test checks the
    /// registry against `SourceConfig`'s variants).
    #[test]
    fn every_source_kind_is_found_by_its_name_and_says_what_it_is() {
        for k in SOURCES {
            assert_eq!(source_kind(k.name).map(|x| x.name), Some(k.name));
            assert!(!k.summary.is_empty(), "{} has a summary", k.name);
        }
        let mut names: Vec<&str> = SOURCES.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SOURCES.len(), "each kind listed once");
        assert!(source_kind("gopher").is_none());
    }

    #[test]
    fn credentials_go_over_https_unless_the_source_is_on_this_machine() {
        let mut p = SourceProblems::new("ap-v2");
        for ok in [
            "https://api.ap.org/v2",
            "http://127.0.0.1:8080/x",
            "http://[::1]:8080/x",
            "http://localhost/x",
        ] {
            p.secret_transport(ok);
        }
        assert!(p.found.is_empty(), "{:?}", p.found);
        p.secret_transport("http://api.ap.org/v2");
        assert_eq!(p.found.len(), 1);
        assert_eq!(p.found[0].field, "source.url");
    }
}
