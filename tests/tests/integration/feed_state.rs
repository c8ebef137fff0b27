//! Feed state and fenced leases on the real DynamoDB-API endpoint (moto).

use votewire_ingestors::state::{DynamoFeedState, FeedCursor, HealthEvent, StateError};
use votewire_tests::Stack;

const TTL: i64 = 10_000;

async fn store() -> DynamoFeedState {
    let (cfg, client) = Stack::load().dynamodb().await;
    let st = DynamoFeedState::new(client, &cfg);
    st.ensure_tables().await.expect("create tables");
    st.ensure_tables()
        .await
        .expect("ensure_tables is idempotent");
    st
}

#[tokio::test]
async fn a_lease_is_renewed_by_its_owner_and_refused_to_others_until_it_expires() {
    let st = store().await;
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

#[tokio::test]
async fn a_zombie_that_lost_its_lease_cannot_commit() {
    let st = store().await;
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

#[tokio::test]
async fn source_seq_never_moves_backwards() {
    let st = store().await;
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

#[tokio::test]
async fn health_history_is_kept_newest_first_and_paged() {
    let st = store().await;
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
