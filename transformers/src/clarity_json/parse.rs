//! Parsing the two Clarity JSON shapes into cells.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use votewire_schemas::vote_type::normalize_vote_type;
use votewire_schemas::*;

use super::config::{ClarityJsonConfig, Companion, CompanionContest};
use crate::cells::{CellBuilder, CellTable, choice_kind, incumbent_in_name, party_in_name};
use crate::error::{Location, Rejector, TransformError};
use crate::json::{check_json_start, json_error};
use crate::payload::PayloadContext;

#[derive(Deserialize)]
struct AllJson<'a> {
    #[serde(rename = "Contests", borrow)]
    contests: Vec<Area<'a>>,
}

#[derive(Deserialize)]
struct Area<'a> {
    #[serde(rename = "A", borrow)]
    area: Cow<'a, str>,
    #[serde(rename = "C", borrow)]
    contest_keys: Vec<Cow<'a, str>>,
    #[serde(rename = "V")]
    votes: Vec<Vec<i64>>,
}

#[derive(Deserialize)]
struct SummaryContest<'a> {
    #[serde(rename = "K", borrow)]
    key: Cow<'a, str>,
    #[serde(rename = "C", borrow)]
    name: Cow<'a, str>,
    #[serde(rename = "VF", default)]
    vote_for: Option<i32>,
    #[serde(rename = "TP", default)]
    precincts_total: Option<i32>,
    #[serde(rename = "PR", default)]
    precincts_reporting: Option<i32>,
    #[serde(rename = "CH", borrow)]
    choices: Vec<Cow<'a, str>>,
    #[serde(rename = "P", default, borrow)]
    parties: Vec<Cow<'a, str>>,
    #[serde(rename = "V")]
    votes: Vec<i64>,
    #[serde(rename = "W", default)]
    winners: Vec<i64>,
}

/// The site-wide area.
const SITE_AREA: &str = "-1";

pub(super) fn parse(
    bytes: &[u8],
    ctx: &PayloadContext,
    config: &ClarityJsonConfig,
    companion: Option<&Companion>,
    r: &Rejector,
) -> Result<CellTable, TransformError> {
    check_json_start(bytes, r)?;
    let starts_with_array = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF)
        == Some(&b'[');
    let mut b = CellBuilder::new(ctx, ctx.mode, None, None);
    let sites = Sites::new(&mut b, config);
    if starts_with_array {
        let list: Vec<SummaryContest> =
            serde_json::from_slice(bytes).map_err(|e| json_error(r, e))?;
        summary_cells(&mut b, &sites, &list, r)?;
    } else {
        let all: AllJson = serde_json::from_slice(bytes).map_err(|e| json_error(r, e))?;
        let raw = config
            .vote_type_raw
            .clone()
            .unwrap_or_else(|| vote_type_from_uri(&ctx.source_uri));
        all_json_cells(&mut b, &sites, &all, companion, &raw, r)?;
    }
    Ok(b.finish())
}

/// `…/ALL.json` → `ALL`; `…/Election_Day_Votes.json` → `Election Day Votes`.
fn vote_type_from_uri(uri: &str) -> String {
    let file = uri.rsplit(['/', '\\']).next().unwrap_or(uri);
    let stem = file.split('?').next().unwrap_or(file);
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    stem.replace('_', " ")
}

struct Sites {
    site: u32,
    site_id: Text,
    area_type: UnitType,
}

impl Sites {
    fn new(b: &mut CellBuilder, config: &ClarityJsonConfig) -> Sites {
        let county_site = config.site_level.as_deref() == Some("county");
        let site_id = b.text(SITE_AREA);
        let name = b.text(config.site_name.as_deref().unwrap_or(SITE_AREA));
        let site = b.unit(ReportingUnitRef {
            source_id: site_id.clone(),
            name,
            unit_type: if county_site {
                UnitType::County
            } else {
                UnitType::State
            },
            type_raw: None,
            parent_source_id: None,
            fips: None,
        });
        Sites {
            site,
            site_id,
            area_type: if county_site {
                UnitType::Precinct
            } else {
                UnitType::County
            },
        }
    }
}

/// A choice at array position `index`; `(id, kind)`.
fn make_choice(
    b: &mut CellBuilder,
    index: usize,
    name: &str,
    party: Option<&str>,
) -> (u32, ChoiceKind) {
    let party = match party.map(str::trim) {
        Some("NP") | Some("") | None => party_in_name(name),
        Some(p) => Some(p),
    };
    let kind = choice_kind(name);
    let c = ChoiceRef {
        source_id: b.text(&index.to_string()),
        name: b.text(name),
        kind,
        party: party.map(|p| b.text(p)),
        incumbent: incumbent_in_name(name),
    };
    (b.choice(c), kind)
}

fn contest_kind(choices: &[(u32, ChoiceKind)]) -> ContestKind {
    if !choices.is_empty()
        && choices
            .iter()
            .all(|(_, k)| matches!(k, ChoiceKind::Yes | ChoiceKind::No))
    {
        ContestKind::BallotMeasure
    } else {
        ContestKind::Candidate
    }
}

fn summary_cells(
    b: &mut CellBuilder,
    sites: &Sites,
    list: &[SummaryContest],
    r: &Rejector,
) -> Result<(), TransformError> {
    let total = b.label(VoteType::Total, "total");
    for (i, c) in list.iter().enumerate() {
        if c.choices.len() != c.votes.len() {
            return Err(r.schema(
                Location::Path(format!("/{i}/V")),
                format!(
                    "contest {} has {} names (CH) but {} counts (V)",
                    c.key,
                    c.choices.len(),
                    c.votes.len()
                ),
            ));
        }
        let choices: Vec<(u32, ChoiceKind)> = c
            .choices
            .iter()
            .enumerate()
            .map(|(j, name)| make_choice(b, j, name, c.parties.get(j).map(|p| &**p)))
            .collect();
        let contest = ContestRef {
            source_id: b.text(c.key.trim()),
            name: b.text(&c.name),
            kind: contest_kind(&choices),
            vote_for: c.vote_for,
            primary_party: None,
        };
        let contest = b.contest(contest);
        for (j, (choice, _)) in choices.iter().enumerate() {
            let row = b.push(contest, sites.site, *choice, total, c.votes[j]);
            row.precincts_reporting = c.precincts_reporting;
            row.precincts_total = c.precincts_total;
            row.winner = (c.winners.get(j) == Some(&1)).then_some(true);
        }
    }
    Ok(())
}

fn all_json_cells(
    b: &mut CellBuilder,
    sites: &Sites,
    all: &AllJson,
    companion: Option<&Companion>,
    raw: &str,
    r: &Rejector,
) -> Result<(), TransformError> {
    let label = b.label(normalize_vote_type(raw), raw);
    let mut contests: HashMap<String, (u32, Vec<u32>)> = HashMap::new();
    for (k, area) in all.contests.iter().enumerate() {
        if area.contest_keys.len() != area.votes.len() {
            return Err(r.schema(
                Location::Path(format!("/Contests/{k}")),
                format!(
                    "area {:?} lists {} contests (C) but {} vote arrays (V)",
                    area.area,
                    area.contest_keys.len(),
                    area.votes.len()
                ),
            ));
        }
        let name = area.area.trim();
        let unit = if name == SITE_AREA {
            sites.site
        } else {
            let id = b.text(name);
            b.unit(ReportingUnitRef {
                source_id: id.clone(),
                name: id,
                unit_type: sites.area_type,
                type_raw: None,
                parent_source_id: Some(sites.site_id.clone()),
                fips: None,
            })
        };
        for (i, key) in area.contest_keys.iter().enumerate() {
            let key = key.trim();
            let votes = &area.votes[i];
            let meta: Option<&CompanionContest> = companion.and_then(|c| c.contests.get(key));
            if let Some(m) = meta
                && m.choices.len() != votes.len()
            {
                return Err(r.schema(
                    Location::Path(format!("/Contests/{k}/V/{i}")),
                    format!(
                        "contest {key} in area {name:?} has {} counts; the companion names {} choices",
                        votes.len(),
                        m.choices.len()
                    ),
                ));
            }
            if !contests.contains_key(key) {
                let choices: Vec<(u32, ChoiceKind)> = (0..votes.len())
                    .map(|j| match meta.map(|m| &m.choices[j]) {
                        Some(ch) => make_choice(b, j, &ch.name, ch.party.as_deref()),
                        None => make_choice(b, j, &j.to_string(), None),
                    })
                    .collect();
                let contest = ContestRef {
                    source_id: b.text(key),
                    name: b.text(meta.map(|m| m.name.as_str()).unwrap_or(key)),
                    kind: contest_kind(&choices),
                    vote_for: meta.and_then(|m| m.vote_for),
                    primary_party: None,
                };
                let contest = b.contest(contest);
                contests.insert(
                    key.to_string(),
                    (contest, choices.into_iter().map(|(id, _)| id).collect()),
                );
            }
            let (contest, choices) = &contests[key];
            if choices.len() != votes.len() {
                return Err(r.schema(
                    Location::Path(format!("/Contests/{k}/V/{i}")),
                    format!(
                        "contest {key} has {} counts in area {name:?} but {} elsewhere",
                        votes.len(),
                        choices.len()
                    ),
                ));
            }
            for (j, v) in votes.iter().enumerate() {
                b.push(*contest, unit, choices[j], label, *v);
            }
        }
    }
    Ok(())
}
