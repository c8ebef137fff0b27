//! The votes partitions' high watermarks as librdkafka's statistics report
//! them (`statistics.interval.ms`), for the lag figures.
//!
//! Reading a watermark with a ListOffsets request from the batch loop
//! blocked the member: the request waits on the broker connection behind
//! the consumer's long-poll fetch (up to `fetch.wait.max.ms` each), and at
//! 12 partitions every stats interval stalled a batch by 2.4 s on a real
//! three-node cluster (`bench/aggregate.sh`, BENCHMARKS.md). The statistics
//! carry the watermark of every fetched partition (`hi_offset`, from the
//! fetch responses) and cost the loop nothing.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

/// The last high watermark librdkafka reported per partition of one topic.
#[derive(Debug, Default)]
pub(crate) struct HighWatermarks {
    by_partition: Mutex<FxHashMap<i32, i64>>,
}

impl HighWatermarks {
    /// Takes the `hi_offset` of every partition of `topic` from one
    /// statistics JSON document; partitions it does not know yet (-1001)
    /// and librdkafka's internal partition (-1) are left out. A document
    /// that does not parse changes nothing.
    pub(crate) fn record(&self, statistics: &[u8], topic: &str) {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(statistics) else {
            return;
        };
        let Some(partitions) = doc["topics"][topic]["partitions"].as_object() else {
            return;
        };
        let mut by_partition = self.by_partition.lock().unwrap_or_else(|e| e.into_inner());
        for (id, p) in partitions {
            let (Ok(id), Some(hw)) = (id.parse::<i32>(), p["hi_offset"].as_i64()) else {
                continue;
            };
            if id >= 0 && hw >= 0 {
                by_partition.insert(id, hw);
            }
        }
    }

    /// The last watermark reported for `partition`, if any.
    pub(crate) fn get(&self, partition: i32) -> Option<i64> {
        self.by_partition
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statistics document shaped as librdkafka's STATISTICS.md
    /// describes it (topics -> partitions keyed by id, `hi_offset`).
    const STATS: &str = r#"{
      "name": "rdkafka#consumer-1", "type": "consumer",
      "topics": {
        "votewire.votes.v1": { "topic": "votewire.votes.v1", "partitions": {
          "0": { "partition": 0, "hi_offset": 1200, "consumer_lag": 3 },
          "1": { "partition": 1, "hi_offset": -1001, "consumer_lag": -1 },
          "-1": { "partition": -1, "hi_offset": -1001 }
        } },
        "other": { "topic": "other", "partitions": {
          "1": { "partition": 1, "hi_offset": 7 }
        } }
      }
    }"#;

    #[test]
    fn known_watermarks_of_the_topic_are_kept_and_unknown_ones_left_out() {
        let hw = HighWatermarks::default();
        hw.record(STATS.as_bytes(), "votewire.votes.v1");
        assert_eq!(hw.get(0), Some(1200));
        assert_eq!(hw.get(1), None, "-1001 is librdkafka's 'not known yet'");
        assert_eq!(hw.get(-1), None);
        // A later document updates; a broken one changes nothing.
        hw.record(
            br#"{"topics":{"votewire.votes.v1":{"partitions":{"0":{"hi_offset":1300}}}}}"#,
            "votewire.votes.v1",
        );
        hw.record(b"{\"topics\": [", "votewire.votes.v1");
        assert_eq!(hw.get(0), Some(1300));
    }
}
