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
//!
//! A roll-up runs in four phases, one module each: [`collect`] reads
//! every cell into its source's units, [`tree`] builds the merged unit
//! tree, [`evaluate`] folds each unit's subtree into it (children before
//! parents), and [`emit`] writes one result per unit.

mod collect;
mod emit;
mod evaluate;
#[cfg(test)]
mod merged_tests;
#[cfg(test)]
mod tests;
mod tree;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use votewire_schemas::types::{ContestResult, FeedMode, ReportingUnitRef};

use crate::contest_cells::{ContestCells, ContestKey};

/// A cell's rank: `(source_seq, cell key)`; the highest describes a
/// unit, choice or contest.
pub(super) type Rank = (i64, u128);

/// A source's priority, then a cell's rank: which source describes a
/// choice or the contest in a merged contest.
pub(super) type PriorityRank = (i32, Rank);

/// The newest payload that touched a unit (or its subtree): the highest
/// `(source_seq, cell key)`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Newest {
    pub seq: i64,
    pub key: u128,
    pub version: Option<Arc<str>>,
    pub trace: Option<Arc<str>>,
}

pub(super) fn newer(a: Option<Newest>, b: Option<&Newest>) -> Option<Newest> {
    match (a, b) {
        (Some(a), Some(b)) if (b.seq, b.key) > (a.seq, a.key) => Some(b.clone()),
        (None, Some(b)) => Some(b.clone()),
        (a, _) => a,
    }
}

#[derive(Debug, Default)]
pub(super) struct ChoiceOwn {
    pub total: Option<i64>,
    pub by_types: Option<i64>,
    pub winner: Option<bool>,
}

/// What one source's own cells say about one unit.
#[derive(Debug)]
pub(super) struct UnitOwn {
    /// The unit as the source's newest cell there describes it.
    pub info: (Arc<ReportingUnitRef>, Rank),
    /// The source's parent for the unit (shared id), if any.
    pub parent: Option<Arc<str>>,
    pub choices: BTreeMap<Arc<str>, ChoiceOwn>,
    pub precincts_reporting: Option<i32>,
    pub precincts_total: Option<i32>,
    pub pct_expected_vote: Option<f64>,
    pub fetched_max: i64,
    pub newest: Option<Newest>,
}

impl UnitOwn {
    /// The source's value per choice: its total, or the sum of its vote
    /// types where it gives no total.
    pub fn values(&self) -> BTreeMap<Arc<str>, i64> {
        self.choices
            .iter()
            .filter_map(|(c, v)| v.total.or(v.by_types).map(|n| (c.clone(), n)))
            .collect()
    }
}

/// One source (feed) of a contest: its priority and per-unit cells.
#[derive(Debug)]
pub(super) struct Source {
    pub feed_id: Arc<str>,
    pub priority: i32,
    pub mode: FeedMode,
    pub units: HashMap<Arc<str>, UnitOwn>,
    /// The feed's configured parent (`[feed.results] parent`): the top of
    /// its hierarchy, above units it names only as parents.
    pub root: Option<Arc<str>>,
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
    /// The contest whose sum overflowed.
    pub contest_id: String,
    /// The unit where it did.
    pub unit_id: String,
    /// The choice whose votes overflowed.
    pub choice_id: String,
}

/// Where a sum overflowed: the unit and the choice (the contest is the
/// caller's).
#[derive(Debug)]
pub(super) struct OverflowAt {
    pub unit_id: String,
    pub choice_id: String,
}

/// `a + b`, or where it overflowed.
pub(super) fn add_votes(a: i64, b: i64, unit: &str, choice: &str) -> Result<i64, OverflowAt> {
    a.checked_add(b).ok_or_else(|| OverflowAt {
        unit_id: unit.to_string(),
        choice_id: choice.to_string(),
    })
}

pub(super) fn add_into(
    acc: &mut BTreeMap<Arc<str>, i64>,
    from: &BTreeMap<Arc<str>, i64>,
    unit: &str,
) -> Result<(), OverflowAt> {
    for (choice, votes) in from {
        let slot = acc.entry(choice.clone()).or_insert(0);
        *slot = add_votes(*slot, *votes, unit, choice)?;
    }
    Ok(())
}

pub(super) fn sum_opt(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    }
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
    let at_overflow = |at: OverflowAt| VoteSumOverflow {
        contest_id: key.contest_id.clone(),
        unit_id: at.unit_id,
        choice_id: at.choice_id,
    };
    let Some(collected) = collect::collect(cells).map_err(at_overflow)? else {
        return Ok(Vec::new());
    };
    let tree = tree::build(&collected);
    let evals = evaluate::evaluate(&collected, &tree).map_err(at_overflow)?;
    emit::emit(key, &collected, &tree, &evals).map_err(at_overflow)
}

/// The results topic's key for `result`: `election/contest/unit`, so the
/// topic compacts to the current state of every race at every unit.
pub fn result_key(result: &ContestResult) -> String {
    format!(
        "{}/{}/{}",
        result.election_id, result.contest_id, result.unit_id
    )
}
