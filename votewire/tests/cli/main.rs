//! The `votewire` binary against the real local stack, one module per
//! topic (as ripgrep's tests are): ingest, configuration, transform,
//! feeds, crash safety, fleets, observability, the live page, the API,
//! subscribers, export and the demo. The image and Terraform checks are
//! the `deploy` test binary.

mod api;
mod config;
mod crash_safety;
mod demo;
mod elections;
mod export;
mod feeds;
mod fleet;
mod ingest;
mod live_page;
mod observability;
mod subscribers;
mod support;
mod transform;
