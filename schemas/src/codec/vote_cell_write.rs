//! The hand-written `VoteCell` encoder: the Avro binary spec field by
//! field, in the schema's order.

use super::frame_header;
use crate::types::*;

fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// `["null", T]` unions: branch 0 is null, branch 1 the value.
fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => put_long(out, 0),
        Some(v) => {
            put_long(out, 1);
            put(out, v);
        }
    }
}

/// Appends `cell` as a framed record with `schema_id` to `out`.
pub fn encode_vote_cell(cell: &VoteCell, schema_id: u32, out: &mut Vec<u8>) {
    encode_vote_cell_keyed(cell, &cell.cell_key().to_hex(), schema_id, out);
}

/// [`encode_vote_cell`] for a caller that already holds the cell's key as
/// its 32 hex digits (the publisher computed it to detect the change).
pub fn encode_vote_cell_keyed(cell: &VoteCell, key_hex: &str, schema_id: u32, out: &mut Vec<u8>) {
    frame_header(schema_id, out);
    put_str(out, key_hex);
    let h = &cell.header;
    put_str(out, &h.election_id);
    put_str(out, &h.source_feed_id);
    put_long(out, h.mode.index().into());
    let c = &cell.contest;
    put_str(out, &c.source_id);
    put_str(out, &c.name);
    put_long(out, c.kind.index().into());
    put_opt(out, c.vote_for, |o, v| put_long(o, v.into()));
    put_opt(out, c.primary_party.as_deref(), put_str);
    let u = &cell.unit;
    put_str(out, &u.source_id);
    put_str(out, &u.name);
    put_long(out, u.unit_type.index().into());
    put_opt(out, u.type_raw.as_deref(), put_str);
    put_opt(out, u.parent_source_id.as_deref(), put_str);
    put_opt(out, u.fips.as_deref(), put_str);
    let ch = &cell.choice;
    put_str(out, &ch.source_id);
    put_str(out, &ch.name);
    put_long(out, ch.kind.index().into());
    put_opt(out, ch.party.as_deref(), put_str);
    put_opt(out, ch.incumbent, |o, b| o.push(u8::from(b)));
    put_long(out, cell.vote_type.index().into());
    put_str(out, &cell.vote_type_raw);
    put_long(out, cell.votes);
    put_opt(out, cell.precincts_reporting, |o, v| put_long(o, v.into()));
    put_opt(out, cell.precincts_total, |o, v| put_long(o, v.into()));
    put_opt(out, cell.pct_expected_vote, |o, v| {
        o.extend_from_slice(&v.to_le_bytes())
    });
    put_opt(out, cell.winner, |o, b| o.push(u8::from(b)));
    put_long(out, h.source_seq);
    put_opt(out, h.source_version.as_deref(), put_str);
    put_opt(out, h.as_of, put_long);
    put_opt(out, h.as_of_raw.as_deref(), put_str);
    put_long(out, h.fetched_at);
    let p = &h.provenance;
    put_str(out, &p.feed_id);
    put_str(out, &p.fetch_id);
    put_str(out, &p.source_uri);
    put_str(out, &p.payload_sha256);
    put_opt(out, p.trace_id.as_deref(), put_str);
    put_opt(out, cell.raw_ref.as_deref(), put_str);
    put_opt(out, cell.links.as_deref(), |o, l| {
        put_opt(o, l.contest_id.as_deref(), put_str);
        put_opt(o, l.unit_id.as_deref(), put_str);
        put_opt(o, l.parent_unit_id.as_deref(), put_str);
        put_opt(o, l.choice_id.as_deref(), put_str);
        put_long(o, l.priority.into());
        put_opt(o, l.root_unit_id.as_deref(), put_str);
    });
}
