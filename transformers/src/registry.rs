//! The one explicit list of transformer families.
//!
//! Adding a family means adding its folder and one line here.

use crate::cells::CellTable;
use crate::cells::Transformed;
use crate::counts::check_count;
use crate::error::{Location, Rejector, TransformError};
use crate::payload::{FamilyInputs, PayloadContext};

/// A transformer family: its name (the `family` of a feed entry) and its
/// entry point.
pub struct Family {
    /// The family's name: what a feed entry's `family` says, and the `family` of the
    /// family's errors.
    pub name: &'static str,
    /// What the family reads, for `votewire transform --help` and docs.
    pub reads: &'static str,
    /// The family's entry point: all of one payload's cells and facts, or the error
    /// rejecting it. [`transform`] calls it and checks the rows again.
    pub transform: fn(&[u8], &PayloadContext, &FamilyInputs) -> Result<Transformed, TransformError>,
    /// Checks a feed's `[mapping]` for this family without any payload
    /// (`votewire feeds validate`); the error says what is wrong.
    pub check_mapping: fn(&toml::Table) -> Result<(), String>,
    /// Whether the family cannot work without a mapping.
    pub needs_mapping: bool,
    /// Whether the format defines negative counts (WinEDS's signed `000-1`
    /// adjustment rows); everywhere else a negative count is garbage.
    pub signed_counts: bool,
}

/// A family whose mapping, if any, must deserialize as `T`.
fn mapping_of<T: serde::de::DeserializeOwned>(t: &toml::Table) -> Result<(), String> {
    t.clone()
        .try_into::<T>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A family that reads no mapping: any mapping is a mistake.
fn no_mapping(t: &toml::Table) -> Result<(), String> {
    if t.is_empty() {
        Ok(())
    } else {
        Err("this family reads no mapping".into())
    }
}

/// Every family votewire knows.
pub const FAMILIES: &[Family] = &[
    Family {
        name: crate::clarity_xml::FAMILY,
        reads: "Clarity ENR detail.xml or detailxml.zip",
        transform: crate::clarity_xml::transform,
        check_mapping: mapping_of::<crate::clarity_xml::ClarityXmlConfig>,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::clarity_json::FAMILY,
        reads: "Clarity ENR summary.json, ALL.json and per-vote-type JSON (names via --companion)",
        transform: crate::clarity_json::transform,
        check_mapping: mapping_of::<crate::clarity_json::ClarityJsonConfig>,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::ap_v2::FAMILY,
        reads: "AP Elections API v2 JSON (state, subunit, district levels; nextrequest)",
        transform: crate::ap_v2::transform,
        check_mapping: mapping_of::<crate::ap_v2::ApV2Config>,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::ap_interactive::FAMILY,
        reads: "AP public interactives JSON (GA 2021 capture; names via --companion)",
        transform: crate::ap_interactive::transform,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::nist_cdf::FAMILY_XML,
        reads: "NIST SP 1500-100 v2 ElectionReport, XML",
        transform: crate::nist_cdf::transform_xml,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::nist_cdf::FAMILY_JSON,
        reads: "NIST SP 1500-100 v2 ElectionReport, JSON",
        transform: crate::nist_cdf::transform_json,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::nist_cdf::FAMILY_V1_XML,
        reads: "NIST 1500-100 v1-style ElectionReport XML (the Google Civics profile)",
        transform: crate::nist_cdf::transform_v1_xml,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::csv_table::FAMILY,
        reads: "OpenElections-style precinct CSV, or any CSV through a column mapping",
        transform: crate::csv_table::transform,
        check_mapping: mapping_of::<crate::csv_table::CsvMapping>,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::html_table::FAMILY,
        reads: "Secretary of State HTML result tables through a selector mapping (--mapping)",
        transform: crate::html_table::transform,
        check_mapping: mapping_of::<crate::html_table::HtmlMapping>,
        needs_mapping: true,
        signed_counts: false,
    },
    Family {
        name: crate::wineds_txt::FAMILY,
        reads: "Dominion WinEDS 4.0 fixed-width text export",
        transform: crate::wineds_txt::transform,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: true,
    },
    Family {
        name: crate::npr_json::FAMILY,
        reads: "NPR election results JSON (AP-derived, statewide)",
        transform: crate::npr_json::transform,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::politico_json::FAMILY,
        reads: "Politico county results JSON (AP-derived)",
        transform: crate::politico_json::transform,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: false,
    },
    Family {
        name: crate::dominion_cvr::FAMILY,
        reads: "Dominion cast-vote-record export (CvrExport JSON or a zip with manifests), tallied",
        transform: crate::dominion_cvr::transform,
        check_mapping: no_mapping,
        needs_mapping: false,
        signed_counts: false,
    },
];

/// The family called `name`.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

/// Transforms `bytes` with the family called `name`.
pub fn transform(
    name: &str,
    bytes: &[u8],
    ctx: &PayloadContext,
    inputs: &FamilyInputs,
) -> Result<Transformed, TransformError> {
    let f = family(name).ok_or_else(|| TransformError {
        family: "registry",
        feed_id: ctx.feed_id.clone(),
        class: crate::error::ErrorClass::Other,
        location: Location::Whole,
        message: format!(
            "unknown family {name:?}; known: {}",
            FAMILIES
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let out = (f.transform)(bytes, ctx, inputs)?;
    check_rows(f, &out.cells, &ctx.feed_id)?;
    Ok(out)
}

/// Every row a family returns, checked once more against what a count and
/// the measures beside it may be, so that no family can publish a negative,
/// absurd or non-finite value even where its own parsing let one through.
/// The most precincts one count may name (the United States has about
/// 175,000 in all).
const MAX_PRECINCTS: i32 = 10_000_000;
/// The highest expected-vote percentage believed.
const MAX_EXPECTED_VOTE_PCT: f64 = 1_000.0;

fn check_rows(f: &Family, cells: &CellTable, feed_id: &str) -> Result<(), TransformError> {
    let r = Rejector {
        family: f.name,
        feed_id,
    };
    for row in cells.rows() {
        let problem = match check_count(row.votes, f.signed_counts) {
            Err(p) => Some(format!("votes {} is {p}", row.votes)),
            Ok(_) => match (
                row.precincts_reporting,
                row.precincts_total,
                row.pct_expected_vote,
            ) {
                (Some(n), _, _) | (_, Some(n), _) if n < 0 => {
                    Some(format!("a negative precinct count ({n})"))
                }
                (Some(n), _, _) | (_, Some(n), _) if n > MAX_PRECINCTS => Some(format!(
                    "a precinct count of {n}, past the {MAX_PRECINCTS} any electorate has"
                )),
                // A percentage (AP's eevp can pass 100 when turnout beats
                // the estimate, never by a factor of ten).
                (_, _, Some(p))
                    if !p.is_finite() || !(0.0..=MAX_EXPECTED_VOTE_PCT).contains(&p) =>
                {
                    Some(format!("expected-vote share {p:?} is not a share"))
                }
                _ => None,
            },
        };
        if let Some(problem) = problem {
            return Err(r.schema(
                Location::Path(format!(
                    "contest {:?} / unit {:?} / choice {:?} ({})",
                    &*cells.contest(row.contest).source_id,
                    &*cells.unit(row.unit).source_id,
                    &*cells.choice(row.choice).source_id,
                    cells.label(row.label).1,
                )),
                problem,
            ));
        }
    }
    Ok(())
}
