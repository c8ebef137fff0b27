use std::borrow::Cow;

use serde::Deserialize;
use votewire_schemas::*;

use super::config::ApV2Config;
use crate::cells::Transformed;
use crate::cells::{CellBuilder, choice_kind};
use crate::error::{Location, Rejector, TransformError};
use crate::json::{check_json_start, json_error};
use crate::payload::{PayloadContext, PayloadFacts};
use crate::timefmt::parse_iso8601;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    nextrequest: Option<Cow<'a, str>>,
    /// AP sends it on a `minDateTime` request: true says the rest of the
    /// changes follow at once from `nextrequest`. Anything but `true` is
    /// a whole answer.
    #[serde(default, deserialize_with = "lenient_flag")]
    is_truncated: bool,
    races: Option<Vec<Race<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Race<'a> {
    #[serde(default)]
    test: bool,
    #[serde(rename = "raceID", borrow)]
    race_id: Cow<'a, str>,
    #[serde(default, borrow)]
    race_type: Option<Cow<'a, str>>,
    #[serde(rename = "officeID", default, borrow)]
    office_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    office_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    seat_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    party: Option<Cow<'a, str>>,
    #[serde(default)]
    num_winners: Option<i32>,
    /// AP's estimated expected vote percentage for the race: the
    /// state-level unit's, when that unit has none of its own.
    #[serde(default, deserialize_with = "lenient_percent")]
    eevp: Option<f64>,
    #[serde(default, borrow)]
    reporting_units: Vec<Unit<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Unit<'a> {
    #[serde(borrow)]
    state_postal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    state_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    level: Cow<'a, str>,
    #[serde(rename = "reportingunitID", default, borrow)]
    reportingunit_id: Option<Cow<'a, str>>,
    #[serde(rename = "reportingunitName", default, borrow)]
    reportingunit_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    fips_code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    district_type: Option<Cow<'a, str>>,
    #[serde(default)]
    precincts_reporting: Option<i32>,
    #[serde(default)]
    precincts_total: Option<i32>,
    /// AP's estimated expected vote percentage in this unit.
    #[serde(default, deserialize_with = "lenient_percent")]
    eevp: Option<f64>,
    #[serde(default, borrow)]
    candidates: Vec<Candidate<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(default, borrow)]
    first: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    last: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    party: Option<Cow<'a, str>>,
    #[serde(rename = "candidateID", borrow)]
    candidate_id: Cow<'a, str>,
    #[serde(default)]
    vote_count: Option<i64>,
    #[serde(default, borrow)]
    winner: Option<Cow<'a, str>>,
    #[serde(default)]
    incumbent: Option<bool>,
}

pub(super) fn parse(
    bytes: &[u8],
    ctx: &PayloadContext,
    config: &ApV2Config,
    r: &Rejector,
) -> Result<Transformed, TransformError> {
    check_json_start(bytes, r)?;
    let resp: Response = serde_json::from_slice(bytes).map_err(|e| json_error(r, e))?;
    let Some(races) = resp.races else {
        return Err(r.not_this_format(
            Location::Path("/races".into()),
            "no races: an AP product that carries no vote counts (delegates, trends, the election list)",
        ));
    };
    let is_test = races.iter().any(|race| race.test);
    let mode = if is_test { FeedMode::Test } else { ctx.mode };
    let ts = resp.timestamp.as_deref();
    let as_of = ts.and_then(|raw| parse_iso8601(raw, true).map(|ms| (ms, raw)));
    let mut b = CellBuilder::new(ctx, mode, as_of, ts);
    let total = b.label(VoteType::Total, "total");
    let mut units: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (ri, race) in races.iter().enumerate() {
        let mut choices: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let race_id = race.race_id.trim();
        if race_id.is_empty() {
            return Err(r.schema(
                Location::Path(format!("/races/{ri}/raceID")),
                "empty raceID",
            ));
        }
        let office = race.office_name.as_deref().unwrap_or(race_id);
        let name = match race.seat_name.as_deref().or(race.description.as_deref()) {
            Some(seat) if !seat.is_empty() => format!("{office} - {seat}"),
            _ => office.to_string(),
        };
        let is_measure = race.race_type.as_deref() == Some("Ballot Issue")
            || race.office_id.as_deref() == Some("I");
        let contest = ContestRef {
            source_id: b.text(race_id),
            name: b.text(&name),
            kind: if is_measure {
                ContestKind::BallotMeasure
            } else {
                ContestKind::Candidate
            },
            vote_for: race.num_winners,
            primary_party: race.party.as_deref().map(|p| b.text(p)),
        };
        let contest = b.contest(contest);
        for (ui, u) in race.reporting_units.iter().enumerate() {
            let at =
                |field: &str| Location::Path(format!("/races/{ri}/reportingUnits/{ui}{field}"));
            let unit = unit_ref(&mut b, u, config, &at, r)?;
            // Past 100 is possible (turnout beat AP's estimate); the
            // registry's row check refuses the absurd.
            let race_level = race.eevp.filter(|_| unit.unit_type == UnitType::State);
            let eevp = u.eevp.or(race_level);
            let unit = match units.get(&*unit.source_id) {
                Some(id) => *id,
                None => {
                    let key = unit.source_id.to_string();
                    let id = b.unit(unit);
                    units.insert(key, id);
                    id
                }
            };
            for (ci, c) in u.candidates.iter().enumerate() {
                // Initialization files list candidates before any count exists.
                let Some(votes) = c.vote_count else { continue };
                let at_id = || at(&format!("/candidates/{ci}/candidateID"));
                let choice = candidate_choice(&mut b, &mut choices, c, &at_id, r)?;
                let row = b.push(contest, unit, choice, total, votes);
                row.precincts_reporting = u.precincts_reporting;
                row.precincts_total = u.precincts_total;
                row.pct_expected_vote = eevp;
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
            next_request: resp.nextrequest.map(|n| n.into_owned()),
            truncated: resp.is_truncated,
            is_test,
            source_version: ts.map(str::to_string),
        },
    })
}

/// An informational percentage: a number, or a number written as text;
/// anything else (null, an object of AP's per-vote-type figures) is no
/// value rather than a reason to refuse the whole answer.
fn lenient_percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok().filter(|p: &f64| p.is_finite()),
        _ => None,
    })
}

/// A flag that is true only when it is `true`.
fn lenient_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(serde_json::Value::deserialize(d)? == serde_json::Value::Bool(true))
}

/// The reporting unit `u` names: the state, or a county, township,
/// district or other subunit under it. `at` names a field of it.
fn unit_ref(
    b: &mut CellBuilder,
    u: &Unit<'_>,
    config: &ApV2Config,
    at: &dyn Fn(&str) -> Location,
    r: &Rejector,
) -> Result<ReportingUnitRef, TransformError> {
    let postal = u
        .state_postal
        .as_deref()
        .ok_or_else(|| r.schema(at("/statePostal"), "reporting unit without statePostal"))?;
    let state_id = format!("state:{postal}");
    Ok(match u.level.as_ref() {
        "state" | "national" => ReportingUnitRef {
            source_id: b.text(&state_id),
            name: b.text(u.state_name.as_deref().unwrap_or(postal)),
            unit_type: UnitType::State,
            type_raw: Some(b.text(&u.level)),
            parent_source_id: None,
            fips: None,
        },
        level @ ("subunit" | "district" | "county" | "township") => {
            let id = u.reportingunit_id.as_deref().ok_or_else(|| {
                r.schema(
                    at("/reportingunitID"),
                    format!("{level} unit without an id"),
                )
            })?;
            let name = u.reportingunit_name.as_deref().unwrap_or(id);
            let unit_type = if name.to_ascii_lowercase().contains("mail ballots") {
                UnitType::Virtual
            } else if level == "district" {
                UnitType::District
            } else if level == "township" || config.is_township_state(postal) {
                UnitType::Municipality
            } else {
                UnitType::County
            };
            ReportingUnitRef {
                source_id: b.text(id),
                name: b.text(name),
                unit_type,
                type_raw: Some(b.text(u.district_type.as_deref().unwrap_or(level))),
                parent_source_id: Some(b.text(&state_id)),
                fips: u.fips_code.as_deref().map(|f| b.text(f)),
            }
        }
        other => {
            return Err(r.schema(
                at("/level"),
                format!("unknown reporting-unit level {other:?}"),
            ));
        }
    })
}

/// The choice candidate `c` is in its race, made on first sight; `at_id`
/// names its `candidateID` (in an error only).
fn candidate_choice<'a>(
    b: &mut CellBuilder,
    choices: &mut std::collections::HashMap<&'a str, u32>,
    c: &'a Candidate<'a>,
    at_id: &dyn Fn() -> Location,
    r: &Rejector,
) -> Result<u32, TransformError> {
    let id = c.candidate_id.trim();
    if id.is_empty() {
        return Err(r.schema(at_id(), "empty candidateID"));
    }
    let display = [c.first.as_deref(), c.last.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let display = if display.is_empty() {
        id.to_string()
    } else {
        display
    };
    Ok(match choices.get(id) {
        Some(ch) => *ch,
        None => {
            let ch = ChoiceRef {
                source_id: b.text(id),
                name: b.text(&display),
                kind: choice_kind(&display),
                party: c.party.as_deref().map(|p| b.text(p)),
                incumbent: c.incumbent,
            };
            let ch = b.choice(ch);
            choices.insert(id, ch);
            ch
        }
    })
}
