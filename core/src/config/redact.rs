//! Secrets kept out of what votewire prints: the credentials and secret
//! query values of a URL (`https://user:pass@host/?api_key=…`), for
//! `config show`, error messages and logs.
//!
//! A URL is rewritten as written (no added `/`, no escapes), so the rest
//! of it still reads as the operator wrote it. When a string does not
//! parse as a URL, it is redacted more than less: everything from the
//! scheme to its last `@` is dropped.

use std::borrow::Cow;

use super::REDACTED;

/// Query parameter names (lower case, compared as substrings) whose
/// values are secrets: API keys, tokens, signatures (AWS's
/// `X-Amz-Signature` and `X-Amz-Credential` included), passwords.
const SECRET_QUERY_NAMES: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "credential",
    "auth",
    "session",
];

/// `s` with any URL credentials and secret query values replaced by
/// [`REDACTED`]; borrowed when there was nothing to redact.
pub fn redact_url(s: &str) -> Cow<'_, str> {
    let Some(after_scheme) = scheme_end(s) else {
        return Cow::Borrowed(s);
    };
    let mut out = redact_userinfo(s, after_scheme);
    if let Some(q) = redact_query(&out) {
        out = Cow::Owned(q);
    }
    out
}

/// `text` with every whitespace-separated word that is a URL (after any
/// opening quote or bracket) passed through [`redact_url`]: for error
/// messages that quote an endpoint.
pub fn redact_urls_in(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let start = word
                .find(|c: char| !"\"'(<[{`".contains(c))
                .unwrap_or(word.len());
            let (open, rest) = word.split_at(start);
            match redact_url(rest) {
                Cow::Borrowed(_) => Cow::Borrowed(word),
                Cow::Owned(shown) => Cow::Owned(format!("{open}{shown}")),
            }
        })
        .collect()
}

/// The byte offset just past `scheme:` and any `/` or `\` after it, when
/// `s` starts with a URL scheme.
fn scheme_end(s: &str) -> Option<usize> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) {
        return None;
    }
    let slashes = s[colon + 1..]
        .bytes()
        .take_while(|b| *b == b'/' || *b == b'\\')
        .count();
    Some(colon + 1 + slashes)
}

fn redact_userinfo(s: &str, after_scheme: usize) -> Cow<'_, str> {
    let at = match url::Url::parse(s) {
        // A URL with credentials: they end at the `@` in front of its host.
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
            let lower = s.to_ascii_lowercase();
            lower
                .rfind(&format!("@{host}"))
                .filter(|&at| at >= after_scheme)
                .or_else(|| s.rfind('@'))
        }
        // A URL without credentials: an `@` is in its path or query.
        Ok(_) => None,
        // Not a URL (a raw `/`, `?` or `#` in a password, say): everything
        // up to the last `@` may be a credential.
        Err(_) => s.rfind('@').filter(|&at| at >= after_scheme),
    };
    match at {
        Some(at) => Cow::Owned(format!("{}{REDACTED}{}", &s[..after_scheme], &s[at..])),
        None => Cow::Borrowed(s),
    }
}

/// The query with each secret-named parameter's value redacted, or
/// `None` when there is none.
fn redact_query(s: &str) -> Option<String> {
    let start = s.find('?')? + 1;
    let end = s[start..].find('#').map_or(s.len(), |i| start + i);
    let mut changed = false;
    let pairs: Vec<String> = s[start..end]
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_query_name(name) => {
                changed = true;
                format!("{name}={REDACTED}")
            }
            _ => pair.to_string(),
        })
        .collect();
    changed.then(|| format!("{}{}{}", &s[..start], pairs.join("&"), &s[end..]))
}

fn is_secret_query_name(name: &str) -> bool {
    let decoded = url::form_urlencoded::parse(name.as_bytes())
        .next()
        .map_or_else(|| name.to_string(), |(k, _)| k.into_owned())
        .to_ascii_lowercase();
    SECRET_QUERY_NAMES.iter().any(|s| decoded.contains(s))
}

#[cfg(test)]
mod tests {
    use super::{redact_url, redact_urls_in};

    #[test]
    fn credentials_and_secret_query_values_never_show() {
        for (given, shown) in [
            (
                "https://ana:pw@collector.example:4318",
                "https://<redacted>@collector.example:4318",
            ),
            ("https://ana@h.example/x", "https://<redacted>@h.example/x"),
            // Forms the URL standard accepts without `//`.
            ("https:ana:pw@h.example", "https:<redacted>@h.example"),
            ("https:/ana:pw@h.example", "https:/<redacted>@h.example"),
            (r"https:\\ana:pw@h.example", r"https:\\<redacted>@h.example"),
            // A `://` later in the string does not move the credentials.
            (
                "https:ana:pw@h.example/?to=http://x",
                "https:<redacted>@h.example/?to=http://x",
            ),
            // A raw `/` or `#` in the password: not a URL, still redacted.
            (
                "https://ana:p/w#x@h.example/v1",
                "https://<redacted>@h.example/v1",
            ),
            (
                "https://otlp.example/v1/traces?api_key=abc&region=us",
                "https://otlp.example/v1/traces?api_key=<redacted>&region=us",
            ),
            (
                "https://b.s3.example/o?X-Amz-Credential=AKIA&X-Amz-Signature=ff#f",
                "https://b.s3.example/o?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>#f",
            ),
            (
                "https://u:p@h.example/?token=t",
                "https://<redacted>@h.example/?token=<redacted>",
            ),
        ] {
            assert_eq!(redact_url(given), shown, "{given}");
            assert!(!redact_url(given).contains("pw"), "{given}");
        }
        for kept in [
            "https://collector.example:4318",
            "http://127.0.0.1:8000",
            "https://h.example/path@x?region=us",
            "mailbox",
            "ap-southeast-2",
            "",
        ] {
            assert_eq!(redact_url(kept), kept);
        }
        assert_eq!(
            redact_urls_in("invalid URI \"https://ana:pw@h.example:4317\": no port"),
            "invalid URI \"https://<redacted>@h.example:4317\": no port"
        );
    }
}
