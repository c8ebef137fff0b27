//! Bearer tokens with two scopes, `read` and `admin` (admin implies read).
//!
//! Tokens come from a file (`--tokens-file`, `VOTEWIRE_API_TOKENS_FILE`)
//! and/or the environment (`VOTEWIRE_API_TOKENS`), one token per line (or
//! `;`-separated in the variable): `<name> <scope> <token>`. Only the
//! SHA-256 of each token is kept in memory; a token is never logged, and
//! the name stands for it in the feed history (`api:<name>`).

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::problem::Problem;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Admin,
}

/// The caller a valid token names.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub scope: Scope,
}

impl Caller {
    /// 403 unless the caller holds `admin`.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.scope == Scope::Admin {
            Ok(())
        } else {
            Err(Problem::typed(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token {:?} has the read scope; this call changes feeds and needs an admin token",
                    self.name
                ),
            ))
        }
    }

    /// How the history names this caller.
    pub fn actor(&self) -> String {
        format!("api:{}", self.name)
    }
}

/// The accepted tokens, by SHA-256.
#[derive(Debug, Default)]
pub struct ApiTokens {
    by_digest: HashMap<[u8; 32], Caller>,
}

/// The shortest token accepted: shorter ones are guessable.
const MIN_TOKEN_LEN: usize = 24;

impl ApiTokens {
    /// Parses `text` (lines of `<name> <scope> <token>`; `#` comments),
    /// naming `origin` in errors. Errors never quote a token.
    #[cfg(test)]
    pub fn parse(text: &str, origin: &str) -> Result<ApiTokens, String> {
        let mut tokens = ApiTokens::default();
        tokens.add(text, origin)?;
        Ok(tokens)
    }

    fn add(&mut self, text: &str, origin: &str) -> Result<(), String> {
        for (i, line) in text.split(['\n', ';']).enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [name, scope, token] = parts[..] else {
                return Err(format!(
                    "{origin} entry {}: expected `<name> <scope> <token>`",
                    i + 1
                ));
            };
            let scope = match scope {
                "read" => Scope::Read,
                "admin" => Scope::Admin,
                other => {
                    return Err(format!(
                        "{origin} entry {}: scope {other:?} is neither read nor admin",
                        i + 1
                    ));
                }
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "{origin} entry {} ({name}): tokens must be at least {MIN_TOKEN_LEN} characters",
                    i + 1
                ));
            }
            self.by_digest.insert(
                digest(token),
                Caller {
                    name: name.to_string(),
                    scope,
                },
            );
        }
        Ok(())
    }

    /// Tokens from `file` and the `inline` variable's text.
    pub fn load(file: Option<&Path>, inline: Option<&str>) -> Result<ApiTokens, String> {
        let mut tokens = ApiTokens::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading the tokens file {}: {e}", path.display()))?;
            tokens.add(&text, &path.display().to_string())?;
        }
        if let Some(text) = inline {
            tokens.add(text, "VOTEWIRE_API_TOKENS")?;
        }
        if tokens.by_digest.is_empty() {
            return Err(
                "no API tokens: set VOTEWIRE_API_TOKENS_FILE (lines of `<name> <read|admin> <token>`) \
                 or VOTEWIRE_API_TOKENS; the API never runs open"
                    .into(),
            );
        }
        Ok(tokens)
    }

    /// The caller `authorization` (a header value) names.
    pub fn caller(&self, authorization: Option<&[u8]>) -> Result<Caller, Problem> {
        let Some(value) = authorization else {
            return Err(Problem::unauthorized(
                "send `Authorization: Bearer <token>`; ask the pool's admin for a token",
            ));
        };
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let token = std::str::from_utf8(token)
            .map_err(|_| Problem::unauthorized("the token is not text"))?
            .trim();
        self.by_digest
            .get(&digest(token))
            .cloned()
            .ok_or_else(|| Problem::unauthorized("this token is not known to the API"))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &str = "r-0123456789abcdefghijklmn";
    const ADMIN: &str = "a-0123456789abcdefghijklmn";

    fn tokens() -> ApiTokens {
        ApiTokens::parse(
            &format!("# the desk\nnewsroom read {READ}\nops admin {ADMIN}\n"),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn a_token_names_its_caller_and_scope() {
        let t = tokens();
        let r = t.caller(Some(format!("Bearer {READ}").as_bytes())).unwrap();
        assert_eq!((r.name.as_str(), r.scope), ("newsroom", Scope::Read));
        assert!(r.require_admin().is_err());
        let a = t
            .caller(Some(format!("Bearer {ADMIN}").as_bytes()))
            .unwrap();
        assert_eq!(a.scope, Scope::Admin);
        assert!(a.require_admin().is_ok());
        assert_eq!(a.actor(), "api:ops");
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_401() {
        let t = tokens();
        for h in [
            None,
            Some(READ.as_bytes()),
            Some(b"Basic dXNlcjpwYXNz".as_slice()),
            Some(b"Bearer nope-nope-nope-nope-nope-nope".as_slice()),
            Some(b"Bearer \xff\xfe".as_slice()),
        ] {
            let p = t.caller(h).unwrap_err();
            assert_eq!(p.status, 401, "{h:?}");
        }
    }

    #[test]
    fn bad_token_lines_are_refused_without_quoting_the_token() {
        let short = ApiTokens::parse("x read shorty", "f").unwrap_err();
        assert!(
            short.contains("at least 24") && !short.contains("shorty"),
            "{short}"
        );
        let scope = ApiTokens::parse(&format!("x root {READ}"), "f").unwrap_err();
        assert!(
            scope.contains("\"root\"") && !scope.contains(READ),
            "{scope}"
        );
        assert!(ApiTokens::parse("just-one-field", "f").is_err());
        assert!(ApiTokens::load(None, Some("# only a comment")).is_err());
        let inline =
            ApiTokens::load(None, Some(&format!("a read {READ}; b admin {ADMIN}"))).unwrap();
        assert_eq!(inline.by_digest.len(), 2);
    }
}
