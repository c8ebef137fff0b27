//! The one list of every variable votewire reads or accepts, with what
//! each sets: `votewire config env` prints it and docs/configuration.md is
//! generated from it (`votewire config env --format markdown`), so the
//! docs cannot drift from the code.

use super::vars::field_variables;
use super::{
    ENV_OVERRIDES, KAFKA_PROPERTY_ENV_PREFIX, LOCAL_STACK_VARIABLES, RUNTIME_VARIABLES,
    SERVICE_VARIABLES, TOPICS_CONFIG_ENV_PREFIX,
};

/// One variable and what it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDoc {
    /// The variable's name.
    pub var: String,
    /// What it sets or does.
    pub sets: String,
    /// A configuration field's doc comment and default, for the docs.
    pub details: Option<FieldDetails>,
}

/// What the docs say of a configuration field beyond its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDetails {
    /// The first sentence of the field's doc comment.
    pub description: String,
    /// The default, as TOML writes it; `None` when unset by default.
    pub default: Option<String>,
}

/// A group of variables under a heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableSection {
    /// The heading.
    pub title: &'static str,
    /// Its variables, in order.
    pub variables: Vec<VariableDoc>,
}

/// Every variable, in sections: the configuration's fields by their
/// paths, the other names some fields have, the prefixes, the
/// subcommands' arguments, what the code reads directly, and the local
/// stack's (accepted, not read).
pub fn sections() -> Vec<VariableSection> {
    let doc = |var: &str, sets: String| VariableDoc {
        var: var.to_string(),
        sets,
        details: None,
    };
    let fields = field_variables();
    let defaults = serde_json::to_value(super::VotewireConfig::default()).unwrap_or_default();
    let by_path = fields
        .iter()
        .map(|f| {
            let default = f
                .path
                .iter()
                .try_fold(&defaults, |node, p| node.get(p))
                .filter(|v| !v.is_null())
                .map(|v| v.to_string());
            VariableDoc {
                details: Some(FieldDetails {
                    description: f.description.clone(),
                    default,
                }),
                ..doc(&f.var, f.describes())
            }
        })
        .collect();
    let other_names = ENV_OVERRIDES
        .iter()
        .filter(|o| !fields.iter().any(|f| f.var == o.var))
        .map(|o| {
            let primary = fields.iter().find(|f| f.path.join(".") == o.field);
            let sets = match primary {
                Some(p) if o.var.starts_with("VOTEWIRE_") => {
                    format!("{}; another name for {}", o.describes, p.var)
                }
                _ => o.describes.to_string(),
            };
            doc(o.var, sets)
        })
        .collect();
    let prefixes = vec![
        doc(
            &format!("{KAFKA_PROPERTY_ENV_PREFIX}<NAME>"),
            "kafka.properties.<name>: any librdkafka property, `_` read as `.`".into(),
        ),
        doc(
            &format!("{TOPICS_CONFIG_ENV_PREFIX}<NAME>"),
            "topics.config.<name>: a topic setting, `_` read as `.`".into(),
        ),
    ];
    let listed = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(var, sets)| doc(var, sets.to_string()))
            .collect()
    };
    vec![
        VariableSection {
            title: "Configuration fields, named by their paths",
            variables: by_path,
        },
        VariableSection {
            title: "Other names of configuration fields",
            variables: other_names,
        },
        VariableSection {
            title: "Prefixes",
            variables: prefixes,
        },
        VariableSection {
            title: "Subcommand arguments",
            variables: listed(SERVICE_VARIABLES),
        },
        VariableSection {
            title: "Read directly by the code",
            variables: listed(RUNTIME_VARIABLES),
        },
        VariableSection {
            title: "The local stack's, accepted and not read",
            variables: LOCAL_STACK_VARIABLES
                .iter()
                .map(|var| doc(var, "deploy/local/stack, the tests or bench/".into()))
                .collect(),
        },
    ]
}

/// `votewire config env`: one aligned line per variable, sections headed
/// by `# title`.
pub fn to_text() -> String {
    let sections = sections();
    let width = sections
        .iter()
        .flat_map(|s| &s.variables)
        .map(|v| v.var.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("# {}\n", section.title));
        for v in &section.variables {
            let summary = v
                .details
                .as_ref()
                .map(|d| first_sentence(&d.description))
                .filter(|s| !s.is_empty())
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            out.push_str(&format!("{:<width$}  {}{summary}\n", v.var, v.sets));
        }
    }
    out
}

/// A doc comment's first sentence, on one line.
fn first_sentence(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.find(". ") {
        Some(end) => one_line[..=end].to_string(),
        None => one_line,
    }
}

/// The same list as Markdown tables, for docs/configuration.md: the
/// configuration's fields with their doc comments and defaults.
pub fn to_markdown() -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    for section in sections() {
        out.push_str(&format!("### {}\n\n", section.title));
        let with_details = section.variables.iter().any(|v| v.details.is_some());
        if with_details {
            out.push_str(
                "| Variable | Field (kind) | Default | What it is |\n| --- | --- | --- | --- |\n",
            );
        } else {
            out.push_str("| Variable | Sets |\n| --- | --- |\n");
        }
        for v in &section.variables {
            match &v.details {
                Some(d) => out.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    v.var,
                    cell(&v.sets),
                    d.default
                        .as_deref()
                        .map_or_else(|| "unset".to_string(), |d| format!("`{}`", cell(d))),
                    cell(&d.description)
                )),
                None => out.push_str(&format!("| `{}` | {} |\n", v.var, cell(&v.sets))),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No name means two things: a derived name is neither an argument's,
    /// the code's, the stack's, nor under one of the prefixes.
    #[test]
    fn every_name_is_listed_once_and_derived_names_clash_with_nothing() {
        let mut seen = std::collections::BTreeSet::new();
        for v in sections().iter().flat_map(|s| &s.variables) {
            assert!(seen.insert(v.var.clone()), "{} listed twice", v.var);
        }
        for f in field_variables() {
            assert!(
                !f.var.starts_with(KAFKA_PROPERTY_ENV_PREFIX)
                    && !f.var.starts_with(TOPICS_CONFIG_ENV_PREFIX),
                "{} is under a prefix",
                f.var
            );
            let others = SERVICE_VARIABLES
                .iter()
                .chain(RUNTIME_VARIABLES)
                .map(|(v, _)| *v)
                .chain(LOCAL_STACK_VARIABLES.iter().copied());
            for other in others {
                assert_ne!(f.var, other, "a field's variable is also another list's");
            }
        }
        // Every field says what it is, for the docs.
        for f in field_variables() {
            assert!(
                !f.description.trim().is_empty(),
                "{} has no doc comment",
                f.var
            );
        }
        // Every hand-listed override names a field that exists.
        for o in ENV_OVERRIDES {
            assert!(
                field_variables()
                    .iter()
                    .any(|f| f.path.join(".") == o.field),
                "{} names {}, which is no field",
                o.var,
                o.field
            );
        }
    }

    #[test]
    fn the_text_is_aligned_on_the_longest_name() {
        let text = to_text();
        let longest = sections()
            .iter()
            .flat_map(|s| &s.variables)
            .map(|v| v.var.len())
            .max()
            .unwrap();
        let topic = text
            .lines()
            .find(|l| l.starts_with("VOTEWIRE_TOPIC_VOTES "))
            .expect("an older name is listed");
        assert_eq!(&topic[longest..longest + 2], "  ", "{topic}");
        assert!(
            topic.contains("another name for VOTEWIRE_TOPICS_VOTES"),
            "{topic}"
        );
        assert!(to_markdown().contains("| `VOTEWIRE_STATE_STORE_OPERATION_TIMEOUT_MS` |"));
    }
}
