//! votewire transformers: pure functions from payload bytes and feed config
//! to normalized vote cells.
//!
//! No I/O, no clock, no network: a transformer sees only the bytes an
//! ingestor fetched and the feed's configuration, which makes every family
//! fuzzable and benchable in isolation.
