//! `votewire export` and `/v1/export`: valid NIST reports that read back to
//! the same cells.

use votewire_tests::Stack;

use crate::support::{READ_TOKEN, assert_problem, scrape_until, start_api, votewire_on};

/// A cell as comparable text: everything a source said about it (not the
/// payload header: feed, fetch, version and times differ by design).
fn cell_facts(
    table: &votewire_transformers::cells::CellTable,
) -> std::collections::BTreeSet<String> {
    (0..table.len())
        .map(|i| {
            let c = table.cell(i);
            format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
                c.contest.source_id,
                c.contest.name,
                c.contest.kind,
                c.contest.vote_for,
                c.contest.primary_party,
                c.unit.source_id,
                c.unit.name,
                c.unit.unit_type,
                c.unit.type_raw,
                c.unit.parent_source_id,
                c.choice.source_id,
                c.choice.name,
                c.choice.kind,
                c.choice.party,
                c.vote_type,
                c.vote_type_raw,
                c.votes,
                c.precincts_reporting,
                c.precincts_total,
            )
        })
        .collect()
}

/// `votewire export` and `GET /v1/export/{election}`: the Cambridge 2022
/// primary (real NIST JSON) published as a feed's cells, exported as a
/// NIST SP 1500-100 v2 ElectionReport in XML and JSON; the XML validates
/// against the official XSD (xmllint), the JSON against the official JSON
/// schema (Python jsonschema), and both read back through the nist-cdf
/// transformers give exactly the cells the original gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_valid_nist_reports_that_read_back_to_the_same_cells() {
    use votewire_ingestors::publish::{FetchFacts, PublishedCells};
    use votewire_schemas::FeedMode;
    use votewire_transformers::{FamilyInputs, PayloadContext};

    let stack = Stack::load();
    let pipeline = votewire_tests::pipeline::TestPipeline::start("export", 2).await;
    let dir = "nist_cdf_err_v2/real_world_cambridge_MA";
    let original = votewire_tests::fixture_bytes(&format!(
        "{dir}/err-2022-09-06-Massachusetts-Cambridge.json"
    ));
    let election = "2022-09-06-MA-primary";
    let ctx = |feed: &str, seq: i64| PayloadContext {
        election_id: election.into(),
        feed_id: feed.into(),
        mode: FeedMode::Live,
        source_seq: seq,
        source_version: None,
        fetched_at: 1_662_500_000_000,
        fetch_id: format!("{feed}:{seq}"),
        source_uri: "file://cambridge.json".into(),
        payload_sha256: format!("{seq:064}"),
        trace_id: None,
        content_type: None,
    };
    let transform = |family: &str, bytes: &[u8]| {
        votewire_transformers::transform(
            family,
            bytes,
            &ctx("nist:cambridge", 1),
            &FamilyInputs::default(),
        )
        .unwrap_or_else(|e| panic!("{family}: {e}"))
    };
    let source = transform("nist-cdf-json", &original);
    let want = cell_facts(&source.cells);
    assert!(want.len() > 2_000, "{} cells", want.len());
    pipeline
        .publisher
        .publish_accepted(
            &source.cells,
            &mut PublishedCells::default(),
            &FetchFacts::for_payload(&ctx("nist:cambridge", 1), "nist-cdf-json", original.len()),
        )
        .await
        .unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    for (format, file) in [
        ("nist-cdf-xml", "report.xml"),
        ("nist-cdf-json", "report.json"),
    ] {
        let path = out_dir.path().join(file);
        let out = votewire_on(&stack, &pipeline)
            .args([
                "export",
                "--format",
                format,
                "--election",
                election,
                "--out",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let summary = String::from_utf8_lossy(&out.stderr);
        assert!(
            summary.contains("status unofficial-partial"),
            "no precinct counts in the source: partial. {summary}"
        );
    }
    // The XML against the official XSD.
    let xsd =
        votewire_tests::fixture("nist_cdf_err_v2/schema/NIST_V2_election_results_reporting.xsd");
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&xsd)
        .arg(out_dir.path().join("report.xml"))
        .output()
        .expect("xmllint (Debian libxml2-utils; deploy/local/stack installs it)");
    assert!(
        lint.status.success(),
        "the XML is not valid against the XSD:\n{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    // The JSON against the official JSON schema.
    let check = std::process::Command::new(stack.var("VOTEWIRE_PYTHON"))
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             doc = json.load(open(sys.argv[2]))\n\
             errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)\n\
             for e in errors[:20]: print(list(e.absolute_path), e.message)\n\
             sys.exit(1 if errors else 0)",
        ])
        .arg(votewire_tests::fixture(
            "nist_cdf_err_v2/schema/NIST_V2_election_results_reporting.json",
        ))
        .arg(out_dir.path().join("report.json"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the JSON is not valid against the JSON schema:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // Both read back to the same cells.
    for (family, file) in [
        ("nist-cdf-xml", "report.xml"),
        ("nist-cdf-json", "report.json"),
    ] {
        let bytes = std::fs::read(out_dir.path().join(file)).unwrap();
        let back = cell_facts(&transform(family, &bytes).cells);
        let missing: Vec<_> = want.difference(&back).take(3).collect();
        let extra: Vec<_> = back.difference(&want).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{family}: {} cells differ; missing {missing:#?}, extra {extra:#?}",
            want.symmetric_difference(&back).count()
        );
    }

    // Two Clarity county feeds in one election (vote types such as
    // "Election Day Votes", precinct counts, pseudo rows): one valid
    // document, ids prefixed by feed, every non-pseudo cell's votes kept.
    let ga = "2020-11-03-GA-general";
    let mut clarity_votes: Vec<i64> = Vec::new();
    for (i, county) in ["atkinson", "bacon"].iter().enumerate() {
        let bytes = votewire_tests::fixture_bytes(&format!(
            "clarity_enr/elex-clarity/ga_{county}_precincts_11-3.xml"
        ));
        let mut c = ctx(&format!("clarity:GA:{county}"), i as i64 + 1);
        c.election_id = ga.into();
        let out =
            votewire_transformers::transform("clarity-xml", &bytes, &c, &FamilyInputs::default())
                .unwrap();
        for j in 0..out.cells.len() {
            let cell = out.cells.cell(j);
            if cell.contest.kind != votewire_schemas::ContestKind::Pseudo {
                clarity_votes.push(cell.votes);
            }
        }
        pipeline
            .publisher
            .publish_accepted(
                &out.cells,
                &mut PublishedCells::default(),
                &FetchFacts::for_payload(&c, "clarity-xml", bytes.len()),
            )
            .await
            .unwrap();
    }
    let ga_xml = out_dir.path().join("ga.xml");
    let out = votewire_on(&stack, &pipeline)
        .args([
            "export",
            "--format",
            "nist-cdf-xml",
            "--election",
            ga,
            "--out",
        ])
        .arg(&ga_xml)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&xsd)
        .arg(&ga_xml)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "the two-feed XML is not valid:\n{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    let text = std::fs::read_to_string(&ga_xml).unwrap();
    assert!(
        text.contains("ObjectId=\"clarity_GA_atkinson."),
        "ids carry their feed"
    );
    assert!(
        text.contains("ObjectId=\"clarity_GA_bacon."),
        "ids carry their feed"
    );
    assert!(
        text.contains("<Type>other</Type><OtherType>Election Day Votes</OtherType>"),
        "a source vote type outside the standard's list is kept as OtherType"
    );
    let back = transform("nist-cdf-xml", text.as_bytes());
    let mut back_votes: Vec<i64> = (0..back.cells.len())
        .map(|j| back.cells.cell(j).votes)
        .collect();
    back_votes.sort_unstable();
    clarity_votes.sort_unstable();
    assert_eq!(
        back_votes, clarity_votes,
        "every non-pseudo cell's count is in the report"
    );

    // The API serves the same report.
    let registry = tempfile::tempdir().unwrap();
    let api = start_api(&stack, &pipeline, registry.path(), &[]).await;
    let (status, headers, body) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/export/{election}?format=nist-cdf-json"),
            Some(READ_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let mut from_cli: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("report.json")).unwrap())
            .unwrap();
    let first_generated = body["GeneratedDate"].clone();
    assert!(first_generated.is_string(), "{body}");
    let mut from_api = body;
    for doc in [&mut from_cli, &mut from_api] {
        doc["GeneratedDate"] = serde_json::Value::Null;
    }
    assert_eq!(
        from_api, from_cli,
        "the API and the CLI write the same report"
    );
    // Asked again at once, the API answers from its last scan (with the
    // first answer's generation time, to the second): a read token cannot
    // start a scan of the votes topic per request.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, _, again) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/export/{election}?format=nist-cdf-json"),
            Some(READ_TOKEN),
            None,
        )
        .await;
    assert_eq!(
        again["GeneratedDate"], first_generated,
        "served from the last scan"
    );
    assert_problem(
        &api.call(
            reqwest::Method::GET,
            "/v1/export/no-such-election",
            Some(READ_TOKEN),
            None,
        )
        .await,
        404,
    );
    // A storm of unknown names is answered from the elections the last
    // scan saw: it does not scan the votes topic once per name.
    for i in 0..30 {
        assert_problem(
            &api.call(
                reqwest::Method::GET,
                &format!("/v1/export/no-such-election-{i}"),
                Some(READ_TOKEN),
                None,
            )
            .await,
            404,
        );
    }
    let metrics = scrape_until(&format!("{}/metrics", api.base), |t| {
        t.contains("votewire_api_export_scans_total")
    })
    .await;
    let scans: f64 = metrics
        .lines()
        .find(|l| l.starts_with("votewire_api_export_scans_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no scan counter in {metrics}"));
    assert!(
        (1.0..=2.0).contains(&scans),
        "31 unknown elections and 2 asks for one took {scans} scans"
    );
    drop(api.child);
}
