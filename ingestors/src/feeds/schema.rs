//! JSON Schemas of the files an operator writes, generated from the
//! types that read them (schemars, which follows their serde attributes:
//! `deny_unknown_fields` becomes `additionalProperties: false`, the
//! source's `kind` tag one branch per kind, doc comments descriptions).
//!
//! Editors use them to complete and check a file as it is typed (Taplo,
//! "Even Better TOML", reads a `#:schema PATH` first line); the committed
//! copies are under `docs/schemas/` (`votewire feeds schema --write
//! docs/schemas`), and CI checks the shipped feed and mapping files
//! against them with an independent validator. The schemas say what a
//! file may contain; `votewire feeds validate` also checks what a schema
//! cannot (durations, secret references, readable files, unique ids).

use std::path::Path;

use serde_json::{Value, json};

/// A schema the project publishes, with the file it is committed as.
#[derive(Debug, Clone)]
pub struct PublishedSchema {
    /// The file name under `docs/schemas/`.
    pub file_name: &'static str,
    /// The schema document, as written to that file.
    pub schema: Value,
}

/// The mapping families whose mapping has a typed reader, with their
/// schemas: `(family, schema file)`.
const MAPPING_FAMILIES: [(&str, &str); 2] = [
    ("csv", "csv-mapping.schema.json"),
    ("html-table", "html-table-mapping.schema.json"),
];

/// The JSON Schema of `family`'s mapping, for the families whose mapping
/// has a typed reader (`csv`, `html-table`); `None` for the others.
pub fn mapping_schema(family: &str) -> Option<Value> {
    let schema = match family {
        "csv" => schemars::schema_for!(votewire_transformers::csv_table::CsvMapping),
        "html-table" => schemars::schema_for!(votewire_transformers::html_table::HtmlMapping),
        _ => return None,
    };
    Some(schema.to_value())
}

/// Every schema, feed files first.
pub fn published_schemas() -> Vec<PublishedSchema> {
    let mut out = vec![PublishedSchema {
        file_name: "feed-file.schema.json",
        schema: feed_file_schema(),
    }];
    for (family, file_name) in MAPPING_FAMILIES {
        let mut schema = mapping_schema(family).expect("a family of MAPPING_FAMILIES");
        schema["title"] = json!(format!("votewire {family} mapping file"));
        out.push(PublishedSchema { file_name, schema });
    }
    out
}

/// A feed file (`[[feed]]` entries). An inline `[feed.mapping]` is held
/// to its family's mapping schema when the family has one, referenced by
/// file name: it resolves beside the feed file's schema, as an editor
/// reads them from `docs/schemas/`.
pub fn feed_file_schema() -> Value {
    let mut schema = schemars::schema_for!(super::FeedFile).to_value();
    schema["title"] = json!("votewire feed file");
    let conditions: Vec<Value> = MAPPING_FAMILIES
        .iter()
        .map(|(family, file_name)| {
            json!({
                "if": {"properties": {"family": {"const": family}}, "required": ["family"]},
                "then": {"properties": {"mapping": {"$ref": file_name}}},
            })
        })
        .collect();
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut)
        && let Some(entry) = defs.get_mut("FeedEntry")
    {
        entry["allOf"] = Value::Array(conditions);
    }
    schema
}

/// Writes every published schema into `folder`, pretty-printed with a
/// final newline, and returns the paths written.
pub fn write_schemas(folder: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(folder)?;
    let mut written = Vec::new();
    for published in published_schemas() {
        let path = folder.join(published.file_name);
        std::fs::write(&path, render(&published.schema))?;
        written.push(path);
    }
    Ok(written)
}

/// The text a schema is committed as.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_schema_refuses_unknown_fields_and_branches_on_the_source_kind() {
        let schema = feed_file_schema();
        let defs = &schema["$defs"];
        assert_eq!(defs["FeedEntry"]["additionalProperties"], json!(false));
        let kinds: Vec<&str> = defs["SourceConfig"]["oneOf"]
            .as_array()
            .expect("one branch per source kind")
            .iter()
            .filter_map(|branch| branch["properties"]["kind"]["const"].as_str())
            .collect();
        let registry: Vec<&str> = crate::sources::SOURCES.iter().map(|k| k.name).collect();
        assert_eq!(kinds, registry, "one branch per registered source kind");
        let required = defs["FeedEntry"]["required"].as_array().unwrap();
        for field in ["id", "family", "election_id", "source"] {
            assert!(required.contains(&json!(field)), "{field} in {required:?}");
        }
    }
}
