//! Where a feed's credentials may come from, and reading them.
//!
//! A feed names its credentials by reference, and anyone who may add a feed
//! (an admin token on the operator API) chooses that reference. If a
//! reference could be any environment variable or any file, one POST could
//! send the ingestor's own Kafka password (`VOTEWIRE_KAFKA_PROPERTY_SASL_PASSWORD`
//! on ECS) or `/etc/shadow` to a host of the caller's choosing as an
//! `x-api-key` header. So references are confined:
//!
//! * `{ env = "FEED_SECRET_AP" }`: the variable's name must start with the
//!   feed-secret prefix, `FEED_SECRET_` unless `VOTEWIRE_FEED_SECRET_PREFIX`
//!   sets another (which may not be empty, nor claim the `VOTEWIRE_` or
//!   `AWS_` names that hold the platform's own credentials);
//! * `{ file = "ap-key" }`: a relative name inside the feed-secrets
//!   directory, `/run/secrets/votewire-feeds` unless
//!   `VOTEWIRE_FEED_SECRETS_DIR` sets another. The path is canonicalised
//!   and must stay inside the directory (no `..`, no symlink out), be a
//!   regular file, and hold at most [`MAX_SECRET_BYTES`].

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

/// A credential, by reference only: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretRef {
    /// The name of an environment variable holding the secret.
    Env(String),
    /// A file holding the secret: a plain name in the feed-secrets folder.
    File(PathBuf),
}

/// The prefix an environment-variable secret's name must have, unless
/// `VOTEWIRE_FEED_SECRET_PREFIX` says otherwise.
pub const DEFAULT_ENV_PREFIX: &str = "FEED_SECRET_";
/// The directory file secrets are read from, unless
/// `VOTEWIRE_FEED_SECRETS_DIR` says otherwise.
pub const DEFAULT_SECRETS_DIR: &str = "/run/secrets/votewire-feeds";
/// The most bytes a secret file may hold (a key or a token is far less).
pub const MAX_SECRET_BYTES: u64 = 16 * 1024;

/// Names a feed secret may never claim, whatever the prefix says.
const PLATFORM_PREFIXES: [&str; 2] = ["VOTEWIRE_", "AWS_"];

/// The environment-variable prefix in force, or why the configured one is
/// refused.
pub fn env_prefix() -> Result<String, String> {
    let prefix = std::env::var("VOTEWIRE_FEED_SECRET_PREFIX")
        .unwrap_or_else(|_| DEFAULT_ENV_PREFIX.to_string());
    if prefix.is_empty()
        || PLATFORM_PREFIXES
            .iter()
            .any(|p| prefix.starts_with(p) || p.starts_with(prefix.as_str()))
    {
        return Err(format!(
            "VOTEWIRE_FEED_SECRET_PREFIX={prefix:?} would let a feed read the platform's own \
             credentials; choose a prefix such as {DEFAULT_ENV_PREFIX}"
        ));
    }
    Ok(prefix)
}

/// The feed-secrets directory in force.
pub fn secrets_dir() -> PathBuf {
    std::env::var_os("VOTEWIRE_FEED_SECRETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR))
}

/// Checks a reference without reading it (what `feeds validate` and the
/// operator API's add-feed do): the error says what is wrong and what is
/// allowed.
pub fn check_reference(r: &SecretRef) -> Result<(), String> {
    match r {
        SecretRef::Env(var) => {
            if var.is_empty()
                || !var
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!(
                    "{var:?} is not an environment variable name (A-Z, 0-9, _)"
                ));
            }
            let prefix = env_prefix()?;
            if !var.starts_with(&prefix) || var.len() == prefix.len() {
                return Err(format!(
                    "{var:?} does not start with the feed-secret prefix {prefix:?}: a feed may \
                     read only variables set aside for feed credentials"
                ));
            }
            Ok(())
        }
        SecretRef::File(p) => {
            if p.as_os_str().is_empty() {
                return Err("empty file name".into());
            }
            if !p.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(format!(
                    "{} is not a plain name inside the feed-secrets directory ({}): no absolute \
                     path, no `..`",
                    p.display(),
                    secrets_dir().display()
                ));
            }
            Ok(())
        }
    }
}

/// Reads a secret (trimmed), after checking the reference again: a
/// reference never reaches the environment or the disk outside the
/// confined places.
pub fn read_secret(r: &SecretRef) -> Result<String, String> {
    check_reference(r)?;
    match r {
        SecretRef::Env(var) => std::env::var(var)
            .map(|v| v.trim().to_string())
            .map_err(|_| format!("environment variable {var} is not set")),
        SecretRef::File(name) => read_secret_file(&secrets_dir(), name),
    }
}

fn read_secret_file(dir: &Path, name: &Path) -> Result<String, String> {
    let shown = || format!("{} in {}", name.display(), dir.display());
    let root = dir
        .canonicalize()
        .map_err(|e| format!("the feed-secrets directory {}: {e}", dir.display()))?;
    let path = root
        .join(name)
        .canonicalize()
        .map_err(|e| format!("{}: {e}", shown()))?;
    if !path.starts_with(&root) {
        return Err(format!(
            "{} resolves outside the feed-secrets directory",
            shown()
        ));
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", shown()))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", shown()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", shown()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", shown()))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "{} holds more than {MAX_SECRET_BYTES} bytes",
            shown()
        ));
    }
    String::from_utf8(bytes)
        .map(|s| s.trim().to_string())
        .map_err(|_| format!("{} is not UTF-8 text", shown()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_feed_secret_variables_and_plain_names_are_references() {
        let env = |v: &str| check_reference(&SecretRef::Env(v.into()));
        let file = |p: &str| check_reference(&SecretRef::File(p.into()));
        assert!(env("FEED_SECRET_AP").is_ok());
        for v in [
            "VOTEWIRE_KAFKA_PROPERTY_SASL_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "HOME",
            "FEED_SECRET_",
            "feed_secret_x",
        ] {
            assert!(env(v).is_err(), "{v}");
        }
        assert!(file("ap-key").is_ok());
        assert!(file("ga/ap-key").is_ok());
        for p in ["/etc/shadow", "../x", "a/../../x", "/dev/zero", ""] {
            assert!(file(p).is_err(), "{p}");
        }
    }

    #[test]
    fn a_secret_file_stays_inside_its_directory_is_regular_and_small() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shadow"), "root:x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ap-key"), " k3y \n").unwrap();
        std::fs::write(dir.path().join("big"), vec![b'a'; 20_000]).unwrap();
        std::os::unix::fs::symlink(outside.path().join("shadow"), dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let read = |n: &str| read_secret_file(dir.path(), Path::new(n));
        assert_eq!(read("ap-key").unwrap(), "k3y");
        assert!(read("link").unwrap_err().contains("outside"));
        assert!(read("big").unwrap_err().contains("more than"));
        assert!(read("sub").unwrap_err().contains("not a regular file"));
        assert!(read("missing").is_err());
    }
}
