//! Defences every family shares: payload size caps, capped decompression, and
//! recognizing payloads that are obviously something else (an HTML error
//! page served under a `.json` or `.xml` name).

use std::io::Read;

use crate::error::{Location, Rejector, TransformError};

/// Largest payload a transformer accepts (after decompression).
pub const MAX_PAYLOAD_BYTES: u64 = 256 * 1024 * 1024;
/// Largest expansion ratio accepted from a compressed payload.
pub const MAX_EXPANSION_RATIO: u64 = 1000;

/// Whether `bytes` is a zip archive (local-file-header magic).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Whether `bytes` starts like an HTML document, skipping a BOM and space.
pub fn looks_like_html(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let head: Vec<u8> = b[start..b.len().min(start + 64)]
        .iter()
        .map(u8::to_ascii_lowercase)
        .collect();
    head.starts_with(b"<!doctype html") || head.starts_with(b"<html") || head.starts_with(b"<head")
}

/// Rejects an empty or oversized payload up front.
pub fn check_size(bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
    if bytes.is_empty() {
        return Err(r.truncated(Location::Whole, "the payload is empty"));
    }
    if bytes.len() as u64 > MAX_PAYLOAD_BYTES {
        return Err(r.limit(
            Location::Whole,
            format!(
                "{} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Extracts the first entry of a zip whose name satisfies `wanted`, refusing
/// to inflate more than [`MAX_PAYLOAD_BYTES`] or [`MAX_EXPANSION_RATIO`] times
/// the archive size, whatever the archive's headers claim.
pub fn unzip_entry(
    bytes: &[u8],
    wanted: impl Fn(&str) -> bool,
    r: &Rejector,
) -> Result<Vec<u8>, TransformError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| r.truncated(Location::Whole, format!("not a readable zip archive: {e}")))?;
    let cap = MAX_PAYLOAD_BYTES.min((bytes.len() as u64).saturating_mul(MAX_EXPANSION_RATIO));
    let index = (0..archive.len())
        .find(|&i| {
            archive
                .name_for_index(i)
                .and_then(Result::ok)
                .is_some_and(|n| wanted(&n))
        })
        .ok_or_else(|| {
            let names: Vec<String> = (0..archive.len())
                .filter_map(|i| {
                    archive
                        .name_for_index(i)
                        .and_then(Result::ok)
                        .map(|n| n.to_string())
                })
                .collect();
            r.not_this_format(
                Location::Whole,
                format!("zip holds no expected entry (has {names:?})"),
            )
        })?;
    let mut entry = archive
        .by_index(index)
        .map_err(|e| r.schema(Location::Whole, format!("zip entry {index}: {e}")))?;
    let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
    if entry.size() > cap {
        return Err(r.limit(
            Location::Path(name),
            format!(
                "entry declares {} bytes; the cap is {cap} ({MAX_EXPANSION_RATIO}x the archive, at most {MAX_PAYLOAD_BYTES})",
                entry.size()
            ),
        ));
    }
    let mut out = Vec::with_capacity(entry.size() as usize);
    (&mut entry)
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| r.truncated(Location::Path(name.clone()), format!("inflating: {e}")))?;
    if out.len() as u64 > cap {
        return Err(r.limit(
            Location::Path(name),
            format!("entry inflates past the {cap}-byte cap (zip bomb?)"),
        ));
    }
    Ok(out)
}

/// `bytes` as UTF-8 (a leading BOM removed), or an error at the first bad byte.
pub fn utf8<'a>(bytes: &'a [u8], r: &Rejector) -> Result<&'a str, TransformError> {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(b).map_err(|e| {
        r.schema(
            Location::Byte((bytes.len() - b.len() + e.valid_up_to()) as u64),
            "invalid UTF-8",
        )
    })
}
