//! Reading a start tag's attributes as raw bytes (most are compared or
//! parsed as bytes; only names that become new units or choices are
//! decoded), and the counts and names in them.

use std::borrow::Cow;

use super::scan::unescape;
use crate::error::{Location, Rejector, TransformError};

/// The attributes of one element that this parser reads, as raw bytes: most
/// are compared or parsed as bytes, and only names that become new units or
/// choices are decoded.
#[derive(Default)]
pub(super) struct Attrs<'a> {
    pub(super) name: Option<&'a [u8]>,
    pub(super) key: Option<&'a [u8]>,
    pub(super) text: Option<&'a [u8]>,
    pub(super) votes: Option<&'a [u8]>,
    pub(super) party: Option<&'a [u8]>,
    pub(super) vote_for: Option<&'a [u8]>,
    pub(super) is_question: Option<&'a [u8]>,
    pub(super) precincts_reporting: Option<&'a [u8]>,
    pub(super) precincts_reported: Option<&'a [u8]>,
    pub(super) precincts_participating: Option<&'a [u8]>,
}

/// One start tag's attributes as (name, raw value), from the scanner.
pub(super) type RawAttrs<'a> = [(&'a [u8], &'a [u8])];

pub(super) fn attrs<'a>(raw: &RawAttrs<'a>) -> Attrs<'a> {
    let mut a = Attrs::default();
    for &(key, value) in raw {
        let slot = match key {
            b"name" => &mut a.name,
            b"key" => &mut a.key,
            b"text" => &mut a.text,
            b"votes" => &mut a.votes,
            b"party" => &mut a.party,
            b"voteFor" => &mut a.vote_for,
            b"isQuestion" => &mut a.is_question,
            b"precinctsReporting" => &mut a.precincts_reporting,
            b"precinctsReported" => &mut a.precincts_reported,
            b"precinctsParticipating" => &mut a.precincts_participating,
            _ => continue,
        };
        *slot = Some(value);
    }
    a
}

/// A leaf's raw `name` and `votes`.
pub(super) type LeafAttrs<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// The `name` and `votes` of a leaf element, the hot path.
#[inline]
pub(super) fn leaf_attrs<'a>(raw: &RawAttrs<'a>) -> LeafAttrs<'a> {
    if let [(k1, name), (k2, votes)] = raw
        && is(k1, b"name")
        && is(k2, b"votes")
    {
        return (Some(name), Some(votes));
    }
    let (mut name, mut votes) = (None, None);
    for &(key, value) in raw {
        match key {
            b"name" => name = Some(value),
            b"votes" => votes = Some(value),
            _ => {}
        }
    }
    (name, votes)
}

/// `key == lit`, compared as a fixed-size array (no memcmp call).
#[inline]
pub(super) fn is<const N: usize>(key: &[u8], lit: &[u8; N]) -> bool {
    <&[u8; N]>::try_from(key).is_ok_and(|k| k == lit)
}

/// Decodes an attribute value: UTF-8, with the five predefined entities and
/// character references resolved. Anything else is refused.
pub(super) fn text_of<'v>(
    v: &'v [u8],
    pos: u64,
    r: &Rejector,
) -> Result<Cow<'v, str>, TransformError> {
    let s = std::str::from_utf8(v)
        .map_err(|e| r.schema(Location::Byte(pos), format!("not UTF-8: {e}")))?;
    if memchr::memchr(b'&', v).is_none() {
        return Ok(Cow::Borrowed(s));
    }
    unescape(s)
        .map(|c| Cow::Owned(c.into_owned()))
        .map_err(|e| r.schema(Location::Byte(pos), e))
}

pub(super) fn opt_text<'v>(
    v: &Option<&'v [u8]>,
    pos: u64,
    r: &Rejector,
) -> Result<Option<Cow<'v, str>>, TransformError> {
    v.map(|b| text_of(b, pos, r)).transpose()
}

/// Trims ASCII whitespace from both ends of a byte string.
#[inline]
pub(super) fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

/// An optional count attribute (`voteFor`, `precinctsReported`, …): absent
/// or not an integer that fits is `None`.
pub(super) fn int(v: &Option<&[u8]>) -> Option<i32> {
    v.and_then(parse_votes).and_then(|n| i32::try_from(n).ok())
}

/// Primaries put the party after the office: `Governor - REP`.
pub(super) fn primary_party_suffix(text: &str) -> Option<&str> {
    let (_, suffix) = text.rsplit_once(" - ")?;
    let suffix = suffix.trim();
    (suffix.len() <= 4 && suffix.chars().all(|c| c.is_ascii_uppercase())).then_some(suffix)
}

/// A signed decimal count parsed straight from attribute bytes: an optional
/// sign and digits, surrounding spaces allowed, nothing else, no overflow.
#[inline]
pub(super) fn parse_votes(raw: &[u8]) -> Option<i64> {
    // Almost always plain digits: read them in one pass.
    if (1..=18).contains(&raw.len()) {
        let mut n: i64 = 0;
        let mut plain = true;
        for &d in raw {
            let digit = d.wrapping_sub(b'0');
            plain &= digit <= 9;
            n = n.wrapping_mul(10).wrapping_add(i64::from(digit));
        }
        if plain {
            return Some(n);
        }
    }
    let s = trim_bytes(raw);
    let (neg, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(if neg { -n } else { n })
}
