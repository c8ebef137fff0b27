//! `clarity-xml`: Scytl/SOE Clarity ENR `detail.xml`, or the `detailxml.zip`
//! that holds it.
//!
//! Handles county sites (`<VoterTurnout><Precincts>`, precinct leaves), state
//! sites (`<ElectionVoterTurnout><Counties>`, county leaves), the newer
//! per-contest `<ParticipatingCounties>` layout, contest-level
//! Undervotes/Overvotes, a missing `voteFor`, and Yes/No measures flagged
//! `isQuestion="false"`.
//!
//! Cells: every `VoteType/@votes` aggregate (reported for the whole site) and
//! every leaf under it. Aggregates and leaves are kept as published, even
//! where they disagree. Units have no ids in Clarity, so the unit name is its
//! id; the site itself is the `<Region>`.

mod attrs;
mod config;
mod parse;
mod scan;
#[cfg(test)]
mod tests;

pub use config::ClarityXmlConfig;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::limits;
use crate::payload::{FamilyInputs, PayloadContext, PayloadFacts};

/// The name a feed entry's `family` gives for Clarity ENR `detail.xml` (or
/// `detailxml.zip`); also the `family` of this reader's errors.
pub const FAMILY: &str = "clarity-xml";

/// Transforms a `detail.xml` (or a zip holding it) into cells.
pub fn transform(
    bytes: &[u8],
    ctx: &PayloadContext,
    inputs: &FamilyInputs,
) -> Result<Transformed, TransformError> {
    let r = Rejector {
        family: FAMILY,
        feed_id: &ctx.feed_id,
    };
    limits::check_size(bytes, &r)?;
    let config = inputs
        .mapping_as::<ClarityXmlConfig>(&r)?
        .unwrap_or_default();
    let inflated;
    let xml = if limits::is_zip(bytes) {
        inflated = limits::unzip_entry(bytes, |n| n.to_ascii_lowercase().ends_with(".xml"), &r)?;
        &inflated[..]
    } else {
        bytes
    };
    let cells = parse::parse(xml, ctx, &config, &r)?;
    Ok(Transformed {
        cells,
        facts: PayloadFacts::default(),
    })
}
