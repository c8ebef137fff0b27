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
//! # Parts
//!
//! * [`feeds`]: the feed registry (TOML) and `feeds validate`.
//! * [`http`], [`conditional`]: capped fetches with timeouts, conditional
//!   GET, sha256 "unchanged", Retry-After and AP quota waits, full-jitter
//!   backoff and the per-host gate.
//! * [`cadence`]: one fetch in flight per feed, scheduled from completion.
//! * [`sources`]: one module per source kind (HTTP, Clarity, AP, SFTP,
//!   HTML), each owning its config, its checks, its resolved source and
//!   its poller (the cursor it decodes and encodes), listed once in
//!   [`sources::SOURCES`]; SFTP with verified host keys and the drop
//!   directory watcher (stable, old enough, identity by sha256).
//! * [`feed_spec`]: a registry entry resolved for polling.
//!   [`feed_tools`]: what every feed of an ingestor shares.
//! * [`live_feed`]: the whole poll step of one feed, whatever its source:
//!   fetch, transform, publish, fenced cursor commit, health.
//! * [`supervisor`]: one instance: heartbeats, lease rounds, a feed loop
//!   per leased feed, registry hot reload (`votewire ingest` runs it).
//! * [`publish`]: the commit protocol's Kafka half (changed cells, manifests,
//!   dead letters, feed status). [`published_view`]: a feed's last
//!   published cells, read back from the votes topic (`feeds test`).
//! * [`state`], [`lease_plan`]: feed state, fenced leases, heartbeats and
//!   balanced lease rounds with handovers, behind one trait, in DynamoDB
//!   (a fleet) or one embedded redb file (one process).
//! * [`health`]: the feed health machine. [`archive`]: raw payloads by
//!   sha256, in local files or S3.
//! * [`smoke`]: the spine's smoke pipeline.

#![warn(missing_docs)]

pub mod archive;
pub mod cadence;
pub mod conditional;
pub mod dry_run;
pub mod durations;
pub mod feed_metrics;
pub mod feed_spec;
pub mod feed_tools;
pub mod feeds;
pub mod health;
pub mod http;
pub mod lease_plan;
pub mod live_feed;
pub mod publish;
pub mod published_view;
pub mod recorded;
pub mod result_links;
pub mod smoke;
pub mod sources;
pub mod state;
pub mod supervisor;
pub mod transform_run;
