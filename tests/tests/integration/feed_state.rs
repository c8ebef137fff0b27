//! Feed state and fenced leases: one suite, run against both stores. The
//! DynamoDB store on the real DynamoDB-API endpoint (moto), the embedded
//! store in a redb file in a temporary directory.

use votewire_ingestors::state::EmbeddedFeedState;
use votewire_ingestors::state::{
    DynamoFeedState, FeedCursor, FeedStateStore, HealthEvent, LeaseRow, OperatorAction, StateError,
};
use votewire_tests::Stack;

const TTL: i64 = 10_000;

async fn ready(st: Box<dyn FeedStateStore>) -> Box<dyn FeedStateStore> {
    st.ensure_tables().await.expect("create tables");
    st.ensure_tables()
        .await
        .expect("ensure_tables is idempotent");
    st
}

async fn dynamodb() -> Box<dyn FeedStateStore> {
    let (cfg, client) = Stack::load().dynamodb().await;
    ready(Box::new(DynamoFeedState::new(client, &cfg))).await
}

async fn embedded(dir: &tempfile::TempDir) -> Box<dyn FeedStateStore> {
    let file = dir.path().join("state/feed-state.redb");
    ready(Box::new(EmbeddedFeedState::open(&file).expect("open"))).await
}

/// Each case of the suite, once per store.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_dynamodb {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&*super::dynamodb().await).await;
            })*
        }
        mod on_embedded {
            $(#[tokio::test]
            async fn $case() {
                let dir = tempfile::tempdir().unwrap();
                super::$case(&*super::embedded(&dir).await).await;
            })*
        }
    };
}

on_both_stores!(
    a_lease_is_renewed_by_its_owner_and_refused_to_others_until_it_expires,
    a_zombie_that_lost_its_lease_cannot_commit,
    source_seq_never_moves_backwards,
    health_history_is_kept_newest_first_and_paged,
    last_fetch_rides_on_renewals_and_change_and_error_times_on_commits,
    an_operator_pause_bumps_the_generation_and_is_recorded,
    poll_now_and_reset_cursor_restart_the_feed_and_keep_its_seq_and_health,
    handover_and_release_follow_the_fencing_counter,
);

async fn last_fetch_rides_on_renewals_and_change_and_error_times_on_commits(
    st: &dyn FeedStateStore,
) {
    let t0 = 1_700_000_000_000;
    let lease = st
        .acquire_lease("f5", "ingestor-a", t0, TTL)
        .await
        .unwrap()
        .unwrap();
    let fresh = st.load("f5").await.unwrap().unwrap();
    assert_eq!(
        (
            fresh.last_fetch_ms,
            fresh.last_change_ms,
            fresh.last_error_ms
        ),
        (None, None, None)
    );
    st.commit_change(&lease, &FeedCursor::default(), 1, t0 + 100)
        .await
        .unwrap();
    st.commit_cursor(&lease, &FeedCursor::default(), 1)
        .await
        .unwrap();
    let renewed = st
        .renew_lease("f5", "ingestor-a", t0 + 6_000, TTL, Some(t0 + 5_900))
        .await
        .unwrap()
        .expect("the owner renews");
    assert_eq!(renewed.fencing, lease.fencing);
    let failing = HealthEvent {
        at_ms: t0 + 7_000,
        from: Some("healthy".into()),
        to: "failing".into(),
        reason: "HTTP 500".into(),
        actor: "ingestor-a".into(),
    };
    st.record_health(&renewed, &failing, 1).await.unwrap();
    let row = st.load("f5").await.unwrap().unwrap();
    assert_eq!(row.last_fetch_ms, Some(t0 + 5_900));
    assert_eq!(
        row.last_change_ms,
        Some(t0 + 100),
        "an unchanged commit keeps the last change"
    );
    assert_eq!(row.last_error_ms, Some(t0 + 7_000));
    assert_eq!(
        (row.health.as_str(), row.consecutive_failures),
        ("failing", 1)
    );
    // A renewal without a fetch time keeps the stored one.
    st.renew_lease("f5", "ingestor-a", t0 + 9_000, TTL, None)
        .await
        .unwrap()
        .unwrap();
    let row = st.load("f5").await.unwrap().unwrap();
    assert_eq!(row.last_fetch_ms, Some(t0 + 5_900));
    assert_eq!(row.lease.unwrap().expires_ms, t0 + 9_000 + TTL);
    // Someone else cannot renew, and an expired lease is not renewed.
    assert!(
        st.renew_lease("f5", "ingestor-b", t0 + 9_500, TTL, Some(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        st.renew_lease("f5", "ingestor-a", t0 + 9_000 + TTL + 1, TTL, None)
            .await
            .unwrap()
            .is_none()
    );
}

async fn an_operator_pause_bumps_the_generation_and_is_recorded(st: &dyn FeedStateStore) {
    let t0 = 1_700_000_000_000;
    // A feed nobody ever ran can be paused: the row is created.
    let before = st.set_paused("f6", true, "operator-jo", t0).await.unwrap();
    assert_eq!(before, "healthy");
    let row = st.load("f6").await.unwrap().expect("row created");
    assert!(row.paused);
    assert_eq!((row.health.as_str(), row.operator_gen), ("paused", 1));
    let before = st
        .set_paused("f6", false, "operator-jo", t0 + 1_000)
        .await
        .unwrap();
    assert_eq!(before, "paused");
    let row = st.load("f6").await.unwrap().unwrap();
    assert!(!row.paused);
    assert_eq!((row.health.as_str(), row.operator_gen), ("healthy", 2));
    let (events, _) = st.history("f6", 10, None).await.unwrap();
    let seen: Vec<(Option<&str>, &str, &str)> = events
        .iter()
        .map(|e| (e.from.as_deref(), e.to.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("paused"), "healthy", "operator-jo"),
            (Some("healthy"), "paused", "operator-jo"),
        ]
    );
    let gens: Vec<i64> = st
        .lease_rows()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.feed_id == "f6")
        .map(|r| r.operator_gen)
        .collect();
    assert_eq!(gens, [2]);
}

async fn poll_now_and_reset_cursor_restart_the_feed_and_keep_its_seq_and_health(
    st: &dyn FeedStateStore,
) {
    let t0 = 1_700_000_000_000;
    let lease = st
        .acquire_lease("f8", "ingestor-a", t0, TTL)
        .await
        .unwrap()
        .unwrap();
    let cursor = FeedCursor {
        etag: Some("\"v7\"".into()),
        version: Some("273739".into()),
        sha256: Some("cc".into()),
        next_request: Some("https://api.example/next".into()),
        sftp_seen: Some("aa 10 5 /drop/a.csv".into()),
        ..FeedCursor::default()
    };
    st.commit_change(&lease, &cursor, 7, t0).await.unwrap();
    let (from, to) = st
        .act("f8", OperatorAction::PollNow, "admin:jo", t0 + 1)
        .await
        .unwrap();
    assert_eq!((from.as_str(), to.as_str()), ("healthy", "healthy"));
    let row = st.load("f8").await.unwrap().unwrap();
    assert_eq!(row.operator_gen, 1, "the owner restarts the feed");
    assert_eq!(row.cursor, cursor, "poll-now keeps the cursor");
    let (from, to) = st
        .act("f8", OperatorAction::ResetCursor, "admin:jo", t0 + 2)
        .await
        .unwrap();
    assert_eq!((from.as_str(), to.as_str()), ("healthy", "healthy"));
    let row = st.load("f8").await.unwrap().unwrap();
    assert_eq!(
        row.cursor,
        FeedCursor::default(),
        "every cursor field is gone"
    );
    assert_eq!(row.source_seq, 7, "source_seq never moves back");
    assert_eq!(row.operator_gen, 2);
    assert_eq!(row.health, "healthy");
    assert_eq!(
        row.lease.map(|l| l.owner).as_deref(),
        Some("ingestor-a"),
        "the lease is untouched"
    );
    let (events, _) = st.history("f8", 10, None).await.unwrap();
    let reasons: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.reason.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (OperatorAction::ResetCursor.reason(), "admin:jo"),
            (OperatorAction::PollNow.reason(), "admin:jo"),
        ]
    );
}

fn row_of(rows: Vec<LeaseRow>, feed_id: &str) -> LeaseRow {
    rows.into_iter()
        .find(|r| r.feed_id == feed_id)
        .expect("the feed's row")
}

async fn handover_and_release_follow_the_fencing_counter(st: &dyn FeedStateStore) {
    let t0 = 1_700_000_000_000;
    let a = st
        .acquire_lease("f7", "ingestor-a", t0, TTL)
        .await
        .unwrap()
        .unwrap();
    let seen = row_of(st.lease_rows().await.unwrap(), "f7");
    assert_eq!(
        (
            seen.owner.as_deref(),
            seen.fencing,
            seen.handover_to.as_deref()
        ),
        (Some("ingestor-a"), 1, None)
    );
    assert!(st.request_handover(&seen, "ingestor-b").await.unwrap());
    let asked = row_of(st.lease_rows().await.unwrap(), "f7");
    assert_eq!(asked.handover_to.as_deref(), Some("ingestor-b"));
    // A request made against an older fencing counter is refused.
    let stale = LeaseRow {
        fencing: 0,
        ..seen.clone()
    };
    assert!(!st.request_handover(&stale, "ingestor-c").await.unwrap());
    // The owner releases: the lease expires now and anyone may take it.
    assert!(st.release_lease(&a).await.unwrap());
    let b = st
        .acquire_lease("f7", "ingestor-b", t0 + 1, TTL)
        .await
        .unwrap()
        .expect("a released lease is free");
    assert_eq!((b.owner.as_str(), b.fencing), ("ingestor-b", 2));
    let after = row_of(st.lease_rows().await.unwrap(), "f7");
    assert_eq!(
        after.handover_to, None,
        "a take clears the handover request"
    );
    assert!(
        !st.release_lease(&a).await.unwrap(),
        "the old owner's release is a no-op"
    );
    // Heartbeats: only unexpired instances are live.
    st.heartbeat("ingestor-a", t0, TTL).await.unwrap();
    st.heartbeat("ingestor-b", t0 + 5_000, TTL).await.unwrap();
    let live = st.live_instances(t0 + TTL + 1).await.unwrap();
    assert!(live.contains(&"ingestor-b".to_string()), "{live:?}");
    assert!(!live.contains(&"ingestor-a".to_string()), "{live:?}");
}

#[test]
fn the_embedded_store_keeps_commits_across_reopening_and_serves_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed-state.redb");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let st = EmbeddedFeedState::open(&file).unwrap();
        st.ensure_tables().await.unwrap();
        let lease = st
            .acquire_lease("f8", "ingestor-a", 1_000, TTL)
            .await
            .unwrap()
            .unwrap();
        let cursor = FeedCursor {
            etag: Some("\"e1\"".into()),
            sftp_seen: Some("aa 10 1 /drop/a.csv".into()),
            ..FeedCursor::default()
        };
        st.commit_change(&lease, &cursor, 3, 1_500).await.unwrap();
        let err = EmbeddedFeedState::open(&file)
            .err()
            .expect("a second open of a held file is refused");
        assert!(
            err.to_string().contains("one process"),
            "the error says why: {err}"
        );
    });
    // The first handle was dropped with its block; reopen and read.
    rt.block_on(async {
        let st = EmbeddedFeedState::open(&file).unwrap();
        let row = st.load("f8").await.unwrap().expect("committed row");
        assert_eq!(row.source_seq, 3);
        assert_eq!(row.cursor.etag.as_deref(), Some("\"e1\""));
        assert_eq!(row.cursor.sftp_seen.as_deref(), Some("aa 10 1 /drop/a.csv"));
        assert_eq!(row.last_change_ms, Some(1_500));
    });
}

async fn a_lease_is_renewed_by_its_owner_and_refused_to_others_until_it_expires(
    st: &dyn FeedStateStore,
) {
    let t0 = 1_700_000_000_000;
    let a = st
        .acquire_lease("f1", "ingestor-a", t0, TTL)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!((a.fencing, a.expires_ms), (1, t0 + TTL));
    assert!(
        st.acquire_lease("f1", "ingestor-b", t0 + 1_000, TTL)
            .await
            .unwrap()
            .is_none(),
        "held by a"
    );
    let renewed = st
        .acquire_lease("f1", "ingestor-a", t0 + 5_000, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.fencing, 1, "renewal keeps the fencing counter");
    assert_eq!(renewed.expires_ms, t0 + 5_000 + TTL);
    let b = st
        .acquire_lease("f1", "ingestor-b", t0 + 5_000 + TTL + 1, TTL)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!(
        (b.owner.as_str(), b.fencing),
        ("ingestor-b", 2),
        "takeover bumps fencing"
    );
}

async fn a_zombie_that_lost_its_lease_cannot_commit(st: &dyn FeedStateStore) {
    let t0 = 1_700_000_000_000;
    let zombie = st
        .acquire_lease("f2", "ingestor-a", t0, TTL)
        .await
        .unwrap()
        .unwrap();
    let cursor = FeedCursor {
        etag: Some("\"v1\"".into()),
        version: Some("273729".into()),
        sha256: Some("aa".into()),
        ..FeedCursor::default()
    };
    st.commit_cursor(&zombie, &cursor, 1)
        .await
        .expect("the owner commits");
    // ingestor-a pauses past its lease; ingestor-b takes over and commits.
    let fresh = st
        .acquire_lease("f2", "ingestor-b", t0 + TTL + 1, TTL)
        .await
        .unwrap()
        .unwrap();
    let newer = FeedCursor {
        version: Some("273739".into()),
        sha256: Some("bb".into()),
        ..FeedCursor::default()
    };
    st.commit_cursor(&fresh, &newer, 2).await.unwrap();
    // The zombie wakes up and tries to commit what it fetched.
    let err = st.commit_cursor(&zombie, &cursor, 2).await.unwrap_err();
    assert!(
        matches!(err, StateError::Fenced { fencing: 1, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    let state = st.load("f2").await.unwrap().unwrap();
    assert_eq!(
        state.cursor, newer,
        "the zombie's cursor never landed (etag removed too)"
    );
    assert_eq!(state.source_seq, 2);
    assert_eq!(state.lease.unwrap().owner, "ingestor-b");
    // The zombie cannot renew either.
    assert!(
        st.acquire_lease("f2", "ingestor-a", t0 + TTL + 2, TTL)
            .await
            .unwrap()
            .is_none()
    );
}

async fn source_seq_never_moves_backwards(st: &dyn FeedStateStore) {
    let lease = st
        .acquire_lease("f3", "ingestor-a", 1_000, TTL)
        .await
        .unwrap()
        .unwrap();
    st.commit_cursor(&lease, &FeedCursor::default(), 7)
        .await
        .unwrap();
    st.commit_cursor(&lease, &FeedCursor::default(), 7)
        .await
        .expect("re-committing the same seq is harmless");
    let err = st
        .commit_cursor(&lease, &FeedCursor::default(), 6)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StateError::SeqRegressed {
                attempted: 6,
                committed: 7,
                ..
            }
        ),
        "{err}"
    );
}

async fn health_history_is_kept_newest_first_and_paged(st: &dyn FeedStateStore) {
    let lease = st
        .acquire_lease("f4", "ingestor-a", 1_000, TTL)
        .await
        .unwrap()
        .unwrap();
    let states = ["healthy", "unchanged", "failing", "failing", "quarantined"];
    for (i, to) in states.iter().enumerate() {
        let ev = HealthEvent {
            at_ms: 1_700_000_000_000 + i as i64 * 1_000,
            from: (i > 0).then(|| states[i - 1].to_string()),
            to: to.to_string(),
            reason: format!("step {i}"),
            actor: "ingestor-a".into(),
        };
        st.record_health(&lease, &ev, i as i64).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = st.history("f4", 2, token).await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|e| e.reason));
        if next.is_none() {
            break;
        }
        token = next;
    }
    assert_eq!(seen, ["step 4", "step 3", "step 2", "step 1", "step 0"]);
    let state = st.load("f4").await.unwrap().unwrap();
    assert_eq!(
        (state.health.as_str(), state.consecutive_failures),
        ("quarantined", 4)
    );
}
