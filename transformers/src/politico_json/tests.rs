//! politico-json against the captured GA runoff county file; expected values
//! come from a generic JSON walk of the same bytes.

use serde_json::Value;
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
fn every_county_count_becomes_a_cell() {
    let bytes = fixture("other_vendor/media_derived_ga_runoff_2021/senSpecial-counties.json");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let races = v["races"].as_array().unwrap();
    let counts: Vec<i64> = races
        .iter()
        .flat_map(|r| {
            r["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["vote"].as_i64().unwrap())
        })
        .collect();
    let out = transform(&bytes, &ctx("politico:GA"), &FamilyInputs::default()).unwrap();
    assert_eq!(out.cells.len(), counts.len());
    assert_eq!(
        out.cells.iter().map(|c| c.votes).sum::<i64>(),
        counts.iter().sum::<i64>()
    );
    let appling = out
        .cells
        .iter()
        .find(|c| &*c.unit.source_id == "13001" && &*c.choice.source_id == "22243")
        .unwrap();
    assert_eq!(
        (
            appling.votes,
            appling.unit.unit_type,
            appling.unit.parent_source_id.as_deref()
        ),
        (5690, UnitType::County, Some("13"))
    );
    assert_eq!(
        (appling.precincts_reporting, appling.precincts_total),
        (Some(9), Some(9))
    );
    // 2021-01-16T01:01:37+00:00
    assert_eq!(appling.header.as_of, Some(1_610_758_897_000));
}

#[test]
fn other_json_is_rejected() {
    let e = transform(
        br#"{"races": [{"raceid": "1"}]}"#,
        &ctx("p"),
        &FamilyInputs::default(),
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
}
