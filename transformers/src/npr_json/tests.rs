//! npr-json against the captured GA runoff file; expected values were read
//! from the file with Python.

use votewire_schemas::*;

use crate::error::ErrorClass;
use crate::payload::FamilyInputs;
use crate::testkit::{ctx, fixture};

fn transform(
    bytes: &[u8],
    ctx: &crate::payload::PayloadContext,
    inputs: &FamilyInputs,
) -> Result<crate::testkit::Out, crate::error::TransformError> {
    crate::testkit::materialized(super::transform, bytes, ctx, inputs)
}

#[test]
fn the_ga_runoff_races_give_statewide_candidate_totals() {
    let out = transform(
        &fixture("other_vendor/media_derived_ga_runoff_2021/GA_S_1_5_2021.json"),
        &ctx("npr:GA"),
        &FamilyInputs::default(),
    )
    .unwrap();
    // From the file: 12597 Warnock 2,287,787 (winner), Loeffler 2,194,480;
    // 12599 Ossoff 2,268,612, Perdue 2,213,604; 2,656 of 2,656 precincts.
    assert_eq!(out.cells.len(), 4);
    let warnock = out
        .cells
        .iter()
        .find(|c| &*c.choice.name == "Raphael Warnock")
        .unwrap();
    assert_eq!(
        (&*warnock.contest.source_id, warnock.votes, warnock.winner),
        ("12597", 2_287_787, Some(true))
    );
    assert_eq!(
        (&*warnock.unit.source_id, warnock.unit.unit_type),
        ("state:GA", UnitType::State)
    );
    assert_eq!(
        (
            warnock.precincts_reporting,
            warnock.precincts_total,
            warnock.pct_expected_vote
        ),
        (Some(2656), Some(2656), Some(99.0))
    );
    let perdue = out
        .cells
        .iter()
        .find(|c| &*c.choice.name == "David Perdue")
        .unwrap();
    assert_eq!(
        (perdue.votes, perdue.choice.incumbent, perdue.winner),
        (2_213_604, Some(true), None)
    );
    assert_eq!(warnock.header.as_of, Some(1_610_410_138_933));
}

#[test]
fn other_json_is_rejected() {
    let e = transform(br#"{"results": []}"#, &ctx("n"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    let e = transform(b"<html></html>", &ctx("n"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::NotThisFormat);
}
