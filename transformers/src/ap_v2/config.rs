use serde::Deserialize;

/// Optional `[mapping]` for an AP v2 feed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApV2Config {
    /// States whose `subunit`s are towns rather than counties (default: the
    /// New England states).
    pub township_states: Option<Vec<String>>,
}

impl ApV2Config {
    pub(crate) fn is_township_state(&self, postal: &str) -> bool {
        match &self.township_states {
            Some(list) => list.iter().any(|s| s.eq_ignore_ascii_case(postal)),
            None => matches!(postal, "CT" | "MA" | "ME" | "NH" | "RI" | "VT"),
        }
    }
}
