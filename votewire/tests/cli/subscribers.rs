//! What subscribers are told to run: `votewire tail results` and the
//! documented Python and Rust examples.

use votewire_tests::Stack;

use crate::support::{a_contest_result, produce_results, result_key, votewire_on};

#[path = "../../examples/consume_results.rs"]
mod consume_results_example;

/// What subscribers are told to run works on the real broker: `votewire
/// tail results` (table and JSON, with filters), the Python example
/// (confluent-kafka + fastavro) and the Rust example (rdkafka +
/// apache-avro, no votewire crate) each read back the results produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_read_results_with_the_documented_examples() {
    let stack = Stack::load();
    let pipeline = votewire_tests::pipeline::TestPipeline::start("subscribe", 2).await;
    let results = [
        a_contest_result("Appling", [5_000, 3_000]),
        a_contest_result("Bacon", [3_800, 900]),
        a_contest_result("Cobb", [120_000, 180_000]),
    ];
    produce_results(&pipeline, &results).await;
    let schema = &votewire_schemas::schemas().contest_result;
    let key_of = result_key;
    let by_unit = |unit: &str| results.iter().find(|r| r.unit_id == unit).unwrap();

    // votewire tail results --json: every result, exactly.
    let out = votewire_on(&stack, &pipeline)
        .args(["tail", "results", "--idle", "3s", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let want = by_unit(l["result"]["unit_id"].as_str().unwrap());
        assert_eq!(l["key"], key_of(want).as_str());
        assert_eq!(l["result"], serde_json::to_value(want).unwrap());
    }
    // Filters, and the human table.
    let out = votewire_on(&stack, &pipeline)
        .args(["tail", "results", "--idle", "3s", "--unit", "cob"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("Cobb") && text.contains("Raphael Warnock 180000 (60.0%)"),
        "{text}"
    );
    let out = votewire_on(&stack, &pipeline)
        .args([
            "tail",
            "results",
            "--idle",
            "2s",
            "--contest",
            "no-such-contest",
        ])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty());

    // The Python example.
    let script = votewire_tests::workspace_root().join("docs/examples/consume_results.py");
    let out = tokio::process::Command::new(stack.var("VOTEWIRE_PYTHON"))
        .arg(&script)
        .args([
            "--bootstrap",
            &stack.var("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"),
        ])
        .args(["--topic", &pipeline.topics.results, "--idle", "5"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let python: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The Rust example.
    let avsc = std::fs::read_to_string(
        votewire_tests::workspace_root().join("schemas/avro/ContestResult.avsc"),
    )
    .unwrap();
    let (bootstrap, topic) = (
        stack.var("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"),
        pipeline.topics.results.clone(),
    );
    let rust = tokio::task::spawn_blocking(move || {
        consume_results_example::read_results(
            &bootstrap,
            &topic,
            &avsc,
            std::time::Duration::from_secs(4),
        )
        .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
    .unwrap();
    let rust: Vec<serde_json::Value> = rust
        .into_iter()
        .map(|r| serde_json::json!({"key": r.key, "schema_id": r.schema_id, "result": r.result}))
        .collect();
    for (who, got) in [("python", &python), ("rust", &rust)] {
        assert_eq!(got.len(), 3, "{who}: {got:?}");
        for l in got {
            let want = by_unit(l["result"]["unit_id"].as_str().unwrap());
            assert_eq!(l["key"], key_of(want).as_str(), "{who}");
            assert_eq!(l["schema_id"], schema.id, "{who}");
            let r = &l["result"];
            assert_eq!(r["total_votes"], want.total_votes, "{who}");
            assert_eq!(r["contest_name"], want.contest_name.as_str(), "{who}");
            assert_eq!(r["trace_id"], want.trace_id.as_deref().unwrap(), "{who}");
            assert_eq!(r["last_updated"], want.last_updated, "{who}");
            let votes: Vec<i64> = r["choices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["votes"].as_i64().unwrap())
                .collect();
            let want_votes: Vec<i64> = want.choices.iter().map(|c| c.votes).collect();
            assert_eq!(votes, want_votes, "{who}");
        }
    }
}
