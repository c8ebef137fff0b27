#![no_main]
//! Fuzz target for the aggregator's stream decoder of framed `VoteCell`s:
//! the input is a run of records, each prefixed by a 2-byte little-endian
//! length, decoded by one `VoteCellDecoder` (so its section reuse and
//! interning are exercised across records). Any record must decode or give
//! a typed error, never a panic; a decoded cell must re-encode to a record
//! that decodes to the same cell under the same key.

use libfuzzer_sys::fuzz_target;
use votewire_schemas::{codec, schemas};

fuzz_target!(|data: &[u8]| {
    let id = schemas().vote_cell.id;
    let mut decoder = codec::VoteCellDecoder::new(id);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let end = (2 + len).min(rest.len());
        let record = &rest[2..end];
        rest = &rest[end..];
        if let Ok((key, cell)) = decoder.decode(record) {
            let mut again = Vec::new();
            codec::encode_vote_cell(&cell, id, &mut again);
            let (key2, cell2) = codec::VoteCellDecoder::new(id)
                .decode(&again)
                .expect("a re-encoded cell decodes");
            assert_eq!(key, key2);
            assert_eq!(cell, cell2);
        }
    }
});
