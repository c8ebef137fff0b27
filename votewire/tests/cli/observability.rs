//! Traces, probes and telemetry: one trace id from fetch to results across
//! processes, readiness that follows the state store, dropped spans
//! counted when the collector is down.

use votewire_ingestors::state::FeedStateStore;
use votewire_tests::Stack;

use crate::support::{finish, interrupt, one_http_feed, scrape_until, votewire_on};

/// One payload's trace crosses two processes: an ingestor and an
/// aggregator, both exporting to the stack's Jaeger and read back through
/// its query API, produce one trace
/// whose root is the ingestor's `feed.fetch`; `feed.transform`,
/// `feed.diff`, `kafka.produce` and `state.commit` are its children; every
/// `aggregate.batch` that consumed the payload's cells is a child of (and
/// links to) the votes `kafka.produce` span named in the records'
/// `traceparent`, with `rollup.apply` and `results.produce` under it; and
/// the results carry the trace id. The same run is counted in metrics: the
/// aggregator's Prometheus `/metrics` and both processes' OTLP metrics
/// agree with the ingestor's own count of changed cells (Jaeger forwards
/// metrics to the stack's OTLP receiver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_covers_fetch_to_results_across_the_ingest_and_aggregate_processes() {
    use std::time::Duration;
    use votewire_tests::http::{Canned, FixtureServer};
    use votewire_tests::pipeline::TestPipeline;

    let stack = Stack::load();
    let pipeline = TestPipeline::start("trace", 2).await;
    let ingest_service = votewire_tests::unique("trace-ingest");
    let aggregate_service = votewire_tests::unique("trace-aggregate");
    let traced = |service: &str| {
        let mut c = tokio::process::Command::from(votewire_on(&stack, &pipeline));
        c.env(
            "VOTEWIRE_OTLP_ENDPOINT",
            stack.var("VOTEWIRE_OTLP_ENDPOINT"),
        )
        .env("VOTEWIRE_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", service)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        c
    };
    // The aggregator first, so its partitions have caught up (an empty
    // topic) before the payload's cells arrive.
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let aggregator = traced(&aggregate_service)
        .args(["aggregate", "--metrics-listen", &metrics_addr.to_string()])
        .args(["--group"])
        .arg(votewire_tests::unique("trace"))
        // It runs until this test interrupts it (after scraping its
        // /metrics), as an operator's Ctrl-C would: spans and metrics are
        // flushed on the way out.
        .args(["--instance", "a1", "--run-for", "120s"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let server = FixtureServer::start().await;
    let csv = votewire_tests::fixture_bytes(
        "precinct_csv/openelections-data-pa/20201103__pa__general__county.csv",
    );
    server.set("/pa.csv", Canned::ok(csv).header("etag", "\"v1\""));
    let dir = tempfile::tempdir().unwrap();
    let feed_id = votewire_tests::unique("csv:trace");
    one_http_feed(dir.path(), "f.toml", &feed_id, &server.url("/pa.csv"));
    // A second feed whose source refuses connections: its failed polls are
    // counted by class (and its fetch spans are in traces of their own).
    let broken_id = votewire_tests::unique("csv:down");
    one_http_feed(
        dir.path(),
        "g.toml",
        &broken_id,
        "http://127.0.0.1:9/none.csv",
    );
    let ingest_metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ingestor = traced(&ingest_service)
        .args(["ingest", "--lease-ttl", "3s", "--run-for", "6s"])
        .args(["--metrics-listen", &ingest_metrics.to_string()])
        .args(["--instance", "i1", "--feeds"])
        .arg(dir.path())
        .spawn()
        .unwrap();
    // The ingestor's /metrics, once its payload is counted.
    let cells_line =
        format!("votewire_feed_cells_changed_total{{votewire_feed_id=\"{feed_id}\"}} ");
    let failed_line = format!(
        "votewire_feed_errors_total{{error_type=\"fetch\",votewire_feed_id=\"{broken_id}\"}} "
    );
    let ingest_text = scrape_until(&format!("http://{ingest_metrics}/metrics"), |t| {
        t.lines().any(|l| l.starts_with(&cells_line))
            && t.lines().any(|l| l.starts_with(&failed_line))
    })
    .await;
    let (status, stdout, stderr) = finish(ingestor, Duration::from_secs(60)).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("feed=")).count(),
        1,
        "one payload:\n{stdout}"
    );
    let changed_by_ingest: i64 = stdout
        .lines()
        .find_map(|l| l.split(" changed=").nth(1)?.trim().parse().ok())
        .expect("the ingestor prints changed=N");
    // The aggregator's Prometheus endpoint counts the same cells (the text
    // is refreshed every 2 s).
    let applied = r#"votewire_aggregator_cells_total{outcome="applied"} "#;
    let want = format!("{applied}{changed_by_ingest}");
    let text = scrape_until(&format!("http://{metrics_addr}/metrics"), |t| {
        t.lines().any(|l| l == want)
    })
    .await;
    assert!(
        text.lines()
            .any(|l| l == format!("{applied}{changed_by_ingest}")),
        "the aggregator counted {changed_by_ingest} cells:\n{text}"
    );
    assert!(
        text.contains("# TYPE votewire_aggregator_fetch_to_result_seconds histogram"),
        "{text}"
    );
    // Its probes: alive, and ready (its partitions caught up and publish).
    for (path, want) in [("/healthz", "alive"), ("/readyz", "ready")] {
        let r = reqwest::get(format!("http://{metrics_addr}{path}"))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(&format!("\"{want}\"")), "{path}: {body}");
    }
    assert_eq!(
        ingest_text
            .lines()
            .find_map(|l| l.strip_prefix(&cells_line)?.parse::<i64>().ok()),
        Some(changed_by_ingest),
        "the ingestor's /metrics counts its changed cells:\n{ingest_text}"
    );
    // The autoscaling metrics (deploy/terraform/autoscaling.tf): both
    // feeds run here, and the aggregator reports its total lag.
    assert!(
        ingest_text
            .lines()
            .any(|l| l.starts_with("votewire_ingest_feeds_owned") && l.ends_with(" 2")),
        "two feeds owned:\n{ingest_text}"
    );
    // The lease rounds: timed, and both leases counted as taken.
    assert!(
        ingest_text
            .lines()
            .any(|l| l.starts_with("votewire_ingest_lease_round_duration_seconds_count")),
        "{ingest_text}"
    );
    assert!(
        ingest_text.lines().any(|l| l
            .starts_with("votewire_ingest_lease_changes_total{change=\"taken\"}")
            && l.ends_with(" 2")),
        "two leases taken:\n{ingest_text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("votewire_aggregator_lag_total")),
        "{text}"
    );
    // Every metric the Grafana dashboard queries is one these processes
    // expose.
    let dashboard: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            votewire_tests::workspace_root().join("deploy/grafana/dashboards/votewire.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let exposed = format!("{ingest_text}\n{text}");
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("votewire_"))
            {
                queried += 1;
                // A metric name, or a label the metrics carry.
                assert!(
                    exposed.contains(&format!("# TYPE {name} "))
                        || exposed.contains(&format!("\n{name}{{"))
                        || exposed.contains(&format!("\n{name} "))
                        || exposed.contains(&format!("{name}=\"")),
                    "panel {:?} queries {name}, which no process exposes",
                    panel["title"]
                );
            }
        }
    }
    assert!(queried >= 8, "the dashboard's queries were checked");
    interrupt(&aggregator);
    let (status, _, agg_stderr) = finish(aggregator, Duration::from_secs(90)).await;
    assert!(status.success(), "{agg_stderr}");

    // Both processes exported their metrics over OTLP (the last export,
    // at shutdown, holds the final cumulative values).
    let otlp_sum = |service: &str, name: &str| {
        // Jaeger keeps traces only; it forwards metrics to the stack's
        // OTLP receiver.
        let url = format!(
            "{}/received?service={service}&name={name}",
            stack.var("VOTEWIRE_OTLP_RECEIVER_URL")
        );
        async move {
            let got = votewire_tests::http::get_json(&url).await.unwrap();
            got["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|m| {
                    m["data"]["sum"]["dataPoints"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|p| p["asInt"].as_str()?.parse::<i64>().ok())
                .max()
        }
    };
    assert_eq!(
        otlp_sum(&ingest_service, "votewire.feed.cells_changed").await,
        Some(changed_by_ingest),
        "the ingestor's OTLP counter"
    );
    assert!(
        otlp_sum(&aggregate_service, "votewire.aggregator.results")
            .await
            .is_some_and(|n| n > 0),
        "the aggregator's OTLP counter"
    );

    // The ingestor's one feed.fetch names the trace: found as an engineer
    // finds it, by service and operation in Jaeger's query API.
    let fetches: Vec<serde_json::Value> = stack
        .spans_of(&ingest_service, "feed.fetch")
        .await
        .into_iter()
        .filter(|s| s["name"] == "feed.fetch")
        .filter(|s| s["attributes"]["votewire.feed_id"] == feed_id.as_str())
        .collect();
    assert_eq!(fetches.len(), 1, "one payload, one trace: {fetches:#?}");
    let fetch = &fetches[0];
    let trace_id = fetch["trace_id"].as_str().unwrap().to_string();
    assert_eq!(fetch["parent_span_id"], "", "feed.fetch is the root");
    assert_eq!(fetch["attributes"]["votewire.feed_id"], feed_id.as_str());
    let spans = stack
        .traced_spans(&trace_id, 9, Duration::from_secs(10))
        .await;
    let named =
        |n: &str| -> Vec<&serde_json::Value> { spans.iter().filter(|s| s["name"] == n).collect() };
    let fetch_id = fetch["span_id"].as_str().unwrap();
    for child in ["feed.transform", "feed.diff", "state.commit"] {
        let s = named(child);
        assert_eq!(s.len(), 1, "{child}: {spans:#?}");
        assert_eq!(s[0]["parent_span_id"], fetch_id, "{child} under feed.fetch");
        assert_eq!(s[0]["service"], ingest_service.as_str());
    }
    let produces = named("kafka.produce");
    let votes_produce = produces
        .iter()
        .find(|s| s["attributes"]["messaging.destination.name"] == pipeline.topics.votes.as_str())
        .unwrap_or_else(|| panic!("a produce to the votes topic: {spans:#?}"));
    assert!(
        produces.iter().all(|s| s["parent_span_id"] == fetch_id),
        "every kafka.produce is under feed.fetch: {produces:#?}"
    );
    let cells_changed = named("feed.diff")[0]["attributes"]["votewire.cells_changed"]
        .as_i64()
        .unwrap();
    assert!(cells_changed > 0);
    assert_eq!(
        votes_produce["attributes"]["messaging.batch.message_count"],
        cells_changed
    );

    // The aggregator's side, in the same trace.
    let batches = named("aggregate.batch");
    assert!(
        !batches.is_empty(),
        "aggregate.batch in the trace: {spans:#?}"
    );
    let votes_produce_id = votes_produce["span_id"].as_str().unwrap();
    let mut consumed = 0;
    for b in &batches {
        assert_eq!(b["service"], aggregate_service.as_str());
        assert_eq!(
            b["parent_span_id"], votes_produce_id,
            "a batch continues the votes produce span"
        );
        let links = b["links"].as_array().unwrap();
        assert!(
            links
                .iter()
                .any(|l| l["trace_id"] == trace_id.as_str() && l["span_id"] == votes_produce_id),
            "and links to it: {links:#?}"
        );
        consumed += b["attributes"]["messaging.batch.message_count"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(
        consumed, cells_changed,
        "the batches in this trace consumed exactly the payload's cells"
    );
    let batch_ids: Vec<&str> = batches
        .iter()
        .map(|b| b["span_id"].as_str().unwrap())
        .collect();
    for child in ["rollup.apply", "results.produce"] {
        let s = named(child);
        assert!(!s.is_empty(), "{child} in the trace: {spans:#?}");
        assert!(
            s.iter()
                .all(|c| batch_ids.contains(&c["parent_span_id"].as_str().unwrap())),
            "{child} under an aggregate.batch"
        );
    }
    let produced: i64 = named("results.produce")
        .iter()
        .map(|s| {
            s["attributes"]["messaging.batch.message_count"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert!(produced > 0, "results were produced in this trace");
    // The whole trace is one tree across both processes: one root, and
    // every other span's parent is in the trace.
    let ids: std::collections::BTreeSet<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    let roots: Vec<&serde_json::Value> =
        spans.iter().filter(|s| s["parent_span_id"] == "").collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert!(
        spans
            .iter()
            .all(|s| s["parent_span_id"] == ""
                || ids.contains(s["parent_span_id"].as_str().unwrap())),
        "every span's parent is in the trace: {spans:#?}"
    );
    let services: std::collections::BTreeSet<&str> = spans
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        [aggregate_service.as_str(), ingest_service.as_str()]
            .into_iter()
            .collect(),
        "the ingestor's and the aggregator's spans"
    );

    // Subscribers see the trace id on the results.
    let results = votewire_tests::replay::results_of(&pipeline.kafka, &pipeline.topics.results, 2);
    assert!(!results.is_empty());
    assert!(
        results
            .iter()
            .all(|(_, r)| r.trace_id.as_deref() == Some(trace_id.as_str())),
        "every result names the payload's trace"
    );
}

/// An ingestor's probes on its metrics address: `/healthz` answers while
/// the process serves; `/readyz` is 200 once a lease round reached the
/// state store, 503 with the reason while the store is unreachable (a
/// paused proxy in front of moto), and 200 again after it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingestor_is_alive_throughout_and_ready_only_while_its_state_store_answers() {
    use std::time::Duration;
    use votewire_tests::pipeline::TestPipeline;
    use votewire_tests::proxy::PausableProxy;

    let stack = Stack::load();
    let pipeline = TestPipeline::start("probes", 2).await;
    let (proxy, through) = PausableProxy::in_front_of(&stack.var("VOTEWIRE_DYNAMODB_ENDPOINT"));
    let dir = tempfile::tempdir().unwrap();
    one_http_feed(
        dir.path(),
        "f.toml",
        &votewire_tests::unique("csv:probes"),
        "http://127.0.0.1:9/none.csv",
    );
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = tokio::process::Command::from(votewire_on(&stack, &pipeline));
    let child = cmd
        .env("VOTEWIRE_DYNAMODB_ENDPOINT", through)
        .args(["ingest", "--lease-ttl", "3s", "--instance", "probes"])
        .args(["--metrics-listen", &addr.to_string(), "--feeds"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let probe = |path: &'static str| async move {
        match reqwest::get(format!("http://{addr}{path}")).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()), // not listening yet
        }
    };
    let until = |path: &'static str, status: u16| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let got = probe(path).await;
            if got.0 == status || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (status, body) = until("/readyz", 200).await;
    assert_eq!(status, 200, "ready after a lease round: {body}");
    assert!(body.contains("\"ready\""), "{body}");
    assert_eq!(probe("/healthz").await.0, 200);

    proxy.pause();
    let (status, body) = until("/readyz", 503).await;
    assert_eq!(
        status, 503,
        "not ready while the store is unreachable: {body}"
    );
    assert!(body.contains("lease round failed"), "{body}");
    let (status, body) = probe("/healthz").await;
    assert_eq!(status, 200, "still alive: {body}");

    proxy.resume();
    let (status, body) = until("/readyz", 200).await;
    assert_eq!(status, 200, "ready again once the store answers: {body}");
    assert_eq!(probe("/nothing-here").await.0, 404);
    interrupt(&child);
    let (_, _, stderr) = finish(child, Duration::from_secs(30)).await;
    assert!(
        stderr.contains("lease round failed"),
        "the failed rounds were reported:\n{stderr}"
    );
}

/// With the collector down, ingestion carries on: the payload is published
/// and committed, the spans that could not be exported are dropped and
/// counted (`votewire_otlp_spans_dropped_total` on /metrics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_carries_on_and_counts_dropped_spans_when_the_collector_is_down() {
    use std::time::Duration;
    use votewire_tests::http::{Canned, FixtureServer};
    use votewire_tests::pipeline::TestPipeline;

    let stack = Stack::load();
    let pipeline = TestPipeline::start("otlp-down", 2).await;
    let server = FixtureServer::start().await;
    let csv = votewire_tests::fixture_bytes(
        "precinct_csv/openelections-data-pa/20201103__pa__general__county.csv",
    );
    server.set("/pa.csv", Canned::ok(csv).header("etag", "\"v1\""));
    let dir = tempfile::tempdir().unwrap();
    let feed_id = votewire_tests::unique("csv:otlp-down");
    one_http_feed(dir.path(), "f.toml", &feed_id, &server.url("/pa.csv"));
    // Nothing listens on the discard port: every export fails at once.
    let dead = "http://127.0.0.1:9";
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = tokio::process::Command::from(votewire_on(&stack, &pipeline))
        .env("VOTEWIRE_OTLP_ENDPOINT", dead)
        .env("VOTEWIRE_OTLP_PROTOCOL", "grpc")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .args([
            "ingest",
            "--lease-ttl",
            "3s",
            "--run-for",
            "8s",
            "--instance",
            "i1",
        ])
        .args(["--metrics-listen", &metrics.to_string(), "--feeds"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dropped = "votewire_otlp_spans_dropped_total ";
    let text = scrape_until(&format!("http://{metrics}/metrics"), |t| {
        t.lines().any(|l| {
            l.strip_prefix(dropped)
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    })
    .await;
    let (status, stdout, stderr) = finish(child, Duration::from_secs(60)).await;
    assert!(status.success(), "{stderr}");
    assert!(
        text.lines().any(|l| l
            .strip_prefix(dropped)
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)),
        "dropped spans are counted:\n{text}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("feed={feed_id} seq=1"))),
        "the payload was published regardless:\n{stdout}"
    );
    let row = pipeline.state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(row.source_seq, 1, "and committed");
}
