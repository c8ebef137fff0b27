//! votewire aggregator: a consumer-group fleet on the votes topic that rolls
//! vote cells up into `ContestResult` records on the compacted results topic.
//!
//! # Delivery semantics (planned; see the aggregator issue)
//!
//! At-least-once: consume a batch, update state, produce results, await their
//! acknowledgements, then commit offsets. Results are keyed upserts whose
//! content depends only on cell state, so a replayed batch is invisible.
//! Nothing is implemented here yet; `votewire aggregate` says so and exits
//! non-zero.
