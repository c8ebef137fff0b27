//! clarity-xml against real Clarity files. Expected values come from an
//! independent DOM parse (roxmltree) of the same bytes, never from this
//! parser.

use std::collections::BTreeMap;
use std::io::Write;

use votewire_schemas::*;

use crate::error::ErrorClass;
use crate::payload::FamilyInputs;
use crate::testkit::{by_identity, ctx, fixture};

fn transform(
    bytes: &[u8],
    ctx: &crate::payload::PayloadContext,
    inputs: &crate::payload::FamilyInputs,
) -> Result<crate::testkit::Out, crate::error::TransformError> {
    crate::testkit::materialized(super::transform, bytes, ctx, inputs)
}

type Identity = (String, String, String, String);

/// Every count in the file, read with a DOM parser: aggregates under the
/// site's name, leaves under their own.
fn independent_counts(xml: &str) -> (BTreeMap<Identity, i64>, usize) {
    let doc = roxmltree::Document::parse(xml).expect("roxmltree parses the fixture");
    let root = doc.root_element();
    let region = root
        .children()
        .find(|n| n.has_tag_name("Region"))
        .and_then(|n| n.text())
        .unwrap()
        .trim()
        .to_string();
    let mut m = BTreeMap::new();
    let mut contests = 0;
    for contest in root.children().filter(|n| n.has_tag_name("Contest")) {
        contests += 1;
        let key = contest.attribute("key").unwrap().trim().to_string();
        let mut add = |choice: &str, vt: roxmltree::Node| {
            let raw = vt.attribute("name").unwrap().trim().to_string();
            let votes: i64 = vt.attribute("votes").unwrap().parse().unwrap();
            m.insert(
                (key.clone(), choice.to_string(), region.clone(), raw.clone()),
                votes,
            );
            for leaf in vt.children().filter(|n| n.is_element()) {
                let v: i64 = leaf.attribute("votes").unwrap().parse().unwrap();
                let name = leaf.attribute("name").unwrap().trim().to_string();
                m.insert((key.clone(), choice.to_string(), name, raw.clone()), v);
            }
        };
        for child in contest.children().filter(|n| n.is_element()) {
            if child.has_tag_name("VoteType") {
                let name = child.attribute("name").unwrap().trim().to_string();
                add(&name, child);
            } else if child.has_tag_name("Choice") {
                let ck = child.attribute("key").unwrap().trim().to_string();
                for vt in child.children().filter(|n| n.has_tag_name("VoteType")) {
                    add(&ck, vt);
                }
            }
        }
    }
    (m, contests)
}

fn check_file_against_dom(relative: &str, expected_cells: usize) -> Vec<VoteCell> {
    let bytes = fixture(relative);
    let out = transform(&bytes, &ctx("clarity:test"), &FamilyInputs::default()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (want, contests) = independent_counts(&text);
    assert_eq!(out.cells.len(), expected_cells, "{relative}");
    assert_eq!(want.len(), expected_cells, "{relative}: DOM count");
    assert_eq!(by_identity(&out.cells), want, "{relative}");
    let parsed_contests: std::collections::BTreeSet<_> = out
        .cells
        .iter()
        .map(|c| c.contest.source_id.clone())
        .collect();
    assert_eq!(parsed_contests.len(), contests);
    out.cells
}

#[test]
fn the_ga_2018_primary_state_file_matches_an_independent_parse_cell_for_cell() {
    // 51,444 = 2,612 VoteType aggregates + 48,832 county leaves (FORMATS.md §9).
    let cells = check_file_against_dom(
        "clarity_enr/openelections-data-ga_raw_xml/20180522__ga__primary.xml",
        51_444,
    );
    assert!(
        cells.iter().all(|c| c.contest.vote_for.is_none()),
        "voteFor is absent in GA 2018"
    );
    let gov = cells
        .iter()
        .find(|c| c.contest.name.contains("Governor") && c.contest.primary_party.is_some())
        .expect("a party primary for Governor");
    assert!(["REP", "DEM"].contains(&&*gov.contest.primary_party.clone().unwrap()));
    let site = cells
        .iter()
        .find(|c| c.unit.unit_type == UnitType::State)
        .unwrap();
    assert_eq!(&*site.unit.source_id, "GA");
    let county = cells
        .iter()
        .find(|c| c.unit.unit_type == UnitType::County)
        .unwrap();
    assert_eq!(county.unit.parent_source_id.as_deref(), Some("GA"));
}

#[test]
fn the_ga_2020_state_file_reads_participating_counties_for_reporting() {
    let cells = check_file_against_dom(
        "clarity_enr/electiondata_GA_2020G/GA_detail_20201120_1237.xml",
        31_700,
    );
    let appling = cells
        .iter()
        .find(|c| &*c.contest.source_id == "5000" && &*c.unit.source_id == "Appling")
        .unwrap();
    assert_eq!(
        (appling.precincts_reporting, appling.precincts_total),
        (Some(9), Some(9))
    );
    let state = cells
        .iter()
        .find(|c| &*c.contest.source_id == "5000" && c.unit.unit_type == UnitType::State)
        .unwrap();
    assert_eq!(
        (state.precincts_reporting, state.precincts_total),
        (Some(2656), Some(2656))
    );
    // 3:37:06 PM EST on 2020-11-20 is 20:37:06 UTC.
    assert_eq!(state.header.as_of, Some(1_605_904_626_000));
    assert_eq!(
        state.header.as_of_raw.as_deref(),
        Some("11/20/2020 3:37:06 PM EST")
    );
    assert!(
        cells
            .iter()
            .all(|c| c.contest.vote_for == Some(1) || c.contest.vote_for.is_some())
    );
}

#[test]
fn aggregates_and_leaves_that_disagree_are_both_kept_as_published() {
    let cells = check_file_against_dom(
        "clarity_enr/elex-clarity/ga_atkinson_precincts_11-3.xml",
        1_340,
    );
    let trump_eday: Vec<&VoteCell> = cells
        .iter()
        .filter(|c| {
            &*c.contest.source_id == "1"
                && &*c.choice.source_id == "1"
                && &*c.vote_type_raw == "Election Day Votes"
        })
        .collect();
    let aggregate = trump_eday
        .iter()
        .find(|c| c.unit.unit_type == UnitType::County)
        .unwrap();
    let leaves: i64 = trump_eday
        .iter()
        .filter(|c| c.unit.unit_type == UnitType::Precinct)
        .map(|c| c.votes)
        .sum();
    // FORMATS.md: 716 against 235+194+0+63.
    assert_eq!(aggregate.votes, 716);
    assert_eq!(leaves, 235 + 194 + 63);
    assert_eq!(&*aggregate.unit.source_id, "Atkinson");
    assert_eq!(
        trump_eday[1].unit.parent_source_id.as_deref(),
        Some("Atkinson")
    );
    let under = cells
        .iter()
        .find(|c| &*c.choice.source_id == "Undervotes" && c.unit.unit_type == UnitType::County)
        .unwrap();
    assert_eq!(under.choice.kind, ChoiceKind::UnderVote);
    assert_eq!(
        (under.vote_type, &*under.vote_type_raw),
        (VoteType::Total, "Undervotes")
    );
    assert_eq!(under.votes, 15);
    let trump = &trump_eday[0].choice;
    assert_eq!(
        (trump.party.as_deref(), trump.incumbent),
        (Some("Rep"), Some(true))
    );
    assert_eq!(&*trump.name, "Donald J. Trump (I) (Rep)");
}

#[test]
fn the_zipped_original_is_read_from_its_crlf_bytes() {
    let zip = fixture("clarity_enr/GA_107556_runoff_2021_napervillpol/detailxml.zip");
    let out = transform(&zip, &ctx("clarity:GA:107556"), &FamilyInputs::default()).unwrap();
    let xml = {
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(&zip[..])).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut a.by_name("detail.xml").unwrap(), &mut s).unwrap();
        s
    };
    assert!(xml.contains("\r\n"), "the original inside the zip is CRLF");
    let (want, _) = independent_counts(&xml);
    assert_eq!(by_identity(&out.cells), want);
    let contests: std::collections::BTreeSet<_> =
        out.cells.iter().map(|c| &*c.contest.source_id).collect();
    assert_eq!(contests.len(), 3, "{contests:?}");
}

#[test]
fn every_real_clarity_xml_file_parses() {
    for f in [
        "clarity_enr/openelections_clarify/county.xml",
        "clarity_enr/openelections_clarify/precinct.xml",
        "clarity_enr/elex-clarity/ga_counties_11-3.xml",
        "clarity_enr/elex-clarity/ga_bacon_precincts_11-3.xml",
        "clarity_enr/openelections-data-ga_raw_xml/20180109__ga__special.xml",
        "clarity_enr/openelections-data-ga_raw_xml/detail_bartow.xml",
    ] {
        let bytes = fixture(f);
        let (want, _) = independent_counts(std::str::from_utf8(&bytes).unwrap());
        let out = transform(&bytes, &ctx("clarity:test"), &FamilyInputs::default())
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(by_identity(&out.cells), want, "{f}");
    }
}

#[test]
fn absentee_only_precincts_are_virtual_units() {
    let bytes = fixture("clarity_enr/openelections_clarify/precinct.xml");
    let out = transform(&bytes, &ctx("clarity:KY"), &FamilyInputs::default()).unwrap();
    let ab: Vec<_> = out
        .cells
        .iter()
        .filter(|c| &*c.unit.source_id == "AB")
        .collect();
    assert!(!ab.is_empty(), "KY precinct.xml has an AB precinct");
    assert!(ab.iter().all(|c| c.unit.unit_type == UnitType::Virtual));
    assert!(
        out.cells
            .iter()
            .any(|c| c.unit.unit_type == UnitType::Precinct)
    );
}

const MEASURE: &str = r#"<?xml version="1.0"?>
<ElectionResult>
  <Timestamp>11/6/2024 2:15:00 AM MST</Timestamp>
  <Region>Boulder</Region>
  <VoterTurnout totalVoters="10" ballotsCast="5" voterTurnout="50.00"><Precincts>
    <Precinct name="2181207001" totalVoters="10" ballotsCast="5" voterTurnout="50.00" percentReporting="4" />
  </Precincts></VoterTurnout>
  <Contest key="12" text="Amendment G (Constitutional) &amp; more" voteFor="1" isQuestion="false" precinctsReporting="1" precinctsReported="1">
    <Choice key="1" text="Yes" party="Y" totalVotes="3">
      <VoteType name="Total Votes" votes="3"><Precinct name="2181207001" votes="3" /></VoteType>
    </Choice>
    <Choice key="2" text="No" party="N" totalVotes="-1">
      <VoteType name="Total Votes" votes="-1"><Precinct name="2181207001" votes="-1" /></VoteType>
    </Choice>
  </Contest>
  <Contest key="13" text="US Senate (Perdue)/Senado de los EE.UU. (Perdue)" voteFor="2" isQuestion="false">
    <Choice key="1" text="HUNTER HILL  (REP)" party="REP" totalVotes="1">
      <VoteType name="Total Votes" votes="1"><Precinct name="2181207001" votes="1" /></VoteType>
    </Choice>
  </Contest>
</ElectionResult>"#;

#[test]
fn yes_no_measures_flagged_is_question_false_are_ballot_measures() {
    let out = transform(
        MEASURE.as_bytes(),
        &ctx("clarity:CO"),
        &FamilyInputs::default(),
    )
    .unwrap();
    let m: Vec<&VoteCell> = out
        .cells
        .iter()
        .filter(|c| &*c.contest.source_id == "12")
        .collect();
    assert_eq!(m.len(), 4);
    assert!(
        m.iter()
            .all(|c| c.contest.kind == ContestKind::BallotMeasure)
    );
    assert_eq!(m[0].choice.kind, ChoiceKind::Yes);
    assert_eq!(m[2].choice.kind, ChoiceKind::No);
    assert_eq!(m[2].votes, -1, "signed counts survive");
    assert_eq!(&*m[0].contest.name, "Amendment G (Constitutional) & more");
    assert_eq!(m[0].vote_type, VoteType::Total);
    let senate = out
        .cells
        .iter()
        .find(|c| &*c.contest.source_id == "13")
        .unwrap();
    assert_eq!(senate.contest.kind, ContestKind::Candidate);
    assert_eq!(senate.contest.vote_for, Some(2));
    assert_eq!(
        &*senate.contest.name,
        "US Senate (Perdue)/Senado de los EE.UU. (Perdue)"
    );
    assert_eq!(
        &*senate.choice.name, "HUNTER HILL  (REP)",
        "names are kept raw for display"
    );
    // 2:15 AM MST is 09:15 UTC.
    assert_eq!(senate.header.as_of, Some(1_730_884_500_000));
}

fn class_of(bytes: &[u8]) -> (ErrorClass, String) {
    let e = transform(bytes, &ctx("clarity:bad"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.family, "clarity-xml");
    assert_eq!(e.feed_id, "clarity:bad");
    (e.class, format!("{} | {}", e.location, e.message))
}

#[test]
fn an_html_error_page_is_not_this_format() {
    let html = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/001_20210106T000831Z_v273739/ALL.json",
    );
    assert_eq!(class_of(&html).0, ErrorClass::NotThisFormat);
    assert_eq!(class_of(b"<Foo><Bar/></Foo>").0, ErrorClass::NotThisFormat);
}

#[test]
fn a_truncated_document_is_rejected_as_truncated() {
    let full = fixture("clarity_enr/elex-clarity/ga_atkinson_precincts_11-3.xml");
    for cut in [full.len() / 2, full.len() - 20, 200] {
        let (class, detail) = class_of(&full[..cut]);
        assert_eq!(class, ErrorClass::Truncated, "cut at {cut}: {detail}");
    }
    assert_eq!(class_of(b"").0, ErrorClass::Truncated);
}

#[test]
fn dtds_and_external_entities_are_refused() {
    let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE ElectionResult [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ElectionResult><Region>&xxe;</Region></ElectionResult>"#;
    let (class, detail) = class_of(xxe);
    assert_eq!(class, ErrorClass::SchemaViolation);
    assert!(detail.contains("DTD"), "{detail}");
    let undeclared = br#"<ElectionResult><Region>&xxe;</Region></ElectionResult>"#;
    assert_eq!(class_of(undeclared).0, ErrorClass::SchemaViolation);
}

#[test]
fn a_non_numeric_count_names_its_location() {
    let bad = MEASURE.replace(
        r#"votes="3"><Precinct name="2181207001" votes="3""#,
        r#"votes="3"><Precinct name="2181207001" votes="3x""#,
    );
    let (class, detail) = class_of(bad.as_bytes());
    assert_eq!(class, ErrorClass::SchemaViolation);
    assert!(
        detail.contains("Contest[@key='12']")
            && detail.contains("2181207001")
            && detail.contains("3x"),
        "{detail}"
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut bad = MEASURE.as_bytes().to_vec();
    let at = MEASURE.find("HUNTER").unwrap();
    bad[at] = 0xFF;
    bad[at + 1] = 0xFE;
    assert!(transform(&bad, &ctx("c"), &FamilyInputs::default()).is_err());
}

fn zip_of(name: &str, content_len: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9));
    w.start_file(name, opts).unwrap();
    let chunk = vec![b' '; 1 << 20];
    let mut left = content_len;
    while left > 0 {
        let n = left.min(chunk.len());
        w.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn a_zip_bomb_is_refused_before_it_is_inflated() {
    // 60 MiB of spaces deflate to ~60 KiB: over the 1000x expansion cap.
    let bomb = zip_of("detail.xml", 60 << 20);
    assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
    let (class, detail) = class_of(&bomb);
    assert_eq!(class, ErrorClass::LimitExceeded, "{detail}");
    let truncated_zip =
        &fixture("clarity_enr/GA_107556_runoff_2021_napervillpol/detailxml.zip")[..1000];
    assert!(transform(truncated_zip, &ctx("c"), &FamilyInputs::default()).is_err());
    let (class, _) = class_of(&zip_of("summary.csv", 10));
    assert_eq!(class, ErrorClass::NotThisFormat);
}

#[test]
fn a_contest_nested_inside_a_vote_type_is_an_error_not_a_panic() {
    // Found by cargo fuzz: a self-closing Contest inside an open VoteType
    // closed the contest while the VoteType stayed open.
    let nested = br#"<ElectionResult><Region>GA</Region>
<Contest key="1" text="A"><Choice key="1" text="X"><VoteType name="Election Day" votes="1">
<Contest key="2" text="B"/><County name="Appling" votes="1"/></VoteType></Choice></Contest></ElectionResult>"#;
    let e = transform(nested, &ctx("clarity:fuzz"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation, "{e}");
}

#[test]
fn the_fuzzer_reproducer_is_rejected_without_panicking() {
    let crash = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/clarity_xml-76c3f2a39c91074b668d8bac37279682bf94791e");
    let bytes = std::fs::read(&crash).unwrap_or_else(|e| panic!("{}: {e}", crash.display()));
    assert!(transform(&bytes, &ctx("clarity:fuzz"), &FamilyInputs::default()).is_err());
}
