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
    ChoiceKind, ChoiceRef, ChoiceResult, ContestResult, Contribution, FeedMode, ReportingUnitRef,
    SourceValue, UnitType, VoteType,
};

use crate::contest_cells::{ContestCells, ContestKey};

/// A cell's rank: `(source_seq, cell key)`; the highest describes a
/// unit, choice or contest.
type Rank = (i64, u128);

/// A source's priority, then a cell's rank: which source describes a
/// choice or the contest in a merged contest.
type PriorityRank = (i32, Rank);

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

/// What one source's own cells say about one unit.
#[derive(Debug)]
struct UnitOwn {
    /// The unit as the source's newest cell there describes it.
    info: (Arc<ReportingUnitRef>, Rank),
    /// The source's parent for the unit (shared id), if any.
    parent: Option<Arc<str>>,
    choices: BTreeMap<Arc<str>, ChoiceOwn>,
    precincts_reporting: Option<i32>,
    precincts_total: Option<i32>,
    pct_expected_vote: Option<f64>,
    fetched_max: i64,
    newest: Option<Newest>,
}

impl UnitOwn {
    /// The source's value per choice: its total, or the sum of its vote
    /// types where it gives no total.
    fn values(&self) -> BTreeMap<Arc<str>, i64> {
        self.choices
            .iter()
            .filter_map(|(c, v)| v.total.or(v.by_types).map(|n| (c.clone(), n)))
            .collect()
    }
}

/// One source (feed) of a contest: its priority and per-unit cells.
#[derive(Debug)]
struct Source {
    feed_id: Arc<str>,
    priority: i32,
    mode: FeedMode,
    units: HashMap<Arc<str>, UnitOwn>,
    /// The feed's configured parent (`[feed.results] parent`): the top of
    /// its hierarchy, above units it names only as parents.
    root: Option<Arc<str>>,
}

/// A unit after its subtree was folded in.
#[derive(Debug, Default, Clone)]
struct UnitEval {
    official: BTreeMap<Arc<str>, i64>,
    /// The official source's directly reported values.
    reported: Option<BTreeMap<Arc<str>, i64>>,
    sum_of_children: Option<BTreeMap<Arc<str>, i64>>,
    /// Index into the sources of the official one.
    official_source: Option<usize>,
    precincts_reporting: Option<i32>,
    precincts_total: Option<i32>,
    last_updated: i64,
    newest: Option<Newest>,
    /// Per source, the newest payload in the subtree.
    newest_by_source: BTreeMap<usize, Newest>,
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

/// A sum of votes past what an `i64` holds. The intake refuses cells past
/// [`votewire_schemas::MAX_VOTES`], so only a contest of billions of cells
/// gets here; its results are left as last published and the contest is
/// dead-lettered (retrying cannot help: the same cells overflow again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "rolling up contest {contest_id}: the votes of choice {choice_id} at unit {unit_id} overflow a 64-bit sum; not retryable"
)]
pub struct VoteSumOverflow {
    pub contest_id: String,
    pub unit_id: String,
    pub choice_id: String,
}

/// `a + b`, or where it overflowed.
fn add_votes(a: i64, b: i64, unit: &str, choice: &str) -> Result<i64, (String, String)> {
    a.checked_add(b)
        .ok_or_else(|| (unit.to_string(), choice.to_string()))
}

fn add_into(
    acc: &mut BTreeMap<Arc<str>, i64>,
    from: &BTreeMap<Arc<str>, i64>,
    unit: &str,
) -> Result<(), (String, String)> {
    for (choice, votes) in from {
        let slot = acc.entry(choice.clone()).or_insert(0);
        *slot = add_votes(*slot, *votes, unit, choice)?;
    }
    Ok(())
}

fn sum_opt(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Trims and collapses whitespace: how ids that sources spell differently
/// are matched in a merged contest (never how they are displayed).
fn normalized(s: &str) -> Arc<str> {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    Arc::from(out)
}

/// In a merged contest, each source's units get path ids: a unit the
/// source's config maps keeps the shared id it maps to; any other unit is
/// its parent's path, `/`, and its trimmed source id (`GA/Bacon/Douglas`).
/// Names repeat across levels and places (precinct Douglas in Bacon
/// County is not Douglas County; every county has a "Courthouse"
/// precinct), so a bare name never identifies a unit across sources.
/// Returns, per feed, source unit id (and shared parent id) → path.
fn unit_paths(cells: &ContestCells) -> HashMap<Arc<str>, HashMap<Arc<str>, Arc<str>>> {
    // Per feed: source unit id → (explicit shared id, parent link).
    type Links = (Option<Arc<str>>, Option<Arc<str>>);
    let mut per_feed: HashMap<Arc<str>, HashMap<Arc<str>, Links>> = HashMap::new();
    // Per feed: its configured root, the top of its hierarchy.
    let mut roots: HashMap<Arc<str>, Arc<str>> = HashMap::new();
    for (_, c) in cells.iter() {
        let l = c.links.as_deref();
        if let Some(r) = l.and_then(|l| l.root_unit_id.clone()) {
            roots.entry(c.header.source_feed_id.clone()).or_insert(r);
        }
        per_feed
            .entry(c.header.source_feed_id.clone())
            .or_default()
            .entry(c.unit.source_id.clone())
            .or_insert_with(|| {
                (
                    l.and_then(|l| l.unit_id.clone()),
                    l.and_then(|l| l.parent_unit_id.clone()),
                )
            });
    }
    per_feed
        .into_iter()
        .map(|(feed, units)| {
            let feed_root = roots.get(&feed).cloned();
            // A parent the source does not report is a shared id, or,
            // when the feed has a root, a unit under that root.
            let unreported = |u: &Arc<str>| -> (Option<Arc<str>>, Option<Arc<str>>) {
                match &feed_root {
                    Some(r) if r != u => (Some(r.clone()), Some(u.clone())),
                    _ => (Some(u.clone()), None),
                }
            };
            let path_of = |root: Option<Arc<str>>, chain: &[Arc<str>]| -> Arc<str> {
                let mut path: String = root.as_deref().unwrap_or("").to_string();
                for part in chain.iter().rev() {
                    if !path.is_empty() {
                        path.push('/');
                    }
                    path.push_str(&normalized(part));
                }
                Arc::from(path)
            };
            let mut paths: HashMap<Arc<str>, Arc<str>> = HashMap::new();
            for sid in units.keys() {
                // Walk up to a root or an explicitly shared id (at most 32
                // levels: a cycle in garbage data ends there).
                let mut chain: Vec<Arc<str>> = Vec::new();
                let mut at = Some(sid.clone());
                let mut root: Option<Arc<str>> = None;
                while let Some(u) = at.take() {
                    if chain.len() > 32 || chain.contains(&u) {
                        break;
                    }
                    match units.get(&u) {
                        Some((Some(shared), _)) => root = Some(shared.clone()),
                        Some((None, parent)) => {
                            chain.push(u);
                            at = parent.clone();
                        }
                        None => {
                            let (r, below) = unreported(&u);
                            chain.extend(below);
                            root = r;
                        }
                    }
                }
                paths.insert(sid.clone(), path_of(root, &chain));
            }
            // Parents named but not reported get their paths too.
            let named: Vec<Arc<str>> = units
                .values()
                .filter_map(|(_, p)| p.clone())
                .filter(|p| !units.contains_key(p))
                .collect();
            for p in named {
                let (r, below) = unreported(&p);
                let chain: Vec<Arc<str>> = below.into_iter().collect();
                paths.insert(p, path_of(r, &chain));
            }
            // Shared parents named in links resolve to themselves.
            (feed, paths)
        })
        .collect()
}

/// Every unit's result for one contest, sorted by unit id.
///
/// A contest is one source's (`feed/contest`) or, when feeds link their
/// contests to one shared id (`[feed.results]`), several sources merged:
/// units and choices are matched by their shared ids (or, without one,
/// by their trimmed source id and trimmed choice name), and at each unit
/// the source with the highest priority that reports it is official,
/// with every reporting source's value kept in `by_source`.
///
/// Every sum is checked: one past `i64` is a [`VoteSumOverflow`] naming
/// where, and no result of the contest is returned.
pub fn roll_up(
    key: &ContestKey,
    cells: &ContestCells,
) -> Result<Vec<ContestResult>, VoteSumOverflow> {
    roll_up_sums(key, cells).map_err(|(unit_id, choice_id)| VoteSumOverflow {
        contest_id: key.contest_id.clone(),
        unit_id,
        choice_id,
    })
}

fn roll_up_sums(
    key: &ContestKey,
    cells: &ContestCells,
) -> Result<Vec<ContestResult>, (String, String)> {
    let mut sources: Vec<Source> = Vec::new();
    let mut source_of: HashMap<Arc<str>, usize> = HashMap::new();
    // A merged contest (its sources linked to a shared id) matches units
    // and choices across sources; a single source's uses its own ids.
    let merged = cells
        .iter()
        .any(|(_, c)| c.links.as_ref().is_some_and(|l| l.contest_id.is_some()));
    let merged_paths = if merged {
        unit_paths(cells)
    } else {
        HashMap::new()
    };
    // Per shared choice id: the choice ref from the best (priority, rank).
    let mut choices: HashMap<Arc<str>, (Arc<ChoiceRef>, PriorityRank)> = HashMap::new();
    let mut contest_name: Option<(Arc<str>, PriorityRank)> = None;
    for (ck, c) in cells.iter() {
        let links = c.links.as_deref();
        let priority = links.map_or(0, |l| l.priority);
        let rank = (c.header.source_seq, ck);
        let s = *source_of
            .entry(c.header.source_feed_id.clone())
            .or_insert_with(|| {
                sources.push(Source {
                    feed_id: c.header.source_feed_id.clone(),
                    priority,
                    mode: c.header.mode,
                    units: HashMap::new(),
                    root: links.and_then(|l| l.root_unit_id.clone()),
                });
                sources.len() - 1
            });
        let (unit_id, parent) = if merged {
            let paths = &merged_paths[&c.header.source_feed_id];
            let unit_id = paths
                .get(&c.unit.source_id)
                .cloned()
                .unwrap_or_else(|| normalized(&c.unit.source_id));
            let parent = links
                .and_then(|l| l.parent_unit_id.as_ref())
                .map(|p| paths.get(p).cloned().unwrap_or_else(|| p.clone()));
            (unit_id, parent)
        } else {
            let unit_id = links
                .and_then(|l| l.unit_id.clone())
                .unwrap_or_else(|| c.unit.source_id.clone());
            let parent = match links {
                Some(l) => l.parent_unit_id.clone(),
                None => c.unit.parent_source_id.clone(),
            };
            (unit_id, parent)
        };
        let choice_id = match links.and_then(|l| l.choice_id.clone()) {
            Some(id) => id,
            None if merged => normalized(&c.choice.name),
            None => c.choice.source_id.clone(),
        };
        let u = sources[s].units.entry(unit_id).or_insert_with(|| UnitOwn {
            info: (c.unit.clone(), rank),
            parent: parent.clone(),
            choices: BTreeMap::new(),
            precincts_reporting: None,
            precincts_total: None,
            pct_expected_vote: None,
            fetched_max: 0,
            newest: None,
        });
        if rank > u.info.1 {
            u.info = (c.unit.clone(), rank);
            u.parent = parent;
        }
        let slot = u.choices.entry(choice_id.clone()).or_default();
        let sum = if c.vote_type == VoteType::Total {
            &mut slot.total
        } else {
            &mut slot.by_types
        };
        *sum = Some(add_votes(
            sum.unwrap_or(0),
            c.votes,
            &c.unit.source_id,
            &choice_id,
        )?);
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
        let best = (priority, rank);
        let ch = choices
            .entry(choice_id)
            .or_insert_with(|| (c.choice.clone(), best));
        if best > ch.1 {
            *ch = (c.choice.clone(), best);
        }
        if contest_name.as_ref().is_none_or(|(_, r)| best > *r) {
            contest_name = Some((c.contest.name.clone(), best));
        }
    }
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    // Sources in official order: highest priority first, then feed id.
    let mut by_priority: Vec<usize> = (0..sources.len()).collect();
    by_priority.sort_by(|a, b| {
        let (x, y) = (&sources[*a], &sources[*b]);
        y.priority.cmp(&x.priority).then(x.feed_id.cmp(&y.feed_id))
    });
    let election_id = key.election_id.clone();

    // The merged tree: every unit any source reports or names as a parent;
    // a unit's parent from the highest-priority source giving one; links
    // that would close a cycle (garbage data) dropped.
    let mut ids: Vec<Arc<str>> = Vec::new();
    let mut parent_of: HashMap<Arc<str>, Arc<str>> = HashMap::new();
    {
        let mut seen: std::collections::HashSet<Arc<str>> = Default::default();
        for &s in &by_priority {
            let mut units: Vec<(&Arc<str>, &UnitOwn)> = sources[s].units.iter().collect();
            units.sort_by(|a, b| a.0.cmp(b.0));
            for (id, u) in units {
                if seen.insert(id.clone()) {
                    ids.push(id.clone());
                }
                if let Some(p) = u.parent.as_ref().filter(|p| *p != id) {
                    parent_of.entry(id.clone()).or_insert_with(|| p.clone());
                    if seen.insert(p.clone()) {
                        ids.push(p.clone());
                    }
                }
            }
        }
        // A unit a source names only as a parent (a precinct file's
        // county), with no parent from anyone: under the source's root.
        for &s in &by_priority {
            let Some(root) = sources[s].root.clone() else {
                continue;
            };
            let mut named: Vec<Arc<str>> = sources[s]
                .units
                .values()
                .filter_map(|u| u.parent.clone())
                .filter(|p| {
                    *p != root
                        && !parent_of.contains_key(p)
                        && !sources.iter().any(|x| x.units.contains_key(p))
                })
                .collect();
            named.sort();
            named.dedup();
            for p in named {
                parent_of.insert(p, root.clone());
                if seen.insert(root.clone()) {
                    ids.push(root.clone());
                }
            }
        }
    }
    ids.sort();
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
    // Who reports each unit, in official order.
    let reporters = |id: &Arc<str>| -> Vec<usize> {
        by_priority
            .iter()
            .copied()
            .filter(|s| sources[*s].units.contains_key(id))
            .collect()
    };
    let reported_type = |id: &Arc<str>| -> Option<UnitType> {
        reporters(id)
            .first()
            .map(|s| sources[*s].units[id].info.0.unit_type)
    };
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

    // Types in post-order, so a unit known only as a parent is typed from
    // its children's types, reported or inferred (precincts -> county ->
    // state).
    let mut types: HashMap<Arc<str>, UnitType> = HashMap::with_capacity(order.len());
    for id in &order {
        let t = reported_type(id).unwrap_or_else(|| {
            // Known only as a parent: one level above its children.
            let kid_types: Vec<UnitType> = children
                .get(id)
                .map(|cs| cs.iter().filter_map(|c| types.get(c).copied()).collect())
                .unwrap_or_default();
            if kid_types.contains(&UnitType::County) {
                UnitType::State
            } else if kid_types.iter().any(|t| {
                matches!(
                    t,
                    UnitType::Precinct | UnitType::SplitPrecinct | UnitType::CombinedPrecinct
                )
            }) {
                UnitType::County
            } else {
                UnitType::Other
            }
        });
        types.insert(id.clone(), t);
    }

    let mut evals: HashMap<Arc<str>, UnitEval> = HashMap::with_capacity(order.len());
    for id in &order {
        let who = reporters(id);
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
        let mut eval = UnitEval::default();
        for &s in &who {
            let own = &sources[s].units[id];
            eval.last_updated = eval.last_updated.max(own.fetched_max);
            eval.newest = newer(eval.newest.take(), own.newest.as_ref());
            if let Some(n) = &own.newest {
                let slot = eval.newest_by_source.entry(s);
                let cur = match slot {
                    std::collections::btree_map::Entry::Occupied(ref o) => Some(o.get().clone()),
                    std::collections::btree_map::Entry::Vacant(_) => None,
                };
                if let Some(best) = newer(cur, Some(n)) {
                    eval.newest_by_source.insert(s, best);
                }
            }
        }
        if let Some(&s) = who.first() {
            let own = &sources[s].units[id];
            eval.reported = Some(own.values());
            eval.official_source = Some(s);
            eval.precincts_reporting = own.precincts_reporting;
            eval.precincts_total = own.precincts_total;
        }
        if !summed.is_empty() {
            let mut sum = BTreeMap::new();
            let (mut pr, mut pt) = (None, None);
            let mut best_child_source: Option<usize> = None;
            for c in &summed {
                let ce = &evals[*c];
                add_into(&mut sum, &ce.official, id)?;
                pr = sum_opt(pr, ce.precincts_reporting);
                pt = sum_opt(pt, ce.precincts_total);
                if let Some(cs) = ce.official_source {
                    let rank = |s: usize| by_priority.iter().position(|x| *x == s);
                    if best_child_source.is_none_or(|b| rank(cs) < rank(b)) {
                        best_child_source = Some(cs);
                    }
                }
            }
            if who.is_empty() {
                eval.precincts_reporting = pr;
                eval.precincts_total = pt;
                eval.official_source = best_child_source;
            }
            eval.sum_of_children = Some(sum);
        }
        for c in kids {
            let ce = &evals[c];
            eval.last_updated = eval.last_updated.max(ce.last_updated);
            eval.newest = newer(eval.newest.take(), ce.newest.as_ref());
            for (s, n) in &ce.newest_by_source {
                let cur = eval.newest_by_source.get(s).cloned();
                if let Some(best) = newer(cur, Some(n)) {
                    eval.newest_by_source.insert(*s, best);
                }
            }
        }
        eval.official = eval
            .reported
            .clone()
            .or_else(|| eval.sum_of_children.clone())
            .unwrap_or_default();
        evals.insert(id.clone(), eval);
    }

    let contest_name = contest_name.map(|(n, _)| n.to_string()).unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(eval) = evals.get(id) else { continue };
        let who = reporters(id);
        let official = eval.official_source.unwrap_or(by_priority[0]);
        let official_own = who.first().map(|s| &sources[*s].units[id]);
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
            .try_fold(0_i64, |acc, c| add_votes(acc, eval.official[*c], id, c))?;
        let results: Vec<ChoiceResult> = choice_ids
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
            (Some(a), Some(b)) => Some(
                a.votes
                    .checked_sub(b.votes)
                    .ok_or_else(|| (id.to_string(), b.choice_id.clone()))?,
            ),
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
        out.push(ContestResult {
            election_id: election_id.clone(),
            contest_id: key.contest_id.clone(),
            contest_name: contest_name.clone(),
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
        });
    }
    Ok(out)
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
        for c in cells.iter() {
            let vc = vote_cell(c);
            key.get_or_insert_with(|| ContestKey::of(&vc));
            cc.apply(vc.cell_key().0, vc);
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
        assert_eq!(cc.apply(key, first), Applied::Stored);
        // A correction: the count goes down in payload 2.
        assert_eq!(cc.apply(key, vote_cell(&at(2, 480))), Applied::Stored);
        // Payload 1 republished late (an ingestor restart) is ignored.
        assert_eq!(cc.apply(key, vote_cell(&at(1, 500))), Applied::Older);
        // The same payload twice changes nothing.
        assert_eq!(cc.apply(key, vote_cell(&at(2, 480))), Applied::Stored);
        assert_eq!(cc.len(), 1);
        let r = roll_up(&ck, &cc).unwrap();
        assert_eq!(votes(unit(&r, "p1")), [("1", 480)]);
        assert_eq!(unit(&r, "p1").contributors[0].source_seq, 2);
        assert_eq!(unit(&r, "p1").trace_id.as_deref(), Some("trace-2"));
    }

    #[test]
    fn a_sum_past_i64_is_an_overflow_naming_where_never_a_wrapped_count() {
        let big = i64::MAX / 2 + 1;
        let cell = |unit, choice, vote_type, votes| Cell {
            seq: 1,
            unit,
            choice: (choice, CAND),
            vote_type,
            votes,
        };
        let p1 = ("p1", UnitType::Precinct, Some("c"));
        let p2 = ("p2", UnitType::Precinct, Some("c"));
        // Vote types of one choice at one unit.
        let (k, cc) = contest(&[
            cell(p1, "1", VoteType::ElectionDay, big),
            cell(p1, "1", VoteType::Early, big),
        ]);
        let e = roll_up(&k, &cc).expect_err("types overflow");
        assert_eq!((e.unit_id.as_str(), e.choice_id.as_str()), ("p1", "1"));
        // Children summed into their parent.
        let (k, cc) = contest(&[
            cell(p1, "1", VoteType::Total, big),
            cell(p2, "1", VoteType::Total, big),
        ]);
        let e = roll_up(&k, &cc).expect_err("children overflow");
        assert_eq!((e.unit_id.as_str(), e.choice_id.as_str()), ("c", "1"));
        // Choices summed into a unit's total votes.
        let alone = ("p1", UnitType::Precinct, None);
        let (k, cc) = contest(&[
            cell(alone, "1", VoteType::Total, big),
            cell(alone, "2", VoteType::Total, big),
        ]);
        let e = roll_up(&k, &cc).expect_err("total overflow");
        assert_eq!(e.unit_id, "p1");
        assert!(e.to_string().contains("not retryable"), "{e}");
        // Just under the edge it sums exactly.
        let (k, cc) = contest(&[
            cell(alone, "1", VoteType::Total, big - 1),
            cell(alone, "2", VoteType::Total, big),
        ]);
        let r = roll_up(&k, &cc).expect("fits");
        assert_eq!(unit(&r, "p1").total_votes, i64::MAX);
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
        let r = roll_up(&k, &cc).unwrap();
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
        let r = roll_up(&k, &cc).unwrap();
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
        let r = roll_up(&k, &cc).unwrap();
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
        let s = &roll_up(&k, &cc).unwrap()[0];
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
        let r = roll_up(&k, &cc).unwrap();
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
        for c in cells.iter().rev() {
            let vc = vote_cell(c);
            reversed.apply(vc.cell_key().0, vc);
        }
        assert_eq!(
            roll_up(&k, &forward).unwrap(),
            roll_up(&k, &reversed).unwrap()
        );
    }
}

#[cfg(test)]
mod merged_tests {
    //! Several sources linked to one contest, computed by hand.
    use super::*;
    use votewire_schemas::types::{
        ContestKind, ContestRef, FeedMode, PayloadHeader, Provenance, ResultLinks, VoteCell,
    };

    /// A cell of `feed` (priority `priority`) for the shared contest `race`.
    #[allow(clippy::too_many_arguments)]
    fn cell(
        feed: &str,
        priority: i32,
        unit: &str,
        unit_type: UnitType,
        parent: Option<&str>,
        unit_link: Option<&str>,
        choice: (&str, &str),
        votes: i64,
    ) -> VoteCell {
        VoteCell {
            header: Arc::new(PayloadHeader {
                election_id: "e".into(),
                source_feed_id: feed.into(),
                mode: FeedMode::Live,
                source_seq: 1,
                source_version: None,
                as_of: None,
                as_of_raw: None,
                fetched_at: 1,
                provenance: Provenance {
                    feed_id: feed.into(),
                    fetch_id: "f".into(),
                    source_uri: "u".into(),
                    payload_sha256: "00".into(),
                    trace_id: None,
                },
            }),
            contest: Arc::new(ContestRef {
                source_id: format!("{feed}-contest").into(),
                name: "Governor".into(),
                kind: ContestKind::Candidate,
                vote_for: None,
                primary_party: None,
            }),
            unit: Arc::new(ReportingUnitRef {
                source_id: unit.into(),
                name: unit.into(),
                unit_type,
                type_raw: None,
                parent_source_id: None,
                fips: None,
            }),
            choice: Arc::new(ChoiceRef {
                source_id: choice.0.into(),
                name: choice.1.into(),
                kind: ChoiceKind::Candidate,
                party: None,
                incumbent: None,
            }),
            vote_type: VoteType::Total,
            vote_type_raw: "total".into(),
            votes,
            precincts_reporting: None,
            precincts_total: None,
            pct_expected_vote: None,
            winner: None,
            raw_ref: None,
            links: Some(Arc::new(ResultLinks {
                root_unit_id: None,
                contest_id: Some("race".into()),
                unit_id: unit_link.map(Into::into),
                parent_unit_id: parent.map(Into::into),
                choice_id: None,
                priority,
            })),
        }
    }

    /// Precinct cells of one feed whose links name the county and the
    /// feed's root `ST`, as the ingestor stamps a precinct file with
    /// `[feed.results] parent = "ST"`; `merged` links the contest too.
    fn precinct_file(merged: bool, root: &str) -> Vec<VoteCell> {
        [
            ("p1", "C1", ("1", "Ann"), 10),
            ("p1", "C1", ("2", "Bo"), 4),
            ("p2", "C1", ("1", "Ann"), 5),
            ("p3", "C2", ("1", "Ann"), 7),
            ("p3", "C2", ("2", "Bo"), 20),
        ]
        .into_iter()
        .map(|(unit, county, choice, votes)| {
            let mut c = cell(
                "csv",
                5,
                unit,
                UnitType::Precinct,
                Some(county),
                None,
                choice,
                votes,
            );
            let mut links = (**c.links.as_ref().unwrap()).clone();
            links.root_unit_id = Some(root.into());
            if !merged {
                links.contest_id = None;
            }
            c.links = Some(Arc::new(links));
            c
        })
        .collect()
    }

    #[test]
    fn a_precinct_file_rolls_up_through_its_counties_to_the_feeds_root() {
        for merged_contest in [false, true] {
            let cells = precinct_file(merged_contest, "ST");
            let key = ContestKey::of(&cells[0]);
            let mut cc = ContestCells::default();
            for c in cells {
                cc.apply(c.cell_key().0, c);
            }
            let r: BTreeMap<String, ContestResult> = roll_up(&key, &cc)
                .unwrap()
                .into_iter()
                .map(|r| (r.unit_id.clone(), r))
                .collect();
            let votes = |u: &ContestResult| -> Vec<(String, i64)> {
                u.choices
                    .iter()
                    .map(|c| (c.choice_name.clone(), c.votes))
                    .collect()
            };
            let st = &r["ST"];
            assert_eq!(st.unit_type, UnitType::State, "{merged_contest}");
            assert_eq!(st.parent_unit_id, None);
            assert_eq!(
                votes(st),
                [("Ann".to_string(), 22), ("Bo".to_string(), 24)],
                "{merged_contest}"
            );
            // The counties, named only as parents: typed one level up from
            // their precincts and placed under the root.
            let c1 = r
                .values()
                .find(|u| u.unit_name == "C1")
                .unwrap_or_else(|| panic!("{:?}", r.keys()));
            assert_eq!(c1.unit_type, UnitType::County);
            assert_eq!(c1.parent_unit_id.as_deref(), Some("ST"));
            assert_eq!(votes(c1), [("Ann".to_string(), 15), ("Bo".to_string(), 4)]);
            assert_eq!(r.len(), 6, "3 precincts, 2 counties, the root");
        }
    }

    #[test]
    fn a_precinct_files_counties_merge_with_a_county_site_under_the_same_root() {
        // The county's own site reports C1 under GA; the precinct file,
        // rooted at GA too, names C1 only as its precincts' parent.
        let mut cells = precinct_file(true, "GA");
        cells.push(cell(
            "county-site",
            10,
            "C1",
            UnitType::County,
            Some("GA"),
            None,
            ("1", "Ann"),
            15,
        ));
        let key = ContestKey::of(&cells[0]);
        let mut cc = ContestCells::default();
        for c in cells {
            cc.apply(c.cell_key().0, c);
        }
        let r = roll_up(&key, &cc).unwrap();
        let ids: Vec<&str> = r.iter().map(|u| u.unit_id.as_str()).collect();
        assert_eq!(
            ids,
            ["GA", "GA/C1", "GA/C1/p1", "GA/C1/p2", "GA/C2", "GA/C2/p3"],
            "one C1, both sources' precincts under it"
        );
        let c1 = r.iter().find(|u| u.unit_id == "GA/C1").unwrap();
        assert_eq!(c1.parent_unit_id.as_deref(), Some("GA"));
        assert_eq!(c1.official_feed_id, "county-site", "the higher priority");
        let c2 = r.iter().find(|u| u.unit_id == "GA/C2").unwrap();
        assert_eq!(c2.parent_unit_id.as_deref(), Some("GA"));
        assert_eq!(c2.unit_type, UnitType::County);
    }

    fn merged(cells: Vec<VoteCell>) -> BTreeMap<String, ContestResult> {
        let mut cc = ContestCells::default();
        let key = ContestKey::of(&cells[0]);
        assert_eq!(key.contest_id, "race");
        for c in cells.into_iter() {
            cc.apply(c.cell_key().0, c);
        }
        roll_up(&key, &cc)
            .unwrap()
            .into_iter()
            .map(|r| (r.unit_id.clone(), r))
            .collect()
    }

    fn night(state_priority: i32, county_priority: i32) -> BTreeMap<String, ContestResult> {
        use UnitType::{County, Precinct, State};
        // Choice ids differ per site ("1" vs "7"); names match after
        // trimming and collapsing spaces.
        let (smith, smith_county) = (("1", "Ann Smith"), ("7", " Ann  Smith"));
        merged(vec![
            // The state site: the state (its "-1" mapped to "ST") and county C.
            cell(
                "state",
                state_priority,
                "-1",
                State,
                None,
                Some("ST"),
                smith,
                100,
            ),
            cell(
                "state",
                state_priority,
                "C",
                County,
                Some("ST"),
                None,
                smith,
                60,
            ),
            cell(
                "state",
                state_priority,
                "D",
                County,
                Some("ST"),
                None,
                smith,
                40,
            ),
            // County C's own site: C (parent from config) and two precincts.
            cell(
                "site-c",
                county_priority,
                "C",
                County,
                Some("ST"),
                None,
                smith_county,
                61,
            ),
            cell(
                "site-c",
                county_priority,
                "p1",
                Precinct,
                Some("C"),
                None,
                smith_county,
                50,
            ),
            cell(
                "site-c",
                county_priority,
                "p2",
                Precinct,
                Some("C"),
                None,
                smith_county,
                11,
            ),
        ])
    }

    #[test]
    fn the_highest_priority_source_at_a_unit_is_official_and_every_source_is_kept() {
        let r = night(10, 5);
        let c = &r["ST/C"];
        assert_eq!(c.official_feed_id, "state");
        let ann = &c.choices[0];
        assert_eq!(ann.choice_id, "Ann Smith", "matched by normalized name");
        assert_eq!(ann.votes, 60);
        assert_eq!(ann.reported, Some(60));
        assert_eq!(
            ann.sum_of_children,
            Some(61),
            "p1 + p2 from the county site"
        );
        assert!(c.aggregates_disagree);
        let by: Vec<(&str, i64)> = ann
            .by_source
            .iter()
            .map(|s| (s.feed_id.as_str(), s.votes))
            .collect();
        assert_eq!(by, [("state", 60), ("site-c", 61)]);
        assert_eq!(r["ST/C/p1"].official_feed_id, "site-c");
        assert_eq!(r["ST/C/p1"].parent_unit_id.as_deref(), Some("ST/C"));
        // The state: reported 100; its counties' official values sum to 100.
        let st = &r["ST"];
        assert_eq!(st.unit_type, UnitType::State);
        assert_eq!(
            (st.choices[0].votes, st.choices[0].sum_of_children),
            (100, Some(100))
        );
        assert!(!st.aggregates_disagree);
        let feeds: Vec<&str> = st.contributors.iter().map(|c| c.feed_id.as_str()).collect();
        assert_eq!(
            feeds,
            ["state", "site-c"],
            "both sources are below the state"
        );
    }

    #[test]
    fn raising_the_county_sites_priority_makes_it_official_there_and_moves_the_state_sum() {
        let r = night(5, 10);
        let c = &r["ST/C"];
        assert_eq!(c.official_feed_id, "site-c");
        assert_eq!(c.choices[0].votes, 61);
        assert!(!c.aggregates_disagree, "61 = 50 + 11");
        // The state is reported only by the state site: still official
        // there, but its counties now sum to 61 + 40.
        let st = &r["ST"];
        assert_eq!(st.official_feed_id, "state");
        assert_eq!(st.choices[0].votes, 100);
        assert_eq!(st.choices[0].sum_of_children, Some(101));
        assert!(st.aggregates_disagree);
    }
}
