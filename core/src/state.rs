//! The DynamoDB client for feed state, cursors and leases.
//!
//! Locally the endpoint is the moto server started by `deploy/local/stack`;
//! in production `endpoint_url` is unset and the client talks to the real
//! regional endpoint with the normal AWS credential chain (task role on
//! Fargate). Credentials are never part of votewire's own configuration.
//!
//! Every call made through this client has an operation timeout and a connect
//! timeout, so a hung endpoint turns into a typed, retryable error instead of
//! a stuck ingestor.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};

use crate::config::StateStoreConfig;

/// Builds a DynamoDB client for `cfg` with the normal AWS credential chain.
pub async fn dynamodb_client(cfg: &StateStoreConfig) -> aws_sdk_dynamodb::Client {
    dynamodb_client_with_credentials(cfg, None).await
}

/// Builds a DynamoDB client for `cfg`, with explicit credentials when given
/// (tests against the local emulator) or the normal chain otherwise.
pub async fn dynamodb_client_with_credentials(
    cfg: &StateStoreConfig,
    credentials: Option<Credentials>,
) -> aws_sdk_dynamodb::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_millis(cfg.operation_timeout_ms))
        .operation_timeout(Duration::from_millis(cfg.operation_timeout_ms * 2))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .timeout_config(timeouts);
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    if let Some(endpoint) = &cfg.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    aws_sdk_dynamodb::Client::new(&shared)
}

/// The full name of a table for this deployment.
pub fn table_name(cfg: &StateStoreConfig, table: &str) -> String {
    format!("{}{table}", cfg.table_prefix)
}

/// Builds an S3 client for the raw archive: path-style addressing (what
/// local S3 APIs such as moto serve), the state store's region and
/// timeouts.
pub async fn s3_client(
    archive: &crate::config::ArchiveConfig,
    store: &StateStoreConfig,
) -> aws_sdk_s3::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_millis(store.operation_timeout_ms * 4))
        .operation_timeout(Duration::from_millis(store.operation_timeout_ms * 8))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(store.region.clone()))
        .timeout_config(timeouts);
    if let Some(endpoint) = &archive.s3_endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
