use std::collections::HashMap;

use serde::Deserialize;
use votewire_schemas::*;

use crate::cells::CellBuilder;
use crate::cells::Transformed;
use crate::error::{Location, Rejector, TransformError};
use crate::json::{check_json_start, json_error};
use crate::payload::{PayloadContext, PayloadFacts};
use crate::timefmt::parse_iso8601;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(default)]
    last_updated: Option<String>,
    races: Vec<CountyRace>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountyRace {
    state_fips: String,
    county_fips: String,
    raceid: String,
    #[serde(default)]
    candidates: Vec<Count>,
    #[serde(default)]
    progress_reporting: Option<i32>,
    #[serde(default)]
    progress_total: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Count {
    #[serde(rename = "candidateID")]
    candidate_id: String,
    vote: i64,
}

pub(super) fn parse(
    bytes: &[u8],
    ctx: &PayloadContext,
    r: &Rejector,
) -> Result<Transformed, TransformError> {
    check_json_start(bytes, r)?;
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| json_error(r, e))?;
    let raw = doc.last_updated.as_deref();
    let as_of = raw.and_then(|s| parse_iso8601(s, false).map(|ms| (ms, s)));
    let mut b = CellBuilder::new(ctx, ctx.mode, as_of, raw);
    let total = b.label(VoteType::Total, "total");
    let mut contests: HashMap<String, u32> = HashMap::new();
    let mut units: HashMap<String, u32> = HashMap::new();
    let mut choices: HashMap<(u32, String), u32> = HashMap::new();
    for (i, race) in doc.races.iter().enumerate() {
        let race_id = race.raceid.trim();
        let county = race.county_fips.trim();
        if race_id.is_empty() || county.is_empty() {
            return Err(r.schema(
                Location::Path(format!("/races/{i}")),
                "an entry without raceid or countyFips",
            ));
        }
        let contest = *contests.entry(race_id.to_string()).or_insert_with(|| {
            let c = ContestRef {
                source_id: b.text(race_id),
                name: b.text(race_id),
                kind: ContestKind::Candidate,
                vote_for: None,
                primary_party: None,
            };
            b.contest(c)
        });
        let unit = *units.entry(county.to_string()).or_insert_with(|| {
            let u = ReportingUnitRef {
                source_id: b.text(county),
                name: b.text(county),
                unit_type: UnitType::County,
                type_raw: None,
                parent_source_id: Some(b.text(race.state_fips.trim())),
                fips: Some(b.text(county)),
            };
            b.unit(u)
        });
        for c in &race.candidates {
            let id = c.candidate_id.trim();
            let choice = *choices.entry((contest, id.to_string())).or_insert_with(|| {
                let ch = ChoiceRef {
                    source_id: b.text(id),
                    name: b.text(id),
                    kind: ChoiceKind::Candidate,
                    party: None,
                    incumbent: None,
                };
                b.choice(ch)
            });
            let row = b.push(contest, unit, choice, total, c.vote);
            row.precincts_reporting = race.progress_reporting;
            row.precincts_total = race.progress_total;
        }
    }
    Ok(Transformed {
        cells: b.finish(),
        facts: PayloadFacts {
            next_request: None,
            truncated: false,
            is_test: false,
            source_version: raw.map(str::to_string),
        },
    })
}
