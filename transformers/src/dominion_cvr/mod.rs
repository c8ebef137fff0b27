//! `dominion-cvr`: Dominion Democracy Suite 5.x cast-vote-record exports,
//! tallied into counts.
//!
//! The payload is one `CvrExport_N.json`, or a zip holding CvrExport files
//! and the manifests. Names come from the manifests (`ContestManifest`,
//! `CandidateManifest`, `PrecinctPortionManifest`, `CountingGroupManifest`),
//! inside the zip or as the companion (a zip of them, or a JSON object
//! `{"ContestManifest": {…}, …}`); ids stand in without them.
//!
//! Each session is one ballot. Its current version is `Modified` when that
//! is marked `IsCurrent`, else `Original`. A mark counts when it is a vote,
//! not ambiguous, and first-ranked (so ranked-choice contests count first
//! choices). Contest-level under- and overvotes become pseudo choices. The
//! unit is the precinct portion (a split precinct, parent: its precinct), the
//! vote type is the counting group (Election Day, Vote by Mail).

mod parse;
#[cfg(test)]
mod tests;

pub use parse::Manifests;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext, PayloadFacts};

/// The name a feed entry's `family` gives for Dominion cast-vote-record exports; also the
/// `family` of this reader's errors.
pub const FAMILY: &str = "dominion-cvr";

/// Tallies a CVR export into cells.
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
    Ok(Transformed {
        cells: parse::tally(bytes, ctx, inputs.companion, &r)?,
        facts: PayloadFacts::default(),
    })
}
