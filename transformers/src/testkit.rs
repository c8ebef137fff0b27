//! Helpers for the families' tests: fixtures in place, a standard context,
//! and a compact view of cells.

use std::collections::BTreeMap;
use std::path::PathBuf;

use votewire_schemas::{FeedMode, VoteCell};

use crate::payload::PayloadContext;

/// Reads `../shared/fixtures/<relative>` (or `$VOTEWIRE_FIXTURES`), failing
/// loudly when the file is missing.
pub fn fixture(relative: &str) -> Vec<u8> {
    let base = std::env::var_os("VOTEWIRE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    let path = base.join(relative);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}): tests read the real files in place from ../shared/fixtures",
            path.display()
        )
    })
}

pub fn ctx(feed_id: &str) -> PayloadContext {
    PayloadContext {
        election_id: "test-election".into(),
        feed_id: feed_id.into(),
        mode: FeedMode::Live,
        source_seq: 7,
        source_version: Some("v-test".into()),
        fetched_at: 1_700_000_000_000,
        fetch_id: "fetch-test".into(),
        source_uri: "file:///fixture".into(),
        payload_sha256: "00".into(),
        trace_id: None,
        content_type: None,
    }
}

/// (contest id, choice id, unit id, raw vote type) -> votes; panics on a
/// duplicate identity, which would be a double count.
pub fn by_identity(cells: &[VoteCell]) -> BTreeMap<(String, String, String, String), i64> {
    let mut m = BTreeMap::new();
    for c in cells {
        let k = (
            c.contest.source_id.to_string(),
            c.choice.source_id.to_string(),
            c.unit.source_id.to_string(),
            c.vote_type_raw.to_string(),
        );
        if let Some(prev) = m.insert(k.clone(), c.votes) {
            panic!("cell {k:?} emitted twice ({prev} and {})", c.votes);
        }
    }
    m
}

/// A deliberately simple, quote-aware CSV splitter (RFC 4180 quotes, no
/// embedded newlines), independent of the csv crate the family uses.
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    out.push(field);
    out
}

/// A transformer's output with its cells materialized, for assertions.
#[derive(Debug)]
pub struct Out {
    pub cells: Vec<VoteCell>,
    pub facts: crate::payload::PayloadFacts,
}

impl From<crate::cells::Transformed> for Out {
    fn from(t: crate::cells::Transformed) -> Out {
        Out {
            cells: t.cells.to_vec(),
            facts: t.facts,
        }
    }
}

/// Wraps a family's entry point so tests see materialized cells.
pub fn materialized(
    f: fn(
        &[u8],
        &PayloadContext,
        &crate::payload::FamilyInputs,
    ) -> Result<crate::cells::Transformed, crate::error::TransformError>,
    bytes: &[u8],
    ctx: &PayloadContext,
    inputs: &crate::payload::FamilyInputs,
) -> Result<Out, crate::error::TransformError> {
    f(bytes, ctx, inputs).map(Out::from)
}
