//! `html-table`: Secretary of State result pages, read through CSS-selector
//! mappings in the feed config (scraper's lenient HTML5 parser copes with
//! unclosed `<TR>`, mixed-case tags and malformed tags).
//!
//! Two layouts cover the common SoS shapes:
//!
//! * `unit-rows`: one contest per page, candidates in columns (names may be
//!   split over several header rows, with a party row), one row per unit and
//!   optional labelled sub-rows (Texas's `Early`) carrying another vote type.
//! * `candidate-rows`: many contests per page; a row whose first cell has
//!   text starts a contest, following rows are candidates, and vote columns
//!   are found by header label (Texas's `EARLY VOTES`, `TOTAL VOTES`).
//!
//! Cells are positioned with their `colspan`s expanded, so header labels
//! line up with data. The charset comes from the HTTP `Content-Type`, then
//! `<meta>`, then UTF-8 if the bytes are valid UTF-8, else windows-1252 (the
//! Texas pages are ISO-8859-1 without saying so). Working mappings for the
//! Texas SOS pages ship in `deploy/mappings/`.

mod config;
mod parse;
#[cfg(test)]
mod tests;

pub use config::{HtmlLayout, HtmlMapping};

use crate::cells::Transformed;
use crate::error::{Location, Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext, PayloadFacts};

/// The name a feed entry's `family` gives for Secretary of State HTML result tables (read
/// through a mapping); also the `family` of this reader's errors.
pub const FAMILY: &str = "html-table";

/// Transforms one HTML page with the feed's mapping (required).
pub fn transform(
    bytes: &[u8],
    ctx: &PayloadContext,
    inputs: &FamilyInputs,
) -> Result<Transformed, TransformError> {
    let r = Rejector {
        family: FAMILY,
        feed_id: &ctx.feed_id,
    };
    crate::limits::check_size(bytes, &r)?;
    let mapping = inputs.mapping_as::<HtmlMapping>(&r)?.ok_or_else(|| {
        r.schema(
            Location::Whole,
            "html-table needs a [mapping] (see deploy/mappings/)",
        )
    })?;
    let text = parse::decode(bytes, ctx.content_type.as_deref());
    let cells = parse::parse(&text, ctx, &mapping, &r)?;
    Ok(Transformed {
        cells,
        facts: PayloadFacts::default(),
    })
}
