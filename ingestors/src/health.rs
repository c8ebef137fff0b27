//! The feed health machine: `healthy | unchanged | stale | failing |
//! quarantined | paused`. Every transition is returned with its reason so
//! the caller can store it (the state keeper) and publish it.
//!
//! * An accepted payload makes a feed `healthy`.
//! * An unchanged poll keeps it `unchanged`, or `stale` once nothing changed
//!   for longer than the feed's staleness SLO.
//! * A fetch failure or a rejected payload makes it `failing`; the
//!   `quarantine_after`-th consecutive rejected payload quarantines it
//!   (the source keeps publishing garbage), and only an operator lifts it.
//! * `paused` is an operator's choice; only resuming leaves it.

use votewire_schemas::FeedHealth;

/// What happened on one poll, or an operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A new payload was transformed and published: the feed turns `healthy` and both
    /// failure counts reset.
    Accepted,
    /// The source had nothing new: the feed is `unchanged`, or `stale` once nothing changed
    /// for `stale_after_ms`.
    Unchanged,
    /// Its transform rejected the payload, for the reason held: the feed turns `failing`,
    /// or `quarantined` after `quarantine_after` in a row.
    Rejected(String),
    /// The source could not be polled, for the reason held (the error's text): the feed
    /// turns `failing`.
    FetchFailed(String),
    /// An operator paused the feed, from any state (quarantine included); only
    /// [`Observation::Resume`] leaves `paused`.
    Pause,
    /// An operator resumed a paused feed, which turns `healthy`; ignored in any other
    /// state.
    Resume,
    /// An operator released a quarantined feed: it turns `healthy` and the rejection streak
    /// resets. Ignored otherwise.
    Unquarantine,
}

/// A change of state, to store and publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: FeedHealth,
    /// The state after.
    pub to: FeedHealth,
    /// Why, in words for an operator (`rejected payload: …`, `paused by an operator`).
    pub reason: String,
}

/// One feed's health.
#[derive(Debug, Clone)]
pub struct HealthMachine {
    /// The feed's current state.
    pub state: FeedHealth,
    /// Rejected payloads in a row; reset by an accepted payload or a release from
    /// quarantine.
    pub consecutive_rejections: u32,
    /// Fetch failures in a row; reset by an accepted or unchanged poll.
    pub consecutive_failures: u32,
    /// Milliseconds since the epoch of the last accepted change.
    pub last_change_ms: Option<i64>,
    /// How many rejected payloads in a row quarantine the feed (at least 1).
    pub quarantine_after: u32,
    /// How long nothing may change, in milliseconds, before an unchanged poll makes the
    /// feed `stale`.
    pub stale_after_ms: i64,
}

impl HealthMachine {
    /// The `FeedStatus` record of transition `t` of feed `feed_id`, taken
    /// at `at_ms` by `actor` (an ingestor instance or an operator).
    pub fn status_record(
        &self,
        feed_id: &str,
        t: &Transition,
        at_ms: i64,
        actor: &str,
        fetch_id: Option<&str>,
    ) -> votewire_schemas::FeedStatus {
        votewire_schemas::FeedStatus {
            feed_id: feed_id.to_string(),
            from_state: Some(t.from),
            to_state: t.to,
            reason: t.reason.clone(),
            at: at_ms,
            consecutive_failures: i32::try_from(
                self.consecutive_failures.max(self.consecutive_rejections),
            )
            .unwrap_or(i32::MAX),
            last_change_at: self.last_change_ms,
            fetch_id: fetch_id.map(str::to_string),
            actor: Some(actor.to_string()),
            trace_id: None,
        }
    }

    /// A `healthy` machine with no history; `quarantine_after` is raised to at least 1.
    pub fn new(quarantine_after: u32, stale_after_ms: i64) -> HealthMachine {
        HealthMachine {
            state: FeedHealth::Healthy,
            consecutive_rejections: 0,
            consecutive_failures: 0,
            last_change_ms: None,
            quarantine_after: quarantine_after.max(1),
            stale_after_ms,
        }
    }

    /// Applies `obs` at `now_ms`; returns the transition when the state
    /// changed.
    pub fn observe(&mut self, obs: Observation, now_ms: i64) -> Option<Transition> {
        use FeedHealth::*;
        let (next, reason) = match (self.state, obs) {
            (Paused, Observation::Resume) => (Healthy, "resumed by an operator".to_string()),
            (Paused, _) => return None,
            (_, Observation::Pause) => (Paused, "paused by an operator".to_string()),
            (Quarantined, Observation::Unquarantine) => {
                self.consecutive_rejections = 0;
                (
                    Healthy,
                    "released from quarantine by an operator".to_string(),
                )
            }
            (Quarantined, _) => return None,
            (_, Observation::Accepted) => {
                self.consecutive_rejections = 0;
                self.consecutive_failures = 0;
                self.last_change_ms = Some(now_ms);
                (Healthy, "accepted a new payload".to_string())
            }
            (_, Observation::Unchanged) => {
                self.consecutive_failures = 0;
                let since = self.last_change_ms.map(|t| now_ms - t);
                match since {
                    Some(s) if s > self.stale_after_ms => {
                        (Stale, format!("no change for {} s", s / 1000))
                    }
                    _ => (Unchanged, "the source has not changed".to_string()),
                }
            }
            (_, Observation::Rejected(why)) => {
                self.consecutive_rejections += 1;
                if self.consecutive_rejections >= self.quarantine_after {
                    (
                        Quarantined,
                        format!(
                            "{} consecutive rejected payloads; last: {why}",
                            self.consecutive_rejections
                        ),
                    )
                } else {
                    (Failing, format!("rejected payload: {why}"))
                }
            }
            (_, Observation::FetchFailed(why)) => {
                self.consecutive_failures += 1;
                (
                    Failing,
                    format!(
                        "fetch failed ({} in a row): {why}",
                        self.consecutive_failures
                    ),
                )
            }
            (_, Observation::Resume | Observation::Unquarantine) => return None,
        };
        if next == self.state {
            return None;
        }
        let t = Transition {
            from: self.state,
            to: next,
            reason,
        };
        self.state = next;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FeedHealth::*;

    fn to(t: Option<Transition>) -> Option<FeedHealth> {
        t.map(|t| t.to)
    }

    #[test]
    fn a_night_of_polls_moves_through_the_states() {
        let mut h = HealthMachine::new(3, 600_000);
        assert_eq!(
            to(h.observe(Observation::Accepted, 0)),
            None,
            "already healthy"
        );
        assert_eq!(
            to(h.observe(Observation::Unchanged, 30_000)),
            Some(Unchanged)
        );
        assert_eq!(
            to(h.observe(Observation::Unchanged, 60_000)),
            None,
            "no transition without a change"
        );
        assert_eq!(to(h.observe(Observation::Unchanged, 700_000)), Some(Stale));
        assert_eq!(
            to(h.observe(Observation::FetchFailed("timeout".into()), 710_000)),
            Some(Failing)
        );
        assert_eq!(to(h.observe(Observation::Accepted, 720_000)), Some(Healthy));
        assert_eq!(h.consecutive_failures, 0);
    }

    #[test]
    fn consecutive_rejections_quarantine_until_an_operator_releases() {
        let mut h = HealthMachine::new(3, 600_000);
        assert_eq!(
            to(h.observe(Observation::Rejected("html page".into()), 1)),
            Some(Failing)
        );
        assert_eq!(
            to(h.observe(Observation::Rejected("html page".into()), 2)),
            None
        );
        let q = h
            .observe(Observation::Rejected("html page".into()), 3)
            .unwrap();
        assert_eq!(q.to, Quarantined);
        assert!(
            q.reason.starts_with("3 consecutive rejected payloads"),
            "{}",
            q.reason
        );
        assert_eq!(
            h.observe(Observation::Accepted, 4),
            None,
            "quarantine holds"
        );
        assert_eq!(to(h.observe(Observation::Unquarantine, 5)), Some(Healthy));
        assert_eq!(h.consecutive_rejections, 0);
        // A rejection streak interrupted by an accepted payload starts over.
        h.observe(Observation::Rejected("x".into()), 6);
        h.observe(Observation::Rejected("x".into()), 7);
        h.observe(Observation::Accepted, 8);
        assert_eq!(
            to(h.observe(Observation::Rejected("x".into()), 9)),
            Some(Failing)
        );
    }

    #[test]
    fn pause_overrides_everything_until_resume() {
        let mut h = HealthMachine::new(3, 600_000);
        assert_eq!(to(h.observe(Observation::Pause, 1)), Some(Paused));
        assert_eq!(h.observe(Observation::Accepted, 2), None);
        assert_eq!(h.observe(Observation::FetchFailed("x".into()), 3), None);
        assert_eq!(to(h.observe(Observation::Resume, 4)), Some(Healthy));
    }
}
