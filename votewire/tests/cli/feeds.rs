//! `votewire feeds`: validate, test (a dry run's diff), pause and resume,
//! and the published JSON Schemas.

use std::process::Command;

use votewire_ingestors::state::FeedStateStore;
use votewire_tests::Stack;

use crate::support::{votewire, votewire_on};

#[test]
fn feeds_validate_accepts_the_examples_and_lists_every_problem() {
    let root = votewire_tests::workspace_root();
    let ok = votewire()
        .args(["feeds", "validate"])
        .arg(root.join("deploy/feeds/examples"))
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: 5 feeds (4 enabled)"));
    // The README's path: the registry is read with its sub-folders.
    let readme = votewire()
        .args(["feeds", "validate"])
        .arg(root.join("deploy/feeds/"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&readme.stdout).starts_with("ok: 5 feeds (4 enabled) in 1 file(s)"),
        "{}",
        String::from_utf8_lossy(&readme.stderr)
    );
    // Named as the other feed commands name it: --feeds, or VOTEWIRE_FEEDS.
    for named in [
        votewire()
            .args(["feeds", "validate", "--feeds"])
            .arg(root.join("deploy/feeds/"))
            .output()
            .unwrap(),
        votewire()
            .args(["feeds", "validate"])
            .env("VOTEWIRE_FEEDS", root.join("deploy/feeds/"))
            .output()
            .unwrap(),
    ] {
        assert!(
            String::from_utf8_lossy(&named.stdout).starts_with("ok: 5 feeds (4 enabled)"),
            "{named:?}"
        );
    }
    let neither = votewire()
        .args(["feeds", "validate"])
        .env_remove("VOTEWIRE_FEEDS")
        .output()
        .unwrap();
    assert_eq!(neither.status.code(), Some(2), "a usage error: {neither:?}");
    // An empty registry is a wrong path, not a success.
    let empty = tempfile::tempdir().unwrap();
    let none = votewire()
        .args(["feeds", "validate"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no feeds"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[feed]]\nid = \"x\"\nfamily = \"nope\"\nelection_id = \"e\"\n[feed.source]\nkind = \"html\"\nurl = \"gopher://x\"\n",
    )
    .unwrap();
    let bad = votewire()
        .args(["feeds", "validate"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("bad.toml:3: x family: unknown family"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:") && err.contains("x source.url"),
        "{err}"
    );
    assert!(err.contains("problem(s)"), "{err}");
    // The same as JSON, for scripts.
    let out = votewire()
        .args(["feeds", "validate", "--json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["line"] == 3 && p["field"] == "x family"),
        "{v}"
    );
    let out = votewire()
        .args(["feeds", "validate", "--json"])
        .arg(root.join("deploy/feeds/examples"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["feeds"].as_u64(),
            v["enabled"].as_u64()
        ),
        (Some(true), Some(5), Some(4))
    );
}

/// An operator's day with one feed: `feeds test` diffs a dry run against
/// what the votes topic holds and produces nothing; a rejected payload
/// exits 3; `pause` and `resume` are stored with who did them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_test_diffs_a_dry_run_and_operators_pause_and_resume() {
    use votewire_ingestors::feed_tools::FeedTools;
    use votewire_ingestors::health::HealthMachine;
    use votewire_ingestors::http::{FetchLimits, client};
    use votewire_ingestors::live_feed::LiveFeed;
    use votewire_tests::http::{Canned, FixtureServer};
    use votewire_tests::pipeline::{TestPipeline, drain};

    let stack = Stack::load();
    let pipeline = TestPipeline::start("feedscli", 2).await;
    let server = FixtureServer::start().await;
    let original = votewire_tests::fixture_bytes(votewire_tests::pipeline::PA_COUNTY_CSV);
    let text = String::from_utf8(original.clone()).unwrap();
    let (before, after) = (
        "Clinton,Registered Voters,,,,22387,",
        "Clinton,Registered Voters,,,,22388,",
    );
    assert!(text.contains(before));
    server.set("/pa.csv", Canned::ok(original));

    // What an ingestor published earlier.
    let feed_id = votewire_tests::unique("csv:PA");
    let lease = pipeline.lease(&feed_id).await;
    let spec = votewire_tests::pipeline::pa_csv_feed(
        &feed_id,
        votewire_tests::pipeline::http_source(server.url("/pa.csv")),
    );
    let tools = FeedTools::new(client(&FetchLimits::default()).unwrap(), 2, None, 4);
    let mut feed = LiveFeed::resume(
        &pipeline.state,
        spec,
        "ingestor-a",
        HealthMachine::new(5, 60_000),
    )
    .await
    .unwrap();
    let first = feed
        .step(&tools, &pipeline.publisher, &pipeline.state, &lease, 1_000)
        .await
        .unwrap()
        .published
        .unwrap();
    let (kafka, votes) = (pipeline.kafka.clone(), pipeline.topics.votes.clone());
    let on_topic = move || drain(&kafka, &votes, 2).len();
    assert_eq!(on_topic(), first.cells_total);

    // The source moves one count; the operator dry-runs the feed.
    server.set("/pa.csv", Canned::ok(text.replacen(before, after, 1)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pa.toml"),
        format!(
            r#"
[[feed]]
id = "{feed_id}"
family = "csv"
election_id = "2020-11-03-PA"
[feed.source]
kind = "http"
url = "{}"
[feed.mapping]
final_newline = "optional"      # the PA county file ends without a newline
"#,
            server.url("/pa.csv")
        ),
    )
    .unwrap();
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "test", &feed_id, "--feeds"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 changed, 0 new, 0 gone"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("22387 -> 22388"), "{stdout}");
    // The same diff as JSON.
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "test", &feed_id, "--json", "--feeds"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changed = diff["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{diff}");
    assert_eq!(
        (changed[0]["old"].as_i64(), changed[0]["new"].as_i64()),
        (Some(22387), Some(22388))
    );
    assert_eq!(diff["cells"].as_u64(), Some(first.cells_total as u64));
    assert_eq!(on_topic(), first.cells_total, "a dry run produces nothing");

    // A garbage payload: rejected, exit 3, still nothing produced.
    server.set(
        "/pa.csv",
        Canned::ok("<html><body>Service Unavailable</body></html>")
            .header("content-type", "text/html"),
    );
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "test", &feed_id, "--feeds"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected"));
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "test", &feed_id, "--json", "--feeds"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let rejected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rejected["rejected"]["class"], "not_this_format",
        "{rejected}"
    );

    // Offline, on saved payloads: the source (serving garbage now) is
    // never asked. The changed file gives the same one-count diff; the
    // garbage page saved to a file is rejected the same way.
    let saved = dir.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    let changed_file = saved.join("pa-changed.csv");
    std::fs::write(&changed_file, text.replacen(before, after, 1)).unwrap();
    let asked = || server.seen().iter().filter(|(p, _)| p == "/pa.csv").count();
    let fetches_before = asked();
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "test", &feed_id, "--json", "--payload"])
        .arg(&changed_file)
        .arg("--feeds")
        .arg(dir.path().join("pa.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diff["changed"].as_array().map(Vec::len), Some(1), "{diff}");
    assert_eq!(diff["changed"][0]["new"].as_i64(), Some(22388), "{diff}");
    assert!(
        diff["url"].as_str().unwrap().starts_with("file://")
            && diff["url"].as_str().unwrap().ends_with("pa-changed.csv"),
        "{diff}"
    );
    let garbage = saved.join("error-page.html");
    std::fs::write(&garbage, "<html><body>Service Unavailable</body></html>").unwrap();
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "test", &feed_id, "--payload"])
        .arg(&garbage)
        .arg("--feeds")
        .arg(dir.path().join("pa.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // No broker at all: the cells are counted, the diff is left out.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = votewire_on(&stack, &pipeline)
        .env("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS", closed.to_string())
        .args(["feeds", "test", &feed_id, "--json", "--payload"])
        .arg(&changed_file)
        .arg("--feeds")
        .arg(dir.path().join("pa.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let offline: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        offline["cells"].as_u64(),
        Some(first.cells_total as u64),
        "{offline}"
    );
    assert!(offline["published_error"].is_string(), "{offline}");
    assert!(offline.get("changed").is_none(), "{offline}");
    assert_eq!(
        asked(),
        fetches_before,
        "a dry run on a saved payload never asks the source"
    );

    // Pause, then resume: stored, with the operator's name in the history.
    for (action, paused) in [("pause", true), ("resume", false)] {
        let out = votewire_on(&stack, &pipeline)
            .args(["feeds", action, &feed_id, "--by", "tester"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let row = pipeline.state.load(&feed_id).await.unwrap().unwrap();
        assert_eq!(row.paused, paused, "after {action}");
    }
    // The other actions, on the store directly.
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "unquarantine", &feed_id, "--local"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a healthy feed has no quarantine to end"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not quarantined"),
        "{out:?}"
    );
    let before = pipeline.state.load(&feed_id).await.unwrap().unwrap();
    assert_ne!(before.cursor, Default::default());
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "reset-cursor", &feed_id, "--by", "tester"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let after = pipeline.state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(after.cursor, Default::default());
    assert_eq!(after.source_seq, before.source_seq);
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "history", &feed_id])
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(
        history.contains("by operator:tester: cursor reset by an operator"),
        "{history}"
    );
    assert!(
        history.contains("-> paused by operator:tester")
            && history.contains("-> healthy by operator:tester"),
        "{history}"
    );
    let out = votewire_on(&stack, &pipeline)
        .args(["feeds", "list", "--feeds"])
        .arg(dir.path())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&feed_id) && l.contains("healthy") && l.contains("ingestor-a")),
        "{list}"
    );
}

/// The JSON Schemas under docs/schemas/ are what `votewire feeds schema
/// --write` generates from the types that read the files (a type changed
/// without regenerating them fails here), and the shipped feed and
/// mapping files validate against them with Python's jsonschema, an
/// implementation of its own (deploy/local/check_schemas.py, which also
/// makes sure the schemas refuse a misspelt field, an unknown source kind
/// and an unknown layout).
#[test]
fn the_published_schemas_are_generated_and_the_shipped_files_follow_them() {
    let root = votewire_tests::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let out = votewire()
        .args(["feeds", "schema", "--write"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "csv-mapping.schema.json",
            "feed-file.schema.json",
            "html-table-mapping.schema.json"
        ]
    );
    for name in &names {
        let committed = std::fs::read_to_string(root.join("docs/schemas").join(name))
            .unwrap_or_else(|e| panic!("docs/schemas/{name}: {e}"));
        let generated = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(
            committed == generated,
            "docs/schemas/{name} is stale: run `votewire feeds schema --write docs/schemas`"
        );
    }
    let printed = votewire().args(["feeds", "schema"]).output().unwrap();
    assert_eq!(
        String::from_utf8(printed.stdout).unwrap(),
        std::fs::read_to_string(dir.path().join("feed-file.schema.json")).unwrap()
    );

    let python = std::env::var("VOTEWIRE_PYTHON")
        .expect("VOTEWIRE_PYTHON: the stack's venv (deploy/local/stack up) holds jsonschema");
    let check = Command::new(python)
        .arg(root.join("deploy/local/check_schemas.py"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
