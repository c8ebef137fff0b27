//! A roll-up's third phase: each unit's subtree folded into it, children
//! before parents. A unit's official value is its official source's
//! reported one, or else the sum of its children; children of
//! overlapping types (districts, polling places, vote centers) are summed
//! only when a unit has no other children, one type at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use votewire_schemas::types::UnitType;

use super::collect::Collected;
use super::tree::UnitTree;
use super::{Newest, OverflowAt, add_into, newer, sum_opt};

/// A unit after its subtree was folded in.
#[derive(Debug, Default, Clone)]
pub(super) struct UnitEval {
    pub official: BTreeMap<Arc<str>, i64>,
    /// The official source's directly reported values.
    pub reported: Option<BTreeMap<Arc<str>, i64>>,
    pub sum_of_children: Option<BTreeMap<Arc<str>, i64>>,
    /// Index into the sources of the official one.
    pub official_source: Option<usize>,
    pub precincts_reporting: Option<i32>,
    pub precincts_total: Option<i32>,
    pub last_updated: i64,
    pub newest: Option<Newest>,
    /// Per source, the newest payload in the subtree.
    pub newest_by_source: BTreeMap<usize, Newest>,
}

/// Unit types that overlap others' geography and are summed only when a
/// unit has no other children.
fn overlapping(t: UnitType) -> bool {
    matches!(
        t,
        UnitType::District | UnitType::PollingPlace | UnitType::VoteCenter
    )
}

/// Every unit's evaluation, in post-order.
pub(super) fn evaluate(
    c: &Collected,
    tree: &UnitTree,
) -> Result<HashMap<Arc<str>, UnitEval>, OverflowAt> {
    let mut evals: HashMap<Arc<str>, UnitEval> = HashMap::with_capacity(tree.order.len());
    for id in &tree.order {
        let eval = evaluate_unit(c, tree, &evals, id)?;
        evals.insert(id.clone(), eval);
    }
    Ok(evals)
}

/// The children whose values are summed into a unit's: those of
/// additive types, or, with none, those of the most common overlapping
/// type.
fn summed_children<'a>(
    kids: &'a [Arc<str>],
    types: &HashMap<Arc<str>, UnitType>,
) -> Vec<&'a Arc<str>> {
    let additive: Vec<&Arc<str>> = kids.iter().filter(|c| !overlapping(types[*c])).collect();
    if additive.is_empty() {
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
    }
}

/// One unit, its children already evaluated.
fn evaluate_unit(
    c: &Collected,
    tree: &UnitTree,
    evals: &HashMap<Arc<str>, UnitEval>,
    id: &Arc<str>,
) -> Result<UnitEval, OverflowAt> {
    let (sources, by_priority) = (&c.sources, &c.by_priority);
    let who = c.reporters(id);
    let kids = tree.children.get(id).map(Vec::as_slice).unwrap_or(&[]);
    let summed = summed_children(kids, &tree.types);
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
    Ok(eval)
}
