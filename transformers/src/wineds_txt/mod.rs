//! `wineds-txt`: the Dominion WinEDS 4.0 Reporting Tool text export
//! (San Francisco), one 205-character fixed-width line per count:
//!
//! | columns | field |
//! |---|---|
//! | 0 | record flag (`0`) |
//! | 1–3 | contest number |
//! | 4–6 | choice number |
//! | 7–10 | precinct number |
//! | 11–15 | votes, zero-padded and signed (`000-1` is −1) |
//! | 16–25 | party |
//! | 26–81 | contest name |
//! | 82–119 | choice name |
//! | 120–149 | precinct name (`Pct 1151 MB` is a mail-ballot-only precinct) |
//! | 150–174 | district |
//! | 175–204 | reporting type (`TC-Election Day Reporting`, `TC-VBM Reporting`; blank = total) |
//!
//! WinEDS reuses contest numbers, so a contest's id joins the number and the
//! name (`001|REGISTERED VOTERS - TOTAL`). Registered-voter and ballots-cast
//! lines are pseudo contests. Units are precincts by name, mail-ballot-only
//! ones virtual.

mod parse;
#[cfg(test)]
mod tests;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext, PayloadFacts};

/// The name a feed entry's `family` gives for the Dominion WinEDS 4.0 text export; also the
/// `family` of this reader's errors.
pub const FAMILY: &str = "wineds-txt";

/// Transforms a WinEDS text export.
pub fn transform(
    bytes: &[u8],
    ctx: &PayloadContext,
    _inputs: &FamilyInputs,
) -> Result<Transformed, TransformError> {
    let r = Rejector {
        family: FAMILY,
        feed_id: &ctx.feed_id,
    };
    crate::limits::check_size(bytes, &r)?;
    Ok(Transformed {
        cells: parse::parse(bytes, ctx, &r)?,
        facts: PayloadFacts::default(),
    })
}
