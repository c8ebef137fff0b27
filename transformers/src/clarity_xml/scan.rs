//! A strict, single-pass XML tokenizer for `detail.xml`, built for the one
//! shape Clarity publishes: elements with quoted attributes, whitespace
//! between tags, and text only in `<Timestamp>` and `<Region>`.
//!
//! It finds tags with `memchr` and hands out slices of the input; nothing is
//! copied or decoded here. It still refuses what a general parser refuses
//! where it matters for safety and truncation:
//! - a `<!DOCTYPE` (so no entity declarations and no external entities);
//! - end tags that do not match the open element, content after the root,
//!   a second root;
//! - a document that ends inside a tag, a comment, or an open element
//!   (reported as truncation);
//! - nesting deeper than [`MAX_DEPTH`].
//!
//! Entity references are resolved by [`unescape`] only where text is used:
//! the five predefined entities and character references, nothing else.

use std::borrow::Cow;

/// Deeper nesting than any real file (Clarity nests five levels) is refused.
pub(super) const MAX_DEPTH: usize = 64;

/// One piece of the document. Slices borrow the input.
#[derive(Debug, PartialEq)]
pub(super) enum Token<'a> {
    /// `<name …>` or `<name …/>`; its attributes are in
    /// [`Scanner::attributes`] until the next token.
    Start {
        name: &'a [u8],
        empty: bool,
    },
    End {
        name: &'a [u8],
    },
    /// Character data between tags, raw (entity references unresolved).
    Text(&'a [u8]),
    /// The content of a `<![CDATA[...]]>` section, taken literally.
    CData(&'a [u8]),
    Eof,
}

/// Why the document is not well-formed, and where (byte offset).
#[derive(Debug, PartialEq)]
pub(super) enum ScanError {
    /// The input ends before the document does.
    Truncated {
        at: u64,
        what: String,
    },
    /// A `<!DOCTYPE`: refused outright.
    Doctype {
        at: u64,
    },
    Malformed {
        at: u64,
        what: String,
    },
}

pub(super) struct Scanner<'a> {
    xml: &'a [u8],
    i: usize,
    open: Vec<&'a [u8]>,
    /// The attributes of the last start tag, as (name, raw value).
    attributes: Vec<(&'a [u8], &'a [u8])>,
    root_closed: bool,
    seen_root: bool,
}

/// Bytes that may appear in a tag name: anything but whitespace and markup.
const NAME_BYTE: [bool; 256] = {
    let mut t = [true; 256];
    let stops = *b" \t\r\n>/<\"'=";
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = false;
        i += 1;
    }
    t
};

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The index of the first non-whitespace byte at or after `i`. Indentation
/// is runs of spaces, so eight spaces are tested at a time first.
fn skip_ws(xml: &[u8], mut i: usize) -> usize {
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    loop {
        match xml.get(i) {
            Some(&b) if is_ws(b) => i += 1,
            _ => return i,
        }
        while word(xml, i) == Some(SPACES) {
            i += 8;
        }
    }
}

// Eight bytes at a time ("SWAR"): tags are short runs of letters, and a
// memchr call costs more than it saves on a 5-byte value. The lowest flagged
// byte of these masks is exact (borrows only ever flag bytes above a true
// match), which is all the callers use.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Eight bytes at `i`, the first in the lowest byte.
fn word(xml: &[u8], i: usize) -> Option<u64> {
    let chunk = xml.get(i..i + 8)?;
    Some(u64::from_le_bytes(chunk.try_into().expect("eight bytes")))
}

/// Flags (bit 7) the bytes of `x` below `n` (`n` at most 128).
fn bytes_below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS
}

/// Flags (bit 7) the bytes of `x` equal to `b`.
fn bytes_equal(x: u64, b: u8) -> u64 {
    bytes_below(x ^ (ONES * u64::from(b)), 1)
}

/// Where an attribute value that starts at `i` ends: its closing `quote`, or
/// a `<` (which the caller refuses).
fn value_end(xml: &[u8], i: usize, quote: u8) -> Option<usize> {
    let mut j = i;
    while let Some(x) = word(xml, j) {
        let hit = bytes_equal(x, quote) | bytes_equal(x, b'<');
        if hit != 0 {
            return Some(j + (hit.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    xml[j..]
        .iter()
        .position(|&c| c == quote || c == b'<')
        .map(|off| j + off)
}

/// The index just past a tag or attribute name that starts at `i`. Every
/// byte that ends a name is below `A` (0x41), so runs of letters are
/// skipped eight at a time.
fn name_end(xml: &[u8], mut i: usize) -> usize {
    loop {
        while let Some(x) = word(xml, i) {
            let hit = bytes_below(x, b'A');
            if hit != 0 {
                i += (hit.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match xml.get(i) {
            Some(&b) if NAME_BYTE[usize::from(b)] => i += 1,
            _ => return i,
        }
    }
}

impl<'a> Scanner<'a> {
    pub(super) fn new(xml: &'a [u8]) -> Scanner<'a> {
        let i = if xml.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        Scanner {
            xml,
            i,
            open: Vec::with_capacity(8),
            attributes: Vec::with_capacity(16),
            root_closed: false,
            seen_root: false,
        }
    }

    /// The attributes of the start tag just returned, as (name, raw value):
    /// values are slices of the input, entity references unresolved.
    pub(super) fn attributes(&self) -> &[(&'a [u8], &'a [u8])] {
        &self.attributes
    }

    /// Where the next token starts.
    pub(super) fn position(&self) -> u64 {
        self.i as u64
    }

    fn truncated(&self, at: usize, what: impl Into<String>) -> ScanError {
        ScanError::Truncated {
            at: at as u64,
            what: what.into(),
        }
    }

    fn malformed(&self, at: usize, what: impl Into<String>) -> ScanError {
        ScanError::Malformed {
            at: at as u64,
            what: what.into(),
        }
    }

    /// Finds `needle` at or after `from`; the index just past it.
    fn past(&self, from: usize, needle: &[u8], inside: &str) -> Result<usize, ScanError> {
        memchr::memmem::find(&self.xml[from..], needle)
            .map(|off| from + off + needle.len())
            .ok_or_else(|| self.truncated(self.xml.len(), format!("document ends inside {inside}")))
    }

    pub(super) fn next_token(&mut self) -> Result<Token<'a>, ScanError> {
        // Declarations and comments produce no token: loop past them (a
        // loop, not recursion, so a million comments cannot overflow).
        loop {
            let xml = self.xml;
            let start = self.i;
            if start >= xml.len() {
                return match self.open.last() {
                    Some(name) => Err(self.truncated(
                        xml.len(),
                        format!("document ends before </{}>", String::from_utf8_lossy(name)),
                    )),
                    None if !self.seen_root => Err(self.truncated(xml.len(), "no root element")),
                    None => Ok(Token::Eof),
                };
            }
            if xml[start] != b'<' {
                // Indentation between tags is skipped here, byte by byte
                // (runs are short); only real text becomes a token.
                let j = skip_ws(xml, start);
                if j == xml.len() || xml[j] == b'<' {
                    self.i = j;
                    continue;
                }
                let end = memchr::memchr(b'<', &xml[j..]).map_or(xml.len(), |off| j + off);
                self.i = end;
                let text = &xml[start..end];
                if self.open.is_empty() && !text.iter().all(|&b| is_ws(b)) {
                    return Err(self.malformed(start, "text outside the root element"));
                }
                return Ok(Token::Text(text));
            }
            let rest = &xml[start..];
            match rest.get(1) {
                None => return Err(self.truncated(start, "document ends inside a tag")),
                Some(b'/') => return self.end_tag(start),
                Some(b'?') => self.i = self.past(start + 2, b"?>", "a processing instruction")?,
                Some(b'!') if rest.starts_with(b"<!--") => {
                    self.i = self.past(start + 4, b"-->", "a comment")?;
                }
                Some(b'!') => return self.bang(start),
                Some(_) => return self.start_tag(start),
            }
        }
    }

    /// `<![CDATA[` or a `<!DOCTYPE` (refused); comments are handled by the caller.
    fn bang(&mut self, start: usize) -> Result<Token<'a>, ScanError> {
        let rest = &self.xml[start..];
        if rest.starts_with(b"<![CDATA[") {
            if self.open.is_empty() {
                return Err(self.malformed(start, "CDATA outside the root element"));
            }
            let from = start + 9;
            let end = self.past(from, b"]]>", "a CDATA section")?;
            self.i = end;
            return Ok(Token::CData(&self.xml[from..end - 3]));
        }
        let probe = &rest[..rest.len().min(9)];
        let cut_short = |full: &[u8]| probe.len() < full.len() && full.starts_with(probe);
        if cut_short(b"<!DOCTYPE") || cut_short(b"<![CDATA[") || cut_short(b"<!--") {
            return Err(self.truncated(self.xml.len(), "document ends inside markup"));
        }
        if probe.eq_ignore_ascii_case(b"<!DOCTYPE") {
            return Err(ScanError::Doctype { at: start as u64 });
        }
        Err(self.malformed(start, "unknown markup after <!"))
    }

    fn end_tag(&mut self, start: usize) -> Result<Token<'a>, ScanError> {
        let from = start + 2;
        let Some(off) = memchr::memchr(b'>', &self.xml[from..]) else {
            return Err(self.truncated(self.xml.len(), "document ends inside an end tag"));
        };
        self.i = from + off + 1;
        let mut name = &self.xml[from..from + off];
        while let [rest @ .., last] = name
            && is_ws(*last)
        {
            name = rest;
        }
        match self.open.pop() {
            Some(open) if open == name => {
                if self.open.is_empty() {
                    self.root_closed = true;
                }
                Ok(Token::End { name })
            }
            Some(open) => Err(self.malformed(
                start,
                format!(
                    "</{}> closes <{}>",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(open)
                ),
            )),
            None => Err(self.malformed(
                start,
                format!("</{}> with no open element", String::from_utf8_lossy(name)),
            )),
        }
    }

    /// A start tag, its attributes read in the same pass: the closing `>`
    /// is found by walking `name="value"` pairs, so a `>` inside a value
    /// never ends the tag and no byte is looked at twice.
    fn start_tag(&mut self, start: usize) -> Result<Token<'a>, ScanError> {
        let xml = self.xml;
        let from = start + 1;
        let j = name_end(xml, from);
        let name = &xml[from..j];
        if j == xml.len() {
            return Err(self.truncated(xml.len(), "document ends inside a tag"));
        }
        if name.is_empty() {
            return Err(self.malformed(start, "a tag without a name"));
        }
        self.attributes.clear();
        let (end, empty) = match self.name_and_votes(j) {
            Some(hit) => hit,
            None => self.general_attributes(j)?,
        };
        self.i = end;
        if self.root_closed {
            return Err(self.malformed(start, "an element after the root element"));
        }
        self.seen_root = true;
        if empty {
            if self.open.is_empty() {
                self.root_closed = true;
            }
        } else {
            if self.open.len() >= MAX_DEPTH {
                return Err(self.malformed(start, format!("nesting deeper than {MAX_DEPTH}")));
            }
            self.open.push(name);
        }
        Ok(Token::Start { name, empty })
    }

    /// The exact shape of every leaf and vote type Clarity writes,
    /// ` name="…" votes="…"` then `>`, `/>` or ` />`, matched without the
    /// general walk. Returns where the tag ends and whether it is empty, or
    /// `None` (nothing recorded) for any other shape.
    fn name_and_votes(&mut self, j: usize) -> Option<(usize, bool)> {
        let xml = self.xml;
        if !xml[j..].starts_with(b" name=\"") {
            return None;
        }
        let name_at = j + 7;
        let name_end = value_end(xml, name_at, b'"').filter(|&e| xml[e] == b'"')?;
        if !xml[name_end + 1..].starts_with(b" votes=\"") {
            return None;
        }
        let votes_at = name_end + 9;
        let votes_end = value_end(xml, votes_at, b'"').filter(|&e| xml[e] == b'"')?;
        let tail = &xml[votes_end + 1..];
        let (end, empty) = if tail.starts_with(b" />") {
            (votes_end + 4, true)
        } else if tail.starts_with(b"/>") {
            (votes_end + 3, true)
        } else if tail.starts_with(b">") {
            (votes_end + 2, false)
        } else {
            return None;
        };
        self.attributes.push((b"name", &xml[name_at..name_end]));
        self.attributes.push((b"votes", &xml[votes_at..votes_end]));
        Some((end, empty))
    }

    /// Attributes walked one `name="value"` pair at a time from `j`, just
    /// after the tag name. Returns where the tag ends and whether it is
    /// empty.
    fn general_attributes(&mut self, mut j: usize) -> Result<(usize, bool), ScanError> {
        let xml = self.xml;
        let len = xml.len();
        let ends_inside = |s: &Self| s.truncated(len, "document ends inside a tag");
        let name_end = |j: usize| name_end(xml, j);
        let skip_ws = |j: usize| skip_ws(xml, j);
        let empty = loop {
            let gap = j;
            j = skip_ws(j);
            match xml.get(j) {
                None => return Err(ends_inside(self)),
                Some(b'>') => {
                    j += 1;
                    break false;
                }
                Some(b'/') => match xml.get(j + 1) {
                    Some(b'>') => {
                        j += 2;
                        break true;
                    }
                    None => return Err(ends_inside(self)),
                    Some(_) => return Err(self.malformed(j, "'/' not followed by '>' in a tag")),
                },
                Some(_) if j == gap => {
                    return Err(self.malformed(j, "no whitespace before an attribute"));
                }
                Some(_) => {}
            }
            let key_start = j;
            j = name_end(j);
            let key = &xml[key_start..j];
            if key.is_empty() {
                return Err(self.malformed(j, "an attribute without a name"));
            }
            j = skip_ws(j);
            match xml.get(j) {
                Some(b'=') => j = skip_ws(j + 1),
                None => return Err(ends_inside(self)),
                Some(_) => return Err(self.malformed(j, "an attribute without '='")),
            }
            let quote = match xml.get(j) {
                Some(q @ (b'"' | b'\'')) => *q,
                None => return Err(ends_inside(self)),
                Some(_) => return Err(self.malformed(j, "an unquoted attribute value")),
            };
            let value_start = j + 1;
            let Some(value_end) = value_end(xml, value_start, quote) else {
                return Err(self.truncated(len, "document ends inside an attribute value"));
            };
            if xml[value_end] == b'<' {
                return Err(self.malformed(value_end, "'<' inside an attribute value"));
            }
            self.attributes.push((key, &xml[value_start..value_end]));
            j = value_end + 1;
        };
        Ok((j, empty))
    }
}

/// Resolves the five predefined entities and character references; anything
/// else (a named entity nobody declared) is an error naming it.
pub(super) fn unescape(s: &str) -> Result<Cow<'_, str>, String> {
    let Some(first) = s.find('&') else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut rest = &s[first..];
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .filter(|&n| n <= 10)
            .ok_or_else(|| "an '&' that starts no entity reference".to_string())?;
        let entity = &after[..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => char_ref(entity).ok_or_else(|| {
                format!("undeclared entity &{entity}; (entities are not expanded)")
            })?,
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// `#65` or `#x41`.
fn char_ref(entity: &str) -> Option<char> {
    let code = entity.strip_prefix('#')?;
    let n = match code.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => code.parse().ok()?,
    };
    char::from_u32(n).filter(|&c| c != '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(xml: &[u8]) -> Result<Vec<Token<'_>>, ScanError> {
        let mut s = Scanner::new(xml);
        let mut out = Vec::new();
        loop {
            match s.next_token()? {
                Token::Eof => return Ok(out),
                t => out.push(t),
            }
        }
    }

    #[test]
    fn a_tag_ends_at_the_first_gt_outside_quotes() {
        let xml = br#"<a x="1>2" y = '/>'/>"#;
        let mut s = Scanner::new(xml);
        assert_eq!(
            s.next_token().unwrap(),
            Token::Start {
                name: b"a",
                empty: true
            }
        );
        let want: &[(&[u8], &[u8])] = &[(b"x", b"1>2"), (b"y", b"/>")];
        assert_eq!(s.attributes(), want);
        assert_eq!(s.next_token().unwrap(), Token::Eof);
    }

    #[test]
    fn malformed_attributes_are_refused() {
        for bad in [
            &br#"<a x="1"y="2"/>"#[..],
            br#"<a x=1/>"#,
            br#"<a x/>"#,
            br#"<a x="<"/>"#,
            br#"<a / >"#,
            br#"<a ="1"/>"#,
        ] {
            assert!(
                matches!(tokens(bad), Err(ScanError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn declarations_comments_and_cdata_are_handled() {
        let t = tokens(b"\xEF\xBB\xBF<?xml version=\"1.0\"?><!-- c --><r><![CDATA[<x>]]></r>\n")
            .unwrap();
        assert_eq!(t[1], Token::CData(b"<x>"));
        assert_eq!(t.len(), 3, "{t:?}");
    }

    #[test]
    fn malformed_documents_are_refused_with_their_offset() {
        assert!(matches!(
            tokens(b"<r><a></b></r>"),
            Err(ScanError::Malformed { at: 6, .. })
        ));
        assert!(matches!(
            tokens(b"<r/><r/>"),
            Err(ScanError::Malformed { .. })
        ));
        assert!(matches!(tokens(b"x<r/>"), Err(ScanError::Malformed { .. })));
        assert!(matches!(
            tokens(b"<!DOCTYPE r><r/>"),
            Err(ScanError::Doctype { at: 0 })
        ));
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            tokens(deep.as_bytes()),
            Err(ScanError::Malformed { .. })
        ));
    }

    #[test]
    fn every_cut_of_a_document_is_truncated_or_refused() {
        let doc = br#"<?xml version="1.0"?><r a="1"><!--c--><b x='2'>t&amp;</b><c/></r>"#;
        for cut in 0..doc.len() {
            let got = tokens(&doc[..cut]);
            assert!(
                matches!(got, Err(ScanError::Truncated { .. })),
                "cut {cut}: {got:?}"
            );
        }
        assert!(tokens(doc).is_ok());
    }

    #[test]
    fn only_predefined_entities_and_character_references_resolve() {
        assert_eq!(unescape("a &amp; b &#65;&#x42;").unwrap(), "a & b AB");
        assert!(unescape("&xxe;").unwrap_err().contains("xxe"));
        assert!(unescape("a & b").is_err());
        assert!(unescape("&#0;").is_err());
    }
}
