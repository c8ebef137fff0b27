//! Shared plumbing for every votewire service.
//!
//! votewire is a set of services (ingestors, the aggregator fleet, the operator
//! API) that are all the same `votewire` binary run with different
//! subcommands. This crate holds the pieces they share, and nothing that knows
//! about vote data:
//!
//! * [`config`]: one typed configuration ([`VotewireConfig`]) read from TOML and
//!   overridden by `VOTEWIRE_…` environment variables. Production settings
//!   (MSK bootstrap servers, SASL/SSL, the AWS region) need configuration only;
//!   any librdkafka property passes through untouched.
//! * [`kafka`]: how producers, consumers and the admin client are built.
//! * [`topics`]: the declared topic set ([`topics::TopicSpec`]), which
//!   `votewire topics ensure` and every service at start create or check
//!   against the cluster (replication factor against its brokers and
//!   `min.insync.replicas`).
//! * [`msk_iam`]: Amazon MSK IAM access control: the `OAUTHBEARER` token
//!   every client signs with the process's AWS credentials when
//!   `kafka.msk_iam_region` is set.
//! * [`state`]: the DynamoDB client for feed state, cursors and leases.
//! * [`telemetry`]: tracing plus OpenTelemetry export over OTLP.
//!
//! # Delivery semantics
//!
//! Every producer built here is idempotent with `acks=all`: a record is either
//! acknowledged by every in-sync replica or reported as failed to the caller,
//! and librdkafka's retries never duplicate or reorder records within a
//! partition. Consumers built here never auto-commit offsets; the caller
//! commits only after its own output is acknowledged (at-least-once), which is
//! safe because every votewire record is an idempotent keyed upsert.

#![warn(missing_docs)]

pub mod config;
pub mod kafka;
pub mod metrics;
pub mod msk_iam;
pub mod state;
pub mod telemetry;
pub mod topics;
pub mod trace_context;

pub use config::{ConfigError, VotewireConfig};

/// Wall-clock milliseconds since the Unix epoch (0 before 1970; saturates
/// far in the future): the time base of `fetched_at`, leases and record
/// timestamps everywhere in votewire.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
