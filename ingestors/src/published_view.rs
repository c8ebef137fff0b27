//! What the votes topic last said for one feed: the latest cell per key
//! (highest `source_seq`, then the later offset), read from the beginning of
//! every partition. `votewire feeds test` diffs a dry-run fetch against it.
//!
//! The read stops when every partition has been quiet for `idle`: tansu
//! under-reports high watermarks, so "caught up" is never judged from them.
//! Records of other feeds are skipped by their `feed_id` header before any
//! decoding.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Offset, TopicPartitionList};
use votewire_core::config::KafkaConfig;
use votewire_core::kafka::{consumer_config, topic_partitions};
use votewire_schemas::{CellKey, VoteCell, codec, schemas};

/// Reading the topic failed. Retryable: the broker may be back.
#[derive(Debug, thiserror::Error)]
#[error("reading {topic} for feed {feed_id}: {what}")]
pub struct ViewError {
    pub topic: String,
    pub feed_id: String,
    pub what: String,
}

/// The last published cell of every key of one feed.
#[derive(Debug, Default)]
pub struct PublishedView {
    pub cells: HashMap<CellKey, VoteCell>,
    /// Records read (all feeds) and kept (this feed).
    pub records_read: u64,
}

/// Reads `topic` from the beginning and keeps `feed_id`'s latest cells.
/// Gives up after `deadline` with what it has.
pub fn read_published(
    kafka: &KafkaConfig,
    topic: &str,
    feed_id: &str,
    idle: Duration,
    deadline: Duration,
) -> Result<PublishedView, ViewError> {
    let err = |what: String| ViewError {
        topic: topic.to_string(),
        feed_id: feed_id.to_string(),
        what,
    };
    let group = format!("votewire-feeds-test-{}", uuid::Uuid::now_v7().simple());
    let consumer: BaseConsumer<votewire_core::kafka::KafkaClientContext> =
        consumer_config(kafka, "feeds-test", &group)
            .create_with_context(votewire_core::kafka::KafkaClientContext::default())
            .map_err(|e| err(format!("creating a consumer: {e}")))?;
    let partitions = topic_partitions(kafka, topic)
        .map_err(|e| err(format!("reading metadata: {e}")))?
        .ok_or_else(|| err("the topic does not exist".into()))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| err(e.to_string()))?;
    }
    consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
    // One decoder for the whole read: it shares the parts records repeat.
    let mut decoder = codec::VoteCellDecoder::new(schemas().vote_cell.id);
    let mut view = PublishedView::default();
    let mut order: HashMap<CellKey, (i64, i32, i64)> = HashMap::new();
    let started = Instant::now();
    let mut last_message = Instant::now();
    while last_message.elapsed() < idle && started.elapsed() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.map_err(|e| err(e.to_string()))?;
        last_message = Instant::now();
        view.records_read += 1;
        let mine = m.headers().is_some_and(|h| {
            h.iter()
                .any(|h| h.key == "feed_id" && h.value == Some(feed_id.as_bytes()))
        });
        let Some(payload) = m.payload().filter(|_| mine) else {
            continue;
        };
        let Ok((key, cell)) = decoder.decode(payload) else {
            continue;
        };
        let rank = (cell.header.source_seq, m.partition(), m.offset());
        if order.get(&key).is_none_or(|r| *r <= rank) {
            order.insert(key, rank);
            view.cells.insert(key, cell);
        }
    }
    Ok(view)
}
