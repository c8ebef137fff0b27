//! The raw archive in S3, against moto's S3 API on the local stack: a
//! payload is stored once by its sha256, referenced as `s3://…`, and read
//! back byte for byte; reads are capped.

use sha2::Digest;
use votewire_core::config::ArchiveConfig;
use votewire_core::state::s3_client;
use votewire_ingestors::archive::RawArchive;
use votewire_tests::{Stack, fixture_bytes, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_payloads_are_archived_once_in_s3_and_read_back() {
    let stack = Stack::load();
    let (store_cfg, _) = stack.dynamodb().await;
    let bucket = unique("votewire-raw").to_lowercase();
    let cfg = ArchiveConfig {
        s3_bucket: Some(bucket.clone()),
        s3_prefix: "raw/".into(),
        s3_endpoint_url: Some(stack.var("VOTEWIRE_DYNAMODB_ENDPOINT")),
    };
    let client = s3_client(&cfg, &store_cfg).await;
    let archive = RawArchive::s3(client.clone(), &bucket, "raw/");
    archive.ensure_bucket().await.unwrap();
    archive.ensure_bucket().await.expect("idempotent");

    // One of the real HTML error pages Clarity served as ALL.json.
    let payload = fixture_bytes(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/001_20210106T000831Z_v273739/ALL.json",
    );
    let (sha, first) = archive.store(&payload).await.unwrap();
    let (_, second) = archive.store(&payload).await.unwrap();
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&payload)));
    assert_eq!(first, second);
    assert_eq!(
        first,
        format!("s3://{bucket}/raw/{}/{}/{sha}", &sha[..2], &sha[2..4])
    );
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(1), "stored once");
    assert_eq!(
        archive.load(&sha, 64 << 20).await.as_deref(),
        Some(payload.as_slice())
    );
    assert!(archive.load(&sha, 16).await.is_none(), "reads are capped");
    assert!(archive.load("not-a-sha", 1 << 20).await.is_none());
}
