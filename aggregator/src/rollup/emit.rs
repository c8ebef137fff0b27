//! A roll-up's last phase: one [`ContestResult`] per unit, in unit id
//! order, with every choice's official value, each reporting source's
//! value (`by_source`), the leader and the margin.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use votewire_schemas::types::{ChoiceKind, ChoiceResult, ContestResult, Contribution, SourceValue};

use super::collect::Collected;
use super::evaluate::UnitEval;
use super::tree::UnitTree;
use super::{OverflowAt, UnitOwn, add_votes};
use crate::contest_cells::ContestKey;

/// Choice ids in natural order: numbers by value, then text.
fn natural(a: &str, b: &str) -> Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Choices whose votes make up the total that percentages are of.
fn counts_toward_total(kind: ChoiceKind) -> bool {
    matches!(
        kind,
        ChoiceKind::Candidate
            | ChoiceKind::Yes
            | ChoiceKind::No
            | ChoiceKind::WriteIn
            | ChoiceKind::Other
    )
}

/// One unit as its result is written: who reports it, and which source
/// is official there.
struct UnitView<'a> {
    id: &'a Arc<str>,
    eval: &'a UnitEval,
    /// The sources reporting the unit itself, in official order (none for
    /// a unit known only as a parent).
    who: Vec<usize>,
    official: usize,
    official_own: Option<&'a UnitOwn>,
}

pub(super) fn emit(
    key: &ContestKey,
    col: &Collected,
    tree: &UnitTree,
    evals: &HashMap<Arc<str>, UnitEval>,
) -> Result<Vec<ContestResult>, OverflowAt> {
    let contest_name = col
        .contest_name
        .as_ref()
        .map(|(n, _)| n.to_string())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(tree.ids.len());
    for id in &tree.ids {
        let Some(eval) = evals.get(id) else { continue };
        let who = col.reporters(id);
        let official = eval.official_source.unwrap_or(col.by_priority[0]);
        let official_own = who.first().map(|s| &col.sources[*s].units[id]);
        let unit = UnitView {
            id,
            eval,
            who,
            official,
            official_own,
        };
        out.push(unit_result(key, col, tree, &contest_name, &unit)?);
    }
    Ok(out)
}

/// Whether `choice`'s votes count toward the total percentages are of.
fn counts_in_total(col: &Collected, choice: &str) -> bool {
    col.choices
        .get(choice)
        .is_some_and(|(r, _)| counts_toward_total(r.kind))
}

fn unit_result(
    key: &ContestKey,
    col: &Collected,
    tree: &UnitTree,
    contest_name: &str,
    unit: &UnitView<'_>,
) -> Result<ContestResult, OverflowAt> {
    let (sources, by_priority) = (&col.sources, &col.by_priority);
    let (parent_of, types) = (&tree.parent_of, &tree.types);
    let UnitView {
        id,
        eval,
        official,
        official_own,
        ..
    } = *unit;
    let election_id = &key.election_id;
    let counting = |c: &Arc<str>| counts_in_total(col, c);
    let mut choice_ids: Vec<&Arc<str>> = eval.official.keys().collect();
    choice_ids.sort_by(|a, b| natural(a, b));
    let total_votes: i64 = choice_ids
        .iter()
        .filter(|c| counting(c))
        .try_fold(0_i64, |acc, c| add_votes(acc, eval.official[*c], id, c))?;
    let results = choice_results(col, unit, &choice_ids, total_votes);
    // Highest first; ties in natural choice order (a stable sort).
    let mut ranked: Vec<&ChoiceResult> = results
        .iter()
        .zip(&choice_ids)
        .filter(|(_, c)| counting(c))
        .map(|(r, _)| r)
        .collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.votes));
    let leader = ranked
        .first()
        .filter(|r| r.votes > 0)
        .map(|r| r.choice_id.clone());
    let margin = match (ranked.first(), ranked.get(1)) {
        (Some(a), Some(b)) => Some(a.votes.checked_sub(b.votes).ok_or_else(|| OverflowAt {
            unit_id: id.to_string(),
            choice_id: b.choice_id.clone(),
        })?),
        (Some(a), None) => Some(a.votes),
        _ => None,
    };
    // Over the choices the aggregate reports: a source that does not
    // report a choice (under votes) does not disagree about it.
    let disagree = match (&eval.reported, &eval.sum_of_children) {
        (Some(r), Some(s)) => r.iter().any(|(k, v)| s.get(k).copied().unwrap_or(0) != *v),
        _ => false,
    };
    // A unit known only as a parent has no name of its own: its id,
    // less its parent's path when the id is a path under it.
    let unit_name = official_own.map_or_else(
        || {
            parent_of
                .get(id)
                .and_then(|p| id.strip_prefix(&**p)?.strip_prefix('/'))
                .unwrap_or(id)
                .to_string()
        },
        |o| o.info.0.name.to_string(),
    );
    Ok(ContestResult {
        election_id: election_id.clone(),
        contest_id: key.contest_id.clone(),
        contest_name: contest_name.to_string(),
        unit_id: id.to_string(),
        unit_name,
        unit_type: types[id],
        parent_unit_id: parent_of.get(id).map(|p| p.to_string()),
        mode: sources[official].mode,
        official_feed_id: sources[official].feed_id.to_string(),
        choices: results,
        total_votes,
        leader_choice_id: leader,
        margin_votes: margin,
        margin_pct: margin
            .filter(|_| total_votes > 0)
            .map(|m| m as f64 * 100.0 / total_votes as f64),
        aggregates_disagree: disagree,
        precincts_reporting: eval.precincts_reporting,
        precincts_total: eval.precincts_total,
        pct_expected_vote: official_own.and_then(|o| o.pct_expected_vote),
        last_updated: eval.last_updated,
        contributors: by_priority
            .iter()
            .filter_map(|s| {
                eval.newest_by_source.get(s).map(|n| Contribution {
                    feed_id: sources[*s].feed_id.to_string(),
                    source_seq: n.seq,
                    source_version: n.version.as_deref().map(str::to_string),
                })
            })
            .collect(),
        trace_id: eval
            .newest
            .as_ref()
            .and_then(|n| n.trace.as_deref().map(str::to_string)),
    })
}

/// Every choice's result at one unit, in natural choice order.
fn choice_results(
    col: &Collected,
    unit: &UnitView<'_>,
    choice_ids: &[&Arc<str>],
    total_votes: i64,
) -> Vec<ChoiceResult> {
    let (sources, choices) = (&col.sources, &col.choices);
    let UnitView {
        id,
        eval,
        official,
        official_own,
        ..
    } = *unit;
    let who = &unit.who;
    let counting = |c: &Arc<str>| counts_in_total(col, c);
    choice_ids
        .iter()
        .map(|c| {
            let votes = eval.official[*c];
            let r = choices.get(*c).map(|(r, _)| r.clone());
            let by_source = if who.is_empty() {
                vec![SourceValue {
                    feed_id: sources[official].feed_id.to_string(),
                    votes,
                    source_seq: eval.newest_by_source.get(&official).map_or(0, |n| n.seq),
                }]
            } else {
                who.iter()
                    .filter_map(|s| {
                        let own = &sources[*s].units[id];
                        let v = own.choices.get(*c)?;
                        Some(SourceValue {
                            feed_id: sources[*s].feed_id.to_string(),
                            votes: v.total.or(v.by_types)?,
                            source_seq: own.newest.as_ref().map_or(0, |n| n.seq),
                        })
                    })
                    .collect()
            };
            ChoiceResult {
                choice_id: c.to_string(),
                choice_name: r
                    .as_ref()
                    .map_or_else(|| c.to_string(), |r| r.name.to_string()),
                party: r
                    .as_ref()
                    .and_then(|r| r.party.as_deref().map(str::to_string)),
                votes,
                percent: if counting(c) && total_votes > 0 {
                    votes as f64 * 100.0 / total_votes as f64
                } else {
                    0.0
                },
                reported: eval.reported.as_ref().and_then(|m| m.get(*c).copied()),
                sum_of_children: eval
                    .sum_of_children
                    .as_ref()
                    .map(|m| m.get(*c).copied().unwrap_or(0)),
                winner: official_own
                    .and_then(|o| o.choices.get(*c))
                    .and_then(|o| o.winner),
                by_source,
            }
        })
        .collect()
}
