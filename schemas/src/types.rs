//! Rust types for the records in `schemas/avro/`. Field names and enum symbol
//! order follow the `.avsc` files exactly; the codec tests prove it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Shared, immutable text. Names and ids repeat across thousands of cells of
/// one payload, so cells share them instead of copying.
pub type Text = Arc<str>;

macro_rules! avro_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $symbol:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $symbol)] $variant),+
        }

        impl $name {
            /// Every variant, in the `.avsc` symbol order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The Avro symbol.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $symbol),+ }
            }

            /// Position of the symbol in the schema (the Avro encoding).
            pub fn index(self) -> i32 {
                self as i32
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

avro_enum!(
    /// Whether a feed carries live, publisher-test or replayed data.
    FeedMode { Live => "live", Test => "test", Replay => "replay" }
);
avro_enum!(
    /// What kind of contest a cell belongs to.
    ContestKind {
        Candidate => "candidate",
        BallotMeasure => "ballot_measure",
        Retention => "retention",
        Party => "party",
        Pseudo => "pseudo",
        Other => "other",
    }
);
avro_enum!(
    /// Reporting-unit types. Types overlap (NIST polling places are made of
    /// precincts), so never sum across types.
    UnitType {
        State => "state",
        County => "county",
        Precinct => "precinct",
        SplitPrecinct => "split_precinct",
        CombinedPrecinct => "combined_precinct",
        Municipality => "municipality",
        District => "district",
        PollingPlace => "polling_place",
        VoteCenter => "vote_center",
        Virtual => "virtual",
        Other => "other",
    }
);
avro_enum!(
    /// What a choice is: a candidate, a measure answer, or a pseudo row.
    ChoiceKind {
        Candidate => "candidate",
        Yes => "yes",
        No => "no",
        WriteIn => "write_in",
        OverVote => "over_vote",
        UnderVote => "under_vote",
        Blank => "blank",
        RegisteredVoters => "registered_voters",
        BallotsCast => "ballots_cast",
        Other => "other",
    }
);
avro_enum!(
    /// Normalized vote type; the raw label is kept beside it.
    VoteType {
        Total => "total",
        ElectionDay => "election_day",
        Early => "early",
        Absentee => "absentee",
        Provisional => "provisional",
        Other => "other",
    }
);
avro_enum!(
    /// What happened to one fetched payload.
    SnapshotStatus { Accepted => "accepted", Unchanged => "unchanged", Rejected => "rejected" }
);
avro_enum!(
    /// A feed's health.
    FeedHealth {
        Healthy => "healthy",
        Unchanged => "unchanged",
        Stale => "stale",
        Failing => "failing",
        Quarantined => "quarantined",
        Paused => "paused",
    }
);
avro_enum!(
    /// Why a payload was rejected.
    ErrorClass {
        NotThisFormat => "not_this_format",
        Truncated => "truncated",
        SchemaViolation => "schema_violation",
        LimitExceeded => "limit_exceeded",
        Other => "other",
    }
);

/// A contest as the source identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContestRef {
    pub source_id: Text,
    pub name: Text,
    pub kind: ContestKind,
    pub vote_for: Option<i32>,
    pub primary_party: Option<Text>,
}

/// A reporting unit as the source identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportingUnitRef {
    pub source_id: Text,
    pub name: Text,
    #[serde(rename = "type")]
    pub unit_type: UnitType,
    pub type_raw: Option<Text>,
    pub parent_source_id: Option<Text>,
    pub fips: Option<Text>,
}

/// A choice (candidate, Yes/No, pseudo row) as the source identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRef {
    pub source_id: Text,
    pub name: Text,
    pub kind: ChoiceKind,
    pub party: Option<Text>,
    pub incumbent: Option<bool>,
}

/// Where a payload came from; shared by every cell of the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub feed_id: Text,
    pub fetch_id: Text,
    pub source_uri: Text,
    pub payload_sha256: Text,
    pub trace_id: Option<Text>,
}

/// What every cell of one payload shares: which feed and election, which
/// accepted payload (`source_seq`), the publisher's version and time, and
/// where the bytes came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadHeader {
    pub election_id: Text,
    pub source_feed_id: Text,
    pub mode: FeedMode,
    pub source_seq: i64,
    pub source_version: Option<Text>,
    /// Milliseconds since the Unix epoch, UTC.
    pub as_of: Option<i64>,
    pub as_of_raw: Option<Text>,
    /// Milliseconds since the Unix epoch, UTC.
    pub fetched_at: i64,
    pub provenance: Provenance,
}

/// One cumulative count cell: an upsert keyed by [`VoteCell::cell_key`].
///
/// Everything a payload's cells share lives in one `Arc<PayloadHeader>`, and
/// contests, units and choices are shared `Arc`s too, so a payload's cells
/// cost one allocation per distinct contest, unit and choice rather than one
/// per cell. The Avro record is flat; the codec writes the header's fields in
/// their schema positions.
/// The largest count one cell may carry, in either direction. All the votes
/// cast in the United States in 2020 were about 158 million; no contest in
/// any unit comes near a billion, and at a billion per cell an `i64` sum
/// holds 9.2 billion cells, more than any contest's state can hold in
/// memory. Transformers refuse counts past it; the aggregator dead-letters
/// a votes-topic record past it.
pub const MAX_VOTES: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteCell {
    pub header: Arc<PayloadHeader>,
    pub contest: Arc<ContestRef>,
    pub unit: Arc<ReportingUnitRef>,
    pub choice: Arc<ChoiceRef>,
    pub vote_type: VoteType,
    pub vote_type_raw: Text,
    pub votes: i64,
    pub precincts_reporting: Option<i32>,
    pub precincts_total: Option<i32>,
    pub pct_expected_vote: Option<f64>,
    pub winner: Option<bool>,
    pub raw_ref: Option<Text>,
    /// How the aggregator merges this source with others; shared by the
    /// cells of one contest and unit.
    pub links: Option<Arc<ResultLinks>>,
}

/// Feed config `[feed.results]`, applied to one cell: the shared ids the
/// aggregator merges sources under, and the feed's priority.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ResultLinks {
    pub contest_id: Option<Text>,
    pub unit_id: Option<Text>,
    pub parent_unit_id: Option<Text>,
    pub choice_id: Option<Text>,
    pub priority: i32,
    /// The feed's configured parent: the top of its unit hierarchy.
    pub root_unit_id: Option<Text>,
}

/// The identity of a cell: what its key is a hash of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey(pub u128);

impl CellKey {
    /// 32 lower-case hex digits.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

impl VoteCell {
    /// The stable key: xxh3-128 over the feed, contest, unit, choice and
    /// vote-type ids, each followed by a 0x1f separator. The algorithm is
    /// frozen: changing it would orphan every key on the compacted topic.
    pub fn cell_key(&self) -> CellKey {
        cell_key(
            &self.header.source_feed_id,
            &self.contest.source_id,
            &self.unit.source_id,
            &self.choice.source_id,
            self.vote_type,
            &self.vote_type_raw,
        )
    }
}

/// See [`VoteCell::cell_key`]. Two vote-type labels that normalize to the same
/// type (GA 2018's three `advance_in_person_N` columns) stay distinct cells,
/// so the raw label is part of the identity.
pub fn cell_key(
    feed: &str,
    contest: &str,
    unit: &str,
    choice: &str,
    vote_type: VoteType,
    vote_type_raw: &str,
) -> CellKey {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        feed,
        contest,
        unit,
        choice,
        vote_type.as_str(),
        vote_type_raw,
    ] {
        h.update(part.as_bytes());
        h.update(&[0x1f]);
    }
    CellKey(h.digest128())
}

/// One choice's line in a [`ContestResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceResult {
    pub choice_id: String,
    pub choice_name: String,
    pub party: Option<String>,
    pub votes: i64,
    pub percent: f64,
    pub reported: Option<i64>,
    pub sum_of_children: Option<i64>,
    pub winner: Option<bool>,
    pub by_source: Vec<SourceValue>,
}

/// One source's value for a choice at a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceValue {
    pub feed_id: String,
    pub votes: i64,
    pub source_seq: i64,
}

/// A payload that contributed to a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feed_id: String,
    pub source_seq: i64,
    pub source_version: Option<String>,
}

/// The aggregator's published view of one contest at one unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContestResult {
    pub election_id: String,
    pub contest_id: String,
    pub contest_name: String,
    pub unit_id: String,
    pub unit_name: String,
    pub unit_type: UnitType,
    pub parent_unit_id: Option<String>,
    pub mode: FeedMode,
    pub official_feed_id: String,
    pub choices: Vec<ChoiceResult>,
    pub total_votes: i64,
    pub leader_choice_id: Option<String>,
    pub margin_votes: Option<i64>,
    pub margin_pct: Option<f64>,
    pub aggregates_disagree: bool,
    pub precincts_reporting: Option<i32>,
    pub precincts_total: Option<i32>,
    pub pct_expected_vote: Option<f64>,
    pub last_updated: i64,
    pub contributors: Vec<Contribution>,
    pub trace_id: Option<String>,
}

/// One payload's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub feed_id: String,
    pub election_id: String,
    pub mode: FeedMode,
    pub fetch_id: String,
    pub status: SnapshotStatus,
    pub source_seq: Option<i64>,
    pub source_uri: String,
    pub source_version: Option<String>,
    pub payload_sha256: String,
    pub payload_bytes: i64,
    pub archive_ref: Option<String>,
    pub family: String,
    pub cells_total: i32,
    pub cells_changed: i32,
    pub error_class: Option<String>,
    pub error_location: Option<String>,
    pub error_message: Option<String>,
    pub as_of: Option<i64>,
    pub as_of_raw: Option<String>,
    pub fetched_at: i64,
    pub trace_id: Option<String>,
}

/// One health transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedStatus {
    pub feed_id: String,
    pub from_state: Option<FeedHealth>,
    pub to_state: FeedHealth,
    pub reason: String,
    pub at: i64,
    pub consecutive_failures: i32,
    pub last_change_at: Option<i64>,
    pub fetch_id: Option<String>,
    pub actor: Option<String>,
    pub trace_id: Option<String>,
}

/// One rejected payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub feed_id: String,
    pub election_id: String,
    pub fetch_id: String,
    pub family: String,
    pub source_uri: String,
    pub payload_sha256: String,
    pub payload_bytes: i64,
    pub archive_ref: Option<String>,
    pub error_class: ErrorClass,
    pub error_location: Option<String>,
    pub error_message: String,
    pub retryable: bool,
    pub fetched_at: i64,
    pub trace_id: Option<String>,
}
