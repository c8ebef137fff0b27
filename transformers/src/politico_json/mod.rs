//! `politico-json`: Politico's county results JSON (AP-derived), as
//! captured for the GA 2021 runoff: `{"lastUpdated", "races": [{"stateFips",
//! "countyFips", "raceid", "candidates": [{"candidateID", "vote"}],
//! "progressReporting", "progressTotal"}]}`, one entry per race and county.
//!
//! Contest = `raceid`; unit = the county by FIPS (parent: the state FIPS);
//! choice = AP `candidateID`. Every cell is `total`.

mod parse;
#[cfg(test)]
mod tests;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext};

/// The name a feed entry's `family` gives for Politico county results JSON; also the
/// `family` of this reader's errors.
pub const FAMILY: &str = "politico-json";

/// Transforms one Politico county results document.
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
