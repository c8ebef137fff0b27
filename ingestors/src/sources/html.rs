//! An HTML page as a source (a Secretary of State's results page): fetched
//! as [`super::http`] is, and read by the `html-table` family only.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::http::HttpSpec;
use super::{Source, SourceKind, SourceKindConfig, SourceProblems};
use crate::http::FetchLimits;

/// The `html` kind's entry in [`super::SOURCES`]: an HTML page read with the `html-table`
/// mapping.
pub const KIND: SourceKind = SourceKind {
    name: "html",
    summary: "an HTML page, read with the html-table mapping",
    path_fields: &[],
};

/// `source = { kind = "html", url = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlSource {
    /// The results page, an http(s) URL, e.g.
    /// `https://elections.sos.state.tx.us/elchist175_race1.htm`; read by the `html-table`
    /// family only.
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

    fn resolve(&self, _limits: &FetchLimits) -> Result<Arc<dyn Source>, String> {
        Ok(Arc::new(HttpSpec::new(self.url.clone())))
    }
}
