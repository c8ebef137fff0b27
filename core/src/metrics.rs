//! Metrics: OpenTelemetry instruments, exported over OTLP when an endpoint
//! is configured and always rendered for Prometheus to scrape.
//!
//! [`init_metrics`] installs the global meter provider with two readers:
//! the OTLP exporter (a periodic reader, every 10 s, on the SDK's own
//! thread: recording a measurement never waits on a network) and the
//! OpenTelemetry Prometheus exporter (a pull reader), which renders the
//! data in the Prometheus text format when a `/metrics` endpoint is
//! scraped (the services' probe endpoint, with the API's connection
//! limits, in the binary). When the collector is down, the OTLP export
//! fails, the data of that interval is dropped, and
//! `votewire.otlp.export.failures` counts it; a scrape still sees it.
//!
//! Names follow the OpenTelemetry conventions (`votewire.feed.fetch.duration`
//! in seconds); Prometheus sees `votewire_feed_fetch_duration_seconds`
//! (dots become underscores, the unit a suffix, counters end in `_total`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    Instrument, MeterProviderBuilder, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};

use crate::config::{OtlpConfig, OtlpProtocol};
use crate::telemetry::{TelemetryError, build_error, service_name_or_env, signal_url};

/// This process's metrics in the Prometheus text format, rendered by
/// the OpenTelemetry Prometheus exporter when scraped.
#[derive(Clone, Default)]
pub struct PrometheusText(prometheus::Registry);

impl PrometheusText {
    /// The text exposition (format 0.0.4) of the metrics as they are now.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&self.0.gather(), &mut out) {
            // A comment keeps the scrape valid and says why it is empty.
            out = format!("# votewire: rendering the metrics failed: {e}\n");
        }
        out
    }

    /// [`render`](Self::render) on tokio's blocking pool: a scrape
    /// collects every instrument (thousands of series on a big night)
    /// and must not hold up the runtime's workers.
    pub async fn render_off_runtime(&self) -> String {
        let text = self.clone();
        tokio::task::spawn_blocking(move || text.render())
            .await
            .unwrap_or_else(|e| format!("# votewire: rendering the metrics failed: {e}\n"))
    }
}

/// The series one instrument may hold before the SDK folds new ones into
/// an `otel_metric_overflow="true"` series. The SDK's default, 2,000, is
/// less than the feeds one ingestor runs on a national night (about 3,000
/// in all, each feed a series per poll outcome and per error class); the
/// labels are feed ids from the registry and classes from the code, so
/// this bounds memory without hiding a feed (bench/metrics_scrape.sh).
const SERIES_PER_INSTRUMENT: usize = 50_000;

/// OTLP exports that failed (their interval's data was dropped).
static OTLP_EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

impl std::fmt::Debug for PrometheusText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusText")
    }
}

/// The pull reader that renders into `text`'s registry: the series'
/// labels are the measurements' attributes (every instrument has the one
/// scope, `votewire`, so no `otel_scope_*` labels), and `target_info`
/// carries the resource (`service_name`).
fn prometheus_reader(
    text: &PrometheusText,
) -> Result<opentelemetry_prometheus::PrometheusExporter, TelemetryError> {
    opentelemetry_prometheus::exporter()
        .with_registry(text.0.clone())
        .scope_info_enabled(false)
        .build()
        .map_err(|e| TelemetryError::Prometheus {
            message: e.to_string(),
        })
}

/// The OTLP exporter, counting failed exports.
struct CountingExporter(opentelemetry_otlp::MetricExporter);

impl PushMetricExporter for CountingExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let r = self.0.export(metrics).await;
        if r.is_err() {
            OTLP_EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.0.temporality()
    }
}

/// Flushes and shuts the meter provider down when dropped.
pub struct MetricsGuard {
    provider: SdkMeterProvider,
    prometheus: PrometheusText,
}

impl MetricsGuard {
    /// The Prometheus text of this process's metrics, for `/metrics`.
    pub fn prometheus(&self) -> PrometheusText {
        self.prometheus.clone()
    }

    /// Collects and exports now (both readers).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

impl Drop for MetricsGuard {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// A meter provider with the series limit and the Prometheus reader
/// rendering into `text`.
fn provider_builder(text: &PrometheusText) -> Result<MeterProviderBuilder, TelemetryError> {
    Ok(SdkMeterProvider::builder()
        .with_view(|_: &Instrument| {
            Stream::builder()
                .with_cardinality_limit(SERIES_PER_INSTRUMENT)
                .build()
                .ok()
        })
        .with_reader(prometheus_reader(text)?))
}

/// Installs the global meter provider for `service_name` (or
/// `OTEL_SERVICE_NAME`): Prometheus rendering always, OTLP export when
/// `otlp` names an endpoint.
pub fn init_metrics(service_name: &str, otlp: &OtlpConfig) -> Result<MetricsGuard, TelemetryError> {
    let text = PrometheusText::default();
    let resource = Resource::builder()
        .with_service_name(service_name_or_env(service_name))
        .build();
    let mut builder = provider_builder(&text)?.with_resource(resource);
    if let Some(endpoint) = &otlp.endpoint {
        let timeout = Duration::from_millis(otlp.timeout_ms);
        let err = build_error(otlp, endpoint);
        let exporter = match otlp.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .build()
                .map_err(err)?,
            OtlpProtocol::Http => opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(signal_url(endpoint, "/v1/metrics"))
                .with_timeout(timeout)
                .build()
                .map_err(err)?,
        };
        builder = builder.with_reader(
            PeriodicReader::builder(CountingExporter(exporter))
                .with_interval(Duration::from_secs(10))
                .build(),
        );
    }
    let provider = builder.build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let meter = opentelemetry::global::meter("votewire");
    let _failures = meter
        .u64_observable_counter("votewire.otlp.export.failures")
        .with_description("OTLP metric exports that failed; their data was dropped")
        .with_callback(|o| o.observe(OTLP_EXPORT_FAILURES.load(Ordering::Relaxed), &[]))
        .build();
    let _spans = meter
        .u64_observable_counter("votewire.otlp.spans.dropped")
        .with_description("Spans dropped because their OTLP export failed")
        .with_callback(|o| o.observe(crate::telemetry::spans_dropped(), &[]))
        .build();
    Ok(MetricsGuard {
        provider,
        prometheus: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;

    #[test]
    fn a_collection_renders_as_prometheus_text() {
        let text = PrometheusText::default();
        let provider = provider_builder(&text).unwrap().build();
        let meter = provider.meter("test");
        let counter = meter.u64_counter("votewire.feed.cells_changed").build();
        counter.add(7, &[KeyValue::new("votewire.feed_id", "clarity:GA:\"x\"")]);
        counter.add(5, &[KeyValue::new("votewire.feed_id", "clarity:GA:\"x\"")]);
        let hist = meter
            .f64_histogram("votewire.feed.fetch.duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        for v in [0.05, 0.5, 0.7, 3.0] {
            hist.record(v, &[]);
        }
        let gauge = meter.i64_gauge("votewire.aggregator.lag").build();
        gauge.record(
            -3,
            &[KeyValue::new("messaging.destination.partition.id", "2")],
        );
        let out = text.render();
        let lines: Vec<&str> = out.lines().collect();
        for want in [
            "# TYPE votewire_feed_cells_changed_total counter",
            r#"votewire_feed_cells_changed_total{votewire_feed_id="clarity:GA:\"x\""} 12"#,
            "# TYPE votewire_feed_fetch_duration_seconds histogram",
            r#"votewire_feed_fetch_duration_seconds_bucket{le="0.1"} 1"#,
            r#"votewire_feed_fetch_duration_seconds_bucket{le="1"} 3"#,
            r#"votewire_feed_fetch_duration_seconds_bucket{le="+Inf"} 4"#,
            "votewire_feed_fetch_duration_seconds_sum 4.25",
            "votewire_feed_fetch_duration_seconds_count 4",
            "# TYPE votewire_aggregator_lag gauge",
            r#"votewire_aggregator_lag{messaging_destination_partition_id="2"} -3"#,
        ] {
            assert!(lines.contains(&want), "{want:?} missing from:\n{out}");
        }
        assert!(!out.contains("otel_scope"), "scope labels in:\n{out}");
    }

    #[test]
    fn a_national_night_of_feeds_keeps_a_series_each() {
        // More feeds than the SDK's default limit of 2,000 series.
        let text = PrometheusText::default();
        let provider = provider_builder(&text).unwrap().build();
        let counter = provider
            .meter("test")
            .u64_counter("votewire.feed.cells_changed")
            .build();
        for i in 0..3_000 {
            counter.add(1, &[KeyValue::new("votewire.feed_id", format!("f{i}"))]);
        }
        let out = text.render();
        let series = out
            .lines()
            .filter(|l| l.starts_with("votewire_feed_cells_changed_total{"))
            .count();
        assert_eq!(series, 3_000, "{out}");
        assert!(!out.contains("otel_metric_overflow"));
    }
}
