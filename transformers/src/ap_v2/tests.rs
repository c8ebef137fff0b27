//! ap-v2 against the real elex fixtures. Expected values come from a generic
//! `serde_json::Value` walk of the same bytes.

use std::collections::BTreeMap;

use serde_json::{Value, json};
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

const DIR: &str = "ap_elections_api/elex_v2_fixtures";

fn independent(bytes: &[u8]) -> BTreeMap<(String, String, String, String), i64> {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let mut m = BTreeMap::new();
    for race in v["races"].as_array().unwrap() {
        let race_id = race["raceID"].as_str().unwrap().to_string();
        // Initialization files list races with no reporting units yet.
        for u in race["reportingUnits"].as_array().into_iter().flatten() {
            let unit = if u["level"] == "state" {
                format!("state:{}", u["statePostal"].as_str().unwrap())
            } else {
                u["reportingunitID"].as_str().unwrap().to_string()
            };
            for c in u["candidates"].as_array().unwrap() {
                if let Some(votes) = c["voteCount"].as_i64() {
                    let key = (
                        race_id.clone(),
                        c["candidateID"].as_str().unwrap().to_string(),
                        unit.clone(),
                        "total".to_string(),
                    );
                    assert!(m.insert(key, votes).is_none());
                }
            }
        }
    }
    m
}

#[test]
fn every_vote_bearing_ap_fixture_matches_an_independent_walk() {
    for f in [
        "00000000_fake.json",
        "20121106_ak_prez.json",
        "20121106_me_fl_senate.json",
        "20151103_national.json",
        "20151103_national_initialization.json",
        "20160201_district_results.json",
        "20160305_me_no_townships.json",
        "20160426-ri_mail_ballots.json",
        "20161100_national_pre_results.json",
    ] {
        let bytes = fixture(&format!("{DIR}/{f}"));
        let out = transform(&bytes, &ctx("ap:v2"), &FamilyInputs::default())
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(by_identity(&out.cells), independent(&bytes), "{f}");
        assert!(
            out.cells
                .iter()
                .all(|c| c.vote_type == VoteType::Total && &*c.vote_type_raw == "total")
        );
    }
}

#[test]
fn ballot_issues_state_units_and_the_next_request_cursor() {
    let bytes = fixture(&format!("{DIR}/20151103_national.json"));
    let out = transform(&bytes, &ctx("ap:v2:2015-11-03"), &FamilyInputs::default()).unwrap();
    let yes = out
        .cells
        .iter()
        .find(|c| {
            &*c.contest.source_id == "7582"
                && &*c.unit.source_id == "state:CO"
                && &*c.choice.name == "Yes"
        })
        .unwrap();
    assert_eq!(yes.votes, 805_617);
    assert_eq!(yes.winner, Some(true));
    assert_eq!(yes.contest.kind, ContestKind::BallotMeasure);
    assert_eq!(yes.choice.kind, ChoiceKind::Yes);
    assert_eq!(
        (yes.precincts_reporting, yes.precincts_total),
        (Some(1973), Some(1973))
    );
    assert_eq!(yes.unit.unit_type, UnitType::State);
    // 2015-11-10T18:55:18.832Z
    assert_eq!(yes.header.as_of, Some(1_447_181_718_832));
    let adams = out
        .cells
        .iter()
        .find(|c| &*c.unit.source_id == "6001")
        .unwrap();
    assert_eq!(
        (adams.unit.unit_type, adams.unit.parent_source_id.as_deref()),
        (UnitType::County, Some("state:CO"))
    );
    assert_eq!(
        adams.unit.fips.as_deref(),
        Some("8001"),
        "fipsCode as AP wrote it"
    );
    let next = out
        .facts
        .next_request
        .expect("nextrequest is handed to the ingestor");
    assert!(
        next.starts_with("http://api.ap.org/v2/elections/2015-11-03?"),
        "{next}"
    );
    assert!(!out.facts.is_test);
}

#[test]
fn test_data_is_flagged_and_mail_ballot_buckets_are_virtual_units() {
    let bytes = fixture(&format!("{DIR}/20160426-ri_mail_ballots.json"));
    let out = transform(&bytes, &ctx("ap:v2:2016-04-26"), &FamilyInputs::default()).unwrap();
    assert!(out.facts.is_test);
    assert!(out.cells.iter().all(|c| c.header.mode == FeedMode::Test));
    let mail: Vec<_> = out
        .cells
        .iter()
        .filter(|c| c.unit.name.contains("Mail Ballots"))
        .collect();
    assert!(!mail.is_empty());
    assert!(mail.iter().all(|c| c.unit.unit_type == UnitType::Virtual));
    assert!(
        out.cells
            .iter()
            .any(|c| c.unit.unit_type == UnitType::Municipality),
        "CT and RI subunits are towns"
    );
}

#[test]
fn delegate_districts_keep_their_district_type() {
    let bytes = fixture(&format!("{DIR}/20160201_district_results.json"));
    let out = transform(&bytes, &ctx("ap:v2"), &FamilyInputs::default()).unwrap();
    let types: std::collections::BTreeSet<_> = out
        .cells
        .iter()
        .filter(|c| c.unit.unit_type == UnitType::District)
        .map(|c| c.unit.type_raw.as_deref().unwrap().to_string())
        .collect();
    assert_eq!(types, ["AtLarge", "CD", "PLEO"].map(String::from).into());
    assert!(
        out.cells.iter().all(|c| c.contest.primary_party.is_some()),
        "caucuses are party contests"
    );
}

#[test]
fn non_vote_products_and_bad_payloads_are_rejected() {
    for f in [
        "20160118_delsum.json",
        "20160118_delsuper.json",
        "20160818_senate_trends.json",
        "00000000_elections.json",
    ] {
        let e = transform(
            &fixture(&format!("{DIR}/{f}")),
            &ctx("ap:v2"),
            &FamilyInputs::default(),
        )
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::NotThisFormat, "{f}: {e}");
    }
    let bytes = fixture(&format!("{DIR}/20151103_national.json"));
    let e = transform(
        &bytes[..bytes.len() / 3],
        &ctx("ap:v2"),
        &FamilyInputs::default(),
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Truncated);
    let html = b"<html><body>403 Forbidden: quota exceeded</body></html>";
    assert_eq!(
        transform(html, &ctx("ap:v2"), &FamilyInputs::default())
            .unwrap_err()
            .class,
        ErrorClass::NotThisFormat
    );
    let wrong = br#"{"races":[{"raceID":"1","reportingUnits":[{"statePostal":"CO","level":"galaxy","candidates":[]}]}]}"#;
    let e = transform(wrong, &ctx("ap:v2"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    assert_eq!(e.location.to_string(), "/races/0/reportingUnits/0/level");
}

#[test]
fn the_fuzzer_reproducer_with_a_byte_order_mark_in_a_timestamp_does_not_panic() {
    let crash = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/ap_v2-072fdcb55104019582758351f36db1b0d86225f1");
    let bytes = std::fs::read(&crash).unwrap_or_else(|e| panic!("{}: {e}", crash.display()));
    let out = transform(&bytes, &ctx("ap:fuzz"), &FamilyInputs::default())
        .expect("the rest of the payload is valid");
    assert_eq!(out.cells.len(), 5);
    assert!(
        out.cells.iter().all(|c| c.header.as_of.is_none()),
        "an unreadable timestamp is no timestamp, not a guess"
    );
}

/// The national fixture with `isTruncated` and AP's expected-vote
/// percentages written in: a unit's own `eevp`, and a race-level one that
/// only the race's state unit takes.
#[test]
fn is_truncated_and_eevp_are_read_and_odd_values_do_not_refuse_the_answer() {
    let bytes = fixture(&format!("{DIR}/20151103_national.json"));
    let plain = transform(&bytes, &ctx("ap:v2"), &FamilyInputs::default()).unwrap();
    assert!(!plain.facts.truncated, "no isTruncated: a whole answer");
    assert!(plain.cells.iter().all(|c| c.pct_expected_vote.is_none()));

    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    v["isTruncated"] = Value::Bool(true);
    let races = v["races"].as_array_mut().unwrap();
    let co = races.iter_mut().find(|r| r["raceID"] == "7582").unwrap();
    co["eevp"] = serde_json::json!(40.0);
    for u in co["reportingUnits"].as_array_mut().unwrap() {
        if u["reportingunitID"] == "6001" {
            u["eevp"] = serde_json::json!(87.5);
        }
    }
    let edited = serde_json::to_vec(&v).unwrap();
    let out = transform(&edited, &ctx("ap:v2"), &FamilyInputs::default()).unwrap();
    assert!(out.facts.truncated);
    assert!(out.facts.next_request.is_some());
    let in_race = |unit: &str| {
        out.cells
            .iter()
            .filter(|c| &*c.contest.source_id == "7582" && &*c.unit.source_id == unit)
            .map(|c| c.pct_expected_vote)
            .collect::<Vec<_>>()
    };
    let state = in_race("state:CO");
    assert!(
        !state.is_empty() && state.iter().all(|p| *p == Some(40.0)),
        "{state:?}"
    );
    let adams = in_race("6001");
    assert!(
        !adams.is_empty() && adams.iter().all(|p| *p == Some(87.5)),
        "{adams:?}"
    );
    let arapahoe = in_race("6002");
    assert!(
        !arapahoe.is_empty() && arapahoe.iter().all(|p| p.is_none()),
        "{arapahoe:?}"
    );
    let others: Vec<_> = out
        .cells
        .iter()
        .filter(|c| &*c.contest.source_id != "7582")
        .collect();
    assert!(!others.is_empty() && others.iter().all(|c| c.pct_expected_vote.is_none()));

    // Past 100 stands (turnout beat the estimate); a number written as
    // text is read; null or an object is no value, not a refused answer.
    let first = |v: &Value| {
        let out = transform(
            &serde_json::to_vec(v).unwrap(),
            &ctx("ap:v2"),
            &FamilyInputs::default(),
        )
        .unwrap();
        let unit = v["races"][0]["reportingUnits"][1]["reportingunitID"]
            .as_str()
            .unwrap()
            .to_string();
        out.cells
            .iter()
            .find(|c| &*c.contest.source_id == "7582" && *c.unit.source_id == *unit)
            .unwrap()
            .pct_expected_vote
    };
    let mut odd = v.clone();
    for (eevp, read) in [
        (json!(100.5), Some(100.5)),
        (json!("97.5"), Some(97.5)),
        (json!(null), None),
        (json!({"total": 50}), None),
        (json!("n/a"), None),
    ] {
        odd["races"][0]["reportingUnits"][1]["eevp"] = eevp.clone();
        assert_eq!(first(&odd), read, "eevp {eevp}");
    }
    let mut flag = v.clone();
    for (truncated, read) in [
        (json!(null), false),
        (json!("true"), false),
        (json!(true), true),
    ] {
        flag["isTruncated"] = truncated.clone();
        let out = transform(
            &serde_json::to_vec(&flag).unwrap(),
            &ctx("ap:v2"),
            &FamilyInputs::default(),
        )
        .unwrap();
        assert_eq!(out.facts.truncated, read, "isTruncated {truncated}");
    }
}

/// An election's zero counts: every count of a real answer at zero, its
/// calls gone, its races, units and choices all kept.
#[test]
fn zero_counts_keep_every_cell_and_zero_votes_precincts_expected_vote_and_calls() {
    let bytes = fixture(&format!("{DIR}/20151103_national.json"));
    let ctx = ctx("ap:zero");
    let mut out = super::transform(&bytes, &ctx, &FamilyInputs::default()).unwrap();
    let before = out.cells.rows().to_vec();
    assert!(before.iter().any(|r| r.votes > 0));
    assert!(before.iter().any(|r| r.winner == Some(true)));
    assert!(
        before
            .iter()
            .any(|r| r.precincts_reporting.is_some_and(|p| p > 0))
    );
    out.cells.zero_counts();
    let after = out.cells.rows();
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            (a.contest, a.unit, a.choice, a.label),
            (b.contest, b.unit, b.choice, b.label)
        );
        assert_eq!(a.votes, 0);
        assert_eq!(a.winner, None);
        assert_eq!(a.precincts_reporting, b.precincts_reporting.map(|_| 0));
        assert_eq!(a.pct_expected_vote, b.pct_expected_vote.map(|_| 0.0));
        assert_eq!(a.precincts_total, b.precincts_total, "totals stay");
    }
}
