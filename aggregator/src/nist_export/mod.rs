//! Current results as a NIST SP 1500-100 v2 `ElectionReport`, in its XML
//! or JSON encoding: what `votewire export` and `GET /v1/export/{election}`
//! write.
//!
//! The input is the current cells of one election (the compacted votes
//! topic, newest `source_seq` per cell), so the report keeps everything a
//! source said: contest kinds, vote limits, primary parties, unit types,
//! choice parties and write-ins, and each vote type as its own
//! `VoteCounts`. A NIST source exported and read back with the
//! `nist-cdf-xml` / `nist-cdf-json` transformers gives the same cells
//! (tested on the Cambridge 2022 primary).
//!
//! Mapping:
//! - `GpUnit` (`ReportingUnit`) per unit, `Type` from the source's raw type
//!   when it is a NIST value, else from the normalized type. A parent that
//!   the cells name but never report is typed one level up, as the
//!   aggregator types it (`county` above precincts, `state` above
//!   counties) and composes its children. A synthetic `vw-election-scope`
//!   unit is the election's scope and composes the roots.
//! - `Contest` per contest (`CandidateContest`, `BallotMeasureContest`,
//!   `PartyContest`, `RetentionContest`), `VotesAllowed` 1 when the source
//!   gave none; pseudo contests (registered voters, ballots cast) are left
//!   out: they are not contests.
//! - `ContestSelection` per choice: a `CandidateSelection` naming a
//!   `Candidate` whose `BallotName` is the choice name (with `IsWriteIn`
//!   for write-ins), or a `BallotMeasureSelection` with the choice name.
//! - Several feeds in one election: ids are prefixed with the feed, and
//!   each feed's contests are exported as it reported them (the merged
//!   official view is the results topic's).
//! - `Status` is `unofficial-complete` when precinct counts are known and
//!   every unit reports all of its precincts, else `unofficial-partial`.
//! - Ids are made valid `xs:ID`s (letters, digits, `.-_`, not starting with
//!   a digit); every id is unique across the document.

mod json;
mod model;
mod xml;

use votewire_schemas::VoteCell;

use json::to_json;
use model::model;
use xml::to_xml;

/// The two encodings of the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The XML encoding, in the v2 namespace.
    Xml,
    /// The JSON encoding (NIST's `@type`d objects).
    Json,
}

/// An exported report and what is in it.
#[derive(Debug, Clone)]
pub struct ExportedReport {
    /// The encoded document.
    pub bytes: Vec<u8>,
    /// `unofficial-partial` or `unofficial-complete`.
    pub status: &'static str,
    /// Contests in the report (pseudo contests left out).
    pub contests: usize,
    /// `GpUnit`s, the election scope included.
    pub units: usize,
    /// `VoteCounts` elements: one per cell of a real contest.
    pub vote_counts: usize,
}

const SCOPE_ID: &str = "vw-election-scope";

/// `YYYY-MM-DD` from the start of an election id like
/// `2021-01-05-GA-runoff`, else the report date's day.
pub(super) fn election_date(election_id: &str, generated: &str) -> String {
    let d = election_id.get(..10).unwrap_or("");
    let ok = d.len() == 10
        && d.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if ok {
        d.to_string()
    } else {
        generated.get(..10).unwrap_or("1970-01-01").to_string()
    }
}

/// The `ElectionReport` for `election_id` from its current `cells`,
/// generated at `generated` (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn election_report(
    election_id: &str,
    cells: &[VoteCell],
    generated: &str,
    format: ExportFormat,
) -> ExportedReport {
    let m = model(cells);
    let bytes = match format {
        ExportFormat::Xml => to_xml(&m, election_id, generated).into_bytes(),
        ExportFormat::Json => {
            serde_json::to_vec_pretty(&to_json(&m, election_id, generated)).unwrap_or_default()
        }
    };
    ExportedReport {
        bytes,
        status: m.status,
        contests: m.contests.len(),
        units: m.units.len(),
        vote_counts: m.vote_counts,
    }
}
