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

/// An ERR `ElectionReport` cut down to what votewire reads; the XML and JSON readers both
/// fill it, so the twins give identical cells.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// `GeneratedDate` as written: the cells' as-of time, and (with `sequence`) their
    /// source version.
    pub generated_date: Option<String>,
    /// `Status` as written (the report's results status); not used for cells.
    pub status: Option<String>,
    /// `IsTest` is true: the publisher marked the report as test data, so its cells are in
    /// `test` mode.
    pub is_test: bool,
    /// `SequenceStart` and `SequenceEnd`, when both are integers; appended to the source
    /// version as `<date>#<start>-<end>`.
    pub sequence: Option<(i64, i64)>,
    /// Every `GpUnit`, by its collapsed `ObjectId`.
    pub gp_units: HashMap<String, GpUnit>,
    /// Every `Party`, by its collapsed `ObjectId`.
    pub parties: HashMap<String, Party>,
    /// Every `Candidate` of every `Election`, by its collapsed `ObjectId`.
    pub candidates: HashMap<String, Candidate>,
    /// Every `Contest` of every `Election`, in document order.
    pub contests: Vec<Contest>,
}

/// A `GpUnit`: a reporting unit, or a district, county or state made of others.
#[derive(Debug, Default, Clone)]
pub struct GpUnit {
    /// `Name` (the English text first), when given; the unit's id stands in without it.
    pub name: Option<String>,
    /// `Type` as written (`county`, `precinct`, `other`, …); empty when absent.
    pub unit_type: String,
    /// `OtherType`: the unit's own type label, used when `Type` is `other`.
    pub other_type: Option<String>,
    /// `ComposingGpUnitIds`: the units this one is made of; the smallest municipality,
    /// county or state listing a unit becomes its parent.
    pub composing: Vec<String>,
    /// `SubUnitsReported`, which becomes the precincts reporting of every count in this
    /// unit.
    pub subunits_reported: Option<i32>,
    /// `TotalSubUnits`, which becomes the precincts total of every count in this unit.
    pub total_subunits: Option<i32>,
}

/// A `Party`, as choices and primaries refer to it.
#[derive(Debug, Default, Clone)]
pub struct Party {
    /// `Name` (the English text first), the party label when there is no abbreviation.
    pub name: Option<String>,
    /// `Abbreviation`, preferred as the party label of a choice or a primary.
    pub abbreviation: Option<String>,
}

/// A `Candidate`: the name and party a selection's `CandidateIds` point to.
#[derive(Debug, Default, Clone)]
pub struct Candidate {
    /// `BallotName` (the English text first); the candidate's id stands in without it.
    pub ballot_name: Option<String>,
    /// `PartyId` (collapsed), naming an entry of the report's `parties`.
    pub party_id: Option<String>,
}

/// A `Contest` and its selections.
#[derive(Debug, Default, Clone)]
pub struct Contest {
    /// `ObjectId` (collapsed): the contest's source id.
    pub id: String,
    /// The `xsi:type` / `@type` without prefix: `CandidateContest`, …
    pub kind: String,
    /// `Name`; the contest's id stands in when it is absent.
    pub name: String,
    /// `VotesAllowed`: how many choices a voter may mark, when given.
    pub votes_allowed: Option<i32>,
    /// `PrimaryPartyIds`; the first names the party whose primary this is.
    pub primary_party_ids: Vec<String>,
    /// Every `ContestSelection` (v1: `BallotSelection`), in document order.
    pub selections: Vec<Selection>,
    /// Where the contest sits in the payload, for error locations.
    pub location: String,
}

/// A `ContestSelection` (v1: `BallotSelection`) and its counts.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// `ObjectId` (collapsed): the choice's source id.
    pub id: String,
    /// The `xsi:type` / `@type` without prefix (`CandidateSelection`, …); not used for
    /// cells.
    pub kind: String,
    /// `CandidateIds`: their ballot names, joined with ` / `, name the choice, and the
    /// first candidate's party is its party.
    pub candidate_ids: Vec<String>,
    /// `PartyIds` (party contests): name the choice, and give its party, when there are no
    /// candidates.
    pub party_ids: Vec<String>,
    /// `Selection` text (a ballot measure's answer): the choice's name when there are
    /// neither candidates nor parties.
    pub selection_text: Option<String>,
    /// `IsWriteIn` is true: the choice is a write-in whatever its name says.
    pub is_write_in: bool,
    /// Every `VoteCounts` of the selection, one cell each.
    pub counts: Vec<Count>,
}

/// One `VoteCounts`: the count of one selection in one unit for one vote type.
#[derive(Debug, Default, Clone)]
pub struct Count {
    /// `GpUnitId` (collapsed), naming an entry of the report's `gp_units`; one that names
    /// none rejects the report.
    pub gp_unit_id: String,
    /// `Type` as written (`total` when absent); when it is `other`, `other_type` is the
    /// label.
    pub count_type: String,
    /// `OtherType`: the vote-type label, used when `Type` is `other`.
    pub other_type: Option<String>,
    /// `Count`: a whole number from 0 to `MAX_VOTES`; anything else rejects the report.
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
            let SelectionLabel { name, party } = selection_label(report, sel, &party_label);
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
            truncated: false,
            is_test: report.is_test,
            source_version: version,
        },
    })
}

/// What a selection is called on the cells and the party it stands for.
struct SelectionLabel {
    /// The candidates' ballot names (joined by ` / ` for a ticket), the parties'
    /// labels, or the selection's text.
    name: String,
    /// The first candidate's or party's label, when the selection has one.
    party: Option<String>,
}

/// Names a selection: its candidates' ballot names (their ids when a candidate
/// is missing), else its parties, else its text or id.
fn selection_label(
    report: &Report,
    sel: &Selection,
    party_label: &impl Fn(&str) -> String,
) -> SelectionLabel {
    if !sel.candidate_ids.is_empty() {
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
        SelectionLabel {
            name: names.join(" / "),
            party,
        }
    } else if !sel.party_ids.is_empty() {
        let names: Vec<String> = sel.party_ids.iter().map(|p| party_label(p)).collect();
        SelectionLabel {
            name: names.join(" / "),
            party: sel.party_ids.first().map(|p| party_label(p)),
        }
    } else {
        SelectionLabel {
            name: sel.selection_text.clone().unwrap_or_else(|| sel.id.clone()),
            party: None,
        }
    }
}
