//! The report in the JSON encoding (`application/json`, NIST's
//! `@type`d objects).

use votewire_schemas::ContestKind;

use super::model::{Contest, Model, Selection, Unit};
use super::{SCOPE_ID, election_date};

pub(super) fn intl_json(text: &str) -> serde_json::Value {
    serde_json::json!({
        "@type": "ElectionResults.InternationalizedText",
        "Text": [{"@type": "ElectionResults.LanguageString", "Content": text, "Language": "en"}],
    })
}

pub(super) fn to_json(m: &Model, election_id: &str, generated: &str) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let units: Vec<Value> = m.units.iter().map(unit_json).collect();
    let candidates: Vec<Value> = m
        .candidates
        .iter()
        .map(|c| {
            let mut o = Map::new();
            o.insert("@type".into(), json!("ElectionResults.Candidate"));
            o.insert("@id".into(), json!(c.id));
            o.insert("BallotName".into(), intl_json(&c.name));
            if let Some(p) = &c.party {
                o.insert("PartyId".into(), json!(p));
            }
            Value::Object(o)
        })
        .collect();
    let contests: Vec<Value> = m.contests.iter().map(|c| contest_json(m, c)).collect();
    let date = election_date(election_id, generated);
    let mut election = Map::new();
    election.insert("@type".into(), json!("ElectionResults.Election"));
    if !candidates.is_empty() {
        election.insert("Candidate".into(), json!(candidates));
    }
    election.insert("Contest".into(), json!(contests));
    election.insert("ElectionScopeId".into(), json!(SCOPE_ID));
    election.insert("Name".into(), intl_json(election_id));
    election.insert("StartDate".into(), json!(date));
    election.insert("EndDate".into(), json!(date));
    election.insert("Type".into(), json!(m.election_type));
    let parties: Vec<Value> = m
        .parties
        .iter()
        .map(|(id, label)| {
            json!({"@type": "ElectionResults.Party", "@id": id, "Name": intl_json(label)})
        })
        .collect();
    let mut report = Map::new();
    report.insert("@type".into(), json!("ElectionResults.ElectionReport"));
    report.insert("Election".into(), json!([Value::Object(election)]));
    report.insert("Format".into(), json!(m.format));
    report.insert("GeneratedDate".into(), json!(generated));
    report.insert("GpUnit".into(), json!(units));
    report.insert("Issuer".into(), json!("votewire"));
    report.insert("IssuerAbbreviation".into(), json!("votewire"));
    if m.is_test {
        report.insert("IsTest".into(), json!(true));
    }
    if !parties.is_empty() {
        report.insert("Party".into(), json!(parties));
    }
    report.insert("SequenceStart".into(), json!(1));
    report.insert("SequenceEnd".into(), json!(1));
    report.insert("Status".into(), json!(m.status));
    report.insert(
        "VendorApplicationId".into(),
        json!(format!("votewire {}", env!("CARGO_PKG_VERSION"))),
    );
    Value::Object(report)
}

/// A `ReportingUnit` in the JSON encoding.
pub(super) fn unit_json(u: &Unit) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut o = Map::new();
    o.insert("@type".into(), json!("ElectionResults.ReportingUnit"));
    o.insert("@id".into(), json!(u.id));
    if !u.composing.is_empty() {
        o.insert("ComposingGpUnitIds".into(), json!(u.composing));
    }
    o.insert("Name".into(), intl_json(&u.name));
    if let (Some(r), Some(t)) = (u.reporting, u.total) {
        o.insert("SubUnitsReported".into(), json!(r));
        o.insert("TotalSubUnits".into(), json!(t));
    }
    o.insert("Type".into(), json!(u.type_));
    if let Some(t) = &u.other_type {
        o.insert("OtherType".into(), json!(t));
    }
    Value::Object(o)
}

/// A contest, its selections and their counts, in the JSON encoding.
pub(super) fn contest_json(m: &Model, c: &Contest) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let kind = match c.kind {
        ContestKind::BallotMeasure => "BallotMeasureContest",
        ContestKind::Party => "PartyContest",
        ContestKind::Retention => "RetentionContest",
        _ => "CandidateContest",
    };
    let selections: Vec<Value> = c
        .selections
        .iter()
        .map(|s| selection_json(c.kind, s))
        .collect();
    let mut o = Map::new();
    o.insert("@type".into(), json!(format!("ElectionResults.{kind}")));
    o.insert("@id".into(), json!(c.id));
    o.insert("ContestSelection".into(), json!(selections));
    o.insert("ElectionDistrictId".into(), json!(c.district));
    o.insert("Name".into(), json!(c.name));
    if kind == "CandidateContest" {
        if let Some(p) = &c.primary_party {
            o.insert("PrimaryPartyIds".into(), json!([p]));
        }
        o.insert("VotesAllowed".into(), json!(c.votes_allowed));
    }
    if kind == "RetentionContest" {
        o.insert(
            "CandidateId".into(),
            json!(m.candidates.first().map_or(SCOPE_ID, |c| c.id.as_str())),
        );
    }
    Value::Object(o)
}

/// A `ContestSelection` of a contest of `kind`, with its `VoteCounts`.
pub(super) fn selection_json(kind: ContestKind, s: &Selection) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let counts: Vec<Value> = s
        .counts
        .iter()
        .map(|v| {
            let mut o = Map::new();
            o.insert("@type".into(), json!("ElectionResults.VoteCounts"));
            o.insert("GpUnitId".into(), json!(v.unit));
            o.insert("Type".into(), json!(v.type_));
            if let Some(t) = &v.other_type {
                o.insert("OtherType".into(), json!(t));
            }
            o.insert("Count".into(), json!(v.count));
            Value::Object(o)
        })
        .collect();
    let mut o = Map::new();
    o.insert("@id".into(), json!(s.id));
    o.insert("VoteCounts".into(), json!(counts));
    match kind {
        ContestKind::BallotMeasure | ContestKind::Retention => {
            o.insert(
                "@type".into(),
                json!("ElectionResults.BallotMeasureSelection"),
            );
            o.insert("Selection".into(), intl_json(&s.name));
        }
        ContestKind::Party if s.party.is_some() => {
            o.insert("@type".into(), json!("ElectionResults.PartySelection"));
            o.insert("PartyIds".into(), json!([s.party]));
        }
        ContestKind::Party => {
            o.insert(
                "@type".into(),
                json!("ElectionResults.BallotMeasureSelection"),
            );
            o.insert("Selection".into(), intl_json(&s.name));
        }
        _ => {
            o.insert("@type".into(), json!("ElectionResults.CandidateSelection"));
            if let Some(cid) = &s.candidate {
                o.insert("CandidateIds".into(), json!([cid]));
            }
            if s.write_in {
                o.insert("IsWriteIn".into(), json!(true));
            }
        }
    }
    Value::Object(o)
}
