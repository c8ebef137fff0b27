//! wineds-txt against the real San Francisco exports; expected values come
//! from a plain column slice of each line, not from the parser.

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
fn every_line_of_both_exports_is_one_cell_with_its_signed_count() {
    for f in [
        "other_vendor/dominion_wineds/wineds_simple.txt",
        "other_vendor/dominion_wineds/wineds_complete.txt",
    ] {
        let bytes = fixture(f);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let expected: i64 = lines
            .iter()
            .map(|l| {
                let v = l[11..16].trim_start_matches('0');
                if v.is_empty() {
                    0
                } else {
                    v.parse::<i64>().unwrap()
                }
            })
            .sum();
        let out = transform(&bytes, &ctx("wineds:sf"), &FamilyInputs::default()).unwrap();
        assert_eq!(out.cells.len(), lines.len(), "{f}");
        assert_eq!(
            out.cells.iter().map(|c| c.votes).sum::<i64>(),
            expected,
            "{f}"
        );
    }
}

#[test]
fn negative_counts_mail_precincts_pseudo_contests_and_vote_types() {
    let out = transform(
        &fixture("other_vendor/dominion_wineds/wineds_complete.txt"),
        &ctx("wineds:sf"),
        &FamilyInputs::default(),
    )
    .unwrap();
    let neg = out
        .cells
        .iter()
        .find(|c| c.votes < 0)
        .expect("FORMATS.md: a WinEDS row holds 000-1");
    assert_eq!(neg.votes, -1);
    assert_eq!(&*neg.contest.source_id, "120|State Treasurer");
    assert_eq!(
        (&*neg.choice.name, neg.choice.kind),
        ("WRITE-IN", ChoiceKind::WriteIn)
    );
    assert_eq!(neg.vote_type, VoteType::Absentee);
    assert_eq!(&*neg.vote_type_raw, "TC-VBM Reporting");
    let mb = out
        .cells
        .iter()
        .find(|c| c.unit.name.ends_with(" MB"))
        .unwrap();
    assert_eq!(mb.unit.unit_type, UnitType::Virtual);
    let reg = out
        .cells
        .iter()
        .find(|c| c.contest.name.starts_with("REGISTERED VOTERS"))
        .unwrap();
    assert_eq!(
        (reg.contest.kind, reg.choice.kind, reg.vote_type),
        (
            ContestKind::Pseudo,
            ChoiceKind::RegisteredVoters,
            VoteType::Total
        )
    );
    assert!(
        out.cells
            .iter()
            .any(|c| c.vote_type == VoteType::ElectionDay)
    );
}

#[test]
fn other_text_is_not_a_wineds_export() {
    let e = transform(
        b"county,precinct,office\nA,B,C\n",
        &ctx("w"),
        &FamilyInputs::default(),
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotThisFormat);
    let bad = format!("00010011108008x7{}", " ".repeat(189));
    let e = transform(bad.as_bytes(), &ctx("w"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
}
