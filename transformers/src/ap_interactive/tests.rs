//! ap-interactive against the GA 2021 runoff capture. Expected values come
//! from a generic `serde_json::Value` walk, or were read with Python from the
//! fixture (noted where used).

use std::collections::BTreeMap;

use serde_json::Value;
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

const DIR: &str = "ap_elections_api/ap_interactives_live_GA_2021-01-05";

fn independent(bytes: &[u8]) -> BTreeMap<(String, String, String, String), i64> {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let mut m = BTreeMap::new();
    for race in v["results"].as_array().unwrap() {
        let id = race["raceID"].as_str().unwrap();
        let units =
            std::iter::once(&race["summary"]).chain(race["results"].as_object().unwrap().values());
        for u in units {
            for c in u["results"].as_array().unwrap() {
                let key = (
                    id.to_string(),
                    c["candidateID"].as_str().unwrap().to_string(),
                    u["ruid"].as_str().unwrap().to_string(),
                    "total".to_string(),
                );
                assert!(m.insert(key, c["voteCount"].as_i64().unwrap()).is_none());
            }
        }
    }
    m
}

fn snapshots() -> Vec<(String, bool)> {
    String::from_utf8(fixture(&format!("{DIR}/index.csv")))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[5].to_string(), f[4] == "json")
        })
        .collect()
}

#[test]
fn every_snapshot_parses_or_is_rejected_as_truncated() {
    let (mut ok, mut bad) = (0, 0);
    for (path, is_json) in snapshots() {
        let bytes = fixture(&format!("{DIR}/{path}"));
        let out = transform(&bytes, &ctx("ap-interactive:GA"), &FamilyInputs::default());
        if is_json {
            let out = out.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(by_identity(&out.cells), independent(&bytes), "{path}");
            ok += 1;
        } else {
            let e = out.unwrap_err();
            assert_eq!(e.class, ErrorClass::Truncated, "{path}: {e}");
            assert!(e.is_retryable());
            bad += 1;
        }
    }
    assert_eq!((ok, bad), (8, 1));
}

#[test]
fn a_county_reset_to_zero_is_published_as_zero() {
    // Read with Python from the fixture: Rockdale (13247) in GA-S-12597 had
    // 8,284 and 2,317 at 00:20:30Z and 0 and 0 at 00:21:11Z; the statewide sum
    // fell from 33,108 to 22,507.
    let at = |file: &str| {
        transform(
            &fixture(&format!("{DIR}/{file}")),
            &ctx("ap-interactive:GA"),
            &FamilyInputs::default(),
        )
        .unwrap()
        .cells
    };
    let sum = |cells: &[VoteCell], unit: &str| -> i64 {
        cells
            .iter()
            .filter(|c| &*c.contest.source_id == "GA-S-12597" && &*c.unit.source_id == unit)
            .map(|c| c.votes)
            .sum()
    };
    let before = at("009_20210106T002030Z/GA.json");
    let after = at("010_20210106T002111Z/GA.json");
    assert_eq!(sum(&before, "13247"), 8_284 + 2_317);
    assert_eq!(sum(&after, "13247"), 0);
    assert_eq!((sum(&before, "GA"), sum(&after, "GA")), (33_108, 22_507));
}

#[test]
fn names_come_from_the_companion_and_calls_and_expected_vote_are_kept() {
    let companion = br#"{"races":[{"raceID":"GA-S-12597","name":"US Senate - Special",
        "candidates":[{"candidateID":"GA22251","name":"Raphael Warnock","party":"Dem"}]}],
        "units":{"13001":"Appling"}}"#;
    let inputs = FamilyInputs {
        companion: Some(companion),
        ..FamilyInputs::default()
    };
    let out = transform(
        &fixture(&format!("{DIR}/573_20210112T055132Z/GA.json")),
        &ctx("ap-interactive:GA"),
        &inputs,
    )
    .unwrap();
    let warnock_state = out
        .cells
        .iter()
        .find(|c| &*c.choice.source_id == "GA22251" && c.unit.unit_type == UnitType::State)
        .unwrap();
    assert_eq!(&*warnock_state.choice.name, "Raphael Warnock");
    assert_eq!(warnock_state.choice.party.as_deref(), Some("Dem"));
    assert_eq!(&*warnock_state.contest.name, "US Senate - Special");
    assert_eq!(warnock_state.votes, 2_287_787);
    assert_eq!(warnock_state.winner, Some(true));
    assert_eq!(warnock_state.pct_expected_vote, Some(99.0));
    assert_eq!(
        (
            warnock_state.precincts_reporting,
            warnock_state.precincts_total
        ),
        (Some(2656), Some(2656))
    );
    let appling = out
        .cells
        .iter()
        .find(|c| &*c.unit.source_id == "13001")
        .unwrap();
    assert_eq!(
        (&*appling.unit.name, appling.unit.fips.as_deref()),
        ("Appling", Some("13001"))
    );
    assert_eq!(appling.unit.parent_source_id.as_deref(), Some("GA"));
    let unnamed = out
        .cells
        .iter()
        .find(|c| &*c.choice.source_id == "GA21798")
        .unwrap();
    assert_eq!(
        &*unnamed.choice.name, "GA21798",
        "the id stands in where the companion is silent"
    );
    // 2021-01-12T00:09:58.230Z
    assert_eq!(warnock_state.header.as_of, Some(1_610_410_198_230));
}

#[test]
fn the_summary_variant_keyed_by_state_is_read() {
    let out = transform(
        &fixture(&format!("{DIR}/summary.json")),
        &ctx("ap-interactive:GA"),
        &FamilyInputs::default(),
    )
    .unwrap();
    assert_eq!(out.cells.len(), 4);
    assert!(
        out.cells
            .iter()
            .all(|c| c.unit.unit_type == UnitType::State)
    );
}
