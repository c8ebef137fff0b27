//! The Confluent wire format: magic byte `0`, a 4-byte big-endian schema id,
//! then one Avro binary datum.
//!
//! `VoteCell` is the hot path (hundreds of thousands per second), so it has a
//! hand-written encoder and decoder that follow the Avro binary spec field by
//! field; `tests` cross-check them byte for byte against apache-avro. Every
//! other record goes through apache-avro with the schema parsed once
//! ([`crate::registry`]).

use std::sync::Arc;

use apache_avro::types::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::registry::RegisteredSchema;
use crate::types::*;

/// The magic byte that starts every Confluent-framed record.
pub const MAGIC: u8 = 0;

/// Why a record could not be encoded or decoded. Never retryable: the bytes
/// or the value are wrong, not the moment.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not Confluent wire format: {0}")]
    Framing(String),
    #[error("schema id {found} where {expected} ({name}) was expected")]
    UnexpectedSchemaId {
        name: &'static str,
        expected: u32,
        found: u32,
    },
    #[error("decoding {name} at byte {offset}: {reason}")]
    Datum {
        name: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("apache-avro {op} of {name}: {reason}")]
    Avro {
        op: &'static str,
        name: &'static str,
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

fn frame_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

// ------------------------------------------------------------ Avro primitives

fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// `["null", T]` unions: branch 0 is null, branch 1 the value.
fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => put_long(out, 0),
        Some(v) => {
            put_long(out, 1);
            put(out, v);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: impl Into<String>) -> CodecError {
        CodecError::Datum {
            name: "VoteCell",
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn long(&mut self) -> Result<i64, CodecError> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn int(&mut self) -> Result<i32, CodecError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.err(format!("{v} does not fit an int")))
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| self.err("negative string length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err("string runs past the end"))?;
        let s = std::str::from_utf8(&self.buf[self.pos..end])
            .map_err(|e| self.err(format!("invalid UTF-8: {e}")))?;
        self.pos = end;
        Ok(s)
    }

    fn text(&mut self) -> Result<Text, CodecError> {
        self.str().map(Text::from)
    }

    fn double(&mut self) -> Result<f64, CodecError> {
        let b: [u8; 8] = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| self.err("truncated double"))?
            .try_into()
            .expect("8 bytes");
        self.pos += 8;
        Ok(f64::from_le_bytes(b))
    }

    fn boolean(&mut self) -> Result<bool, CodecError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("truncated boolean"))?;
        self.pos += 1;
        match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.err(format!("boolean byte {b}"))),
        }
    }

    fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, CodecError>,
    ) -> Result<Option<T>, CodecError> {
        match self.long()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            b => Err(self.err(format!("union branch {b} of a [null, T] union"))),
        }
    }

    fn symbol<E: Copy>(&mut self, all: &[E]) -> Result<E, CodecError> {
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| all.get(i).copied())
            .ok_or_else(|| self.err(format!("enum index {i} out of range")))
    }
}

// ------------------------------------------------------------ VoteCell fast path

/// Appends `cell` as a framed record with `schema_id` to `out`.
pub fn encode_vote_cell(cell: &VoteCell, schema_id: u32, out: &mut Vec<u8>) {
    encode_vote_cell_keyed(cell, &cell.cell_key().to_hex(), schema_id, out);
}

/// [`encode_vote_cell`] for a caller that already holds the cell's key as
/// its 32 hex digits (the publisher computed it to detect the change).
pub fn encode_vote_cell_keyed(cell: &VoteCell, key_hex: &str, schema_id: u32, out: &mut Vec<u8>) {
    frame_header(schema_id, out);
    put_str(out, key_hex);
    let h = &cell.header;
    put_str(out, &h.election_id);
    put_str(out, &h.source_feed_id);
    put_long(out, h.mode.index().into());
    let c = &cell.contest;
    put_str(out, &c.source_id);
    put_str(out, &c.name);
    put_long(out, c.kind.index().into());
    put_opt(out, c.vote_for, |o, v| put_long(o, v.into()));
    put_opt(out, c.primary_party.as_deref(), put_str);
    let u = &cell.unit;
    put_str(out, &u.source_id);
    put_str(out, &u.name);
    put_long(out, u.unit_type.index().into());
    put_opt(out, u.type_raw.as_deref(), put_str);
    put_opt(out, u.parent_source_id.as_deref(), put_str);
    put_opt(out, u.fips.as_deref(), put_str);
    let ch = &cell.choice;
    put_str(out, &ch.source_id);
    put_str(out, &ch.name);
    put_long(out, ch.kind.index().into());
    put_opt(out, ch.party.as_deref(), put_str);
    put_opt(out, ch.incumbent, |o, b| o.push(u8::from(b)));
    put_long(out, cell.vote_type.index().into());
    put_str(out, &cell.vote_type_raw);
    put_long(out, cell.votes);
    put_opt(out, cell.precincts_reporting, |o, v| put_long(o, v.into()));
    put_opt(out, cell.precincts_total, |o, v| put_long(o, v.into()));
    put_opt(out, cell.pct_expected_vote, |o, v| {
        o.extend_from_slice(&v.to_le_bytes())
    });
    put_opt(out, cell.winner, |o, b| o.push(u8::from(b)));
    put_long(out, h.source_seq);
    put_opt(out, h.source_version.as_deref(), put_str);
    put_opt(out, h.as_of, put_long);
    put_opt(out, h.as_of_raw.as_deref(), put_str);
    put_long(out, h.fetched_at);
    let p = &h.provenance;
    put_str(out, &p.feed_id);
    put_str(out, &p.fetch_id);
    put_str(out, &p.source_uri);
    put_str(out, &p.payload_sha256);
    put_opt(out, p.trace_id.as_deref(), put_str);
    put_opt(out, cell.raw_ref.as_deref(), put_str);
}

/// Decodes a framed `VoteCell` written with `expected_id`, returning the cell
/// and the key it was published under (checked against the recomputed key).
pub fn decode_vote_cell(bytes: &[u8], expected_id: u32) -> Result<VoteCell, CodecError> {
    let (id, datum) = split_frame(bytes)?;
    if id != expected_id {
        return Err(CodecError::UnexpectedSchemaId {
            name: "VoteCell",
            expected: expected_id,
            found: id,
        });
    }
    let mut r = Reader { buf: datum, pos: 0 };
    let key = r.str()?.to_string();
    let election_id = r.text()?;
    let source_feed_id = r.text()?;
    let mode = r.symbol(FeedMode::ALL)?;
    let contest = Arc::new(ContestRef {
        source_id: r.text()?,
        name: r.text()?,
        kind: r.symbol(ContestKind::ALL)?,
        vote_for: r.opt(Reader::int)?,
        primary_party: r.opt(Reader::text)?,
    });
    let unit = Arc::new(ReportingUnitRef {
        source_id: r.text()?,
        name: r.text()?,
        unit_type: r.symbol(UnitType::ALL)?,
        type_raw: r.opt(Reader::text)?,
        parent_source_id: r.opt(Reader::text)?,
        fips: r.opt(Reader::text)?,
    });
    let choice = Arc::new(ChoiceRef {
        source_id: r.text()?,
        name: r.text()?,
        kind: r.symbol(ChoiceKind::ALL)?,
        party: r.opt(Reader::text)?,
        incumbent: r.opt(Reader::boolean)?,
    });
    let vote_type = r.symbol(VoteType::ALL)?;
    let vote_type_raw = r.text()?;
    let votes = r.long()?;
    let precincts_reporting = r.opt(Reader::int)?;
    let precincts_total = r.opt(Reader::int)?;
    let pct_expected_vote = r.opt(Reader::double)?;
    let winner = r.opt(Reader::boolean)?;
    let header = Arc::new(PayloadHeader {
        election_id,
        source_feed_id,
        mode,
        source_seq: r.long()?,
        source_version: r.opt(Reader::text)?,
        as_of: r.opt(Reader::long)?,
        as_of_raw: r.opt(Reader::text)?,
        fetched_at: r.long()?,
        provenance: Provenance {
            feed_id: r.text()?,
            fetch_id: r.text()?,
            source_uri: r.text()?,
            payload_sha256: r.text()?,
            trace_id: r.opt(Reader::text)?,
        },
    });
    let cell = VoteCell {
        header,
        contest,
        unit,
        choice,
        vote_type,
        vote_type_raw,
        votes,
        precincts_reporting,
        precincts_total,
        pct_expected_vote,
        winner,
        raw_ref: r.opt(Reader::text)?,
    };
    if r.pos != datum.len() {
        return Err(r.err(format!("{} trailing bytes", datum.len() - r.pos)));
    }
    if cell.cell_key().to_hex() != key {
        return Err(r.err(format!("cell_key {key} does not match the cell's identity")));
    }
    Ok(cell)
}

// ------------------------------------------------------------ generic path

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
