//! What every JSON family shares: recognizing non-JSON payloads and turning
//! serde_json errors into classified, located [`TransformError`]s.

use crate::error::{Location, Rejector, TransformError};
use crate::limits::looks_like_html;

/// Rejects payloads that are clearly not JSON (an HTML error page served
/// under a `.json` name) before parsing.
pub fn check_json_start(bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
    if looks_like_html(bytes) {
        return Err(r.not_this_format(Location::Byte(0), "an HTML page, not JSON"));
    }
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match b.iter().position(|c| !c.is_ascii_whitespace()) {
        None => Err(r.truncated(Location::Whole, "the payload is blank")),
        Some(i) if b[i] == b'{' || b[i] == b'[' => Ok(()),
        Some(i) => Err(r.not_this_format(
            Location::Byte((bytes.len() - b.len() + i) as u64),
            format!("starts with {:?}, not a JSON object or array", b[i] as char),
        )),
    }
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
