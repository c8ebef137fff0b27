use std::collections::HashMap;

use serde::Deserialize;

use crate::error::{Rejector, TransformError};
use crate::json::json_error;

/// Names for an AP interactives feed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApInteractiveCompanion {
    /// Contest and candidate names for each race, found by AP `raceID`; a race the
    /// companion leaves out keeps its ids as names.
    #[serde(default)]
    pub races: Vec<RaceNames>,
    /// Unit names by AP `ruid` (county FIPS).
    #[serde(default)]
    pub units: HashMap<String, String>,
}

/// One race's names.
#[derive(Debug, Clone, Deserialize)]
pub struct RaceNames {
    #[serde(rename = "raceID")]
    pub race_id: String,
    pub name: String,
    #[serde(default)]
    pub candidates: Vec<CandidateName>,
}

/// One candidate's name and party.
#[derive(Debug, Clone, Deserialize)]
pub struct CandidateName {
    #[serde(rename = "candidateID")]
    pub candidate_id: String,
    pub name: String,
    #[serde(default)]
    pub party: Option<String>,
}

impl ApInteractiveCompanion {
    /// Reads a companion file's JSON. JSON that ends early is a truncation, any other bad
    /// JSON a schema violation; the message starts `companion file:`.
    pub fn parse(bytes: &[u8], r: &Rejector) -> Result<Self, TransformError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let mut err = json_error(r, e);
            err.message = format!("companion file: {}", err.message);
            err
        })
    }

    pub(crate) fn race(&self, race_id: &str) -> Option<&RaceNames> {
        self.races.iter().find(|r| r.race_id == race_id)
    }
}
