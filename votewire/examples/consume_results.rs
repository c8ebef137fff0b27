//! A votewire results subscriber in Rust (rdkafka + apache-avro), with no
//! votewire crate: what a newsroom service needs to read the results topic.
//!
//! Reads every partition of the compacted results topic from the beginning
//! (the current state of every race first, then every update) and prints
//! one JSON object per result: `{"key", "schema_id", "result"}`.
//!
//! Records use the Confluent wire format: byte 0 is 0 (the magic byte),
//! bytes 1–4 the big-endian schema id, then the Avro binary body. The
//! schema is read from `schemas/avro/ContestResult.avsc`; with a schema
//! registry you would fetch it by that id instead.
//!
//! ```sh
//! cargo run -p votewire --example consume_results -- 127.0.0.1:9092 votewire.results.v1 5
//! ```
//!
//! Tested in CI against the local broker (`votewire/tests/cli/subscribers.rs`,
//! `subscribers_read_results_with_the_documented_examples`).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// One decoded result.
#[derive(Debug)]
pub struct Received {
    pub key: String,
    pub schema_id: u32,
    pub result: serde_json::Value,
}

/// Reads `topic` from the beginning until nothing arrived for `idle`.
pub fn read_results(
    bootstrap: &str,
    topic: &str,
    schema_json: &str,
    idle: Duration,
) -> Result<Vec<Received>, Box<dyn std::error::Error>> {
    let schema = apache_avro::Schema::parse_str(schema_json)?;
    // No consumer group: partitions are assigned by hand and nothing is
    // committed, so every run reads the whole topic.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "results-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        last = Instant::now();
        let Some(value) = m.payload() else {
            continue; // a tombstone: the key's result was withdrawn
        };
        if value.len() < 5 || value[0] != 0 {
            eprintln!("offset {}: not Confluent-framed", m.offset());
            continue;
        }
        let schema_id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
        let datum = apache_avro::from_avro_datum(&schema, &mut &value[5..], None)?;
        out.push(Received {
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            schema_id,
            result: serde_json::Value::try_from(datum)?,
        });
    }
    Ok(out)
}

#[allow(dead_code)] // the tests include this file for `read_results` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "votewire.results.v1".into());
    let idle = Duration::from_secs(args.next().and_then(|s| s.parse().ok()).unwrap_or(5));
    let schema = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/avro/ContestResult.avsc"),
    )?;
    for r in read_results(&bootstrap, &topic, &schema, idle)? {
        println!(
            "{}",
            serde_json::json!({"key": r.key, "schema_id": r.schema_id, "result": r.result})
        );
    }
    Ok(())
}
