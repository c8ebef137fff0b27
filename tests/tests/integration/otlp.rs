//! Spans exported by a votewire process reach the stack's Jaeger over both
//! OTLP gRPC and OTLP HTTP, and the test reads them back by trace id through
//! Jaeger's query API, as an engineer would.

use std::time::Duration;

use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use votewire_core::config::OtlpProtocol;
use votewire_core::telemetry::tracer_provider;
use votewire_tests::{Stack, unique};

async fn exported_spans_arrive(protocol: OtlpProtocol) {
    let stack = Stack::load();
    let service = unique("otlp-test");
    let provider = tracer_provider(&service, &stack.otlp(protocol))
        .expect("build the exporter")
        .expect("an endpoint is configured");
    let tracer = provider.tracer("votewire-tests");
    let mut root = tracer.start("feed.fetch");
    root.set_attribute(KeyValue::new("votewire.feed_id", "clarity:GA:107556"));
    let trace_id = root.span_context().trace_id().to_string();
    let root_span_id = root.span_context().span_id().to_string();
    let cx = Context::current_with_span(root);
    let mut child = tracer.start_with_context("feed.transform", &cx);
    child.set_attribute(KeyValue::new("votewire.cells_changed", 42_i64));
    child.end();
    cx.span().end();
    provider.force_flush().expect("flush to the receiver");

    let spans = stack
        .traced_spans(&trace_id, 2, Duration::from_secs(10))
        .await;
    assert_eq!(spans.len(), 2, "both spans arrive: {spans:#?}");
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("span {n} missing: {spans:#?}"))
    };
    let fetch = by_name("feed.fetch");
    let transform = by_name("feed.transform");
    assert_eq!(fetch["service"], service.as_str());
    assert_eq!(fetch["span_id"], root_span_id.as_str());
    assert_eq!(fetch["attributes"]["votewire.feed_id"], "clarity:GA:107556");
    assert_eq!(transform["parent_span_id"], root_span_id.as_str());
    assert_eq!(transform["attributes"]["votewire.cells_changed"], 42);
    assert_eq!(fetch["parent_span_id"], "", "feed.fetch is the root");
    provider.shutdown().expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_exported_over_grpc_is_read_back_from_jaeger() {
    exported_spans_arrive(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_exported_over_http_is_read_back_from_jaeger() {
    exported_spans_arrive(OtlpProtocol::Http).await;
}
