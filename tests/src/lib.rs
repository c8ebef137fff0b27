//! Support for votewire's integration tests.
//!
//! Integration tests talk to the real local stack started by
//! `deploy/local/stack up` (Apache Kafka, moto, a private sshd, Jaeger and the
//! OTLP metrics receiver).
//! This module finds that stack through the `stack.env` file `up` writes,
//! and **fails** (never skips) with the service's name and the command to
//! start it when something is unreachable.
//!
//! Every test isolates itself with [`unique`] names: fresh topics, consumer
//! groups, table prefixes and SFTP directories, so tests run in parallel and
//! can be re-run on a dirty stack.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use votewire_core::config::{KafkaConfig, OtlpConfig, OtlpProtocol, StateStoreConfig};

pub mod http;
pub mod jaeger;
pub mod kafka_cluster;
pub mod pipeline;
pub mod proxy;
pub mod replay;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

/// A name no other test (or earlier run) uses: `prefix-<uuid v7 tail>`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{prefix}-{}", &id[id.len() - 16..])
}

/// The path of a fixture under `../shared/fixtures` (or `$VOTEWIRE_FIXTURES`).
/// Panics, naming the file, when it is missing: a test must not pass without
/// its data.
pub fn fixture(relative: &str) -> PathBuf {
    let base = std::env::var_os("VOTEWIRE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/fixtures"));
    let path = base.join(relative);
    assert!(
        path.is_file(),
        "fixture {} is missing: tests read the real files in place from ../shared/fixtures \
         (or $VOTEWIRE_FIXTURES); they are never copied into the repo",
        path.display()
    );
    path
}

/// Reads a fixture's bytes (see [`fixture`]).
pub fn fixture_bytes(relative: &str) -> Vec<u8> {
    let path = fixture(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

const START_HINT: &str = "start the local stack with `deploy/local/stack up`";

/// Reads a child's output on a thread until it ends and returns all of it
/// from the join handle. Each line for which `watch` returns a value sends
/// it on the channel as it arrives (a running demo names its page, or says
/// its night started).
pub fn read_lines<T: Send + 'static>(
    stream: impl std::io::Read + Send + 'static,
    watch: impl Fn(&str) -> Option<T> + Send + 'static,
) -> (
    std::thread::JoinHandle<String>,
    std::sync::mpsc::Receiver<T>,
) {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(v) = watch(&line) {
                let _ = tx.send(v);
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (reader, rx)
}

/// A free TCP port on 127.0.0.1 (for a private broker, sshd or proxy).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on 127.0.0.1:`port`; panics, naming
/// `what`, after a minute.
pub fn wait_for_port(port: u16, what: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < until,
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How to reach the local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    vars: BTreeMap<String, String>,
}

impl Stack {
    /// Reads `$VOTEWIRE_STATE_DIR/stack.env` (default `<repo>/.votewire`);
    /// variables already in the environment win.
    pub fn load() -> Stack {
        let state_dir = std::env::var_os("VOTEWIRE_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".votewire"));
        let file = state_dir.join("stack.env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "the local stack is not set up ({}: {e}); {START_HINT}",
                file.display()
            )
        });
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        for (k, v) in std::env::vars() {
            if k.starts_with("VOTEWIRE_") || k.starts_with("AWS_") {
                vars.insert(k, v);
            }
        }
        Stack { vars }
    }

    /// Replaces one variable in this view of the stack (for harness tests).
    pub fn set_var_for_test(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_string(), value.to_string());
    }

    /// One stack variable; panics naming it when absent.
    pub fn var(&self, key: &str) -> String {
        self.vars
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("stack.env has no {key}; {START_HINT}"))
    }

    /// Kafka settings for the local broker, after proving it answers a
    /// metadata request.
    pub fn kafka(&self) -> KafkaConfig {
        let kafka = KafkaConfig {
            bootstrap_servers: self.var("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"),
            request_timeout_ms: 5_000,
            ..KafkaConfig::default()
        };
        if let Err(e) = votewire_core::kafka::broker_ids(&kafka) {
            panic!(
                "Kafka at {} is unreachable: {e}; {START_HINT}",
                kafka.bootstrap_servers
            );
        }
        kafka
    }

    /// The replication factor for topics on the local cluster (3 on the
    /// default three nodes, 1 on one), as `stack.env` says.
    pub fn replication_factor(&self) -> i32 {
        let v = self.var("VOTEWIRE_TOPICS_REPLICATION_FACTOR");
        v.parse()
            .unwrap_or_else(|_| panic!("VOTEWIRE_TOPICS_REPLICATION_FACTOR={v:?} is not a number"))
    }

    /// State-store settings for the local moto endpoint with a fresh table
    /// prefix, after proving it answers ListTables.
    pub async fn dynamodb(&self) -> (StateStoreConfig, aws_sdk_dynamodb_client::Client) {
        let cfg = StateStoreConfig {
            endpoint_url: Some(self.var("VOTEWIRE_DYNAMODB_ENDPOINT")),
            table_prefix: format!("{}_", unique("t").replace('-', "_")),
            operation_timeout_ms: 3_000,
            ..StateStoreConfig::default()
        };
        let credentials = aws_sdk_dynamodb_client::config::Credentials::new(
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "votewire-local-stack",
        );
        let client =
            votewire_core::state::dynamodb_client_with_credentials(&cfg, Some(credentials)).await;
        if let Err(e) = client.list_tables().send().await {
            panic!(
                "DynamoDB endpoint (moto) at {} is unreachable: {}; {START_HINT}",
                self.var("VOTEWIRE_DYNAMODB_ENDPOINT"),
                aws_sdk_dynamodb_client::error::DisplayErrorContext(e)
            );
        }
        (cfg, client)
    }

    /// OTLP export settings for the local receiver.
    pub fn otlp(&self, protocol: OtlpProtocol) -> OtlpConfig {
        let endpoint = match protocol {
            OtlpProtocol::Grpc => self.var("VOTEWIRE_OTLP_ENDPOINT"),
            OtlpProtocol::Http => self.var("VOTEWIRE_OTLP_HTTP_ENDPOINT"),
        };
        OtlpConfig {
            endpoint: Some(endpoint),
            protocol,
            timeout_ms: 3_000,
        }
    }

    /// The spans of trace `trace_id` (lower-case hex) as the stack's Jaeger
    /// serves them (see [`jaeger`]), waiting up to `within` for at least
    /// `at_least` of them.
    pub async fn traced_spans(
        &self,
        trace_id: &str,
        at_least: usize,
        within: Duration,
    ) -> Vec<serde_json::Value> {
        let base = self.var("VOTEWIRE_JAEGER_QUERY_URL");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = jaeger::trace_spans(&base, trace_id)
                .await
                .unwrap_or_else(|e| panic!("Jaeger at {base} is unreachable: {e}; {START_HINT}"));
            if spans.len() >= at_least || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The spans of every trace holding an `operation` span of `service`,
    /// from the stack's Jaeger.
    pub async fn spans_of(&self, service: &str, operation: &str) -> Vec<serde_json::Value> {
        let base = self.var("VOTEWIRE_JAEGER_QUERY_URL");
        jaeger::find_spans(&base, service, operation)
            .await
            .unwrap_or_else(|e| panic!("Jaeger at {base} is unreachable: {e}; {START_HINT}"))
    }

    /// SFTP connection parameters; see [`SftpTarget`].
    pub fn sftp(&self) -> SftpTarget {
        SftpTarget {
            host: self.var("VOTEWIRE_SFTP_HOST"),
            port: self
                .var("VOTEWIRE_SFTP_PORT")
                .parse()
                .expect("numeric SFTP port"),
            user: self.var("VOTEWIRE_SFTP_USER"),
            key: PathBuf::from(self.var("VOTEWIRE_SFTP_KEY")),
            known_hosts: PathBuf::from(self.var("VOTEWIRE_SFTP_KNOWN_HOSTS")),
            local_root: PathBuf::from(self.var("VOTEWIRE_SFTP_ROOT")),
        }
    }
}

/// Where the local SFTP server is and how to log in.
#[derive(Debug, Clone)]
pub struct SftpTarget {
    /// The server's host (127.0.0.1).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The user the tests log in as.
    pub user: String,
    /// That user's private key file.
    pub key: PathBuf,
    /// known_hosts holding the server's host key.
    pub known_hosts: PathBuf,
    /// The chroot on this machine's filesystem: `/drop/x` over SFTP is
    /// `<local_root>/drop/x` here.
    pub local_root: PathBuf,
}

impl SftpTarget {
    /// Creates a fresh directory under `/drop` and returns (its SFTP path,
    /// its local path).
    pub fn fresh_dir(&self, prefix: &str) -> (String, PathBuf) {
        let name = unique(prefix);
        let local = self.local_root.join("drop").join(&name);
        std::fs::create_dir_all(&local)
            .unwrap_or_else(|e| panic!("creating SFTP test dir {}: {e}", local.display()));
        (format!("/drop/{name}"), local)
    }
}

/// Re-exported so tests and this module agree on one SDK version.
pub use aws_sdk_dynamodb as aws_sdk_dynamodb_client;
