//! votewire aggregator: a consumer-group fleet on the votes topic that rolls
//! vote cells up into `ContestResult` records on the compacted results topic.
//!
//! # Delivery semantics
//!
//! **At-least-once in, idempotent upserts out.** Each instance:
//!
//! 1. consumes a batch of cells (a bounded coalescing window);
//! 2. applies them to its per-contest state, where the highest
//!    `source_seq` per cell wins ([`contest_cells`]);
//! 3. rolls every touched contest up ([`rollup`]) and produces the results
//!    whose content changed, keyed `election/contest/unit`;
//! 4. waits for every delivery report;
//! 5. only then commits the batch's offsets.
//!
//! A crash anywhere replays the batch; a result's content depends only on
//! the cell state, so replayed results are byte-identical upserts and
//! invisible on the compacted topic.
//!
//! Bad records on the votes topic (ones that do not decode) become dead
//! letters naming their place on the topic; the batch's offsets are
//! committed only once those land too.
//!
//! **Several sources, one contest.** Feeds that link a contest to a shared
//! id (`[feed.results]`) are partitioned together and merged: at each unit
//! the highest-priority source that reports it is official and every
//! source's value is kept ([`rollup`]).
//!
//! **State is rebuilt from Kafka.** The votes topic is compacted and
//! partitioned by contest, so one partition holds whole contests. When a
//! partition is assigned, the instance reads it from the beginning up to
//! the high watermark it saw at assignment before it publishes anything for
//! it; no other state store exists. Partitions move between instances with
//! the cooperative-sticky assignor, so a rebalance only stops the
//! partitions that move.

#![warn(missing_docs)]

pub mod contest_cells;
pub mod disagreement;
pub mod fleet;
mod high_watermarks;
pub mod nist_export;
pub mod rollup;
