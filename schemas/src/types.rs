//! Rust types for the records in `schemas/avro/`. Field names and enum symbol
//! order follow the `.avsc` files exactly; the codec tests prove it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Shared, immutable text. Names and ids repeat across thousands of cells of
/// one payload, so cells share them instead of copying.
pub type Text = Arc<str>;

macro_rules! avro_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $symbol:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $symbol)] $variant),+
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
    FeedMode {
        /// Election-night data.
        Live => "live",
        /// The publisher's test data (zeros, made-up counts).
        Test => "test",
        /// A recorded night played back.
        Replay => "replay",
    }
);
avro_enum!(
    /// What kind of contest a cell belongs to.
    ContestKind {
        /// Candidates for an office.
        Candidate => "candidate",
        /// A question answered Yes or No (or with options).
        BallotMeasure => "ballot_measure",
        /// Whether an office holder (a judge) is retained.
        Retention => "retention",
        /// A vote for a party (a party list).
        Party => "party",
        /// Not a contest: registered voters, ballots cast.
        Pseudo => "pseudo",
        /// None of these.
        Other => "other",
    }
);
avro_enum!(
    /// Reporting-unit types. Types overlap (NIST polling places are made of
    /// precincts), so never sum across types.
    UnitType {
        /// A state (or the whole jurisdiction).
        State => "state",
        /// A county (or county equivalent).
        County => "county",
        /// A precinct.
        Precinct => "precinct",
        /// A part of a precinct (split by a district line).
        SplitPrecinct => "split_precinct",
        /// Precincts reported together.
        CombinedPrecinct => "combined_precinct",
        /// A city, town, township or village.
        Municipality => "municipality",
        /// A district: congressional, legislative, judicial, school, special.
        District => "district",
        /// A polling place.
        PollingPlace => "polling_place",
        /// A vote center.
        VoteCenter => "vote_center",
        /// Not a place: mail ballots, provisional ballots reported apart.
        Virtual => "virtual",
        /// None of these.
        Other => "other",
    }
);
avro_enum!(
    /// What a choice is: a candidate, a measure answer, or a pseudo row.
    ChoiceKind {
        /// A candidate (or a party, or a measure's option).
        Candidate => "candidate",
        /// A measure's Yes.
        Yes => "yes",
        /// A measure's No.
        No => "no",
        /// Write-in votes.
        WriteIn => "write_in",
        /// Overvotes (pseudo).
        OverVote => "over_vote",
        /// Undervotes (pseudo).
        UnderVote => "under_vote",
        /// Blank ballots (pseudo).
        Blank => "blank",
        /// Registered voters (pseudo).
        RegisteredVoters => "registered_voters",
        /// Ballots cast (pseudo).
        BallotsCast => "ballots_cast",
        /// None of these.
        Other => "other",
    }
);
avro_enum!(
    /// Normalized vote type; the raw label is kept beside it.
    VoteType {
        /// Every ballot, or a source with no breakdown.
        Total => "total",
        /// Cast on election day.
        ElectionDay => "election_day",
        /// Cast early, in person.
        Early => "early",
        /// Absentee or by mail.
        Absentee => "absentee",
        /// Provisional.
        Provisional => "provisional",
        /// None of these (the raw label says what).
        Other => "other",
    }
);
avro_enum!(
    /// What happened to one fetched payload.
    SnapshotStatus {
        /// Transformed and its changed cells published.
        Accepted => "accepted",
        /// The same content as the last accepted payload.
        Unchanged => "unchanged",
        /// Refused by its transformer and dead-lettered.
        Rejected => "rejected",
    }
);
avro_enum!(
    /// A feed's health.
    FeedHealth {
        /// Its last payload was accepted.
        Healthy => "healthy",
        /// It answers with the same content.
        Unchanged => "unchanged",
        /// No change for longer than its `stale_after`.
        Stale => "stale",
        /// Its fetches fail or its payloads are rejected.
        Failing => "failing",
        /// Too many rejected payloads in a row: not polled until an
        /// operator releases it.
        Quarantined => "quarantined",
        /// Paused by an operator.
        Paused => "paused",
    }
);
avro_enum!(
    /// Why a payload was rejected.
    ErrorClass {
        /// Not what its family reads (an HTML error page, another format).
        NotThisFormat => "not_this_format",
        /// Cut short (a truncated file or download).
        Truncated => "truncated",
        /// The format, with something wrong in it (a bad count, a missing
        /// field).
        SchemaViolation => "schema_violation",
        /// Past a size, depth or time limit.
        LimitExceeded => "limit_exceeded",
        /// None of these.
        Other => "other",
    }
);

/// A contest as the source identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContestRef {
    /// The contest id as the source gives it, trimmed (Clarity `Contest/@key`, AP `raceID`, NIST `ObjectId`, CSV `office|district`).
    pub source_id: Text,
    /// The display name, as the source writes it.
    pub name: Text,
    /// What kind of contest it is.
    pub kind: ContestKind,
    /// Seats or choices a voter may mark, where the source says.
    pub vote_for: Option<i32>,
    /// The party whose primary this is, for a primary contest.
    pub primary_party: Option<Text>,
}

/// A reporting unit as the source identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportingUnitRef {
    /// The unit id as the source gives it (Clarity has none: the unit name; AP's state level is `state:<postal>`).
    pub source_id: Text,
    /// The display name.
    pub name: Text,
    /// The normalized unit type.
    #[serde(rename = "type")]
    pub unit_type: UnitType,
    /// The source's own unit-type label (NIST `OtherType`, AP level).
    pub type_raw: Option<Text>,
    /// The enclosing unit (a precinct's county, a county's state) in the same source's ids.
    pub parent_source_id: Option<Text>,
    /// The FIPS code, where the source gives one.
    pub fips: Option<Text>,
}

/// A choice (candidate, Yes/No, pseudo row) as the source identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRef {
    /// The choice id as the source gives it (Clarity `Choice/@key`, AP `candidateID`, NIST `ObjectId`, CSV `candidate|party`, a Clarity JSON position).
    pub source_id: Text,
    /// The display name.
    pub name: Text,
    /// What kind of choice it is (a candidate, Yes or No, a pseudo row).
    pub kind: ChoiceKind,
    /// The party label, where the source gives one.
    pub party: Option<Text>,
    /// Whether the candidate is the incumbent, where the source says.
    pub incumbent: Option<bool>,
}

/// Where a payload came from; shared by every cell of the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The feed that fetched the payload.
    pub feed_id: Text,
    /// The fetch: `<feed>:<source_seq>:<ms>`.
    pub fetch_id: Text,
    /// The URL or SFTP path the payload came from.
    pub source_uri: Text,
    /// Hex sha256 of the payload bytes as fetched: the raw archive's key.
    pub payload_sha256: Text,
    /// The trace of the payload's `feed.fetch` span (32 hex digits), when traced.
    pub trace_id: Option<Text>,
}

/// What every cell of one payload shares: which feed and election, which
/// accepted payload (`source_seq`), the publisher's version and time, and
/// where the bytes came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadHeader {
    /// votewire's election id, e.g. `2021-01-05-GA-runoff` (feed config).
    pub election_id: Text,
    /// The feed that published the cells; source ids are unique only within it.
    pub source_feed_id: Text,
    /// Live, publisher-test or replayed data.
    pub mode: FeedMode,
    /// The accepted payload's number in its feed, strictly increasing: higher wins.
    pub source_seq: i64,
    /// The publisher's version (Clarity `current_ver`, AP timestamp, NIST `GeneratedDate`, a file's sha256).
    pub source_version: Option<Text>,
    /// Milliseconds since the Unix epoch, UTC.
    pub as_of: Option<i64>,
    /// The publisher's timestamp exactly as written.
    pub as_of_raw: Option<Text>,
    /// Milliseconds since the Unix epoch, UTC.
    pub fetched_at: i64,
    /// Where the payload came from.
    pub provenance: Provenance,
}

/// The largest count one cell may carry, in either direction. All the votes
/// cast in the United States in 2020 were about 158 million; no contest in
/// any unit comes near a billion, and at a billion per cell an `i64` sum
/// holds 9.2 billion cells, more than any contest's state can hold in
/// memory. Transformers refuse counts past it; the aggregator dead-letters
/// a votes-topic record past it.
pub const MAX_VOTES: i64 = 1_000_000_000;

/// One cumulative count cell: an upsert keyed by [`VoteCell::cell_key`].
///
/// Everything a payload's cells share lives in one `Arc<PayloadHeader>`, and
/// contests, units and choices are shared `Arc`s too, so a payload's cells
/// cost one allocation per distinct contest, unit and choice rather than one
/// per cell. The Avro record is flat; the codec writes the header's fields in
/// their schema positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteCell {
    /// What every cell of the payload shares.
    pub header: Arc<PayloadHeader>,
    /// The contest, as the source identifies it.
    pub contest: Arc<ContestRef>,
    /// The reporting unit.
    pub unit: Arc<ReportingUnitRef>,
    /// The choice.
    pub choice: Arc<ChoiceRef>,
    /// The normalized vote type.
    pub vote_type: VoteType,
    /// The source's own label (Clarity `VoteType` name, NIST `Type` or `OtherType`, a CSV column); `total` where the source has no breakdown.
    pub vote_type_raw: Text,
    /// The cumulative count; signed (real files hold negative corrections).
    pub votes: i64,
    /// Precincts reporting in this unit, where the source says.
    pub precincts_reporting: Option<i32>,
    /// Precincts in this unit, where the source says.
    pub precincts_total: Option<i32>,
    /// Percent of the expected vote counted, 0–100 (AP's eevp).
    pub pct_expected_vote: Option<f64>,
    /// Set only when the source calls the race.
    pub winner: Option<bool>,
    /// Where in the payload the count is, for audit (XPath, JSON pointer, row).
    pub raw_ref: Option<Text>,
    /// How the aggregator merges this source with others; shared by the
    /// cells of one contest and unit.
    pub links: Option<Arc<ResultLinks>>,
}

/// Feed config `[feed.results]`, applied to one cell: the shared ids the
/// aggregator merges sources under, and the feed's priority.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ResultLinks {
    /// The shared contest id several sources' contests merge under; also what the cell is partitioned by.
    pub contest_id: Option<Text>,
    /// The shared id of the cell's unit; `None`: its source id.
    pub unit_id: Option<Text>,
    /// The shared id of the unit's parent (mapped from the source's, or the feed's configured parent).
    pub parent_unit_id: Option<Text>,
    /// The shared id of the cell's choice; `None`: its source id (or, in a merged contest, its normalized name).
    pub choice_id: Option<Text>,
    /// The feed's priority: at each unit the source with the highest priority and a value there is official.
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

impl CellKey {
    /// The key of the same cell in `mode`: itself for live and replayed
    /// data, and another key for publisher test data, so that a test cell
    /// and a live cell of the same identity are two records on the
    /// compacted votes topic. One key for both would let compaction keep
    /// only the later: a test answer after live ones (AP's per-answer
    /// `test` flag, an election set back to `test`) would erase live cells
    /// for good, and an ingestor comparing against what it published would
    /// take a live count equal to the test one as unchanged and never
    /// publish it as live.
    pub fn in_mode(self, mode: FeedMode) -> CellKey {
        if mode != FeedMode::Test {
            return self;
        }
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&self.0.to_be_bytes());
        h.update(b"\x1ftest\x1f");
        CellKey(h.digest128())
    }
}

impl VoteCell {
    /// The stable key: xxh3-128 over the feed, contest, unit, choice and
    /// vote-type ids, each followed by a 0x1f separator, then (for test
    /// data only) [`CellKey::in_mode`]. The algorithm is frozen: changing
    /// it would orphan every key on the compacted topic.
    pub fn cell_key(&self) -> CellKey {
        cell_key(
            &self.header.source_feed_id,
            &self.contest.source_id,
            &self.unit.source_id,
            &self.choice.source_id,
            self.vote_type,
            &self.vote_type_raw,
        )
        .in_mode(self.header.mode)
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
    /// The choice's id in the result (shared or source).
    pub choice_id: String,
    /// Its display name.
    pub choice_name: String,
    /// Its party, where known.
    pub party: Option<String>,
    /// The official value: the official source's at this unit.
    pub votes: i64,
    /// 0–100 of the total over candidate choices.
    pub percent: f64,
    /// What the official source reported directly for this unit.
    pub reported: Option<i64>,
    /// The sum over the same source's child units.
    pub sum_of_children: Option<i64>,
    /// Set when the official source calls the race for this choice.
    pub winner: Option<bool>,
    /// Every source's value for this choice at this unit.
    pub by_source: Vec<SourceValue>,
}

/// One source's value for a choice at a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceValue {
    /// The source feed.
    pub feed_id: String,
    /// Its value for the choice at the unit.
    pub votes: i64,
    /// The payload it comes from.
    pub source_seq: i64,
}

/// A payload that contributed to a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The contributing feed.
    pub feed_id: String,
    /// Its newest payload in the result.
    pub source_seq: i64,
    /// That payload's publisher version.
    pub source_version: Option<String>,
}

/// The aggregator's published view of one contest at one unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContestResult {
    /// The election.
    pub election_id: String,
    /// `source_feed_id/contest source id` of the official source, or the shared id of a merged contest.
    pub contest_id: String,
    /// The contest's display name.
    pub contest_name: String,
    /// The unit's id (shared or source).
    pub unit_id: String,
    /// Its display name.
    pub unit_name: String,
    /// Its normalized type.
    pub unit_type: UnitType,
    /// Its parent in the merged unit tree.
    pub parent_unit_id: Option<String>,
    /// Live, publisher-test or replayed data.
    pub mode: FeedMode,
    /// The highest-priority source with a value at this unit.
    pub official_feed_id: String,
    /// One line per choice.
    pub choices: Vec<ChoiceResult>,
    /// The sum over candidate choices.
    pub total_votes: i64,
    /// The choice with the most votes, when there is one.
    pub leader_choice_id: Option<String>,
    /// The leader's lead over the runner-up, in votes.
    pub margin_votes: Option<i64>,
    /// The same lead in percentage points.
    pub margin_pct: Option<f64>,
    /// A reported aggregate differs from the sum of its children.
    pub aggregates_disagree: bool,
    /// Precincts reporting, where the official source says.
    pub precincts_reporting: Option<i32>,
    /// Precincts in the unit, where the official source says.
    pub precincts_total: Option<i32>,
    /// Percent of the expected vote counted, 0–100, where the source says.
    pub pct_expected_vote: Option<f64>,
    /// The newest fetch behind the result (ms since the epoch, UTC).
    pub last_updated: i64,
    /// The payloads the result is made of.
    pub contributors: Vec<Contribution>,
    /// The trace of the newest payload behind it.
    pub trace_id: Option<String>,
}

/// One payload's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// The feed.
    pub feed_id: String,
    /// Its election.
    pub election_id: String,
    /// Live, publisher-test or replayed data.
    pub mode: FeedMode,
    /// The fetch.
    pub fetch_id: String,
    /// Accepted or rejected.
    pub status: SnapshotStatus,
    /// Assigned to accepted payloads only.
    pub source_seq: Option<i64>,
    /// The URL or SFTP path fetched.
    pub source_uri: String,
    /// The publisher's version.
    pub source_version: Option<String>,
    /// Hex sha256 of the payload bytes.
    pub payload_sha256: String,
    /// The payload's size.
    pub payload_bytes: i64,
    /// Where the raw payload is archived (`file://` or `s3://`), keyed by sha256.
    pub archive_ref: Option<String>,
    /// The transformer family, e.g. `clarity-xml`.
    pub family: String,
    /// Cells in the payload.
    pub cells_total: i32,
    /// Of those, cells that changed and were published.
    pub cells_changed: i32,
    /// Why a rejected payload was rejected (`not_this_format`, `truncated`, `schema_violation`, `limit_exceeded`).
    pub error_class: Option<String>,
    /// Where in the payload, for a rejected one.
    pub error_location: Option<String>,
    /// What was wrong, for a rejected one.
    pub error_message: Option<String>,
    /// The publisher's timestamp, UTC (ms since the epoch).
    pub as_of: Option<i64>,
    /// The publisher's timestamp exactly as written.
    pub as_of_raw: Option<String>,
    /// When the bytes were in hand (ms since the epoch, UTC).
    pub fetched_at: i64,
    /// The payload's trace.
    pub trace_id: Option<String>,
}

/// One health transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// The feed.
    pub feed_id: String,
    /// The health before (none for a feed's first record).
    pub from_state: Option<FeedHealth>,
    /// The health after.
    pub to_state: FeedHealth,
    /// Why it changed.
    pub reason: String,
    /// When (ms since the epoch, UTC).
    pub at: i64,
    /// Failed or rejected polls in a row.
    pub consecutive_failures: i32,
    /// The feed's last accepted change (ms since the epoch, UTC).
    pub last_change_at: Option<i64>,
    /// The fetch that caused it, when one did.
    pub fetch_id: Option<String>,
    /// Who caused it: an ingestor instance or an operator token's subject.
    pub actor: Option<String>,
    /// That fetch's trace.
    pub trace_id: Option<String>,
}

/// One rejected payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The feed (for an aggregator's dead letter, the cell's).
    pub feed_id: String,
    /// Its election.
    pub election_id: String,
    /// The fetch the payload came from.
    pub fetch_id: String,
    /// The transformer family (`vote-cell` or `rollup` for an aggregator's).
    pub family: String,
    /// The URL or SFTP path fetched.
    pub source_uri: String,
    /// Hex sha256 of the payload bytes.
    pub payload_sha256: String,
    /// The payload's size.
    pub payload_bytes: i64,
    /// Where the raw payload is archived: the reference to read it back.
    pub archive_ref: Option<String>,
    /// Why it was rejected.
    pub error_class: ErrorClass,
    /// Where in the payload.
    pub error_location: Option<String>,
    /// What was wrong.
    pub error_message: String,
    /// Whether fetching it again may help.
    pub retryable: bool,
    /// When the bytes were in hand (ms since the epoch, UTC).
    pub fetched_at: i64,
    /// The payload's trace.
    pub trace_id: Option<String>,
}

/// Two linked sources disagreeing at a unit of a merged contest beyond the
/// aggregator's threshold (schemas/avro/SourceDisagreement.avsc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDisagreement {
    /// The election.
    pub election_id: String,
    /// The merged contest's shared id.
    pub contest_id: String,
    /// The unit.
    pub unit_id: String,
    /// Its display name.
    pub unit_name: String,
    /// The source whose values the result publishes at the unit.
    pub official_feed_id: String,
    /// The linked source that disagrees with it.
    pub other_feed_id: String,
    /// The choice where they differ most.
    pub choice_id: String,
    /// The official source's value for that choice.
    pub official_votes: i64,
    /// The other source's value for that choice.
    pub other_votes: i64,
    /// `|official_votes - other_votes|`.
    pub difference: i64,
    /// The difference as a percentage of the unit's total votes (of 1 when
    /// the total is 0).
    pub difference_pct: f64,
    /// Choices both sources report with different values.
    pub choices_disagreeing: i32,
    /// The official value's payload.
    pub official_source_seq: i64,
    /// The other value's payload.
    pub other_source_seq: i64,
    /// The result's `last_updated` when the disagreement was seen.
    pub last_updated: i64,
    /// The trace of the result's newest payload.
    pub trace_id: Option<String>,
}
