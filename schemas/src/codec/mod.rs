//! The Confluent wire format: magic byte `0`, a 4-byte big-endian schema id,
//! then one Avro binary datum.
//!
//! `VoteCell` is the hot path (hundreds of thousands per second), so it has a
//! hand-written encoder and decoder that follow the Avro binary spec field by
//! field; `tests` cross-check them byte for byte against apache-avro. Every
//! other record goes through apache-avro with the schema parsed once
//! ([`crate::registry`]).

mod vote_cell_read;
mod vote_cell_write;

use apache_avro::types::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::registry::RegisteredSchema;

pub use vote_cell_read::{LEGACY_VOTE_CELL_IDS, VoteCellDecoder, decode_vote_cell};
pub use vote_cell_write::{encode_vote_cell, encode_vote_cell_keyed};

/// The magic byte that starts every Confluent-framed record.
pub const MAGIC: u8 = 0;

/// Why a record could not be encoded or decoded. Never retryable: the bytes
/// or the value are wrong, not the moment.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// No magic byte and schema id in front (what is wrong with them).
    #[error("not Confluent wire format: {0}")]
    Framing(String),
    /// Another schema's record.
    #[error("schema id {found} where {expected} ({name}) was expected")]
    UnexpectedSchemaId {
        /// The record expected.
        name: &'static str,
        /// Its schema id.
        expected: u32,
        /// The record's.
        found: u32,
    },
    /// The datum does not follow its schema.
    #[error("decoding {name} at byte {offset}: {reason}")]
    Datum {
        /// The record.
        name: &'static str,
        /// Where in the datum.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// apache-avro refused the value or the bytes.
    #[error("apache-avro {op} of {name}: {reason}")]
    Avro {
        /// `encode`, `decode` or `deserialize`.
        op: &'static str,
        /// The record.
        name: &'static str,
        /// apache-avro's error.
        reason: String,
    },
}

/// Splits a framed record into (schema id, datum).
pub fn split_frame(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [m, ..] if *m != MAGIC => Err(CodecError::Framing(format!("magic byte {m}, expected 0"))),
        _ => Err(CodecError::Framing(format!(
            "{} bytes is shorter than the 5-byte header",
            bytes.len()
        ))),
    }
}

pub(super) fn frame_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

// ------------------------------------------------------------ Avro primitives

/// Encodes any record through apache-avro with its registered schema.
pub fn encode<T: Serialize>(schema: &RegisteredSchema, value: &T) -> Result<Vec<u8>, CodecError> {
    let err = |reason: String| CodecError::Avro {
        op: "encode",
        name: schema.name,
        reason,
    };
    let v = apache_avro::to_value(value).map_err(|e| err(e.to_string()))?;
    let v = v.resolve(&schema.schema).map_err(|e| err(e.to_string()))?;
    let datum = apache_avro::to_avro_datum(&schema.schema, v).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::with_capacity(datum.len() + 5);
    frame_header(schema.id, &mut out);
    out.extend_from_slice(&datum);
    Ok(out)
}

/// Decodes a framed record into an apache-avro [`Value`] with its schema.
pub fn decode_value(schema: &RegisteredSchema, bytes: &[u8]) -> Result<Value, CodecError> {
    let (id, mut datum) = split_frame(bytes)?;
    if id != schema.id {
        return Err(CodecError::UnexpectedSchemaId {
            name: schema.name,
            expected: schema.id,
            found: id,
        });
    }
    apache_avro::from_avro_datum(&schema.schema, &mut datum, None).map_err(|e| CodecError::Avro {
        op: "decode",
        name: schema.name,
        reason: e.to_string(),
    })
}

/// Decodes a framed record into `T` through apache-avro.
pub fn decode<T: DeserializeOwned>(
    schema: &RegisteredSchema,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let v = decode_value(schema, bytes)?;
    apache_avro::from_value(&v).map_err(|e| CodecError::Avro {
        op: "deserialize",
        name: schema.name,
        reason: e.to_string(),
    })
}
