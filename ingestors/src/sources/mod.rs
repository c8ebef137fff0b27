//! Where feeds' payloads come from: one module per source kind, each
//! listed once in [`SOURCES`], as the transformer families are in
//! `votewire_transformers::FAMILIES`.
//!
//! A kind owns its `[feed.source]` config struct (a variant of
//! [`crate::feeds::SourceConfig`], whose `kind` tag is the registry name)
//! and its checks ([`SourceKindConfig`]). The feed registry, `feeds
//! validate`, the operator API's feed schema and its path checks read the
//! kinds from here.
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

use std::path::{Path, PathBuf};

use secrets::SecretRef;

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
}

/// One problem with a feed's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The field, e.g. `source.url`; `family` when the kind is read by
    /// one family only and the feed names another.
    pub field: String,
    pub message: String,
}

/// Where a kind's checks put what they find, with the checks several kinds
/// share.
#[derive(Debug)]
pub struct SourceProblems<'a> {
    /// The feed's transformer family.
    pub family: &'a str,
    pub found: Vec<SourceProblem>,
}

impl<'a> SourceProblems<'a> {
    pub fn new(family: &'a str) -> SourceProblems<'a> {
        SourceProblems {
            family,
            found: Vec::new(),
        }
    }

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
