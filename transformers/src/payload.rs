//! What a transformer is given besides the bytes: who fetched them, for which
//! feed and election, and the feed's family-specific configuration.

use votewire_schemas::FeedMode;

/// Facts about one fetched payload, supplied by the ingestor (or the CLI).
/// A transformer reads no clock: `fetched_at` comes from here.
#[derive(Debug, Clone)]
pub struct PayloadContext {
    /// votewire's election id (the feed's `election_id`, e.g. `2021-01-05-GA-runoff`);
    /// `local` for `votewire transform`.
    pub election_id: String,
    /// The id of the feed that fetched the payload; source ids are unique only within it.
    pub feed_id: String,
    /// The feed's configured mode; a family switches to `test` when the payload marks
    /// itself test data (AP, NPR `test`, NIST `IsTest`).
    pub mode: FeedMode,
    /// The per-feed sequence number the ingestor assigns to this payload.
    pub source_seq: i64,
    /// The publisher's version as the ingestor learned it (Clarity
    /// `current_ver.txt`); a family may refine it from the payload.
    pub source_version: Option<String>,
    /// Milliseconds since the Unix epoch, UTC.
    pub fetched_at: i64,
    /// The fetch's id, `<feed>:<source_seq>:<ms>` (`<feed>:dry-run` in a dry run,
    /// `local-file` for `votewire transform`).
    pub fetch_id: String,
    /// The URL or SFTP path the payload came from (the file's path for `votewire
    /// transform`).
    pub source_uri: String,
    /// Hex sha256 of the payload bytes as fetched: the raw archive's key.
    pub payload_sha256: String,
    /// The trace of the payload's `feed.fetch` span (32 hex digits); `None` when untraced
    /// (dry runs, local files).
    pub trace_id: Option<String>,
    /// The HTTP `Content-Type` the payload was served with, when fetched over
    /// HTTP (HTML families read the charset from it).
    pub content_type: Option<String>,
}

impl PayloadContext {
    /// A context for transforming a local file by hand (`votewire transform`).
    pub fn for_file(
        feed_id: &str,
        path: &str,
        payload_sha256: &str,
        fetched_at: i64,
    ) -> PayloadContext {
        PayloadContext {
            election_id: "local".into(),
            feed_id: feed_id.into(),
            mode: FeedMode::Replay,
            source_seq: 0,
            source_version: None,
            fetched_at,
            fetch_id: "local-file".into(),
            source_uri: path.into(),
            payload_sha256: payload_sha256.into(),
            trace_id: None,
            content_type: None,
        }
    }
}

/// Family configuration from the feed entry: a mapping table (CSV, HTML) and
/// a companion document (names for Clarity JSON and AP interactives). The
/// ingestor reads the companion; the transformer only sees its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FamilyInputs<'a> {
    /// The feed's `[mapping]` table (inline or from its `mapping_file`), when it has one;
    /// read it with [`FamilyInputs::mapping_as`].
    pub mapping: Option<&'a toml::Table>,
    /// The bytes of the feed's companion file, when it has one: names for Clarity JSON and
    /// AP interactives, manifests for Dominion CVR.
    pub companion: Option<&'a [u8]>,
}

impl FamilyInputs<'_> {
    /// The mapping as the family's own config type (`None` without one).
    /// A mapping that does not fit the type is a schema violation naming the
    /// family.
    pub fn mapping_as<T: serde::de::DeserializeOwned>(
        &self,
        r: &crate::error::Rejector,
    ) -> Result<Option<T>, crate::error::TransformError> {
        self.mapping
            .map(|t| {
                t.clone().try_into().map_err(|e| {
                    r.schema(
                        crate::error::Location::Whole,
                        format!("invalid {} mapping: {e}", r.family),
                    )
                })
            })
            .transpose()
    }
}

/// What a transformer learned besides the cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayloadFacts {
    /// AP's `nextrequest` cursor, for the ingestor's next incremental poll.
    pub next_request: Option<String>,
    /// The answer is partial and the rest follows from `next_request` at
    /// once (AP's `isTruncated`): the ingestor polls again without waiting
    /// for its cadence.
    pub truncated: bool,
    /// The publisher marked the data as test data (AP `test:true`, NIST `IsTest`).
    pub is_test: bool,
    /// The publisher's own version, when the payload states one.
    pub source_version: Option<String>,
}
