use serde::Deserialize;

/// The `[mapping]` of a CSV feed: which header holds what. Every field is
/// optional; unset fields fall back to the OpenElections names and their
/// common variants.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvMapping {
    /// County column (default: `county`).
    pub county: Option<String>,
    /// Precinct column (default: `precinct`; absent means a county-level file).
    pub precinct: Option<String>,
    /// Contest column (default: `office`, `contest`).
    pub contest: Option<String>,
    /// District column, joined to the contest id (default: `district`).
    pub district: Option<String>,
    /// Party column (default: `party`).
    pub party: Option<String>,
    /// Choice column (default: `candidate`, `choice`).
    pub choice: Option<String>,
    /// Vote columns, by header; default: every header that is a vote-type label.
    pub vote_columns: Option<Vec<String>>,
    /// Field delimiter (default `,`; `;` for MN SOS, `\t` for TSV).
    pub delimiter: Option<char>,
    /// Character encoding (a WHATWG label such as `utf-8` or `iso-8859-1`).
    /// Default: UTF-8 when the whole file is valid UTF-8, else windows-1252
    /// (state drops such as CO's 2024 file are Latin-1). `utf-8` makes
    /// invalid UTF-8 an error.
    pub encoding: Option<String>,
    /// Whether the last row must end with a line end (default `required`).
    /// A last row without one is read as a file cut while it was written or
    /// sent: its last value may be the `3` of a `35`. `optional` is for a
    /// publisher that never ends its files with a newline (some
    /// OpenElections files); a short last row is a truncation either way.
    pub final_newline: Option<FinalNewline>,
}

/// See [`CsvMapping::final_newline`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinalNewline {
    /// `required` (the default): a last row without a line end is rejected as truncated, so
    /// the payload is fetched again.
    #[default]
    Required,
    /// `optional`: a last row without a line end is accepted, for a publisher that never
    /// ends its files with a newline.
    Optional,
}
