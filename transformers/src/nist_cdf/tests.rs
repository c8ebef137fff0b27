//! NIST ERR v2 against the real Cambridge files and NIST's synthetic ones.
//! Independent checks: the XML and JSON twins must agree cell for cell, and
//! counts are compared with a plain text scan of `<Count>` elements.

use std::collections::BTreeMap;

use votewire_schemas::*;

use crate::error::ErrorClass;
use crate::payload::FamilyInputs;
use crate::testkit::{by_identity, ctx, fixture};

fn transform_xml(
    bytes: &[u8],
    ctx: &crate::payload::PayloadContext,
    inputs: &FamilyInputs,
) -> Result<crate::testkit::Out, crate::error::TransformError> {
    crate::testkit::materialized(super::transform_xml, bytes, ctx, inputs)
}

fn transform_json(
    bytes: &[u8],
    ctx: &crate::payload::PayloadContext,
    inputs: &FamilyInputs,
) -> Result<crate::testkit::Out, crate::error::TransformError> {
    crate::testkit::materialized(super::transform_json, bytes, ctx, inputs)
}

const CAMBRIDGE: &str =
    "nist_cdf_err_v2/real_world_cambridge_MA/err-2022-09-06-Massachusetts-Cambridge";

fn xml(path: &str) -> Vec<VoteCell> {
    transform_xml(&fixture(path), &ctx("nist:err"), &FamilyInputs::default())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .cells
}

fn json(path: &str) -> Vec<VoteCell> {
    transform_json(&fixture(path), &ctx("nist:err"), &FamilyInputs::default())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .cells
}

/// (unit id, unit type, unit name) of every cell, for twin comparison.
fn units(cells: &[VoteCell]) -> BTreeMap<String, (UnitType, String)> {
    cells
        .iter()
        .map(|c| {
            (
                c.unit.source_id.to_string(),
                (c.unit.unit_type, c.unit.name.to_string()),
            )
        })
        .collect()
}

#[test]
fn the_xml_and_json_twins_give_identical_cells() {
    for (x, j) in [
        (format!("{CAMBRIDGE}.xml"), format!("{CAMBRIDGE}.json")),
        (
            "nist_cdf_err_v2/synthetic_nist/err-prim-01.xml".to_string(),
            "nist_cdf_err_v2/synthetic_nist/err-prim-01.json".to_string(),
        ),
    ] {
        let (x, j) = (xml(&x), json(&j));
        assert!(!x.is_empty());
        assert_eq!(by_identity(&x), by_identity(&j));
        assert_eq!(units(&x), units(&j));
    }
}

#[test]
fn every_vote_count_in_the_cambridge_xml_becomes_one_cell() {
    let bytes = String::from_utf8(fixture(&format!("{CAMBRIDGE}.xml"))).unwrap();
    // A plain text scan, independent of any XML parser.
    let counts: Vec<i64> = bytes
        .split("<Count>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().trim().parse().unwrap())
        .collect();
    let cells = xml(&format!("{CAMBRIDGE}.xml"));
    assert_eq!(cells.len(), bytes.matches("<VoteCounts>").count());
    assert_eq!(cells.len(), counts.len());
    assert_eq!(
        cells.iter().map(|c| c.votes).sum::<i64>(),
        counts.iter().sum::<i64>()
    );
}

#[test]
fn trailing_space_ids_are_collapsed_but_names_keep_their_text() {
    let cells = xml(&format!("{CAMBRIDGE}.xml"));
    let p = cells
        .iter()
        .find(|c| &*c.unit.source_id == "prec-1-1")
        .expect("prec-1-1 resolves despite ObjectId=\"prec-1-1 \"");
    assert_eq!(&*p.unit.name, "Precinct 1-1 ");
    assert_eq!(p.unit.unit_type, UnitType::Precinct);
    assert!(cells.iter().all(|c| !c.unit.source_id.ends_with(' ')));
}

#[test]
fn overlapping_unit_types_stay_distinct_and_primaries_name_their_party() {
    let cells = xml(&format!("{CAMBRIDGE}.xml"));
    let types: std::collections::BTreeSet<UnitType> =
        cells.iter().map(|c| c.unit.unit_type).collect();
    assert!(types.contains(&UnitType::Precinct));
    let gov = cells
        .iter()
        .find(|c| &*c.contest.source_id == "cc-dem-governor-statewide")
        .unwrap();
    assert_eq!(gov.contest.primary_party.as_deref(), Some("DEMOCRAT"));
    assert_eq!(gov.contest.vote_for, Some(1));
    assert_eq!(gov.contest.kind, ContestKind::Candidate);
    assert!(
        cells
            .iter()
            .all(|c| c.vote_type == VoteType::Total && &*c.vote_type_raw == "total")
    );
    // 2023-05-02T00:00:00Z
    assert_eq!(gov.header.as_of, Some(1_682_985_600_000));
    let healey = cells
        .iter()
        .find(|c| &*c.choice.source_id == "cs-m-healey")
        .unwrap();
    assert_eq!(&*healey.choice.name, "MAURA HEALEY");
}

#[test]
fn other_unit_types_keep_their_other_type_and_measures_their_answers() {
    let cells = json("nist_cdf_err_v2/synthetic_nist/err-gen-01.json");
    // err-gen-01 writes Type "other" with no OtherType: kept as "other".
    let other: Vec<_> = cells
        .iter()
        .filter(|c| c.unit.unit_type == UnitType::Other)
        .collect();
    assert!(!other.is_empty());
    assert!(
        other
            .iter()
            .all(|c| c.unit.type_raw.as_deref() == Some("other"))
    );
    let with_other_type = br#"{"@type":"ElectionResults.ElectionReport",
      "GpUnit":[{"@id":"ed-14","@type":"ElectionResults.ReportingUnit","Type":"other","OtherType":"gov-council"}],
      "Election":[{"Contest":[{"@id":"c","@type":"ElectionResults.CandidateContest","Name":"x",
      "ContestSelection":[{"@id":"s","VoteCounts":[{"GpUnitId":"ed-14","Type":"other","OtherType":"early-in-person","Count":3}]}]}]}]}"#;
    let c = &transform_json(with_other_type, &ctx("n"), &FamilyInputs::default())
        .unwrap()
        .cells[0];
    assert_eq!(c.unit.type_raw.as_deref(), Some("gov-council"));
    assert_eq!(&*c.vote_type_raw, "early-in-person");
    assert_eq!(c.vote_type, VoteType::Early);
    let kinds: std::collections::BTreeSet<ContestKind> =
        cells.iter().map(|c| c.contest.kind).collect();
    assert!(kinds.contains(&ContestKind::BallotMeasure), "{kinds:?}");
    assert!(
        cells
            .iter()
            .filter(|c| c.contest.kind == ContestKind::BallotMeasure)
            .any(|c| matches!(c.choice.kind, ChoiceKind::Yes | ChoiceKind::No))
    );
}

#[test]
fn a_pre_election_report_has_no_cells() {
    assert!(json("nist_cdf_err_v2/synthetic_nist/pe-err-gen-01.json").is_empty());
}

#[test]
fn other_profiles_dtds_and_truncation_are_rejected() {
    let v1 = fixture("google_civics_cdf/post_election_sample_feed_summary.xml");
    let e = transform_xml(&v1, &ctx("n"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::NotThisFormat, "{e}");
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<ElectionReport xmlns="http://itl.nist.gov/ns/voting/1500-100/v2"><Issuer>&x;</Issuer></ElectionReport>"#;
    let e = transform_xml(xxe, &ctx("n"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    assert!(e.message.contains("DTD"), "{e}");
    let full = fixture(&format!("{CAMBRIDGE}.xml"));
    let e =
        transform_xml(&full[..full.len() / 2], &ctx("n"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::Truncated, "{e}");
    let full = fixture(&format!("{CAMBRIDGE}.json"));
    let e =
        transform_json(&full[..full.len() / 2], &ctx("n"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::Truncated, "{e}");
    let e = transform_json(
        br#"{"@type":"ElectionResults.Something"}"#,
        &ctx("n"),
        &FamilyInputs::default(),
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotThisFormat);
    let dangling = br#"{"@type":"ElectionResults.ElectionReport","Election":[{"Contest":[{"@id":"c","@type":"ElectionResults.CandidateContest","Name":"x",
      "ContestSelection":[{"@id":"s","VoteCounts":[{"GpUnitId":"nowhere","Type":"total","Count":3}]}]}]}]}"#;
    let e = transform_json(dangling, &ctx("n"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    assert!(e.message.contains("nowhere"));
}
