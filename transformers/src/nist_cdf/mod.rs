//! `nist-cdf-xml` and `nist-cdf-json`: NIST SP 1500-100 v2 Election Results
//! Reporting, in its XML and JSON encodings; and `nist-cdf-v1-xml`, the
//! v1-style shape that Google Civics feeds use.
//!
//! Both encodings are read into one model ([`model`]) and turned into cells
//! by one function, so the twins give identical cells. Contest =
//! `Contest/@ObjectId`, choice = `ContestSelection/@ObjectId`, unit =
//! `VoteCounts/GpUnitId` resolved through `GpUnit` (with its `Type`, or
//! `OtherType` when the type is `other`), vote type = `VoteCounts/Type` (or
//! `OtherType`). Ids are whitespace-collapsed as XSD `xs:ID` requires (the
//! Cambridge XML writes `ObjectId="prec-1-1 "` and refers to `prec-1-1`);
//! names keep their raw text. Unit types overlap (polling places are made of
//! precincts), so every cell keeps its own unit type and nothing is summed
//! here. `OtherCounts` (under/overvotes) and `BallotCounts` are not cells.

mod json;
pub mod model;
#[cfg(test)]
mod tests;
mod xml;

use crate::cells::Transformed;
use crate::error::{Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext};

/// The name a feed entry's `family` gives for NIST SP 1500-100 v2 reports in XML; also the
/// `family` of this reader's errors.
pub const FAMILY_XML: &str = "nist-cdf-xml";
/// The name a feed entry's `family` gives for NIST SP 1500-100 v2 reports in JSON; also the
/// `family` of this reader's errors.
pub const FAMILY_JSON: &str = "nist-cdf-json";
/// The name a feed entry's `family` gives for v1-style NIST `ElectionReport` XML (the
/// Google Civics profile); also the `family` of this reader's errors.
pub const FAMILY_V1_XML: &str = "nist-cdf-v1-xml";

/// Transforms an ERR v2 XML `ElectionReport`.
pub fn transform_xml(
    bytes: &[u8],
    ctx: &PayloadContext,
    _inputs: &FamilyInputs,
) -> Result<Transformed, TransformError> {
    let r = Rejector {
        family: FAMILY_XML,
        feed_id: &ctx.feed_id,
    };
    crate::limits::check_size(bytes, &r)?;
    let report = xml::read(bytes, &r, xml::Profile::V2)?;
    model::cells(&report, ctx, &r)
}

/// Transforms a v1-style XML `ElectionReport` (the Google Civics profile:
/// `*Collection` wrappers, `BallotSelection`, lowercase `objectId`, no
/// namespace).
pub fn transform_v1_xml(
    bytes: &[u8],
    ctx: &PayloadContext,
    _inputs: &FamilyInputs,
) -> Result<Transformed, TransformError> {
    let r = Rejector {
        family: FAMILY_V1_XML,
        feed_id: &ctx.feed_id,
    };
    crate::limits::check_size(bytes, &r)?;
    let report = xml::read(bytes, &r, xml::Profile::V1)?;
    model::cells(&report, ctx, &r)
}

/// Transforms an ERR v2 JSON `ElectionReport`.
pub fn transform_json(
    bytes: &[u8],
    ctx: &PayloadContext,
    _inputs: &FamilyInputs,
) -> Result<Transformed, TransformError> {
    let r = Rejector {
        family: FAMILY_JSON,
        feed_id: &ctx.feed_id,
    };
    crate::limits::check_size(bytes, &r)?;
    let report = json::read(bytes, &r)?;
    model::cells(&report, ctx, &r)
}
