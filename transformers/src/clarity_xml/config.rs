use serde::Deserialize;

use crate::error::{Location, Rejector, TransformError};
use crate::payload::FamilyInputs;

/// Optional `[mapping]` for a Clarity XML feed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClarityXmlConfig {
    /// Force the site level (`state` or `county`) instead of detecting it
    /// from the turnout section.
    pub site_level: Option<SiteLevel>,
}

/// Which kind of Clarity site published the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteLevel {
    State,
    County,
}

impl ClarityXmlConfig {
    pub(crate) fn from_inputs(inputs: &FamilyInputs, r: &Rejector) -> Result<Self, TransformError> {
        match inputs.mapping {
            None => Ok(Self::default()),
            Some(t) => t.clone().try_into().map_err(|e| {
                r.schema(Location::Whole, format!("invalid clarity-xml mapping: {e}"))
            }),
        }
    }
}
