//! What every JSON family shares: recognizing non-JSON payloads and turning
//! serde_json errors into classified, located [`TransformError`]s.

use crate::error::{Location, Rejector, TransformError};
use crate::limits::looks_like_html;

/// Rejects payloads that are clearly not JSON (an HTML error page served
/// under a `.json` name) before parsing, and payloads whose parsed form
/// would not fit [`MAX_JSON_TREE_BYTES`].
pub fn check_json_start(bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
    if looks_like_html(bytes) {
        return Err(r.not_this_format(Location::Byte(0), "an HTML page, not JSON"));
    }
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match b.iter().position(|c| !c.is_ascii_whitespace()) {
        None => Err(r.truncated(Location::Whole, "the payload is blank")),
        Some(i) if b[i] == b'{' || b[i] == b'[' => check_json_tree_size(bytes, r),
        Some(i) => Err(r.not_this_format(
            Location::Byte((bytes.len() - b.len() + i) as u64),
            format!("starts with {:?}, not a JSON object or array", b[i] as char),
        )),
    }
}

/// The most memory a payload's parsed JSON may take, as estimated before
/// parsing. A parsed value costs far more than its text: 64 MB of `0,`
/// became 1.1 GB as a `serde_json::Value`. Real payloads cost 2 to 4 times
/// their size (one value per 15 to 30 bytes), so this admits a 64 MB real
/// payload and refuses the dense ones that would take gigabytes.
pub const MAX_JSON_TREE_BYTES: u64 = 256 * 1024 * 1024;

/// Estimates, in one pass over the text, what the parsed tree would cost in
/// memory (`serde_json::Value`'s sizes: 32 bytes a value, an object's
/// entry and key beyond that, a string's bytes), and refuses the payload
/// past [`MAX_JSON_TREE_BYTES`] before anything is allocated.
pub fn check_json_tree_size(bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
    const VALUE: u64 = 32;
    const OBJECT_ENTRY: u64 = 64;
    let mut estimate: u64 = 0;
    let mut i = 0usize;
    // Whether the next string is an object key (after `{` or `,` in an
    // object): keys cost an entry, not a value.
    let mut in_object: Vec<bool> = Vec::new();
    let mut expect_key = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let len = (i.min(bytes.len()) - start) as u64;
                estimate += if expect_key { OBJECT_ENTRY } else { VALUE } + len;
                expect_key = false;
            }
            b'{' => {
                estimate += VALUE;
                in_object.push(true);
                expect_key = true;
            }
            b'[' => {
                estimate += VALUE;
                in_object.push(false);
            }
            b'}' | b']' => {
                in_object.pop();
            }
            b',' => expect_key = in_object.last() == Some(&true),
            b':' | b' ' | b'\n' | b'\r' | b'\t' => {}
            _ => {
                // A number or literal: one value, however long.
                estimate += VALUE;
                while i + 1 < bytes.len()
                    && !matches!(
                        bytes[i + 1],
                        b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t'
                    )
                {
                    i += 1;
                }
            }
        }
        if estimate > MAX_JSON_TREE_BYTES {
            return Err(r.limit(
                Location::Byte(i as u64),
                format!(
                    "parsed, this JSON would take more than {} MB of memory (a value every \
                     few bytes); no results payload is that dense",
                    MAX_JSON_TREE_BYTES >> 20
                ),
            ));
        }
        i += 1;
    }
    Ok(())
}

/// A serde_json error, classified: end of input is truncation, everything
/// else a schema violation, located by line and column.
pub fn json_error(r: &Rejector, e: serde_json::Error) -> TransformError {
    let location = Location::Line {
        line: e.line() as u64,
        column: Some(e.column() as u64),
    };
    match e.classify() {
        serde_json::error::Category::Eof => r.truncated(location, format!("JSON ends early: {e}")),
        serde_json::error::Category::Syntax => r.schema(location, format!("malformed JSON: {e}")),
        _ => r.schema(location, format!("unexpected JSON shape: {e}")),
    }
}
