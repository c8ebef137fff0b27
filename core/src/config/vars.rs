//! A `VOTEWIRE_…` variable for every field of the configuration, named by
//! the field's path (`state_store.operation_timeout_ms` is
//! `VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS`), as figment's `Env`
//! provider names them. The fields come from the configuration's JSON
//! Schema (schemars, from the same types serde reads), so a field added
//! later has its variable without a line here.
//!
//! The hand-listed overrides of [`super::ENV_OVERRIDES`] keep
//! their names and meanings (`VOTEWIRE_TOPIC_VOTES`, comma-separated
//! lists, `grpc|http`) and win over a derived variable for the same
//! field; the string-keyed maps have prefixes of their own
//! (`VOTEWIRE_KAFKA_PROPERTY_<NAME>`, `VOTEWIRE_TOPICS_CONFIG_<NAME>`)
//! and no derived variable.

use serde_json::Value;

use super::{ConfigError, VotewireConfig};

/// The prefix every derived variable starts with.
pub const PREFIX: &str = "VOTEWIRE_";

/// What a field holds, as its variable is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text, as written.
    String,
    /// A whole number (see [`FieldVariable::range`]).
    Integer,
    /// `true` or `false`.
    Bool,
    /// Comma-separated.
    StringList,
}

/// One configuration field and the variable that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldVariable {
    /// The variable's name (`VOTEWIRE_` and the path, upper case).
    pub var: String,
    /// The field's path, e.g. `["state_store", "operation_timeout_ms"]`.
    pub path: Vec<String>,
    /// How its value is parsed.
    pub kind: FieldKind,
    /// The values an enumerated field takes (`dynamodb`, `embedded`).
    pub choices: Vec<String>,
    /// An optional field: an empty value unsets it.
    pub nullable: bool,
    /// The whole numbers an integer field holds (its type's range, raised
    /// by the schema's `minimum`).
    pub range: Option<IntegerRange>,
    /// The field's doc comment, as the schema carries it.
    pub description: String,
}

/// The bounds of an integer field, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegerRange {
    /// The least value.
    pub min: i128,
    /// The greatest value.
    pub max: i128,
}

impl FieldVariable {
    /// `state_store.operation_timeout_ms (integer)`, for `config env`.
    pub fn describes(&self) -> String {
        let kind = match self.kind {
            FieldKind::String if !self.choices.is_empty() => self.choices.join("|"),
            FieldKind::String => "text".into(),
            FieldKind::Integer => "integer".into(),
            FieldKind::Bool => "true|false".into(),
            FieldKind::StringList => "comma-separated".into(),
        };
        format!("{} ({kind})", self.path.join("."))
    }
}

/// Every field of [`VotewireConfig`] that holds a value, with its
/// variable (worked out once per process).
pub fn field_variables() -> &'static [FieldVariable] {
    static FIELDS: std::sync::OnceLock<Vec<FieldVariable>> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        let schema = schemars::schema_for!(VotewireConfig).to_value();
        let mut out = Vec::new();
        walk(&schema, &schema, &mut Vec::new(), &mut out);
        out
    })
}

fn walk(root: &Value, node: &Value, path: &mut Vec<String>, out: &mut Vec<FieldVariable>) {
    let node = resolve(root, node);
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, field) in properties {
        path.push(name.clone());
        let description = [field, resolve(root, field)]
            .iter()
            .find_map(|n| n["description"].as_str())
            .unwrap_or_default()
            .to_string();
        let declared = resolve(root, field);
        let nullable = is_nullable(root, declared);
        let field = non_null(root, declared);
        if field.get("properties").is_some() {
            walk(root, field, path, out);
        } else if let Some((kind, choices)) = leaf_kind(field) {
            out.push(FieldVariable {
                var: format!("{PREFIX}{}", path.join("_").to_ascii_uppercase()),
                path: path.clone(),
                kind,
                choices,
                nullable,
                range: (kind == FieldKind::Integer).then(|| integer_range(field)),
                description,
            });
        }
        path.pop();
    }
}

/// A `$ref` followed into `$defs`.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|name| root["$defs"].get(name))
            .unwrap_or(node),
        None => node,
    }
}

/// An optional field's schema (`anyOf: [X, {type: null}]`) as X's.
fn non_null<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("anyOf").and_then(Value::as_array) {
        Some(options) => options
            .iter()
            .map(|o| resolve(root, o))
            .find(|o| o.get("type") != Some(&Value::from("null")))
            .unwrap_or(node),
        None => node,
    }
}

/// `anyOf: [X, {type: null}]` or `type: [X, "null"]`.
fn is_nullable(root: &Value, node: &Value) -> bool {
    let null = Value::from("null");
    match (&node["type"], node.get("anyOf").and_then(Value::as_array)) {
        (Value::Array(types), _) => types.contains(&null),
        (_, Some(options)) => options.iter().any(|o| resolve(root, o)["type"] == null),
        _ => false,
    }
}

/// The range of an integer field: its `format` (`uint64`, `int32`, …)
/// and its `minimum`, as schemars writes them, and never past what a TOML
/// file can hold (a 64-bit signed integer), so `config show` prints what
/// `--config` reads back.
fn integer_range(field: &Value) -> IntegerRange {
    let (min, max) = match field["format"].as_str().unwrap_or("int64") {
        "uint8" => (0, i128::from(u8::MAX)),
        "uint16" => (0, i128::from(u16::MAX)),
        "uint32" => (0, i128::from(u32::MAX)),
        "uint64" | "uint" => (0, i128::from(i64::MAX)),
        "int8" => (i128::from(i8::MIN), i128::from(i8::MAX)),
        "int16" => (i128::from(i16::MIN), i128::from(i16::MAX)),
        "int32" => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    let minimum = field["minimum"].as_f64().map(|m| m.ceil() as i128);
    IntegerRange {
        min: minimum.map_or(min, |m| m.max(min)),
        max,
    }
}

fn leaf_kind(field: &Value) -> Option<(FieldKind, Vec<String>)> {
    let types: Vec<&str> = match &field["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let choices: Vec<String> = field["enum"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .or_else(|| {
            // schemars writes a documented enum as oneOf of consts.
            field["oneOf"].as_array().map(|o| {
                o.iter()
                    .filter_map(|v| v["const"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default();
    if !choices.is_empty() {
        return Some((FieldKind::String, choices));
    }
    let kind = if types.contains(&"integer") {
        FieldKind::Integer
    } else if types.contains(&"boolean") {
        FieldKind::Bool
    } else if types.contains(&"string") {
        FieldKind::String
    } else if types.contains(&"array") && field["items"]["type"] == "string" {
        FieldKind::StringList
    } else {
        // A map (`kafka.properties`): its keys have a prefix of their own.
        return None;
    };
    Some((kind, Vec::new()))
}

/// Applies every derived variable in `vars` that no hand-listed override
/// names, through serde: the configuration is written out, each field set
/// and the whole read back with the same checks as the file, one variable
/// at a time, so that a refused value is an error naming its variable and
/// leaves the configuration as it was.
pub fn apply(config: &mut VotewireConfig, vars: &[(String, String)]) -> Result<(), ConfigError> {
    let fields = field_variables();
    let set: Vec<(&FieldVariable, &String)> = vars
        .iter()
        .filter(|(name, _)| !super::ENV_OVERRIDES.iter().any(|o| o.var == name))
        .filter_map(|(name, value)| fields.iter().find(|f| &f.var == name).map(|f| (f, value)))
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    // The maps are carried over as they are: serialising redacts secrets.
    let properties = std::mem::take(&mut config.kafka.properties);
    let topic_settings = std::mem::take(&mut config.topics.config);
    let result = patch(config, &set);
    config.kafka.properties = properties;
    config.topics.config = topic_settings;
    result
}

fn patch(
    config: &mut VotewireConfig,
    set: &[(&FieldVariable, &String)],
) -> Result<(), ConfigError> {
    let mut tree = serde_json::to_value(&*config).map_err(|e| ConfigError::Env {
        var: PREFIX.into(),
        value: String::new(),
        reason: format!("the configuration did not serialise: {e}"),
    })?;
    for (field, value) in set {
        let parsed = parse(field, value).map_err(|reason| env_error(field, value, reason))?;
        set_path(&mut tree, &field.path, parsed)
            .map_err(|reason| env_error(field, value, reason))?;
        // Read back after each variable, so that serde's refusal names it.
        serde_json::from_value::<VotewireConfig>(tree.clone())
            .map_err(|e| env_error(field, value, e.to_string()))?;
    }
    *config = serde_json::from_value(tree).map_err(|e| ConfigError::Env {
        var: PREFIX.into(),
        value: String::new(),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Sets `path` in a serialised configuration; a section that serialised
/// as null (an unset optional table) becomes a table.
fn set_path(tree: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("a field has a name")?;
    let mut node = tree;
    for p in parents {
        if node.is_null() {
            *node = Value::Object(Default::default());
        }
        node = node
            .as_object_mut()
            .ok_or_else(|| format!("{p} is not a table"))?
            .entry(p.clone())
            .or_insert(Value::Null);
    }
    if node.is_null() {
        *node = Value::Object(Default::default());
    }
    node.as_object_mut()
        .ok_or_else(|| format!("the parent of {last} is not a table"))?
        .insert(last.clone(), value);
    Ok(())
}

fn parse(field: &FieldVariable, value: &str) -> Result<Value, String> {
    if field.nullable && value.trim().is_empty() {
        return Ok(Value::Null);
    }
    match field.kind {
        FieldKind::String if !field.choices.is_empty() => {
            if field.choices.iter().any(|c| c == value) {
                Ok(Value::from(value))
            } else {
                Err(format!("expected one of {}", field.choices.join(", ")))
            }
        }
        FieldKind::String => Ok(Value::from(value)),
        FieldKind::Integer => {
            let range = field.range.unwrap_or(IntegerRange {
                min: i128::from(i64::MIN),
                max: i128::from(i64::MAX),
            });
            let expected = || {
                format!(
                    "expected a whole number from {} to {}",
                    range.min, range.max
                )
            };
            let n: i128 = value.trim().parse().map_err(|_| expected())?;
            if n < range.min || n > range.max {
                return Err(expected());
            }
            Ok(match u64::try_from(n) {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(i64::try_from(n).map_err(|_| expected())?),
            })
        }
        FieldKind::Bool => match value.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("expected true or false".into()),
        },
        FieldKind::StringList => Ok(Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect(),
        )),
    }
}

fn env_error(field: &FieldVariable, value: &str, reason: String) -> ConfigError {
    ConfigError::Env {
        var: field.var.clone(),
        value: value.to_string(),
        reason: format!("{} ({}): {reason}", field.path.join("."), field.describes()),
    }
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

    /// Fields no hand-listed override names have a variable too.
    #[test]
    fn every_field_is_settable_by_a_variable_named_by_its_path() {
        let fields = field_variables();
        let names: Vec<&str> = fields.iter().map(|f| f.var.as_str()).collect();
        for var in [
            "VOTEWIRE_STATE_DIR",
            "VOTEWIRE_KAFKA_REQUEST_TIMEOUT_MS",
            "VOTEWIRE_KAFKA_MSK_IAM_REGION",
            "VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS",
            "VOTEWIRE_STATE_STORE_KIND",
            "VOTEWIRE_OTLP_TIMEOUT_MS",
            "VOTEWIRE_API_TRUSTED_PROXIES",
            "VOTEWIRE_ARCHIVE_S3_PREFIX",
        ] {
            assert!(names.contains(&var), "{var} in {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("VOTEWIRE_KAFKA_PROPERTIES")),
            "maps have their own prefix: {names:?}"
        );
        // Through the same door as the process environment: a derived
        // name, and one a hand-listed override also reads.
        let mut c = VotewireConfig::default();
        c.apply_env(vars(&[
            ("VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS", "777"),
            ("VOTEWIRE_KAFKA_MSK_IAM_REGION", "eu-west-1"),
            ("VOTEWIRE_OTLP_TIMEOUT_MS", "1234"),
        ]))
        .unwrap();
        assert!(crate::config::unknown_variable(["VOTEWIRE_OTLP_TIMEOUT_MS"]).is_none());
        assert_eq!(c.state_store.operation_timeout_ms, 777);
        assert_eq!(c.kafka.msk_iam_region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.otlp.timeout_ms, 1234);
    }

    #[test]
    fn a_value_of_the_wrong_kind_names_the_variable_and_the_field() {
        let mut c = VotewireConfig::default();
        let err = apply(
            &mut c,
            &vars(&[("VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS"),
            "{err}"
        );
        assert!(err.contains("state_store.operation_timeout_ms"), "{err}");
        let err = apply(&mut c, &vars(&[("VOTEWIRE_STATE_STORE_KIND", "sqlite")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dynamodb"), "{err}");
        assert_eq!(
            c,
            VotewireConfig::default(),
            "a refused value changes nothing"
        );
    }

    /// The secrets in the maps survive the round trip through serde.
    #[test]
    fn kafka_properties_are_carried_over_unredacted() {
        let mut c = VotewireConfig::default();
        c.kafka
            .properties
            .insert("sasl.password".into(), "s3cret".into());
        apply(&mut c, &vars(&[("VOTEWIRE_OTLP_TIMEOUT_MS", "10")])).unwrap();
        assert_eq!(c.kafka.properties["sasl.password"], "s3cret");
    }

    /// OpenTelemetry's names lose to votewire's, the derived one included.
    #[test]
    fn votewires_names_win_over_opentelemetrys_and_an_empty_otel_variable_is_unset() {
        let mut c = VotewireConfig::default();
        c.apply_env(vars(&[
            ("VOTEWIRE_OTLP_TIMEOUT_MS", "1500"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "9000"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", ""),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", " "),
        ]))
        .unwrap();
        assert_eq!(c.otlp.timeout_ms, 1500);
        assert_eq!(c.otlp.endpoint, None);
        assert_eq!(c.otlp.protocol, VotewireConfig::default().otlp.protocol);
    }

    /// One field, two names: the same value is fine, two values are refused.
    #[test]
    fn two_names_of_one_field_must_agree() {
        let mut c = VotewireConfig::default();
        c.apply_env(vars(&[
            ("VOTEWIRE_TOPIC_VOTES", "night.votes"),
            ("VOTEWIRE_TOPICS_VOTES", "night.votes"),
        ]))
        .unwrap();
        assert_eq!(c.topics.votes, "night.votes");
        for (older, derived) in [
            ("VOTEWIRE_TOPIC_VOTES", "VOTEWIRE_TOPICS_VOTES"),
            ("VOTEWIRE_STATE_STORE", "VOTEWIRE_STATE_STORE_KIND"),
            (
                "VOTEWIRE_DYNAMODB_ENDPOINT",
                "VOTEWIRE_STATE_STORE_ENDPOINT_URL",
            ),
            (
                "VOTEWIRE_ARCHIVE_S3_ENDPOINT",
                "VOTEWIRE_ARCHIVE_S3_ENDPOINT_URL",
            ),
        ] {
            let err = VotewireConfig::default()
                .apply_env(vars(&[(derived, "embedded"), (older, "dynamodb")]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(older) && err.contains(derived), "{err}");
        }
    }

    /// An empty value unsets an optional field; a required one keeps
    /// its meaning (an empty table prefix is a prefix).
    #[test]
    fn an_empty_value_unsets_an_optional_field() {
        let mut c = VotewireConfig::default();
        c.state_store.endpoint_url = Some("http://127.0.0.1:8000".into());
        c.kafka.msk_iam_region = Some("us-east-1".into());
        c.apply_env(vars(&[
            ("VOTEWIRE_STATE_STORE_ENDPOINT_URL", ""),
            ("VOTEWIRE_KAFKA_MSK_IAM_REGION", "  "),
            ("VOTEWIRE_STATE_STORE_TABLE_PREFIX", ""),
        ]))
        .unwrap();
        assert_eq!(c.state_store.endpoint_url, None);
        assert_eq!(c.kafka.msk_iam_region, None);
        assert_eq!(c.state_store.table_prefix, "");
    }

    /// A number outside the field's type is refused naming the variable
    /// and the range, never by serde's anonymous complaint.
    #[test]
    fn a_number_outside_the_fields_range_names_the_variable_and_the_range() {
        for (var, value) in [
            ("VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS", "-5"),
            ("VOTEWIRE_KAFKA_REQUEST_TIMEOUT_MS", "18446744073709551616"),
            // A u64 past i64::MAX: a TOML file cannot hold it, so `config
            // show` could not print it back.
            ("VOTEWIRE_KAFKA_REQUEST_TIMEOUT_MS", "9223372036854775808"),
            ("VOTEWIRE_TOPICS_CONTEST_PARTITIONS_X", "1"),
        ] {
            let Some(field) = field_variables().iter().find(|f| f.var == var) else {
                assert!(var.ends_with("_X"), "{var} is a field");
                continue;
            };
            let mut c = VotewireConfig::default();
            let err = apply(&mut c, &vars(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{err}");
            assert!(err.contains("expected a whole number from 0 to"), "{err}");
            assert_eq!(field.range.unwrap().min, 0);
            assert_eq!(c, VotewireConfig::default());
        }
        let partitions = field_variables()
            .iter()
            .find(|f| f.var == "VOTEWIRE_TOPICS_CONTEST_PARTITIONS")
            .unwrap();
        assert_eq!(partitions.range.unwrap().max, i128::from(i32::MAX));
        let mut c = VotewireConfig::default();
        apply(
            &mut c,
            &vars(&[("VOTEWIRE_KAFKA_REQUEST_TIMEOUT_MS", "9223372036854775807")]),
        )
        .unwrap();
        assert_eq!(c.kafka.request_timeout_ms, 9_223_372_036_854_775_807);
    }
}
