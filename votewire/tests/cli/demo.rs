//! `votewire demo --check`: the runoff night replayed and checked.

use std::process::Command;

use votewire_tests::Stack;

use crate::support::votewire;

/// `votewire demo --check`: the GA 2021 runoff night replayed through a
/// real ingestor process and a real aggregator process (a replay server
/// plays the Clarity and AP captures on a compressed clock, HTML error
/// snapshots included; the OpenElections CSV lands on the real SFTP
/// server; a Texas SOS page is scraped). It exits 0 only when the final
/// results equal its independent computation; this test reads the final
/// snapshots itself and checks the contract line against them.
///
/// Meanwhile the live page (`votewire api` started by the demo) is open
/// in Debian's headless Chromium, driven by playwright-core
/// (tests/browser/live.cjs): its numbers change without a reload, end
/// equal to the final results, and a race's county table, picked from the
/// keyboard, equals the CSV's county sums. The screenshot is kept at
/// target/browser/live-page.png.
#[test]
fn the_demo_replays_the_runoff_night_and_checks_the_final_results() {
    use std::process::Stdio;
    use std::time::Duration;
    let stack = Stack::load();
    stack.kafka();
    let root = votewire_tests::workspace_root();
    let modules = std::env::var("VOTEWIRE_BROWSER_MODULES").expect(
        "VOTEWIRE_BROWSER_MODULES: deploy/local/stack up installs playwright-core and names it in stack.env",
    );
    assert!(
        std::path::Path::new(&modules)
            .join("playwright-core")
            .is_dir(),
        "playwright-core is not installed under {modules}: run deploy/local/stack up"
    );
    let mut demo = votewire()
        .current_dir(&root)
        .args([
            "demo",
            "--check",
            "--seconds",
            "20",
            "--live-listen",
            "127.0.0.1:0",
            "--fixtures",
        ])
        .arg(votewire_tests::fixture("SOURCES.md").parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stderr, url_rx) = votewire_tests::read_lines(demo.stderr.take().unwrap(), |line| {
        line.split("live results at ")
            .nth(1)
            .map(|url| url.trim().to_string())
    });
    let (stdout, _) = votewire_tests::read_lines(demo.stdout.take().unwrap(), |_| None::<()>);
    let url = url_rx
        .recv_timeout(Duration::from_secs(180))
        .expect("the demo names its live page on stderr");
    let screenshot = root.join("target/browser/live-page.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let mut browser = Command::new("node")
        .arg(root.join("tests/browser/live.cjs"))
        .arg(&url)
        .arg(&screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (the machine's Node.js) runs the browser script");
    let status = demo.wait().unwrap();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    drop(browser.stdin.take()); // the replay is over: the script wraps up
    let browser = browser.wait_with_output().unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        browser.status.success(),
        "the browser script failed: {}",
        String::from_utf8_lossy(&browser.stderr)
    );

    let contract: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a last line")).unwrap();
    let races = contract["races"].as_array().unwrap();
    assert_eq!(
        races.len(),
        9,
        "3 Clarity contests, 2 AP races, 3 CSV contests and the Texas page's race: {contract}"
    );
    // AP's final statewide summary, read here from the capture.
    let ap: serde_json::Value = serde_json::from_slice(&votewire_tests::fixture_bytes(
        "ap_elections_api/ap_interactives_live_GA_2021-01-05/573_20210112T055132Z/GA.json",
    ))
    .unwrap();
    for race in ap["results"].as_array().unwrap() {
        let id = race["raceID"].as_str().unwrap();
        let got = races
            .iter()
            .find(|r| r["source_feed_id"] == "ap:GA:2021-01-05" && r["contest_source_id"] == id)
            .unwrap_or_else(|| panic!("{id} in {contract}"));
        for c in race["summary"]["results"].as_array().unwrap() {
            let choice = got["choices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["choice_source_id"] == c["candidateID"])
                .unwrap();
            assert_eq!(choice["votes"], c["voteCount"], "{id}");
        }
    }
    // Clarity's final snapshot, counties summed here.
    let clarity: serde_json::Value = serde_json::from_slice(&votewire_tests::fixture_bytes(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/136_20210119T004017Z_v275237/ALL.json",
    ))
    .unwrap();
    let mut warnock = 0;
    for area in clarity["Contests"].as_array().unwrap() {
        if area["A"] == "-1" {
            continue; // the statewide row: not a county
        }
        let i = area["C"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == "10100")
            .unwrap();
        warnock += area["V"][i][1].as_i64().unwrap();
    }
    let special = races
        .iter()
        .find(|r| r["source_feed_id"] == "clarity:GA:107556" && r["contest_source_id"] == "10100")
        .unwrap();
    assert_eq!(special["choices"][1]["votes"], warnock);
    assert_eq!(
        special["choices"][1]["choice_name"],
        "Raphael Warnock (Dem)"
    );
    // The Texas page's ALL COUNTIES row, as printed in the fixture.
    let texas = races
        .iter()
        .find(|r| r["source_feed_id"] == "html:txsos:2014-senate")
        .unwrap_or_else(|| panic!("the Texas race in {contract}"));
    assert_eq!(texas["contest_source_id"], "U. S. Senator");
    let cornyn = texas["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["choice_source_id"] == "John Cornyn (Incumbent)")
        .unwrap();
    assert_eq!(cornyn["votes"], 2_855_068);
    assert_eq!(texas["choices"].as_array().unwrap().len(), 5, "{texas}");
    assert!(contract["cells_published"].as_u64().unwrap() > 0);
    // HTML error snapshots are served as they were captured; whether a
    // poll lands on one depends on the compressed clock.
    assert!(contract["payloads_rejected"].is_u64(), "{contract}");
    let p50 = contract["latency_ms"]["p50"].as_i64().unwrap();
    let p99 = contract["latency_ms"]["p99"].as_i64().unwrap();
    assert!(0 < p50 && p50 <= p99, "{contract}");

    // The page, as the browser saw it.
    let page: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&browser.stdout)
            .lines()
            .last()
            .expect("the browser script's line"),
    )
    .unwrap();
    assert_eq!(page["marker_kept"], true, "the page reloaded: {page}");
    assert!(
        page["distinct_states"].as_u64().unwrap() >= 3,
        "the numbers changed in place during the replay: {page}"
    );
    assert_eq!(page["errors"], serde_json::json!([]), "{page}");
    for race in races
        .iter()
        .filter(|r| r["source_feed_id"] != "html:txsos:2014-senate")
    {
        let card = &page["final"][format!(
            "{}/{}",
            race["source_feed_id"].as_str().unwrap(),
            race["contest_source_id"].as_str().unwrap()
        )];
        for c in race["choices"].as_array().unwrap() {
            assert_eq!(
                card[c["choice_source_id"].as_str().unwrap()],
                c["votes"],
                "the page's final card for {race}: {card}"
            );
        }
    }
    // The county table the keyboard opened: the CSV's U.S. Senate
    // (Special), summed per county here from the file itself.
    let table = &page["county_table"];
    assert_eq!(table["contest_id"], table["asked_for"], "{table}");
    assert_eq!(
        table["contest_id"],
        "csv:GA:openelections/U.S. Senate (Special)"
    );
    let csv = String::from_utf8(votewire_tests::fixture_bytes(
        "precinct_csv/openelections-data-ga/20210105__ga__runoff.csv",
    ))
    .unwrap();
    let mut by_county: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>> =
        Default::default();
    for line in csv.lines().skip(1) {
        // county,precinct,office,district,party,candidate,4 vote columns
        let f: Vec<&str> = line.split(',').collect();
        if f[2] != "U.S. Senate (Special)" {
            continue;
        }
        let votes: i64 = f[6..10].iter().map(|v| v.parse::<i64>().unwrap()).sum();
        *by_county
            .entry(f[0].to_string())
            .or_default()
            .entry(format!("{}|{}", f[5], f[4]))
            .or_default() += votes;
    }
    let shown: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>> =
        serde_json::from_value(table["units"].clone()).unwrap();
    assert_eq!(shown, by_county);
    // The file names no state: its counties roll up to the feed's
    // `[feed.results] parent = "GA"`.
    let mut statewide: std::collections::BTreeMap<String, i64> = Default::default();
    for choices in by_county.values() {
        for (choice, votes) in choices {
            *statewide.entry(choice.clone()).or_default() += votes;
        }
    }
    let csv_special = races
        .iter()
        .find(|r| {
            r["source_feed_id"] == "csv:GA:openelections"
                && r["contest_source_id"] == "U.S. Senate (Special)"
        })
        .unwrap_or_else(|| panic!("the CSV's special election in {contract}"));
    let reported: std::collections::BTreeMap<String, i64> = csv_special["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["choice_source_id"].as_str().unwrap().to_string(),
                c["votes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reported, statewide);
}
