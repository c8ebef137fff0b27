//! The HTTP server every votewire service answers on (the API, and each
//! service's `/metrics`, `/healthz` and `/readyz`): connections served with
//! time limits on the client.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never
//! fires: a client that opens connections and sends a header byte every few
//! seconds (slowloris) holds each one forever. Here every connection:
//!
//! * speaks HTTP/1.1 only: browsers and HTTP libraries speak HTTP/2 only
//!   over TLS, which a load balancer in front ends, and hyper gives an
//!   HTTP/2 connection no limit on idling between streams (its pings are
//!   answered by any client), nor the protocol sniff a timer;
//! * must send its first byte within the header-read limit (hyper's timer
//!   starts at a request's first byte), and is then served by hyper with
//!   a timer: the same limit for each request's headers (an idle
//!   keep-alive connection's next request included);
//! * counts against a cap for all connections and one per client (an IPv4
//!   address or IPv6 /64; a trusted proxy carries many clients and has
//!   none); past either a new connection is closed at once.
//!
//! Shutdown stops accepting, asks every connection to finish its request,
//! and waits for them at most [`ServeLimits::drain`] (a live stream never
//! finishes by itself).

pub(crate) mod client_limits;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use client_limits::{ClientKey, HoldsPerClient, TrustedProxies};

/// The limits on the API's clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// How long a client has to send a request's headers (and to show its
    /// protocol on a new connection, and to start a request on an idle one).
    pub header_read: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
    /// The most one client (not a trusted proxy) holds open at once.
    pub max_connections_per_client: usize,
    /// How long shutdown waits for open connections.
    pub drain: Duration,
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits {
            header_read: Duration::from_secs(10),
            max_connections: 20_000,
            // A newsroom's dashboards and pollers behind one NAT, with room:
            // live streams are capped per client lower down (16).
            max_connections_per_client: 256,
            drain: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    proxies: TrustedProxies,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_client = HoldsPerClient::new(limits.max_connections_per_client);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let client_hold = if proxies.trusts(peer.ip()) {
            None
        } else {
            match per_client.hold(ClientKey::of(peer.ip())) {
                Some(hold) => Some(hold),
                None => {
                    drop(stream);
                    continue;
                }
            }
        };
        let router = match make.call(peer).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _holds = (slot, client_hold);
            // hyper's header timer starts at a request's first byte: a
            // connection that never sends one is held to the same limit.
            let mut first = [0_u8; 1];
            if !matches!(
                tokio::time::timeout(limits.header_read, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                return;
            }
            let service = TowerToHyperService::new(router.map_request(
                |req: axum::http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
            ));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it is done; past the drain
    // limit the rest are dropped with the runtime.
    let all = slots.acquire_many(limits.max_connections as u32);
    if let Ok(Err(e)) = tokio::time::timeout(limits.drain, all).await {
        return Err(std::io::Error::other(e.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Serves a one-route app with short limits; returns its address and
    /// the handle of the serving task.
    async fn start(
        limits: ServeLimits,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/forever",
                // A live stream: a heartbeat every 50 ms, never an end.
                axum::routing::get(|| async {
                    let beats = futures::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((
                            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b":\n")),
                            (),
                        ))
                    });
                    axum::body::Body::from_stream(beats)
                }),
            );
        let task = tokio::spawn(serve(
            listener,
            app,
            TrustedProxies::default(),
            limits,
            stop,
        ));
        (addr, task)
    }

    /// Reads until the server closes the connection; how long that took
    /// (10 s at most: past that, as long as it is held).
    async fn closed_after(mut s: TcpStream) -> Duration {
        let started = Instant::now();
        let mut buf = [0_u8; 1024];
        let deadline = Duration::from_secs(10);
        loop {
            match tokio::time::timeout(deadline, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return started.elapsed(),
                Ok(Ok(_)) => {}
            }
        }
    }

    fn short() -> ServeLimits {
        ServeLimits {
            header_read: Duration::from_millis(300),
            max_connections: 100,
            max_connections_per_client: 3,
            drain: Duration::from_millis(300),
        }
    }

    #[tokio::test]
    async fn silent_half_preface_and_idle_connections_are_closed_at_the_header_limit() {
        let limits = ServeLimits {
            max_connections_per_client: 100,
            ..short()
        };
        let (addr, _task) = start(limits, std::future::pending()).await;
        // Says nothing.
        let silent = TcpStream::connect(addr).await.unwrap();
        // Starts the HTTP/2 preface and stops (HTTP/2 is not served).
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        // Half a request line, then nothing (slowloris).
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        for (what, s) in [
            ("silent", silent),
            ("half preface", half),
            ("slowloris", slow),
        ] {
            let took = closed_after(s).await;
            assert!(
                took < Duration::from_secs(3),
                "{what}: closed after {took:?}"
            );
        }
        // A finished request, then an idle keep-alive connection.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0_u8; 512];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        let took = closed_after(idle).await;
        assert!(
            took < Duration::from_secs(3),
            "idle keep-alive: closed after {took:?}"
        );
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_share_of_connections() {
        let (addr, _task) = start(short(), std::future::pending()).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            held.push(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The fourth from the same address is closed without an answer.
        let fourth = TcpStream::connect(addr).await.unwrap();
        assert!(closed_after(fourth).await < Duration::from_secs(1));
        // Once one is let go, the client may open another.
        held.pop();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = TcpStream::connect(addr).await.unwrap();
        again
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        again.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }

    #[tokio::test]
    async fn shutdown_waits_for_open_streams_only_as_long_as_the_drain_limit() {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (addr, task) = start(short(), async move {
            let _ = stop_rx.await;
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        stop_tx.send(()).unwrap();
        let served = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returned within its drain limit");
        assert!(served.unwrap().is_ok());
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
