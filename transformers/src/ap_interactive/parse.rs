use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use votewire_schemas::*;

use super::config::ApInteractiveCompanion;
use crate::cells::Transformed;
use crate::cells::{CellBuilder, choice_kind};
use crate::error::{Location, Rejector, TransformError};
use crate::json::{check_json_start, json_error};
use crate::payload::{PayloadContext, PayloadFacts};
use crate::timefmt::parse_iso8601;

#[derive(Deserialize)]
struct Snapshot<'a> {
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default)]
    test: bool,
    #[serde(borrow)]
    results: Races<'a>,
}

/// The live files hold a list of races; `summary.json` a map by state.
#[derive(Deserialize)]
#[serde(untagged)]
enum Races<'a> {
    #[serde(borrow)]
    List(Vec<Race<'a>>),
    #[serde(borrow)]
    ByState(BTreeMap<Cow<'a, str>, Vec<Race<'a>>>),
}

#[derive(Deserialize)]
struct Race<'a> {
    #[serde(rename = "raceID", borrow)]
    race_id: Cow<'a, str>,
    #[serde(borrow)]
    summary: Unit<'a>,
    #[serde(default, borrow)]
    results: BTreeMap<Cow<'a, str>, Unit<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Unit<'a> {
    #[serde(borrow)]
    ruid: Cow<'a, str>,
    #[serde(borrow)]
    level: Cow<'a, str>,
    #[serde(default)]
    precincts_total: Option<i32>,
    #[serde(default)]
    precincts_reporting: Option<i32>,
    #[serde(default)]
    eevp: Option<f64>,
    #[serde(default, borrow)]
    results: Vec<Count<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Count<'a> {
    #[serde(rename = "candidateID", borrow)]
    candidate_id: Cow<'a, str>,
    vote_count: i64,
    #[serde(default, borrow)]
    winner: Option<Cow<'a, str>>,
}

pub(super) fn parse(
    bytes: &[u8],
    ctx: &PayloadContext,
    names: &ApInteractiveCompanion,
    r: &Rejector,
) -> Result<Transformed, TransformError> {
    check_json_start(bytes, r)?;
    let snap: Snapshot = serde_json::from_slice(bytes).map_err(|e| json_error(r, e))?;
    let ts = snap.timestamp.as_deref();
    let as_of = ts.and_then(|raw| parse_iso8601(raw, true).map(|ms| (ms, raw)));
    let mode = if snap.test { FeedMode::Test } else { ctx.mode };
    let mut b = CellBuilder::new(ctx, mode, as_of, ts);
    let total = b.label(VoteType::Total, "total");
    let mut unit_ids: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let races: Vec<&Race> = match &snap.results {
        Races::List(l) => l.iter().collect(),
        Races::ByState(m) => m.values().flatten().collect(),
    };
    for (ri, race) in races.iter().enumerate() {
        let race_id = race.race_id.trim();
        let race_names = names.race(race_id);
        let mut choices: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let contest = ContestRef {
            source_id: b.text(race_id),
            name: b.text(race_names.map(|n| n.name.as_str()).unwrap_or(race_id)),
            kind: ContestKind::Candidate,
            vote_for: None,
            primary_party: None,
        };
        let contest = b.contest(contest);
        let state = race.summary.ruid.trim().to_string();
        let units = std::iter::once((None, &race.summary))
            .chain(race.results.iter().map(|(k, u)| (Some(k), u)));
        for (key, u) in units {
            let at = || match key {
                None => Location::Path(format!("/results/{ri}/summary")),
                Some(k) => Location::Path(format!("/results/{ri}/results/{k}")),
            };
            let ruid = u.ruid.trim();
            let (unit_type, parent) = match u.level.as_ref() {
                "state" => (UnitType::State, None),
                "subunit" | "county" => (UnitType::County, Some(state.as_str())),
                "district" => (UnitType::District, Some(state.as_str())),
                other => return Err(r.schema(at(), format!("unknown level {other:?}"))),
            };
            let unit = match unit_ids.get(ruid) {
                Some(id) => *id,
                None => {
                    let u = ReportingUnitRef {
                        source_id: b.text(ruid),
                        name: b.text(names.units.get(ruid).map(String::as_str).unwrap_or(ruid)),
                        unit_type,
                        type_raw: Some(b.text(&u.level)),
                        parent_source_id: parent.map(|p| b.text(p)),
                        fips: (unit_type == UnitType::County).then(|| b.text(ruid)),
                    };
                    let id = b.unit(u);
                    unit_ids.insert(ruid.to_string(), id);
                    id
                }
            };
            for c in &u.results {
                let id = c.candidate_id.trim();
                let named =
                    race_names.and_then(|n| n.candidates.iter().find(|c| c.candidate_id == id));
                let name = named.map(|n| n.name.as_str()).unwrap_or(id);
                let choice = match choices.get(id) {
                    Some(ch) => *ch,
                    None => {
                        let ch = ChoiceRef {
                            source_id: b.text(id),
                            name: b.text(name),
                            kind: choice_kind(name),
                            party: named.and_then(|n| n.party.as_deref()).map(|p| b.text(p)),
                            incumbent: None,
                        };
                        let ch = b.choice(ch);
                        choices.insert(id, ch);
                        ch
                    }
                };
                let row = b.push(contest, unit, choice, total, c.vote_count);
                row.precincts_reporting = u.precincts_reporting;
                row.precincts_total = u.precincts_total;
                row.pct_expected_vote = u.eevp;
                row.winner = c
                    .winner
                    .as_deref()
                    .map(|w| w == "X" || w == "R")
                    .filter(|w| *w);
            }
        }
    }
    Ok(Transformed {
        cells: b.finish(),
        facts: PayloadFacts {
            next_request: None,
            truncated: false,
            is_test: snap.test,
            source_version: ts.map(str::to_string),
        },
    })
}
