//! A real HTTP server on 127.0.0.1 for tests, serving fixed routes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

/// One canned response.
#[derive(Clone, Debug)]
pub struct Canned {
    /// The HTTP status.
    pub status: u16,
    /// Response headers, as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body, as served.
    pub body: bytes::Bytes,
    /// How long the server takes before answering.
    pub delay: std::time::Duration,
}

impl Canned {
    /// A 200 with `body`.
    pub fn ok(body: impl Into<bytes::Bytes>) -> Canned {
        Canned {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: std::time::Duration::ZERO,
        }
    }

    /// A response of `status` with `body`.
    pub fn status(status: u16, body: impl Into<bytes::Bytes>) -> Canned {
        Canned {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: std::time::Duration::ZERO,
        }
    }

    /// With one more response header.
    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answers only after `delay` (a slow source).
    pub fn delayed(mut self, delay: std::time::Duration) -> Canned {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Routes {
    canned: HashMap<String, Canned>,
    /// Every request seen: (path, request headers).
    seen: Vec<(String, HeaderMap)>,
    /// Requests being answered right now, per path, and the most ever.
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
}

/// A running server; it stops when dropped.
pub struct FixtureServer {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    routes: Arc<Mutex<Routes>>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureServer {
    /// Starts an empty server on an ephemeral port.
    pub async fn start() -> FixtureServer {
        let routes = Arc::new(Mutex::new(Routes::default()));
        let app = Router::new().fallback(serve).with_state(routes.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a test HTTP server on 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FixtureServer { addr, routes, task }
    }

    /// Serves `canned` at `path` (replacing what was there).
    pub fn set(&self, path: &str, canned: Canned) {
        self.routes
            .lock()
            .expect("routes lock")
            .canned
            .insert(path.to_string(), canned);
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests seen so far, oldest first.
    pub fn seen(&self) -> Vec<(String, HeaderMap)> {
        self.routes.lock().expect("routes lock").seen.clone()
    }

    /// The most requests for `path` ever answered at the same time.
    pub fn max_in_flight(&self, path: &str) -> usize {
        self.routes
            .lock()
            .expect("routes lock")
            .max_in_flight
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(routes): State<Arc<Mutex<Routes>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let canned = {
        let mut r = routes.lock().expect("routes lock");
        r.seen.push((path.clone(), req.headers().clone()));
        let now = {
            let n = r.in_flight.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        let max = r.max_in_flight.entry(path.clone()).or_default();
        *max = (*max).max(now);
        r.canned.get(&path).cloned()
    };
    if let Some(c) = canned.as_ref().filter(|c| !c.delay.is_zero()) {
        tokio::time::sleep(c.delay).await;
    }
    if let Some(n) = routes.lock().expect("routes lock").in_flight.get_mut(&path) {
        *n -= 1;
    }
    let Some(c) = canned else {
        let mut resp = Response::new(Body::from("not found"));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    // Conditional GET: a matching If-None-Match gets 304 and no body.
    let etag = c
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    let if_none_match = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if c.status == 200 && etag.is_some() && if_none_match == etag.as_deref() {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return resp;
    }
    let mut resp = Response::new(Body::from(c.body));
    *resp.status_mut() =
        StatusCode::from_u16(c.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in c.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// GETs `url` and parses JSON, with a 5 s timeout.
pub async fn get_json(url: &str) -> Result<serde_json::Value, String> {
    get_json_if_found(url)
        .await?
        .ok_or_else(|| format!("{url}: HTTP 404 Not Found"))
}

/// [`get_json`], with `None` when the server answers 404 (nothing there
/// yet); any other failure is an error.
pub async fn get_json_if_found(url: &str) -> Result<Option<serde_json::Value>, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{url}: {e}"))
}
