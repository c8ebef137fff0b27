//! Payloads an attacker or a broken publisher sends, through the registry as
//! an ingestor calls it: every one ends as a typed error, never a panic, an
//! abort or a plausible wrong number.
//!
//! The count cases start from a real fixture of each family and change one
//! count in place, so the rest of the payload is exactly what a real source
//! sends; the nesting cases build the smallest document that recurses.

use std::path::PathBuf;

use votewire_transformers::{ErrorClass, FamilyInputs, PayloadContext, TransformError, transform};

fn fixture(rel: &str) -> Vec<u8> {
    let base = std::env::var_os("VOTEWIRE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    let p = base.join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", p.display()))
}

fn ctx() -> PayloadContext {
    PayloadContext::for_file("hostile", "file:///hostile", "00", 0)
}

fn run(family: &str, bytes: &[u8]) -> Result<usize, TransformError> {
    transform(family, bytes, &ctx(), &FamilyInputs::default()).map(|o| o.cells.len())
}

/// `text` with the first JSON number after `"key":` replaced by `value`
/// (written as is, so `1e30` stays `1e30`).
fn with_count(text: &str, key: &str, value: &str) -> String {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    let start = loop {
        let at = from
            + text[from..]
                .find(&needle)
                .unwrap_or_else(|| panic!("no {needle}: <number> in the fixture"))
            + needle.len();
        let after = text[at..].trim_start();
        if let Some(v) = after.strip_prefix(':') {
            let v = v.trim_start();
            if v.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
                break text.len() - v.len();
            }
        }
        from = at;
    };
    let len = text[start..]
        .find(|c: char| !(c.is_ascii_digit() || "-+.eE".contains(c)))
        .unwrap();
    assert!(len > 0, "{key} is not followed by a number");
    format!("{}{value}{}", &text[..start], &text[start + len..])
}

/// The same for the first `<Count>` element of an XML document.
fn with_xml_count(text: &str, value: &str) -> String {
    let at = text.find("<Count>").expect("a <Count> element") + "<Count>".len();
    let end = at + text[at..].find('<').unwrap();
    format!("{}{value}{}", &text[..at], &text[end..])
}

const HOSTILE_COUNTS: [(&str, &str); 6] = [
    ("-5", "negative"),
    ("9223372036854775807", "ceiling"),
    ("1e30", ""),
    ("9007199254740993", "ceiling"),
    ("12.5", ""),
    ("1000000001", "ceiling"),
];

#[test]
fn counts_outside_any_real_range_are_refused_by_every_json_family() {
    let cases = [
        (
            "ap-v2",
            "ap_elections_api/elex_v2_fixtures/20151103_national.json",
            "voteCount",
        ),
        (
            "nist-cdf-json",
            "nist_cdf_err_v2/real_world_cambridge_MA/err-2022-09-06-Massachusetts-Cambridge.json",
            "Count",
        ),
        (
            "npr-json",
            "other_vendor/media_derived_ga_runoff_2021/GA_S_1_5_2021.json",
            "votes",
        ),
        (
            "politico-json",
            "other_vendor/media_derived_ga_runoff_2021/senSpecial-counties.json",
            "vote",
        ),
    ];
    for (family, file, key) in cases {
        let text = String::from_utf8(fixture(file)).unwrap();
        assert!(
            run(family, text.as_bytes()).unwrap() > 0,
            "{family}: {file}"
        );
        for (value, says) in HOSTILE_COUNTS {
            let bad = with_count(&text, key, value);
            let e = run(family, bad.as_bytes())
                .map(|n| format!("accepted with {n} cells"))
                .expect_err(&format!("{family}: {key} = {value}"));
            assert_eq!(
                e.class,
                ErrorClass::SchemaViolation,
                "{family} {value}: {e}"
            );
            assert!(e.message.contains(says), "{family} {value}: {e}");
        }
    }
}

#[test]
fn counts_outside_any_real_range_are_refused_in_nist_xml() {
    let file = "nist_cdf_err_v2/real_world_cambridge_MA/err-2022-09-06-Massachusetts-Cambridge.xml";
    let text = String::from_utf8(fixture(file)).unwrap();
    assert!(run("nist-cdf-xml", text.as_bytes()).unwrap() > 0);
    for (value, says) in HOSTILE_COUNTS {
        let bad = with_xml_count(&text, value);
        let e = run("nist-cdf-xml", bad.as_bytes())
            .map(|n| format!("accepted with {n} cells"))
            .expect_err(value);
        assert_eq!(e.class, ErrorClass::SchemaViolation, "{value}: {e}");
        assert!(e.message.contains(says), "{value}: {e}");
        assert!(e.location.to_string().contains("VoteCounts/Count"), "{e}");
    }
    // A whole number written as a float is still that number.
    let twelve = with_xml_count(&text, "12.0");
    assert!(run("nist-cdf-xml", twelve.as_bytes()).is_ok());
}

/// `depth` nested copies of `open`, then their closes.
fn nested(prefix: &str, open: &str, close: &str, depth: usize, suffix: &str) -> Vec<u8> {
    let mut s = String::from(prefix);
    s.push_str(&open.repeat(depth));
    s.push_str(&close.repeat(depth));
    s.push_str(suffix);
    s.into_bytes()
}

#[test]
fn deeply_nested_xml_is_a_limit_error_not_a_stack_overflow() {
    let v2 = nested(
        "<ElectionReport xmlns=\"http://itl.nist.gov/ns/voting/1500-100/v2\">",
        "<a>",
        "</a>",
        30_000,
        "</ElectionReport>",
    );
    let v1 = nested(
        "<ElectionReport>",
        "<a>",
        "</a>",
        30_000,
        "</ElectionReport>",
    );
    let clarity = nested(
        "<ElectionResult>",
        "<a>",
        "</a>",
        30_000,
        "</ElectionResult>",
    );
    // On a tokio worker's 2 MiB stack, where the ingestor once ran them.
    let results = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            [
                ("nist-cdf-xml", run("nist-cdf-xml", &v2)),
                ("nist-cdf-v1-xml", run("nist-cdf-v1-xml", &v1)),
                ("clarity-xml", run("clarity-xml", &clarity)),
            ]
        })
        .unwrap()
        .join()
        .expect("no stack overflow, no panic");
    for (family, r) in results {
        let e = r.expect_err(family);
        if family == "clarity-xml" {
            // Its own tokenizer bounds depth (at 64) and calls it malformed.
            assert_eq!(e.class, ErrorClass::SchemaViolation, "{e}");
            assert!(e.message.contains("nesting deeper than"), "{e}");
        } else {
            assert_eq!(e.class, ErrorClass::LimitExceeded, "{family}: {e}");
        }
    }
}

#[test]
fn deeply_nested_html_is_a_limit_error_before_any_tree_is_built() {
    let mapping: toml::Table = toml::from_str(
        &String::from_utf8(
            std::fs::read(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../deploy/mappings/txsos-summary.toml"),
            )
            .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let inputs = FamilyInputs {
        mapping: Some(&mapping),
        ..FamilyInputs::default()
    };
    for page in [
        nested("<html><body>", "<div>", "</div>", 100_000, "</body></html>"),
        nested(
            "<html><body>",
            "<table><tr><td>",
            "",
            20_000,
            "</body></html>",
        ),
        nested(
            "<html><body>",
            "<span class=x>",
            "",
            50_000,
            "</body></html>",
        ),
    ] {
        let e = transform("html-table", &page, &ctx(), &inputs).unwrap_err();
        assert_eq!(e.class, ErrorClass::LimitExceeded, "{e}");
    }
}

#[test]
fn an_error_quotes_at_most_a_few_hundred_bytes_of_the_payload() {
    // A 4 MB bad value in each text family's count position.
    let huge = "7".repeat(4 << 20);
    let csv = format!(
        "county,precinct,office,district,party,candidate,votes\nFulton,01A,Gov,,DEM,A,x{huge}\n"
    );
    let ap = with_count(
        &String::from_utf8(fixture(
            "ap_elections_api/elex_v2_fixtures/20151103_national.json",
        ))
        .unwrap(),
        "voteCount",
        &huge,
    );
    let nist = with_xml_count(
        &String::from_utf8(fixture(
            "nist_cdf_err_v2/real_world_cambridge_MA/err-2022-09-06-Massachusetts-Cambridge.xml",
        ))
        .unwrap(),
        &format!("x{huge}"),
    );
    for (family, bytes) in [
        ("csv", csv.as_bytes()),
        ("ap-v2", ap.as_bytes()),
        ("nist-cdf-xml", nist.as_bytes()),
    ] {
        let e = run(family, bytes).unwrap_err();
        let shown = e.to_string();
        assert!(shown.len() < 1024, "{family}: a {}-byte error", shown.len());
    }
}

#[test]
fn precinct_counts_and_expected_vote_outside_any_real_range_are_refused() {
    let ap = String::from_utf8(fixture(
        "ap_elections_api/elex_v2_fixtures/20151103_national.json",
    ))
    .unwrap();
    // 1973 of 1973 reporting, then counts past any electorate or below
    // zero. (More reporting than a total is not refused: Clarity's own
    // fallback for a missing total produces such rows, and one odd row
    // must not cost a feed its whole payload.)
    for (key, value, says) in [
        ("precinctsReporting", "-1", "negative"),
        ("precinctsTotal", "2000000000", "past the"),
    ] {
        let bad = with_count(&ap, key, value);
        let e = run("ap-v2", bad.as_bytes())
            .map(|n| format!("accepted with {n} cells"))
            .expect_err(&format!("{key} = {value}"));
        assert_eq!(e.class, ErrorClass::SchemaViolation, "{key} {value}: {e}");
        assert!(e.message.contains(says), "{key} {value}: {e}");
    }
    let summary = String::from_utf8(fixture(
        "ap_elections_api/ap_interactives_live_GA_2021-01-05/summary.json",
    ))
    .unwrap();
    assert!(run("ap-interactive", summary.as_bytes()).unwrap() > 0);
    for share in ["1e300", "-1", "5000"] {
        let bad = with_count(&summary, "eevp", share);
        let e = run("ap-interactive", bad.as_bytes())
            .map(|n| format!("accepted with {n} cells"))
            .expect_err(&format!("eevp = {share}"));
        assert!(e.message.contains("is not a share"), "eevp {share}: {e}");
    }
}

#[test]
fn dense_small_objects_are_refused_before_a_value_tree_is_built() {
    // 4.5 MB of one-field objects would take about 240 MB as
    // serde_json::Value (a B-tree leaf per object); the old estimate let
    // 28.5 MB of them through to 1.36 GB.
    let mut doc = String::from("{\"Election\":[");
    for i in 0..300_000 {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str("{\"abcdefgh\":0}");
    }
    doc.push_str("]}");
    let e = run("nist-cdf-json", doc.as_bytes()).unwrap_err();
    assert_eq!(e.class, ErrorClass::LimitExceeded, "{e}");
    assert!(e.message.contains("MB of memory"), "{e}");
    // The same text as a family's own structs costs far less: not refused
    // for its size (only for not being AP's shape).
    let e = run("ap-v2", doc.as_bytes()).unwrap_err();
    assert_ne!(e.class, ErrorClass::LimitExceeded, "{e}");
}
