//! votewire transformers: pure functions from payload bytes and feed config
//! to normalized vote cells.
//!
//! No I/O, no clock, no network: a transformer sees only the bytes an
//! ingestor fetched, the facts the ingestor supplies ([`PayloadContext`]) and
//! the feed's family configuration ([`FamilyInputs`]). That makes every family
//! fuzzable and benchable in isolation.
//!
//! # Delivery semantics
//!
//! A transformer returns every cell of a payload or a typed
//! [`TransformError`]; never a partial result. A rejected payload therefore
//! leaves earlier cells untouched: the ingestor dead-letters it, and the last
//! good values stand. Cells are cumulative counts (upserts), never deltas.
//!
//! Families are listed once, in [`registry::FAMILIES`].

#![warn(missing_docs)]

pub mod cells;
pub mod counts;
pub mod error;
pub mod json;
pub mod limits;
pub mod nesting;
pub mod payload;
pub mod registry;
pub mod timefmt;

#[cfg(test)]
pub(crate) mod testkit;

pub mod ap_interactive;
pub mod ap_v2;
pub mod clarity_json;
pub mod clarity_xml;
pub mod csv_table;
pub mod dominion_cvr;
pub mod html_table;
pub mod nist_cdf;
pub mod npr_json;
pub mod politico_json;
pub mod wineds_txt;

pub use cells::Transformed;
pub use error::{ErrorClass, Location, TransformError};
pub use payload::{FamilyInputs, PayloadContext, PayloadFacts};
pub use registry::{FAMILIES, Family, family, transform};
