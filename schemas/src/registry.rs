//! The embedded schemas, each parsed once, with the schema ids used in the
//! Confluent wire format.
//!
//! The ids come from the committed `ids.json` (votewire runs no schema
//! registry: none could be run on the project's machines, see
//! docs/subscribers.md).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use apache_avro::Schema;

/// One schema: its full name, source text, parsed form and wire id.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    /// Full name, e.g. `votewire.v1.VoteCell`.
    pub name: &'static str,
    /// The `.avsc` text as committed.
    pub text: &'static str,
    /// The parsed schema.
    pub schema: Schema,
    /// Its id in the Confluent wire format.
    pub id: u32,
}

/// Every votewire schema.
#[derive(Debug, Clone)]
pub struct SchemaSet {
    /// `VoteCell`, on the votes topic.
    pub vote_cell: RegisteredSchema,
    /// `SnapshotManifest`, on the snapshots topic.
    pub snapshot_manifest: RegisteredSchema,
    /// `ContestResult`, on the results topic.
    pub contest_result: RegisteredSchema,
    /// `FeedStatus`, on the feed-status topic.
    pub feed_status: RegisteredSchema,
    /// `DeadLetter`, on the dead-letter topic.
    pub dead_letter: RegisteredSchema,
    /// `SourceDisagreement`, on the alerts topic.
    pub source_disagreement: RegisteredSchema,
}

/// (full name, file name, text) of every schema, in one list.
pub const SCHEMA_SOURCES: [(&str, &str, &str); 6] = [
    (
        "votewire.v1.VoteCell",
        "VoteCell.avsc",
        include_str!("../avro/VoteCell.avsc"),
    ),
    (
        "votewire.v1.SnapshotManifest",
        "SnapshotManifest.avsc",
        include_str!("../avro/SnapshotManifest.avsc"),
    ),
    (
        "votewire.v1.ContestResult",
        "ContestResult.avsc",
        include_str!("../avro/ContestResult.avsc"),
    ),
    (
        "votewire.v1.FeedStatus",
        "FeedStatus.avsc",
        include_str!("../avro/FeedStatus.avsc"),
    ),
    (
        "votewire.v1.DeadLetter",
        "DeadLetter.avsc",
        include_str!("../avro/DeadLetter.avsc"),
    ),
    (
        "votewire.v1.SourceDisagreement",
        "SourceDisagreement.avsc",
        include_str!("../avro/SourceDisagreement.avsc"),
    ),
];

/// The committed id map.
pub const IDS_JSON: &str = include_str!("../ids.json");

fn committed_ids() -> BTreeMap<String, u32> {
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(IDS_JSON).expect("schemas/ids.json is valid JSON (tested)");
    raw.into_iter()
        .filter_map(|(k, v)| v.as_u64().map(|id| (k, id as u32)))
        .collect()
}

impl SchemaSet {
    fn build(ids: &BTreeMap<String, u32>) -> SchemaSet {
        let load = |i: usize| {
            let (name, file, text) = SCHEMA_SOURCES[i];
            RegisteredSchema {
                name,
                text,
                schema: Schema::parse_str(text)
                    .unwrap_or_else(|e| panic!("schemas/avro/{file} does not parse: {e}")),
                id: *ids
                    .get(name)
                    .unwrap_or_else(|| panic!("schemas/ids.json has no id for {name}")),
            }
        };
        SchemaSet {
            vote_cell: load(0),
            snapshot_manifest: load(1),
            contest_result: load(2),
            feed_status: load(3),
            dead_letter: load(4),
            source_disagreement: load(5),
        }
    }

    /// Every schema, in [`SCHEMA_SOURCES`] order.
    pub fn all(&self) -> [&RegisteredSchema; 6] {
        [
            &self.vote_cell,
            &self.snapshot_manifest,
            &self.contest_result,
            &self.feed_status,
            &self.dead_letter,
            &self.source_disagreement,
        ]
    }
}

/// The schemas with the committed ids, parsed on first use and then shared.
pub fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| SchemaSet::build(&committed_ids()))
}
