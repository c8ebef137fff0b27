//! What the votes topic last said for one feed: the latest cell per key
//! (highest `source_seq`, then the later offset), read from the beginning of
//! every partition. `votewire feeds test` diffs a dry-run fetch against it.
//!
//! The read stops when every partition has been read to the high
//! watermark it had when the read began ([`ReadEnd`]). Records of other
//! feeds are skipped by their `feed_id` header before any decoding.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Offset, TopicPartitionList};
use votewire_core::config::KafkaConfig;
use votewire_core::kafka::{ReadEnd, consumer_config, topic_partitions};
use votewire_schemas::{CellKey, VoteCell, codec, schemas};

/// Reading the topic failed. Retryable: the broker may be back.
#[derive(Debug, thiserror::Error)]
#[error("reading {topic} for feed {feed_id}: {what}")]
pub struct ViewError {
    /// The topic read.
    pub topic: String,
    /// The feed whose cells were being read.
    pub feed_id: String,
    /// What failed (creating the consumer, metadata, a read, partitions not read within the
    /// deadline).
    pub what: String,
}

/// The last published cell of every key of one feed.
#[derive(Debug, Default)]
pub struct PublishedView {
    /// The latest cell of each of the feed's keys: highest `source_seq`, then the later
    /// record.
    pub cells: HashMap<CellKey, VoteCell>,
    /// Records read (all feeds) and kept (this feed).
    pub records_read: u64,
}

/// Reads `topic` from the beginning to its end and keeps `feed_id`'s latest
/// cells. Fails after `deadline` rather than return a partial view.
pub fn read_published(
    kafka: &KafkaConfig,
    topic: &str,
    feed_id: &str,
    deadline: Duration,
) -> Result<PublishedView, ViewError> {
    let err = |what: String| ViewError {
        topic: topic.to_string(),
        feed_id: feed_id.to_string(),
        what,
    };
    // Assigned, never subscribed: the group id is never used to commit.
    let group = "votewire-feeds-test";
    let consumer: BaseConsumer<votewire_core::kafka::KafkaClientContext> =
        consumer_config(kafka, "feeds-test", group)
            .create_with_context(votewire_core::kafka::KafkaClientContext::default())
            .map_err(|e| err(format!("creating a consumer: {e}")))?;
    let partitions = topic_partitions(kafka, topic)
        .map_err(|e| err(format!("reading metadata: {e}")))?
        .ok_or_else(|| err("the topic does not exist".into()))?;
    let partitions: Vec<i32> = (0..partitions as i32).collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(|e| err(e.to_string()))?;
    }
    consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
    let mut end = ReadEnd::of(&consumer, topic, &partitions, Duration::from_secs(10))
        .map_err(|e| err(format!("reading the high watermarks: {e}")))?;
    // One decoder for the whole read: it shares the parts records repeat.
    let mut decoder = codec::VoteCellDecoder::new(schemas().vote_cell.id);
    let mut view = PublishedView::default();
    let mut order: HashMap<CellKey, (i64, i32, i64)> = HashMap::new();
    let started = Instant::now();
    while !end.reached() {
        if started.elapsed() >= deadline {
            return Err(err(format!(
                "{} partition(s) not read to their end within {deadline:?}",
                end.partitions_left()
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            end.positions(&consumer);
            continue;
        };
        let m = m.map_err(|e| err(e.to_string()))?;
        end.consumed(m.partition(), m.offset());
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
