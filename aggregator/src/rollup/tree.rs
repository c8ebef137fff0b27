//! A roll-up's second phase: the merged unit tree. Every unit any source
//! reports or names as a parent is in it; a unit's parent comes from the
//! highest-priority source giving one; links that would close a cycle
//! (garbage data) are dropped; a unit known only as a parent is typed
//! from its children.

use std::collections::HashMap;
use std::sync::Arc;

use votewire_schemas::types::UnitType;

use super::UnitOwn;
use super::collect::Collected;

/// The merged unit tree of one contest.
pub(super) struct UnitTree {
    /// Every unit, sorted by id: the order results are written in.
    pub ids: Vec<Arc<str>>,
    pub parent_of: HashMap<Arc<str>, Arc<str>>,
    pub children: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Post-order: every unit after all of its children.
    pub order: Vec<Arc<str>>,
    pub types: HashMap<Arc<str>, UnitType>,
}

pub(super) fn build(c: &Collected) -> UnitTree {
    let Links {
        mut ids,
        mut parent_of,
    } = link_units(c);
    ids.sort();
    drop_cycles(&ids, &mut parent_of);
    let mut children: HashMap<Arc<str>, Vec<Arc<str>>> = HashMap::new();
    for id in &ids {
        if let Some(p) = parent_of.get(id) {
            children.entry(p.clone()).or_default().push(id.clone());
        }
    }
    let order = post_order(&ids, &parent_of, &children);
    let types = unit_types(c, &order, &children);
    UnitTree {
        ids,
        parent_of,
        children,
        order,
        types,
    }
}

/// Every unit, and each one's parent where a source gives one.
struct Links {
    ids: Vec<Arc<str>>,
    parent_of: HashMap<Arc<str>, Arc<str>>,
}

/// Every unit and its parent, sources taken in official order.
fn link_units(c: &Collected) -> Links {
    let (sources, by_priority) = (&c.sources, &c.by_priority);
    let mut ids: Vec<Arc<str>> = Vec::new();
    let mut parent_of: HashMap<Arc<str>, Arc<str>> = HashMap::new();
    let mut seen: std::collections::HashSet<Arc<str>> = Default::default();
    for &s in by_priority {
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
    for &s in by_priority {
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
    Links { ids, parent_of }
}

/// Drops the parent link of any unit whose chain of parents comes back
/// to it.
fn drop_cycles(ids: &[Arc<str>], parent_of: &mut HashMap<Arc<str>, Arc<str>>) {
    for id in ids {
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
}

fn post_order(
    ids: &[Arc<str>],
    parent_of: &HashMap<Arc<str>, Arc<str>>,
    children: &HashMap<Arc<str>, Vec<Arc<str>>>,
) -> Vec<Arc<str>> {
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
    order
}

/// Types in post-order, so a unit known only as a parent is typed from
/// its children's types, reported or inferred (precincts -> county ->
/// state).
fn unit_types(
    c: &Collected,
    order: &[Arc<str>],
    children: &HashMap<Arc<str>, Vec<Arc<str>>>,
) -> HashMap<Arc<str>, UnitType> {
    let mut types: HashMap<Arc<str>, UnitType> = HashMap::with_capacity(order.len());
    for id in order {
        let t = c.reported_type(id).unwrap_or_else(|| {
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
    types
}
