//! clarity-json against the real GA files: the GA 2020 summary.json, the whole
//! GA 2021 runoff ALL.json series (HTML error pages included), and the
//! companion checked against AP. Expected values come from a generic
//! `serde_json::Value` walk of the same bytes, not from the typed parser.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use votewire_schemas::*;

use crate::error::ErrorClass;
use crate::payload::{FamilyInputs, PayloadContext};
use crate::testkit::{by_identity, ctx, fixture};

fn transform(
    bytes: &[u8],
    ctx: &crate::payload::PayloadContext,
    inputs: &crate::payload::FamilyInputs,
) -> Result<crate::testkit::Out, crate::error::TransformError> {
    crate::testkit::materialized(super::transform, bytes, ctx, inputs)
}

const SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";

fn companion() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/demo/clarity-GA-107556-companion.json");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn all_json_ctx(file: &str) -> PayloadContext {
    PayloadContext {
        source_uri: format!("https://results.enr.clarityelections.com//GA/107556/1/json/{file}"),
        ..ctx("clarity:GA:107556")
    }
}

/// (path, is_json) for every snapshot in the series, from index.csv.
fn series() -> Vec<(String, bool)> {
    let index = String::from_utf8(fixture(&format!("{SERIES}/index.csv"))).unwrap();
    index
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[6].to_string(), f[5] == "json")
        })
        .collect()
}

/// (contest, position, area, "ALL") -> votes from a generic JSON walk.
fn independent_all(bytes: &[u8]) -> BTreeMap<(String, String, String, String), i64> {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let mut m = BTreeMap::new();
    for area in v["Contests"].as_array().unwrap() {
        let a = area["A"].as_str().unwrap().to_string();
        for (i, key) in area["C"].as_array().unwrap().iter().enumerate() {
            for (j, votes) in area["V"][i].as_array().unwrap().iter().enumerate() {
                m.insert(
                    (
                        key.as_str().unwrap().to_string(),
                        j.to_string(),
                        a.clone(),
                        "ALL".to_string(),
                    ),
                    votes.as_i64().unwrap(),
                );
            }
        }
    }
    m
}

#[test]
fn every_snapshot_of_the_ga_runoff_series_parses_or_is_rejected_as_not_json() {
    let mut accepted = 0;
    let mut rejected = 0;
    for (path, is_json) in series() {
        let bytes = fixture(&format!("{SERIES}/{path}"));
        let out = transform(&bytes, &all_json_ctx("ALL.json"), &FamilyInputs::default());
        if is_json {
            let out = out.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(by_identity(&out.cells), independent_all(&bytes), "{path}");
            assert!(out.cells.iter().all(|c| c.vote_type == VoteType::Total));
            accepted += 1;
        } else {
            let e = out.expect_err(&path);
            assert_eq!(e.class, ErrorClass::NotThisFormat, "{path}: {e}");
            assert_eq!(e.feed_id, "clarity:GA:107556");
            rejected += 1;
        }
    }
    // FORMATS.md: 18 of 137 fetches were the HTML error page.
    assert_eq!((accepted, rejected), (119, 18));
}

fn state_total(bytes: &[u8], contest: &str, position: &str) -> i64 {
    transform(bytes, &all_json_ctx("ALL.json"), &FamilyInputs::default())
        .unwrap()
        .cells
        .iter()
        .find(|c| {
            &*c.contest.source_id == contest
                && &*c.choice.source_id == position
                && &*c.unit.source_id == "-1"
        })
        .unwrap()
        .votes
}

fn county(bytes: &[u8], contest: &str, position: &str, area: &str) -> i64 {
    transform(bytes, &all_json_ctx("ALL.json"), &FamilyInputs::default())
        .unwrap()
        .cells
        .iter()
        .find(|c| {
            &*c.contest.source_id == contest
                && &*c.choice.source_id == position
                && &*c.unit.source_id == area
        })
        .unwrap()
        .votes
}

#[test]
fn counts_that_decrease_between_snapshots_are_emitted_as_published() {
    // FORMATS.md §8: Banks County went to 0 for every choice at 02:50:47Z.
    let before = fixture(&format!("{SERIES}/019_20210106T025040Z_v274465/ALL.json"));
    let after = fixture(&format!("{SERIES}/020_20210106T025047Z_v274437/ALL.json"));
    for contest in ["10000", "10100", "28400"] {
        for pos in ["0", "1"] {
            assert!(county(&before, contest, pos, "Banks") > 0);
            assert_eq!(county(&after, contest, pos, "Banks"), 0);
        }
    }
    assert!(state_total(&after, "10000", "0") < state_total(&before, "10000", "0"));
}

#[test]
fn names_come_from_the_companion_and_the_choice_order_agrees_with_ap_county_by_county() {
    let companion = companion();
    let inputs = FamilyInputs {
        companion: Some(&companion),
        ..FamilyInputs::default()
    };
    // Clarity snapshot 101 and AP snapshot 573 were committed at the same instant.
    let clarity = fixture(&format!("{SERIES}/101_20210112T055132Z_v274853/ALL.json"));
    let ap: Value = serde_json::from_slice(&fixture(
        "ap_elections_api/ap_interactives_live_GA_2021-01-05/573_20210112T055132Z/GA.json",
    ))
    .unwrap();
    let cells = transform(&clarity, &all_json_ctx("ALL.json"), &inputs)
        .unwrap()
        .cells;
    let meta: Value = serde_json::from_slice(&companion).unwrap();
    let mut checked = 0;
    for contest in meta["contests"].as_array().unwrap() {
        let key = contest["key"].as_str().unwrap();
        let Some(race_id) = contest["ap_race_id"].as_str() else {
            continue;
        };
        let race = ap["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["raceID"] == race_id)
            .unwrap();
        for (pos, choice) in contest["choices"].as_array().unwrap().iter().enumerate() {
            let ap_id = choice["ap_candidate_id"].as_str().unwrap();
            let mut ap_counties: Vec<i64> = race["results"]
                .as_object()
                .unwrap()
                .values()
                .map(|u| {
                    u["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["candidateID"] == ap_id)
                        .unwrap()["voteCount"]
                        .as_i64()
                        .unwrap()
                })
                .collect();
            let mut clarity_counties: Vec<i64> = cells
                .iter()
                .filter(|c| {
                    &*c.contest.source_id == key
                        && c.choice.source_id.as_ref() == pos.to_string()
                        && c.unit.unit_type == UnitType::County
                })
                .map(|c| c.votes)
                .collect();
            ap_counties.sort();
            clarity_counties.sort();
            assert_eq!(clarity_counties.len(), 159);
            assert_eq!(
                clarity_counties, ap_counties,
                "contest {key} position {pos} is AP {ap_id}"
            );
            let named = cells
                .iter()
                .find(|c| {
                    &*c.contest.source_id == key && c.choice.source_id.as_ref() == pos.to_string()
                })
                .unwrap();
            assert_eq!(&*named.choice.name, choice["name"].as_str().unwrap());
            assert_eq!(&*named.contest.name, contest["name"].as_str().unwrap());
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "both Senate races, both candidates");
}

#[test]
fn a_companion_that_names_the_wrong_number_of_choices_is_a_schema_violation() {
    let bad = br#"{"contests":[{"key":"10000","name":"x","choices":[{"name":"only one"}]}]}"#;
    let inputs = FamilyInputs {
        companion: Some(bad),
        ..FamilyInputs::default()
    };
    let bytes = fixture(&format!("{SERIES}/135_20210116T000509Z_v275235/ALL.json"));
    let e = transform(&bytes, &all_json_ctx("ALL.json"), &inputs).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    assert!(
        e.location.to_string().starts_with("/Contests/0/V/0"),
        "{}",
        e.location
    );
}

#[test]
fn a_truncated_snapshot_is_rejected_as_truncated() {
    let bytes = fixture(&format!("{SERIES}/135_20210116T000509Z_v275235/ALL.json"));
    for cut in [10, bytes.len() / 2, bytes.len() - 2] {
        let e = transform(
            &bytes[..cut],
            &all_json_ctx("ALL.json"),
            &FamilyInputs::default(),
        )
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::Truncated, "cut {cut}: {e}");
        assert!(e.is_retryable());
    }
}

#[test]
fn per_vote_type_files_take_their_vote_type_from_the_file_name() {
    let bytes = fixture(&format!("{SERIES}/135_20210116T000509Z_v275235/ALL.json"));
    let out = transform(
        &bytes,
        &all_json_ctx("Election_Day_Votes.json"),
        &FamilyInputs::default(),
    )
    .unwrap();
    assert!(
        out.cells
            .iter()
            .all(|c| c.vote_type == VoteType::ElectionDay
                && &*c.vote_type_raw == "Election Day Votes")
    );
    let out = transform(
        &bytes,
        &all_json_ctx("Absentee_by_Mail_Votes.json"),
        &FamilyInputs::default(),
    )
    .unwrap();
    assert!(out.cells.iter().all(|c| c.vote_type == VoteType::Absentee));
}

#[test]
fn the_ga_2020_summary_json_gives_site_level_cells_with_names_by_position() {
    let bytes = fixture("clarity_enr/elex-clarity/decoded_http_bodies/summary.json");
    let out = transform(&bytes, &ctx("clarity:GA:105369"), &FamilyInputs::default()).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let mut want = BTreeMap::new();
    for c in v.as_array().unwrap() {
        for (j, votes) in c["V"].as_array().unwrap().iter().enumerate() {
            want.insert(
                (
                    c["K"].as_str().unwrap().to_string(),
                    j.to_string(),
                    "-1".to_string(),
                    "total".to_string(),
                ),
                votes.as_i64().unwrap(),
            );
        }
    }
    assert_eq!(v.as_array().unwrap().len(), 298);
    assert_eq!(by_identity(&out.cells), want);
    let biden = out
        .cells
        .iter()
        .find(|c| &*c.contest.source_id == "5000" && &*c.choice.source_id == "1")
        .unwrap();
    assert_eq!(&*biden.choice.name, "Joseph R. Biden (Dem)");
    assert_eq!(
        biden.choice.party.as_deref(),
        Some("Dem"),
        "party read from the name when P is NP"
    );
    assert_eq!(
        (biden.precincts_reporting, biden.precincts_total),
        (Some(158), Some(159))
    );
    assert_eq!(biden.votes, 2_471_955);
}

#[test]
fn the_summary_json_serves_as_a_companion_for_all_json() {
    let summary = fixture("clarity_enr/elex-clarity/decoded_http_bodies/summary.json");
    let all = br#"{"Contests":[{"A":"Appling","C":["5000"],"V":[[6525,1779,82]]},{"A":"-1","C":["5000"],"V":[[2457910,2471955,62058]]}]}"#;
    let inputs = FamilyInputs {
        companion: Some(&summary),
        ..FamilyInputs::default()
    };
    let out = transform(all, &all_json_ctx("ALL.json"), &inputs).unwrap();
    assert_eq!(out.cells.len(), 6);
    assert_eq!(&*out.cells[2].choice.name, "Jo Jorgensen (Lib)");
    assert_eq!(
        &*out.cells[0].contest.name,
        "President of the United States"
    );
    assert_eq!(out.cells[0].unit.parent_source_id.as_deref(), Some("-1"));
}
