//! The live page: public, and its stream pushes each change.

use votewire_tests::Stack;

use crate::support::{a_contest_result, assert_problem, produce_results, start_api};

/// The live page's parts on a real `votewire api`: `/live`, its script and
/// `/live/contests` need no token (the operator calls still do), the JSON
/// revalidates with its ETag, and `/live/events` streams every contest
/// first, then the contest again when a new result lands on the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_is_public_and_its_stream_pushes_each_change() {
    use futures::StreamExt;
    use reqwest::Method;
    use votewire_schemas::UnitType;

    let stack = Stack::load();
    let pipeline = votewire_tests::pipeline::TestPipeline::start("live", 2).await;
    let mut state = a_contest_result("GA", [8_800, 3_900]);
    state.unit_type = UnitType::State;
    state.parent_unit_id = None;
    let results = [
        state.clone(),
        a_contest_result("Bacon", [3_800, 900]),
        a_contest_result("Appling", [5_000, 3_000]),
    ];
    produce_results(&pipeline, &results).await;
    let registry = tempfile::tempdir().unwrap();
    let api = start_api(&stack, &pipeline, registry.path(), &[]).await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();

    let page = client
        .get(format!("{}/live", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script src=\"/live/live.js\"></script>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let script = client
        .get(format!("{}/live/live.js", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 200);
    assert!(script.text().await.unwrap().contains("EventSource"));
    // The operator side still wants a token.
    assert_problem(
        &api.call(Method::GET, "/v1/results/2021-01-05-GA-runoff", None, None)
            .await,
        401,
    );

    // The JSON, once the view has read the topic.
    let path = "/live/contests?election=2021-01-05-GA-runoff";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let (headers, body) = loop {
        let r = api.call(Method::GET, path, None, None).await;
        assert_eq!(r.0, 200, "{}", r.2);
        // Units land on different partitions: wait for all three.
        let c = &r.2["contests"][0];
        if c["counties"].as_array().map(Vec::len) == Some(2) && c["state"].is_object() {
            break (r.1, r.2);
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.2);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let contest = &body["contests"][0];
    assert_eq!(contest["contest_id"], "us-senate-ga/special");
    assert_eq!(contest["state"]["unit_id"], "GA");
    assert_eq!(contest["state"]["choices"][1]["votes"], 3_900);
    assert_eq!(contest["state"]["precincts_reporting"], 3);
    let counties: Vec<&str> = contest["counties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["unit_name"].as_str().unwrap())
        .collect();
    assert_eq!(counties, ["Appling", "Bacon"], "by name");
    let etag = headers["etag"].to_str().unwrap().to_string();
    let again = client
        .get(format!("{}{path}", api.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);

    // The stream: the contest first, then again after a new result.
    let stream = client
        .get(format!(
            "{}/live/events?election=2021-01-05-GA-runoff",
            api.base
        ))
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut chunks = stream.bytes_stream();
    let mut buffered = String::new();
    let mut next_event = async || -> serde_json::Value {
        loop {
            if let Some(end) = buffered.find("\n\n") {
                let event: String = buffered.drain(..end + 2).collect();
                if !event.contains("event: contest") {
                    continue; // a keep-alive comment
                }
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("a data line");
                return serde_json::from_str(data).unwrap();
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), chunks.next())
                .await
                .expect("an event within 20 s")
                .expect("the stream stays open")
                .unwrap();
            buffered.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    let first = next_event().await;
    assert_eq!(first["state"]["choices"][1]["votes"], 3_900);
    let mut later = state.clone();
    later.choices[1].votes = 4_500;
    later.total_votes = 13_300;
    produce_results(&pipeline, std::slice::from_ref(&later)).await;
    let pushed = next_event().await;
    assert_eq!(pushed["contest_id"], "us-senate-ga/special");
    assert_eq!(pushed["state"]["choices"][1]["votes"], 4_500);
    assert_eq!(pushed["state"]["total_votes"], 13_300);
}
