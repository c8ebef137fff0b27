//! The Confluent wire format: magic byte `0`, a 4-byte big-endian schema id,
//! then one Avro binary datum.
//!
//! `VoteCell` is the hot path (hundreds of thousands per second), so it has a
//! hand-written encoder and decoder that follow the Avro binary spec field by
//! field; `tests` cross-check them byte for byte against apache-avro. Every
//! other record goes through apache-avro with the schema parsed once
//! ([`crate::registry`]).

use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

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

/// A field's wire shape, for [`Reader::skip`].
#[derive(Debug, Clone, Copy)]
enum Field {
    Str,
    Long,
    OptStr,
    OptLong,
    OptBool,
}

const CONTEST_FIELDS: &[Field] = &[
    Field::Str,
    Field::Str,
    Field::Long,
    Field::OptLong,
    Field::OptStr,
];
const UNIT_FIELDS: &[Field] = &[
    Field::Str,
    Field::Str,
    Field::Long,
    Field::OptStr,
    Field::OptStr,
    Field::OptStr,
];
const CHOICE_FIELDS: &[Field] = &[
    Field::Str,
    Field::Str,
    Field::Long,
    Field::OptStr,
    Field::OptBool,
];
/// The header's fields before the contest: election, feed, mode.
const HEADER_HEAD_FIELDS: &[Field] = &[Field::Str, Field::Str, Field::Long];
/// The header's fields after the counts: seq, version, as_of, as_of_raw,
/// fetched_at and the provenance.
const HEADER_TAIL_FIELDS: &[Field] = &[
    Field::Long,
    Field::OptStr,
    Field::OptLong,
    Field::OptStr,
    Field::Long,
    Field::Str,
    Field::Str,
    Field::Str,
    Field::Str,
    Field::OptStr,
];

/// The last section of a kind a decoder built, by its bytes.
#[derive(Debug)]
struct LastSection<T> {
    bytes: Vec<u8>,
    value: Option<Arc<T>>,
}

impl<T> Default for LastSection<T> {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            value: None,
        }
    }
}

impl<T> LastSection<T> {
    fn get(&self, bytes: &[u8]) -> Option<Arc<T>> {
        self.value
            .as_ref()
            .filter(|_| self.bytes.as_slice() == bytes)
            .cloned()
    }

    fn set(&mut self, bytes: &[u8], value: &Arc<T>) {
        self.bytes.clear();
        self.bytes.extend_from_slice(bytes);
        self.value = Some(value.clone());
    }
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

    /// Moves past fields of `shape` checking only that they fit: for a
    /// section whose bytes are compared with ones already fully decoded.
    fn skip(&mut self, shape: &[Field]) -> Result<(), CodecError> {
        for f in shape {
            let present = match f {
                Field::Str | Field::Long => true,
                _ => match self.long()? {
                    0 => false,
                    1 => true,
                    b => return Err(self.err(format!("union branch {b} of a [null, T] union"))),
                },
            };
            if !present {
                continue;
            }
            match f {
                Field::Str | Field::OptStr => {
                    let len = self.long()?;
                    let len =
                        usize::try_from(len).map_err(|_| self.err("negative string length"))?;
                    self.pos = self
                        .pos
                        .checked_add(len)
                        .filter(|e| *e <= self.buf.len())
                        .ok_or_else(|| self.err("string runs past the end"))?;
                }
                Field::Long | Field::OptLong => {
                    self.long()?;
                }
                Field::OptBool => {
                    self.boolean()?;
                }
            }
        }
        Ok(())
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
    put_opt(out, cell.links.as_deref(), |o, l| {
        put_opt(o, l.contest_id.as_deref(), put_str);
        put_opt(o, l.unit_id.as_deref(), put_str);
        put_opt(o, l.parent_unit_id.as_deref(), put_str);
        put_opt(o, l.choice_id.as_deref(), put_str);
        put_long(o, l.priority.into());
        put_opt(o, l.root_unit_id.as_deref(), put_str);
    });
}

/// Schema ids of earlier `VoteCell` layouts that decoders still read: id 1
/// had no `links` field, id 6 had `links` without `root_unit_id` (records
/// on a compacted topic outlive upgrades).
pub const LEGACY_VOTE_CELL_IDS: [u32; 2] = [1, 6];

/// Which fields a framed `VoteCell` carries, by its schema id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VoteCellLayout {
    /// Id 1: no `links`.
    WithoutLinks,
    /// Id 6: `links` without `root_unit_id`.
    LinksWithoutRoot,
    Current,
}

/// Decodes a framed `VoteCell` written with `expected_id`, checking the key
/// it was published under against the recomputed key.
pub fn decode_vote_cell(bytes: &[u8], expected_id: u32) -> Result<VoteCell, CodecError> {
    VoteCellDecoder::new(expected_id)
        .decode(bytes)
        .map(|(_, cell)| cell)
}

/// Decodes a stream of framed `VoteCell`s, sharing one `Arc` per distinct
/// string, contest, unit, choice and payload header across the cells it
/// decodes. A payload's thousands of cells repeat the same header, the
/// same few contests and choices and the same units, so a consumer (the
/// aggregator) decodes them with almost no allocation, and its stored
/// cells share their parts the way the ingestor's do.
///
/// Memory is bounded: past [`VoteCellDecoder::MAX_SHARED`] distinct strings
/// the caches start over.
#[derive(Debug)]
pub struct VoteCellDecoder {
    expected_id: u32,
    texts: HashSet<Text>,
    contests: HashMap<[u64; 5], Arc<ContestRef>>,
    units: HashMap<[u64; 6], Arc<ReportingUnitRef>>,
    choices: HashMap<[u64; 5], Arc<ChoiceRef>>,
    headers: HashMap<[u64; 13], Arc<PayloadHeader>>,
    links: HashMap<[u64; 6], Arc<ResultLinks>>,
    last_contest: LastSection<ContestRef>,
    last_unit: LastSection<ReportingUnitRef>,
    last_choice: LastSection<ChoiceRef>,
    last_header: LastSection<PayloadHeader>,
    header_bytes: Vec<u8>,
}

/// An interned string's identity (its address; interned strings are
/// unique per content), or 0 for none.
fn ident(t: Option<&Text>) -> u64 {
    t.map_or(0, |t| Arc::as_ptr(t) as *const u8 as usize as u64)
}

fn opt_bits<T: Copy>(v: Option<T>, bits: impl Fn(T) -> u64) -> u64 {
    // Tagged so `None` and `Some(0)` differ.
    v.map_or(u64::MAX, |v| bits(v) & (u64::MAX >> 1))
}

impl VoteCellDecoder {
    /// Distinct strings kept before the caches are cleared.
    pub const MAX_SHARED: usize = 500_000;

    pub fn new(expected_id: u32) -> Self {
        Self {
            expected_id,
            texts: HashSet::default(),
            contests: HashMap::default(),
            units: HashMap::default(),
            choices: HashMap::default(),
            headers: HashMap::default(),
            links: HashMap::default(),
            last_contest: LastSection::default(),
            last_unit: LastSection::default(),
            last_choice: LastSection::default(),
            last_header: LastSection::default(),
            header_bytes: Vec::new(),
        }
    }

    fn text(&mut self, r: &mut Reader<'_>) -> Result<Text, CodecError> {
        let s = r.str()?;
        if let Some(t) = self.texts.get(s) {
            return Ok(t.clone());
        }
        let t: Text = Text::from(s);
        self.texts.insert(t.clone());
        Ok(t)
    }

    fn opt_text(&mut self, r: &mut Reader<'_>) -> Result<Option<Text>, CodecError> {
        match r.long()? {
            0 => Ok(None),
            1 => self.text(r).map(Some),
            b => Err(r.err(format!("union branch {b} of a [null, T] union"))),
        }
    }

    fn links(
        &mut self,
        r: &mut Reader<'_>,
        with_root: bool,
    ) -> Result<Option<Arc<ResultLinks>>, CodecError> {
        match r.long()? {
            0 => return Ok(None),
            1 => {}
            b => return Err(r.err(format!("union branch {b} of a [null, T] union"))),
        }
        let contest_id = self.opt_text(r)?;
        let unit_id = self.opt_text(r)?;
        let parent_unit_id = self.opt_text(r)?;
        let choice_id = self.opt_text(r)?;
        let priority = r.int()?;
        let root_unit_id = if with_root { self.opt_text(r)? } else { None };
        let k = [
            ident(contest_id.as_ref()),
            ident(unit_id.as_ref()),
            ident(parent_unit_id.as_ref()),
            ident(choice_id.as_ref()),
            priority as u32 as u64,
            ident(root_unit_id.as_ref()),
        ];
        Ok(Some(
            self.links
                .entry(k)
                .or_insert_with(|| {
                    Arc::new(ResultLinks {
                        contest_id,
                        unit_id,
                        parent_unit_id,
                        choice_id,
                        priority,
                        root_unit_id,
                    })
                })
                .clone(),
        ))
    }

    fn contest(&mut self, r: &mut Reader<'_>) -> Result<Arc<ContestRef>, CodecError> {
        let (source_id, name) = (self.text(r)?, self.text(r)?);
        let kind = r.symbol(ContestKind::ALL)?;
        let vote_for = r.opt(Reader::int)?;
        let primary_party = self.opt_text(r)?;
        let k = [
            ident(Some(&source_id)),
            ident(Some(&name)),
            kind.index() as u64,
            opt_bits(vote_for, |v| v as u32 as u64),
            ident(primary_party.as_ref()),
        ];
        Ok(self
            .contests
            .entry(k)
            .or_insert_with(|| {
                Arc::new(ContestRef {
                    source_id,
                    name,
                    kind,
                    vote_for,
                    primary_party,
                })
            })
            .clone())
    }

    fn unit(&mut self, r: &mut Reader<'_>) -> Result<Arc<ReportingUnitRef>, CodecError> {
        let (source_id, name) = (self.text(r)?, self.text(r)?);
        let unit_type = r.symbol(UnitType::ALL)?;
        let type_raw = self.opt_text(r)?;
        let parent_source_id = self.opt_text(r)?;
        let fips = self.opt_text(r)?;
        let k = [
            ident(Some(&source_id)),
            ident(Some(&name)),
            unit_type.index() as u64,
            ident(type_raw.as_ref()),
            ident(parent_source_id.as_ref()),
            ident(fips.as_ref()),
        ];
        Ok(self
            .units
            .entry(k)
            .or_insert_with(|| {
                Arc::new(ReportingUnitRef {
                    source_id,
                    name,
                    unit_type,
                    type_raw,
                    parent_source_id,
                    fips,
                })
            })
            .clone())
    }

    fn choice(&mut self, r: &mut Reader<'_>) -> Result<Arc<ChoiceRef>, CodecError> {
        let (source_id, name) = (self.text(r)?, self.text(r)?);
        let kind = r.symbol(ChoiceKind::ALL)?;
        let party = self.opt_text(r)?;
        let incumbent = r.opt(Reader::boolean)?;
        let k = [
            ident(Some(&source_id)),
            ident(Some(&name)),
            kind.index() as u64,
            ident(party.as_ref()),
            opt_bits(incumbent, u64::from),
        ];
        Ok(self
            .choices
            .entry(k)
            .or_insert_with(|| {
                Arc::new(ChoiceRef {
                    source_id,
                    name,
                    kind,
                    party,
                    incumbent,
                })
            })
            .clone())
    }

    /// The header from its two runs of fields (`head` before the contest,
    /// `tail` after the counts).
    fn header(
        &mut self,
        head: &mut Reader<'_>,
        tail: &mut Reader<'_>,
    ) -> Result<Arc<PayloadHeader>, CodecError> {
        let election_id = self.text(head)?;
        let source_feed_id = self.text(head)?;
        let mode = head.symbol(FeedMode::ALL)?;
        let source_seq = tail.long()?;
        let source_version = self.opt_text(tail)?;
        let as_of = tail.opt(Reader::long)?;
        let as_of_raw = self.opt_text(tail)?;
        let fetched_at = tail.long()?;
        let feed_id = self.text(tail)?;
        let fetch_id = self.text(tail)?;
        let source_uri = self.text(tail)?;
        let payload_sha256 = self.text(tail)?;
        let trace_id = self.opt_text(tail)?;
        let k = [
            ident(Some(&election_id)),
            ident(Some(&source_feed_id)),
            mode.index() as u64,
            source_seq as u64,
            ident(source_version.as_ref()),
            opt_bits(as_of, |v| v as u64),
            ident(as_of_raw.as_ref()),
            fetched_at as u64,
            ident(Some(&feed_id)),
            ident(Some(&fetch_id)),
            ident(Some(&source_uri)),
            ident(Some(&payload_sha256)),
            ident(trace_id.as_ref()),
        ];
        Ok(self
            .headers
            .entry(k)
            .or_insert_with(|| {
                Arc::new(PayloadHeader {
                    election_id,
                    source_feed_id,
                    mode,
                    source_seq,
                    source_version,
                    as_of,
                    as_of_raw,
                    fetched_at,
                    provenance: Provenance {
                        feed_id,
                        fetch_id,
                        source_uri,
                        payload_sha256,
                        trace_id,
                    },
                })
            })
            .clone())
    }

    /// Decodes one framed cell: its key (checked against the recomputed
    /// one) and the cell.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<(CellKey, VoteCell), CodecError> {
        if self.texts.len() > Self::MAX_SHARED {
            *self = Self::new(self.expected_id);
        }
        let (id, datum) = split_frame(bytes)?;
        let [without_links, without_root] = LEGACY_VOTE_CELL_IDS;
        let layout = match id {
            _ if id == self.expected_id => VoteCellLayout::Current,
            _ if id == without_links => VoteCellLayout::WithoutLinks,
            _ if id == without_root => VoteCellLayout::LinksWithoutRoot,
            _ => {
                return Err(CodecError::UnexpectedSchemaId {
                    name: "VoteCell",
                    expected: self.expected_id,
                    found: id,
                });
            }
        };
        let mut r = Reader { buf: datum, pos: 0 };
        let key_hex = r.str()?;
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        let key = (key_hex.len() == 32 && key_hex.bytes().all(lower_hex))
            .then(|| u128::from_str_radix(key_hex, 16).ok())
            .flatten()
            .ok_or_else(|| r.err(format!("cell_key {key_hex:?} is not 32 hex digits")))?;

        // Each section is first skipped; when its bytes equal the last
        // section of its kind (consecutive cells of one payload), that
        // section's value is reused without decoding it again.
        let head_start = r.pos;
        r.skip(HEADER_HEAD_FIELDS)?;
        let head = head_start..r.pos;

        let start = r.pos;
        r.skip(CONTEST_FIELDS)?;
        let section = &datum[start..r.pos];
        let contest = match self.last_contest.get(section) {
            Some(c) => c,
            None => {
                let c = self.contest(&mut Reader {
                    buf: datum,
                    pos: start,
                })?;
                self.last_contest.set(section, &c);
                c
            }
        };
        let start = r.pos;
        r.skip(UNIT_FIELDS)?;
        let section = &datum[start..r.pos];
        let unit = match self.last_unit.get(section) {
            Some(u) => u,
            None => {
                let u = self.unit(&mut Reader {
                    buf: datum,
                    pos: start,
                })?;
                self.last_unit.set(section, &u);
                u
            }
        };
        let start = r.pos;
        r.skip(CHOICE_FIELDS)?;
        let section = &datum[start..r.pos];
        let choice = match self.last_choice.get(section) {
            Some(c) => c,
            None => {
                let c = self.choice(&mut Reader {
                    buf: datum,
                    pos: start,
                })?;
                self.last_choice.set(section, &c);
                c
            }
        };

        let vote_type = r.symbol(VoteType::ALL)?;
        let vote_type_raw = self.text(&mut r)?;
        let votes = r.long()?;
        let precincts_reporting = r.opt(Reader::int)?;
        let precincts_total = r.opt(Reader::int)?;
        let pct_expected_vote = r.opt(Reader::double)?;
        let winner = r.opt(Reader::boolean)?;

        let tail_start = r.pos;
        r.skip(HEADER_TAIL_FIELDS)?;
        let tail = tail_start..r.pos;
        self.header_bytes.clear();
        self.header_bytes.extend_from_slice(&datum[head.clone()]);
        self.header_bytes.extend_from_slice(&datum[tail.clone()]);
        let header = match self.last_header.get(&self.header_bytes) {
            Some(h) => h,
            None => {
                let h = self.header(
                    &mut Reader {
                        buf: &datum[..head.end],
                        pos: head.start,
                    },
                    &mut Reader {
                        buf: &datum[..tail.end],
                        pos: tail.start,
                    },
                )?;
                let bytes = std::mem::take(&mut self.header_bytes);
                self.last_header.set(&bytes, &h);
                self.header_bytes = bytes;
                h
            }
        };
        let raw_ref = self.opt_text(&mut r)?;
        let links = match layout {
            VoteCellLayout::WithoutLinks => None,
            VoteCellLayout::LinksWithoutRoot => self.links(&mut r, false)?,
            VoteCellLayout::Current => self.links(&mut r, true)?,
        };
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
            raw_ref,
            links,
        };
        if r.pos != datum.len() {
            return Err(r.err(format!("{} trailing bytes", datum.len() - r.pos)));
        }
        let computed = cell.cell_key();
        if computed.0 != key {
            return Err(r.err(format!(
                "cell_key {key_hex} does not match the cell's identity"
            )));
        }
        Ok((computed, cell))
    }
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
