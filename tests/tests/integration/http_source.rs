//! Polite polling against a real local HTTP server: conditional GETs,
//! content hashing, Retry-After, AP's quota answer, jittered backoff and the
//! per-host gate.

use std::time::{Duration, Instant};

use votewire_ingestors::conditional::{Backoff, HostGate, HttpValidators, PollOutcome, poll};
use votewire_ingestors::http::{FetchError, FetchLimits, client};
use votewire_tests::fixture_bytes;
use votewire_tests::http::{Canned, FixtureServer};

const V1: &str =
    "clarity_enr/GA_107556_runoff_2021_ALLjson_series/002_20210106T001230Z_v273739/ALL.json";
const V2: &str =
    "clarity_enr/GA_107556_runoff_2021_ALLjson_series/003_20210106T001600Z_v273739/ALL.json";

fn accept(body: &votewire_ingestors::http::FetchedBody) -> HttpValidators {
    HttpValidators {
        etag: body.etag.clone(),
        last_modified: body.last_modified.clone(),
        sha256: Some(body.sha256.clone()),
    }
}

#[tokio::test]
async fn etags_give_304s_and_a_byte_identical_body_under_a_new_etag_is_unchanged() {
    let server = FixtureServer::start().await;
    let limits = FetchLimits::default();
    let http = client(&limits).unwrap();
    let url = server.url("/GA/107556/json/ALL.json");
    server.set(
        "/GA/107556/json/ALL.json",
        Canned::ok(fixture_bytes(V1)).header("etag", "\"a\""),
    );

    let PollOutcome::Changed(first) = poll(&http, &url, &HttpValidators::default(), &limits)
        .await
        .unwrap()
    else {
        panic!("first poll fetches");
    };
    let v = accept(&first);
    assert!(matches!(
        poll(&http, &url, &v, &limits).await.unwrap(),
        PollOutcome::NotModified
    ));
    let sent = server.seen();
    assert_eq!(
        sent.last().unwrap().1.get("if-none-match").unwrap(),
        "\"a\"",
        "the validator was sent"
    );

    // Same bytes, new ETag (Clarity republishes without changing content).
    server.set(
        "/GA/107556/json/ALL.json",
        Canned::ok(fixture_bytes(V1)).header("etag", "\"b\""),
    );
    match poll(&http, &url, &v, &limits).await.unwrap() {
        PollOutcome::Unchanged { etag, .. } => assert_eq!(etag.as_deref(), Some("\"b\"")),
        other => panic!("expected Unchanged, got {other:?}"),
    }
    // New bytes.
    server.set(
        "/GA/107556/json/ALL.json",
        Canned::ok(fixture_bytes(V2)).header("etag", "\"c\""),
    );
    let PollOutcome::Changed(second) = poll(&http, &url, &v, &limits).await.unwrap() else {
        panic!("new content is Changed");
    };
    assert_eq!(second.bytes.as_ref(), fixture_bytes(V2).as_slice());
}

#[tokio::test]
async fn retry_after_and_ap_quota_answers_mean_wait_not_retry() {
    let server = FixtureServer::start().await;
    let limits = FetchLimits::default();
    let http = client(&limits).unwrap();
    let none = HttpValidators::default();

    server.set(
        "/busy",
        Canned::status(503, "busy").header("retry-after", "7"),
    );
    match poll(&http, &server.url("/busy"), &none, &limits)
        .await
        .unwrap()
    {
        PollOutcome::Wait { delay, status } => {
            assert_eq!((delay, status), (Duration::from_secs(7), 503))
        }
        other => panic!("{other:?}"),
    }
    server.set(
        "/dated",
        Canned::status(429, "slow down")
            .header("date", "Wed, 06 Jan 2021 00:00:00 GMT")
            .header("retry-after", "Wed, 06 Jan 2021 00:00:30 GMT"),
    );
    match poll(&http, &server.url("/dated"), &none, &limits)
        .await
        .unwrap()
    {
        PollOutcome::Wait { delay, .. } => assert_eq!(delay, Duration::from_secs(30)),
        other => panic!("{other:?}"),
    }
    server.set(
        "/ap",
        Canned::status(403, r#"{"errorCode":403,"errorMessage":"Quota exceeded"}"#),
    );
    assert!(matches!(
        poll(&http, &server.url("/ap"), &none, &limits)
            .await
            .unwrap(),
        PollOutcome::Wait { status: 403, .. }
    ));
    server.set("/forbidden", Canned::status(403, "no"));
    let err = poll(&http, &server.url("/forbidden"), &none, &limits)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        FetchError::Status {
            status: 403,
            quota_exceeded: false,
            ..
        }
    ));
    assert!(!err.is_retryable(), "a plain 403 will not fix itself");
    server.set("/broken", Canned::status(500, "oops"));
    assert!(
        poll(&http, &server.url("/broken"), &none, &limits)
            .await
            .unwrap_err()
            .is_retryable()
    );
}

#[test]
fn backoff_is_jittered_exponential_and_capped() {
    let b = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };
    for failures in 1..=12 {
        let ceiling =
            Duration::from_millis(100 * (1u64 << (failures - 1))).min(Duration::from_secs(2));
        let samples: Vec<Duration> = (0..200).map(|_| b.delay(failures)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling), "failure {failures}");
        let distinct: std::collections::BTreeSet<_> = samples.iter().collect();
        assert!(distinct.len() > 100, "full jitter spreads the delays");
    }
}

#[tokio::test]
async fn a_failing_host_is_backed_off_for_every_feed_and_concurrency_is_limited_per_host() {
    let gate = HostGate::new(2);
    let backoff = Backoff {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(1),
    };
    // A 500 storm on one host: each failure backs the whole host off.
    for _ in 0..5 {
        gate.failed("results.enr.clarityelections.com", &backoff);
    }
    assert_eq!(gate.failures("results.enr.clarityelections.com"), 5);
    gate.back_off(
        "results.enr.clarityelections.com",
        Duration::from_millis(300),
    );
    assert!(
        gate.blocked_for("results.enr.clarityelections.com", Instant::now())
            .is_some()
    );
    assert!(
        gate.blocked_for("api.ap.org", Instant::now()).is_none(),
        "other hosts are not affected"
    );
    let started = Instant::now();
    let _permit = gate.enter("results.enr.clarityelections.com").await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "entering waits out the backoff"
    );
    gate.succeeded("results.enr.clarityelections.com");
    assert_eq!(gate.failures("results.enr.clarityelections.com"), 0);

    // Two permits per host: a third fetch waits until one is released.
    let a = gate.enter("api.ap.org").await;
    let _b = gate.enter("api.ap.org").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), gate.enter("api.ap.org"))
            .await
            .is_err()
    );
    drop(a);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), gate.enter("api.ap.org"))
            .await
            .is_ok()
    );
}

/// A credential goes only where the feed's URL points: the credentialed
/// client follows a redirect within the origin (or an http-to-https upgrade
/// of it) and refuses one to another origin, which never sees the header.
/// The public client still follows redirects as before.
#[tokio::test]
async fn a_credential_never_follows_a_redirect_to_another_origin() {
    use reqwest::header::{HeaderMap, HeaderValue};
    use votewire_ingestors::conditional::poll_with;
    use votewire_ingestors::http::credentialed_client_for;

    let source = FixtureServer::start().await;
    let elsewhere = FixtureServer::start().await;
    let limits = FetchLimits::default();
    let credentialed = credentialed_client_for(&limits, None).unwrap();
    let mut headers = HeaderMap::new();
    let mut key = HeaderValue::from_static("s3cret-key");
    key.set_sensitive(true);
    headers.insert("x-api-key", key);

    elsewhere.set("/collect", Canned::ok("{}"));
    source.set(
        "/away",
        Canned::status(302, "").header("location", &elsewhere.url("/collect")),
    );
    source.set(
        "/moved",
        Canned::status(301, "").header("location", &source.url("/here")),
    );
    source.set("/here", Canned::ok("{\"ok\":true}"));

    let refused = poll_with(
        &credentialed,
        &source.url("/away"),
        &HttpValidators::default(),
        &headers,
        &limits,
    )
    .await;
    match refused {
        Err(e @ FetchError::RedirectRefused { .. }) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("another origin"), "{e}");
        }
        other => panic!("a cross-origin redirect was not refused: {other:?}"),
    }
    assert!(
        elsewhere.seen().is_empty(),
        "the other origin was contacted: {:?}",
        elsewhere.seen()
    );

    let followed = poll_with(
        &credentialed,
        &source.url("/moved"),
        &HttpValidators::default(),
        &headers,
        &limits,
    )
    .await
    .unwrap();
    assert!(matches!(followed, PollOutcome::Changed(b) if &b.bytes[..] == b"{\"ok\":true}"));
    let here = source.seen();
    let (_, sent) = here.iter().find(|(p, _)| p == "/here").unwrap();
    assert_eq!(sent.get("x-api-key").unwrap(), "s3cret-key");

    // Without a credential the public client follows as it always did.
    let public = client(&limits).unwrap();
    assert!(matches!(
        poll(
            &public,
            &source.url("/away"),
            &HttpValidators::default(),
            &limits
        )
        .await,
        Ok(PollOutcome::Changed(_))
    ));
}

/// The feed's own `limits.timeout` bounds a poll, whatever the client's
/// default, and a huge error body is classified from its first few KB.
#[tokio::test]
async fn a_feeds_timeout_bounds_its_poll_and_an_error_body_is_classified_from_its_head() {
    let server = FixtureServer::start().await;
    let http = client(&FetchLimits::default()).unwrap();
    server.set("/slow", Canned::ok("late").delayed(Duration::from_secs(5)));
    let tight = FetchLimits {
        total_timeout: Duration::from_millis(500),
        ..FetchLimits::default()
    };
    let started = Instant::now();
    let e = poll(
        &http,
        &server.url("/slow"),
        &HttpValidators::default(),
        &tight,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the 500 ms feed timeout was not applied: {:?}",
        started.elapsed()
    );

    // A 403 whose 8 MB body starts with AP's quota words is a wait; one
    // whose 8 MB body does not is a plain 403. Either way only the head of
    // the body is read.
    let mut body = b"quota exceeded ".to_vec();
    body.resize(8 << 20, b'x');
    server.set("/quota", Canned::status(403, body));
    server.set("/forbidden", Canned::status(403, vec![b'x'; 8 << 20]));
    let limits = FetchLimits::default();
    assert!(matches!(
        poll(
            &http,
            &server.url("/quota"),
            &HttpValidators::default(),
            &limits
        )
        .await,
        Ok(PollOutcome::Wait { status: 403, .. })
    ));
    assert!(matches!(
        poll(
            &http,
            &server.url("/forbidden"),
            &HttpValidators::default(),
            &limits
        )
        .await,
        Err(FetchError::Status {
            status: 403,
            quota_exceeded: false,
            ..
        })
    ));
}
