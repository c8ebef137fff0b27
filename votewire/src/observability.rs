//! What every long-running votewire service sets up first: span export
//! (`votewire_core::telemetry`), metrics over OTLP and, with
//! `--metrics-listen`, a Prometheus `/metrics` endpoint
//! (`votewire_core::metrics`). Dropping [`Observability`] flushes both.

use std::net::SocketAddr;

use anyhow::Context;
use votewire_core::config::VotewireConfig;
use votewire_core::metrics::{MetricsGuard, PrometheusText, init_metrics, serve_metrics};
use votewire_core::telemetry::TelemetryGuard;

pub struct Observability {
    // Fields drop in order: metrics flush before the tracer shuts down.
    metrics: MetricsGuard,
    _traces: TelemetryGuard,
}

impl Observability {
    pub fn prometheus(&self) -> PrometheusText {
        self.metrics.prometheus()
    }
}

/// Sets up export for `service` (overridden by `OTEL_SERVICE_NAME`) and,
/// when `metrics_listen` is given, serves `/metrics` there.
pub async fn start(
    service: &str,
    config: &VotewireConfig,
    metrics_listen: Option<SocketAddr>,
) -> anyhow::Result<Observability> {
    let traces = votewire_core::telemetry::init(service, &config.otlp)
        .context("setting up OpenTelemetry span export")?;
    let metrics =
        init_metrics(service, &config.otlp).context("setting up OpenTelemetry metrics")?;
    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for /metrics on {addr}"))?;
        eprintln!(
            "{service}: Prometheus metrics on http://{}/metrics",
            listener.local_addr()?
        );
        let text = metrics.prometheus();
        tokio::spawn(async move {
            if let Err(e) = serve_metrics(listener, text).await {
                eprintln!("/metrics endpoint stopped: {e}");
            }
        });
    }
    Ok(Observability {
        metrics,
        _traces: traces,
    })
}
