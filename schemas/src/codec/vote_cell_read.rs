//! The hand-written `VoteCell` decoder: the Avro binary spec field by
//! field, for the current layout and the earlier ones still on compacted
//! topics, sharing one `Arc` per distinct part across a stream.

use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{CodecError, split_frame};
use crate::types::*;

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

    /// A decoder of `VoteCell`s framed with `expected_id` (or an earlier
    /// layout's id).
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
        if computed.0 != key && !is_legacy_test_key(&cell, key) {
            return Err(r.err(format!(
                "cell_key {key_hex} does not match the cell's identity"
            )));
        }
        // Under its identity's key, whichever it was written with: a legacy
        // test record and a current one of the same cell are one cell.
        Ok((computed, cell))
    }
}

/// Whether `key` is the live key of test cell `cell`: how test cells were
/// keyed before they had keys of their own (`CellKey::in_mode`), and how
/// an ingestor of that version still writes them during a rolling upgrade.
fn is_legacy_test_key(cell: &VoteCell, key: u128) -> bool {
    cell.header.mode == FeedMode::Test
        && cell_key(
            &cell.header.source_feed_id,
            &cell.contest.source_id,
            &cell.unit.source_id,
            &cell.choice.source_id,
            cell.vote_type,
            &cell.vote_type_raw,
        )
        .0 == key
}

// ------------------------------------------------------------ generic path
