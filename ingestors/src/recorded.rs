//! A recorded series: the payloads one source served during a night, in a
//! folder with an `index.csv` of fetch times (the shape of the GA 2021
//! fixtures: `commit_time_utc`, `payload`, `path`, and for Clarity
//! `current_ver_txt_at_commit`). The demo's replay server and the tests
//! that publish a real night read series through here, so both read a
//! night the same way.

use std::path::{Path, PathBuf};

/// One payload of a recorded series, in index order.
#[derive(Debug, Clone)]
pub struct RecordedPayload {
    /// The index's `commit_time_utc`, as written (`2021-01-05T22:47:41Z`).
    pub recorded: String,
    /// That time in milliseconds since the epoch.
    pub recorded_ms: i64,
    /// The Clarity version current when it was recorded
    /// (`current_ver_txt_at_commit`); `None` for a series without one.
    pub version: Option<String>,
    /// The index's `payload` column says `json`: the source served its
    /// format (not, say, an HTML error page under the same name).
    pub is_json: bool,
    /// The file, under the series folder.
    pub path: PathBuf,
    /// The file's bytes.
    pub bytes: bytes::Bytes,
}

/// Why a series could not be read; the folder or its files must change, so
/// a retry does not help.
#[derive(Debug, thiserror::Error)]
pub enum RecordedError {
    /// The index or a payload file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The index is not the expected CSV.
    #[error("{path}: line {line}: {why}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The 1-based line (1 is the header).
        line: u64,
        /// What is wrong there.
        why: String,
    },
}

/// Reads the series in `dir` through its `index.csv`, every payload in
/// index order.
pub fn read_series(dir: &Path) -> Result<Vec<RecordedPayload>, RecordedError> {
    let index = dir.join("index.csv");
    let text = std::fs::read(&index).map_err(|source| RecordedError::Read {
        path: index.clone(),
        source,
    })?;
    let bad = |line: u64, why: String| RecordedError::Index {
        path: index.clone(),
        line,
        why,
    };
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let headers = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| column(name).ok_or_else(|| bad(1, format!("no `{name}` column")));
    let (time, payload, path) = (need("commit_time_utc")?, need("payload")?, need("path")?);
    let version = column("current_ver_txt_at_commit");
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            bad(line, e.to_string())
        })?;
        let line = row.position().map_or(0, csv::Position::line);
        let field = |i: usize| row.get(i).unwrap_or_default();
        if field(path).is_empty() {
            return Err(bad(line, "an empty `path`".into()));
        }
        let recorded = field(time).to_string();
        let recorded_ms = parse_utc(&recorded).ok_or_else(|| {
            bad(
                line,
                format!("{recorded:?} is not a UTC time like 2021-01-05T22:47:41Z"),
            )
        })?;
        let file = dir.join(field(path));
        let bytes = std::fs::read(&file).map_err(|source| RecordedError::Read {
            path: file.clone(),
            source,
        })?;
        out.push(RecordedPayload {
            recorded,
            recorded_ms,
            version: version.map(|i| field(i).to_string()),
            is_json: field(payload) == "json",
            path: file,
            bytes: bytes.into(),
        });
    }
    Ok(out)
}

/// `2021-01-05T22:47:41Z` as milliseconds since the epoch (that shape
/// only: the indexes' times are whole UTC seconds).
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_in_the_index_shape_only() {
        // Expected values from `date -u -d 2021-01-05T22:47:41Z +%s` (and so on).
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2021-01-05T22:47:41Z"), Some(1_609_886_861_000));
        assert_eq!(parse_utc("2000-02-29T12:00:00Z"), Some(951_825_600_000));
        assert_eq!(parse_utc("2000-03-01T00:00:01Z"), Some(951_868_801_000));
        assert_eq!(parse_utc("2021-01-05 22:47:41"), None);
        assert_eq!(parse_utc("2021-01-05T22:47:41+00:00"), None);
    }

    #[test]
    fn an_index_without_a_needed_column_or_with_a_bad_time_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.csv"),
            "seq,payload,path\n0,json,a.json\n",
        )
        .unwrap();
        let e = read_series(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("line 1: no `commit_time_utc` column"), "{e}");

        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(
            dir.path().join("index.csv"),
            "commit_time_utc,payload,path\n2021-01-05T22:47:41Z,json,a.json\nyesterday,json,a.json\n",
        )
        .unwrap();
        let e = read_series(dir.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("line 3: \"yesterday\" is not a UTC time like 2021-01-05T22:47:41Z"),
            "{e}"
        );

        std::fs::write(
            dir.path().join("index.csv"),
            "commit_time_utc,payload,path\n2021-01-05T22:47:41Z,json,\n",
        )
        .unwrap();
        let e = read_series(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("line 2: an empty `path`"), "{e}");
    }
}
