//! `clarity-json`: Clarity ENR JSON, in both of its shapes.
//!
//! * `summary.json`: a flat array, one object per contest, with parallel
//!   arrays `CH` (choice names), `P` (parties) and `V` (votes). Cells are at
//!   the site level.
//! * `ALL.json` and the per-vote-type files (`Election_Day_Votes.json`, …):
//!   `{"Contests":[{"A": area, "C": [contest keys], "V": [[votes by choice]]}]}`
//!   with no names at all. Area `-1` is the whole site. The vote type comes from
//!   the file name (`ALL` = total) unless the mapping sets `vote_type_raw`.
//!
//! Choices have no ids in Clarity JSON: a choice's identity is its position in
//! the contest's arrays (`choice_source_id` "0", "1", …). Names come from a
//! companion: the matching `summary.json`, or a votewire metadata file
//! (`{"contests": [{"key", "name", "choices": [{"name", "party"}]}]}`) for
//! elections whose summary is gone.

mod config;
mod parse;
#[cfg(test)]
mod tests;

pub use config::{ClarityJsonConfig, Companion};

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext, PayloadFacts};

/// The name a feed entry's `family` gives for Clarity ENR JSON (`summary.json`, `ALL.json`,
/// vote-type files); also the `family` of this reader's errors.
pub const FAMILY: &str = "clarity-json";

/// Transforms a Clarity `summary.json`, `ALL.json` or vote-type JSON.
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
    let config = inputs
        .mapping_as::<ClarityJsonConfig>(&r)?
        .unwrap_or_default();
    let companion = inputs
        .companion
        .map(|c| Companion::parse(c, &r))
        .transpose()?;
    let cells = parse::parse(bytes, ctx, &config, companion.as_ref(), &r)?;
    Ok(Transformed {
        cells,
        facts: PayloadFacts::default(),
    })
}
