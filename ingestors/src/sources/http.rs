//! A plain HTTP(S) source: a GET with conditional requests (ETag,
//! Last-Modified) and a sha256 "unchanged" check, through the shared
//! transport in [`crate::http`] and [`crate::conditional`]. A 304 or a
//! byte-identical body is "unchanged". The [`HttpSpec`] and its one
//! conditional GET (`poll_conditional`) serve the HTML and AP kinds too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use super::secrets::{SecretRef, read_secret};
use super::{
    Payload, Polled, Poller, Source, SourceError, SourceFuture, SourceKind, SourceKindConfig,
    SourceProblems,
};
use crate::conditional::{HttpValidators, PollOutcome, host_of, poll_with};
use crate::feed_tools::FeedTools;
use crate::http::FetchLimits;
use crate::state::FeedCursor;

/// The `http` kind's entry in [`super::SOURCES`]: a plain HTTP(S) GET with conditional
/// requests.
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
    /// The http(s) URL to GET; must be https when `secret_headers` are set (plain http only
    /// on loopback).
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

    fn resolve(&self, _limits: &FetchLimits) -> Result<Arc<dyn Source>, String> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let (n, v) = header(name, value, false)?;
            map.insert(n, v);
        }
        for (name, r) in &self.secret_headers {
            let value = read_secret(r).map_err(|why| format!("header {name}: {why}"))?;
            let (n, v) = header(name, &value, true)?;
            map.insert(n, v);
        }
        Ok(Arc::new(HttpSpec {
            url: self.url.clone(),
            headers: map,
        }))
    }
}

/// A request header; `secret` marks its value sensitive, which keeps it out
/// of debug output and sends the source's requests through the client that
/// follows no cross-origin redirect ([`FeedTools::client_for`]).
pub(crate) fn header(
    name: &str,
    value: &str,
    secret: bool,
) -> Result<(HeaderName, HeaderValue), String> {
    let err = |why: String| format!("header {name}: {why}");
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| err(e.to_string()))?;
    let mut v = HeaderValue::from_str(value).map_err(|e| err(e.to_string()))?;
    v.set_sensitive(secret);
    Ok((n, v))
}

/// A conditional GET of `url` with these extra headers (credentials
/// among them, marked sensitive).
#[derive(Clone)]
pub struct HttpSpec {
    /// The URL to GET, as configured.
    pub url: String,
    /// Extra request headers; credential values are marked sensitive, so they are never
    /// printed nor sent across origins.
    pub headers: HeaderMap,
}

impl HttpSpec {
    /// `url` with no extra headers.
    pub fn new(url: impl Into<String>) -> HttpSpec {
        HttpSpec {
            url: url.into(),
            headers: HeaderMap::new(),
        }
    }
}

impl std::fmt::Debug for HttpSpec {
    // Headers may hold credentials: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "http {} ({} extra header(s))",
            self.url,
            self.headers.len()
        )
    }
}

impl Source for HttpSpec {
    fn resume(&self, cursor: FeedCursor) -> Box<dyn Poller> {
        Box::new(HttpPoller {
            spec: self.clone(),
            validators: validators_of(&cursor),
        })
    }

    fn fetch_once<'a>(
        &'a self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Payload, SourceError>> {
        Box::pin(fetch_from_scratch(tools, limits, &self.url, &self.headers))
    }
}

/// What a cursor says of the last accepted response.
pub(crate) fn validators_of(cursor: &FeedCursor) -> HttpValidators {
    HttpValidators {
        etag: cursor.etag.clone(),
        last_modified: cursor.last_modified.clone(),
        sha256: cursor.sha256.clone(),
    }
}

/// An HTTP feed's position: the last accepted response's validators.
struct HttpPoller {
    spec: HttpSpec,
    validators: HttpValidators,
}

impl Poller for HttpPoller {
    fn poll<'a>(
        &'a mut self,
        tools: &'a FeedTools,
        limits: &'a FetchLimits,
    ) -> SourceFuture<'a, Result<Polled, SourceError>> {
        Box::pin(poll_conditional(
            tools,
            limits,
            &self.spec.url,
            &self.spec.headers,
            &mut self.validators,
            None,
        ))
    }

    fn committed<'a>(
        &'a mut self,
        _feed_id: &'a str,
        cursor: &'a FeedCursor,
    ) -> SourceFuture<'a, ()> {
        self.validators = validators_of(cursor);
        Box::pin(std::future::ready(()))
    }
}

/// One conditional GET of `target` through the host gate. The cursors it
/// returns carry `next_request` (AP's position) unchanged.
pub(crate) async fn poll_conditional(
    tools: &FeedTools,
    limits: &FetchLimits,
    target: &str,
    headers: &HeaderMap,
    validators: &mut HttpValidators,
    next_request: Option<String>,
) -> Result<Polled, SourceError> {
    let host = host_of(target);
    if let Some(d) = tools.gate.blocked_for(&host, Instant::now()) {
        return Ok(Polled::Wait(d));
    }
    let permit = tools.gate.enter(&host).await;
    let client = tools.client_for(headers);
    let polled = poll_with(client, target, validators, headers, limits).await;
    drop(permit);
    let cursor_with = |etag: Option<String>, lm: Option<String>, sha: Option<String>| FeedCursor {
        etag,
        last_modified: lm,
        sha256: sha,
        next_request: next_request.clone(),
        ..FeedCursor::default()
    };
    match polled {
        Err(e) => {
            if e.is_retryable() {
                tools.gate.failed(&host, &tools.backoff);
            }
            Err(e.into())
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
            }))
        }
    }
}

/// `url` fetched with no validators, for a dry run.
pub(crate) async fn fetch_from_scratch(
    tools: &FeedTools,
    limits: &FetchLimits,
    url: &str,
    headers: &HeaderMap,
) -> Result<Payload, SourceError> {
    match poll_with(
        tools.client_for(headers),
        url,
        &HttpValidators::default(),
        headers,
        limits,
    )
    .await?
    {
        PollOutcome::Changed(body) => Ok(Payload {
            bytes: body.bytes,
            sha256: body.sha256,
            url: body.url,
            content_type: body.content_type,
            version: None,
            cursor: FeedCursor::default(),
        }),
        PollOutcome::Wait { delay, .. } => Err(SourceError::Wait(delay)),
        _ => Err(SourceError::NothingReady),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_a_secret_header_goes_through_the_credentialed_client() {
        let tools = FeedTools::new(
            crate::http::client(&FetchLimits::default()).unwrap(),
            1,
            None,
            1,
        );
        let (plain_name, plain) = header("accept", "text/csv", false).unwrap();
        let (key_name, key) = header("x-api-key", "k", true).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(plain_name, plain);
        assert!(std::ptr::eq(tools.client_for(&headers), &tools.http));
        headers.insert(key_name, key);
        assert!(std::ptr::eq(
            tools.client_for(&headers),
            &tools.http_credentialed
        ));
    }
}
