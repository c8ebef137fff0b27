//! `csv`: OpenElections-style precinct CSV, and any CSV through a column
//! mapping in the feed config.
//!
//! Columns are found by header name, never by position, so header variants
//! and swapped columns (PA Forest's `candidate,party`) need no special case.
//! Every column whose header is a vote-type label (`votes`, `total_votes`,
//! `election_day`, `absentee_by_mail`, `advance_in_person_2`, …) yields one
//! cell per row; empty cells are skipped and `"1,089"` is 1089. Ids follow
//! the CLI contract: contest `office|district` (`office` when the district is
//! empty), choice `candidate|party`, unit `county|precinct` (`county` for
//! county-level files). Pseudo rows (Registered Voters, Ballots Cast, Over
//! and Under Votes, write-ins) are kept and classified. A zip holding one
//! CSV is read through the capped unzip.

mod config;
mod parse;
#[cfg(test)]
mod tests;

pub use config::{CsvMapping, FinalNewline};

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext, PayloadFacts};

/// The name a feed entry's `family` gives for precinct CSV (OpenElections-style, or through
/// a column mapping); also the `family` of this reader's errors.
pub const FAMILY: &str = "csv";

/// Transforms one CSV payload (or a zip holding one).
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
    let mapping = inputs.mapping_as::<CsvMapping>(&r)?.unwrap_or_default();
    let inflated;
    let csv = if crate::limits::is_zip(bytes) {
        inflated = crate::limits::unzip_entry(
            bytes,
            |n| {
                let n = n.to_ascii_lowercase();
                n.ends_with(".csv") || n.ends_with(".txt")
            },
            &r,
        )?;
        &inflated[..]
    } else {
        bytes
    };
    let cells = parse::parse(csv, ctx, &mapping, &r)?;
    Ok(Transformed {
        cells,
        facts: PayloadFacts::default(),
    })
}
