//! `ap-interactive`: the AP public interactives JSON (the GA 2021 runoff
//! capture): `{"timestamp", "test", "results": [race…]}` where each race has a
//! statewide `summary` and per-county `results` keyed by FIPS. The `summary`
//! variant (`{"results": {"GA": [race…]}}`) is read too.
//!
//! The payload carries no names: contest, candidate and county names come
//! from a companion file (`{"races": [{"raceID", "name", "candidates":
//! [{"candidateID", "name", "party"}]}], "units": {"13001": "Appling"}}`).
//! Ids are used as names where the companion is silent. `eevp` becomes
//! `pct_expected_vote`; AP's `winner: "X"` becomes `winner`.

mod config;
mod parse;
#[cfg(test)]
mod tests;

pub use config::ApInteractiveCompanion;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext};

/// The name a feed entry's `family` gives for AP public interactives JSON; also the
/// `family` of this reader's errors.
pub const FAMILY: &str = "ap-interactive";

/// Transforms one AP interactives snapshot.
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
    let companion = inputs
        .companion
        .map(|c| ApInteractiveCompanion::parse(c, &r))
        .transpose()?
        .unwrap_or_default();
    parse::parse(bytes, ctx, &companion, &r)
}
