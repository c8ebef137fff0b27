//! What every long-running votewire service sets up first: span export
//! (`votewire_core::telemetry`), metrics over OTLP and, with
//! `--metrics-listen`, a small HTTP endpoint serving the Prometheus
//! `/metrics` (`votewire_core::metrics`), `/healthz` (the process serves)
//! and `/readyz` (the service does its job: see [`Readiness`]). Dropping
//! [`Observability`] flushes both exports.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::routing::get;
use votewire_core::config::VotewireConfig;
use votewire_core::metrics::{MetricsGuard, PrometheusText, init_metrics};
use votewire_core::telemetry::TelemetryGuard;

use crate::http_server::client_limits::TrustedProxies;
use crate::http_server::{ServeLimits, serve};

pub struct Observability {
    // Fields drop in order: metrics flush before the tracer shuts down.
    metrics: MetricsGuard,
    _traces: TelemetryGuard,
    readiness: Readiness,
}

impl Observability {
    pub fn prometheus(&self) -> PrometheusText {
        self.metrics.prometheus()
    }

    /// What this service's `/readyz` answers; the service updates it.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

/// Whether the service does its job now, or why not: `/readyz` answers
/// 200 when ready and 503 with the reason otherwise. A service starts not
/// ready; an ingestor is ready after a lease round reached the state
/// store, an aggregator when no partition it holds is still rebuilding.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<Mutex<Option<String>>>);

impl Readiness {
    fn starting() -> Readiness {
        Readiness(Arc::new(Mutex::new(Some("starting".to_string()))))
    }

    pub fn set_ready(&self) {
        if let Ok(mut r) = self.0.lock() {
            *r = None;
        }
    }

    pub fn set_not_ready(&self, why: impl Into<String>) {
        if let Ok(mut r) = self.0.lock() {
            *r = Some(why.into());
        }
    }

    /// `None` when ready, else why not.
    fn why_not(&self) -> Option<String> {
        self.0
            .lock()
            .map_or_else(|_| Some("readiness unknown".into()), |r| r.clone())
    }
}

/// Sets up export for `service` (overridden by `OTEL_SERVICE_NAME`) and,
/// when `metrics_listen` is given, serves `/metrics`, `/healthz` and
/// `/readyz` there.
pub async fn start(
    service: &str,
    config: &VotewireConfig,
    metrics_listen: Option<SocketAddr>,
) -> anyhow::Result<Observability> {
    let traces = votewire_core::telemetry::init(service, &config.otlp, &config.log)
        .context("setting up OpenTelemetry span export")?;
    let metrics =
        init_metrics(service, &config.otlp).context("setting up OpenTelemetry metrics")?;
    let readiness = Readiness::starting();
    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for /metrics on {addr}"))?;
        let at = listener.local_addr()?;
        tracing::info!(
            "{service}: Prometheus metrics on http://{at}/metrics (and /healthz, /readyz)"
        );
        let app = probe_routes(metrics.prometheus(), readiness.clone());
        // The API's connection limits, scaled to scrapers and probes.
        let limits = ServeLimits {
            header_read: std::time::Duration::from_secs(5),
            max_connections: 64,
            max_connections_per_client: 16,
            drain: std::time::Duration::from_secs(1),
        };
        tokio::spawn(async move {
            let pending = std::future::pending::<()>();
            if let Err(e) = serve(listener, app, TrustedProxies::default(), limits, pending).await {
                tracing::error!("{at}: the /metrics endpoint stopped: {e}");
            }
        });
    }
    Ok(Observability {
        metrics,
        _traces: traces,
        readiness,
    })
}

/// `/metrics`, `/healthz` and `/readyz`.
fn probe_routes(text: PrometheusText, readiness: Readiness) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = text.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        text.render_off_runtime().await,
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "alive"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    match readiness.why_not() {
                        None => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
                        Some(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(serde_json::json!({"status": "not_ready", "reason": why})),
                        ),
                    }
                }
            }),
        )
}
