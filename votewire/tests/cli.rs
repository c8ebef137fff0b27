//! The `votewire` binary: unbuilt subcommands say so and fail; the smoke
//! pipeline runs end to end against the real local stack.

use std::process::Command;

use votewire_tests::{Stack, fixture};

fn votewire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_votewire"))
}

#[test]
fn unbuilt_subcommands_say_so_and_exit_non_zero() {
    for sub in [
        &["aggregate"][..],
        &["api"],
        &["feeds", "test", "clarity:GA:107556"],
        &["feeds", "list"],
        &["tail"],
        &["demo"],
    ] {
        let out = votewire().args(sub).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(69),
            "votewire {sub:?} must not pretend to work"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not yet implemented"), "{sub:?}: {err}");
    }
}

/// `votewire ingest` as a real process: it leases the feed, polls the
/// Clarity site served by a real HTTP server, publishes each new version's
/// cells to the real broker, and releases its lease when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_polls_a_clarity_site_and_publishes_each_new_version() {
    use votewire_tests::http::{Canned, FixtureServer};
    let stack = Stack::load();
    stack.kafka();
    let (store_cfg, dynamo) = stack.dynamodb().await;
    let server = FixtureServer::start().await;
    let series = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
    let v0 = std::fs::read(fixture(&format!(
        "{series}/000_20210105T224741Z_v273729/ALL.json"
    )))
    .unwrap();
    let v1 = std::fs::read(fixture(&format!(
        "{series}/002_20210106T001230Z_v273739/ALL.json"
    )))
    .unwrap();
    server.set("/GA/107556/current_ver.txt", Canned::ok("273729"));
    server.set("/GA/107556/273729/json/ALL.json", Canned::ok(v0));

    let dir = tempfile::tempdir().unwrap();
    let feed_id = votewire_tests::unique("clarity:GA:107556");
    let companion =
        votewire_tests::workspace_root().join("deploy/demo/clarity-GA-107556-companion.json");
    std::fs::write(
        dir.path().join("ga.toml"),
        format!(
            r#"
[[feed]]
id = "{feed_id}"
family = "clarity-json"
election_id = "2021-01-05-GA-runoff"
companion = "{}"
[feed.source]
kind = "clarity"
base_url = "{}"
file = "json/ALL.json"
[feed.cadence]
interval = "1s"
jitter = "0s"
stale_after = "10m"
"#,
            companion.display(),
            server.url("/GA/107556")
        ),
    )
    .unwrap();
    let base = votewire_tests::unique("ingest");
    let votes = format!("{base}.votes");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_votewire"))
        .args([
            "ingest",
            "--lease-ttl",
            "3s",
            "--run-for",
            "8s",
            "--instance",
            "it-1",
            "--feeds",
        ])
        .arg(dir.path())
        .env(
            "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
            stack.var("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"),
        )
        .env(
            "VOTEWIRE_DYNAMODB_ENDPOINT",
            stack.var("VOTEWIRE_DYNAMODB_ENDPOINT"),
        )
        .env("AWS_ACCESS_KEY_ID", stack.var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", stack.var("AWS_SECRET_ACCESS_KEY"))
        .env("VOTEWIRE_TABLE_PREFIX", &store_cfg.table_prefix)
        .env("VOTEWIRE_TOPIC_VOTES", &votes)
        .env("VOTEWIRE_TOPIC_SNAPSHOTS", format!("{base}.snapshots"))
        .env("VOTEWIRE_TOPIC_RESULTS", format!("{base}.results"))
        .env("VOTEWIRE_TOPIC_FEED_STATUS", format!("{base}.status"))
        .env("VOTEWIRE_TOPIC_DLQ", format!("{base}.dlq"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A new version after the first one was taken in.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    server.set("/GA/107556/current_ver.txt", Canned::ok("273739"));
    server.set("/GA/107556/273739/json/ALL.json", Canned::ok(v1));
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let status = child.wait().await.unwrap();
        let mut stdout = String::new();
        let mut stderr = String::new();
        use tokio::io::AsyncReadExt;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        (status, stdout, stderr)
    })
    .await
    .expect("ingest stops by itself after --run-for");
    let (status, stdout, stderr) = out;
    assert!(status.success(), "{stderr}");
    let published: Vec<&str> = stdout.lines().filter(|l| l.starts_with("feed=")).collect();
    assert_eq!(
        published.len(),
        2,
        "two versions, two payloads:\n{stdout}\n{stderr}"
    );
    assert!(
        published[0].contains("seq=1") && published[1].contains("seq=2"),
        "{stdout}"
    );
    assert!(stderr.contains("1 lease(s) released"), "{stderr}");
    // Only Clarity polls reached the server; versioned files once per version
    // plus the periodic revalidation.
    let seen = server.seen();
    assert!(
        seen.iter()
            .any(|(p, _)| p == "/GA/107556/273739/json/ALL.json")
    );
    assert!(seen.iter().all(|(p, _)| p.starts_with("/GA/107556/")));
    // The lease was released: another instance could take it right away.
    let state = votewire_ingestors::state::DynamoFeedState::new(dynamo, &store_cfg);
    let row = state.load(&feed_id).await.unwrap().unwrap();
    assert_eq!(row.source_seq, 2);
    assert!(
        row.lease.as_ref().is_none_or(|l| l.expires_ms <= 0),
        "{:?}",
        row.lease
    );
}

#[test]
fn config_env_lists_every_override() {
    let out = votewire().args(["config", "env"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for o in votewire_core::config::ENV_OVERRIDES {
        assert!(text.contains(o.var), "{} missing from:\n{text}", o.var);
    }
}

#[test]
fn smoke_fetches_publishes_and_reads_back_a_fixture() {
    let stack = Stack::load();
    stack.kafka();
    let path = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/135_20210116T000509Z_v275235/ALL.json",
    );
    let out = votewire()
        .args(["smoke", "--fixture"])
        .arg(&path)
        .env(
            "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
            stack.var("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        stdout.contains(&format!("fetched  {size} bytes")),
        "{stdout}"
    );
    assert!(stdout.contains("smoke pipeline OK"), "{stdout}");
}

fn transform(args: &[&str]) -> std::process::Output {
    votewire().arg("transform").args(args).output().unwrap()
}

#[test]
fn transform_prints_one_json_object_per_cell_and_a_summary_line() {
    let path = fixture("clarity_enr/elex-clarity/ga_atkinson_precincts_11-3.xml");
    let out = transform(&["--format", "clarity-xml", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The file has 1,340 count attributes: VoteType aggregates plus leaves.
    let xml = std::fs::read_to_string(&path).unwrap();
    let counts = xml.matches(" votes=\"").count();
    assert_eq!(lines.len(), counts);
    for key in [
        "contest_source_id",
        "contest_name",
        "choice_source_id",
        "choice_name",
        "ru_source_id",
        "ru_name",
        "ru_type",
        "vote_type",
        "vote_type_raw",
        "votes",
    ] {
        assert!(
            lines.iter().all(|l| !l[key].is_null()),
            "{key} present on every line"
        );
    }
    let first = &lines[0];
    assert_eq!(first["contest_source_id"], "1");
    assert_eq!(first["ru_source_id"], "Atkinson");
    assert_eq!(first["vote_type_raw"], "Undervotes");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one summary line: {stderr}");
    assert!(stderr.starts_with(&format!("{counts} cells")), "{stderr}");
}

#[test]
fn transform_exits_2_with_the_typed_error_on_a_rejected_payload() {
    let html = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/001_20210106T000831Z_v273739/ALL.json",
    );
    let out = transform(&[
        "--format",
        "clarity-json",
        "--feed-id",
        "clarity:GA:107556",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no cells from a rejected payload");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("clarity-json")
            && stderr.contains("clarity:GA:107556")
            && stderr.contains("not_this_format")
            && stderr.contains("byte 0"),
        "{stderr}"
    );
    let unknown = transform(&["--format", "no-such-family", html.to_str().unwrap()]);
    assert_eq!(unknown.status.code(), Some(64));
}

#[test]
fn transform_reads_mappings_and_companions_from_files() {
    let root = votewire_tests::workspace_root();
    let page = fixture("sos_html/rc-2014_general_cd1.html");
    let out = transform(&[
        "--format",
        "html-table",
        "--mapping",
        root.join("deploy/feeds/mappings/txsos-race-by-county.toml")
            .to_str()
            .unwrap(),
        page.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("\"votes\":114925")
    );
    let all = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/135_20210116T000509Z_v275235/ALL.json",
    );
    let out = transform(&[
        "--format",
        "clarity-json",
        "--companion",
        root.join("deploy/demo/clarity-GA-107556-companion.json")
            .to_str()
            .unwrap(),
        all.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("\"choice_name\":\"Jon Ossoff (Dem)\""),
        "{}",
        &stdout[..300]
    );
}

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
}
