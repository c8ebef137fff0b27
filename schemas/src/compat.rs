//! The schema-evolution gate: every schema must stay BACKWARD and FORWARD
//! compatible with its last released version in `schemas/released/`.
//!
//! * BACKWARD: a consumer on the new schema reads data written with the old.
//! * FORWARD: a consumer still on the old schema reads data written with the new.
//!
//! apache-avro's `SchemaCompatibility::can_read(writer, reader)` decides both.

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

/// Why a schema change is not allowed.
#[derive(Debug, thiserror::Error)]
pub enum CompatibilityError {
    /// One of the two schemas is not valid Avro.
    #[error("{name}: {which} schema does not parse: {reason}")]
    Parse {
        /// The record's name.
        name: String,
        /// `released` or `current`.
        which: &'static str,
        /// The parser's error.
        reason: String,
    },
    /// A reader of one version could not read the other's records.
    #[error("{name} is not {direction} compatible with its released version: {reason}")]
    Incompatible {
        /// The record's name.
        name: String,
        /// `BACKWARD` or `FORWARD`.
        direction: &'static str,
        /// What breaks.
        reason: String,
    },
}

/// Checks `current` against `released` in both directions.
pub fn check_full(name: &str, released: &str, current: &str) -> Result<(), CompatibilityError> {
    let parse = |which, text: &str| {
        Schema::parse_str(text).map_err(|e| CompatibilityError::Parse {
            name: name.to_string(),
            which,
            reason: e.to_string(),
        })
    };
    let old = parse("released", released)?;
    let new = parse("current", current)?;
    SchemaCompatibility::can_read(&old, &new).map_err(|e| CompatibilityError::Incompatible {
        name: name.to_string(),
        direction: "BACKWARD",
        reason: e.to_string(),
    })?;
    SchemaCompatibility::can_read(&new, &old).map_err(|e| CompatibilityError::Incompatible {
        name: name.to_string(),
        direction: "FORWARD",
        reason: e.to_string(),
    })?;
    Ok(())
}
