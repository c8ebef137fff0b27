//! The one error a transformer returns: which family rejected which feed's
//! payload, where in the payload, and what kind of problem it is.

use std::fmt;

pub use votewire_schemas::ErrorClass;

/// Where in a payload the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A byte offset into the payload (after decompression for zips).
    Byte(u64),
    /// A 1-based line (CSV rows, text formats), with a column when known.
    Line {
        /// The 1-based line.
        line: u64,
        /// The 1-based column on that line (a CSV field, a character in fixed-width text);
        /// `None` when only the line is known.
        column: Option<u64>,
    },
    /// An XPath-like path (`/ElectionResult/Contest[@key='10']`) or a JSON
    /// pointer (`/races/3/reportingUnits/0`).
    Path(String),
    /// The payload as a whole (empty, wrong type, too large).
    Whole,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Byte(b) => write!(f, "byte {b}"),
            Location::Line { line, column: None } => write!(f, "line {line}"),
            Location::Line {
                line,
                column: Some(c),
            } => write!(f, "line {line}, column {c}"),
            Location::Path(p) => f.write_str(p),
            Location::Whole => f.write_str("the whole payload"),
        }
    }
}

/// A rejected payload. Nothing was emitted for it: a transformer returns all
/// of a payload's cells or none, so earlier cells are never disturbed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{family} payload of feed {feed_id} rejected ({class}) at {location}: {message}")]
pub struct TransformError {
    /// The family that rejected the payload, by its `FAMILY` name; `registry` or
    /// `transform` when no family's code did (an unknown family, a transform that failed or
    /// timed out).
    pub family: &'static str,
    /// The id of the feed whose payload was rejected.
    pub feed_id: String,
    /// What kind of problem it is; only [`ErrorClass::Truncated`] is worth fetching again
    /// ([`TransformError::is_retryable`]).
    pub class: ErrorClass,
    /// Where in the payload the problem is.
    pub location: Location,
    /// What is wrong, for an operator; a [`Rejector`] cuts it to [`MAX_QUOTED_BYTES`]
    /// whatever payload text it quotes.
    pub message: String,
}

impl TransformError {
    /// Whether fetching again can help: a truncated body is usually a
    /// transport accident; a wrong format or a schema violation is not.
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Truncated
    }
}

/// Builds errors for one family and feed.
#[derive(Debug, Clone, Copy)]
pub struct Rejector<'a> {
    /// The family named in every error built (its `FAMILY` constant).
    pub family: &'static str,
    /// The id of the feed whose payload is being read.
    pub feed_id: &'a str,
}

/// The most of a message or a location path an error keeps, in bytes. A
/// message quotes payload text (a bad vote cell, a contest key), and a
/// payload is untrusted: a 32 MB field must not become a 32 MB error, which
/// would not fit a dead-letter record and would be logged whole.
pub const MAX_QUOTED_BYTES: usize = 240;

/// `s` cut to at most [`MAX_QUOTED_BYTES`] bytes (on a character boundary),
/// saying how long it was when it was cut.
pub fn bounded_quote(s: String) -> String {
    bounded_to(s, MAX_QUOTED_BYTES)
}

/// `s` cut to at most `max` bytes plus a short suffix saying how many bytes
/// it had; unchanged when it fits.
pub fn bounded_to(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

impl Rejector<'_> {
    /// An error of `class` at `location`. The message and a path location
    /// are bounded ([`MAX_QUOTED_BYTES`]) whatever the payload quoted.
    pub fn reject(
        &self,
        class: ErrorClass,
        location: Location,
        message: impl Into<String>,
    ) -> TransformError {
        let location = match location {
            Location::Path(p) => Location::Path(bounded_quote(p)),
            other => other,
        };
        TransformError {
            family: self.family,
            feed_id: bounded_quote(self.feed_id.to_string()),
            class,
            location,
            message: bounded_quote(message.into()),
        }
    }

    /// An [`ErrorClass::NotThisFormat`] error: the payload is not what this family reads
    /// (an HTML error page, another format); fetching again will not help.
    pub fn not_this_format(
        &self,
        location: Location,
        message: impl Into<String>,
    ) -> TransformError {
        self.reject(ErrorClass::NotThisFormat, location, message)
    }

    /// An [`ErrorClass::Truncated`] error: the payload is cut short, the one class a fresh
    /// fetch may cure.
    pub fn truncated(&self, location: Location, message: impl Into<String>) -> TransformError {
        self.reject(ErrorClass::Truncated, location, message)
    }

    /// An [`ErrorClass::SchemaViolation`] error: the payload is in the format, with
    /// something wrong in it (a bad count, a missing field).
    pub fn schema(&self, location: Location, message: impl Into<String>) -> TransformError {
        self.reject(ErrorClass::SchemaViolation, location, message)
    }

    /// An [`ErrorClass::LimitExceeded`] error: the payload is past a size, depth or time
    /// limit.
    pub fn limit(&self, location: Location, message: impl Into<String>) -> TransformError {
        self.reject(ErrorClass::LimitExceeded, location, message)
    }
}
