//! The operator API: feeds, actions and results; tokens; slow and greedy
//! clients; conformance to its OpenAPI document under schemathesis.

use votewire_tests::Stack;

use crate::support::{
    ADMIN_TOKEN, READ_TOKEN, a_contest_result, assert_problem, one_http_feed, produce_results,
    produce_results_to, scrape_until, start_api, votewire,
};

/// The `errors` a problem detail lists (every validation problem).
fn problem_errors(got: &(u16, reqwest::header::HeaderMap, serde_json::Value)) -> Vec<&str> {
    got.2["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a problem with errors: {}", got.2))
        .iter()
        .map(|e| e.as_str().expect("each error is a string"))
        .collect()
}

/// The operator API as a process on the real stack: tokens and scopes
/// (401 / 403), problem details, adding, replacing and deleting a feed in
/// the registry directory with validation, the operator actions recorded
/// in the history as the token's name, results read back from the results
/// topic, the OpenAPI document, body and rate limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_edits_feeds_records_actions_and_serves_results() {
    use reqwest::Method;
    use serde_json::json;

    let stack = Stack::load();
    let pipeline = votewire_tests::pipeline::TestPipeline::start("api", 2).await;
    // Two results on the results topic, as the aggregator writes them.
    let results = [
        a_contest_result("Appling", [5_000, 3_000]),
        a_contest_result("Bacon", [3_800, 900]),
    ];
    produce_results(&pipeline, &results).await;
    // And a publisher's test data's result for one of the same units, on
    // the test results topic (as the aggregator writes cells marked test).
    let mut test_result = a_contest_result("Appling", [11, 7]);
    test_result.mode = votewire_schemas::FeedMode::Test;
    produce_results_to(
        &pipeline,
        &pipeline.topics.results_test,
        std::slice::from_ref(&test_result),
    )
    .await;
    let registry = tempfile::tempdir().unwrap();
    let api = start_api(&stack, &pipeline, registry.path(), &[]).await;
    let (read, admin) = (Some(READ_TOKEN), Some(ADMIN_TOKEN));

    // Probes need no token; readiness waits for the results topic.
    assert_eq!(api.call(Method::GET, "/healthz", None, None).await.0, 200);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = api.call(Method::GET, "/readyz", None, None).await;
        if r.0 == 200 {
            break;
        }
        assert_problem(&r, 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {}",
            r.2
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // No token, a wrong token: 401 with a Bearer challenge.
    let r = api.call(Method::GET, "/v1/feeds", None, None).await;
    assert_problem(&r, 401);
    assert!(r.1.get("www-authenticate").is_some());
    assert_problem(
        &api.call(
            Method::GET,
            "/v1/feeds",
            Some("not-a-token-at-all-000000"),
            None,
        )
        .await,
        401,
    );
    let r = api.call(Method::GET, "/v1/feeds", read, None).await;
    assert_eq!((r.0, r.2["feeds"].as_array().unwrap().len()), (200, 0));

    // Adding a feed: read scope 403; a bad feed 422 naming the field; then 201.
    let feed_id = votewire_tests::unique("csv:api");
    let feed = json!({
        "id": feed_id,
        "family": "csv",
        "election_id": "it",
        "source": {"kind": "http", "url": "http://127.0.0.1:9/pa.csv"},
        "cadence": {"interval": "30s", "jitter": "0s", "stale_after": "10m"},
    });
    assert_problem(
        &api.call(Method::POST, "/v1/feeds", read, Some(feed.clone()))
            .await,
        403,
    );
    let mut bad = feed.clone();
    bad["family"] = json!("no-such-family");
    let r = api.call(Method::POST, "/v1/feeds", admin, Some(bad)).await;
    assert_problem(&r, 422);
    let errors = problem_errors(&r);
    assert!(
        errors.iter().any(|e| e.contains("family")),
        "the problem names the field: {errors:?}"
    );
    assert_eq!(
        std::fs::read_dir(registry.path()).unwrap().count(),
        0,
        "nothing was written"
    );
    // A body names its files by absolute path: it has no folder of its own.
    let mut relative = feed.clone();
    relative["companion"] = json!("deploy/demo/clarity-GA-107556-companion.json");
    let r = api
        .call(Method::POST, "/v1/feeds/validate", read, Some(relative))
        .await;
    assert_problem(&r, 422);
    assert!(
        problem_errors(&r)
            .iter()
            .any(|e| e.starts_with("companion:")),
        "{}",
        r.2
    );
    // Validating writes nothing, for any token: the same 422 for the bad
    // feed, 200 for the good one (not yet in the registry).
    let mut bad = feed.clone();
    bad["family"] = json!("no-such-family");
    let r = api
        .call(Method::POST, "/v1/feeds/validate", read, Some(bad))
        .await;
    assert_problem(&r, 422);
    assert!(
        problem_errors(&r).iter().any(|e| e.contains("family")),
        "{}",
        r.2
    );
    let r = api
        .call(Method::POST, "/v1/feeds/validate", read, Some(feed.clone()))
        .await;
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(
        (r.2["id"].as_str(), r.2["exists"].as_bool()),
        (Some(feed_id.as_str()), Some(false))
    );
    assert_eq!(r.2["config"]["source"]["url"], "http://127.0.0.1:9/pa.csv");
    assert_eq!(
        std::fs::read_dir(registry.path()).unwrap().count(),
        0,
        "validation wrote nothing"
    );
    // The families a feed may name: every one of the transformers' list.
    let r = api.call(Method::GET, "/v1/families", read, None).await;
    assert_eq!(r.0, 200, "{}", r.2);
    let names: Vec<&str> =
        r.2.as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
    let known: Vec<&str> = votewire_transformers::FAMILIES
        .iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, known);
    let html =
        r.2.as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "html-table")
            .unwrap();
    assert_eq!(html["needs_mapping"], true, "{html}");
    // Its mapping's fields, as docs/schemas/ publishes them (the file
    // an editor reads), and none for a family without a typed mapping.
    let published: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            votewire_tests::workspace_root().join("docs/schemas/html-table-mapping.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        html["mapping_schema"]["properties"], published["properties"],
        "{html}"
    );
    assert!(
        html["mapping_schema"]["properties"]["layout"].is_object(),
        "{html}"
    );
    let clarity =
        r.2.as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "clarity-xml")
            .unwrap();
    assert!(clarity["mapping_schema"].is_null(), "{clarity}");
    assert_problem(
        &api.call(Method::GET, "/v1/families", None, None).await,
        401,
    );

    let r = api
        .call(Method::POST, "/v1/feeds", admin, Some(feed.clone()))
        .await;
    assert_eq!(r.0, 201, "{}", r.2);
    let path = format!("/v1/feeds/{}", feed_id.replace('/', "%2F"));
    assert_eq!(r.1.get("location").unwrap().to_str().unwrap(), path);
    assert_eq!(r.2["id"], feed_id.as_str());
    assert_eq!(r.2["health"], "never run");
    assert_eq!(r.2["config"]["source"]["url"], "http://127.0.0.1:9/pa.csv");
    // The registry file is what `votewire feeds validate` accepts.
    let out = votewire()
        .args(["feeds", "validate"])
        .arg(registry.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_problem(
        &api.call(Method::POST, "/v1/feeds", admin, Some(feed.clone()))
            .await,
        409,
    );
    let r = api
        .call(
            Method::POST,
            "/v1/feeds/validate",
            admin,
            Some(feed.clone()),
        )
        .await;
    assert_eq!((r.0, r.2["exists"].as_bool()), (200, Some(true)), "{}", r.2);

    // Operator actions, recorded as the token's name.
    let r = api
        .call(Method::POST, &format!("{path}/pause"), admin, None)
        .await;
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(
        (r.2["health_before"].as_str(), r.2["health_after"].as_str()),
        (Some("healthy"), Some("paused"))
    );
    assert_problem(
        &api.call(Method::POST, &format!("{path}/poll-now"), admin, None)
            .await,
        409,
    );
    assert_problem(
        &api.call(Method::POST, &format!("{path}/pause"), read, None)
            .await,
        403,
    );
    assert_eq!(
        api.call(Method::POST, &format!("{path}/resume"), admin, None)
            .await
            .0,
        200
    );
    assert_problem(
        &api.call(Method::POST, &format!("{path}/unquarantine"), admin, None)
            .await,
        409,
    );
    for action in ["poll-now", "reset-cursor"] {
        let r = api
            .call(Method::POST, &format!("{path}/{action}"), admin, None)
            .await;
        assert_eq!(r.0, 200, "{action}: {}", r.2);
    }
    let r = api
        .call(Method::GET, &format!("{path}/history?limit=3"), read, None)
        .await;
    assert_eq!(r.0, 200, "{}", r.2);
    let events = r.2["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["actor"] == "api:ops"), "{events:?}");
    assert_eq!(
        events[0]["reason"],
        votewire_ingestors::state::OperatorAction::ResetCursor.reason()
    );
    let next = r.2["next_page_token"].as_str().expect("more pages");
    let r = api
        .call(
            Method::GET,
            &format!(
                "{path}/history?limit=10&page_token={}",
                next.replace('#', "%23")
            ),
            read,
            None,
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.2);
    let reasons: Vec<&str> = r.2["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["paused by an operator", "added through the API"],
        "the first page held reset-cursor, poll-now and resume"
    );
    assert_problem(
        &api.call(Method::GET, &format!("{path}/history?limit=0"), read, None)
            .await,
        400,
    );

    // The CLI through the API: the same feed, the same rules.
    let cli = |token: &str, args: &[&str]| {
        let mut c = votewire();
        c.args(args)
            .args(["--api", &api.base])
            .env("VOTEWIRE_API_TOKEN", token)
            .env_remove("VOTEWIRE_FEEDS");
        c.output().unwrap()
    };
    let out = cli(READ_TOKEN, &["feeds", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["feeds"][0]["id"], feed_id.as_str());
    let out = cli(READ_TOKEN, &["feeds", "pause", &feed_id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("403") && err.contains("needs an admin token"),
        "{err}"
    );
    let out = cli(ADMIN_TOKEN, &["feeds", "poll-now", &feed_id, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (done["action"].as_str(), done["actor"].as_str()),
        (Some("poll-now"), Some("api:ops"))
    );
    let out = cli(READ_TOKEN, &["feeds", "show", &feed_id]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("defined at") && shown.contains("health          healthy"),
        "{shown}"
    );
    let out = cli(READ_TOKEN, &["feeds", "history", &feed_id, "--json"]);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(events[0]["reason"], "poll requested by an operator");
    assert_eq!(
        events.as_array().unwrap().len(),
        6,
        "every page was read: {events}"
    );
    let extra_dir = tempfile::tempdir().unwrap();
    let extra_id = votewire_tests::unique("csv:added");
    one_http_feed(
        extra_dir.path(),
        "extra.toml",
        &extra_id,
        "http://127.0.0.1:9/x.csv",
    );
    let out = cli(
        ADMIN_TOKEN,
        &[
            "feeds",
            "add",
            extra_dir.path().join("extra.toml").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("added {extra_id}")));
    let out = cli(
        ADMIN_TOKEN,
        &[
            "feeds",
            "add",
            extra_dir.path().join("extra.toml").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "adding it twice is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409"),
        "{out:?}"
    );
    let extra_path = format!("/v1/feeds/{}", extra_id.replace('/', "%2F"));
    assert_eq!(
        api.call(Method::DELETE, &extra_path, admin, None).await.0,
        204
    );
    let out = cli("not-a-token-000000000000000", &["feeds", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("VOTEWIRE_API_TOKEN"),
        "{out:?}"
    );

    // Replacing and deleting.
    let mut changed = feed.clone();
    changed["cadence"]["interval"] = json!("5s");
    let r = api.call(Method::PUT, &path, admin, Some(changed)).await;
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(r.2["config"]["cadence"]["interval"], "5s");
    // A relative path in a PUT means what it means in the feed's own file.
    let names = registry
        .path()
        .parent()
        .unwrap()
        .join(format!("{}.json", votewire_tests::unique("names")));
    std::fs::write(&names, "{}").unwrap();
    let mut with_companion = feed.clone();
    with_companion["companion"] = json!(format!(
        "../{}",
        names.file_name().unwrap().to_str().unwrap()
    ));
    let r = api
        .call(Method::PUT, &path, admin, Some(with_companion))
        .await;
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(
        std::path::Path::new(r.2["config"]["companion"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        names.canonicalize().unwrap(),
        "{}",
        r.2
    );
    let mut renamed = feed.clone();
    renamed["id"] = json!("csv:other");
    assert_problem(
        &api.call(Method::PUT, &path, admin, Some(renamed)).await,
        422,
    );
    assert_eq!(api.call(Method::DELETE, &path, admin, None).await.0, 204);
    assert_problem(&api.call(Method::GET, &path, read, None).await, 404);
    assert_eq!(std::fs::read_dir(registry.path()).unwrap().count(), 0);
    std::fs::remove_file(&names).unwrap();

    // Results, read back from the results topic.
    let r = api
        .call(
            Method::GET,
            "/v1/results/2021-01-05-GA-runoff/us-senate-ga%2Fspecial",
            read,
            None,
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(
        r.1.get("cache-control").unwrap(),
        "public, max-age=1, stale-while-revalidate=10"
    );
    // A CDN revalidating with the ETag gets a bodiless 304.
    let etag = r.1.get("etag").unwrap().to_str().unwrap().to_string();
    let revalidated = reqwest::Client::new()
        .get(format!(
            "{}/v1/results/2021-01-05-GA-runoff/us-senate-ga%2Fspecial",
            api.base
        ))
        .bearer_auth(READ_TOKEN)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status().as_u16(), 304);
    assert_eq!(revalidated.headers().get("etag").unwrap(), etag.as_str());
    assert!(revalidated.bytes().await.unwrap().is_empty());
    // A new count for one county: a new version, so a new ETag and a 200.
    let mut later = results[1].clone();
    later.choices[0].votes += 10;
    later.total_votes += 10;
    produce_results(&pipeline, std::slice::from_ref(&later)).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = reqwest::Client::new()
            .get(format!(
                "{}/v1/results/2021-01-05-GA-runoff/us-senate-ga%2Fspecial",
                api.base
            ))
            .bearer_auth(READ_TOKEN)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            assert_ne!(r.headers().get("etag").unwrap(), etag.as_str());
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(
                body["results"]
                    .as_array()
                    .unwrap()
                    .contains(&serde_json::to_value(&later).unwrap()),
                "{body}"
            );
            break;
        }
        assert_eq!(r.status().as_u16(), 304);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let got = r.2["results"].as_array().unwrap();
    let want: Vec<serde_json::Value> = results
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(got, &want);
    let r = api
        .call(Method::GET, "/v1/results/2021-01-05-GA-runoff", read, None)
        .await;
    assert_eq!(r.2["contest_ids"], json!(["us-senate-ga/special"]));
    // Test data only for a reader who asks for it, and then alone.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let r = loop {
        let r = api
            .call(
                Method::GET,
                "/v1/results/2021-01-05-GA-runoff/us-senate-ga%2Fspecial?mode=test",
                read,
                None,
            )
            .await;
        if r.0 == 200 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(
        r.2["results"],
        json!([serde_json::to_value(&test_result).unwrap()])
    );
    assert_eq!(r.2["mode"], "test", "the answer names its mode");
    let r = api
        .call(
            Method::GET,
            "/v1/results/2021-01-05-GA-runoff?mode=test",
            read,
            None,
        )
        .await;
    assert_eq!(r.2["contest_ids"], json!(["us-senate-ga/special"]));
    let r = api
        .call(
            Method::GET,
            "/v1/results/2021-01-05-GA-runoff/us-senate-ga%2Fspecial?mode=live",
            read,
            None,
        )
        .await;
    assert_eq!(
        r.2["results"],
        json!([
            serde_json::to_value(&results[0]).unwrap(),
            serde_json::to_value(&later).unwrap()
        ]),
        "live: the results topic's, as without a mode"
    );
    assert_problem(
        &api.call(
            Method::GET,
            "/v1/results/2021-01-05-GA-runoff?mode=rehearsal",
            read,
            None,
        )
        .await,
        400,
    );
    assert_problem(
        &api.call(
            Method::GET,
            "/v1/results/2021-01-05-GA-runoff/nope",
            read,
            None,
        )
        .await,
        404,
    );

    // The OpenAPI document, unknown routes, wrong methods, big bodies.
    let r = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.0, 200);
    for p in [
        "/v1/feeds",
        "/v1/feeds/{id}",
        "/v1/feeds/{id}/history",
        "/v1/feeds/{id}/reset-cursor",
        "/v1/results/{election}/{contest}",
        "/readyz",
    ] {
        assert!(r.2["paths"][p].is_object(), "{p} documented");
    }
    assert_problem(&api.call(Method::GET, "/v2/nothing", read, None).await, 404);
    assert_problem(
        &api.call(Method::PATCH, "/v1/feeds", admin, None).await,
        405,
    );
    let huge = json!({"id": "x".repeat(100_000)});
    assert_problem(
        &api.call(Method::POST, "/v1/feeds", admin, Some(huge)).await,
        413,
    );

    // Prometheus scrapes the API without a token; the calls above are
    // counted by route and status (the text is refreshed every 2 s).
    let listed = r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/v1/feeds"} "#;
    let text = scrape_until(&format!("{}/metrics", api.base), |t| {
        t.lines().any(|l| l.starts_with(listed))
    })
    .await;
    let count: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(listed)?.parse().ok())
        .unwrap_or_else(|| panic!("GET /v1/feeds counted:\n{text}"));
    assert!(count >= 1, "{text}");

    // A tight rate limit answers 429 with Retry-After.
    let tight = start_api(&stack, &pipeline, registry.path(), &["--rate-limit", "1"]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = tight.call(Method::GET, "/healthz", None, None).await;
        if r.0 == 429 {
            assert_problem(&r, 429);
            assert_eq!(r.1.get("retry-after").unwrap(), "1");
        }
        statuses.push(r.0);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    drop((api.child, tight.child));
}

#[test]
fn the_api_refuses_to_start_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = votewire()
        .args(["api", "--listen", "127.0.0.1:0", "--feeds"])
        .arg(dir.path())
        .env_remove("VOTEWIRE_API_TOKENS")
        .env_remove("VOTEWIRE_API_TOKENS_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no API tokens"), "{err}");
}

/// One client cannot hold the API: a connection that never finishes its
/// headers (slowloris) is closed, and one address holds at most 16 live
/// streams while another address still gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_greedy_client_cannot_hold_the_api() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Stack::load();
    let pipeline = votewire_tests::pipeline::TestPipeline::start("apilimits", 2).await;
    let registry = tempfile::tempdir().unwrap();
    let api = start_api(&stack, &pipeline, registry.path(), &[]).await;
    let addr = api.base.trim_start_matches("http://").to_string();

    // Headers begun and never finished.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(40), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a connection that never sent its headers is still open"
    );

    // Live streams: 16 per client, then 429; the 127.0.0.2 client (same
    // machine, another address) still gets one.
    let client = reqwest::Client::new();
    let url = format!("{}/live/events", api.base);
    let mut open = Vec::new();
    for _ in 0..16 {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    assert_eq!(other.get(&url).send().await.unwrap().status(), 200);
    drop(open);
    drop(api.child);
}

/// The API answers every request schemathesis generates from its own
/// OpenAPI document (coverage, fuzzing and stateful phases; every check
/// but positive-data acceptance, because a schema cannot express feed
/// validation: a schema-valid feed may still be refused with a 422 that
/// names its problems) with a documented status, content type and body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_conforms_to_its_openapi_document_under_schemathesis() {
    let stack = Stack::load();
    let pipeline = votewire_tests::pipeline::TestPipeline::start("contract", 1).await;
    let registry = tempfile::tempdir().unwrap();
    one_http_feed(
        registry.path(),
        "contract.toml",
        "csv:contract",
        "http://127.0.0.1:9/contract.csv",
    );
    let api = start_api(
        &stack,
        &pipeline,
        registry.path(),
        &["--rate-limit", "100000"],
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("schemathesis.toml"),
        "[parameters]\n\"path.id\" = \"csv:contract\"\n\"path.election\" = \"it\"\n",
    )
    .unwrap();
    let python = std::path::PathBuf::from(stack.var("VOTEWIRE_PYTHON"));
    let schemathesis = python.with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: deploy/local/stack up installs it",
        schemathesis.display()
    );
    let out = tokio::process::Command::new(&schemathesis)
        .current_dir(work.path())
        .args(["run", &format!("{}/openapi.json", api.base)])
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "25", "--no-color"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "751 generated, 751 passed, 4 skipped"
    let generated: u64 = report
        .lines()
        .find(|l| l.contains(" generated,"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(generated >= 100, "schemathesis ran its cases:\n{report}");
    // "Selected: 16/16" and "Tested: 16": every documented operation ran.
    let (selected, total) = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|v| v.split_once('/'))
        .map(|(a, b)| (a.to_string(), b.trim().to_string()))
        .unwrap_or_else(|| panic!("no Selected line:\n{report}"));
    assert_eq!(selected, total, "every operation selected:\n{report}");
    assert!(
        report.contains(&format!("Tested: {total}")),
        "every operation tested:\n{report}"
    );
    drop(api.child);
}
