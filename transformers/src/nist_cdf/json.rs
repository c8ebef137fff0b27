//! Reading the JSON encoding (`"@type": "ElectionResults.<Class>"`, `"@id"`).

use serde_json::Value;

use super::model::*;
use crate::counts::count_from_json;
use crate::error::{Location, Rejector, TransformError};
use crate::json::{JsonTree, check_json_start_as, json_error};

pub(super) fn read(bytes: &[u8], r: &Rejector) -> Result<Report, TransformError> {
    check_json_start_as(bytes, JsonTree::Value, r)?;
    let v: Value = serde_json::from_slice(bytes).map_err(|e| json_error(r, e))?;
    if v["@type"].as_str() != Some("ElectionResults.ElectionReport") {
        return Err(r.not_this_format(
            Location::Path("/@type".into()),
            format!(
                "@type is {}, expected ElectionResults.ElectionReport (NIST 1500-100 v2 JSON)",
                v["@type"]
            ),
        ));
    }
    let mut report = Report {
        generated_date: str_of(&v["GeneratedDate"]),
        status: str_of(&v["Status"]),
        is_test: v["IsTest"].as_bool().unwrap_or(false),
        ..Report::default()
    };
    if let (Some(s), Some(e)) = (v["SequenceStart"].as_i64(), v["SequenceEnd"].as_i64()) {
        report.sequence = Some((s, e));
    }
    for (i, g) in list(&v["GpUnit"]).enumerate() {
        report.gp_units.insert(
            id_of(g, &format!("/GpUnit/{i}"), r)?,
            GpUnit {
                name: intl(&g["Name"]),
                unit_type: str_of(&g["Type"]).unwrap_or_default(),
                other_type: str_of(&g["OtherType"]),
                composing: ids(&g["ComposingGpUnitIds"]),
                subunits_reported: g["SubUnitsReported"].as_i64().map(|n| n as i32),
                total_subunits: g["TotalSubUnits"].as_i64().map(|n| n as i32),
            },
        );
    }
    for (i, p) in list(&v["Party"]).enumerate() {
        report.parties.insert(
            id_of(p, &format!("/Party/{i}"), r)?,
            Party {
                name: intl(&p["Name"]),
                abbreviation: str_of(&p["Abbreviation"]),
            },
        );
    }
    for (ei, election) in list(&v["Election"]).enumerate() {
        for (i, c) in list(&election["Candidate"]).enumerate() {
            report.candidates.insert(
                id_of(c, &format!("/Election/{ei}/Candidate/{i}"), r)?,
                Candidate {
                    ballot_name: intl(&c["BallotName"]),
                    party_id: str_of(&c["PartyId"]).map(|s| collapse_id(&s)),
                },
            );
        }
        for (ci, c) in list(&election["Contest"]).enumerate() {
            let location = format!("/Election/{ei}/Contest/{ci}");
            let id = id_of(c, &location, r)?;
            let mut contest = Contest {
                kind: type_of(c),
                name: intl(&c["Name"]).unwrap_or_else(|| id.clone()),
                votes_allowed: c["VotesAllowed"].as_i64().map(|n| n as i32),
                primary_party_ids: ids(&c["PrimaryPartyIds"]),
                id,
                location: location.clone(),
                ..Contest::default()
            };
            for (si, s) in list(&c["ContestSelection"]).enumerate() {
                let at = format!("{location}/ContestSelection/{si}");
                let mut sel = Selection {
                    id: id_of(s, &at, r)?,
                    kind: type_of(s),
                    candidate_ids: ids(&s["CandidateIds"]),
                    party_ids: ids(&s["PartyIds"]),
                    selection_text: intl(&s["Selection"]),
                    is_write_in: s["IsWriteIn"].as_bool().unwrap_or(false),
                    counts: Vec::new(),
                };
                for (vi, vc) in list(&s["VoteCounts"]).enumerate() {
                    let count = count_from_json(&vc["Count"], false).map_err(|problem| {
                        r.schema(
                            Location::Path(format!("{at}/VoteCounts/{vi}/Count")),
                            format!("Count {} is {problem}", vc["Count"]),
                        )
                    })?;
                    sel.counts.push(Count {
                        gp_unit_id: str_of(&vc["GpUnitId"])
                            .map(|s| collapse_id(&s))
                            .unwrap_or_default(),
                        count_type: str_of(&vc["Type"]).unwrap_or_else(|| "total".into()),
                        other_type: str_of(&vc["OtherType"]),
                        count,
                    });
                }
                contest.selections.push(sel);
            }
            report.contests.push(contest);
        }
    }
    Ok(report)
}

/// A value that may be one object or an array of them.
fn list(v: &Value) -> impl Iterator<Item = &Value> {
    match v {
        Value::Array(a) => a.iter().collect::<Vec<_>>().into_iter(),
        Value::Null => Vec::new().into_iter(),
        other => vec![other].into_iter(),
    }
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn ids(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(collapse_id)
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// InternationalizedText (`{"Text": [{"Content", "Language"}]}`) or a string.
fn intl(v: &Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    let texts = v["Text"].as_array()?;
    let pick = texts
        .iter()
        .find(|t| t["Language"] == "en")
        .or_else(|| texts.first())?;
    pick["Content"].as_str().map(str::to_string)
}

fn type_of(v: &Value) -> String {
    let t = v["@type"].as_str().unwrap_or("");
    t.rsplit('.').next().unwrap_or(t).to_string()
}

fn id_of(v: &Value, at: &str, r: &Rejector) -> Result<String, TransformError> {
    v["@id"]
        .as_str()
        .map(collapse_id)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| r.schema(Location::Path(format!("{at}/@id")), "object without an @id"))
}
