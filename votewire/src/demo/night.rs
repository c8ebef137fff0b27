//! The night: both captured series on one compressed clock (gaps cut to
//! [`GAP_CAP_MS`]), the files that are not a series, and the way the CSV
//! lands in the SFTP drop.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use votewire_ingestors::recorded::read_series;

use super::{AP_SERIES, CLARITY_SERIES, CSV_FILE, TX_PAGE};

/// The longest stretch of night kept between two snapshots.
pub(super) const GAP_CAP_MS: i64 = 10 * 60 * 1000;

/// One captured snapshot, placed on the compressed clock.
pub(super) struct Snapshot {
    /// Milliseconds from the start of the replay.
    pub(super) at_ms: i64,
    /// The capture's UTC time.
    pub(super) recorded: String,
    pub(super) bytes: bytes::Bytes,
    pub(super) version: Option<String>,
    pub(super) is_json: bool,
}

/// Reads a series directory through its `index.csv`.
pub(super) fn load_series(dir: &Path) -> anyhow::Result<Vec<(i64, Snapshot)>> {
    let series = read_series(dir).with_context(|| {
        format!(
            "reading the series {} (are the fixtures at --fixtures?)",
            dir.display()
        )
    })?;
    Ok(series
        .into_iter()
        .map(|p| {
            let snapshot = Snapshot {
                at_ms: 0,
                recorded: p.recorded,
                bytes: p.bytes,
                version: p.version,
                is_json: p.is_json,
            };
            (p.recorded_ms, snapshot)
        })
        .collect())
}

/// Both series on one compressed clock (gaps cut to [`GAP_CAP_MS`]), and
/// the files that are not a series.
pub(super) struct Night {
    pub(super) clarity: Vec<Snapshot>,
    pub(super) ap: Vec<Snapshot>,
    pub(super) length_ms: i64,
    /// The OpenElections precinct CSV, whole.
    pub(super) csv: Vec<u8>,
    /// The Texas SOS page.
    pub(super) tx_page: bytes::Bytes,
}

pub(super) fn night(fixtures: &Path) -> anyhow::Result<Night> {
    let clarity = load_series(&fixtures.join(CLARITY_SERIES))?;
    anyhow::ensure!(
        clarity.iter().all(|(_, s)| s.version.is_some()),
        "{}/index.csv: a Clarity series needs its current_ver_txt_at_commit column",
        fixtures.join(CLARITY_SERIES).display()
    );
    let ap = load_series(&fixtures.join(AP_SERIES))?;
    let mut times: Vec<i64> = clarity.iter().chain(&ap).map(|(t, _)| *t).collect();
    times.sort_unstable();
    times.dedup();
    let mut compressed = BTreeMap::new();
    let mut at = 0;
    for (i, t) in times.iter().enumerate() {
        if i > 0 {
            at += (t - times[i - 1]).min(GAP_CAP_MS);
        }
        compressed.insert(*t, at);
    }
    let place = |series: Vec<(i64, Snapshot)>| -> Vec<Snapshot> {
        series
            .into_iter()
            .map(|(t, mut s)| {
                s.at_ms = compressed[&t];
                s
            })
            .collect()
    };
    let read = |rel: &str| {
        std::fs::read(fixtures.join(rel))
            .with_context(|| format!("reading {}", fixtures.join(rel).display()))
    };
    Ok(Night {
        clarity: place(clarity),
        ap: place(ap),
        length_ms: at,
        csv: read(CSV_FILE)?,
        tx_page: read(TX_PAGE)?.into(),
    })
}

/// The first CSV drop: the header and the rows of counties A to L.
pub(super) fn csv_counties_a_to_l(csv: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(csv);
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let first = line.chars().next().map(|c| c.to_ascii_uppercase());
        if i == 0 || first.is_some_and(|c| c <= 'L') {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// Writes `bytes` as `name` in place, a chunk every 200 ms over about two
/// seconds (a slow uploader), then the `.done` marker.
pub(super) fn drip_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name))?;
    for chunk in bytes.chunks(bytes.len().div_ceil(10).max(1)) {
        f.write_all(chunk)?;
        f.flush()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(f);
    std::fs::write(dir.join(format!("{name}.done")), b"")
}

/// Drops `bytes` as `name` into `dir` the way a careful uploader does: a
/// `.part` file renamed into place, then the `.done` marker.
pub(super) fn drop_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let part = dir.join(format!("{name}.part"));
    std::fs::write(&part, bytes)?;
    std::fs::rename(&part, dir.join(name))?;
    std::fs::write(dir.join(format!("{name}.done")), b"")
}
