//! The feed registry as the API edits it: a directory of TOML files, the
//! same one `votewire ingest --feeds` follows (edits reach running
//! ingestors without a restart).
//!
//! A feed added through the API gets a file of its own
//! (`<id with unsafe characters replaced>-<8 hex of its sha256>.toml`),
//! written to a temporary name and renamed, so an ingestor never reads
//! half a file. `PUT` and `DELETE` work on feeds that are alone in their
//! file; a feed that shares a file with others is edited in that file by
//! hand (the answer says which file). Every write is validated first,
//! alone and then with the whole registry, by the same checks as
//! `votewire feeds validate`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use votewire_ingestors::feeds::{FeedConfigError, ValidFeed, load_registry};

use super::problem::Problem;

/// The registry directory, with writes serialized.
pub struct FeedRegistry {
    path: PathBuf,
    writes: tokio::sync::Mutex<()>,
}

fn problems(errors: &[FeedConfigError], tmp: Option<&Path>, shown: &str) -> Vec<String> {
    errors
        .iter()
        .map(|e| {
            let s = e.to_string();
            match tmp {
                Some(t) => s.replace(&t.display().to_string(), shown),
                None => s,
            }
        })
        .collect()
}

/// Where a feed body names files (JSON pointers): `companion`,
/// `mapping_file` and each source kind's path fields (the SFTP key files).
/// `{ file = … }` secrets are names in the feed-secrets folder, not paths.
fn path_fields() -> impl Iterator<Item = String> {
    let kinds = votewire_ingestors::sources::SOURCES.iter();
    ["/companion".to_string(), "/mapping_file".to_string()]
        .into_iter()
        .chain(kinds.flat_map(|k| k.path_fields.iter().map(|f| format!("/source/{f}"))))
}

/// The relative file paths a feed body names, one problem each.
fn relative_paths(body: &serde_json::Value) -> Vec<String> {
    path_fields()
        .filter_map(|pointer| {
            let path = body.pointer(&pointer)?.as_str()?;
            let field = pointer.trim_start_matches('/').replace('/', ".");
            (!Path::new(path).is_absolute())
                .then(|| format!("{field}: {path:?} is not an absolute path"))
        })
        .collect()
}

/// Makes the relative file paths in `body` absolute against `dir`.
fn anchor_paths(body: &mut serde_json::Value, dir: &Path) {
    for pointer in path_fields() {
        if let Some(v) = body.pointer_mut(&pointer)
            && let Some(path) = v.as_str().map(Path::new).filter(|p| p.is_relative())
        {
            *v = serde_json::Value::String(dir.join(path).to_string_lossy().into_owned());
        }
    }
}

impl FeedRegistry {
    pub fn new(path: PathBuf) -> FeedRegistry {
        FeedRegistry {
            path,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Every valid feed, or a problem naming every error.
    pub fn feeds(&self) -> Result<Vec<ValidFeed>, Problem> {
        load_registry(&self.path).map_err(|errors| {
            Problem::conflict(format!(
                "the feed registry {} has {} problem(s); fix them (votewire feeds validate) and retry",
                self.path.display(),
                errors.len()
            ))
            .with_errors(problems(&errors, None, ""))
        })
    }

    pub fn find(&self, id: &str) -> Result<ValidFeed, Problem> {
        self.feeds()?
            .into_iter()
            .find(|f| f.entry.id.get_ref() == id)
            .ok_or_else(|| {
                Problem::not_found(format!(
                    "no feed {id:?} in the registry; GET /v1/feeds lists them"
                ))
            })
    }

    /// The feed's entry as written (secrets appear by reference only), as
    /// JSON.
    pub fn entry_json(&self, feed: &ValidFeed) -> serde_json::Value {
        let text = std::fs::read_to_string(&feed.file).unwrap_or_default();
        Self::entry_json_in(&text, feed)
    }

    /// `feed`'s entry in the registry file text `text`, as JSON.
    fn entry_json_in(text: &str, feed: &ValidFeed) -> serde_json::Value {
        let Ok(file) = text.parse::<toml::Table>() else {
            return serde_json::Value::Null;
        };
        file.get("feed")
            .and_then(|f| f.as_array())
            .and_then(|entries| {
                entries
                    .iter()
                    .find(|e| e.get("id").and_then(|v| v.as_str()) == Some(feed.entry.id.get_ref()))
            })
            .and_then(|e| serde_json::to_value(e).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The TOML file text for one feed given as a JSON object.
    fn toml_of(body: &serde_json::Value) -> Result<String, Problem> {
        if !body.is_object() {
            return Err(Problem::unprocessable(
                "the body must be one feed as a JSON object, with the fields of a [[feed]] entry",
            ));
        }
        let relative = relative_paths(body);
        if !relative.is_empty() {
            return Err(Problem::unprocessable(
                "a feed sent to the API names its files by absolute path: a body has no folder to be relative to (`votewire feeds add FILE --api URL` makes a file's relative paths absolute)",
            )
            .with_errors(relative));
        }
        let entry = toml::Value::try_from(body).map_err(|e| {
            Problem::unprocessable(format!(
                "the feed cannot be written as TOML ({e}); null values are not allowed"
            ))
        })?;
        let mut file = toml::Table::new();
        file.insert("feed".into(), toml::Value::Array(vec![entry]));
        toml::to_string(&file)
            .map_err(|e| Problem::unprocessable(format!("the feed cannot be written as TOML: {e}")))
    }

    /// Validates `text` alone, as the file `shown`.
    fn validate_alone(&self, text: &str, shown: &str) -> Result<ValidFeed, Problem> {
        let dir = tempfile::tempdir().map_err(|e| {
            Problem::unavailable(format!(
                "cannot create a temporary directory to validate in: {e}"
            ))
        })?;
        let file = dir.path().join("feed.toml");
        std::fs::write(&file, text)
            .map_err(|e| Problem::unavailable(format!("cannot write a temporary file: {e}")))?;
        match load_registry(&file) {
            Ok(mut feeds) if feeds.len() == 1 => Ok(feeds.remove(0)),
            Ok(_) => Err(Problem::unprocessable(
                "the body must hold exactly one feed",
            )),
            Err(errors) => Err(Problem::unprocessable(format!(
                "the feed has {} problem(s); fix them and send it again",
                errors.len()
            ))
            .with_errors(problems(&errors, Some(&file), shown))),
        }
    }

    fn writable_dir(&self) -> Result<(), Problem> {
        if self.path.is_dir() {
            Ok(())
        } else {
            Err(Problem::conflict(format!(
                "the registry {} is a single file; the API adds and edits feeds only in a registry directory",
                self.path.display()
            )))
        }
    }

    fn file_for(&self, id: &str) -> PathBuf {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = hex::encode(&Sha256::digest(id.as_bytes())[..4]);
        self.path.join(format!("{safe}-{hash}.toml"))
    }

    /// Writes `text` to `file` atomically and durably (a hidden temporary
    /// name, fsync, rename, directory fsync), then checks the whole registry;
    /// on a problem the previous content (`before`) is restored.
    fn write_checked(&self, file: &Path, text: &str, before: Option<&str>) -> Result<(), Problem> {
        // Durable before the answer: file fsync, rename, directory fsync.
        let put = |content: &str| -> std::io::Result<()> {
            let mut f = atomic_write_file::AtomicWriteFile::open(file)?;
            std::io::Write::write_all(&mut f, content.as_bytes())?;
            f.commit()
        };
        put(text).map_err(|e| Problem::unavailable(format!("writing {}: {e}", file.display())))?;
        if let Err(errors) = load_registry(&self.path) {
            match before {
                Some(old) => {
                    let _ = put(old);
                }
                None => {
                    let _ = std::fs::remove_file(file);
                }
            }
            return Err(Problem::conflict(format!(
                "the feed is valid alone but the registry would have {} problem(s) with it",
                errors.len()
            ))
            .with_errors(problems(&errors, None, "")));
        }
        Ok(())
    }

    /// Adds a feed; 409 when its id exists.
    pub async fn create(&self, body: &serde_json::Value) -> Result<ValidFeed, Problem> {
        self.writable_dir()?;
        let text = Self::toml_of(body)?;
        let _guard = self.writes.lock().await;
        let id = self
            .validate_alone(&text, "the request body")?
            .entry
            .id
            .into_inner();
        if let Some(f) = self.feeds()?.iter().find(|f| f.entry.id.get_ref() == &id) {
            return Err(Problem::conflict(format!(
                "feed {id:?} already exists ({}:{}); PUT /v1/feeds/{{id}} replaces it",
                f.file.display(),
                f.line
            )));
        }
        let file = self.file_for(&id);
        self.write_checked(&file, &text, None)?;
        self.find(&id)
    }

    /// Validates one feed given as a JSON object as [`create`] would,
    /// writing nothing: the feed, whether its id is in the registry, and
    /// its entry as it would be stored (as JSON).
    ///
    /// [`create`]: FeedRegistry::create
    pub fn validate(
        &self,
        body: &serde_json::Value,
    ) -> Result<(ValidFeed, bool, serde_json::Value), Problem> {
        let text = Self::toml_of(body)?;
        let feed = self.validate_alone(&text, "the request body")?;
        let exists = self
            .feeds()?
            .iter()
            .any(|f| f.entry.id.get_ref() == feed.entry.id.get_ref());
        let entry = Self::entry_json_in(&text, &feed);
        Ok((feed, exists, entry))
    }

    /// The file holding only `id`, or 409 naming the shared file.
    fn own_file(&self, id: &str) -> Result<(ValidFeed, String), Problem> {
        let feeds = self.feeds()?;
        let feed = feeds
            .iter()
            .find(|f| f.entry.id.get_ref() == id)
            .cloned()
            .ok_or_else(|| Problem::not_found(format!("no feed {id:?} in the registry")))?;
        let neighbours = feeds.iter().filter(|f| f.file == feed.file).count();
        if neighbours > 1 {
            return Err(Problem::conflict(format!(
                "feed {id:?} shares {} with {} other feed(s); edit that file by hand",
                feed.file.display(),
                neighbours - 1
            )));
        }
        let before = std::fs::read_to_string(&feed.file)
            .map_err(|e| Problem::unavailable(format!("reading {}: {e}", feed.file.display())))?;
        // Rewriting or deleting the file would drop its `[[election]]`
        // tables with it (a rehearsal gone live without a word).
        // (A file that no longer parses is not rewritten either.)
        let holds_elections =
            toml::from_str::<toml::Table>(&before).map_or(true, |t| t.contains_key("election"));
        if holds_elections {
            return Err(Problem::conflict(format!(
                "feed {id:?} shares {} with [[election]] tables; edit that file by hand",
                feed.file.display()
            )));
        }
        Ok((feed, before))
    }

    /// Replaces feed `id` (the body's `id`, when given, must be the same).
    pub async fn replace(&self, id: &str, body: &serde_json::Value) -> Result<ValidFeed, Problem> {
        self.writable_dir()?;
        let mut body = body.clone();
        if let Some(obj) = body.as_object_mut() {
            match obj.get("id").and_then(|v| v.as_str()) {
                Some(other) if other != id => {
                    return Err(Problem::unprocessable(format!(
                        "the body's id {other:?} is not the path's {id:?}; ids cannot be renamed (add the new one, delete the old)"
                    )));
                }
                _ => {
                    obj.insert("id".into(), serde_json::Value::String(id.to_string()));
                }
            }
        }
        let _guard = self.writes.lock().await;
        let (feed, before) = self.own_file(id)?;
        // A relative path means what it means in the feed's own file (the
        // entry a GET returned, sent back): absolute against its folder.
        if let Some(dir) = feed.file.parent() {
            anchor_paths(&mut body, dir);
        }
        let text = Self::toml_of(&body)?;
        self.validate_alone(&text, "the request body")?;
        self.write_checked(&feed.file, &text, Some(&before))?;
        self.find(id)
    }

    /// Removes feed `id` and its file.
    pub async fn delete(&self, id: &str) -> Result<(), Problem> {
        self.writable_dir()?;
        let _guard = self.writes.lock().await;
        let (feed, _) = self.own_file(id)?;
        std::fs::remove_file(&feed.file)
            .map_err(|e| Problem::unavailable(format!("removing {}: {e}", feed.file.display())))
    }
}
