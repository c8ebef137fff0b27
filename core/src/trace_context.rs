//! W3C trace context for one payload's journey: spans opened through the
//! global OpenTelemetry tracer, and the `traceparent` / `tracestate` text
//! carried in Kafka record headers between processes.
//!
//! Spans are plain [`Context`]s holding a span: [`root_span`] opens one
//! (back-dated to when the work began, so an unchanged poll never makes a
//! trace), [`child_span`] opens one under a parent, and [`end_span`] ends it
//! with its outcome. When no exporter is installed the global tracer is a
//! no-op; [`root_span`] then still returns a valid, sampled context with
//! fresh random ids, so every payload has a trace id for its cells,
//! manifest and dead letters whether or not anything is exported.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    Link, Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue, global};

/// The instrumentation scope of every votewire span.
pub const TRACER_NAME: &str = "votewire";

/// Opens a root span named `name` that began at `started`. Never invalid:
/// without an exporter the context carries fresh random ids.
pub fn root_span(
    name: &'static str,
    kind: SpanKind,
    started: SystemTime,
    attributes: Vec<KeyValue>,
) -> Context {
    let tracer = global::tracer(TRACER_NAME);
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_start_time(started)
        .with_attributes(attributes)
        .start_with_context(&tracer, &Context::new());
    if span.span_context().is_valid() {
        return Context::new().with_span(span);
    }
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(fastrand::u128(1..)),
        SpanId::from(fastrand::u64(1..)),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    ))
}

/// Opens a span named `name` under `parent` (begun at `started`, or now),
/// linked to `links`: other traces this work also continues (one
/// aggregator batch, many payloads).
pub fn linked_span(
    parent: &Context,
    name: &'static str,
    kind: SpanKind,
    started: Option<SystemTime>,
    attributes: Vec<KeyValue>,
    links: Vec<SpanContext>,
) -> Context {
    let tracer = global::tracer(TRACER_NAME);
    let mut builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .with_links(links.into_iter().map(Link::with_context).collect());
    if let Some(t) = started {
        builder = builder.with_start_time(t);
    }
    let span = builder.start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// Opens a span named `name` under `parent`.
pub fn child_span(
    parent: &Context,
    name: &'static str,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> Context {
    linked_span(parent, name, kind, None, attributes, Vec::new())
}

/// Ends the span in `cx`, marking it failed with `error` when given.
pub fn end_span(cx: &Context, error: Option<&str>) {
    let span = cx.span();
    if let Some(e) = error {
        span.set_status(Status::Error {
            description: Cow::Owned(e.to_string()),
        });
    }
    span.end();
}

/// The trace id of `cx` as 32 lower-case hex digits.
pub fn trace_id_of(cx: &Context) -> String {
    cx.span().span_context().trace_id().to_string()
}

/// The W3C headers for `cx`: `traceparent` and, when the trace carries
/// vendor state, `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct W3cHeaders {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// The vendors' state, when the trace carries any.
    pub tracestate: Option<String>,
}

/// The headers that continue `cx` in another process.
pub fn w3c_headers(cx: &Context) -> W3cHeaders {
    let span = cx.span();
    let sc = span.span_context();
    let state = sc.trace_state().header();
    W3cHeaders {
        traceparent: format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ),
        tracestate: (!state.is_empty()).then_some(state),
    }
}

/// The remote span context a `traceparent` (and `tracestate`) header names,
/// or `None` for anything that is not a valid version-00 header (wrong
/// length, upper-case or non-hex digits, all-zero ids).
pub fn parse_traceparent(traceparent: &[u8], tracestate: Option<&[u8]>) -> Option<SpanContext> {
    if traceparent.len() != 55
        || !traceparent.starts_with(b"00-")
        || traceparent[35] != b'-'
        || traceparent[52] != b'-'
    {
        return None;
    }
    fn hex(b: &[u8]) -> Option<&str> {
        b.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            .then(|| std::str::from_utf8(b).ok())
            .flatten()
    }
    let trace = TraceId::from_hex(hex(&traceparent[3..35])?).ok()?;
    let span = SpanId::from_hex(hex(&traceparent[36..52])?).ok()?;
    let flags = u8::from_str_radix(hex(&traceparent[53..55])?, 16).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    let state = tracestate
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or(TraceState::NONE);
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_span_without_an_exporter_still_has_valid_random_ids() {
        let a = root_span("feed.fetch", SpanKind::Client, SystemTime::now(), vec![]);
        let b = root_span("feed.fetch", SpanKind::Client, SystemTime::now(), vec![]);
        let ta = trace_id_of(&a);
        assert_eq!(ta.len(), 32);
        assert_ne!(ta, "0".repeat(32));
        assert_ne!(ta, trace_id_of(&b), "each payload gets its own trace");
        // A child continues the same trace.
        let child = child_span(&a, "feed.transform", SpanKind::Internal, vec![]);
        assert_eq!(trace_id_of(&child), ta);
    }

    #[test]
    fn headers_round_trip_through_the_parser() {
        let cx = root_span("feed.fetch", SpanKind::Client, SystemTime::now(), vec![]);
        let h = w3c_headers(&cx);
        let tp = h.traceparent.as_bytes();
        assert_eq!(tp.len(), 55);
        assert!(h.traceparent.ends_with("-01"), "sampled: {}", h.traceparent);
        let sc = parse_traceparent(tp, None).expect("our own header parses");
        assert_eq!(sc.trace_id().to_string(), trace_id_of(&cx));
        assert_eq!(
            sc.span_id(),
            cx.span().span_context().span_id(),
            "the header names the span it was taken from"
        );
        assert!(sc.is_remote() && sc.is_sampled());
    }

    #[test]
    fn the_parser_keeps_tracestate_and_refuses_malformed_headers() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse_traceparent(good, Some(b"vendor=abc,other=1".as_slice())).unwrap();
        assert_eq!(sc.trace_state().get("vendor"), Some("abc"));
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-0".as_bytes(),
            b"",
        ] {
            assert!(
                parse_traceparent(bad, None).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
