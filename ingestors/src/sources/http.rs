//! A plain HTTP(S) source: a GET with conditional requests (ETag,
//! Last-Modified) and a sha256 "unchanged" check, through the shared
//! transport in [`crate::http`] and [`crate::conditional`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::secrets::SecretRef;
use super::{SourceKind, SourceKindConfig, SourceProblems};

pub const KIND: SourceKind = SourceKind {
    name: "http",
    summary: "a plain HTTP(S) GET with conditional requests",
    path_fields: &[],
};

/// Header names that carry credentials and so must come from
/// `secret_headers`.
const SECRET_HEADER_WORDS: [&str; 6] = [
    "authorization",
    "api-key",
    "apikey",
    "token",
    "cookie",
    "secret",
];

/// `source = { kind = "http", url = …, headers = …, secret_headers = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    pub url: String,
    /// Non-secret headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose values are credentials, by reference.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, SecretRef>,
}

impl SourceKindConfig for HttpSource {
    fn kind(&self) -> &'static SourceKind {
        &KIND
    }

    fn check(&self, problems: &mut SourceProblems<'_>) {
        problems.http_url("source.url", &self.url);
        for name in self.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if SECRET_HEADER_WORDS.iter().any(|w| lower.contains(w)) {
                problems.add(
                    "source.headers",
                    format!(
                        "{name} carries a credential: put it in secret_headers as {{ env = \"VAR\" }} or {{ file = \"path\" }}"
                    ),
                );
            }
        }
        if !self.secret_headers.is_empty() {
            problems.secret_transport(&self.url);
        }
        for (name, r) in &self.secret_headers {
            problems.secret(&format!("source.secret_headers.{name}"), r);
        }
    }
}
