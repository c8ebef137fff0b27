//! `ap-v2`: Associated Press Elections API v2 JSON (as recorded by NYT/NPR
//! elex).
//!
//! Contest = `raceID`; choice = `candidateID`; unit = the reporting unit at its
//! `level`: `state` (which has no id, so `state:<statePostal>`), `subunit`
//! (counties, or towns in New England) and `district` (delegate districts,
//! `districtType` kept as the raw type). Mail-ballot buckets such as RI's
//! `Mail Ballots C.D. 1` are virtual units. AP has no vote-type breakdown:
//! every cell is `total`. `test:true` marks publisher test data, and
//! `nextrequest` is handed to the ingestor for its next incremental poll.
//! AP's non-vote products (delegate summaries, trend tables, the election
//! list) are rejected as not this format.

mod config;
mod parse;
#[cfg(test)]
mod tests;

pub use config::ApV2Config;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext};

/// The name a feed entry's `family` gives for AP Elections API v2 JSON; also the `family`
/// of this reader's errors.
pub const FAMILY: &str = "ap-v2";

/// Transforms one AP v2 results response.
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
    let config = inputs.mapping_as::<ApV2Config>(&r)?.unwrap_or_default();
    parse::parse(bytes, ctx, &config, &r)
}
