use serde::Deserialize;
use votewire_schemas::*;

use crate::cells::Transformed;
use crate::cells::{CellBuilder, choice_kind};
use crate::error::{Location, Rejector, TransformError};
use crate::json::{check_json_start, json_error};
use crate::payload::{PayloadContext, PayloadFacts};

#[derive(Deserialize)]
struct Doc {
    races: Vec<Race>,
}

#[derive(Deserialize)]
struct Race {
    id: String,
    state: String,
    #[serde(default)]
    test: bool,
    #[serde(default)]
    eevp: Option<f64>,
    #[serde(default)]
    office: Option<String>,
    #[serde(default)]
    seat: Option<String>,
    #[serde(default)]
    results: Vec<RaceResult>,
}

#[derive(Deserialize)]
struct RaceResult {
    #[serde(default)]
    updated: Option<i64>,
    #[serde(default)]
    precincts: Option<i32>,
    #[serde(default)]
    reporting: Option<i32>,
    #[serde(default)]
    candidates: Vec<Candidate>,
}

#[derive(Deserialize)]
struct Candidate {
    id: String,
    #[serde(default)]
    first: Option<String>,
    #[serde(default)]
    last: Option<String>,
    #[serde(default)]
    party: Option<String>,
    votes: i64,
    #[serde(default)]
    winner: Option<bool>,
    #[serde(default)]
    incumbent: Option<bool>,
}

pub(super) fn parse(
    bytes: &[u8],
    ctx: &PayloadContext,
    r: &Rejector,
) -> Result<Transformed, TransformError> {
    check_json_start(bytes, r)?;
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| json_error(r, e))?;
    let updated = doc
        .races
        .iter()
        .flat_map(|race| &race.results)
        .filter_map(|res| res.updated)
        .max();
    let as_of_raw = updated.map(|ms| ms.to_string());
    let is_test = doc.races.iter().any(|race| race.test);
    let mode = if is_test { FeedMode::Test } else { ctx.mode };
    let mut b = CellBuilder::new(
        ctx,
        mode,
        updated.zip(as_of_raw.as_deref()),
        as_of_raw.as_deref(),
    );
    let total = b.label(VoteType::Total, "total");
    let mut states: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (ri, race) in doc.races.iter().enumerate() {
        if race.id.trim().is_empty() {
            return Err(r.schema(Location::Path(format!("/races/{ri}/id")), "empty race id"));
        }
        let name = match (&race.office, &race.seat) {
            (Some(o), Some(s)) => format!("{o} seat {s}"),
            (Some(o), None) => o.clone(),
            _ => race.id.clone(),
        };
        let contest = ContestRef {
            source_id: b.text(race.id.trim()),
            name: b.text(&name),
            kind: ContestKind::Candidate,
            vote_for: None,
            primary_party: None,
        };
        let contest = b.contest(contest);
        let state_id = format!("state:{}", race.state.trim());
        let unit = match states.get(&state_id) {
            Some(u) => *u,
            None => {
                let u = ReportingUnitRef {
                    source_id: b.text(&state_id),
                    name: b.text(race.state.trim()),
                    unit_type: UnitType::State,
                    type_raw: None,
                    parent_source_id: None,
                    fips: None,
                };
                let u = b.unit(u);
                states.insert(state_id, u);
                u
            }
        };
        let mut seen = std::collections::HashMap::new();
        for res in &race.results {
            for c in &res.candidates {
                let display = [c.first.as_deref(), c.last.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                let display = if display.is_empty() {
                    c.id.clone()
                } else {
                    display
                };
                let choice = *seen.entry(c.id.clone()).or_insert_with(|| {
                    let ch = ChoiceRef {
                        source_id: b.text(c.id.trim()),
                        name: b.text(&display),
                        kind: choice_kind(&display),
                        party: c.party.as_deref().map(|p| b.text(p)),
                        incumbent: c.incumbent,
                    };
                    b.choice(ch)
                });
                let row = b.push(contest, unit, choice, total, c.votes);
                row.precincts_reporting = res.reporting;
                row.precincts_total = res.precincts;
                row.pct_expected_vote = race.eevp;
                row.winner = c.winner.filter(|w| *w);
            }
        }
    }
    Ok(Transformed {
        cells: b.finish(),
        facts: PayloadFacts {
            next_request: None,
            truncated: false,
            is_test,
            source_version: as_of_raw,
        },
    })
}
