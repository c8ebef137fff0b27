//! Files dropped on an SFTP server as a source: the session with verified
//! host keys, timeouts and capped reads ([`session`]), the drop directory
//! watcher that reads each stable, old-enough file once ([`drop`]), and a
//! feed's polls, one file per step ([`poller`]).

pub mod drop;
pub mod poller;
mod session;

pub use session::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Source, SourceKind, SourceKindConfig, SourceProblems};
use crate::durations::parse_duration;
use crate::http::FetchLimits;
use drop::DropConfig;
use poller::SftpSpec;

/// The `sftp` kind's entry in [`super::SOURCES`]: files dropped on an SFTP server; its
/// `key_file` and `known_hosts` are relative to the feed file.
pub const KIND: SourceKind = SourceKind {
    name: "sftp",
    summary: "files dropped on an SFTP server",
    path_fields: &["key_file", "known_hosts"],
};

/// `source = { kind = "sftp", host = …, user = …, key_file = …,
/// known_hosts = …, glob = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpSource {
    /// The SFTP server's host name or IP address; its host key must be in `known_hosts`.
    pub host: String,
    /// The SSH port (default 22).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The user to log in as, with the key in `key_file`.
    pub user: String,
    /// The private key file (never the key itself), relative to the feed
    /// file.
    pub key_file: PathBuf,
    /// known_hosts holding the server's host key, relative to the feed
    /// file.
    pub known_hosts: PathBuf,
    /// Directory and glob, e.g. `/drop/ga/*.csv`.
    pub glob: String,
    /// A file must be this old, and its size stable across two listings,
    /// before it is read (default `5s`).
    #[serde(default = "default_min_age")]
    pub min_age: String,
    /// Move processed files here after the Kafka ack (default: leave).
    #[serde(default)]
    pub archive_dir: Option<String>,
    /// Only read `x.csv` once `x.csv<done_marker>` exists (e.g. `.done`).
    #[serde(default)]
    pub done_marker: Option<String>,
}

fn default_port() -> u16 {
    22
}

fn default_min_age() -> String {
    "5s".into()
}

impl SourceKindConfig for SftpSource {
    fn kind(&self) -> &'static SourceKind {
        &KIND
    }

    fn check(&self, problems: &mut SourceProblems<'_>) {
        problems.readable("source.key_file", &self.key_file);
        problems.readable("source.known_hosts", &self.known_hosts);
        if self.host.is_empty() {
            problems.add("source.host", "must not be empty");
        }
        if !self.glob.starts_with('/') {
            problems.add(
                "source.glob",
                format!("{:?} must be an absolute remote path", self.glob),
            );
        }
        problems.duration("source.min_age", &self.min_age);
    }

    fn resolve_paths(&mut self, under: &dyn Fn(&Path) -> PathBuf) {
        self.key_file = under(&self.key_file);
        self.known_hosts = under(&self.known_hosts);
    }

    fn resolve(&self, limits: &FetchLimits) -> Result<Arc<dyn Source>, String> {
        let glob = &self.glob;
        let (dir, pattern) = match glob.rsplit_once('/') {
            Some((d, p)) if !d.is_empty() => (d.to_string(), p.to_string()),
            Some((_, p)) => ("/".to_string(), p.to_string()),
            None => (".".to_string(), glob.clone()),
        };
        let min_age = &self.min_age;
        let min_age = parse_duration(min_age)
            .ok_or_else(|| format!("min_age {min_age:?} is not a duration"))?;
        Ok(Arc::new(SftpSpec {
            endpoint: SftpEndpoint {
                host: self.host.clone(),
                port: self.port,
                user: self.user.clone(),
                private_key: self.key_file.clone(),
                known_hosts: self.known_hosts.clone(),
                timeout: limits.total_timeout,
            },
            drop: DropConfig {
                dir,
                pattern,
                min_age_secs: min_age.as_secs(),
                done_marker: self.done_marker.clone(),
                archive_dir: self.archive_dir.clone(),
                max_bytes: limits.max_bytes,
            },
        }))
    }
}
