//! Amazon MSK IAM access control for votewire's Kafka clients.
//!
//! With `[kafka] msk_iam_region` set, every client votewire builds speaks
//! `SASL_SSL` with the `OAUTHBEARER` mechanism. The bearer token is what
//! MSK's IAM authenticator expects: a SigV4-presigned
//! `https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect`
//! URL (service `kafka-cluster`, valid 900 s), base64url-encoded without
//! padding. The broker then checks each request against the task role's
//! IAM policy, so a policy can name exact topic and group ARNs
//! (`deploy/terraform/iam.tf`).
//!
//! librdkafka asks for a token when a client starts and again at 80% of the
//! token's lifetime ([`ClientContext::generate_oauth_token`]); signing is
//! local, with no network call. The AWS credentials come from the default
//! chain (environment, profile, the ECS task role, IMDS), loaded by one
//! background thread per process and refreshed five minutes before they
//! expire; the first token waits for the first credentials, at most 10 s.
//! They are never logged and never leave the process except as a
//! signature.
//!
//! The signing is checked against AWS's own signer
//! (`aws-msk-iam-sasl-signer-python`): the same credentials and time give
//! the same signature (`votewire-tests`, `msk_iam_token`).
//!
//! [`ClientContext::generate_oauth_token`]: rdkafka::ClientContext::generate_oauth_token

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use rdkafka::client::OAuthToken;

/// How long a token is valid (what AWS's signers use).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The SigV4 service name of MSK's data plane.
const SIGNING_NAME: &str = "kafka-cluster";
/// `sasl.oauthbearer.config` starts with this; librdkafka hands the whole
/// string back to [`MskIamTokens::generate`], which reads the region from it.
pub const OAUTHBEARER_CONFIG_PREFIX: &str = "votewire-msk-iam";
/// How long the first token request waits for the first credentials.
const FIRST_CREDENTIALS_WAIT: Duration = Duration::from_secs(10);
/// Upper bound on one credentials load (an ECS or IMDS endpoint that hangs).
const CREDENTIALS_LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum MskIamError {
    /// The token could not be signed.
    #[error(
        "signing the MSK IAM token for region {region}: {reason} (a retry cannot help: check the region)"
    )]
    Sign {
        /// The region the token was signed for.
        region: String,
        /// Why signing failed.
        reason: String,
    },
    /// The AWS credential chain found no credentials.
    #[error(
        "no AWS credentials for the MSK IAM token: {reason} (a retry can help once they arrive; check the task role or AWS_… variables)"
    )]
    NoCredentials {
        /// Why the credential chain found none.
        reason: String,
    },
    /// Its value is not kept: a foreign OAUTHBEARER config may hold a
    /// client secret.
    #[error(
        "the OAUTHBEARER config is not votewire's (`{OAUTHBEARER_CONFIG_PREFIX} region=<region>`; its value is not shown, it may hold a secret): set kafka.msk_iam_region rather than sasl.oauthbearer.config"
    )]
    NotMskIam,
}

impl MskIamError {
    /// Whether asking again can help: credentials may arrive (a role being
    /// assumed, a metadata endpoint briefly down); a bad region or a foreign
    /// OAUTHBEARER setup will not change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MskIamError::NoCredentials { .. })
    }
}

/// A signed token and when it stops being accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedToken {
    /// The token, as OAUTHBEARER sends it.
    pub token: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// The `sasl.oauthbearer.config` value that names `region`.
pub fn oauthbearer_config(region: &str) -> String {
    format!("{OAUTHBEARER_CONFIG_PREFIX} region={region}")
}

/// Signs the `kafka-cluster:Connect` URL for `region` with `credentials`
/// at `now`: the token MSK's IAM authenticator accepts.
pub fn sign_connect_token(
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<SignedToken, MskIamError> {
    let sign_error = |reason: String| MskIamError::Sign {
        region: region.to_string(),
        reason,
    };
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(sign_error("not an AWS region name".into()));
    }
    let url = format!("https://kafka.{region}.amazonaws.com/?Action=kafka-cluster%3AConnect");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| sign_error(e.to_string()))?
        .into();
    // The body hash is that of the empty body, as botocore's SigV4QueryAuth
    // signs it (not S3's UNSIGNED-PAYLOAD): the cross-check against AWS's
    // signer caught the difference.
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| sign_error(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| sign_error(e.to_string()))?
        .into_parts();
    let mut request = http::Request::get(&url)
        .body(())
        .map_err(|e| sign_error(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    // Like AWS's signers, name the client after signing (not signed).
    let signed = format!(
        "{}&User-Agent=votewire%2F{}",
        request.uri(),
        env!("CARGO_PKG_VERSION")
    );
    let signed_at_ms = now
        .duration_since(UNIX_EPOCH)
        .map_err(|e| sign_error(e.to_string()))?
        .as_secs() as i64
        * 1000;
    Ok(SignedToken {
        token: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed),
        expires_at_ms: signed_at_ms + TOKEN_LIFETIME.as_millis() as i64,
    })
}

/// The region named by a `sasl.oauthbearer.config` that votewire set.
fn region_of(config: Option<&str>) -> Result<&str, MskIamError> {
    let not_ours = || MskIamError::NotMskIam;
    let rest = config
        .and_then(|c| c.trim().strip_prefix(OAUTHBEARER_CONFIG_PREFIX))
        .ok_or_else(not_ours)?;
    rest.split_whitespace()
        .find_map(|kv| kv.strip_prefix("region="))
        .ok_or_else(not_ours)
}

/// Where a client's tokens get their credentials, and how many it issued.
/// Every Kafka client context votewire builds holds one.
#[derive(Debug)]
pub struct MskIamTokens {
    credentials: CredentialSource,
    issued: AtomicU64,
}

#[derive(Debug)]
enum CredentialSource {
    /// The process-wide cache refreshed from the default chain.
    Shared,
    /// Fixed credentials (tests, or a caller that manages its own).
    Fixed(Credentials),
}

impl Default for MskIamTokens {
    fn default() -> Self {
        MskIamTokens {
            credentials: CredentialSource::Shared,
            issued: AtomicU64::new(0),
        }
    }
}

impl MskIamTokens {
    /// Tokens signed with these credentials rather than the default chain.
    pub fn with_credentials(credentials: Credentials) -> MskIamTokens {
        MskIamTokens {
            credentials: CredentialSource::Fixed(credentials),
            issued: AtomicU64::new(0),
        }
    }

    /// A token for the region named in `oauthbearer_config` (librdkafka's
    /// `sasl.oauthbearer.config`), signed now.
    pub fn generate(&self, oauthbearer_config: Option<&str>) -> Result<OAuthToken, MskIamError> {
        let region = region_of(oauthbearer_config)?;
        let credentials = match &self.credentials {
            CredentialSource::Fixed(c) => c.clone(),
            CredentialSource::Shared => shared_credentials(region, FIRST_CREDENTIALS_WAIT)?,
        };
        let signed = sign_connect_token(region, &credentials, SystemTime::now())?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(OAuthToken {
            token: signed.token,
            principal_name: "votewire".into(),
            lifetime_ms: signed.expires_at_ms,
        })
    }

    /// How many tokens this client was given.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

/// The process's credentials, loaded and refreshed by one background thread.
struct CredentialsCache {
    state: Mutex<CacheState>,
    ready: Condvar,
}

#[derive(Default)]
struct CacheState {
    credentials: Option<Credentials>,
    last_error: Option<String>,
}

static SHARED: OnceLock<Arc<CredentialsCache>> = OnceLock::new();

/// Starts loading the process's AWS credentials for MSK IAM tokens in the
/// background, if nothing has yet: clients built afterwards get their first
/// token without waiting. The region only steers the credential chain (STS).
pub fn prefetch_credentials(region: &str) {
    let _ = shared_cache(region);
}

fn shared_cache(region: &str) -> Arc<CredentialsCache> {
    SHARED
        .get_or_init(|| {
            let cache = Arc::new(CredentialsCache {
                state: Mutex::new(CacheState::default()),
                ready: Condvar::new(),
            });
            let (c, region) = (cache.clone(), region.to_string());
            let spawned = std::thread::Builder::new()
                .name("msk-iam-credentials".into())
                .spawn(move || refresh_forever(&c, &region));
            if let Err(e) = spawned {
                cache.record(Err(format!("starting the credentials thread: {e}")));
            }
            cache
        })
        .clone()
}

fn shared_credentials(region: &str, wait: Duration) -> Result<Credentials, MskIamError> {
    let cache = shared_cache(region);
    let state = cache.state.lock().unwrap_or_else(|p| p.into_inner());
    let (state, _) = cache
        .ready
        .wait_timeout_while(state, wait, |s| {
            s.credentials.is_none() && s.last_error.is_none()
        })
        .unwrap_or_else(|p| p.into_inner());
    match (&state.credentials, &state.last_error) {
        (Some(c), _) => Ok(c.clone()),
        (None, Some(e)) => Err(MskIamError::NoCredentials { reason: e.clone() }),
        (None, None) => Err(MskIamError::NoCredentials {
            reason: format!("none loaded within {wait:?}"),
        }),
    }
}

impl CredentialsCache {
    /// Stores a load's outcome (fresh credentials replace the last error; a
    /// failure keeps the last good credentials) and wakes the waiters.
    fn record(&self, outcome: Result<Credentials, String>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(c) => {
                s.credentials = Some(c);
                s.last_error = None;
            }
            Err(e) => s.last_error = Some(e),
        }
        self.ready.notify_all();
    }
}

fn refresh_forever(cache: &CredentialsCache, region: &str) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return cache.record(Err(format!("starting the credentials runtime: {e}"))),
    };
    runtime.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let Some(provider) = sdk.credentials_provider() else {
            return cache.record(Err("the AWS SDK has no credentials provider".into()));
        };
        loop {
            let load =
                tokio::time::timeout(CREDENTIALS_LOAD_TIMEOUT, provider.provide_credentials());
            let outcome = match load.await {
                Ok(Ok(c)) => Ok(c),
                // The provider's message names the chain's sources, never
                // a secret.
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "loading timed out after {CREDENTIALS_LOAD_TIMEOUT:?}"
                )),
            };
            let next = match &outcome {
                Ok(c) => next_refresh(c.expiry(), SystemTime::now()),
                Err(e) => {
                    tracing::warn!(error = %e, "MSK IAM: no AWS credentials; retrying in 5 s");
                    Duration::from_secs(5)
                }
            };
            cache.record(outcome);
            tokio::time::sleep(next).await;
        }
    });
}

/// When to load credentials again: five minutes before they expire, at
/// least 30 s and at most 15 min from now.
fn next_refresh(expiry: Option<SystemTime>, now: SystemTime) -> Duration {
    let max = Duration::from_secs(15 * 60);
    let Some(expiry) = expiry else {
        return max;
    };
    expiry
        .duration_since(now)
        .unwrap_or_default()
        .saturating_sub(Duration::from_secs(5 * 60))
        .clamp(Duration::from_secs(30), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    fn decode(token: &str) -> String {
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_token_is_a_presigned_connect_url_valid_for_fifteen_minutes() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = sign_connect_token("us-east-1", &credentials(Some("SESSION")), now).unwrap();
        assert!(!t.token.contains('=') && !t.token.contains('+') && !t.token.contains('/'));
        let url = decode(&t.token);
        assert!(
            url.starts_with("https://kafka.us-east-1.amazonaws.com/?"),
            "{url}"
        );
        for part in [
            "Action=kafka-cluster%3AConnect",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Fus-east-1%2Fkafka-cluster%2Faws4_request",
            "X-Amz-Date=20231114T221320Z",
            "X-Amz-Expires=900",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Security-Token=SESSION",
            "X-Amz-Signature=",
            "User-Agent=votewire%2F",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        assert!(!url.contains("wJalrXUtnFEMI"), "the secret never appears");
        assert_eq!(t.expires_at_ms, 1_700_000_900_000);
        // A second later, another signature.
        let later = sign_connect_token(
            "us-east-1",
            &credentials(Some("SESSION")),
            now + Duration::from_secs(1),
        )
        .unwrap();
        assert_ne!(later.token, t.token);
    }

    #[test]
    fn a_bad_region_or_a_foreign_oauthbearer_config_is_refused_for_good() {
        let now = SystemTime::now();
        let e = sign_connect_token("us-east-1/../x", &credentials(None), now).unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        let tokens = MskIamTokens::with_credentials(credentials(None));
        for config in [None, Some("principal=admin"), Some("votewire-msk-iam")] {
            let Err(e) = tokens.generate(config) else {
                panic!("{config:?} gave a token")
            };
            assert!(matches!(e, MskIamError::NotMskIam), "{config:?}: {e}");
            assert!(!e.to_string().contains("admin"), "{e}");
            assert!(!e.is_retryable());
        }
        assert_eq!(tokens.issued(), 0);
        let t = tokens
            .generate(Some(&oauthbearer_config("eu-west-2")))
            .unwrap();
        assert!(decode(&t.token).starts_with("https://kafka.eu-west-2.amazonaws.com/"));
        assert!(t.lifetime_ms > crate::unix_ms() + 800_000);
        assert_eq!(tokens.issued(), 1);
    }

    #[test]
    fn credentials_are_refreshed_five_minutes_before_they_expire() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let min = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(next_refresh(Some(now + min(60)), now), min(15));
        assert_eq!(next_refresh(Some(now + min(12)), now), min(7));
        assert_eq!(
            next_refresh(Some(now + min(2)), now),
            Duration::from_secs(30)
        );
        assert_eq!(
            next_refresh(Some(now - min(2)), now),
            Duration::from_secs(30)
        );
        assert_eq!(next_refresh(None, now), min(15));
    }
}
