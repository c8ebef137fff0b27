//! Every file in `../shared/fixtures` is accounted for: each vote-bearing
//! file parses with its family (and yields cells), each known-bad payload is
//! rejected, and everything else is listed with the reason it is not a
//! payload. A new fixture that nobody classified fails this test.

use std::path::{Path, PathBuf};

use votewire_transformers::{FamilyInputs, PayloadContext, transform};

fn root() -> PathBuf {
    let base = std::env::var_os("VOTEWIRE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    assert!(
        base.is_dir(),
        "fixtures folder {} is missing",
        base.display()
    );
    base
}

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

enum Class {
    /// Parses with this family (mapping file, companion file), yielding cells.
    Parses(&'static str, Option<&'static str>, Option<&'static str>),
    /// Parses and legitimately yields no cells (pre-election, initialization).
    ParsesEmpty(&'static str),
    /// A real bad payload: must be rejected.
    Rejected(&'static str),
    /// Not a results payload, or a vote format votewire has no family for yet.
    NotAPayload(&'static str),
}

fn classify(rel: &str) -> Class {
    use Class::*;
    let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
    match rel {
        _ if name == "SOURCES.md" || name == "FORMATS.md" || name == "index.csv" => {
            NotAPayload("documentation or index")
        }
        _ if rel.starts_with("nist_cdf_err_v2/schema/") || name.ends_with(".xsd") => {
            NotAPayload("an XML or JSON schema, not a payload")
        }
        "nist_cdf_err_v2/synthetic_nist/pe-err-gen-01.json" => ParsesEmpty("nist-cdf-json"),
        "ap_elections_api/elex_v2_fixtures/20151103_national_initialization.json"
        | "ap_elections_api/elex_v2_fixtures/20161100_national_pre_results.json" => {
            ParsesEmpty("ap-v2")
        }
        _ if rel.contains("delsum")
            || rel.contains("delsuper")
            || rel.contains("trends")
            || rel.ends_with("00000000_elections.json") =>
        {
            Rejected("ap-v2")
        }
        _ if rel.starts_with("ap_elections_api/elex_v2_fixtures/") => Parses("ap-v2", None, None),
        "ap_elections_api/ap_interactives_live_GA_2021-01-05/055_20210106T011631Z/GA.json" => {
            Rejected("ap-interactive")
        }
        _ if rel.starts_with("ap_elections_api/ap_interactives_live_GA_2021-01-05/") => {
            Parses("ap-interactive", None, None)
        }
        _ if rel.starts_with("clarity_enr/GA_107556_runoff_2021_ALLjson_series/") => {
            let bytes = std::fs::read(root().join(rel)).unwrap();
            if bytes.starts_with(b"<!DOCTYPE html") {
                Rejected("clarity-json")
            } else {
                Parses(
                    "clarity-json",
                    None,
                    Some("deploy/demo/clarity-GA-107556-companion.json"),
                )
            }
        }
        "clarity_enr/elex-clarity/decoded_http_bodies/summary.json" => {
            Parses("clarity-json", None, None)
        }
        "clarity_enr/elex-clarity/decoded_http_bodies/electionsettings.json" => {
            NotAPayload("Clarity site settings (version list)")
        }
        "clarity_enr/elex-clarity/decoded_http_bodies/current_ver.txt" => {
            NotAPayload("Clarity version pointer")
        }
        "clarity_enr/elex-clarity/GA_2020.json"
        | "clarity_enr/elex-clarity/GA_2020_summary.json" => NotAPayload(
            "VCR cassette of HTTP interactions (bodies are decoded in decoded_http_bodies/)",
        ),
        _ if rel.ends_with("select-county__KY__50972__131636.html") => {
            NotAPayload("Clarity county picker page")
        }
        _ if rel.starts_with("clarity_enr/") => Parses("clarity-xml", None, None),
        _ if rel.starts_with("nist_cdf_err_v2/") && rel.ends_with(".xml") => {
            Parses("nist-cdf-xml", None, None)
        }
        _ if rel.starts_with("nist_cdf_err_v2/") && rel.ends_with(".json") => {
            Parses("nist-cdf-json", None, None)
        }
        _ if rel.starts_with("google_civics_cdf/") => NotAPayload(
            "Google Civics v1-style CDF profile: no family yet (nist-cdf-xml rejects it as another profile)",
        ),
        "precinct_csv/openelections-data-pa/ERStat_readme.txt" => {
            NotAPayload("PA DoS file-layout documentation")
        }
        "precinct_csv/openelections-data-pa/20201103__pa__general__county.csv"
        | "precinct_csv/openelections-data-pa/20201103__pa__general__delaware__precinct.csv" => {
            Parses(
                "csv",
                Some("deploy/mappings/openelections-no-final-newline.toml"),
                None,
            )
        }
        _ if rel.starts_with("precinct_csv/") => Parses("csv", None, None),
        _ if rel.starts_with("sos_html/rc-") => Parses(
            "html-table",
            Some("deploy/mappings/txsos-race-by-county.toml"),
            None,
        ),
        _ if rel.starts_with("sos_html/hc-") => Parses(
            "html-table",
            Some("deploy/mappings/txsos-canvass-by-county.toml"),
            None,
        ),
        _ if rel.starts_with("sos_html/") => Parses(
            "html-table",
            Some("deploy/mappings/txsos-summary.toml"),
            None,
        ),
        _ if rel.starts_with("other_vendor/boulder_sov_csv/") => Parses("csv", None, None),
        "other_vendor/media_derived_ga_runoff_2021/GA-results.tsv" => Parses(
            "csv",
            Some("deploy/mappings/bloomberg-ga-results-tsv.toml"),
            None,
        ),
        _ if rel.starts_with("other_vendor/media_derived_ga_runoff_2021/") => NotAPayload(
            "NPR/Politico JSON derived from AP: no family yet (the AP feeds themselves are ingested)",
        ),
        _ if rel.starts_with("other_vendor/dominion_cvr_json/") => NotAPayload(
            "Dominion cast-vote records and manifests: ballot-level, needs tallying; no family yet",
        ),
        _ if rel.starts_with("other_vendor/dominion_wineds/") => {
            NotAPayload("Dominion WinEDS fixed-width text: no family yet")
        }
        _ if rel.starts_with("other_vendor/mn_sos_text/") => {
            NotAPayload("MN SOS layout and lookup tables, no counts")
        }
        _ => panic!(
            "fixture {rel} is not classified: add it to transformers/tests/fixture_inventory.rs"
        ),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn every_fixture_is_parsed_rejected_or_accounted_for() {
    let base = root();
    let mut files = Vec::new();
    walk(&base, &mut files);
    files.sort();
    let (mut parsed, mut rejected, mut other) = (0, 0, 0);
    for path in &files {
        let rel = path
            .strip_prefix(&base)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let bytes = std::fs::read(path).unwrap();
        let ctx = PayloadContext::for_file("fixture", &rel, "00", 0);
        let read = |p: &str| std::fs::read(repo(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        match classify(&rel) {
            Class::Parses(family, mapping, companion) => {
                let mapping: Option<toml::Table> =
                    mapping.map(|m| toml::from_str(&String::from_utf8(read(m)).unwrap()).unwrap());
                let companion = companion.map(read);
                let inputs = FamilyInputs {
                    mapping: mapping.as_ref(),
                    companion: companion.as_deref(),
                };
                let out = transform(family, &bytes, &ctx, &inputs)
                    .unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert!(!out.cells.is_empty(), "{rel} gave no cells");
                parsed += 1;
            }
            Class::ParsesEmpty(family) => {
                let out = transform(family, &bytes, &ctx, &FamilyInputs::default())
                    .unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert!(out.cells.is_empty(), "{rel}");
                parsed += 1;
            }
            Class::Rejected(family) => {
                let e = transform(family, &bytes, &ctx, &FamilyInputs::default()).expect_err(&rel);
                assert_eq!(e.family, family);
                rejected += 1;
            }
            Class::NotAPayload(reason) => {
                assert!(reason.len() > 10, "{rel} needs a reason");
                other += 1;
            }
        }
    }
    assert_eq!(parsed + rejected + other, files.len());
    assert!(parsed >= 170, "{parsed} parsed");
    // 18 Clarity HTML error pages, 1 truncated AP snapshot, and 6 AP products
    // that carry no votes (delSum, delSuper, three trend tables, the
    // election list).
    assert_eq!(rejected, 18 + 1 + 6, "rejected payloads");
    assert!(other > 0);
}
