//! HTTP fetching with a connect timeout, a total timeout and a body-size cap.
//!
//! The body is streamed and hashed as it arrives; a body larger than the cap
//! is abandoned as soon as the cap is crossed, so a hostile or broken server
//! can neither exhaust memory nor hold a fetch open forever.

use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};

/// Limits applied to one fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// How long connecting may take (default 3 s); applied when a client is built from
    /// these limits, not per request.
    pub connect_timeout: Duration,
    /// The most one request may take, headers and body (default 20 s; a feed's
    /// `limits.timeout`).
    pub total_timeout: Duration,
    /// The largest body accepted, in bytes (default 64 MiB; a feed's `limits.max_bytes`); a
    /// larger one fails as `TooLarge`.
    pub max_bytes: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(20),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A fetched body with what we learned about it.
#[derive(Debug, Clone)]
pub struct FetchedBody {
    /// The URL requested (not where a redirect led).
    pub url: String,
    /// The HTTP status: a 2xx, or 304 with no body.
    pub status: u16,
    /// The body; empty for a 304.
    pub bytes: bytes::Bytes,
    /// Lower-case hex sha256 of `bytes`.
    pub sha256: String,
    /// The response's `ETag`; `None` if absent, not visible ASCII, or a 304.
    pub etag: Option<String>,
    /// The response's `Last-Modified`; `None` if absent, not visible ASCII, or a 304.
    pub last_modified: Option<String>,
    /// The response's `Content-Type`; `None` if absent, not visible ASCII, or a 304.
    pub content_type: Option<String>,
}

/// Why a fetch failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP client could not be built; not retryable.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request failed on the wire (connect, TLS, timeout, too many redirects, a broken
    /// body). Retryable.
    #[error("fetching {url}: {}", transport_reason(.source))]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying reqwest error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status. Retryable for 5xx, 429 and AP's quota 403;
    /// any other 4xx is not.
    #[error("fetching {url}: HTTP status {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// A `Retry-After` the server sent (seconds or an HTTP date).
        retry_after: Option<Duration>,
        /// AP's "403 quota exceeded": wait, don't hammer.
        quota_exceeded: bool,
    },
    /// The body exceeded `max_bytes` (by `Content-Length` or while streaming); not
    /// retryable.
    #[error("fetching {url}: body exceeds the {max_bytes}-byte limit")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit crossed, in bytes.
        max_bytes: u64,
    },
    /// A credentialed request was redirected to another origin, so not followed; not
    /// retryable until the feed's URL changes.
    #[error(
        "fetching {url}: redirected to {location}, another origin; a source that sends a \
         credential follows redirects only within its origin, so set the feed's URL to the \
         final one if it is trusted"
    )]
    RedirectRefused {
        /// The URL requested.
        url: String,
        /// The redirect's `Location`, cut to 240 bytes (`(no Location)` if it had none).
        location: String,
    },
}

/// What went wrong on the wire, in words an operator acts on: a timeout
/// says so (reqwest's own text does not), anything else names its root
/// cause.
fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out (no complete answer within the feed's timeout)".into();
    }
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    if e.is_connect() {
        format!("could not connect: {root}")
    } else if std::ptr::addr_eq(root, e as &dyn std::error::Error) {
        e.to_string()
    } else {
        format!("{e}: {root}")
    }
}

impl FetchError {
    /// Transport errors and 5xx/429 are worth retrying; a 4xx or an oversized
    /// body will look the same next time.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Client(_)
            | FetchError::TooLarge { .. }
            | FetchError::RedirectRefused { .. } => false,
            FetchError::Transport { .. } => true,
            FetchError::Status {
                status,
                quota_exceeded,
                ..
            } => *status >= 500 || *status == 429 || *quota_exceeded,
        }
    }
}

/// Builds the shared client: rustls, gzip/deflate/br, timeouts.
pub fn client(limits: &FetchLimits) -> Result<reqwest::Client, FetchError> {
    client_for(limits, None)
}

/// [`client`] whose `User-Agent` also names the ingestor instance
/// (`votewire/0.1.0 (ingest-a)`), so a publisher's logs show who polled.
pub fn client_for(
    limits: &FetchLimits,
    instance: Option<&str>,
) -> Result<reqwest::Client, FetchError> {
    builder(limits, instance)
        .build()
        .map_err(FetchError::Client)
}

/// The client for sources that send a credential (`secret_headers`, an AP
/// key): like [`client_for`], but it follows a redirect only within the
/// source's origin (or from http to https on the same host and port).
/// reqwest drops `Authorization` and cookies on a cross-host redirect, but
/// not an `x-api-key` or any other header a feed names, so a redirect to
/// another host would hand it the credential.
pub fn credentialed_client_for(
    limits: &FetchLimits,
    instance: Option<&str>,
) -> Result<reqwest::Client, FetchError> {
    builder(limits, instance)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let Some(first) = attempt.previous().first() else {
                return attempt.stop();
            };
            if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if same_origin_or_upgrade(first, attempt.url()) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()
        .map_err(FetchError::Client)
}

/// What both clients share: timeouts and a `User-Agent` naming votewire and
/// the instance.
fn builder(limits: &FetchLimits, instance: Option<&str>) -> reqwest::ClientBuilder {
    let version = concat!("votewire/", env!("CARGO_PKG_VERSION"));
    let agent = match instance {
        Some(i) => format!("{version} ({i})"),
        None => version.to_string(),
    };
    reqwest::Client::builder()
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.total_timeout)
        .user_agent(agent)
}

/// Whether `to` is `from`'s origin, or the same host and port reached over
/// https instead of http.
fn same_origin_or_upgrade(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    let same_host = from.host_str() == to.host_str();
    let same =
        from.scheme() == to.scheme() && from.port_or_known_default() == to.port_or_known_default();
    let upgrade = from.scheme() == "http"
        && to.scheme() == "https"
        && (from.port() == to.port() || (from.port().is_none() && to.port().is_none()));
    same_host && (same || upgrade)
}

/// The most of an error body read to classify it (an AP 403 says "quota").
const MAX_ERROR_BODY_BYTES: usize = 4096;

/// GETs `url`, streaming at most `limits.max_bytes` bytes.
pub async fn fetch_capped(
    client: &reqwest::Client,
    url: &str,
    limits: &FetchLimits,
) -> Result<FetchedBody, FetchError> {
    fetch_capped_with(client, url, reqwest::header::HeaderMap::new(), limits).await
}

/// `Retry-After` as seconds or an HTTP date (relative to the server's `Date`
/// when present, else to now).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let now = headers
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    Some(
        at.duration_since(now)
            .unwrap_or_default()
            .min(Duration::from_secs(3600)),
    )
}

/// GETs `url` with extra request headers (conditional GETs); a 304 comes
/// back as a body with status 304 and no bytes.
pub async fn fetch_capped_with(
    client: &reqwest::Client,
    url: &str,
    headers: reqwest::header::HeaderMap,
    limits: &FetchLimits,
) -> Result<FetchedBody, FetchError> {
    let transport = |source| FetchError::Transport {
        url: url.to_string(),
        source,
    };
    // The feed's own limit: the client's timeout is only a fallback.
    let response = client
        .get(url)
        .headers(headers)
        .timeout(limits.total_timeout)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    if status == 304 {
        return Ok(FetchedBody {
            url: url.to_string(),
            status,
            bytes: bytes::Bytes::new(),
            sha256: String::new(),
            etag: None,
            last_modified: None,
            content_type: None,
        });
    }
    if response.status().is_redirection() {
        // Only the credentialed client stops at a redirect: one it would
        // not follow.
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(no Location)");
        return Err(FetchError::RedirectRefused {
            url: url.to_string(),
            location: votewire_transformers::error::bounded_quote(location.to_string()),
        });
    }
    if !response.status().is_success() {
        let retry_after = retry_after(response.headers());
        let quota_exceeded = status == 403 && {
            // A bounded read: an error body can be as hostile as a payload.
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while body.len() < MAX_ERROR_BODY_BYTES {
                match stream.next().await {
                    Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            body.truncate(MAX_ERROR_BODY_BYTES);
            let lower = String::from_utf8_lossy(&body).to_lowercase();
            lower.contains("quota") || lower.contains("rate limit")
        };
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
            retry_after,
            quota_exceeded,
        });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("etag");
    let last_modified = header("last-modified");
    let content_type = header("content-type");
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        max_bytes: limits.max_bytes,
    };
    if response
        .content_length()
        .is_some_and(|n| n > limits.max_bytes)
    {
        return Err(too_large());
    }
    let mut hasher = Sha256::new();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport)?;
        if body.len() as u64 + chunk.len() as u64 > limits.max_bytes {
            return Err(too_large());
        }
        hasher.update(&chunk);
        body.extend_from_slice(&chunk);
    }
    Ok(FetchedBody {
        url: url.to_string(),
        status,
        bytes: body.into(),
        sha256: hex::encode(hasher.finalize()),
        etag,
        last_modified,
        content_type,
    })
}
