//! `npr-json`: NPR's election results JSON (AP-derived), as captured for the
//! GA 2021 runoff: `{"races": [{"id", "state", "eevp", "results": [{"updated"
//! (epoch ms), "precincts", "reporting", "winners", "candidates": [{"id",
//! "first", "last", "party", "votes", "winner", "incumbent"}]}]}]}`.
//!
//! Contest = race `id`; unit = the race's state (`state:<postal>`, as for AP
//! v2); choice = candidate `id`. No vote-type breakdown: every cell is `total`.

mod parse;
#[cfg(test)]
mod tests;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext};

/// The name a feed entry's `family` gives for NPR election results JSON; also the `family`
/// of this reader's errors.
pub const FAMILY: &str = "npr-json";

/// Transforms one NPR results document.
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
    parse::parse(bytes, ctx, &r)
}
