use serde::Deserialize;

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
