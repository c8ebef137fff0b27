//! A roll-up's first phase: every cell of a contest into its source's
//! units, with the best description of each choice and of the contest.
//! In a merged contest, units get path ids (see [`unit_paths`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use votewire_schemas::types::{ChoiceRef, UnitType, VoteType};

use super::{Newest, OverflowAt, PriorityRank, Source, UnitOwn, add_votes, newer};
use crate::contest_cells::ContestCells;

/// Every source of one contest, and the best description of each choice
/// and of the contest.
pub(super) struct Collected {
    pub sources: Vec<Source>,
    /// Indexes into `sources` in official order: highest priority first,
    /// then feed id.
    pub by_priority: Vec<usize>,
    /// Per shared choice id: the choice ref from the best (priority, rank).
    pub choices: HashMap<Arc<str>, (Arc<ChoiceRef>, PriorityRank)>,
    pub contest_name: Option<(Arc<str>, PriorityRank)>,
}

impl Collected {
    /// Who reports unit `id`, in official order.
    pub fn reporters(&self, id: &Arc<str>) -> Vec<usize> {
        self.by_priority
            .iter()
            .copied()
            .filter(|s| self.sources[*s].units.contains_key(id))
            .collect()
    }

    /// The unit's type as its official source reports it.
    pub fn reported_type(&self, id: &Arc<str>) -> Option<UnitType> {
        self.reporters(id)
            .first()
            .map(|s| self.sources[*s].units[id].info.0.unit_type)
    }
}

/// Reads every cell; `None` for a contest with no cell.
pub(super) fn collect(cells: &ContestCells) -> Result<Option<Collected>, OverflowAt> {
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
        return Ok(None);
    }
    // Sources in official order: highest priority first, then feed id.
    let mut by_priority: Vec<usize> = (0..sources.len()).collect();
    by_priority.sort_by(|a, b| {
        let (x, y) = (&sources[*a], &sources[*b]);
        y.priority.cmp(&x.priority).then(x.feed_id.cmp(&y.feed_id))
    });
    Ok(Some(Collected {
        sources,
        by_priority,
        choices,
        contest_name,
    }))
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
