//! What a transformer is given besides the bytes: who fetched them, for which
//! feed and election, and the feed's family-specific configuration.

use votewire_schemas::FeedMode;

/// Facts about one fetched payload, supplied by the ingestor (or the CLI).
/// A transformer reads no clock: `fetched_at` comes from here.
#[derive(Debug, Clone)]
pub struct PayloadContext {
    pub election_id: String,
    pub feed_id: String,
    pub mode: FeedMode,
    /// The per-feed sequence number the ingestor assigns to this payload.
    pub source_seq: i64,
    /// The publisher's version as the ingestor learned it (Clarity
    /// `current_ver.txt`); a family may refine it from the payload.
    pub source_version: Option<String>,
    /// Milliseconds since the Unix epoch, UTC.
    pub fetched_at: i64,
    pub fetch_id: String,
    pub source_uri: String,
    pub payload_sha256: String,
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
    pub mapping: Option<&'a toml::Table>,
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
    /// The publisher marked the data as test data (AP `test:true`, NIST `IsTest`).
    pub is_test: bool,
    /// The publisher's own version, when the payload states one.
    pub source_version: Option<String>,
}
