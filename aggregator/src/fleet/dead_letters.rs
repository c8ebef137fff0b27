//! The fleet's dead letters: a votes record that does not decode, and a
//! contest whose sums overflowed.

use rdkafka::message::Message;
use votewire_schemas::{DeadLetter, ErrorClass};

use super::header_bytes;
use crate::contest_cells::ContestKey;
use crate::rollup::VoteSumOverflow;

/// The dead letter for a votes-topic record that does not decode: the
/// record itself (topic, partition, offset) is the raw payload reference.
pub(super) fn undecodable_cell(
    topic: &str,
    m: &rdkafka::message::BorrowedMessage<'_>,
    e: &dyn std::fmt::Display,
) -> DeadLetter {
    let header =
        |name: &str| header_bytes(m, name).map(|v| String::from_utf8_lossy(v).into_owned());
    let payload = m.payload().unwrap_or_default();
    let place = format!("kafka://{topic}/{}@{}", m.partition(), m.offset());
    DeadLetter {
        feed_id: header("feed_id").unwrap_or_else(|| "unknown".into()),
        election_id: String::new(),
        fetch_id: header("fetch_id").unwrap_or_default(),
        family: "vote-cell".into(),
        source_uri: place.clone(),
        payload_sha256: hex_sha256(payload),
        payload_bytes: payload.len() as i64,
        archive_ref: Some(place),
        error_class: ErrorClass::SchemaViolation,
        error_location: Some(format!("partition {} offset {}", m.partition(), m.offset())),
        error_message: e.to_string(),
        retryable: false,
        fetched_at: votewire_core::unix_ms(),
        trace_id: header("traceparent").and_then(|t| t.split('-').nth(1).map(str::to_string)),
    }
}

/// The dead letter for a contest whose sums overflowed: no one record is
/// at fault, so the reference is the contest on the votes topic, and the
/// key is the same each time it overflows again.
pub(super) fn overflowed_contest(
    topic: &str,
    key: &ContestKey,
    feed_id: &str,
    e: &VoteSumOverflow,
) -> DeadLetter {
    let place = format!(
        "kafka://{topic}?election={}&contest={}",
        key.election_id, key.contest_id
    );
    DeadLetter {
        feed_id: feed_id.to_string(),
        election_id: key.election_id.clone(),
        fetch_id: String::new(),
        family: "rollup".into(),
        source_uri: place.clone(),
        payload_sha256: hex_sha256(place.as_bytes()),
        payload_bytes: 0,
        archive_ref: Some(place),
        error_class: ErrorClass::LimitExceeded,
        error_location: Some(format!("unit {} choice {}", e.unit_id, e.choice_id)),
        error_message: e.to_string(),
        retryable: false,
        fetched_at: votewire_core::unix_ms(),
        trace_id: None,
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
