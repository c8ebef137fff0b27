//! What every JSON family shares: recognizing non-JSON payloads and turning
//! serde_json errors into classified, located [`TransformError`]s.

use crate::error::{Location, Rejector, TransformError};
use crate::limits::looks_like_html;

/// What a family parses a JSON payload into, which sets what its parsed
/// form costs in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonTree {
    /// The family's own structs (unknown fields skipped): about a value's
    /// worth per value and an entry's per field.
    Typed,
    /// `serde_json::Value`: every object is a `BTreeMap`, whose first leaf
    /// node alone is about 640 bytes (11 slots of key and value).
    Value,
}

/// Rejects payloads that are clearly not JSON (an HTML error page served
/// under a `.json` name) before parsing, and payloads whose parsed form
/// (as `tree`) would not fit its budget ([`MAX_JSON_TREE_BYTES`] for the
/// family's own structs, [`MAX_JSON_VALUE_TREE_BYTES`] for a `Value`).
pub fn check_json_start(bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
    check_json_start_as(bytes, JsonTree::Typed, r)
}

/// [`check_json_start`] for a family that parses into `tree`.
pub fn check_json_start_as(
    bytes: &[u8],
    tree: JsonTree,
    r: &Rejector,
) -> Result<(), TransformError> {
    if looks_like_html(bytes) {
        return Err(r.not_this_format(Location::Byte(0), "an HTML page, not JSON"));
    }
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match b.iter().position(|c| !c.is_ascii_whitespace()) {
        None => Err(r.truncated(Location::Whole, "the payload is blank")),
        Some(i) if b[i] == b'{' || b[i] == b'[' => check_json_tree_size(bytes, tree, r),
        Some(i) => Err(r.not_this_format(
            Location::Byte((bytes.len() - b.len() + i) as u64),
            format!("starts with {:?}, not a JSON object or array", b[i] as char),
        )),
    }
}

/// The most memory a payload's parsed JSON may take in a family's own
/// structs, as estimated before parsing (the worst admitted shapes peak
/// under four times the 64 MB payload limit, the payload included). Real
/// payloads estimate at 4 to 10 times their size, so this admits 22 to
/// 56 MB of them and refuses the dense ones that would take gigabytes.
pub const MAX_JSON_TREE_BYTES: u64 = 224 * 1024 * 1024;

/// The same for a `serde_json::Value` tree, which costs 8 to 15 times the
/// text of a real payload (NIST JSON): this admits about 19 MB of it.
pub const MAX_JSON_VALUE_TREE_BYTES: u64 = 224 * 1024 * 1024;

/// Estimates, in one pass over the text, what the parsed tree would cost in
/// memory (per value 32 bytes, a number 8 in the family's own structs,
/// and as much again in an array's spare capacity; per object field an
/// entry and its key; per string its bytes; and for a `Value` tree a
/// B-tree node per 11 fields),
/// and refuses the payload past its budget before anything is allocated.
pub fn check_json_tree_size(
    bytes: &[u8],
    tree: JsonTree,
    r: &Rejector,
) -> Result<(), TransformError> {
    const VALUE: u64 = 32;
    const OBJECT_ENTRY: u64 = 64;
    /// A `BTreeMap<String, Value>` leaf: 11 keys, 11 values, links.
    const MAP_NODE: u64 = 640;
    // A number is 8 bytes in a struct or a vector of the family's own, a
    // whole value in a `Value` tree.
    let (budget, node, number) = match tree {
        JsonTree::Typed => (MAX_JSON_TREE_BYTES, 0, 8),
        JsonTree::Value => (MAX_JSON_VALUE_TREE_BYTES, MAP_NODE, VALUE),
    };
    let mut estimate: u64 = 0;
    let mut i = 0usize;
    // Per open container: whether it is an object, and its fields so far.
    // Whether the next string is an object key (after `{` or `,` in an
    // object): keys cost an entry, not a value.
    let mut open: Vec<(bool, u64)> = Vec::new();
    let mut expect_key = false;
    while i < bytes.len() {
        let c = bytes[i];
        // A value in an array: a vector grows by doubling, so each element
        // may hold a second slot of spare capacity.
        if !matches!(c, b'}' | b']' | b',' | b':' | b' ' | b'\n' | b'\r' | b'\t')
            && open.last().is_some_and(|(object, _)| !object)
        {
            estimate += if matches!(c, b'"' | b'{' | b'[') {
                VALUE
            } else {
                number
            };
        }
        match c {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let len = (i.min(bytes.len()) - start) as u64;
                if expect_key {
                    estimate += OBJECT_ENTRY + len;
                    if let Some((_, fields)) = open.last_mut() {
                        if *fields % 11 == 0 {
                            estimate += node;
                        }
                        *fields += 1;
                    }
                } else {
                    estimate += VALUE + len;
                }
                expect_key = false;
            }
            b'{' => {
                estimate += VALUE;
                open.push((true, 0));
                expect_key = true;
            }
            b'[' => {
                estimate += VALUE;
                open.push((false, 0));
            }
            b'}' | b']' => {
                open.pop();
            }
            b',' => expect_key = open.last().is_some_and(|(object, _)| *object),
            b':' | b' ' | b'\n' | b'\r' | b'\t' => {}
            _ => {
                // A number or literal: one value, however long.
                estimate += number;
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
        if estimate > budget {
            return Err(r.limit(
                Location::Byte(i as u64),
                format!(
                    "parsed, this JSON would take more than {} MB of memory (a value every \
                     few bytes); no results payload is that dense",
                    budget >> 20
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
