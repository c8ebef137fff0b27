//! From a contest's current cells to one [`ContestResult`] per reporting
//! unit, at every level of the unit hierarchy.
//!
//! The rules (`GUIDE.md` §2):
//!
//! * **A unit's own value** per choice is its `total` cell when the source
//!   gives one, otherwise the sum of its vote-type cells (election day,
//!   early, absentee, provisional, other). Vote types are never added to a
//!   total.
//! * **Up the hierarchy**: a unit's children are the units whose parent
//!   link names it. Their values are summed into `sum_of_children`, but
//!   never across overlapping unit types: districts, polling places and
//!   vote centers overlap precincts and counties, so they are summed only
//!   when a unit has no other children, and then one type at a time.
//! * **Reported and computed**: where the source reports a unit directly
//!   and children exist too, both are kept (`reported`, `sum_of_children`)
//!   and `aggregates_disagree` says whether they differ. The official value
//!   is the reported one; a unit the source never reports (only named as a
//!   parent) gets the sum of its children.
//! * **Deterministic**: the result depends only on the set of cells (never
//!   on arrival order or on which instance computed it), so republishing
//!   is invisible on the compacted results topic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use votewire_schemas::types::{
    ChoiceKind, ChoiceRef, ChoiceResult, ContestResult, Contribution, ReportingUnitRef,
    SourceValue, UnitType, VoteType,
};

use crate::contest_cells::{ContestCells, ContestKey};

/// A cell's rank: `(source_seq, cell key)`; the highest describes a
/// unit, choice or contest.
type Rank = (i64, u128);

/// The newest payload that touched a unit (or its subtree): the highest
/// `(source_seq, cell key)`.
#[derive(Debug, Clone, PartialEq)]
struct Newest {
    seq: i64,
    key: u128,
    version: Option<Arc<str>>,
    trace: Option<Arc<str>>,
}

fn newer(a: Option<Newest>, b: Option<&Newest>) -> Option<Newest> {
    match (a, b) {
        (Some(a), Some(b)) if (b.seq, b.key) > (a.seq, a.key) => Some(b.clone()),
        (None, Some(b)) => Some(b.clone()),
        (a, _) => a,
    }
}

#[derive(Debug, Default)]
struct ChoiceOwn {
    total: Option<i64>,
    by_types: Option<i64>,
    winner: Option<bool>,
}

/// What a unit's own cells say.
#[derive(Debug, Default)]
struct UnitOwn {
    /// The unit as its newest cell describes it; `None` for a unit known
    /// only as another unit's parent.
    info: Option<(Arc<ReportingUnitRef>, Rank)>,
    choices: BTreeMap<Arc<str>, ChoiceOwn>,
    precincts_reporting: Option<i32>,
    precincts_total: Option<i32>,
    pct_expected_vote: Option<f64>,
    fetched_max: i64,
    newest: Option<Newest>,
}

/// A unit after its subtree was folded in.
#[derive(Debug, Default, Clone)]
struct UnitEval {
    official: BTreeMap<Arc<str>, i64>,
    reported: Option<BTreeMap<Arc<str>, i64>>,
    sum_of_children: Option<BTreeMap<Arc<str>, i64>>,
    precincts_reporting: Option<i32>,
    precincts_total: Option<i32>,
    last_updated: i64,
    newest: Option<Newest>,
}

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

/// Unit types that overlap others' geography and are summed only when a
/// unit has no other children.
fn overlapping(t: UnitType) -> bool {
    matches!(
        t,
        UnitType::District | UnitType::PollingPlace | UnitType::VoteCenter
    )
}

fn add_into(acc: &mut BTreeMap<Arc<str>, i64>, from: &BTreeMap<Arc<str>, i64>) {
    for (choice, votes) in from {
        *acc.entry(choice.clone()).or_insert(0) += votes;
    }
}

fn sum_opt(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Every unit's result for one contest, sorted by unit id.
pub fn roll_up(key: &ContestKey, cells: &ContestCells) -> Vec<ContestResult> {
    let mut units: HashMap<Arc<str>, UnitOwn> = HashMap::new();
    let mut choices: HashMap<Arc<str>, (Arc<ChoiceRef>, Rank)> = HashMap::new();
    let mut contest_name: Option<(Arc<str>, Rank)> = None;
    let mut feed: Option<(Arc<str>, votewire_schemas::types::FeedMode)> = None;
    for (ck, stored) in cells.iter() {
        let c = &stored.cell;
        let rank = (c.header.source_seq, ck);
        let u = units.entry(c.unit.source_id.clone()).or_default();
        if u.info.as_ref().is_none_or(|(_, r)| rank > *r) {
            u.info = Some((c.unit.clone(), rank));
        }
        let slot = u.choices.entry(c.choice.source_id.clone()).or_default();
        if c.vote_type == VoteType::Total {
            slot.total = Some(slot.total.unwrap_or(0) + c.votes);
        } else {
            slot.by_types = Some(slot.by_types.unwrap_or(0) + c.votes);
        }
        if c.winner.is_some() {
            slot.winner = c.winner;
        }
        u.precincts_reporting = u.precincts_reporting.max(c.precincts_reporting);
        u.precincts_total = u.precincts_total.max(c.precincts_total);
        if let Some(p) = c.pct_expected_vote {
            u.pct_expected_vote = Some(u.pct_expected_vote.map_or(p, |q| q.max(p)));
        }
        u.fetched_max = u.fetched_max.max(c.header.fetched_at);
        u.newest = newer(
            u.newest.take(),
            Some(&Newest {
                seq: c.header.source_seq,
                key: ck,
                version: c.header.source_version.clone(),
                trace: c.header.provenance.trace_id.clone(),
            }),
        );
        let ch = choices
            .entry(c.choice.source_id.clone())
            .or_insert_with(|| (c.choice.clone(), rank));
        if rank > ch.1 {
            *ch = (c.choice.clone(), rank);
        }
        if contest_name.as_ref().is_none_or(|(_, r)| rank > *r) {
            contest_name = Some((c.contest.name.clone(), rank));
        }
        feed.get_or_insert_with(|| (c.header.source_feed_id.clone(), c.header.mode));
    }
    let Some((feed_id, mode)) = feed else {
        return Vec::new();
    };
    let election_id = key.election_id.clone();

    // Parent links, with units known only as parents added, and links that
    // would close a cycle (garbage data) dropped.
    let declared: Vec<(Arc<str>, Option<Arc<str>>)> = units
        .iter()
        .map(|(id, u)| {
            let parent = u
                .info
                .as_ref()
                .and_then(|(r, _)| r.parent_source_id.clone())
                .filter(|p| p != id);
            (id.clone(), parent)
        })
        .collect();
    for (_, parent) in &declared {
        if let Some(p) = parent {
            units.entry(p.clone()).or_default();
        }
    }
    let mut parent_of: HashMap<Arc<str>, Arc<str>> = declared
        .into_iter()
        .filter_map(|(id, p)| p.map(|p| (id, p)))
        .collect();
    let ids: Vec<Arc<str>> = {
        let mut v: Vec<Arc<str>> = units.keys().cloned().collect();
        v.sort();
        v
    };
    for id in &ids {
        let mut seen = vec![id.clone()];
        let mut at = parent_of.get(id).cloned();
        while let Some(p) = at {
            if seen.contains(&p) {
                parent_of.remove(id);
                break;
            }
            at = parent_of.get(&p).cloned();
            seen.push(p);
        }
    }
    let mut children: HashMap<Arc<str>, Vec<Arc<str>>> = HashMap::new();
    for id in &ids {
        if let Some(p) = parent_of.get(id) {
            children.entry(p.clone()).or_default().push(id.clone());
        }
    }
    let unit_type = |id: &Arc<str>, units: &HashMap<Arc<str>, UnitOwn>| -> UnitType {
        match units.get(id).and_then(|u| u.info.as_ref()) {
            Some((r, _)) => r.unit_type,
            None => {
                // Known only as a parent: one level above its children.
                let child_types: Vec<UnitType> = children
                    .get(id)
                    .map(|cs| {
                        cs.iter()
                            .filter_map(|c| units.get(c)?.info.as_ref().map(|(r, _)| r.unit_type))
                            .collect()
                    })
                    .unwrap_or_default();
                if child_types.contains(&UnitType::County) {
                    UnitType::State
                } else if child_types.iter().any(|t| {
                    matches!(
                        t,
                        UnitType::Precinct | UnitType::SplitPrecinct | UnitType::CombinedPrecinct
                    )
                }) {
                    UnitType::County
                } else {
                    UnitType::Other
                }
            }
        }
    };
    let types: HashMap<Arc<str>, UnitType> = ids
        .iter()
        .map(|id| (id.clone(), unit_type(id, &units)))
        .collect();

    // Post-order: every unit after all of its children.
    let mut order: Vec<Arc<str>> = Vec::with_capacity(ids.len());
    let mut placed: std::collections::HashSet<Arc<str>> = Default::default();
    for root in ids.iter().filter(|id| !parent_of.contains_key(*id)) {
        let mut stack: Vec<(Arc<str>, bool)> = vec![(root.clone(), false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                if placed.insert(id.clone()) {
                    order.push(id);
                }
                continue;
            }
            stack.push((id.clone(), true));
            if let Some(cs) = children.get(&id) {
                for c in cs.iter().rev() {
                    stack.push((c.clone(), false));
                }
            }
        }
    }

    let mut evals: HashMap<Arc<str>, UnitEval> = HashMap::with_capacity(order.len());
    for id in &order {
        let own = &units[id];
        let reported: Option<BTreeMap<Arc<str>, i64>> = own.info.as_ref().map(|_| {
            own.choices
                .iter()
                .filter_map(|(c, v)| v.total.or(v.by_types).map(|n| (c.clone(), n)))
                .collect()
        });
        let kids = children.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let additive: Vec<&Arc<str>> = kids.iter().filter(|c| !overlapping(types[*c])).collect();
        let summed: Vec<&Arc<str>> = if additive.is_empty() {
            // Only overlapping types: sum the most common one alone.
            let mut count: BTreeMap<UnitType, usize> = BTreeMap::new();
            for c in kids {
                *count.entry(types[c]).or_insert(0) += 1;
            }
            let best = count
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(t, _)| *t);
            kids.iter().filter(|c| Some(types[*c]) == best).collect()
        } else {
            additive
        };
        let mut eval = UnitEval {
            last_updated: own.fetched_max,
            newest: own.newest.clone(),
            precincts_reporting: own.precincts_reporting,
            precincts_total: own.precincts_total,
            ..UnitEval::default()
        };
        if !summed.is_empty() {
            let mut sum = BTreeMap::new();
            let (mut pr, mut pt) = (None, None);
            for c in &summed {
                let ce = &evals[*c];
                add_into(&mut sum, &ce.official);
                pr = sum_opt(pr, ce.precincts_reporting);
                pt = sum_opt(pt, ce.precincts_total);
            }
            if own.info.is_none() {
                eval.precincts_reporting = pr;
                eval.precincts_total = pt;
            }
            eval.sum_of_children = Some(sum);
        }
        for c in kids {
            let ce = &evals[c];
            eval.last_updated = eval.last_updated.max(ce.last_updated);
            eval.newest = newer(eval.newest.take(), ce.newest.as_ref());
        }
        eval.official = reported
            .clone()
            .or_else(|| eval.sum_of_children.clone())
            .unwrap_or_default();
        eval.reported = reported;
        evals.insert(id.clone(), eval);
    }

    let contest_name = contest_name.map(|(n, _)| n.to_string()).unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(eval) = evals.get(id) else { continue };
        let own = &units[id];
        let mut choice_ids: Vec<&Arc<str>> = eval.official.keys().collect();
        choice_ids.sort_by(|a, b| natural(a, b));
        let counting = |c: &Arc<str>| {
            choices
                .get(c)
                .is_some_and(|(r, _)| counts_toward_total(r.kind))
        };
        let total_votes: i64 = choice_ids
            .iter()
            .filter(|c| counting(c))
            .map(|c| eval.official[*c])
            .sum();
        let results: Vec<ChoiceResult> = choice_ids
            .iter()
            .map(|c| {
                let votes = eval.official[*c];
                let r = choices.get(*c).map(|(r, _)| r.clone());
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
                    winner: own.choices.get(*c).and_then(|o| o.winner),
                    by_source: vec![SourceValue {
                        feed_id: feed_id.to_string(),
                        votes,
                        source_seq: eval.newest.as_ref().map_or(0, |n| n.seq),
                    }],
                }
            })
            .collect();
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
            (Some(a), Some(b)) => Some(a.votes - b.votes),
            (Some(a), None) => Some(a.votes),
            _ => None,
        };
        let disagree = match (&eval.reported, &eval.sum_of_children) {
            (Some(r), Some(s)) => {
                let keys: std::collections::BTreeSet<&Arc<str>> =
                    r.keys().chain(s.keys()).collect();
                keys.into_iter()
                    .any(|k| r.get(k).copied().unwrap_or(0) != s.get(k).copied().unwrap_or(0))
            }
            _ => false,
        };
        let (unit_name, parent) = match &own.info {
            Some((r, _)) => (r.name.to_string(), parent_of.get(id).map(|p| p.to_string())),
            None => (id.to_string(), parent_of.get(id).map(|p| p.to_string())),
        };
        out.push(ContestResult {
            election_id: election_id.clone(),
            contest_id: key.contest_id.clone(),
            contest_name: contest_name.clone(),
            unit_id: id.to_string(),
            unit_name,
            unit_type: types[id],
            parent_unit_id: parent,
            mode,
            official_feed_id: feed_id.to_string(),
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
            pct_expected_vote: own.pct_expected_vote,
            last_updated: eval.last_updated,
            contributors: eval
                .newest
                .iter()
                .map(|n| Contribution {
                    feed_id: feed_id.to_string(),
                    source_seq: n.seq,
                    source_version: n.version.as_deref().map(str::to_string),
                })
                .collect(),
            trace_id: eval
                .newest
                .as_ref()
                .and_then(|n| n.trace.as_deref().map(str::to_string)),
        });
    }
    out
}

/// The results topic's key for `result`: `election/contest/unit`, so the
/// topic compacts to the current state of every race at every unit.
pub fn result_key(result: &ContestResult) -> String {
    format!(
        "{}/{}/{}",
        result.election_id, result.contest_id, result.unit_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contest_cells::Applied;
    use votewire_schemas::types::{
        ContestKind, ContestRef, FeedMode, PayloadHeader, Provenance, VoteCell,
    };

    struct Cell<'a> {
        seq: i64,
        unit: (&'a str, UnitType, Option<&'a str>),
        choice: (&'a str, ChoiceKind),
        vote_type: VoteType,
        votes: i64,
    }

    fn vote_cell(c: &Cell) -> VoteCell {
        VoteCell {
            header: Arc::new(PayloadHeader {
                election_id: "e1".into(),
                source_feed_id: "feed-a".into(),
                mode: FeedMode::Live,
                source_seq: c.seq,
                source_version: Some(format!("v{}", c.seq).into()),
                as_of: None,
                as_of_raw: None,
                fetched_at: 1_000 * c.seq,
                provenance: Provenance {
                    feed_id: "feed-a".into(),
                    fetch_id: format!("fetch-{}", c.seq).into(),
                    source_uri: "http://example.test/".into(),
                    payload_sha256: "00".into(),
                    trace_id: Some(format!("trace-{}", c.seq).into()),
                },
            }),
            contest: Arc::new(ContestRef {
                source_id: "c1".into(),
                name: "Mayor".into(),
                kind: ContestKind::Candidate,
                vote_for: Some(1),
                primary_party: None,
            }),
            unit: Arc::new(ReportingUnitRef {
                source_id: c.unit.0.into(),
                name: c.unit.0.to_uppercase().into(),
                unit_type: c.unit.1,
                type_raw: None,
                parent_source_id: c.unit.2.map(Into::into),
                fips: None,
            }),
            choice: Arc::new(ChoiceRef {
                source_id: c.choice.0.into(),
                name: format!("Choice {}", c.choice.0).into(),
                kind: c.choice.1,
                party: None,
                incumbent: None,
            }),
            vote_type: c.vote_type,
            vote_type_raw: c.vote_type.as_str().into(),
            votes: c.votes,
            precincts_reporting: None,
            precincts_total: None,
            pct_expected_vote: None,
            winner: None,
            raw_ref: None,
            links: None,
        }
    }

    fn contest(cells: &[Cell]) -> (ContestKey, ContestCells) {
        let mut cc = ContestCells::default();
        let mut key = None;
        for (offset, c) in cells.iter().enumerate() {
            let vc = vote_cell(c);
            key.get_or_insert_with(|| ContestKey::of(&vc));
            cc.apply(vc.cell_key().0, vc, offset as i64);
        }
        (key.unwrap(), cc)
    }

    fn unit<'a>(results: &'a [ContestResult], id: &str) -> &'a ContestResult {
        results
            .iter()
            .find(|r| r.unit_id == id)
            .expect("unit result")
    }

    fn votes(r: &ContestResult) -> Vec<(&str, i64)> {
        r.choices
            .iter()
            .map(|c| (c.choice_id.as_str(), c.votes))
            .collect()
    }

    const CAND: ChoiceKind = ChoiceKind::Candidate;

    #[test]
    fn a_later_payload_wins_even_when_its_count_is_lower_and_older_ones_never_do() {
        let p1 = ("p1", UnitType::Precinct, None);
        let at = |seq, votes| Cell {
            seq,
            unit: p1,
            choice: ("1", CAND),
            vote_type: VoteType::Total,
            votes,
        };
        let mut cc = ContestCells::default();
        let first = vote_cell(&at(1, 500));
        let key = first.cell_key().0;
        let ck = ContestKey::of(&first);
        assert_eq!(cc.apply(key, first, 0), Applied::Stored);
        // A correction: the count goes down in payload 2.
        assert_eq!(cc.apply(key, vote_cell(&at(2, 480)), 1), Applied::Stored);
        // Payload 1 republished late (an ingestor restart) is ignored.
        assert_eq!(cc.apply(key, vote_cell(&at(1, 500)), 2), Applied::Older);
        // The same payload twice changes nothing.
        assert_eq!(cc.apply(key, vote_cell(&at(2, 480)), 3), Applied::Stored);
        assert_eq!(cc.len(), 1);
        let r = roll_up(&ck, &cc);
        assert_eq!(votes(unit(&r, "p1")), [("1", 480)]);
        assert_eq!(unit(&r, "p1").contributors[0].source_seq, 2);
        assert_eq!(unit(&r, "p1").trace_id.as_deref(), Some("trace-2"));
    }

    #[test]
    fn vote_types_add_up_to_a_total_only_when_the_source_gives_none() {
        let p = ("p1", UnitType::Precinct, None);
        let (k, cc) = contest(&[
            // Choice 1: types only, 30 + 12 + 3.
            Cell {
                seq: 1,
                unit: p,
                choice: ("1", CAND),
                vote_type: VoteType::ElectionDay,
                votes: 30,
            },
            Cell {
                seq: 1,
                unit: p,
                choice: ("1", CAND),
                vote_type: VoteType::Early,
                votes: 12,
            },
            Cell {
                seq: 1,
                unit: p,
                choice: ("1", CAND),
                vote_type: VoteType::Absentee,
                votes: 3,
            },
            // Choice 2: a total and types that disagree with it; the total wins.
            Cell {
                seq: 1,
                unit: p,
                choice: ("2", CAND),
                vote_type: VoteType::Total,
                votes: 50,
            },
            Cell {
                seq: 1,
                unit: p,
                choice: ("2", CAND),
                vote_type: VoteType::ElectionDay,
                votes: 40,
            },
        ]);
        let r = roll_up(&k, &cc);
        let p1 = unit(&r, "p1");
        assert_eq!(votes(p1), [("1", 45), ("2", 50)]);
        assert_eq!(p1.total_votes, 95);
        assert_eq!(p1.leader_choice_id.as_deref(), Some("2"));
        assert_eq!(p1.margin_votes, Some(5));
        let pct: Vec<f64> = p1.choices.iter().map(|c| c.percent).collect();
        assert!((pct[0] - 100.0 * 45.0 / 95.0).abs() < 1e-9, "{pct:?}");
    }

    #[test]
    fn precincts_roll_up_to_counties_and_a_state_the_source_never_reports() {
        let p = |id, county| (id, UnitType::Precinct, Some(county));
        let c = |id| (id, UnitType::County, Some("GA"));
        let total = VoteType::Total;
        let (k, cc) = contest(&[
            Cell {
                seq: 1,
                unit: p("a1", "A"),
                choice: ("1", CAND),
                vote_type: total,
                votes: 10,
            },
            Cell {
                seq: 1,
                unit: p("a1", "A"),
                choice: ("2", CAND),
                vote_type: total,
                votes: 20,
            },
            Cell {
                seq: 2,
                unit: p("a2", "A"),
                choice: ("1", CAND),
                vote_type: total,
                votes: 5,
            },
            Cell {
                seq: 1,
                unit: p("b1", "B"),
                choice: ("1", CAND),
                vote_type: total,
                votes: 7,
            },
            // County A reports itself and agrees; county B reports 9, its
            // one precinct says 7: both kept, flagged.
            Cell {
                seq: 1,
                unit: c("A"),
                choice: ("1", CAND),
                vote_type: total,
                votes: 15,
            },
            Cell {
                seq: 1,
                unit: c("A"),
                choice: ("2", CAND),
                vote_type: total,
                votes: 20,
            },
            Cell {
                seq: 1,
                unit: c("B"),
                choice: ("1", CAND),
                vote_type: total,
                votes: 9,
            },
        ]);
        let r = roll_up(&k, &cc);
        let a = unit(&r, "A");
        assert_eq!(votes(a), [("1", 15), ("2", 20)]);
        assert!(!a.aggregates_disagree);
        let b = unit(&r, "B");
        assert_eq!(votes(b), [("1", 9)], "the reported aggregate is official");
        assert_eq!(b.choices[0].reported, Some(9));
        assert_eq!(b.choices[0].sum_of_children, Some(7));
        assert!(b.aggregates_disagree);
        // GA exists only as the counties' parent: the sum of their
        // official values, typed one level up.
        let ga = unit(&r, "GA");
        assert_eq!(votes(ga), [("1", 24), ("2", 20)]);
        assert_eq!(ga.unit_type, UnitType::State);
        assert_eq!(ga.choices[0].reported, None);
        assert_eq!(ga.contributors[0].source_seq, 2, "the newest payload below");
        assert_eq!(ga.last_updated, 2_000);
        assert_eq!(unit(&r, "a1").parent_unit_id.as_deref(), Some("A"));
        assert_eq!(r.len(), 6, "three precincts, two counties, one state");
    }

    #[test]
    fn overlapping_unit_types_are_never_summed_together() {
        let total = VoteType::Total;
        let (k, cc) = contest(&[
            Cell {
                seq: 1,
                unit: ("p1", UnitType::Precinct, Some("X")),
                choice: ("1", CAND),
                vote_type: total,
                votes: 10,
            },
            Cell {
                seq: 1,
                unit: ("p2", UnitType::Precinct, Some("X")),
                choice: ("1", CAND),
                vote_type: total,
                votes: 11,
            },
            // A polling place made of p1 and p2: the same ballots again.
            Cell {
                seq: 1,
                unit: ("pp", UnitType::PollingPlace, Some("X")),
                choice: ("1", CAND),
                vote_type: total,
                votes: 21,
            },
            // District D has only districts' children: overlapping, summed
            // alone, one type.
            Cell {
                seq: 1,
                unit: ("vc1", UnitType::VoteCenter, Some("D")),
                choice: ("1", CAND),
                vote_type: total,
                votes: 4,
            },
            Cell {
                seq: 1,
                unit: ("vc2", UnitType::VoteCenter, Some("D")),
                choice: ("1", CAND),
                vote_type: total,
                votes: 6,
            },
        ]);
        let r = roll_up(&k, &cc);
        assert_eq!(votes(unit(&r, "X")), [("1", 21)], "not 42");
        assert_eq!(votes(unit(&r, "D")), [("1", 10)]);
    }

    #[test]
    fn pseudo_choices_do_not_count_toward_the_total_or_the_lead() {
        let u = ("s", UnitType::State, None);
        let total = VoteType::Total;
        let (k, cc) = contest(&[
            Cell {
                seq: 1,
                unit: u,
                choice: ("1", CAND),
                vote_type: total,
                votes: 60,
            },
            Cell {
                seq: 1,
                unit: u,
                choice: ("2", CAND),
                vote_type: total,
                votes: 40,
            },
            Cell {
                seq: 1,
                unit: u,
                choice: ("under", ChoiceKind::UnderVote),
                vote_type: total,
                votes: 900,
            },
        ]);
        let s = &roll_up(&k, &cc)[0];
        assert_eq!(s.total_votes, 100);
        assert_eq!(s.leader_choice_id.as_deref(), Some("1"));
        assert_eq!((s.margin_votes, s.margin_pct), (Some(20), Some(20.0)));
        let under = s.choices.iter().find(|c| c.choice_id == "under").unwrap();
        assert_eq!((under.votes, under.percent), (900, 0.0));
    }

    #[test]
    fn a_parent_cycle_in_garbage_data_does_not_hang_or_lose_units() {
        let total = VoteType::Total;
        let (k, cc) = contest(&[
            Cell {
                seq: 1,
                unit: ("x", UnitType::County, Some("y")),
                choice: ("1", CAND),
                vote_type: total,
                votes: 1,
            },
            Cell {
                seq: 1,
                unit: ("y", UnitType::County, Some("x")),
                choice: ("1", CAND),
                vote_type: total,
                votes: 2,
            },
        ]);
        let r = roll_up(&k, &cc);
        assert_eq!(r.len(), 2);
        assert_eq!(votes(unit(&r, "x")), [("1", 1)]);
        assert_eq!(votes(unit(&r, "y")), [("1", 2)]);
    }

    #[test]
    fn the_result_does_not_depend_on_arrival_order() {
        let p = |id| (id, UnitType::Precinct, Some("C"));
        let total = VoteType::Total;
        let cells = [
            Cell {
                seq: 3,
                unit: p("a"),
                choice: ("1", CAND),
                vote_type: total,
                votes: 3,
            },
            Cell {
                seq: 1,
                unit: p("b"),
                choice: ("1", CAND),
                vote_type: total,
                votes: 5,
            },
            Cell {
                seq: 2,
                unit: p("c"),
                choice: ("2", CAND),
                vote_type: total,
                votes: 8,
            },
        ];
        let (k, forward) = contest(&cells);
        let mut reversed = ContestCells::default();
        for (i, c) in cells.iter().rev().enumerate() {
            let vc = vote_cell(c);
            reversed.apply(vc.cell_key().0, vc, i as i64);
        }
        assert_eq!(roll_up(&k, &forward), roll_up(&k, &reversed));
    }
}
