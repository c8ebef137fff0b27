//! votewire's canonical data model.
//!
//! The hand-written `.avsc` files in this crate's folder are the source of
//! truth for every record votewire publishes. This crate embeds them, parses
//! each once, and provides the Rust types and the Confluent wire-format codec.
//! It performs no I/O and knows nothing about Kafka.
