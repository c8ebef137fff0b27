//! The feed registry: operators add feeds with config, not code.
//!
//! A feed is a `[[feed]]` entry in a TOML file; a registry is one file or a
//! directory of files. [`load_registry`] reads and checks every entry and
//! reports every problem with its file, line and field, which is what
//! `votewire feeds validate` prints.
//!
//! Credentials are references only (`{ env = "FEED_SECRET_…" }` or
//! `{ file = "name" }` under the feed-secrets directory; see [`secrets`]);
//! a credential-looking header with a literal value is rejected.

mod config;
pub mod schema;
#[cfg(test)]
mod tests;
mod validate;

pub use crate::durations::{duration_arg, parse_duration};
pub use crate::sources::secrets::{self, SecretRef};
pub use config::*;
pub use validate::{
    FeedConfigError, ValidFeed, feed_files, load_registry, read_mapping, registry_files,
};
