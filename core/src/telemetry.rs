//! Tracing and OpenTelemetry export.
//!
//! [`init`] installs a `tracing` subscriber that logs to stderr and, when an
//! OTLP endpoint is configured, exports spans over OTLP/gRPC or
//! OTLP/HTTP-protobuf through a batch processor. Export runs on its own
//! thread with a bounded queue: when the collector is down, spans are dropped
//! rather than blocking ingestion.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat, OtlpConfig, OtlpProtocol, redact_url, redact_urls_in};

/// Telemetry could not be set up. A retry does not help; fix the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("building the OTLP {protocol:?} span exporter for {endpoint}: {message}")]
    Exporter {
        /// gRPC or HTTP.
        protocol: OtlpProtocol,
        /// The collector's endpoint (credentials redacted).
        endpoint: String,
        /// The exporter's error.
        message: String,
    },
    /// The Prometheus exporter could not be built.
    #[error("building the OpenTelemetry Prometheus exporter: {message}")]
    Prometheus {
        /// The exporter's error.
        message: String,
    },
}

/// Flushes and shuts down exporters when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// The tracer provider, when OTLP export is on.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Exports everything buffered, waiting at most the exporter timeout.
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

/// The OTLP/HTTP URL of one signal (`/v1/traces`, `/v1/metrics`) under
/// `endpoint`, unless the endpoint already names it.
pub(crate) fn signal_url(endpoint: &str, path: &str) -> String {
    if endpoint.ends_with(path) {
        endpoint.to_string()
    } else {
        format!("{}{path}", endpoint.trim_end_matches('/'))
    }
}

/// Maps an exporter build failure to the error naming `otlp`'s endpoint.
pub(crate) fn build_error(
    otlp: &OtlpConfig,
    endpoint: &str,
) -> impl Fn(opentelemetry_otlp::ExporterBuildError) -> TelemetryError {
    // Shown without credentials: the error reaches the logs.
    let (protocol, endpoint) = (otlp.protocol, redact_url(endpoint).into_owned());
    move |e| TelemetryError::Exporter {
        protocol,
        endpoint: endpoint.clone(),
        message: redact_urls_in(&e.to_string()),
    }
}

/// Spans whose export failed (collector down or too slow): they are
/// dropped, never retried into the hot path.
static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Whether this process installed a span exporter ([`init`] with an
/// endpoint): hot paths skip trace-context work nobody will export.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// How many spans this process dropped because their export failed.
pub fn spans_dropped() -> u64 {
    SPANS_DROPPED.load(Ordering::Relaxed)
}

/// The OTLP span exporter, counting the spans of failed exports.
#[derive(Debug)]
struct CountingSpanExporter(opentelemetry_otlp::SpanExporter);

impl opentelemetry_sdk::trace::SpanExporter for CountingSpanExporter {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let r = self.0.export(batch).await;
        if r.is_err() {
            SPANS_DROPPED.fetch_add(n, Ordering::Relaxed);
        }
        r
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// Builds a tracer provider exporting to `otlp`, or `None` when no endpoint is
/// configured. For gRPC it must be called inside a Tokio runtime.
pub fn tracer_provider(
    service_name: &str,
    otlp: &OtlpConfig,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let Some(endpoint) = &otlp.endpoint else {
        return Ok(None);
    };
    let timeout = Duration::from_millis(otlp.timeout_ms);
    let err = build_error(otlp, endpoint);
    let exporter = match otlp.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .build()
            .map_err(err)?,
        OtlpProtocol::Http => {
            let url = signal_url(endpoint, "/v1/traces");
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(url)
                .with_timeout(timeout)
                .build()
                .map_err(err)?
        }
    };
    let resource = Resource::builder()
        .with_service_name(service_name_or_env(service_name))
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(CountingSpanExporter(exporter))
            .with_resource(resource)
            .build(),
    ))
}

/// `OTEL_SERVICE_NAME` when set (the OpenTelemetry convention: one binary
/// runs as many services), else `default`.
pub fn service_name_or_env(default: &str) -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Installs the `tracing` subscriber of a one-shot subcommand (`feeds
/// test`, `transform`, `demo`, …), whose reports are for a person: the
/// libraries' warnings and errors on stderr (`RUST_LOG`, default `warn`),
/// as text or JSON (`[log] format`), with no export.
pub fn init_report_logs(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match log.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
}

/// Installs the global `tracing` subscriber for a votewire process: stderr
/// logs filtered by `RUST_LOG` (default `info`), as text lines or JSON
/// objects (`[log] format`), plus OTLP export when configured. Call once,
/// early, inside the Tokio runtime.
pub fn init(
    service_name: &str,
    otlp: &OtlpConfig,
    log: &LogConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = tracer_provider(service_name, otlp)?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,opentelemetry=warn,opentelemetry_sdk=warn"));
    // Colour only for a person at a terminal, never into a log file.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match log.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).boxed(),
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name.to_string())));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(TelemetryGuard { provider })
}
