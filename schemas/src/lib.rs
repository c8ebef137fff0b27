//! votewire's canonical data model.
//!
//! The hand-written `.avsc` files in `schemas/avro/` are the source of truth
//! for every record votewire publishes:
//!
//! | schema | topic | what |
//! |---|---|---|
//! | `VoteCell` | `votewire.votes.v1` | one cumulative count cell, an upsert |
//! | `SnapshotManifest` | `votewire.snapshots.v1` | one per accepted or rejected payload |
//! | `ContestResult` | `votewire.results.v1` | the aggregator's published result |
//! | `ContestResult` | `votewire.results-test.v1` | the same, of publisher test data only |
//! | `FeedStatus` | `votewire.feed-status.v1` | a feed health transition |
//! | `DeadLetter` | `votewire.dlq.v1` | a rejected payload |
//!
//! # Delivery semantics
//!
//! Every record is written in the Confluent wire format ([`codec`]). A
//! `VoteCell` is a cumulative upsert: consumers keep the one with the highest
//! `source_seq` per `cell_key` and never sum versions, which makes replaying
//! or duplicating a record harmless. The schemas evolve only in ways that are
//! both BACKWARD and FORWARD compatible with the released versions
//! ([`compat`]), so producers and consumers can be upgraded in either order.
//!
//! This crate performs no I/O and knows nothing about Kafka.

#![warn(missing_docs)]

pub mod codec;
pub mod compat;
pub mod nist;
pub mod registry;
pub mod types;
pub mod vote_type;

pub use registry::{RegisteredSchema, SchemaSet, schemas};
pub use types::*;
