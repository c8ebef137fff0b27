//! The CI gate for schema evolution: every `.avsc` stays BACKWARD and FORWARD
//! compatible with its released version, and every optional field has a
//! default so the schemas can keep evolving.

use std::path::Path;

use serde_json::Value;
use votewire_schemas::compat::{CompatibilityError, check_full};
use votewire_schemas::registry::{IDS_JSON, SCHEMA_SOURCES};

fn released(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("released")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): every schema needs its last released version there",
            path.display()
        )
    })
}

#[test]
fn every_schema_is_backward_and_forward_compatible_with_its_released_version() {
    for (name, file, current) in SCHEMA_SOURCES {
        if let Err(e) = check_full(name, &released(file), current) {
            panic!("{e}");
        }
    }
}

#[test]
fn changing_a_field_type_fails_the_gate() {
    let (name, file, current) = SCHEMA_SOURCES[0];
    let changed = current.replace(
        r#"{"name": "votes", "type": "long""#,
        r#"{"name": "votes", "type": "string""#,
    );
    assert_ne!(changed, current, "the edit applied");
    let err = check_full(name, &released(file), &changed).unwrap_err();
    assert!(
        matches!(err, CompatibilityError::Incompatible { .. }),
        "{err}"
    );
}

#[test]
fn adding_a_required_field_without_a_default_fails_the_gate() {
    let (name, file, current) = SCHEMA_SOURCES[3];
    let changed = current.replacen(
        r#"{"name": "reason", "type": "string"},"#,
        r#"{"name": "reason", "type": "string"}, {"name": "severity", "type": "int"},"#,
        1,
    );
    assert_ne!(changed, current, "the edit applied");
    let err = check_full(name, &released(file), &changed).unwrap_err();
    assert!(
        err.to_string().contains("BACKWARD"),
        "an old record has no severity: {err}"
    );
}

#[test]
fn adding_an_optional_field_with_a_default_passes_the_gate() {
    let (name, file, current) = SCHEMA_SOURCES[3];
    let changed = current.replacen(
        r#"{"name": "reason", "type": "string"},"#,
        r#"{"name": "reason", "type": "string"}, {"name": "severity", "type": ["null", "int"], "default": null},"#,
        1,
    );
    assert_ne!(changed, current);
    check_full(name, &released(file), &changed).unwrap();
}

fn walk_fields(schema: &Value, path: &str, problems: &mut Vec<String>) {
    match schema {
        Value::Object(o) if o.get("type") == Some(&Value::String("record".into())) => {
            for f in o["fields"].as_array().unwrap() {
                let fname = f["name"].as_str().unwrap();
                let here = format!("{path}.{fname}");
                if let Value::Array(branches) = &f["type"] {
                    if branches.first() == Some(&Value::String("null".into()))
                        && f.get("default") != Some(&Value::Null)
                    {
                        problems.push(format!("{here} is optional but has no null default"));
                    }
                    for b in branches {
                        walk_fields(b, &here, problems);
                    }
                } else {
                    walk_fields(&f["type"], &here, problems);
                }
            }
        }
        Value::Object(o) if o.get("type") == Some(&Value::String("array".into())) => {
            walk_fields(&o["items"], path, problems)
        }
        Value::Object(o)
            if o.get("type") == Some(&Value::String("enum".into()))
                && o.get("default").is_none() =>
        {
            problems.push(format!("enum at {path} has no default symbol"));
        }
        _ => {}
    }
}

#[test]
fn every_optional_field_defaults_to_null_and_every_enum_has_a_default() {
    let mut problems = Vec::new();
    for (name, _, text) in SCHEMA_SOURCES {
        let v: Value = serde_json::from_str(text).unwrap();
        assert!(
            v["doc"].as_str().is_some_and(|d| d.len() > 40),
            "{name} is documented"
        );
        walk_fields(&v, name, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_committed_id_map_names_every_schema_once() {
    let ids: serde_json::Map<String, Value> = serde_json::from_str(IDS_JSON).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (name, _, _) in SCHEMA_SOURCES {
        let id = ids[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no id for {name}"));
        assert!(seen.insert(id), "id {id} used twice");
    }
}
