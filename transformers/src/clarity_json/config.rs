use std::collections::HashMap;

use serde::Deserialize;

use crate::error::{Rejector, TransformError};
use crate::json::json_error;

/// Optional `[mapping]` for a Clarity JSON feed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClarityJsonConfig {
    /// The raw vote-type label of the file (default: from the file name;
    /// `ALL.json` is the total).
    pub vote_type_raw: Option<String>,
    /// Display name of the whole-site area `-1` (for example `Georgia`).
    pub site_name: Option<String>,
    /// `state` (areas are counties, the default) or `county` (areas are
    /// precincts).
    pub site_level: Option<String>,
}

/// Contest and choice names for a Clarity site, keyed by contest key.
#[derive(Debug, Clone, Default)]
pub struct Companion {
    /// Each contest's names, keyed by its Clarity contest key (trimmed); when a key is
    /// listed twice, the last entry wins.
    pub contests: HashMap<String, CompanionContest>,
}

/// One contest's names, choices in array order.
#[derive(Debug, Clone, Deserialize)]
pub struct CompanionContest {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub vote_for: Option<i32>,
    pub choices: Vec<CompanionChoice>,
}

/// One choice: its name and party, at its array position.
#[derive(Debug, Clone, Deserialize)]
pub struct CompanionChoice {
    pub name: String,
    #[serde(default)]
    pub party: Option<String>,
}

#[derive(Deserialize)]
struct MetadataFile {
    contests: Vec<CompanionContest>,
}

#[derive(Deserialize)]
struct SummaryEntry {
    #[serde(rename = "K")]
    key: String,
    #[serde(rename = "C")]
    name: String,
    #[serde(rename = "VF", default)]
    vote_for: Option<i32>,
    #[serde(rename = "CH")]
    choices: Vec<String>,
    #[serde(rename = "P", default)]
    parties: Vec<String>,
}

impl Companion {
    /// Reads a `summary.json` (an array) or a votewire metadata file.
    pub fn parse(bytes: &[u8], r: &Rejector) -> Result<Companion, TransformError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let list: Vec<CompanionContest> = if first == Some(b'[') {
            let entries: Vec<SummaryEntry> =
                serde_json::from_slice(bytes).map_err(|e| companion_error(r, e))?;
            entries
                .into_iter()
                .map(|e| CompanionContest {
                    key: e.key,
                    name: e.name,
                    vote_for: e.vote_for,
                    choices: e
                        .choices
                        .into_iter()
                        .enumerate()
                        .map(|(i, name)| CompanionChoice {
                            name,
                            party: e.parties.get(i).cloned(),
                        })
                        .collect(),
                })
                .collect()
        } else {
            let m: MetadataFile =
                serde_json::from_slice(bytes).map_err(|e| companion_error(r, e))?;
            m.contests
        };
        Ok(Companion {
            contests: list
                .into_iter()
                .map(|c| (c.key.trim().to_string(), c))
                .collect(),
        })
    }
}

fn companion_error(r: &Rejector, e: serde_json::Error) -> TransformError {
    let mut err = json_error(r, e);
    err.message = format!("companion file: {}", err.message);
    err
}
