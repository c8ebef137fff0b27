//! Reading spans back from the stack's Jaeger through its query API
//! (`/api/v3/traces`, OTLP JSON), as an engineer's tools would.
//!
//! Each span is flattened to one JSON object: `service` (the resource's
//! `service.name`), `resource`, `scope`, `trace_id`, `span_id`,
//! `parent_span_id` (empty for a root), `name`, `kind`,
//! `start_unix_nano`, `end_unix_nano`, `attributes` (key to value, integers
//! as numbers), `links`, `events` and `status_code`. Jaeger is asked for
//! raw traces: what was exported, with no adjustment.

use serde_json::{Map, Value, json};

/// Every span of trace `trace_id` (lower-case hex); none when Jaeger has no
/// such trace (yet).
pub async fn trace_spans(query_url: &str, trace_id: &str) -> Result<Vec<Value>, String> {
    let url = format!("{query_url}/api/v3/traces/{trace_id}?raw_traces=true");
    get_traces(&url).await
}

/// Every span of the traces holding a span `operation` of `service` (the
/// stack's Jaeger keeps traces in memory for its lifetime; the time window
/// the query API requires is left wide open).
pub async fn find_spans(
    query_url: &str,
    service: &str,
    operation: &str,
) -> Result<Vec<Value>, String> {
    let url = reqwest::Url::parse_with_params(
        &format!("{query_url}/api/v3/traces"),
        [
            ("query.service_name", service),
            ("query.operation_name", operation),
            ("query.start_time_min", "2000-01-01T00:00:00Z"),
            ("query.start_time_max", "2100-01-01T00:00:00Z"),
            ("query.num_traces", "1000"),
            ("query.raw_traces", "true"),
        ],
    )
    .map_err(|e| e.to_string())?;
    get_traces(url.as_str()).await
}

async fn get_traces(url: &str) -> Result<Vec<Value>, String> {
    Ok(crate::http::get_json_if_found(url)
        .await?
        .map(|body| flatten(&body["result"]))
        .unwrap_or_default())
}

/// The spans of an OTLP JSON `TracesData`, flattened.
pub fn flatten(traces: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for rs in array(&traces["resourceSpans"]) {
        let resource = attributes(&rs["resource"]["attributes"]);
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for ss in array(&rs["scopeSpans"]) {
            for s in array(&ss["spans"]) {
                out.push(json!({
                    "service": service,
                    "resource": resource,
                    "scope": ss["scope"]["name"].as_str().unwrap_or_default(),
                    "trace_id": id(&s["traceId"]),
                    "span_id": id(&s["spanId"]),
                    "parent_span_id": id(&s["parentSpanId"]),
                    "name": s["name"],
                    "kind": s["kind"],
                    "start_unix_nano": number(&s["startTimeUnixNano"]),
                    "end_unix_nano": number(&s["endTimeUnixNano"]),
                    "attributes": attributes(&s["attributes"]),
                    "links": array(&s["links"]).iter().map(|l| json!({
                        "trace_id": id(&l["traceId"]),
                        "span_id": id(&l["spanId"]),
                        "attributes": attributes(&l["attributes"]),
                    })).collect::<Vec<_>>(),
                    "events": array(&s["events"]).iter().map(|e| json!({
                        "name": e["name"],
                        "attributes": attributes(&e["attributes"]),
                    })).collect::<Vec<_>>(),
                    "status_code": s["status"]["code"].as_i64().unwrap_or(0),
                }));
            }
        }
    }
    out
}

fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// An OTLP JSON id: hex as the spec says (and base64, as protobuf's own
/// JSON mapping writes bytes), as lower-case hex; empty when absent.
fn id(v: &Value) -> String {
    let s = v.as_str().unwrap_or_default();
    if s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return s.to_ascii_lowercase();
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .unwrap_or_else(|_| s.to_string())
}

/// OTLP JSON writes 64-bit integers as strings.
fn number(v: &Value) -> Value {
    match v {
        Value::String(s) => s.parse::<i64>().map_or_else(|_| v.clone(), Value::from),
        _ => v.clone(),
    }
}

fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        s.clone()
    } else if let Some(i) = v.get("intValue") {
        number(i)
    } else if let Some(d) = v.get("doubleValue") {
        d.clone()
    } else if let Some(b) = v.get("boolValue") {
        b.clone()
    } else if let Some(a) = v.get("arrayValue") {
        Value::Array(array(&a["values"]).iter().map(any_value).collect())
    } else if let Some(kv) = v.get("kvlistValue") {
        Value::Object(attributes(&kv["values"]))
    } else {
        Value::Null
    }
}

fn attributes(kvs: &Value) -> Map<String, Value> {
    array(kvs)
        .iter()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), any_value(&kv["value"]))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_json_spans_flatten_with_hex_ids_and_numeric_integers() {
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "ingest"}}]},
            "scopeSpans": [{"scope": {"name": "votewire"}, "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "EEE19B7EC3C1B174",
                "parentSpanId": "",
                "name": "feed.diff",
                "kind": 1,
                "startTimeUnixNano": "1544712660000000000",
                "attributes": [
                    {"key": "votewire.cells_changed", "value": {"intValue": "42"}},
                    {"key": "votewire.feed_id", "value": {"stringValue": "clarity:GA:107556"}}
                ],
                "links": [{"traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": "7uGbfsPBsXQ="}]
            }]}]
        }]});
        let spans = flatten(&body);
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s["service"], "ingest");
        assert_eq!(s["trace_id"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(s["parent_span_id"], "");
        assert_eq!(s["attributes"]["votewire.cells_changed"], 42);
        assert_eq!(s["attributes"]["votewire.feed_id"], "clarity:GA:107556");
        assert_eq!(s["start_unix_nano"], 1_544_712_660_000_000_000_i64);
        // The same ids in base64 read as the same hex.
        assert_eq!(
            s["links"][0]["trace_id"],
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(s["links"][0]["span_id"], "eee19b7ec3c1b174");
    }
}
