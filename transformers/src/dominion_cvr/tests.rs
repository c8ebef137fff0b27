//! dominion-cvr against the real San Francisco CVR export. The expected tally
//! comes from a generic `serde_json::Value` walk of the same files.

use std::collections::BTreeMap;

use serde_json::{Value, json};
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

const DIR: &str = "other_vendor/dominion_cvr_json";

fn manifest_bundle() -> Vec<u8> {
    let mut bundle = serde_json::Map::new();
    for m in [
        "ContestManifest",
        "CandidateManifest",
        "PrecinctPortionManifest",
        "CountingGroupManifest",
    ] {
        let v: Value = serde_json::from_slice(&fixture(&format!("{DIR}/{m}.json"))).unwrap();
        bundle.insert(m.to_string(), v);
    }
    serde_json::to_vec(&Value::Object(bundle)).unwrap()
}

/// Votes per (contest id, candidate id), walking the CVR generically.
fn independent(bytes: &[u8]) -> BTreeMap<(String, String), i64> {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let mut m = BTreeMap::new();
    for s in v["Sessions"].as_array().unwrap() {
        let ballot = if s["Modified"]["IsCurrent"] == json!(true) {
            &s["Modified"]
        } else {
            &s["Original"]
        };
        for card in ballot["Cards"].as_array().unwrap() {
            for c in card["Contests"].as_array().unwrap() {
                for mark in c["Marks"].as_array().unwrap() {
                    if mark["IsVote"] == json!(true)
                        && mark["IsAmbiguous"] == json!(false)
                        && mark["Rank"] == json!(1)
                    {
                        *m.entry((c["Id"].to_string(), mark["CandidateId"].to_string()))
                            .or_default() += 1;
                    }
                }
            }
        }
    }
    m
}

#[test]
fn cast_vote_records_are_tallied_per_contest_and_candidate() {
    let bundle = manifest_bundle();
    let inputs = FamilyInputs {
        companion: Some(&bundle),
        ..FamilyInputs::default()
    };
    for f in ["CvrExport_24940.json", "CvrExport_42.json"] {
        let bytes = fixture(&format!("{DIR}/{f}"));
        let out = transform(&bytes, &ctx("dominion:sf"), &inputs).unwrap();
        let mut got: BTreeMap<(String, String), i64> = BTreeMap::new();
        for c in out.cells.iter().filter(|c| {
            c.choice.kind != ChoiceKind::UnderVote && c.choice.kind != ChoiceKind::OverVote
        }) {
            *got.entry((
                c.contest.source_id.to_string(),
                c.choice.source_id.to_string(),
            ))
            .or_default() += c.votes;
        }
        assert_eq!(got, independent(&bytes), "{f}");
    }
}

#[test]
fn names_vote_types_and_units_come_from_the_manifests() {
    let bundle = manifest_bundle();
    let inputs = FamilyInputs {
        companion: Some(&bundle),
        ..FamilyInputs::default()
    };
    let out = transform(
        &fixture(&format!("{DIR}/CvrExport_42.json")),
        &ctx("dominion:sf"),
        &inputs,
    )
    .unwrap();
    let president = out
        .cells
        .iter()
        .find(|c| &*c.contest.source_id == "1")
        .unwrap();
    assert_eq!(&*president.contest.name, "PRESIDENT AND VICE PRESIDENT");
    assert_eq!(president.contest.vote_for, Some(1));
    assert!(
        out.cells
            .iter()
            .any(|c| &*c.choice.name == "JOSEPH R. BIDEN AND KAMALA D. HARRIS")
    );
    assert!(
        out.cells
            .iter()
            .all(|c| matches!(c.vote_type, VoteType::ElectionDay | VoteType::Absentee))
    );
    let unit = &president.unit;
    assert_eq!(unit.unit_type, UnitType::SplitPrecinct);
    assert!(unit.name.starts_with("PCT "), "{}", unit.name);
    assert!(
        unit.parent_source_id
            .as_deref()
            .is_some_and(|p| p.starts_with("precinct:"))
    );
}

#[test]
fn without_manifests_ids_stand_in_and_a_zip_export_is_read_whole() {
    let bytes = fixture(&format!("{DIR}/CvrExport_24940.json"));
    let bare = transform(&bytes, &ctx("dominion:sf"), &FamilyInputs::default()).unwrap();
    assert!(
        bare.cells
            .iter()
            .all(|c| c.contest.name == c.contest.source_id)
    );
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for f in [
        "CvrExport_24940.json",
        "ContestManifest.json",
        "CandidateManifest.json",
        "CountingGroupManifest.json",
        "PrecinctPortionManifest.json",
    ] {
        w.start_file(f, opts).unwrap();
        std::io::Write::write_all(&mut w, &fixture(&format!("{DIR}/{f}"))).unwrap();
    }
    let zipped = w.finish().unwrap().into_inner();
    let out = transform(&zipped, &ctx("dominion:sf"), &FamilyInputs::default()).unwrap();
    assert_eq!(out.cells.len(), bare.cells.len());
    assert!(
        out.cells
            .iter()
            .any(|c| &*c.contest.name == "PRESIDENT AND VICE PRESIDENT")
    );
}

#[test]
fn other_documents_are_rejected() {
    let manifest = fixture(&format!("{DIR}/ContestManifest.json"));
    let e = transform(&manifest, &ctx("d"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation, "{e}");
    let bytes = fixture(&format!("{DIR}/CvrExport_24940.json"));
    let e = transform(
        &bytes[..bytes.len() / 2],
        &ctx("d"),
        &FamilyInputs::default(),
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Truncated);
}
