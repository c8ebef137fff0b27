//! The fleet's source-disagreement alerts: per rolled-up live result of a
//! merged contest, the linked sources that disagree with its official
//! source ([`crate::disagreement`]), upserted on the compacted alerts topic
//! while they disagree and tombstoned once they agree again.
//!
//! A member remembers the alerts that landed per result key (in its
//! partition's state), so only changes are produced. A member that
//! rebuilds a partition starts with none remembered: it publishes every
//! open alert again (harmless upserts), but cannot tombstone one that was
//! open on the topic and resolved while no member held the partition. A
//! contest whose sums overflow (dead-lettered, its results left as they
//! were) keeps its alerts as they were too.

use std::collections::BTreeMap;

use votewire_schemas::{ContestResult, SourceDisagreement};

use crate::disagreement::{DisagreementThreshold, disagreement_key, disagreements};

/// The alerts open at one result's unit, by the other source's feed id.
pub(super) type OpenAlerts = BTreeMap<String, SourceDisagreement>;

/// One alert record to produce: an upsert, or a tombstone (`alert` none).
#[derive(Debug, Clone)]
pub(super) struct AlertChange {
    /// The votes partition whose state remembers it.
    pub partition: i32,
    /// The result's key (where the partition remembers its alerts).
    pub result_key: String,
    /// The other source.
    pub other_feed_id: String,
    /// The alerts topic's key.
    pub key: String,
    /// The disagreement, or `None` for a tombstone.
    pub alert: Option<SourceDisagreement>,
}

/// The alert records that bring `open` (what landed for `result`'s key) to
/// what `result` shows now.
pub(super) fn changes(
    partition: i32,
    result_key: &str,
    result: &ContestResult,
    open: Option<&OpenAlerts>,
    threshold: DisagreementThreshold,
) -> Vec<AlertChange> {
    let now = disagreements(result, threshold);
    let mut out = Vec::new();
    for (other, alert) in &now {
        if !open
            .and_then(|o| o.get(other))
            .is_some_and(|was| same_figures(was, alert))
        {
            out.push(AlertChange {
                partition,
                result_key: result_key.to_string(),
                other_feed_id: other.clone(),
                key: disagreement_key(alert),
                alert: Some(alert.clone()),
            });
        }
    }
    for (other, was) in open.into_iter().flatten() {
        if !now.contains_key(other) {
            out.push(AlertChange {
                partition,
                result_key: result_key.to_string(),
                other_feed_id: other.clone(),
                key: disagreement_key(was),
                alert: None,
            });
        }
    }
    out
}

/// Whether two alerts say the same: everything but when the result was
/// last updated and its trace (a new cell elsewhere at the unit is not a
/// new disagreement).
fn same_figures(a: &SourceDisagreement, b: &SourceDisagreement) -> bool {
    SourceDisagreement {
        last_updated: 0,
        trace_id: None,
        ..a.clone()
    } == SourceDisagreement {
        last_updated: 0,
        trace_id: None,
        ..b.clone()
    }
}

/// Remembers a change that landed.
pub(super) fn remember(open: &mut std::collections::HashMap<String, OpenAlerts>, c: AlertChange) {
    match c.alert {
        Some(alert) => {
            open.entry(c.result_key)
                .or_default()
                .insert(c.other_feed_id, alert);
        }
        None => {
            if let Some(o) = open.get_mut(&c.result_key) {
                o.remove(&c.other_feed_id);
                if o.is_empty() {
                    open.remove(&c.result_key);
                }
            }
        }
    }
}
