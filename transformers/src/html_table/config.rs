use std::collections::BTreeMap;

use serde::Deserialize;

/// The `[mapping]` of an HTML feed.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlMapping {
    /// The table shape (required): `unit-rows` (one contest per page, a row per unit) or
    /// `candidate-rows` (many contests per page, a row per candidate).
    pub layout: HtmlLayout,
    /// Selector for the result table(s) (default `table`).
    #[serde(default = "default_table")]
    pub table: String,
    /// Selector whose text holds the as-of time (`M/D/YYYY h:mm:ss AM`).
    pub as_of: Option<String>,
    /// The zone of as-of times written without one: an IANA zone, daylight
    /// time followed (Texas: `America/Chicago`), or a fixed `-06:00`.
    #[schemars(with = "Option<String>")]
    pub time_zone: Option<crate::timefmt::SourceZone>,

    // --- unit-rows ---
    /// Selector whose text is the contest name (unit-rows).
    pub contest_name: Option<String>,
    /// The contest's name when the page does not print it (canvass pages);
    /// used when `contest_name` is not set.
    pub contest: Option<String>,
    /// Which match of `contest_name` (0-based) holds the name.
    #[serde(default)]
    pub contest_name_index: usize,
    /// How many header rows hold candidate names (joined with a space).
    #[serde(default)]
    pub name_header_rows: usize,
    /// 0-based header row holding party codes.
    pub party_header_row: Option<usize>,
    /// Placeholder text in header cells (Texas writes `...`).
    #[serde(default)]
    pub placeholder: Option<String>,
    /// Joined header label -> role: `precincts_reporting`,
    /// `precincts_total`, or `skip` (e.g. a row-total column).
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// The label of the whole-jurisdiction row (Texas `ALL COUNTIES`).
    pub aggregate_unit: Option<String>,
    /// Unit type of the other rows (`county` by default).
    pub unit_type: Option<String>,
    /// Raw vote-type label of a unit's own row (default `total`).
    pub row_vote_type: Option<String>,
    /// First-cell label of a sub-row -> its raw vote-type label.
    #[serde(default)]
    pub subrows: BTreeMap<String, String>,

    // --- candidate-rows ---
    /// Header label of the candidate name column.
    pub name_header: Option<String>,
    /// Header label of the party column.
    pub party_header: Option<String>,
    /// Header label -> raw vote-type label of each vote column.
    #[serde(default)]
    pub vote_headers: BTreeMap<String, String>,
    /// Label of the row that reports precincts (`Precincts Reported`).
    pub precincts_label: Option<String>,
    /// Id and name of the single unit a summary page reports.
    pub unit_id: Option<String>,
    /// Display name of that unit (candidate-rows; default: `unit_id`).
    pub unit_name: Option<String>,
}

fn default_table() -> String {
    "table".into()
}

/// The two supported table shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HtmlLayout {
    /// `unit-rows`: one contest per page, candidates in columns, one row per unit, with
    /// optional labelled sub-rows carrying another vote type.
    UnitRows,
    /// `candidate-rows`: many contests per page; a row whose first cell has text starts a
    /// contest, the rows after it are candidates.
    CandidateRows,
}
