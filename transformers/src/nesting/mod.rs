//! How deep a markup payload nests, found in one linear pass before any
//! tree is built.
//!
//! Tree builders pay for depth: roxmltree recurses once per level (30,000
//! nested elements overflow a thread's stack and abort the process), and
//! html5ever's scope checks walk the open-element stack on every tag, so
//! 100,000 nested `<div>`s take minutes. Real result documents nest a dozen
//! levels; a payload past [`MAX_XML_DEPTH`] or [`MAX_HTML_DEPTH`] is refused
//! before either parser sees it. The same pass counts HTML elements: html5ever
//! keeps every one, so a page past [`MAX_HTML_ELEMENTS`] is refused too (XML's
//! equivalent is roxmltree's own node limit).

use crate::error::{Location, Rejector, TransformError};

mod open_elements;
#[cfg(test)]
mod tests;

use open_elements::OpenElements;

/// Deepest XML element nesting accepted (NIST reports nest about 8 levels).
pub const MAX_XML_DEPTH: usize = 256;
/// Deepest HTML nesting accepted, as a browser would build the tree
/// (results pages nest about 30).
pub const MAX_HTML_DEPTH: usize = 512;
/// Most HTML elements accepted in one page. html5ever's tree and the cells
/// read from it hold about 470 bytes per element (64 MB of county rows
/// peaked at 2.1 GB), so this keeps a page's peak near 4× the 64 MB fetch
/// limit; the largest real results page in the fixtures has 16,654.
pub const MAX_HTML_ELEMENTS: usize = 500_000;

/// HTML elements that never have content.
fn is_void(name: &[u8]) -> bool {
    matches!(
        name,
        b"area"
            | b"base"
            | b"br"
            | b"col"
            | b"embed"
            | b"hr"
            | b"img"
            | b"input"
            | b"link"
            | b"meta"
            | b"param"
            | b"source"
            | b"track"
            | b"wbr"
            | b"keygen"
            | b"command"
            | b"basefont"
            | b"bgsound"
            | b"frame"
            | b"image"
            | b"isindex"
            | b"spacer"
    )
}

/// Elements whose content is raw text, skipped to their end tag.
fn is_raw_text(name: &[u8]) -> bool {
    matches!(
        name,
        b"script"
            | b"style"
            | b"textarea"
            | b"title"
            | b"xmp"
            | b"noembed"
            | b"noframes"
            | b"plaintext"
    )
}

/// Which markup rules the scan follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Xml,
    Html,
}

/// Refuses an XML payload nested deeper than [`MAX_XML_DEPTH`].
pub fn check_xml_depth(bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
    check(bytes, Dialect::Xml, MAX_XML_DEPTH, r)
}

/// Refuses an HTML payload nested deeper than [`MAX_HTML_DEPTH`] or with more
/// than [`MAX_HTML_ELEMENTS`] elements.
pub fn check_html_depth(bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
    check(bytes, Dialect::Html, MAX_HTML_DEPTH, r)
}

/// The index just past the first `needle` at or after `from`, or the end.
fn skip_past(bytes: &[u8], from: usize, needle: &[u8]) -> usize {
    memchr::memmem::find(&bytes[from.min(bytes.len())..], needle)
        .map_or(bytes.len(), |i| from + i + needle.len())
}

/// The index just past the `>` that ends the tag starting at `from`,
/// stepping over quoted attribute values, and whether it was `/>`.
///
/// A quote opens a value only where a value starts (after `=` and any
/// space), as both tokenizers read it: a stray `"` in `<div ">` is part
/// of an attribute name, and the tag ends at its `>`.
fn tag_end(bytes: &[u8], from: usize) -> (usize, bool) {
    let mut i = from;
    let mut quote = None;
    let mut value_starts = false;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if value_starts && (c == b'"' || c == b'\'') => quote = Some(c),
            None if c == b'>' => return (i + 1, i > from && bytes[i - 1] == b'/'),
            None => {}
        }
        if quote.is_none() {
            value_starts = c == b'=' || (value_starts && c.is_ascii_whitespace());
        } else {
            value_starts = false;
        }
        i += 1;
    }
    (bytes.len(), false)
}

fn check(bytes: &[u8], dialect: Dialect, max: usize, r: &Rejector) -> Result<(), TransformError> {
    let name_char = |c: u8| !(c.is_ascii_whitespace() || c == b'>' || c == b'/');
    let mut open = OpenElements::default();
    let mut elements = 0usize;
    let mut i = 0usize;
    while let Some(off) = memchr::memchr(b'<', &bytes[i..]) {
        let at = i + off;
        let rest = &bytes[at + 1..];
        if dialect == Dialect::Html
            && !bytes[i..at].iter().all(u8::is_ascii_whitespace)
            && open.text() > max
        {
            return Err(too_deep(i, max, r));
        }
        if dialect == Dialect::Html && (rest.starts_with(b"!-->") || rest.starts_with(b"!--->")) {
            // An empty comment: html5ever ends it right there.
            i = at + 1 + if rest.starts_with(b"!-->") { 4 } else { 5 };
        } else if rest.starts_with(b"!--") {
            i = skip_past(bytes, at + 4, b"-->");
        } else if rest.starts_with(b"![CDATA[") {
            i = skip_past(bytes, at + 9, b"]]>");
        } else if dialect == Dialect::Xml && rest.starts_with(b"?") {
            // A processing instruction ends at `?>`, not at its first `>`:
            // `<?p ></a>?>` hides no end tag from roxmltree.
            i = skip_past(bytes, at + 2, b"?>");
        } else if rest.starts_with(b"?") || rest.starts_with(b"!") {
            i = skip_past(bytes, at + 2, b">");
        } else if rest.starts_with(b"/") {
            match dialect {
                Dialect::Xml => open.depth = open.depth.saturating_sub(1),
                Dialect::Html => {
                    let name_len = rest[1..].iter().take_while(|&&c| name_char(c)).count();
                    open.close(&rest[1..1 + name_len].to_ascii_lowercase());
                }
            }
            i = tag_end(bytes, at + 1).0;
        } else if rest.first().is_some_and(|c| c.is_ascii_alphabetic()) {
            let (end, self_closing) = tag_end(bytes, at + 1);
            i = end;
            // XML needs no names: every start tag deepens until its end tag.
            if dialect == Dialect::Xml {
                if self_closing {
                    continue;
                }
                open.depth += 1;
                if open.depth > max {
                    return Err(too_deep(at, max, r));
                }
                continue;
            }
            elements += 1;
            if elements > MAX_HTML_ELEMENTS {
                return Err(r.limit(
                    Location::Byte(at as u64),
                    format!(
                        "more than {MAX_HTML_ELEMENTS} elements; no results page has that many, \
                         and building its tree would cost memory without bound"
                    ),
                ));
            }
            let name_len = rest.iter().take_while(|&&c| name_char(c)).count();
            let name = rest[..name_len].to_ascii_lowercase();
            if is_raw_text(name.as_slice()) {
                let mut close = b"</".to_vec();
                close.extend_from_slice(&name);
                i = skip_past_ignoring_case(bytes, i, &close);
                continue;
            }
            if is_void(name.as_slice()) {
                // Content all the same: closed formatting opens again.
                if open.void(&name) > max {
                    return Err(too_deep(at, max, r));
                }
                continue;
            }
            // `<div/>` opens a div in HTML: only foreign content honours `/>`.
            let attributes = &rest[name_len..(end - at - 1).min(rest.len())];
            if open.open(name, attributes, self_closing) > max {
                return Err(too_deep(at, max, r));
            }
            continue;
        } else {
            i = at + 1;
        }
    }
    Ok(())
}

fn too_deep(at: usize, max: usize, r: &Rejector) -> TransformError {
    r.limit(
        Location::Byte(at as u64),
        format!(
            "elements nest more than {max} deep here; no results document nests like that, \
             and parsing it would cost time or stack without bound"
        ),
    )
}

/// Like [`skip_past`], matching `needle` without regard to ASCII case.
fn skip_past_ignoring_case(bytes: &[u8], from: usize, needle: &[u8]) -> usize {
    bytes[from.min(bytes.len())..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map_or(bytes.len(), |i| from + i + needle.len())
}
