//! The typed votewire configuration.
//!
//! A configuration is read from a TOML file (every field has a default, so an
//! empty file is valid) and then overridden by environment variables: every
//! field has one named by its path ([`vars`]), a few have older or
//! OpenTelemetry's names too ([`ENV_OVERRIDES`]), and every variable named
//! `VOTEWIRE_KAFKA_PROPERTY_<NAME>` sets the librdkafka property `<name>`
//! with `_` turned into `.` (for example
//! `VOTEWIRE_KAFKA_PROPERTY_SASL_MECHANISMS=SCRAM-SHA-512`). [`reference`]
//! lists them all, for `votewire config env` and docs/configuration.md.
//!
//! Secrets are never stored in this struct's file form: SASL passwords and AWS
//! credentials come from the environment (or the normal AWS credential chain).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod overrides;
mod redact;
pub mod reference;
pub mod vars;

pub use overrides::{
    ENV_OVERRIDES, EnvOverride, LOCAL_STACK_VARIABLES, RUNTIME_VARIABLES, SERVICE_VARIABLES,
};
pub use redact::{redact_url, redact_urls_in};

/// Why a configuration could not be loaded. None of these is helped by a
/// retry: the operator has to fix the file or the environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a configuration: bad TOML, an unknown field, a
    /// value of the wrong kind.
    #[error("parsing config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A variable's value is not one its field takes.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What the field takes.
        reason: String,
    },
    /// A misspelt variable would otherwise be ignored and its setting
    /// silently left at the default.
    #[error(
        "environment variable {var} is not one votewire reads{}; `votewire config env` lists them",
        nearest.as_ref().map(|n| format!(" (did you mean {n}?)")).unwrap_or_default()
    )]
    UnknownVariable {
        /// The variable set.
        var: String,
        /// The known name nearest to it, when one is near.
        nearest: Option<&'static str>,
    },
    /// Two names for one field (`VOTEWIRE_TOPIC_VOTES` and the
    /// `VOTEWIRE_TOPICS_VOTES` named by its path) that disagree: which one
    /// wins would be a guess.
    #[error(
        "environment variables {first} and {second} both set {field}, to different values; unset one (`votewire config env` lists the names of each field)"
    )]
    ConflictingVariables {
        /// The field both set.
        field: String,
        /// One of its names.
        first: String,
        /// The other.
        second: String,
    },
    /// The placeholder `config show` prints in place of a secret, read
    /// back as a value.
    #[error(
        "{field} holds {REDACTED}, the placeholder `votewire config show` prints for a secret; put the secret back (from the environment or a file)"
    )]
    RedactedPlaceholder {
        /// The field holding it.
        field: String,
    },
}

/// The whole configuration of a votewire process.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VotewireConfig {
    /// Directory for local state: logs, the raw payload archive, the
    /// embedded state store. Git-ignored; default `.votewire`.
    pub state_dir: PathBuf,
    /// `[kafka]`: the brokers and how to reach them.
    pub kafka: KafkaConfig,
    /// `[topics]`: the topics' names, partitions and settings.
    pub topics: TopicsConfig,
    /// `[state_store]`: where feed state lives.
    pub state_store: StateStoreConfig,
    /// `[archive]`: where raw payloads are kept.
    pub archive: ArchiveConfig,
    /// `[otlp]`: where spans and metrics go.
    pub otlp: OtlpConfig,
    /// `[api]`: the operator API.
    pub api: ApiConfig,
    /// `[log]`: how the services log.
    pub log: LogConfig,
}

/// Where raw payloads are archived: local files under `state_dir/archive`
/// unless an S3 bucket is named.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// An S3 bucket for raw payloads; unset means local files.
    pub s3_bucket: Option<String>,
    /// Key prefix inside the bucket.
    pub s3_prefix: String,
    /// An S3-API endpoint URL (moto locally); unset means AWS for
    /// `state_store.region`.
    pub s3_endpoint_url: Option<String>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            s3_bucket: None,
            s3_prefix: "raw/".into(),
            s3_endpoint_url: None,
        }
    }
}

/// How to reach the Kafka-protocol cluster. Its `Debug` form (what `config
/// show` prints) redacts every property that holds a secret.
#[derive(Clone, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list (`bootstrap.servers`).
    pub bootstrap_servers: String,
    /// Prefix for `client.id`; each service appends its role.
    pub client_id: String,
    /// Any librdkafka property, passed through as given (for example
    /// `"security.protocol" = "SASL_SSL"`). These win over votewire's
    /// defaults, except the delivery guarantees (`enable.idempotence`,
    /// `acks`, `enable.auto.commit`), which are not negotiable.
    #[serde(serialize_with = "serialize_redacted")]
    pub properties: BTreeMap<String, String>,
    /// Timeout for admin and metadata calls, in milliseconds.
    pub request_timeout_ms: u64,
    /// Amazon MSK with IAM access control in this region: every client
    /// speaks `SASL_SSL` + `OAUTHBEARER` with tokens signed by the process's
    /// AWS credentials (see `votewire_core::msk_iam`). Unset: no IAM.
    pub msk_iam_region: Option<String>,
}

/// Whether a librdkafka property holds a secret (`sasl.password`,
/// `ssl.key.password`, `sasl.oauthbearer.client.secret`, a JAAS config, a
/// PEM key, ...): matched on the name, so a property added later is
/// redacted too.
pub fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "private",
        "credential",
        // `sasl.oauthbearer.config` holds `clientSecret=…`.
        "oauthbearer.config",
    ]
    .iter()
    .any(|s| n.contains(s))
        || n.ends_with(".key")
}

/// A value printed in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Replaces the credentials and secret query values of every URL in a
/// serialised configuration with [`REDACTED`] ([`redact_url`]).
fn redact_url_credentials(tree: &mut serde_json::Value) {
    use serde_json::Value;
    match tree {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(shown) = redact_url(s) {
                *s = shown;
            }
        }
        Value::Object(map) => map.values_mut().for_each(redact_url_credentials),
        Value::Array(items) => items.iter_mut().for_each(redact_url_credentials),
        _ => {}
    }
}

/// The Kafka properties as `config show` prints them: secrets redacted.
fn serialize_redacted<S: serde::Serializer>(
    properties: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(properties.len()))?;
    for (k, v) in properties {
        map.serialize_entry(k, if is_secret_property(k) { REDACTED } else { v })?;
    }
    map.end()
}

impl VotewireConfig {
    /// The effective configuration as TOML, the form `--config` reads,
    /// with every secret-holding Kafka property redacted, and the user
    /// name and password of any URL (`https://user:pass@host`)
    /// (`config show`).
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        use serde::ser::Error;
        let mut tree = serde_json::to_value(self).map_err(toml::ser::Error::custom)?;
        redact_url_credentials(&mut tree);
        let shown: VotewireConfig =
            serde_json::from_value(tree).map_err(toml::ser::Error::custom)?;
        toml::to_string_pretty(&shown)
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_property(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("properties", &properties)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("msk_iam_region", &self.msk_iam_region)
            .finish()
    }
}

/// Topic names and their declared shapes.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// Normalized `VoteCell` upserts; compacted, partitioned by contest.
    pub votes: String,
    /// One `SnapshotManifest` per accepted or rejected payload.
    pub snapshots: String,
    /// `ContestResult` upserts published by the aggregator; compacted.
    /// Live (and replayed) data only: what newsrooms read.
    pub results: String,
    /// The `ContestResult`s of publisher test data (cells marked `test`,
    /// as AP's and Clarity's test feeds are, or a feed with
    /// `mode = "test"`); compacted. Test cells are never merged with live
    /// ones, and their results never reach `results`.
    pub results_test: String,
    /// `FeedStatus` health transitions; compacted by feed.
    pub feed_status: String,
    /// `SourceDisagreement` alerts: linked sources disagreeing at a unit
    /// beyond the aggregator's threshold; compacted, a tombstone once they
    /// agree again.
    pub alerts: String,
    /// `DeadLetter` records for rejected payloads.
    pub dlq: String,
    /// Partition count for the votes and results topics. A contest's
    /// partition is `hash(election, contest) % partitions`, so choose it
    /// before the night: adding partitions later moves contests.
    pub contest_partitions: i32,
    /// Partition count for the other topics.
    pub other_partitions: i32,
    /// Replication factor of every topic votewire creates (default 3, as
    /// MSK's `min.insync.replicas=2` requires; 1 for a one-broker cluster).
    /// `topics ensure` refuses one above the broker count or below the
    /// `min.insync.replicas` that applies.
    pub replication_factor: i32,
    /// Topic-level settings for every topic votewire creates (for example
    /// `"min.insync.replicas"`, `"retention.ms"`, `"segment.ms"`,
    /// `"min.cleanable.dirty.ratio"`), compared on topics that exist.
    /// `cleanup.policy` is votewire's to set and is refused here.
    pub config: BTreeMap<String, String>,
}

/// Where feed state, cursors and leases live.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StateStoreConfig {
    /// `dynamodb` (the production store, shared by a fleet) or `embedded`
    /// (one local redb file, for a single ingestor process).
    pub kind: StateStoreKind,
    /// The embedded store's file; unset means `state_dir/feed-state.redb`.
    pub embedded_path: Option<PathBuf>,
    /// A DynamoDB-API endpoint URL; `None` means the real AWS endpoint for
    /// `region`.
    pub endpoint_url: Option<String>,
    /// The AWS region of the state store and the S3 archive (an AWS
    /// credential chain's region is not read).
    pub region: String,
    /// Prefix for table names (`<prefix>feeds`, `<prefix>feed_events`).
    pub table_prefix: String,
    /// Timeout for one state-store call, in milliseconds.
    pub operation_timeout_ms: u64,
}

/// Which feed-state store a process uses.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, schemars::JsonSchema, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
#[allow(
    missing_docs,
    reason = "a doc comment on a variant turns the JSON Schema's `enum` into a `oneOf`, which the derived variables read their choices from; the type's doc names the values"
)]
pub enum StateStoreKind {
    #[default]
    Dynamodb,
    Embedded,
}

impl StateStoreConfig {
    /// The embedded store's file under `state_dir` unless configured.
    pub fn embedded_file(&self, state_dir: &std::path::Path) -> PathBuf {
        self.embedded_path
            .clone()
            .unwrap_or_else(|| state_dir.join("feed-state.redb"))
    }
}

/// OpenTelemetry export.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Collector endpoint, for example `http://127.0.0.1:4317` (gRPC) or
    /// `http://127.0.0.1:4318` (HTTP). `None` disables export.
    pub endpoint: Option<String>,
    /// `grpc` or `http` (protobuf over HTTP).
    pub protocol: OtlpProtocol,
    /// Export timeout in milliseconds; export never blocks the hot path.
    pub timeout_ms: u64,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(
    missing_docs,
    reason = "a doc comment on a variant turns the JSON Schema's `enum` into a `oneOf`, which the derived variables read their choices from; the type's doc names the values"
)]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

/// The services' logs, on stderr through `tracing` (filtered by
/// `RUST_LOG`, default `info`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (one readable line per event) or `json` (one JSON object
    /// per line, with the event's fields, for a log pipeline).
    pub format: LogFormat,
}

/// How log events are written.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
#[allow(
    missing_docs,
    reason = "a doc comment on a variant turns the JSON Schema's `enum` into a `oneOf`, which the derived variables read their choices from; the type's doc names the values"
)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The operator API.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address; `127.0.0.1:8080` locally.
    pub listen: String,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` names the
    /// client, such as the load balancer's subnet. Empty: every request's
    /// peer is its client, and `X-Forwarded-For` is ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for VotewireConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(".votewire"),
            kafka: KafkaConfig::default(),
            topics: TopicsConfig::default(),
            state_store: StateStoreConfig::default(),
            archive: ArchiveConfig::default(),
            otlp: OtlpConfig::default(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: "votewire".into(),
            properties: BTreeMap::new(),
            request_timeout_ms: 10_000,
            msk_iam_region: None,
        }
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            votes: "votewire.votes.v1".into(),
            snapshots: "votewire.snapshots.v1".into(),
            results: "votewire.results.v1".into(),
            results_test: "votewire.results-test.v1".into(),
            feed_status: "votewire.feed-status.v1".into(),
            alerts: "votewire.alerts.v1".into(),
            dlq: "votewire.dlq.v1".into(),
            contest_partitions: 12,
            other_partitions: 3,
            replication_factor: 3,
            config: BTreeMap::new(),
        }
    }
}

impl Default for StateStoreConfig {
    fn default() -> Self {
        Self {
            kind: StateStoreKind::Dynamodb,
            embedded_path: None,
            endpoint_url: None,
            region: "us-east-1".into(),
            table_prefix: "votewire_".into(),
            operation_timeout_ms: 5_000,
        }
    }
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: OtlpProtocol::Grpc,
            timeout_ms: 3_000,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Prefix of the pass-through librdkafka property variables.
pub const KAFKA_PROPERTY_ENV_PREFIX: &str = "VOTEWIRE_KAFKA_PROPERTY_";

/// `VOTEWIRE_TOPICS_CONFIG_<NAME>` sets the topic setting `<name>` in
/// `[topics.config]` (lowercased, `_` becoming `.`: `…_RETENTION_MS` is
/// `retention.ms`).
pub const TOPICS_CONFIG_ENV_PREFIX: &str = "VOTEWIRE_TOPICS_CONFIG_";

/// Every `VOTEWIRE_…` name votewire knows: configuration, subcommand
/// arguments and the local stack's.
pub fn known_variables() -> impl Iterator<Item = &'static str> {
    ENV_OVERRIDES
        .iter()
        .map(|o| o.var)
        .chain(SERVICE_VARIABLES.iter().map(|(v, _)| *v))
        .chain(RUNTIME_VARIABLES.iter().map(|(v, _)| *v))
        .chain(LOCAL_STACK_VARIABLES.iter().copied())
        .chain(vars::field_variables().iter().map(|f| f.var.as_str()))
}

/// The first `VOTEWIRE_…` name among `names` that votewire does not know,
/// with the known name nearest to it.
pub fn unknown_variable<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<ConfigError> {
    let prefixes = [KAFKA_PROPERTY_ENV_PREFIX, TOPICS_CONFIG_ENV_PREFIX];
    let var = names.into_iter().find(|name| {
        name.starts_with("VOTEWIRE_")
            && !prefixes.iter().any(|p| name.starts_with(p))
            && !known_variables().any(|k| k == *name)
    })?;
    let nearest = known_variables()
        .map(|k| (strsim::levenshtein(k, var), k))
        .filter(|(distance, _)| *distance <= 4)
        .min()
        .map(|(_, k)| k);
    Some(ConfigError::UnknownVariable {
        var: var.to_string(),
        nearest,
    })
}

impl VotewireConfig {
    /// Parses a TOML document. `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads `path` if given (a missing file is an error), or the defaults,
    /// then applies the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Self::from_toml_str(&text, p)?
            }
            None => Self::default(),
        };
        let vars: Vec<(String, String)> = std::env::vars().collect();
        if let Some(unknown) = unknown_variable(vars.iter().map(|(k, _)| k.as_str())) {
            return Err(unknown);
        }
        config.apply_env(vars)?;
        config.refuse_redacted_placeholders()?;
        Ok(config)
    }

    /// Applies `VOTEWIRE_…` overrides from an iterator of variables, so tests
    /// need not touch the process environment.
    ///
    /// OpenTelemetry's standard `OTEL_*` names go first (an empty one counts
    /// as unset), then the variables named by a field's path, then
    /// votewire's hand-listed names and prefixes: votewire's own win over
    /// OpenTelemetry's whatever the environment's order. Two `VOTEWIRE_…`
    /// names for one field with different values are refused.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        if let Some(conflict) = conflicting_variables(&vars) {
            return Err(conflict);
        }
        for (name, value) in vars.iter().filter(|(n, _)| n.starts_with("OTEL_")) {
            if !value.trim().is_empty() {
                self.apply_override(name, value)?;
            }
        }
        vars::apply(self, &vars)?;
        for (name, value) in vars.iter().filter(|(n, _)| !n.starts_with("OTEL_")) {
            if let Some(property) = name.strip_prefix(KAFKA_PROPERTY_ENV_PREFIX) {
                let key = property.to_ascii_lowercase().replace('_', ".");
                self.kafka.properties.insert(key, value.clone());
                continue;
            }
            if let Some(setting) = name
                .strip_prefix(TOPICS_CONFIG_ENV_PREFIX)
                .filter(|s| !s.is_empty())
            {
                let key = setting.to_ascii_lowercase().replace('_', ".");
                self.topics.config.insert(key, value.clone());
                continue;
            }
            self.apply_override(name, value)?;
        }
        Ok(())
    }

    /// Applies the hand-listed override named `name`, if there is one.
    fn apply_override(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        match ENV_OVERRIDES.iter().find(|o| o.var == name) {
            Some(o) => (o.apply)(self, value).map_err(|reason| ConfigError::Env {
                var: name.to_string(),
                value: value.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Refuses a configuration holding the placeholder `config show`
    /// prints for a secret: a shown file fed back as it is would otherwise
    /// send `<redacted>` as the password.
    pub fn refuse_redacted_placeholders(&self) -> Result<(), ConfigError> {
        if let Some((name, _)) = self
            .kafka
            .properties
            .iter()
            .find(|(_, v)| v.contains(REDACTED))
        {
            return Err(ConfigError::RedactedPlaceholder {
                field: format!("kafka.properties.\"{name}\""),
            });
        }
        let mut rest = self.clone();
        rest.kafka.properties.clear();
        let tree = serde_json::to_value(&rest).unwrap_or_default();
        match find_string(&tree, &mut Vec::new(), &|s| {
            s.contains(REDACTED) || s.to_ascii_lowercase().contains("%3credacted%3e")
        }) {
            Some(field) => Err(ConfigError::RedactedPlaceholder { field }),
            None => Ok(()),
        }
    }
}

/// The path of the first string in `tree` that `matches`.
fn find_string(
    tree: &serde_json::Value,
    path: &mut Vec<String>,
    matches: &dyn Fn(&str) -> bool,
) -> Option<String> {
    use serde_json::Value;
    match tree {
        Value::String(s) if matches(s) => Some(path.join(".")),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            path.push(k.clone());
            let found = find_string(v, path, matches);
            path.pop();
            found
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(i.to_string());
            let found = find_string(v, path, matches);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// The field a `VOTEWIRE_…` variable sets, by either of its names.
fn field_of(name: &str) -> Option<String> {
    ENV_OVERRIDES
        .iter()
        .find(|o| o.var == name)
        .map(|o| o.field.to_string())
        .or_else(|| {
            vars::field_variables()
                .iter()
                .find(|f| f.var == name)
                .map(|f| f.path.join("."))
        })
}

/// Two `VOTEWIRE_…` names for one field, set to different values.
fn conflicting_variables(vars: &[(String, String)]) -> Option<ConfigError> {
    let mut by_field: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for (name, value) in vars.iter().filter(|(n, _)| n.starts_with("VOTEWIRE_")) {
        let Some(field) = field_of(name) else {
            continue;
        };
        match by_field.get(&field) {
            Some((first, seen)) if *first != name && seen.trim() != value.trim() => {
                return Some(ConfigError::ConflictingVariables {
                    field,
                    first: first.to_string(),
                    second: name.clone(),
                });
            }
            Some(_) => {}
            None => {
                by_field.insert(field, (name, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = VotewireConfig::from_toml_str("", Path::new("empty.toml")).unwrap();
        assert_eq!(c.topics.votes, "votewire.votes.v1");
        assert_eq!(c.topics.feed_status, "votewire.feed-status.v1");
        assert_eq!(c.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(c.state_store.endpoint_url, None);
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c = VotewireConfig::from_toml_str(
            "[kafka]\nbootstrap_servers = \"b-1.msk:9098\"\n[state_store]\nregion = \"us-west-2\"\n",
            Path::new("prod.toml"),
        )
        .unwrap();
        assert_eq!(c.kafka.bootstrap_servers, "b-1.msk:9098");
        c.apply_env(vars(&[
            ("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            ("VOTEWIRE_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!(c.kafka.bootstrap_servers, "127.0.0.1:19092");
        assert_eq!(
            c.state_store.endpoint_url.as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(c.state_store.region, "us-west-2");
    }

    #[test]
    fn secret_kafka_properties_never_reach_the_debug_form() {
        let mut c = VotewireConfig::default();
        for (k, v) in [
            ("sasl.password", "hunter2-sasl"),
            ("ssl.key.password", "hunter2-key"),
            ("sasl.oauthbearer.client.secret", "hunter2-oauth"),
            ("sasl.jaas.config", "hunter2-jaas"),
            ("ssl.key.pem", "hunter2-pem"),
            ("security.protocol", "SASL_SSL"),
        ] {
            c.kafka.properties.insert(k.into(), v.into());
        }
        let shown = format!("{c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("SASL_SSL"), "{shown}");
        assert_eq!(shown.matches(REDACTED).count(), 5, "{shown}");
    }

    #[test]
    fn kafka_properties_pass_through_from_file_and_environment() {
        let mut c = VotewireConfig::from_toml_str(
            "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        c.apply_env(vars(&[(
            "VOTEWIRE_KAFKA_PROPERTY_SASL_MECHANISMS",
            "SCRAM-SHA-512",
        )]))
        .unwrap();
        assert_eq!(c.kafka.properties["security.protocol"], "SASL_SSL");
        assert_eq!(c.kafka.properties["sasl.mechanisms"], "SCRAM-SHA-512");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected_with_their_origin() {
        let err =
            VotewireConfig::from_toml_str("[kafka]\nbootstrap = \"x\"\n", Path::new("t.toml"))
                .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("t.toml") && text.contains("bootstrap"),
            "{text}"
        );
        let mut c = VotewireConfig::default();
        let err = c
            .apply_env(vars(&[("VOTEWIRE_OTLP_PROTOCOL", "carrier-pigeon")]))
            .unwrap_err();
        assert!(err.to_string().contains("VOTEWIRE_OTLP_PROTOCOL"));
    }

    /// `config show` prints TOML that `--config` reads back to the same
    /// configuration, except that a secret-holding property is redacted.
    #[test]
    fn the_shown_configuration_reads_back_and_hides_secrets() {
        let mut c = VotewireConfig::default();
        c.apply_env(vars(&[
            ("VOTEWIRE_KAFKA_PROPERTY_SASL_PASSWORD", "hunter2-not-shown"),
            ("VOTEWIRE_KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
            ("VOTEWIRE_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ]))
        .unwrap();
        let text = c.to_redacted_toml().unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let back: VotewireConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.kafka.properties["sasl.password"], REDACTED);
        assert_eq!(back.kafka.properties["security.protocol"], "SASL_SSL");
        let mut expected = c.clone();
        expected
            .kafka
            .properties
            .insert("sasl.password".into(), REDACTED.into());
        assert_eq!(back, expected);
    }

    /// Credentials in a URL and in an OAUTHBEARER config are hidden too,
    /// and a shown file fed back as it is stops at the placeholder.
    #[test]
    fn url_credentials_are_hidden_and_a_placeholder_read_back_is_refused() {
        let mut c = VotewireConfig::default();
        c.apply_env(vars(&[
            (
                "VOTEWIRE_OTLP_ENDPOINT",
                "https://tenant:hunter2@collector.example:4318",
            ),
            (
                "VOTEWIRE_STATE_STORE_ENDPOINT_URL",
                "http://ak-not-shown@127.0.0.1:8000",
            ),
            (
                "VOTEWIRE_KAFKA_PROPERTY_SASL_OAUTHBEARER_CONFIG",
                "clientId=x clientSecret=hunter3",
            ),
        ]))
        .unwrap();
        let text = c.to_redacted_toml().unwrap();
        for secret in ["hunter2", "hunter3", "ak-not-shown", "tenant"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("collector.example:4318"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().join("shown.toml");
        std::fs::write(&shown, &text).unwrap();
        let back = VotewireConfig::from_toml_str(&text, &shown).unwrap();
        let err = back.refuse_redacted_placeholders().unwrap_err().to_string();
        assert!(err.contains("kafka.properties"), "{err}");
        let mut urls_only = back.clone();
        urls_only.kafka.properties.clear();
        let err = urls_only
            .refuse_redacted_placeholders()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("state_store.endpoint_url") || err.contains("otlp.endpoint"),
            "{err}"
        );
        assert!(c.refuse_redacted_placeholders().is_ok());
    }

    /// OpenTelemetry's standard variables configure export too, and
    /// votewire's own names win over them whatever the environment's order.
    #[test]
    fn opentelemetrys_variables_are_read_and_votewires_win() {
        let mut c = VotewireConfig::default();
        c.apply_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]))
        .unwrap();
        assert_eq!(c.otlp.endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(c.otlp.protocol, OtlpProtocol::Http);
        assert_eq!(c.otlp.timeout_ms, 2500);

        let mut c = VotewireConfig::default();
        c.apply_env(vars(&[
            ("VOTEWIRE_OTLP_ENDPOINT", "http://mine:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://theirs:4317"),
        ]))
        .unwrap();
        assert_eq!(c.otlp.endpoint.as_deref(), Some("http://mine:4317"));

        let err = VotewireConfig::default()
            .apply_env(vars(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]))
            .unwrap_err();
        assert!(err.to_string().contains("http/protobuf"), "{err}");
    }

    #[test]
    fn the_repository_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/votewire.example.toml");
        let text = std::fs::read_to_string(&path).expect("deploy/votewire.example.toml exists");
        VotewireConfig::from_toml_str(&text, &path).unwrap();
        // It documents every field: each is set, or shown commented out,
        // under its section.
        let mut section = String::new();
        let mut documented = std::collections::BTreeSet::new();
        for line in text.lines().map(str::trim) {
            let header = line.split('#').next().unwrap_or("").trim();
            if let Some(name) = header.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = format!("{name}.");
                continue;
            }
            let line = line.trim_start_matches('#').trim_start();
            if let Some((key, _)) = line.split_once('=') {
                let key = key.trim();
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    documented.insert(format!("{section}{key}"));
                }
            }
        }
        for f in vars::field_variables() {
            let path = f.path.join(".");
            assert!(
                documented.contains(&path),
                "{path} is not in the example config"
            );
        }
    }

    #[test]
    fn an_unknown_votewire_variable_is_refused_with_the_nearest_name() {
        let refused = unknown_variable(["PATH", "VOTEWIRE_KAFKA_BOOTSTRAP_SERVER"])
            .expect("a misspelt variable is refused");
        assert_eq!(
            refused.to_string(),
            "environment variable VOTEWIRE_KAFKA_BOOTSTRAP_SERVER is not one votewire reads \
             (did you mean VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS?); `votewire config env` lists them"
        );
        let far = unknown_variable(["VOTEWIRE_SOMETHING_ELSE_ENTIRELY"]).unwrap();
        assert!(matches!(
            far,
            ConfigError::UnknownVariable { nearest: None, .. }
        ));
        assert!(
            unknown_variable([
                "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
                "VOTEWIRE_KAFKA_PROPERTY_SASL_MECHANISMS",
                "VOTEWIRE_TOPICS_CONFIG_RETENTION_MS",
                "VOTEWIRE_SFTP_KEY",
                "NOT_OURS",
            ])
            .is_none()
        );
    }

    /// Every `VOTEWIRE_…` name the deployment files and scripts set or
    /// read: a name votewire does not know would stop it at start-up.
    #[test]
    fn every_variable_the_stack_compose_and_terraform_use_is_known() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![
            root.join("deploy/local/stack"),
            root.join("deploy/local/demo"),
            root.join("deploy/local/test"),
            root.join(".ci/run"),
            root.join("fuzz/run"),
            root.join("docker-compose.yml"),
        ];
        for dir in ["deploy/terraform", "bench"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                files.push(entry.unwrap().path());
            }
        }
        let mut unknown = Vec::new();
        let mut two_names = Vec::new();
        for file in files.iter().filter(|f| f.is_file()) {
            let text = std::fs::read_to_string(file).unwrap();
            // One name per field in each file: two could disagree.
            let mut fields: BTreeMap<String, String> = BTreeMap::new();
            for (at, _) in text.match_indices("VOTEWIRE_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // `VOTEWIRE_OTLP_*_PORT` and `…_PROPERTY_<NAME>` name families.
                let family = name.ends_with('_')
                    && (known_variables().any(|k| k.starts_with(name.as_str()))
                        || name.starts_with(KAFKA_PROPERTY_ENV_PREFIX)
                        || name.starts_with(TOPICS_CONFIG_ENV_PREFIX));
                if !family && unknown_variable([name.as_str()]).is_some() {
                    unknown.push(format!("{}: {name}", file.display()));
                }
                if let Some(field) = field_of(&name)
                    && let Some(other) = fields.insert(field.clone(), name.clone())
                    && other != name
                {
                    two_names.push(format!("{}: {other} and {name} ({field})", file.display()));
                }
            }
        }
        assert!(unknown.is_empty(), "unknown variables: {unknown:#?}");
        assert!(
            two_names.is_empty(),
            "two names of one field: {two_names:#?}"
        );
    }
}
