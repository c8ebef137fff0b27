//! Noticing registry edits: every file the registry reads (its feed files,
//! its `mappings` folders, and the mapping files its feeds name elsewhere)
//! as it looked, by length and modification time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::feeds::{ValidFeed, registry_files};

/// One file as it looked: what a registry change is noticed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FileStamp {
    path: PathBuf,
    len: u64,
    mtime: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: PathBuf) -> FileStamp {
        let meta = std::fs::metadata(&path).ok();
        FileStamp {
            len: meta.as_ref().map_or(0, |m| m.len()),
            mtime: meta.and_then(|m| m.modified().ok()),
            path,
        }
    }
}

/// The mapping files `feeds` name.
fn mapping_files<'a>(feeds: impl Iterator<Item = &'a ValidFeed>) -> impl Iterator<Item = PathBuf> {
    feeds.filter_map(|f| f.entry.mapping_file.as_ref().map(|m| m.get_ref().clone()))
}

/// The registry's files (its feed files and its `mappings` folders) and
/// the mapping files `feeds` name elsewhere, as they look now, by path. An
/// edit to any of them reloads the registry.
pub(super) fn registry_stamp<'a>(
    path: &Path,
    feeds: impl Iterator<Item = &'a ValidFeed>,
) -> Vec<FileStamp> {
    let mut files = registry_files(path).unwrap_or_default();
    files.extend(mapping_files(feeds));
    files.sort();
    files.dedup();
    files.into_iter().map(FileStamp::of).collect()
}

/// Adds to `stamp` the mapping files `feeds` name that it lacks, as they
/// look now.
pub(super) fn add_mapping_stamps<'a>(
    stamp: &mut Vec<FileStamp>,
    feeds: impl Iterator<Item = &'a ValidFeed>,
) {
    for path in mapping_files(feeds) {
        if !stamp.iter().any(|s| s.path == path) {
            stamp.push(FileStamp::of(path));
        }
    }
    stamp.sort();
}

/// The enabled feeds by id.
pub(super) fn by_id(feeds: Vec<ValidFeed>) -> HashMap<String, ValidFeed> {
    feeds
        .into_iter()
        .filter(|f| f.entry.enabled)
        .map(|f| (f.entry.id.get_ref().clone(), f))
        .collect()
}
