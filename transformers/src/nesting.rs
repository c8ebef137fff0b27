//! How deep a markup payload nests, found in one linear pass before any
//! tree is built.
//!
//! Tree builders pay for depth: roxmltree recurses once per level (30,000
//! nested elements overflow a thread's stack and abort the process), and
//! html5ever's scope checks walk the open-element stack on every tag, so
//! 100,000 nested `<div>`s take minutes. Real result documents nest a dozen
//! levels; a payload past [`MAX_XML_DEPTH`] or [`MAX_HTML_DEPTH`] is refused
//! before either parser sees it.

use crate::error::{Location, Rejector, TransformError};

/// Deepest XML element nesting accepted (NIST reports nest about 8 levels).
pub const MAX_XML_DEPTH: usize = 256;
/// Deepest HTML nesting accepted, as a browser would build the tree
/// (results pages nest about 30).
pub const MAX_HTML_DEPTH: usize = 512;

/// HTML elements that never have content.
const VOID: &[&[u8]] = &[
    b"area",
    b"base",
    b"br",
    b"col",
    b"embed",
    b"hr",
    b"img",
    b"input",
    b"link",
    b"meta",
    b"param",
    b"source",
    b"track",
    b"wbr",
    b"keygen",
    b"command",
    b"basefont",
    b"bgsound",
    b"frame",
    b"image",
    b"isindex",
    b"spacer",
];

/// Elements whose content is raw text, skipped to their end tag.
const RAW_TEXT: &[&[u8]] = &[
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"noembed",
    b"noframes",
    b"plaintext",
];

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

/// Refuses an HTML payload nested deeper than [`MAX_HTML_DEPTH`].
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
fn tag_end(bytes: &[u8], from: usize) -> (usize, bool) {
    let mut i = from;
    let mut quote = None;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' => return (i + 1, i > from && bytes[i - 1] == b'/'),
            None => {}
        }
        i += 1;
    }
    (bytes.len(), false)
}

fn check(bytes: &[u8], dialect: Dialect, max: usize, r: &Rejector) -> Result<(), TransformError> {
    let name_char = |c: u8| !(c.is_ascii_whitespace() || c == b'>' || c == b'/');
    let mut open = OpenElements::default();
    let mut i = 0usize;
    while let Some(off) = memchr::memchr(b'<', &bytes[i..]) {
        let at = i + off;
        let rest = &bytes[at + 1..];
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
            let name_len = rest.iter().take_while(|&&c| name_char(c)).count();
            let name = rest[..name_len].to_ascii_lowercase();
            if RAW_TEXT.contains(&name.as_slice()) {
                let mut close = b"</".to_vec();
                close.extend_from_slice(&name);
                i = skip_past_ignoring_case(bytes, i, &close);
                continue;
            }
            if self_closing || VOID.contains(&name.as_slice()) {
                continue;
            }
            let depth = open.open(name);
            if depth > max {
                return Err(too_deep(at, max, r));
            }
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

/// The open elements of an HTML page as its tree builder would keep them,
/// near enough: an end tag closes everything opened inside its element (a
/// `</td>` closes the 500 `<font>`s a page left open in the cell), and the
/// elements whose end tag may be omitted close when a sibling starts. For
/// XML only the depth counts.
/// For an element whose start closes an open sibling: (the siblings it
/// closes, the elements past which it does not look).
type ImpliedEnd = (&'static [&'static [u8]], &'static [&'static [u8]]);

#[derive(Default)]
struct OpenElements {
    stack: Vec<Vec<u8>>,
    depth: usize,
}

impl OpenElements {
    /// Opens `name` and returns the depth.
    fn open(&mut self, name: Vec<u8>) -> usize {
        let n = name.as_slice();
        let ends: Option<ImpliedEnd> = match n {
            b"td" | b"th" => Some((&[b"td", b"th"], &[b"table", b"tr"])),
            b"tr" => Some((&[b"tr"], &[b"table", b"thead", b"tbody", b"tfoot"])),
            b"thead" | b"tbody" | b"tfoot" => Some((&[b"thead", b"tbody", b"tfoot"], &[b"table"])),
            b"li" => Some((&[b"li"], &[b"ul", b"ol", b"menu"])),
            b"dt" | b"dd" => Some((&[b"dt", b"dd"], &[b"dl"])),
            b"option" => Some((&[b"option"], &[b"select", b"datalist", b"optgroup"])),
            b"p" | b"div" | b"table" | b"ul" | b"ol" | b"dl" | b"h1" | b"h2" | b"h3" | b"h4"
            | b"h5" | b"h6" | b"form" | b"pre" | b"blockquote" | b"section" | b"article"
            | b"header" | b"footer" | b"nav" | b"hr" => {
                Some((&[b"p"], &[b"td", b"th", b"table", b"div", b"li", b"body"]))
            }
            _ => None,
        };
        if let Some((siblings, boundaries)) = ends {
            for k in (0..self.stack.len()).rev() {
                let e = self.stack[k].as_slice();
                if boundaries.contains(&e) {
                    break;
                }
                if siblings.contains(&e) {
                    self.stack.truncate(k);
                    break;
                }
            }
        }
        self.stack.push(name);
        self.stack.len()
    }

    /// Closes the innermost open `name` and everything inside it; an end
    /// tag with nothing open to close is ignored, as a browser does.
    fn close(&mut self, name: &[u8]) {
        if let Some(k) = self.stack.iter().rposition(|e| e.as_slice() == name) {
            self.stack.truncate(k);
        }
    }
}

/// Like [`skip_past`], matching `needle` without regard to ASCII case.
fn skip_past_ignoring_case(bytes: &[u8], from: usize, needle: &[u8]) -> usize {
    bytes[from.min(bytes.len())..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map_or(bytes.len(), |i| from + i + needle.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Rejector = Rejector {
        family: "test",
        feed_id: "f",
    };

    fn nested(open: &str, close: &str, n: usize) -> Vec<u8> {
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(open);
        }
        for _ in 0..n {
            s.push_str(close);
        }
        s.into_bytes()
    }

    #[test]
    fn deep_xml_is_refused_and_shallow_xml_with_tricky_text_is_not() {
        let err = check_xml_depth(&nested("<a>", "</a>", 30_000), &R).unwrap_err();
        assert_eq!(err.class, crate::ErrorClass::LimitExceeded);
        assert_eq!(err.location, Location::Byte(MAX_XML_DEPTH as u64 * 3));
        assert!(check_xml_depth(&nested("<a>", "</a>", MAX_XML_DEPTH), &R).is_ok());
        // Self-closing elements, comments, CDATA, processing instructions
        // and `>` inside attribute values do not deepen anything.
        let mut flat = b"<?xml version=\"1.0\"?><r x='a>b' y=\"/>\">".to_vec();
        for _ in 0..10_000 {
            flat.extend_from_slice(b"<a/><!-- <b> --><![CDATA[<c>]]><d k=\"<e>\"/>");
        }
        flat.extend_from_slice(b"</r>");
        assert!(check_xml_depth(&flat, &R).is_ok());
    }

    #[test]
    fn end_tags_inside_a_processing_instruction_or_after_an_empty_comment_hide_no_depth() {
        // Inside `<? … ?>` a `</a>` is text to roxmltree, so it closes nothing.
        let pi = nested("<a><?p ></a>?>", "</a>", 30_000);
        assert!(check_xml_depth(&pi, &R).is_err());
        let ok = b"<?xml version=\"1.0\"?><r><?p a > b ?><a/></r>";
        assert!(check_xml_depth(ok, &R).is_ok());
        // `<!-->` and `<!--->` are whole comments to html5ever: what follows
        // them is markup, not more comment.
        for empty in ["<!-->", "<!--->"] {
            let mut page = empty.as_bytes().to_vec();
            page.extend(nested("<div>", "", 100_000));
            assert!(check_html_depth(&page, &R).is_err(), "{empty}");
        }
    }

    #[test]
    fn deep_html_is_refused_and_unclosed_cells_and_void_tags_are_not() {
        assert!(check_html_depth(&nested("<div>", "</div>", 100_000), &R).is_err());
        assert!(check_html_depth(&nested("<table><tr><td>", "", 20_000), &R).is_err());
        assert!(check_html_depth(&nested("<b id=x>", "", 1_000), &R).is_err());
        // A long results table whose cells and rows are never closed, with
        // line breaks and images, and a script holding tags.
        let mut page =
            b"<html><head><script>if (a<b) { x = '<div><div>'; }</script></head><body><table>"
                .to_vec();
        for _ in 0..20_000 {
            page.extend_from_slice(b"<tr><td>Jon Ossoff<br><img src=x><td>1,089<p>note");
        }
        page.extend_from_slice(b"</table></body></html>");
        assert!(check_html_depth(&page, &R).is_ok());
    }
}
