//! Which feeds an ingestor should try to own: the KCL balancing rule,
//! as a pure function over a snapshot of the `feeds` table.
//!
//! Every instance, every lease round:
//! 1. counts the live instances (those with a fresh heartbeat, owners of
//!    unexpired leases, and itself) and the target share,
//!    `ceil(feeds / instances)`. Heartbeats matter at start-up: without
//!    them the first instance up would take every feed and the others
//!    would have to steal them back a few at a time;
//! 2. if it owns fewer than the target, takes expired or unowned leases,
//!    highest priority first, in an order hashed with its own name so that
//!    instances racing for the same expired leases mostly pick different
//!    ones (the conditional write in [`crate::state`] settles the rest);
//! 3. if nothing is expired and it is still short, asks the most loaded
//!    instance to hand leases over, but only one holding more than the
//!    target, so rebalancing always converges. It asks for at most a
//!    quarter of the target per round (or `min_steal`, when that is more),
//!    so a joining instance reaches its share in about four rounds whatever
//!    the fleet's size: KCL's fixed one-lease-per-round would take an
//!    instance joining 4 others on 1,000 feeds 200 rounds.
//!
//! Rebalancing is a handover, not KCL's steal: the thief marks the lease
//! `handover_to`, the owner stops polling the feed and releases the lease
//! in its next round, and then the lease is free to take. A stolen live
//! lease would leave the old owner polling until its next renewal fails;
//! the handover means no feed is ever polled by two owners at once.
//!
//! The plan is only a wish: each take is an `acquire_lease` conditional
//! write, and losing a race just means trying again next round.

use std::collections::{BTreeMap, HashMap};

use crate::state::{FeedStateStore, Lease, LeaseRow, StateError};

/// One row of the `feeds` table, as far as leasing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// The feed's id.
    pub feed_id: String,
    /// The instance that holds (or last held) the lease; `None` when the feed was never
    /// leased. It is live only while `expires_ms` is ahead.
    pub owner: Option<String>,
    /// When the lease expires (ms since the epoch); 0 when never leased, released, or the
    /// feed has no row yet.
    pub expires_ms: i64,
    /// The feed's `priority` from the registry: free leases are taken highest first, and
    /// handovers asked for lowest first.
    pub priority: i32,
    /// An instance asked for this lease.
    pub handover_to: Option<String>,
}

impl LeaseView {
    fn live_owner(&self, now_ms: i64) -> Option<&str> {
        self.owner.as_deref().filter(|_| self.expires_ms > now_ms)
    }
}

/// What to try this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeasePlan {
    /// Expired or unowned leases to acquire.
    pub take: Vec<String>,
    /// Live leases of an over-target instance to ask for.
    pub steal: Vec<String>,
    /// Leases this instance holds, to renew.
    pub renew: Vec<String>,
    /// Leases this instance holds that a live instance asked for: stop the
    /// feed, then release.
    pub hand_over: Vec<String>,
    /// The target share this round.
    pub target: usize,
    /// Live instances counted, this one included.
    pub instances: usize,
}

/// Plans one lease round for instance `me`, given the instances with a
/// fresh heartbeat (`alive`, which may or may not include `me`).
/// `min_steal` is the fewest handovers a short instance may ask for in one
/// round; it may ask for up to a quarter of the target when that is more.
/// Zero turns stealing off.
pub fn plan_leases(
    me: &str,
    alive: &[&str],
    leases: &[LeaseView],
    now_ms: i64,
    min_steal: usize,
) -> LeasePlan {
    let mut load: BTreeMap<&str, Vec<&LeaseView>> = BTreeMap::new();
    load.entry(me).or_default();
    for a in alive {
        load.entry(a).or_default();
    }
    for l in leases {
        if let Some(owner) = l.live_owner(now_ms) {
            load.entry(owner).or_default().push(l);
        }
    }
    let instances = load.len();
    let target = leases.len().div_ceil(instances);
    let asked = |l: &LeaseView| {
        l.handover_to
            .as_deref()
            .is_some_and(|to| to != me && load.contains_key(to))
    };
    let (hand_over, renew): (Vec<&LeaseView>, Vec<&LeaseView>) =
        load[me].iter().partition(|l| asked(l));
    let hand_over: Vec<String> = hand_over.iter().map(|l| l.feed_id.clone()).collect();
    let renew: Vec<String> = renew.iter().map(|l| l.feed_id.clone()).collect();
    // Handovers already asked for by `me` count as on their way.
    let pending = leases
        .iter()
        .filter(|l| l.live_owner(now_ms).is_some_and(|o| o != me))
        .filter(|l| l.handover_to.as_deref() == Some(me))
        .count();
    let mut short = target.saturating_sub(renew.len() + pending);

    let spread = |l: &LeaseView| {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(me.as_bytes());
        h.update(&[0]);
        h.update(l.feed_id.as_bytes());
        (std::cmp::Reverse(l.priority), h.digest())
    };
    let mut free: Vec<&LeaseView> = leases
        .iter()
        .filter(|l| l.live_owner(now_ms).is_none())
        .collect();
    free.sort_by_key(|l| spread(l));
    let take: Vec<String> = free.iter().take(short).map(|l| l.feed_id.clone()).collect();
    short -= take.len();

    let mut steal = Vec::new();
    if short > 0 && min_steal > 0 {
        let per_round = min_steal.max(target.div_ceil(4));
        // The most loaded other instance, ties broken by name.
        let victim = load
            .iter()
            .filter(|(owner, _)| **owner != me)
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)));
        if let Some((_, held)) = victim {
            let mut candidates: Vec<&LeaseView> = held
                .iter()
                .copied()
                .filter(|l| l.handover_to.is_none())
                .collect();
            let surplus = candidates.len().saturating_sub(target);
            let n = short.min(per_round).min(surplus);
            // Steal the lowest-priority feeds first: they matter least if
            // the handover costs a cadence.
            candidates.sort_by_key(|l| {
                let (p, h) = spread(l);
                (std::cmp::Reverse(p), h)
            });
            steal = candidates
                .iter()
                .take(n)
                .map(|l| l.feed_id.clone())
                .collect();
        }
    }
    LeasePlan {
        take,
        steal,
        renew,
        hand_over,
        target,
        instances,
    }
}

/// What one lease round left this instance with.
#[derive(Debug, Default)]
pub struct LeaseRound {
    /// Leases held (renewed or newly taken) until their `expires_ms`.
    pub held: Vec<Lease>,
    /// Leases a live instance asked for: stop these feeds, then
    /// [`FeedStateStore::release_lease`] each one.
    pub hand_over: Vec<Lease>,
    /// The target share this round: `ceil(feeds / instances)` leases.
    pub target: usize,
    /// Live instances counted this round, this one included.
    pub instances: usize,
    /// Every configured feed's operator generation, from the same scan.
    pub operator_gens: HashMap<String, i64>,
    /// The earliest expiry (ms since the epoch) of a lease another instance
    /// holds, when one is still live: if that instance has died, the lease
    /// is free from then on, so the next round is best run just after it
    /// rather than up to a third of the TTL later.
    pub next_foreign_lapse_ms: Option<i64>,
}

/// Conditional lease writes in flight at once during a round.
const RENEW_CONCURRENCY: usize = 16;

/// The times a lease round works with.
#[derive(Debug, Clone, Copy)]
pub struct LeaseClock {
    /// The round's start, in ms since the epoch; every lease written in the
    /// round expires `ttl_ms` after it.
    pub now_ms: i64,
    /// How long every lease written this round lasts, in ms (the instance's lease TTL).
    pub ttl_ms: i64,
    /// How long this instance's previous round took (0 for the first).
    pub last_round_ms: i64,
}

impl LeaseClock {
    /// A held lease with more than this left is not renewed this round,
    /// and the round's heartbeat lasts this long.
    ///
    /// Rounds start every third of the TTL, or back to back when one takes
    /// longer. A lease skipped now is renewed by the end of the next round:
    /// within `max(ttl / 3, round) + round`. The margin allows three rounds
    /// of the last one's length, so a state store that slows down between
    /// rounds still renews in time; and it is never below half the TTL,
    /// which on a fast store halves the writes.
    pub fn renew_within_ms(&self) -> i64 {
        let round = self.last_round_ms.max(0);
        (self.ttl_ms / 2).max(self.ttl_ms / 3 + round.saturating_mul(3))
    }
}

/// The earliest expiry after `now_ms` of a lease held by another instance.
fn next_foreign_lapse(me: &str, views: &[LeaseView], now_ms: i64) -> Option<i64> {
    views
        .iter()
        .filter(|v| v.owner.as_deref().is_some_and(|o| o != me) && v.expires_ms > now_ms)
        .map(|v| v.expires_ms)
        .min()
}

/// Runs one lease round against the state store: heartbeat, read the
/// leases, plan, then renew, take and ask for handovers with conditional
/// writes. `registry` is every configured feed with its priority; rows of
/// feeds no longer configured are left to expire. `last_fetch` (feed →
/// ms) rides on the renewals, so the feeds row shows when each feed was
/// last fetched without a write per poll. `min_steal` is as for
/// [`plan_leases`].
pub async fn lease_round(
    state: &dyn FeedStateStore,
    me: &str,
    registry: &[(String, i32)],
    last_fetch: &HashMap<String, i64>,
    clock: LeaseClock,
    min_steal: usize,
) -> Result<LeaseRound, StateError> {
    let LeaseClock { now_ms, ttl_ms, .. } = clock;
    let renew_within_ms = clock.renew_within_ms();
    // The heartbeat lives only as long as the shortest lease this round
    // may leave unrenewed, so it never outlives this instance's leases: if
    // the instance dies, the others stop counting it by the time its
    // leases lapse, and take them in their next round instead of holding
    // back its share for another round. The next round's heartbeat comes
    // sooner than that (`LeaseClock::renew_within_ms`).
    state.heartbeat(me, now_ms, renew_within_ms).await?;
    let alive = state.live_instances(now_ms).await?;
    let alive: Vec<&str> = alive.iter().map(String::as_str).collect();
    let rows = state.lease_rows().await?;
    let by_id: HashMap<&str, &LeaseRow> = rows.iter().map(|r| (r.feed_id.as_str(), r)).collect();
    let views: Vec<LeaseView> = registry
        .iter()
        .map(|(id, priority)| match by_id.get(id.as_str()) {
            Some(r) => LeaseView {
                feed_id: id.clone(),
                owner: r.owner.clone(),
                expires_ms: r.expires_ms,
                priority: *priority,
                handover_to: r.handover_to.clone(),
            },
            None => LeaseView {
                feed_id: id.clone(),
                owner: None,
                expires_ms: 0,
                priority: *priority,
                handover_to: None,
            },
        })
        .collect();
    let plan = plan_leases(me, &alive, &views, now_ms, min_steal);
    let mut round = LeaseRound {
        target: plan.target,
        instances: plan.instances,
        next_foreign_lapse_ms: next_foreign_lapse(me, &views, now_ms),
        ..LeaseRound::default()
    };
    // Renewals and takes go out RENEW_CONCURRENCY at a time: a thousand
    // sequential conditional writes would outlast the TTL they renew.
    // A lease that outlasts the next round is not renewed this one
    // (`LeaseClock::renew_within_ms`).
    let (fresh, due): (Vec<&String>, Vec<&String>) = plan.renew.iter().partition(|id| {
        by_id.get(id.as_str()).is_some_and(|r| {
            r.owner.as_deref() == Some(me) && r.expires_ms - now_ms > renew_within_ms
        })
    });
    for id in fresh {
        let r = by_id[id.as_str()];
        round.held.push(Lease {
            feed_id: id.clone(),
            owner: me.to_string(),
            expires_ms: r.expires_ms,
            fencing: r.fencing,
        });
    }
    round.operator_gens = registry
        .iter()
        .map(|(id, _)| {
            let g = by_id.get(id.as_str()).map_or(0, |r| r.operator_gen);
            (id.clone(), g)
        })
        .collect();
    for chunk in due.chunks(RENEW_CONCURRENCY) {
        // A renewal refused because the lease lapsed may still be taken.
        let renewed = futures::future::join_all(chunk.iter().map(|id| async move {
            let fetched = last_fetch.get(id.as_str()).copied();
            match state.renew_lease(id, me, now_ms, ttl_ms, fetched).await? {
                Some(lease) => Ok(Some(lease)),
                None => state.take_lease(id, me, now_ms, ttl_ms).await,
            }
        }))
        .await;
        for lease in renewed {
            round.held.extend(lease?);
        }
    }
    for chunk in plan.take.chunks(RENEW_CONCURRENCY) {
        let taken = futures::future::join_all(
            chunk
                .iter()
                .map(|id| state.take_lease(id, me, now_ms, ttl_ms)),
        )
        .await;
        for lease in taken {
            round.held.extend(lease?);
        }
    }
    for id in &plan.hand_over {
        if let Some(r) = by_id.get(id.as_str()) {
            round.hand_over.push(Lease {
                feed_id: id.clone(),
                owner: me.to_string(),
                expires_ms: r.expires_ms,
                fencing: r.fencing,
            });
        }
    }
    for id in &plan.steal {
        if let Some(r) = by_id.get(id.as_str()) {
            state.request_handover(r, me).await?;
        }
    }
    // A lease's expiry counts from the round's start: on a store slower
    // than the TTL, one written early in the round may have lapsed (and
    // been taken by another instance) before the round ends. Such a lease
    // is not held, and its feed is not started.
    let ended_ms = votewire_core::unix_ms();
    round.held.retain(|l| l.expires_ms > ended_ms);
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 10_000;

    #[test]
    fn the_next_foreign_lapse_is_the_earliest_live_lease_of_another_instance() {
        let lease = |id: &str, owner: Option<&str>, expires_ms| LeaseView {
            feed_id: id.into(),
            owner: owner.map(str::to_string),
            expires_ms,
            priority: 0,
            handover_to: None,
        };
        let now = 100_000;
        let views = vec![
            lease("mine-soon", Some("a"), now + 500),
            lease("theirs-later", Some("b"), now + 7_000),
            lease("theirs-soon", Some("c"), now + 2_000),
            lease("theirs-lapsed", Some("b"), now - 1),
            lease("free", None, 0),
        ];
        assert_eq!(next_foreign_lapse("a", &views, now), Some(now + 2_000));
        assert_eq!(next_foreign_lapse("c", &views, now), Some(now + 500));
        let only_mine = vec![
            lease("mine", Some("a"), now + 500),
            lease("gone", Some("b"), now),
        ];
        assert_eq!(next_foreign_lapse("a", &only_mine, now), None);
    }

    fn feeds(n: usize) -> Vec<LeaseView> {
        (0..n)
            .map(|i| LeaseView {
                feed_id: format!("feed-{i:03}"),
                owner: None,
                expires_ms: 0,
                priority: (i % 3) as i32,
                handover_to: None,
            })
            .collect()
    }

    /// Applies a plan the way conditional writes would: a take succeeds
    /// only if the lease is still free, a handover request only if the
    /// victim still holds it live, a release only by the owner.
    fn apply(me: &str, plan: &LeasePlan, table: &mut [LeaseView], now: i64) {
        for l in table.iter_mut() {
            let free = l.live_owner(now).is_none();
            let mine = l.live_owner(now) == Some(me);
            if mine && plan.hand_over.contains(&l.feed_id) {
                l.expires_ms = 0;
                l.handover_to = None;
            } else if (mine && plan.renew.contains(&l.feed_id))
                || (free && plan.take.contains(&l.feed_id))
            {
                l.owner = Some(me.to_string());
                l.expires_ms = now + TTL;
                l.handover_to = None;
            } else if !free && !mine && plan.steal.contains(&l.feed_id) {
                l.handover_to = Some(me.to_string());
            }
        }
    }

    fn owned(table: &[LeaseView], who: &str, now: i64) -> usize {
        table
            .iter()
            .filter(|l| l.live_owner(now) == Some(who))
            .count()
    }

    /// Two instances, both heartbeating, run `rounds` 2 s lease rounds.
    fn start_two(table: &mut [LeaseView], rounds: usize) -> i64 {
        let mut now = 0;
        for _ in 0..rounds {
            for me in ["a", "b"] {
                let plan = plan_leases(me, &["a", "b"], table, now, 5);
                apply(me, &plan, table, now);
            }
            now += 2_000;
        }
        now
    }

    #[test]
    fn two_instances_split_200_feeds_evenly_from_the_first_round() {
        let mut table = feeds(200);
        let now = start_two(&mut table, 1);
        let (a, b) = (owned(&table, "a", now), owned(&table, "b", now));
        assert_eq!(a + b, 200, "every feed is owned");
        assert_eq!((a, b), (100, 100));
    }

    #[test]
    fn the_survivor_owns_everything_one_round_after_the_ttl() {
        let mut table = feeds(200);
        let mut now = start_two(&mut table, 3);
        // `b` dies (stops renewing); `a` keeps its 2 s rounds.
        let died = now;
        while now <= died + TTL + 2_000 {
            let plan = plan_leases("a", &["a"], &table, now, 5);
            apply("a", &plan, &mut table, now);
            now += 2_000;
        }
        assert_eq!(owned(&table, "a", now - 2_000), 200);
    }

    #[test]
    fn a_joining_instance_steals_until_balanced_and_never_from_an_under_target_one() {
        let mut table = feeds(200);
        let mut now = start_two(&mut table, 3);
        for _ in 0..40 {
            for me in ["a", "b", "c"] {
                let plan = plan_leases(me, &["a", "b", "c"], &table, now, 5);
                for f in &plan.steal {
                    let victim = table
                        .iter()
                        .find(|l| &l.feed_id == f)
                        .and_then(|l| l.live_owner(now))
                        .unwrap()
                        .to_string();
                    assert!(
                        owned(&table, &victim, now) > plan.target,
                        "stole from {victim}, which is not over target"
                    );
                }
                apply(me, &plan, &mut table, now);
            }
            now += 2_000;
        }
        let counts: Vec<usize> = ["a", "b", "c"]
            .iter()
            .map(|w| owned(&table, w, now - 1))
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 200);
        // The target is ceil(200 / 3) = 67: nobody above it, nobody far below.
        assert!(counts.iter().all(|c| (66..=67).contains(c)), "{counts:?}");
    }

    #[test]
    fn an_instance_joining_a_large_fleet_reaches_its_share_in_a_few_rounds() {
        // Four instances hold 1,000 feeds; a fifth joins. Its share is 200:
        // five handovers a round would take 40 rounds.
        let fleet = ["a", "b", "c", "d"];
        let mut table = feeds(1_000);
        for (i, l) in table.iter_mut().enumerate() {
            l.owner = Some(fleet[i % 4].to_string());
            l.expires_ms = TTL;
        }
        let all = ["a", "b", "c", "d", "e"];
        let mut now = 0;
        let mut rounds = 0;
        while owned(&table, "e", now) < 200 {
            rounds += 1;
            assert!(
                rounds <= 8,
                "e holds {} after 8 rounds",
                owned(&table, "e", now)
            );
            for me in all {
                let plan = plan_leases(me, &all, &table, now, 5);
                apply(me, &plan, &mut table, now);
            }
            now += 2_000;
        }
        let counts: Vec<usize> = all.iter().map(|w| owned(&table, w, now)).collect();
        assert_eq!(counts.iter().sum::<usize>(), 1_000, "{counts:?}");
        assert!(counts.iter().all(|c| *c == 200), "{counts:?}");
    }

    #[test]
    fn a_skipped_lease_outlasts_the_next_round_however_long_rounds_take() {
        for ttl_ms in [4_000, 10_000, 30_000] {
            for last_round_ms in [0, 50, 400, 1_000, 1_300, 3_000] {
                let clock = LeaseClock {
                    now_ms: 0,
                    ttl_ms,
                    last_round_ms,
                };
                let within = clock.renew_within_ms();
                assert!(within >= ttl_ms / 2, "{ttl_ms} {last_round_ms}: {within}");
                // The next round starts after max(ttl / 3, round) and its
                // write lands within another round, even one a third slower.
                let next_write = (ttl_ms / 3).max(last_round_ms) + last_round_ms * 4 / 3;
                if last_round_ms <= ttl_ms / 3 {
                    assert!(within > next_write, "{ttl_ms} {last_round_ms}: {within}");
                }
            }
        }
    }

    #[test]
    fn higher_priority_expired_feeds_are_taken_first() {
        // Two live instances share 9 feeds: `a` wants ceil(9 / 2) = 5 of
        // them, and those should be the highest-priority ones.
        let table = feeds(9);
        let plan = plan_leases("a", &["a", "b"], &table, 0, 0);
        assert_eq!(plan.take.len(), 5);
        let prio: Vec<i32> = plan
            .take
            .iter()
            .map(|f| table.iter().find(|l| &l.feed_id == f).unwrap().priority)
            .collect();
        let mut sorted = prio.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(prio, sorted);
    }

    #[test]
    fn instances_racing_for_expired_leases_mostly_pick_different_ones() {
        // Equal priorities, so only the per-instance hash orders the picks.
        let table: Vec<LeaseView> = feeds(200)
            .into_iter()
            .map(|l| LeaseView { priority: 0, ..l })
            .collect();
        let a = plan_leases("a", &["a", "b"], &table, 0, 0);
        let b = plan_leases("b", &["a", "b"], &table, 0, 0);
        assert_eq!((a.take.len(), b.take.len()), (100, 100));
        let overlap = a.take.iter().filter(|f| b.take.contains(f)).count();
        // Independent random halves overlap by ~50; a shared order by 100.
        assert!(overlap < 75, "{overlap} of 100 picks collide");
    }
}
