//! votewire ingestors: the product's front door.
//!
//! An ingestor process pulls feeds (HTTP pages and APIs, Clarity sites, AP,
//! SFTP drops, HTML pages), turns each accepted payload into normalized vote
//! cells with a pure transformer, and publishes them to Kafka.
//!
//! # Delivery semantics
//!
//! At-least-once, made exactly-once in effect by idempotent keyed upserts:
//! every cell of a payload is produced with an idempotent `acks=all`
//! producer, every delivery report is awaited, and only then is the feed's
//! cursor committed. A crash between produce and commit republishes the same
//! cumulative values, which downstream consumers absorb because a cell is an
//! upsert keyed by its identity, never a delta.
//!
//! This crate currently holds the feed registry ([`feeds`]), the publish
//! protocol ([`publish`]), the capped HTTP
//! fetch ([`http`]), feed state with fenced leases in DynamoDB ([`state`]),
//! SFTP access
//! with verified host keys ([`sftp`]) and the smoke
//! pipeline ([`smoke`]) that the local stack runs to prove the spine works;
//! the feed registry, scheduler, leases and sources arrive with the ingestor
//! issue.

pub mod archive;
pub mod cadence;
pub mod clarity_feed;
pub mod clarity_source;
pub mod conditional;
pub mod feeds;
pub mod health;
pub mod http;
pub mod lease_plan;
pub mod publish;
pub mod sftp;
pub mod sftp_drop;
pub mod smoke;
pub mod state;
