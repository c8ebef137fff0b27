//! A `VOTEWIRE_…` variable for every field of the configuration, named by
//! the field's path (`state_store.operation_timeout_ms` is
//! `VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS`), as figment's `Env`
//! provider names them. The fields come from the configuration's JSON
//! Schema (schemars, from the same types serde reads), so a field added
//! later has its variable without a line here.
//!
//! The hand-listed overrides of [`crate::config::ENV_OVERRIDES`] keep
//! their names and meanings (`VOTEWIRE_TOPIC_VOTES`, comma-separated
//! lists, `grpc|http`) and win over a derived variable for the same
//! field; the string-keyed maps have prefixes of their own
//! (`VOTEWIRE_KAFKA_PROPERTY_<NAME>`, `VOTEWIRE_TOPICS_CONFIG_<NAME>`)
//! and no derived variable.

use serde_json::Value;

use crate::config::{ConfigError, VotewireConfig};

/// The prefix every derived variable starts with.
pub const PREFIX: &str = "VOTEWIRE_";

/// What a field holds, as its variable is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Integer,
    Bool,
    /// Comma-separated.
    StringList,
}

/// One configuration field and the variable that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldVariable {
    pub var: String,
    /// The field's path, e.g. `["state_store", "operation_timeout_ms"]`.
    pub path: Vec<String>,
    pub kind: FieldKind,
    /// The values an enumerated field takes (`dynamodb`, `embedded`).
    pub choices: Vec<String>,
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
        let field = non_null(root, resolve(root, field));
        if field.get("properties").is_some() {
            walk(root, field, path, out);
        } else if let Some((kind, choices)) = leaf_kind(field) {
            out.push(FieldVariable {
                var: format!("{PREFIX}{}", path.join("_").to_ascii_uppercase()),
                path: path.clone(),
                kind,
                choices,
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
/// names, through serde: the configuration is written out, the fields
/// set, and read back with the same checks as the file (a value of the
/// wrong type is an error naming the variable).
pub fn apply(config: &mut VotewireConfig, vars: &[(String, String)]) -> Result<(), ConfigError> {
    let fields = field_variables();
    let set: Vec<(&FieldVariable, &String)> = vars
        .iter()
        .filter(|(name, _)| !crate::config::ENV_OVERRIDES.iter().any(|o| o.var == name))
        .filter_map(|(name, value)| fields.iter().find(|f| &f.var == name).map(|f| (f, value)))
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    // The maps are carried over as they are: serialising redacts secrets.
    let properties = std::mem::take(&mut config.kafka.properties);
    let topic_settings = std::mem::take(&mut config.topics.config);
    let mut tree = serde_json::to_value(&*config).expect("the configuration serialises");
    let mut result = Ok(());
    for (field, value) in set {
        let parsed = match parse(field, value) {
            Ok(v) => v,
            Err(reason) => {
                result = Err(env_error(field, value, reason));
                break;
            }
        };
        let (last, parents) = field.path.split_last().expect("a field has a name");
        let mut node = &mut tree;
        for p in parents {
            node = &mut node[p.as_str()];
        }
        node[last.as_str()] = parsed;
    }
    if result.is_ok() {
        match serde_json::from_value::<VotewireConfig>(tree) {
            Ok(patched) => *config = patched,
            Err(e) => {
                result = Err(ConfigError::Env {
                    var: "VOTEWIRE_…".into(),
                    value: String::new(),
                    reason: e.to_string(),
                })
            }
        }
    }
    config.kafka.properties = properties;
    config.topics.config = topic_settings;
    result
}

fn parse(field: &FieldVariable, value: &str) -> Result<Value, String> {
    match field.kind {
        FieldKind::String if !field.choices.is_empty() => {
            if field.choices.iter().any(|c| c == value) {
                Ok(Value::from(value))
            } else {
                Err(format!("expected one of {}", field.choices.join(", ")))
            }
        }
        FieldKind::String => Ok(Value::from(value)),
        FieldKind::Integer => value
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "expected a whole number".into()),
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
}
