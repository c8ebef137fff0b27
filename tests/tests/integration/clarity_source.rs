//! Clarity's two-step poll (`current_ver.txt`, then the versioned file) and
//! AP's `nextrequest` cursor, against a real local HTTP server.

use votewire_ingestors::http::{FetchLimits, client};
use votewire_ingestors::sources::ap::ApCursor;
use votewire_ingestors::sources::clarity::{ClarityCursor, ClarityPoll, poll_clarity};
use votewire_tests::fixture_bytes;
use votewire_tests::http::{Canned, FixtureServer};

const SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
const V0: &str = "000_20210105T224741Z_v273729/ALL.json";
const V1: &str = "001_20210106T000831Z_v273739/ALL.json";

#[tokio::test]
async fn a_version_bump_fetches_once_and_the_same_version_fetches_nothing() {
    let server = FixtureServer::start().await;
    let limits = FetchLimits::default();
    let http = client(&limits).unwrap();
    let base = server.url("/GA/107556");
    let v0 = fixture_bytes(&format!("{SERIES}/{V0}"));
    let v1 = fixture_bytes(&format!("{SERIES}/{V1}"));
    server.set("/GA/107556/current_ver.txt", Canned::ok("273729\n"));
    server.set("/GA/107556/273729/json/ALL.json", Canned::ok(v0.clone()));

    let mut cursor = ClarityCursor::default();
    let ClarityPoll::Changed { version, body } =
        poll_clarity(&http, &base, "json/ALL.json", &cursor, &limits, false)
            .await
            .unwrap()
    else {
        panic!("first poll fetches the file");
    };
    assert_eq!(version, "273729");
    assert_eq!(body.bytes.as_ref(), v0.as_slice());
    cursor.version = Some(version);
    cursor.sha256 = Some(body.sha256.clone());

    let before = server.seen().len();
    match poll_clarity(&http, &base, "json/ALL.json", &cursor, &limits, false)
        .await
        .unwrap()
    {
        ClarityPoll::SameVersion(v) => assert_eq!(v, "273729"),
        other => panic!("expected SameVersion, got {other:?}"),
    }
    let seen = server.seen();
    assert_eq!(seen.len(), before + 1, "only current_ver.txt was requested");
    assert!(seen.last().unwrap().0.ends_with("current_ver.txt"));

    // The version moves but the file is byte-identical: not a new payload.
    server.set("/GA/107556/current_ver.txt", Canned::ok("273730"));
    server.set("/GA/107556/273730/json/ALL.json", Canned::ok(v0.clone()));
    match poll_clarity(&http, &base, "json/ALL.json", &cursor, &limits, false)
        .await
        .unwrap()
    {
        ClarityPoll::Unchanged { version } => assert_eq!(version, "273730"),
        other => panic!("expected Unchanged, got {other:?}"),
    }

    // A real change under a new version.
    server.set("/GA/107556/current_ver.txt", Canned::ok("273739"));
    server.set("/GA/107556/273739/json/ALL.json", Canned::ok(v1.clone()));
    let ClarityPoll::Changed { version, body } =
        poll_clarity(&http, &base, "json/ALL.json", &cursor, &limits, false)
            .await
            .unwrap()
    else {
        panic!("new content is Changed");
    };
    assert_eq!(version, "273739");
    assert_eq!(body.bytes.as_ref(), v1.as_slice());

    // New bytes under the same version (FORMATS §8): only a revalidating
    // poll sees them.
    let cursor = ClarityCursor {
        version: Some("273739".into()),
        sha256: Some(body.sha256.clone()),
    };
    server.set("/GA/107556/273739/json/ALL.json", Canned::ok(v0.clone()));
    assert!(matches!(
        poll_clarity(&http, &base, "json/ALL.json", &cursor, &limits, false).await,
        Ok(ClarityPoll::SameVersion(_))
    ));
    match poll_clarity(&http, &base, "json/ALL.json", &cursor, &limits, true).await {
        Ok(ClarityPoll::Changed { body, .. }) => assert_eq!(body.bytes.as_ref(), v0.as_slice()),
        other => panic!("a revalidating poll sees the new bytes, got {other:?}"),
    }
    server.set("/GA/107556/273739/json/ALL.json", Canned::ok(v1.clone()));
    assert!(matches!(
        poll_clarity(&http, &base, "json/ALL.json", &cursor, &limits, true).await,
        Ok(ClarityPoll::Unchanged { .. })
    ));
}

#[tokio::test]
async fn an_html_error_page_as_the_version_is_a_retryable_typed_error() {
    let server = FixtureServer::start().await;
    let limits = FetchLimits::default();
    let http = client(&limits).unwrap();
    server.set(
        "/GA/1/current_ver.txt",
        Canned::ok("<html><body>Service Unavailable</body></html>"),
    );
    let err = poll_clarity(
        &http,
        &server.url("/GA/1"),
        "json/ALL.json",
        &ClarityCursor::default(),
        &limits,
        false,
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("current_ver.txt"), "{text}");
    // No versioned file was requested.
    assert!(
        server
            .seen()
            .iter()
            .all(|(p, _)| p.ends_with("current_ver.txt"))
    );

    // A full-size error page is refused at the 64-byte cap, same outcome.
    server.set(
        "/GA/1/current_ver.txt",
        Canned::ok(format!("<html>{}</html>", "x".repeat(10_000))),
    );
    let err = poll_clarity(
        &http,
        &server.url("/GA/1"),
        "json/ALL.json",
        &ClarityCursor::default(),
        &limits,
        false,
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_retry_after_on_the_versioned_file_is_a_wait() {
    let server = FixtureServer::start().await;
    let limits = FetchLimits::default();
    let http = client(&limits).unwrap();
    server.set("/GA/2/current_ver.txt", Canned::ok("5"));
    server.set(
        "/GA/2/5/json/ALL.json",
        Canned::status(503, "busy").header("retry-after", "7"),
    );
    let got = poll_clarity(
        &http,
        &server.url("/GA/2"),
        "json/ALL.json",
        &ClarityCursor::default(),
        &limits,
        false,
    )
    .await;
    assert!(matches!(got, Ok(ClarityPoll::Wait(_))), "{got:?}");
}

#[test]
fn ap_cursor_follows_progress_and_refuses_loops() {
    let mut c = ApCursor::new("https://api.ap.example/v2/elections/2024-11-05");
    assert_eq!(c.url(), "https://api.ap.example/v2/elections/2024-11-05");
    assert!(c.advance(Some("https://api.ap.example/next?a=1")));
    assert_eq!(c.url(), "https://api.ap.example/next?a=1");
    assert!(c.advance(Some("https://api.ap.example/next?a=2")));
    // The same link again makes no progress: back to the base.
    assert!(!c.advance(Some("https://api.ap.example/next?a=2")));
    assert_eq!(c.url(), "https://api.ap.example/v2/elections/2024-11-05");
    // A link we already followed is a loop, too.
    assert!(!c.advance(Some("https://api.ap.example/next?a=1")));
    assert_eq!(c.url(), "https://api.ap.example/v2/elections/2024-11-05");
    // No nextrequest at all: stay on the base.
    assert!(!c.advance(None));
    assert!(c.advance(Some("https://api.ap.example/next?a=3")));
    c.reset();
    assert_eq!(c.url(), "https://api.ap.example/v2/elections/2024-11-05");
}
