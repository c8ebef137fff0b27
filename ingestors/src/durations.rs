//! Durations as operators write them in feed files and on the command
//! line.

use std::time::Duration;

/// A duration as operators write one, through jiff's parser: the friendly
/// form (`30s`, `500ms`, `1h30m`, `1.5s`, `2d`, `5 minutes`) or ISO 8601
/// (`PT90S`). A day is 24 hours; months and years (which have no fixed
/// length) and negative durations are refused.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let span: jiff::Span = s.trim().parse().ok()?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    Duration::try_from(signed).ok()
}

/// [`parse_duration`] as a clap value parser: a flag's duration is checked
/// when the command line is read, and a bad one is a usage error.
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| {
        format!("{s:?} is not a duration (write e.g. 30s, 500ms, 1h30m, 1.5s or PT90S)")
    })
}
