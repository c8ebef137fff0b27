//! The current cells of one contest: per cell key, the value with the
//! highest `source_seq` seen so far.
//!
//! Counts go down (corrections), so a later payload's lower count wins; an
//! older payload's cell arriving late (a republish after an ingestor
//! restart, a replay) never overwrites a newer one. Applying the same cell
//! twice changes nothing, which is what makes at-least-once delivery safe.

use rustc_hash::FxHashMap;
use votewire_schemas::FeedMode;
use votewire_schemas::types::VoteCell;

/// What applying one cell did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The first value for this key, or one from a newer payload or the
    /// same one (a republish: the same value, later on the topic): stored.
    Stored,
    /// A value from an older payload than the stored one: ignored.
    Older,
}

/// A contest's identity on the results topic: the election and
/// `source_feed_id/contest source id`, and whether it is publisher test
/// data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContestKey {
    /// The election the contest is in.
    pub election_id: String,
    /// `source_feed_id/contest source id`, or the shared id of a linked
    /// contest.
    pub contest_id: String,
    /// Cells marked `test` (a publisher's test data): a contest of their
    /// own, never merged with the live or replayed cells of the same id,
    /// and published to the test results topic.
    pub test: bool,
}

/// Whether `cell` is publisher test data.
fn is_test(cell: &VoteCell) -> bool {
    cell.header.mode == FeedMode::Test
}

/// The shared contest id a cell's source linked its contest to
/// (`[feed.results]`), if any.
fn linked_contest(cell: &VoteCell) -> Option<&str> {
    cell.links.as_ref().and_then(|l| l.contest_id.as_deref())
}

/// A contest's 128-bit fingerprint (xxh3 of the election, either the
/// shared contest id or the feed and source contest ids, and a test
/// cell's mark): the
/// aggregator's map key, computed per cell without allocating.
pub fn contest_fingerprint(cell: &VoteCell) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let parts: [&str; 3] = match linked_contest(cell) {
        Some(shared) => [&cell.header.election_id, "\u{1}linked", shared],
        None => [
            &cell.header.election_id,
            &cell.header.source_feed_id,
            &cell.contest.source_id,
        ],
    };
    for part in parts {
        h.update(part.as_bytes());
        h.update(&[0x1f]);
    }
    if is_test(cell) {
        h.update(b"\x02test");
    }
    h.digest128()
}

impl ContestKey {
    /// A linked contest is keyed by its shared id; a lone source's by
    /// `feed/source contest id`.
    pub fn of(cell: &VoteCell) -> ContestKey {
        ContestKey {
            election_id: cell.header.election_id.to_string(),
            contest_id: match linked_contest(cell) {
                Some(shared) => shared.to_string(),
                None => format!("{}/{}", cell.header.source_feed_id, cell.contest.source_id),
            },
            test: is_test(cell),
        }
    }
}

/// The cells of one contest.
#[derive(Debug, Default, Clone)]
pub struct ContestCells {
    cells: FxHashMap<u128, VoteCell>,
}

impl ContestCells {
    /// Upserts `cell` unless a newer payload's value is already stored.
    pub fn apply(&mut self, key: u128, cell: VoteCell) -> Applied {
        match self.cells.get_mut(&key) {
            Some(stored) if stored.header.source_seq > cell.header.source_seq => Applied::Older,
            Some(stored) => {
                *stored = cell;
                Applied::Stored
            }
            None => {
                self.cells.insert(key, cell);
                Applied::Stored
            }
        }
    }

    /// The cells held.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether no cell is held.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Every stored cell with its key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, &VoteCell)> {
        self.cells.iter().map(|(k, v)| (*k, v))
    }
}
