//! Metrics: OpenTelemetry instruments, exported over OTLP when an endpoint
//! is configured and always rendered for Prometheus to scrape.
//!
//! [`init_metrics`] installs the global meter provider with two periodic
//! readers: the OTLP exporter (every 10 s) and [`PrometheusSnapshot`],
//! which renders the same data in the Prometheus text format (every 2 s)
//! into a [`PrometheusText`] that a `/metrics` endpoint serves (the
//! services' probe endpoint, with the API's connection limits, in the
//! binary). Both run on the SDK's own threads: recording a
//! measurement never waits on a network. When the collector is down, the
//! OTLP export fails, the data of that interval is dropped, and
//! `votewire.otlp.export.failures` counts it.
//!
//! Names follow the OpenTelemetry conventions (`votewire.feed.fetch.duration`
//! in seconds); Prometheus sees `votewire_feed_fetch_duration_seconds`
//! (dots become underscores, the unit a suffix, counters end in `_total`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use crate::config::{OtlpConfig, OtlpProtocol};
use crate::telemetry::{TelemetryError, build_error, service_name_or_env, signal_url};

/// The latest Prometheus rendering of this process's metrics.
#[derive(Clone, Default)]
pub struct PrometheusText(Arc<RwLock<String>>);

impl PrometheusText {
    /// The text exposition (format 0.0.4), at most one interval old.
    pub fn render(&self) -> String {
        self.0.read().expect("metrics text lock").clone()
    }
}

/// OTLP exports that failed (their interval's data was dropped).
static OTLP_EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// A push exporter that keeps the Prometheus rendering of each
/// collection.
#[derive(Debug)]
struct PrometheusSnapshot {
    out: Arc<RwLock<String>>,
}

impl std::fmt::Debug for PrometheusText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusText")
    }
}

impl PushMetricExporter for PrometheusSnapshot {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let text = render_prometheus(metrics);
        *self.out.write().expect("metrics text lock") = text;
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
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

/// Installs the global meter provider for `service_name` (or
/// `OTEL_SERVICE_NAME`): Prometheus rendering always, OTLP export when
/// `otlp` names an endpoint.
pub fn init_metrics(service_name: &str, otlp: &OtlpConfig) -> Result<MetricsGuard, TelemetryError> {
    let text = Arc::new(RwLock::new(String::new()));
    let resource = Resource::builder()
        .with_service_name(service_name_or_env(service_name))
        .build();
    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(
            PeriodicReader::builder(PrometheusSnapshot { out: text.clone() })
                .with_interval(Duration::from_secs(2))
                .build(),
        );
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
        prometheus: PrometheusText(text),
    })
}

/// The Prometheus name of an OpenTelemetry metric.
fn prometheus_name(name: &str, unit: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let suffix = match unit {
        "s" => "_seconds",
        "ms" => "_milliseconds",
        "By" => "_bytes",
        _ => "",
    };
    if !out.ends_with(suffix) {
        out.push_str(suffix);
    }
    out
}

fn labels<'a>(attrs: impl Iterator<Item = &'a KeyValue>, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = attrs
        .map(|kv| {
            let key: String = kv
                .key
                .as_str()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("{key}=\"{}\"", escape(&kv.value.to_string()))
        })
        .collect();
    parts.sort();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number<T: Sample>(v: T) -> String {
    let f = v.as_f64();
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn render_data<T: Sample>(out: &mut String, name: &str, help: &str, data: &MetricData<T>) {
    match data {
        MetricData::Gauge(g) => {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for p in g.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(p.attributes(), None),
                    number(p.value())
                );
            }
        }
        MetricData::Sum(s) => {
            let (full, kind) = if s.is_monotonic() {
                (format!("{name}_total"), "counter")
            } else {
                (name.to_string(), "gauge")
            };
            let _ = writeln!(out, "# HELP {full} {help}\n# TYPE {full} {kind}");
            for p in s.data_points() {
                let _ = writeln!(
                    out,
                    "{full}{} {}",
                    labels(p.attributes(), None),
                    number(p.value())
                );
            }
        }
        MetricData::Histogram(h) => {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for p in h.data_points() {
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = p.bounds().collect();
                for (i, count) in p.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds.get(i).map_or("+Inf".to_string(), |b| format!("{b}"));
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        labels(p.attributes(), Some(("le", le)))
                    );
                }
                let l = labels(p.attributes(), None);
                let _ = writeln!(out, "{name}_sum{l} {}", number(p.sum()));
                let _ = writeln!(out, "{name}_count{l} {}", p.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {} // not used by votewire
    }
}

/// Renders one collection in the Prometheus text format.
fn render_prometheus(metrics: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in metrics.scope_metrics() {
        for m in scope.metrics() {
            let name = prometheus_name(m.name(), m.unit());
            let help = escape(m.description());
            match m.data() {
                AggregatedMetrics::F64(d) => render_data(&mut out, &name, &help, d),
                AggregatedMetrics::U64(d) => render_data(&mut out, &name, &help, d),
                AggregatedMetrics::I64(d) => render_data(&mut out, &name, &help, d),
            }
        }
    }
    out
}

/// A measurement value, as Prometheus prints it.
trait Sample: Copy {
    fn as_f64(self) -> f64;
}

impl Sample for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}

impl Sample for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Sample for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;

    #[test]
    fn a_collection_renders_as_prometheus_text() {
        let text = Arc::new(RwLock::new(String::new()));
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(PrometheusSnapshot { out: text.clone() }).build())
            .build();
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
        provider.force_flush().unwrap();
        let out = text.read().unwrap().clone();
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
    }
}
