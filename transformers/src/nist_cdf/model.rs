//! The part of an ERR v2 report that votewire reads, shared by both
//! encodings, and the cells it yields.

use std::collections::HashMap;

use votewire_schemas::nist::unit_type_of;
use votewire_schemas::vote_type::normalize_vote_type;
use votewire_schemas::*;

use crate::cells::Transformed;
use crate::cells::{CellBuilder, choice_kind};
use crate::error::{Location, Rejector, TransformError};
use crate::payload::{PayloadContext, PayloadFacts};
use crate::timefmt::parse_iso8601;

/// `xs:ID` whitespace collapse: trim, and runs of whitespace become one space.
pub fn collapse_id(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub generated_date: Option<String>,
    pub status: Option<String>,
    pub is_test: bool,
    pub sequence: Option<(i64, i64)>,
    pub gp_units: HashMap<String, GpUnit>,
    pub parties: HashMap<String, Party>,
    pub candidates: HashMap<String, Candidate>,
    pub contests: Vec<Contest>,
}

#[derive(Debug, Default, Clone)]
pub struct GpUnit {
    pub name: Option<String>,
    pub unit_type: String,
    pub other_type: Option<String>,
    pub composing: Vec<String>,
    pub subunits_reported: Option<i32>,
    pub total_subunits: Option<i32>,
}

#[derive(Debug, Default, Clone)]
pub struct Party {
    pub name: Option<String>,
    pub abbreviation: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Candidate {
    pub ballot_name: Option<String>,
    pub party_id: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Contest {
    pub id: String,
    /// The `xsi:type` / `@type` without prefix: `CandidateContest`, …
    pub kind: String,
    pub name: String,
    pub votes_allowed: Option<i32>,
    pub primary_party_ids: Vec<String>,
    pub selections: Vec<Selection>,
    /// Where the contest sits in the payload, for error locations.
    pub location: String,
}

#[derive(Debug, Default, Clone)]
pub struct Selection {
    pub id: String,
    pub kind: String,
    pub candidate_ids: Vec<String>,
    pub party_ids: Vec<String>,
    pub selection_text: Option<String>,
    pub is_write_in: bool,
    pub counts: Vec<Count>,
}

#[derive(Debug, Default, Clone)]
pub struct Count {
    pub gp_unit_id: String,
    pub count_type: String,
    pub other_type: Option<String>,
    pub count: i64,
}

/// How good a parent a composing unit is: administrative containers only.
fn parent_rank(t: UnitType) -> Option<u8> {
    match t {
        UnitType::Municipality => Some(0),
        UnitType::County => Some(1),
        UnitType::State => Some(2),
        _ => None,
    }
}

/// The cells of a report.
pub fn cells(
    report: &Report,
    ctx: &PayloadContext,
    r: &Rejector,
) -> Result<Transformed, TransformError> {
    let raw_date = report.generated_date.as_deref();
    let as_of = raw_date.and_then(|raw| parse_iso8601(raw, true).map(|ms| (ms, raw)));
    let version = match (raw_date, report.sequence) {
        (Some(d), Some((s, e))) => Some(format!("{d}#{s}-{e}")),
        (Some(d), None) => Some(d.to_string()),
        _ => None,
    };
    let mode = if report.is_test {
        FeedMode::Test
    } else {
        ctx.mode
    };
    let mut b = CellBuilder::new(ctx, mode, as_of, version.as_deref());

    // Parents: the smallest administrative unit that lists a unit among
    // its composing units.
    let mut parent: HashMap<&str, (&str, u8)> = HashMap::new();
    for (id, g) in &report.gp_units {
        let Some(rank) = parent_rank(unit_type_of(&g.unit_type)) else {
            continue;
        };
        for child in &g.composing {
            let better = parent.get(child.as_str()).is_none_or(|(_, r)| rank < *r);
            if better {
                parent.insert(child.as_str(), (id.as_str(), rank));
            }
        }
    }
    let mut units: HashMap<&str, u32> = HashMap::new();
    for (id, g) in &report.gp_units {
        let t = unit_type_of(&g.unit_type);
        let type_raw = if g.unit_type == "other" {
            g.other_type.as_deref().unwrap_or("other")
        } else {
            g.unit_type.as_str()
        };
        let u = ReportingUnitRef {
            source_id: b.text(id),
            name: b.text(g.name.as_deref().unwrap_or(id)),
            unit_type: t,
            type_raw: Some(b.text(type_raw)),
            parent_source_id: parent.get(id.as_str()).map(|(p, _)| b.text(p)),
            fips: None,
        };
        units.insert(id.as_str(), b.unit(u));
    }
    let party_label = |id: &str| {
        report
            .parties
            .get(id)
            .and_then(|p| p.abbreviation.clone().or_else(|| p.name.clone()))
            .unwrap_or_else(|| id.to_string())
    };
    for contest in &report.contests {
        let kind = match contest.kind.as_str() {
            "CandidateContest" => ContestKind::Candidate,
            "BallotMeasureContest" => ContestKind::BallotMeasure,
            "PartyContest" => ContestKind::Party,
            "RetentionContest" => ContestKind::Retention,
            _ => ContestKind::Other,
        };
        let primary = contest.primary_party_ids.first().map(|p| party_label(p));
        let c = ContestRef {
            source_id: b.text(&contest.id),
            name: b.text(&contest.name),
            kind,
            vote_for: contest.votes_allowed,
            primary_party: primary.as_deref().map(|p| b.text(p)),
        };
        let c = b.contest(c);
        for sel in &contest.selections {
            let (name, party) = if !sel.candidate_ids.is_empty() {
                let names: Vec<String> = sel
                    .candidate_ids
                    .iter()
                    .map(|id| {
                        report
                            .candidates
                            .get(id)
                            .and_then(|c| c.ballot_name.clone())
                            .unwrap_or_else(|| id.clone())
                    })
                    .collect();
                let party = sel
                    .candidate_ids
                    .first()
                    .and_then(|id| report.candidates.get(id))
                    .and_then(|c| c.party_id.as_deref())
                    .map(party_label);
                (names.join(" / "), party)
            } else if !sel.party_ids.is_empty() {
                let names: Vec<String> = sel.party_ids.iter().map(|p| party_label(p)).collect();
                (
                    names.join(" / "),
                    sel.party_ids.first().map(|p| party_label(p)),
                )
            } else {
                (
                    sel.selection_text.clone().unwrap_or_else(|| sel.id.clone()),
                    None,
                )
            };
            let mut ck = choice_kind(&name);
            if sel.is_write_in {
                ck = ChoiceKind::WriteIn;
            }
            let choice = ChoiceRef {
                source_id: b.text(&sel.id),
                name: b.text(&name),
                kind: ck,
                party: party.as_deref().map(|p| b.text(p)),
                incumbent: None,
            };
            let choice = b.choice(choice);
            for count in &sel.counts {
                let unit = units.get(count.gp_unit_id.as_str()).ok_or_else(|| {
                    r.schema(
                        Location::Path(format!(
                            "{}/ContestSelection[@id='{}']/VoteCounts",
                            contest.location, sel.id
                        )),
                        format!("GpUnitId {:?} names no GpUnit", count.gp_unit_id),
                    )
                })?;
                let raw = if count.count_type == "other" {
                    count.other_type.as_deref().unwrap_or("other")
                } else {
                    count.count_type.as_str()
                };
                let label = b.label(normalize_vote_type(raw), raw);
                let row = b.push(c, *unit, choice, label, count.count);
                if let Some(g) = report.gp_units.get(count.gp_unit_id.as_str()) {
                    row.precincts_reporting = g.subunits_reported;
                    row.precincts_total = g.total_subunits;
                }
            }
        }
    }
    Ok(Transformed {
        cells: b.finish(),
        facts: PayloadFacts {
            next_request: None,
            is_test: report.is_test,
            source_version: version,
        },
    })
}
