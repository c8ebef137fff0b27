//! What several topics share: the binary, the API as a process with its
//! tokens, results on a fresh topic, problem answers, and stopping a
//! service cleanly.

use std::process::Command;

use votewire_tests::Stack;

pub fn votewire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_votewire"))
}

/// `votewire` with the stack's addresses and `pipeline`'s topics and tables.
pub fn votewire_on(stack: &Stack, pipeline: &votewire_tests::pipeline::TestPipeline) -> Command {
    let mut c = votewire();
    c.env(
        "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
        stack.var("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    .env(
        "VOTEWIRE_DYNAMODB_ENDPOINT",
        stack.var("VOTEWIRE_DYNAMODB_ENDPOINT"),
    )
    .env("AWS_ACCESS_KEY_ID", stack.var("AWS_ACCESS_KEY_ID"))
    .env("AWS_SECRET_ACCESS_KEY", stack.var("AWS_SECRET_ACCESS_KEY"))
    .env("VOTEWIRE_TABLE_PREFIX", &pipeline.store.table_prefix)
    .env("VOTEWIRE_TOPIC_VOTES", &pipeline.topics.votes)
    .env("VOTEWIRE_TOPIC_SNAPSHOTS", &pipeline.topics.snapshots)
    .env("VOTEWIRE_TOPIC_FEED_STATUS", &pipeline.topics.feed_status)
    .env("VOTEWIRE_TOPIC_DLQ", &pipeline.topics.dlq)
    .env("VOTEWIRE_TOPIC_ALERTS", &pipeline.topics.alerts)
    .env("VOTEWIRE_TOPIC_RESULTS", &pipeline.topics.results)
    .env("VOTEWIRE_TOPIC_RESULTS_TEST", &pipeline.topics.results_test);
    c
}

/// Sends `child` SIGINT, as an operator's Ctrl-C would.
pub fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("the process runs").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -INT {pid}");
}

/// Waits for a child's exit (with a deadline) and returns its status,
/// stdout and stderr.
pub async fn finish(
    child: tokio::process::Child,
    within: std::time::Duration,
) -> (std::process::ExitStatus, String, String) {
    // Both pipes are drained while waiting, so a chatty child never blocks.
    let out = tokio::time::timeout(within, child.wait_with_output())
        .await
        .expect("the process ends by itself")
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads a child's stderr to its end on a task, so the child never blocks
/// on a full pipe; the task returns all of it.
pub fn drain_stderr(child: &mut tokio::process::Child) -> tokio::task::JoinHandle<String> {
    use tokio::io::AsyncReadExt;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        String::from_utf8_lossy(&all).into_owned()
    })
}

pub fn one_http_feed(dir: &std::path::Path, file: &str, id: &str, url: &str) {
    std::fs::write(
        dir.join(file),
        format!(
            "[[feed]]\nid = \"{id}\"\nfamily = \"csv\"\nelection_id = \"it\"\n\
             [feed.source]\nkind = \"http\"\nurl = \"{url}\"\n\
             [feed.cadence]\ninterval = \"1s\"\njitter = \"0s\"\nstale_after = \"10m\"\n\
             [feed.mapping]\nfinal_newline = \"optional\"\n\n"
        ),
    )
    .unwrap();
}

/// Scrapes a Prometheus endpoint (refreshed every 2 s) until `done` holds
/// or 15 s pass; returns the last text.
pub async fn scrape_until(url: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = match reqwest::get(url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(), // not listening yet
        };
        if done(&text) || tokio::time::Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// `votewire api` running as a process.
pub struct ApiProcess {
    pub child: tokio::process::Child,
    pub base: String,
}

pub const READ_TOKEN: &str = "read-0123456789abcdefghijklmnop";
pub const ADMIN_TOKEN: &str = "admin-0123456789abcdefghijklmnop";

/// Starts `votewire api` on a free port with a read and an admin token,
/// on `registry`, and waits until it listens.
pub async fn start_api(
    stack: &Stack,
    pipeline: &votewire_tests::pipeline::TestPipeline,
    registry: &std::path::Path,
    extra: &[&str],
) -> ApiProcess {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::from(votewire_on(stack, pipeline))
        .args([
            "api",
            "--listen",
            "127.0.0.1:0",
            "--run-for",
            "120s",
            "--feeds",
        ])
        .arg(registry)
        .args(extra)
        .env(
            "VOTEWIRE_API_TOKENS",
            format!("newsroom read {READ_TOKEN}; ops admin {ADMIN_TOKEN}"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("votewire api exited before listening");
    })
    .await
    .expect("votewire api listens within 30 s");
    // Keep draining stderr so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    ApiProcess { child, base }
}

impl ApiProcess {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let mut req = client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{path}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, headers, json)
    }
}

/// Asserts an RFC 9457 problem with `status`.
pub fn assert_problem(got: &(u16, reqwest::header::HeaderMap, serde_json::Value), status: u16) {
    let (s, h, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(
        h.get("content-type").unwrap(),
        "application/problem+json",
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

/// The results topic's key of `r`, as the aggregator writes it.
pub fn result_key(r: &votewire_schemas::ContestResult) -> String {
    format!("{}/{}/{}", r.election_id, r.contest_id, r.unit_id)
}

/// Produces `results` to the pipeline's results topic, as the aggregator
/// writes them (Confluent-framed, keyed by election/contest/unit).
pub async fn produce_results(
    pipeline: &votewire_tests::pipeline::TestPipeline,
    results: &[votewire_schemas::ContestResult],
) {
    produce_results_to(pipeline, &pipeline.topics.results, results).await;
}

/// [`produce_results`] onto `topic` (the test results topic, say).
pub async fn produce_results_to(
    pipeline: &votewire_tests::pipeline::TestPipeline,
    topic: &str,
    results: &[votewire_schemas::ContestResult],
) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer =
        votewire_core::kafka::producer_config(&pipeline.kafka, "results-test")
            .create()
            .unwrap();
    let schema = &votewire_schemas::schemas().contest_result;
    for r in results {
        let bytes = votewire_schemas::codec::encode(schema, r).unwrap();
        producer
            .send(
                FutureRecord::to(topic).key(&result_key(r)).payload(&bytes),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

pub fn a_contest_result(unit: &str, votes: [i64; 2]) -> votewire_schemas::ContestResult {
    use votewire_schemas::{ChoiceResult, ContestResult, Contribution, FeedMode, UnitType};
    let total = votes[0] + votes[1];
    let choice = |id: &str, name: &str, v: i64| ChoiceResult {
        choice_id: id.into(),
        choice_name: name.into(),
        party: None,
        votes: v,
        percent: 100.0 * v as f64 / total as f64,
        reported: Some(v),
        sum_of_children: None,
        winner: None,
        by_source: Vec::new(),
    };
    ContestResult {
        election_id: "2021-01-05-GA-runoff".into(),
        contest_id: "us-senate-ga/special".into(),
        contest_name: "US Senate (Special)".into(),
        unit_id: unit.into(),
        unit_name: unit.into(),
        unit_type: UnitType::County,
        parent_unit_id: Some("GA".into()),
        mode: FeedMode::Live,
        official_feed_id: "clarity:GA:107556".into(),
        choices: vec![
            choice("1", "Kelly Loeffler", votes[0]),
            choice("2", "Raphael Warnock", votes[1]),
        ],
        total_votes: total,
        leader_choice_id: Some(if votes[0] >= votes[1] { "1" } else { "2" }.into()),
        margin_votes: Some((votes[0] - votes[1]).abs()),
        margin_pct: None,
        aggregates_disagree: false,
        precincts_reporting: Some(3),
        precincts_total: Some(4),
        pct_expected_vote: None,
        last_updated: 1_609_891_000_000,
        contributors: vec![Contribution {
            feed_id: "clarity:GA:107556".into(),
            source_seq: 4,
            source_version: Some("273739".into()),
        }],
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
    }
}
