use serde::Deserialize;

use crate::error::{Location, Rejector, TransformError};
use crate::payload::FamilyInputs;

/// Optional `[mapping]` for an AP v2 feed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApV2Config {
    /// States whose `subunit`s are towns rather than counties (default: the
    /// New England states).
    pub township_states: Option<Vec<String>>,
}

impl ApV2Config {
    pub(crate) fn from_inputs(inputs: &FamilyInputs, r: &Rejector) -> Result<Self, TransformError> {
        match inputs.mapping {
            None => Ok(Self::default()),
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e| r.schema(Location::Whole, format!("invalid ap-v2 mapping: {e}"))),
        }
    }

    pub(crate) fn is_township_state(&self, postal: &str) -> bool {
        match &self.township_states {
            Some(list) => list.iter().any(|s| s.eq_ignore_ascii_case(postal)),
            None => matches!(postal, "CT" | "MA" | "ME" | "NH" | "RI" | "VT"),
        }
    }
}
