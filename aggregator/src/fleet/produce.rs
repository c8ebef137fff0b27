//! Producing results: what was sent, and settling its delivery report.

use std::collections::HashSet;

use rdkafka::producer::DeliveryFuture;
use votewire_schemas::ContestResult;

/// A result produced in this batch.
pub(super) struct SentResult {
    pub partition: i32,
    /// Its key on the results topic.
    pub key: String,
    pub result: ContestResult,
    /// Its newest cell's fetch time (ms since the epoch).
    pub newest_fetch_ms: i64,
}

/// Waits for one result's delivery report: landed, or its partition is
/// not committed this batch.
pub(super) async fn settle(
    delivery: Option<DeliveryFuture>,
    sent: SentResult,
    landed: &mut Vec<SentResult>,
    failed: &mut HashSet<i32>,
    instance: &str,
) {
    let outcome = match delivery {
        Some(d) => d.await,
        None => {
            failed.insert(sent.partition);
            return;
        }
    };
    match outcome {
        Ok(Ok(_)) => landed.push(sent),
        Ok(Err((e, _))) => {
            tracing::warn!("aggregator {instance}: delivering {}: {e}", sent.key);
            failed.insert(sent.partition);
        }
        Err(_) => {
            failed.insert(sent.partition);
        }
    }
}
