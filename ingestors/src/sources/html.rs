//! An HTML page as a source (a Secretary of State's results page): fetched
//! as [`super::http`] is, and read by the `html-table` family only.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{SourceKind, SourceKindConfig, SourceProblems};

pub const KIND: SourceKind = SourceKind {
    name: "html",
    summary: "an HTML page, read with the html-table mapping",
    path_fields: &[],
};

/// `source = { kind = "html", url = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlSource {
    pub url: String,
}

impl SourceKindConfig for HtmlSource {
    fn kind(&self) -> &'static SourceKind {
        &KIND
    }

    fn check(&self, problems: &mut SourceProblems<'_>) {
        problems.http_url("source.url", &self.url);
        if problems.family != "html-table" {
            problems.add("family", "an html source is read by the html-table family");
        }
    }
}
