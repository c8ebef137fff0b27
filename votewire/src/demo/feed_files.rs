//! The night's feed definitions, written as a registry the services
//! read: the Clarity site, AP, the CSV over SFTP (when the stack names an
//! SFTP server) and the Texas page with its mapping inline.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{AP_FEED, CLARITY_FEED, CSV_FEED, ELECTION, TX_ELECTION, TX_FEED};

/// The local SFTP server's drop directory for this run, from the stack's
/// `VOTEWIRE_SFTP_*` variables: `None` when the stack names no SFTP server.
pub(super) struct SftpDrop {
    /// The directory on this machine (inside the server's chroot).
    pub(super) local: PathBuf,
    /// The feed's `[feed.source]` table.
    pub(super) source_toml: String,
}

impl SftpDrop {
    pub(super) fn from_env(run_id: &str) -> anyhow::Result<Option<SftpDrop>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(root), Some(host), Some(port), Some(user), Some(key), Some(known_hosts)) = (
            var("VOTEWIRE_SFTP_ROOT"),
            var("VOTEWIRE_SFTP_HOST"),
            var("VOTEWIRE_SFTP_PORT"),
            var("VOTEWIRE_SFTP_USER"),
            var("VOTEWIRE_SFTP_KEY"),
            var("VOTEWIRE_SFTP_KNOWN_HOSTS"),
        ) else {
            return Ok(None);
        };
        let local = Path::new(&root).join("drop").join(run_id);
        std::fs::create_dir_all(&local)
            .with_context(|| format!("creating the SFTP drop {}", local.display()))?;
        let source_toml = format!(
            r#"[feed.source]
kind = "sftp"
host = "{host}"
port = {port}
user = "{user}"
key_file = "{key}"
known_hosts = "{known_hosts}"
glob = "/drop/{run_id}/*.csv"
min_age = "1s"
done_marker = ".done"
"#
        );
        Ok(Some(SftpDrop { local, source_toml }))
    }
}

/// The Texas feed, with the shipped race-by-county mapping inline.
pub(super) fn tx_feed_toml(base: &str, mapping: &str) -> anyhow::Result<String> {
    let mapping: toml::Table = toml::from_str(mapping).context("the Texas mapping")?;
    let feed = toml::toml! {
        id = TX_FEED
        family = "html-table"
        election_id = TX_ELECTION
        [source]
        kind = "html"
        [cadence]
        interval = "2s"
        jitter = "0s"
        stale_after = "10m"
    };
    let mut feed = feed;
    feed["source"].as_table_mut().context("source")?.insert(
        "url".into(),
        format!("{base}/tx/elchist175_race1.htm").into(),
    );
    feed.insert("mapping".into(), mapping.into());
    let mut doc = toml::Table::new();
    doc.insert("feed".into(), vec![toml::Value::Table(feed)].into());
    Ok(toml::to_string(&doc)?)
}

pub(super) fn feeds_toml(
    base: &str,
    clarity_companion: &Path,
    ap_companion: &Path,
    sftp: Option<&SftpDrop>,
) -> String {
    let csv = sftp.map_or_else(String::new, |d| {
        format!(
            r#"
[[feed]]
id = "{CSV_FEED}"
family = "csv"
election_id = "{ELECTION}"
priority = 5
{}[feed.cadence]
interval = "1s"
jitter = "0s"
stale_after = "1h"
[feed.results]
parent = "GA"
"#,
            d.source_toml
        )
    });
    format!(
        r#"# Written by `votewire demo`: the replayed sources of the GA 2021 runoff night.
[[feed]]
id = "{CLARITY_FEED}"
family = "clarity-json"
election_id = "{ELECTION}"
priority = 20
companion = "{}"
[feed.source]
kind = "clarity"
base_url = "{base}/GA/107556"
file = "json/ALL.json"
[feed.cadence]
interval = "1s"
jitter = "0s"
stale_after = "10m"

[[feed]]
id = "{AP_FEED}"
family = "ap-interactive"
election_id = "{ELECTION}"
priority = 10
companion = "{}"
[feed.source]
kind = "http"
url = "{base}/ap/GA.json"
[feed.limits]
timeout = "5s"
max_bytes = 8_388_608
[feed.cadence]
interval = "1s"
jitter = "0s"
stale_after = "10m"
{csv}"#,
        clarity_companion.display(),
        ap_companion.display()
    )
}
