//! html-table against the real Texas SOS pages with the shipped mappings.
//! Expected values are read from the raw page text (grep-style scans), not
//! from the parser.

use std::path::PathBuf;

use votewire_schemas::*;

use crate::error::ErrorClass;
use crate::payload::{FamilyInputs, PayloadContext};
use crate::testkit::{ctx, fixture};

fn transform(
    bytes: &[u8],
    ctx: &crate::payload::PayloadContext,
    inputs: &crate::payload::FamilyInputs,
) -> Result<crate::testkit::Out, crate::error::TransformError> {
    crate::testkit::materialized(super::transform, bytes, ctx, inputs)
}

fn mapping(name: &str) -> toml::Table {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../deploy/mappings/{name}.toml"));
    toml::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn run(page: &str, map: &str) -> Vec<VoteCell> {
    let m = mapping(map);
    let inputs = FamilyInputs {
        mapping: Some(&m),
        ..FamilyInputs::default()
    };
    transform(
        &fixture(&format!("sos_html/{page}")),
        &ctx("html:txsos"),
        &inputs,
    )
    .unwrap_or_else(|e| panic!("{page}: {e}"))
    .cells
}

fn votes(cells: &[VoteCell], unit: &str, choice_prefix: &str, vt: VoteType) -> i64 {
    cells
        .iter()
        .find(|c| {
            &*c.unit.source_id == unit
                && c.choice.name.starts_with(choice_prefix)
                && c.vote_type == vt
        })
        .unwrap_or_else(|| panic!("{unit}/{choice_prefix}/{vt}"))
        .votes
}

#[test]
fn a_race_by_county_page_gives_county_total_and_early_cells() {
    let cells = run("rc-2014_general_cd1.html", "txsos-race-by-county");
    // From the page: ALL COUNTIES 114,925 / 33,409; Early 54,304 / 16,796;
    // ANGELINA 13,038 / 3,607 with Early 7,062 / 1,984; 272 of 272 precincts.
    assert_eq!(
        votes(&cells, "ALL COUNTIES", "Louie Gohmert", VoteType::Total),
        114_925
    );
    assert_eq!(
        votes(
            &cells,
            "ALL COUNTIES",
            "Shirley J. McKellar",
            VoteType::Total
        ),
        33_409
    );
    assert_eq!(
        votes(&cells, "ALL COUNTIES", "Louie Gohmert", VoteType::Early),
        54_304
    );
    assert_eq!(
        votes(&cells, "ANGELINA", "Louie Gohmert", VoteType::Total),
        13_038
    );
    assert_eq!(
        votes(&cells, "ANGELINA", "Shirley J. McKellar", VoteType::Early),
        1_984
    );
    let all = cells
        .iter()
        .find(|c| &*c.unit.source_id == "ALL COUNTIES")
        .unwrap();
    assert_eq!(
        (
            all.unit.unit_type,
            all.precincts_reporting,
            all.precincts_total
        ),
        (UnitType::State, Some(272), Some(272))
    );
    assert_eq!(&*all.contest.name, "U. S. Representative District 1");
    assert_eq!(all.choice.party.as_deref(), Some("REP"));
    assert_eq!(
        &*all.choice.name, "Louie Gohmert (Incumbent)",
        "the two header rows are joined"
    );
    // 11/6/2014 6:39:15 AM CST is 12:39:15 UTC.
    assert_eq!(all.header.as_of, Some(1_415_277_555_000));
    let page = String::from_utf8(fixture("sos_html/rc-2014_general_cd1.html")).unwrap();
    let county_links = page.matches("nov04_175_county").count();
    let counties: std::collections::BTreeSet<_> = cells
        .iter()
        .filter(|c| c.unit.unit_type == UnitType::County)
        .map(|c| c.unit.source_id.clone())
        .collect();
    assert_eq!(counties.len(), county_links);
    assert!(
        cells
            .iter()
            .filter(|c| c.unit.unit_type == UnitType::County)
            .all(|c| c.unit.parent_source_id.as_deref() == Some("ALL COUNTIES"))
    );
    // The counties add up to the page's own ALL COUNTIES row.
    let sum: i64 = cells
        .iter()
        .filter(|c| {
            c.unit.unit_type == UnitType::County
                && c.choice.name.starts_with("Louie")
                && c.vote_type == VoteType::Total
        })
        .map(|c| c.votes)
        .sum();
    assert_eq!(sum, 114_925);
}

#[test]
fn the_statewide_summary_reads_every_race_and_both_vote_columns() {
    let cells = run("rs-2014_general.htm", "txsos-summary");
    let page = String::from_utf8(fixture("sos_html/rs-2014_general.htm")).unwrap();
    let contests: std::collections::BTreeSet<_> =
        cells.iter().map(|c| c.contest.source_id.clone()).collect();
    assert_eq!(
        contests.len(),
        page.matches("HREF=\"nov04_175_race").count()
    );
    // From the page: Cornyn EARLY 1,537,396 and TOTAL 2,855,068; 8,453 of 8,453 precincts.
    let cornyn = |vt| votes(&cells, "TX", "John Cornyn", vt);
    assert_eq!(
        (cornyn(VoteType::Early), cornyn(VoteType::Total)),
        (1_537_396, 2_855_068)
    );
    let c = cells
        .iter()
        .find(|c| c.choice.name.starts_with("John Cornyn"))
        .unwrap();
    assert_eq!(
        (&*c.contest.source_id, &*c.contest.name),
        ("nov04_175_race0.htm", "U. S. Senator")
    );
    assert_eq!(
        (c.precincts_reporting, c.precincts_total),
        (Some(8453), Some(8453))
    );
    assert_eq!(c.choice.incumbent, Some(true));
}

#[test]
fn a_latin_1_page_with_no_declared_charset_is_decoded() {
    let cells = run("hs-2014_general.html", "txsos-summary");
    let page = fixture("sos_html/hs-2014_general.html");
    let races = page
        .windows(b"Race Total".len())
        .filter(|w| *w == b"Race Total")
        .count();
    let contests: std::collections::BTreeSet<_> =
        cells.iter().map(|c| c.contest.source_id.clone()).collect();
    assert_eq!(contests.len(), races);
    assert!(cells.iter().any(|c| &*c.choice.name == "Rubén Hinojosa(I)"));
    assert!(cells.iter().any(|c| c.choice.name.contains("López")));
}

#[test]
fn a_canvass_page_takes_its_race_from_the_mapping() {
    let cells = run("hc-2012_general_president.html", "txsos-canvass-by-county");
    // From the page: ALL COUNTIES 4,569,843 Romney/Ryan, 3,308,124 Obama/Biden.
    assert_eq!(
        votes(&cells, "ALL COUNTIES", "Mitt Romney", VoteType::Total),
        4_569_843
    );
    assert_eq!(
        votes(&cells, "ALL COUNTIES", "Barack Obama", VoteType::Total),
        3_308_124
    );
    assert_eq!(
        votes(&cells, "ANDERSON", "Mitt Romney", VoteType::Total),
        12_262
    );
    assert!(
        cells
            .iter()
            .all(|c| &*c.contest.name == "President/Vice-President")
    );
    let candidates: std::collections::BTreeSet<_> =
        cells.iter().map(|c| c.choice.source_id.clone()).collect();
    assert_eq!(candidates.len(), 11);
}

#[test]
fn every_texas_page_parses_with_its_mapping() {
    for (page, map) in [
        ("rc-2014_general_senate.html", "txsos-race-by-county"),
        ("rs-2012_rep_primary.htm", "txsos-summary"),
        ("hs-2011_special_runoff_hd14.html", "txsos-summary"),
    ] {
        assert!(!run(page, map).is_empty(), "{page}");
    }
}

#[test]
fn the_charset_from_the_http_header_wins_over_the_meta_tag() {
    let m = mapping("txsos-summary");
    let inputs = FamilyInputs {
        mapping: Some(&m),
        ..FamilyInputs::default()
    };
    let page = "<html><head><meta charset=\"utf-8\"></head><body><table><tr><th>RACE</th><th>NAME</th><th>PARTY</th><th>TOTAL VOTES</th></tr>\
                <tr><td>Mayor</td><td></td><td></td><td></td></tr><tr><td></td><td>Pe\u{f1}a</td><td>NP</td><td>7</td></tr></table></body></html>";
    let latin1: Vec<u8> = page.chars().map(|c| c as u32 as u8).collect();
    let c = PayloadContext {
        content_type: Some("text/html; charset=ISO-8859-1".into()),
        ..ctx("html")
    };
    let cells = transform(&latin1, &c, &inputs).unwrap().cells;
    assert_eq!(&*cells[0].choice.name, "Peña");
}

#[test]
fn pages_without_the_mapped_table_or_with_bad_numbers_are_rejected() {
    let m = mapping("txsos-summary");
    let inputs = FamilyInputs {
        mapping: Some(&m),
        ..FamilyInputs::default()
    };
    let e = transform(
        b"<html><body>Service Unavailable</body></html>",
        &ctx("h"),
        &inputs,
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotThisFormat);
    let bad = b"<table><tr><th>RACE</th><th>NAME</th><th>PARTY</th><th>TOTAL VOTES</th></tr><tr><td>Mayor</td></tr><tr><td></td><td>Ann</td><td>X</td><td>12a</td></tr></table>";
    let e = transform(bad, &ctx("h"), &inputs).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    assert_eq!(e.location.to_string(), "table[1]/tr[3]/td[4]");
    let e = transform(b"<table></table>", &ctx("h"), &FamilyInputs::default()).unwrap_err();
    assert!(e.message.contains("mapping"));
}

#[test]
fn the_statewide_race_page_has_only_its_five_candidates_as_choices() {
    // The page's header rows name five candidates, then Total Votes,
    // Registered Voters, TurnOut%, Provisional Ballots and the precinct
    // counts: the turnout columns are not choices.
    let cells = run("rc-2014_general_senate.html", "txsos-race-by-county");
    let choices: std::collections::BTreeSet<String> = cells
        .iter()
        .map(|c| c.choice.source_id.to_string())
        .collect();
    assert_eq!(
        choices,
        [
            "David M. Alameel",
            "Emily \"Spicybrown\" Sanchez",
            "John Cornyn (Incumbent)",
            "Mohammed Tahiro",
            "Rebecca Paddock",
        ]
        .map(String::from)
        .into()
    );
}
