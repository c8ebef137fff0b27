//! The hand-listed environment variables: the overrides that keep their
//! own names and meanings ([`ENV_OVERRIDES`]: `VOTEWIRE_TOPIC_VOTES`,
//! OpenTelemetry's `OTEL_…`, comma-separated lists, `grpc|http`), and the
//! variables that are not configuration (a subcommand's own arguments,
//! the runtime's, the local stack's). Tables, read by the configuration's
//! environment layer and by `votewire config env`.

use std::path::PathBuf;

use super::{OtlpProtocol, StateStoreKind, VotewireConfig};

/// One environment override: the variable and what it sets.
pub struct EnvOverride {
    /// The variable's name.
    pub var: &'static str,
    /// The field's path (`topics.votes`); a variable derived from the
    /// same path is another name for it.
    pub field: &'static str,
    /// What it sets, for `votewire config env`.
    pub describes: &'static str,
    pub(super) apply: fn(&mut VotewireConfig, &str) -> Result<(), String>,
}

/// Variables one subcommand reads as its own arguments (`--feeds`,
/// `--metrics-listen`, …) rather than as configuration: `votewire config
/// env` lists them after [`ENV_OVERRIDES`].
pub const SERVICE_VARIABLES: &[(&str, &str)] = &[
    ("VOTEWIRE_CONFIG", "every subcommand: the config file"),
    (
        "VOTEWIRE_FEEDS",
        "ingest, api, feeds: the feed registry (file or directory)",
    ),
    (
        "VOTEWIRE_INSTANCE",
        "ingest, aggregate: this instance's name",
    ),
    (
        "VOTEWIRE_METRICS_LISTEN",
        "ingest, aggregate: serve Prometheus /metrics here",
    ),
    (
        "VOTEWIRE_AGGREGATOR_GROUP",
        "aggregate: the fleet's consumer group",
    ),
    (
        "VOTEWIRE_DISAGREEMENT_VOTES",
        "aggregate: linked sources disagree past this many votes (default 0) ...",
    ),
    (
        "VOTEWIRE_DISAGREEMENT_PCT",
        "aggregate: ... and past this percentage of the unit's total (default 1.0)",
    ),
    (
        "VOTEWIRE_API_TOKENS_FILE",
        "api: lines of `<name> <read|admin> <token>`",
    ),
    (
        "VOTEWIRE_API_TOKENS",
        "api: the same lines, `;`-separated (values never printed)",
    ),
    (
        "VOTEWIRE_FIXTURES",
        "demo: the real election-results fixtures (default ../shared/fixtures)",
    ),
    (
        "VOTEWIRE_DEMO_LOGS",
        "demo: keep the services' logs in this directory (the chaos suite reads them)",
    ),
    (
        "VOTEWIRE_API_URL",
        "feeds list|show|history|add|<action>: the operator API to call",
    ),
    (
        "VOTEWIRE_API_TOKEN",
        "feeds …: the token sent to the operator API (value never printed)",
    ),
];

/// Variables the code reads directly rather than through an argument or
/// the config: `votewire config env` lists them too.
pub const RUNTIME_VARIABLES: &[(&str, &str)] = &[
    (
        "VOTEWIRE_FEED_SECRET_PREFIX",
        "ingest: the prefix of variables a feed's `{ env = … }` secret may name (default FEED_SECRET_)",
    ),
    (
        "VOTEWIRE_FEED_SECRETS_DIR",
        "ingest: the folder a feed's `{ file = … }` secret must be under",
    ),
    (
        "VOTEWIRE_FAULT",
        "ingest, debug builds only: a crash the tests inject (abort-after-produce)",
    ),
    (
        "VOTEWIRE_DEMO_RESTARTED",
        "demo: set by the demo when it reruns itself in the local stack's env",
    ),
];

/// Variables of the local stack (`deploy/local/stack`), the test harness
/// and the bench scripts, which a shell that loaded the stack's env file
/// carries: votewire reads none of them but accepts them.
pub const LOCAL_STACK_VARIABLES: &[&str] = &[
    "VOTEWIRE_KAFKA_NODES",
    "VOTEWIRE_KAFKA_PORT",
    "VOTEWIRE_KAFKA_CONTROLLER_PORT",
    "VOTEWIRE_KAFKA_HEAP",
    "VOTEWIRE_KAFKA_ADD_SCRAM",
    "VOTEWIRE_KAFKA_EXTRA_PROPERTIES",
    "VOTEWIRE_KAFKA_LIBS",
    "VOTEWIRE_STACK_KAFKA_LIBS",
    "VOTEWIRE_DYNAMODB_PORT",
    "VOTEWIRE_SFTP_HOST",
    "VOTEWIRE_SFTP_PORT",
    "VOTEWIRE_SFTP_USER",
    "VOTEWIRE_SFTP_KEY",
    "VOTEWIRE_SFTP_KNOWN_HOSTS",
    "VOTEWIRE_SFTP_ROOT",
    "VOTEWIRE_OTLP_GRPC_PORT",
    "VOTEWIRE_OTLP_HTTP_PORT",
    "VOTEWIRE_OTLP_HTTP_ENDPOINT",
    "VOTEWIRE_OTLP_RECEIVER_GRPC_PORT",
    "VOTEWIRE_OTLP_RECEIVER_HTTP_PORT",
    "VOTEWIRE_OTLP_RECEIVER_URL",
    "VOTEWIRE_JAEGER_QUERY_PORT",
    "VOTEWIRE_JAEGER_QUERY_GRPC_PORT",
    "VOTEWIRE_JAEGER_QUERY_URL",
    "VOTEWIRE_JAEGER_BIN",
    "VOTEWIRE_STACK_JAEGER_BIN",
    "VOTEWIRE_VENV",
    "VOTEWIRE_PYTHON",
    "VOTEWIRE_CHROMIUM",
    "VOTEWIRE_BROWSER_MODULES",
    "VOTEWIRE_DEMO_SECONDS",
    "VOTEWIRE_BENCH_OTLP",
    "VOTEWIRE_FUZZ_SECONDS",
    "VOTEWIRE_FUZZ_JOBS",
];

/// Every `VOTEWIRE_…` variable that overrides configuration, in one list.
pub const ENV_OVERRIDES: &[EnvOverride] = &[
    EnvOverride {
        var: "VOTEWIRE_STATE_DIR",
        field: "state_dir",
        describes: "state_dir",
        apply: |c, v| {
            c.state_dir = PathBuf::from(v);
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
        field: "kafka.bootstrap_servers",
        describes: "kafka.bootstrap_servers",
        apply: |c, v| {
            c.kafka.bootstrap_servers = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_KAFKA_MSK_IAM_REGION",
        field: "kafka.msk_iam_region",
        describes: "kafka.msk_iam_region (IAM access control on Amazon MSK)",
        apply: |c, v| {
            c.kafka.msk_iam_region = (!v.trim().is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_KAFKA_CLIENT_ID",
        field: "kafka.client_id",
        describes: "kafka.client_id",
        apply: |c, v| {
            c.kafka.client_id = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPIC_VOTES",
        field: "topics.votes",
        describes: "topics.votes",
        apply: |c, v| {
            c.topics.votes = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPIC_SNAPSHOTS",
        field: "topics.snapshots",
        describes: "topics.snapshots",
        apply: |c, v| {
            c.topics.snapshots = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPIC_RESULTS",
        field: "topics.results",
        describes: "topics.results",
        apply: |c, v| {
            c.topics.results = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPIC_RESULTS_TEST",
        field: "topics.results_test",
        describes: "topics.results_test",
        apply: |c, v| {
            c.topics.results_test = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPIC_ALERTS",
        field: "topics.alerts",
        describes: "topics.alerts",
        apply: |c, v| {
            c.topics.alerts = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPIC_FEED_STATUS",
        field: "topics.feed_status",
        describes: "topics.feed_status",
        apply: |c, v| {
            c.topics.feed_status = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPIC_DLQ",
        field: "topics.dlq",
        describes: "topics.dlq",
        apply: |c, v| {
            c.topics.dlq = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPICS_CONTEST_PARTITIONS",
        field: "topics.contest_partitions",
        describes: "topics.contest_partitions",
        apply: |c, v| {
            c.topics.contest_partitions = positive(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPICS_OTHER_PARTITIONS",
        field: "topics.other_partitions",
        describes: "topics.other_partitions",
        apply: |c, v| {
            c.topics.other_partitions = positive(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TOPICS_REPLICATION_FACTOR",
        field: "topics.replication_factor",
        describes: "topics.replication_factor",
        apply: |c, v| {
            c.topics.replication_factor = positive(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_STATE_STORE",
        field: "state_store.kind",
        describes: "state_store.kind (dynamodb | embedded)",
        apply: |c, v| {
            c.state_store.kind = match v {
                "dynamodb" => StateStoreKind::Dynamodb,
                "embedded" => StateStoreKind::Embedded,
                other => return Err(format!("{other:?} is not dynamodb or embedded")),
            };
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_DYNAMODB_ENDPOINT",
        field: "state_store.endpoint_url",
        describes: "state_store.endpoint_url",
        apply: |c, v| {
            c.state_store.endpoint_url = (!v.trim().is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_AWS_REGION",
        field: "state_store.region",
        describes: "state_store.region",
        apply: |c, v| {
            c.state_store.region = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_ARCHIVE_S3_BUCKET",
        field: "archive.s3_bucket",
        describes: "archive.s3_bucket",
        apply: |c, v| {
            c.archive.s3_bucket = (!v.trim().is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_ARCHIVE_S3_ENDPOINT",
        field: "archive.s3_endpoint_url",
        describes: "archive.s3_endpoint_url",
        apply: |c, v| {
            c.archive.s3_endpoint_url = (!v.trim().is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_TABLE_PREFIX",
        field: "state_store.table_prefix",
        describes: "state_store.table_prefix",
        apply: |c, v| {
            c.state_store.table_prefix = v.to_string();
            Ok(())
        },
    },
    // OpenTelemetry's own names, for collectors and platforms that set
    // them; the VOTEWIRE_OTLP_* names win when both are set.
    EnvOverride {
        var: "OTEL_EXPORTER_OTLP_ENDPOINT",
        field: "otlp.endpoint",
        describes: "otlp.endpoint (OpenTelemetry's name; VOTEWIRE_OTLP_ENDPOINT wins)",
        apply: |c, v| {
            c.otlp.endpoint = (!v.trim().is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    EnvOverride {
        var: "OTEL_EXPORTER_OTLP_PROTOCOL",
        field: "otlp.protocol",
        describes: "otlp.protocol: grpc or http/protobuf (VOTEWIRE_OTLP_PROTOCOL wins)",
        apply: |c, v| {
            c.otlp.protocol = match v {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::Http,
                "http/json" => {
                    return Err("http/json is not supported; use http/protobuf or grpc".into());
                }
                _ => return Err("expected grpc or http/protobuf".into()),
            };
            Ok(())
        },
    },
    EnvOverride {
        var: "OTEL_EXPORTER_OTLP_TIMEOUT",
        field: "otlp.timeout_ms",
        describes: "otlp.timeout_ms, in milliseconds (OpenTelemetry's name)",
        apply: |c, v| {
            c.otlp.timeout_ms = v
                .parse()
                .map_err(|_| "expected a whole number of milliseconds".to_string())?;
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_OTLP_ENDPOINT",
        field: "otlp.endpoint",
        describes: "otlp.endpoint",
        apply: |c, v| {
            c.otlp.endpoint = (!v.trim().is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_OTLP_PROTOCOL",
        field: "otlp.protocol",
        describes: "otlp.protocol (grpc|http)",
        apply: |c, v| {
            c.otlp.protocol = match v {
                "grpc" => OtlpProtocol::Grpc,
                "http" => OtlpProtocol::Http,
                _ => return Err("expected grpc or http".into()),
            };
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_API_LISTEN",
        field: "api.listen",
        describes: "api.listen",
        apply: |c, v| {
            c.api.listen = v.to_string();
            Ok(())
        },
    },
    EnvOverride {
        var: "VOTEWIRE_API_TRUSTED_PROXIES",
        field: "api.trusted_proxies",
        describes: "api.trusted_proxies (comma-separated CIDRs)",
        apply: |c, v| {
            c.api.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            Ok(())
        },
    },
];

/// A whole number above zero (partition counts, replication factors).
fn positive(v: &str) -> Result<i32, String> {
    match v.trim().parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number above 0".into()),
    }
}
