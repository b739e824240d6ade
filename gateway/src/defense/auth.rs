//! Authentication at the WebSocket upgrade: finds a JWT in the request and
//! verifies it with the one key the operator configured (HS256 shared secret,
//! or an RS256 / EdDSA public key file).
//!
//! Pure: time is an argument (unix seconds) and nothing here does I/O except
//! [`Authenticator::from_config`], which reads key files once at start-up.
//! What it does not do: count failures per address or ban (the per-IP tables
//! do that from [`AuthError::counts_as_failed_auth`]), or fetch keys (no JWKS).
//!
//! Rules, each with its reason:
//! - Exactly one algorithm is accepted, the one that matches the configured
//!   key. A token whose header names another algorithm (including `none`) is
//!   [`AuthError::WrongAlgorithm`] before any cryptography runs, so an HS256
//!   token "signed" with an RSA public key's bytes cannot pass.
//! - `exp` is required (a token that never expires cannot be revoked by
//!   waiting); `nbf` is honoured when present. Both allow `leeway_s` of clock
//!   skew: valid while `now < exp + leeway` (RFC 7519 says "before") and once
//!   `now + leeway >= nbf`. Fractional dates round up, which keeps both
//!   comparisons exact with whole-second `now`.
//! - `sub` becomes the connection's user id: required, non-empty, at most
//!   [`MAX_SUBJECT_BYTES`].
//! - `aud` / `iss` are checked only when `audience` / `issuer` are configured
//!   (as most gateways do); when configured, a token without them fails.
//! - A presented token that fails is refused even when auth is optional:
//!   silently downgrading a bad token to anonymous would hide attacks and
//!   client bugs.
//!
//! Key number: a token is at most [`MAX_TOKEN_BYTES`]; one verification
//! costs about 1.3 µs (HS256), 37 µs (EdDSA) or 75 µs (RS256, 2048-bit) on a
//! loaded 2-core EPYC VM (`benches/auth.rs`), once per connection.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Longest token looked at; longer ones are refused unread. Far above any
/// real JWT (a few hundred bytes to 2 KiB) and equal to the default cap on
/// all request headers.
pub const MAX_TOKEN_BYTES: usize = 8 << 10;
/// Longest `sub` accepted as a user id.
pub const MAX_SUBJECT_BYTES: usize = 256;
/// Shortest HS256 secret: RFC 7518 §3.2 requires a key at least as long as
/// the hash output (256 bits).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Smallest RSA modulus accepted (NIST deprecates anything shorter).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest clock leeway accepted: the leeway extends every token's life.
pub const MAX_LEEWAY_S: u64 = 300;

/// The `[auth]` table of the configuration file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Refuse upgrades without a valid token (401). When false, a request
    /// without a token is an anonymous connection.
    pub required: bool,
    /// HS256 shared secret, inline; "" means not set.
    pub jwt_hs256_secret: String,
    /// HS256 shared secret read from a file (trailing CR/LF removed).
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// RS256 (RSA) or EdDSA (Ed25519) public key, PEM.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// When set, the token's `aud` must be (or contain) this value.
    pub audience: Option<String>,
    /// When set, the token's `iss` must be this value.
    pub issuer: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            required: false,
            jwt_hs256_secret: String::new(),
            jwt_hs256_secret_file: None,
            jwt_public_key_file: None,
            leeway_s: 30,
            audience: None,
            issuer: None,
        }
    }
}

/// Never prints the secret: configs end up in logs.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.jwt_hs256_secret.is_empty() {
            ""
        } else {
            "[redacted]"
        };
        f.debug_struct("AuthConfig")
            .field("required", &self.required)
            .field("jwt_hs256_secret", &secret)
            .field("jwt_hs256_secret_file", &self.jwt_hs256_secret_file)
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("leeway_s", &self.leeway_s)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// A refused `[auth]` table. Every message names the key; `key` fields and
/// [`AuthConfigError::key`] hold it dotted (`auth.jwt_public_key_file`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    #[error(
        "key `auth.required`: true, but no key is configured; set auth.jwt_hs256_secret, \
         auth.jwt_hs256_secret_file or auth.jwt_public_key_file"
    )]
    RequiredWithoutKey,
    #[error("keys `{first}` and `{second}` are both set; configure exactly one key")]
    ConflictingKeys {
        first: &'static str,
        second: &'static str,
    },
    #[error("key `{key}`: cannot read {}: {source}", path.display())]
    Unreadable {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key `auth.jwt_hs256_secret_file`: {} is empty", path.display())]
    EmptySecretFile { path: PathBuf },
    #[error(
        "key `{key}`: the secret is {bytes} bytes; HS256 needs at least \
         {MIN_HS256_SECRET_BYTES} (RFC 7518 §3.2), e.g. `openssl rand -base64 32`"
    )]
    WeakSecret { key: &'static str, bytes: usize },
    #[error("key `auth.jwt_public_key_file`: {}: {reason}", path.display())]
    BadPublicKey { path: PathBuf, reason: String },
    #[error("key `auth.leeway_s`: {leeway_s} is more than {MAX_LEEWAY_S} seconds")]
    LeewayTooLarge { leeway_s: u64 },
    #[error("key `{key}`: empty; remove the key to skip this check")]
    EmptyClaimValue { key: &'static str },
}

impl AuthConfigError {
    /// The dotted configuration key at fault (the second one, for a conflict).
    pub fn key(&self) -> &'static str {
        match self {
            AuthConfigError::RequiredWithoutKey => "auth.required",
            AuthConfigError::ConflictingKeys { second: key, .. }
            | AuthConfigError::Unreadable { key, .. }
            | AuthConfigError::WeakSecret { key, .. }
            | AuthConfigError::EmptyClaimValue { key } => key,
            AuthConfigError::EmptySecretFile { .. } => "auth.jwt_hs256_secret_file",
            AuthConfigError::BadPublicKey { .. } => "auth.jwt_public_key_file",
            AuthConfigError::LeewayTooLarge { .. } => "auth.leeway_s",
        }
    }
}

/// Why a token was refused. Every variant is an HTTP 401 at upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Auth is required and the request carried no token. Not counted as a
    /// failed auth (the brief: "a missing one does not").
    #[error("no token")]
    MissingToken,
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TokenTooLarge,
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than the configured key's.
    #[error("algorithm not accepted")]
    WrongAlgorithm,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("token has no exp")]
    MissingExpiry,
    #[error("token has no sub, or an empty one")]
    MissingSubject,
    #[error("sub longer than {MAX_SUBJECT_BYTES} bytes")]
    SubjectTooLong,
    /// A registered claim of the wrong JSON type (e.g. `exp` as a string).
    #[error("a claim has the wrong type")]
    InvalidClaim,
    #[error("aud does not name this gateway")]
    WrongAudience,
    #[error("iss is not the configured issuer")]
    WrongIssuer,
}

impl AuthError {
    /// Label for the per-reason refusal counter.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::TokenTooLarge => "token_too_large",
            AuthError::Malformed => "malformed",
            AuthError::WrongAlgorithm => "wrong_algorithm",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::MissingExpiry => "missing_expiry",
            AuthError::MissingSubject => "missing_subject",
            AuthError::SubjectTooLong => "subject_too_long",
            AuthError::InvalidClaim => "invalid_claim",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
        }
    }

    /// Whether this refusal counts toward the per-IP failed-auth ban: every
    /// presented token that fails does; a missing token does not.
    pub fn counts_as_failed_auth(&self) -> bool {
        !matches!(self, AuthError::MissingToken)
    }
}

/// Who a verified token says the client is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub user: String,
}

/// Verifies tokens against the one configured key. Built once at start-up,
/// shared read-only by all shards.
#[derive(Debug)]
pub struct Authenticator {
    key: DecodingKey,
    algorithm: Algorithm,
    validation: Validation,
    required: bool,
    leeway_s: u64,
    audience: Option<String>,
    issuer: Option<String>,
}

impl Authenticator {
    /// Loads and checks the configured key. `Ok(None)`: no key and auth not
    /// required, so every connection is anonymous.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Authenticator>, AuthConfigError> {
        check_claim_settings(config)?;
        let Some((key, algorithm)) = load_key(config)? else {
            if config.required {
                return Err(AuthConfigError::RequiredWithoutKey);
            }
            return Ok(None);
        };
        let mut validation = Validation::new(algorithm);
        // Time, audience and issuer are checked in `check_claims` with the
        // caller's clock; jsonwebtoken would read the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(Some(Authenticator {
            key,
            algorithm,
            validation,
            required: config.required,
            leeway_s: config.leeway_s,
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
        }))
    }

    /// Whether a request without a token is refused.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The one accepted algorithm: "HS256", "RS256" or "EdDSA".
    pub fn algorithm_name(&self) -> &'static str {
        algorithm_name(self.algorithm)
    }

    /// The whole upgrade decision: `Ok(None)` is an anonymous connection
    /// (no token, auth optional), `Ok(Some)` a verified user, `Err` a 401.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        path_and_query: &str,
        now_unix_s: u64,
    ) -> Result<Option<Identity>, AuthError> {
        match token_from_request(authorization, path_and_query) {
            Some(token) => self.verify(&token, now_unix_s).map(Some),
            None if self.required => Err(AuthError::MissingToken),
            None => Ok(None),
        }
    }

    /// Verifies signature, algorithm and claims at `now_unix_s`.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenTooLarge);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| self.classify(error.kind(), token))?;
        self.check_claims(&data.claims, now_unix_s)
    }

    fn classify(&self, error: &ErrorKind, token: &str) -> AuthError {
        match error {
            ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            // jsonwebtoken cannot parse a header naming an algorithm it does
            // not know (`none`, `HS999`); say what it was rather than
            // "malformed", so attacks show up under their own reason.
            _ if header_names_other_algorithm(token, self.algorithm) => AuthError::WrongAlgorithm,
            // Bad base64, JSON, UTF-8 or shape. Key errors cannot happen:
            // `from_config` proved the key usable.
            _ => AuthError::Malformed,
        }
    }

    fn check_claims(&self, claims: &Claims, now_unix_s: u64) -> Result<Identity, AuthError> {
        let exp = claims.exp.as_ref().ok_or(AuthError::MissingExpiry)?;
        let exp = numeric_date(exp).ok_or(AuthError::InvalidClaim)?;
        if now_unix_s >= exp.saturating_add(self.leeway_s) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = &claims.nbf {
            let nbf = numeric_date(nbf).ok_or(AuthError::InvalidClaim)?;
            if now_unix_s.saturating_add(self.leeway_s) < nbf {
                return Err(AuthError::NotYetValid);
            }
        }
        let issuer_ok = self
            .issuer
            .as_ref()
            .is_none_or(|issuer| matches!(&claims.iss, Some(Value::String(iss)) if iss == issuer));
        if !issuer_ok {
            return Err(AuthError::WrongIssuer);
        }
        let audience_ok = self
            .audience
            .as_ref()
            .is_none_or(|audience| audience_contains(claims.aud.as_ref(), audience));
        if !audience_ok {
            return Err(AuthError::WrongAudience);
        }
        let user = match &claims.sub {
            None | Some(Value::Null) => return Err(AuthError::MissingSubject),
            Some(Value::String(sub)) if sub.is_empty() => return Err(AuthError::MissingSubject),
            Some(Value::String(sub)) if sub.len() > MAX_SUBJECT_BYTES => {
                return Err(AuthError::SubjectTooLong);
            }
            Some(Value::String(sub)) => sub.clone(),
            Some(_) => return Err(AuthError::InvalidClaim),
        };
        Ok(Identity { user })
    }
}

/// The registered claims this module reads; others are ignored. Kept as
/// JSON values so a claim of the wrong type is `InvalidClaim`, not
/// `Malformed`.
#[derive(Deserialize)]
struct Claims {
    exp: Option<Value>,
    nbf: Option<Value>,
    sub: Option<Value>,
    iss: Option<Value>,
    aud: Option<Value>,
}

/// A NumericDate (RFC 7519 §2): non-negative seconds, fractions rounded up.
fn numeric_date(value: &Value) -> Option<u64> {
    let Value::Number(number) = value else {
        return None;
    };
    if let Some(seconds) = number.as_u64() {
        return Some(seconds);
    }
    let seconds = number.as_f64()?;
    // 1.8e19 < u64::MAX, so the cast below cannot saturate.
    (seconds.is_finite() && (0.0..1.8e19).contains(&seconds)).then(|| seconds.ceil() as u64)
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
fn audience_contains(aud: Option<&Value>, audience: &str) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|aud| matches!(aud, Value::String(aud) if aud == audience)),
        _ => false,
    }
}

/// Whether the token's header parses far enough to name an algorithm, and
/// that algorithm is not `expected`.
fn header_names_other_algorithm(token: &str, expected: Algorithm) -> bool {
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    let Ok(json) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<AlgOnly>(&json).is_ok_and(|h| h.alg != algorithm_name(expected))
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::EdDSA => "EdDSA",
        // `load_key` only ever picks the three above.
        _ => "unsupported",
    }
}

fn check_claim_settings(config: &AuthConfig) -> Result<(), AuthConfigError> {
    if config.leeway_s > MAX_LEEWAY_S {
        return Err(AuthConfigError::LeewayTooLarge {
            leeway_s: config.leeway_s,
        });
    }
    if config.audience.as_deref() == Some("") {
        return Err(AuthConfigError::EmptyClaimValue {
            key: "auth.audience",
        });
    }
    if config.issuer.as_deref() == Some("") {
        return Err(AuthConfigError::EmptyClaimValue { key: "auth.issuer" });
    }
    Ok(())
}

/// The configured key and its one algorithm; `None` when no key is set.
fn load_key(config: &AuthConfig) -> Result<Option<(DecodingKey, Algorithm)>, AuthConfigError> {
    let set = [
        ("auth.jwt_hs256_secret", !config.jwt_hs256_secret.is_empty()),
        (
            "auth.jwt_hs256_secret_file",
            config.jwt_hs256_secret_file.is_some(),
        ),
        (
            "auth.jwt_public_key_file",
            config.jwt_public_key_file.is_some(),
        ),
    ];
    let mut named = set
        .iter()
        .filter(|(_, is_set)| *is_set)
        .map(|(key, _)| *key);
    if let (Some(first), Some(second)) = (named.next(), named.next()) {
        return Err(AuthConfigError::ConflictingKeys { first, second });
    }
    if !config.jwt_hs256_secret.is_empty() {
        let key = hs256_key("auth.jwt_hs256_secret", config.jwt_hs256_secret.as_bytes())?;
        return Ok(Some((key, Algorithm::HS256)));
    }
    if let Some(path) = &config.jwt_hs256_secret_file {
        let secret = read_key_file("auth.jwt_hs256_secret_file", path)?;
        let secret = trim_line_breaks(&secret);
        if secret.is_empty() {
            return Err(AuthConfigError::EmptySecretFile { path: path.clone() });
        }
        let key = hs256_key("auth.jwt_hs256_secret_file", secret)?;
        return Ok(Some((key, Algorithm::HS256)));
    }
    if let Some(path) = &config.jwt_public_key_file {
        let pem = read_key_file("auth.jwt_public_key_file", path)?;
        let bad = |reason: String| AuthConfigError::BadPublicKey {
            path: path.clone(),
            reason,
        };
        return public_key(&pem).map(Some).map_err(bad);
    }
    Ok(None)
}

fn read_key_file(key: &'static str, path: &Path) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|source| AuthConfigError::Unreadable {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// Secret files usually end with a newline that is not part of the secret.
fn trim_line_breaks(secret: &[u8]) -> &[u8] {
    let end = secret
        .iter()
        .rposition(|byte| !matches!(byte, b'\n' | b'\r'))
        .map_or(0, |last| last + 1);
    &secret[..end]
}

fn hs256_key(key: &'static str, secret: &[u8]) -> Result<DecodingKey, AuthConfigError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(AuthConfigError::WeakSecret {
            key,
            bytes: secret.len(),
        });
    }
    // from_secret refuses only an empty secret, which the check above rules out.
    DecodingKey::from_secret(secret).map_err(|_| AuthConfigError::WeakSecret { key, bytes: 0 })
}

/// Parses an RSA or Ed25519 public key and proves it usable now, so no
/// verification can fail (or, for a short Ed25519 key, panic inside
/// jsonwebtoken) because of the key later.
fn public_key(pem: &[u8]) -> Result<(DecodingKey, Algorithm), String> {
    let label = pem_label(pem).ok_or("no PEM block (-----BEGIN ...-----) found")?;
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        label if label.contains("PRIVATE KEY") => {
            return Err(format!(
                "a {label}; give the public key (`openssl pkey -in KEY -pubout`), \
                 the gateway never needs the private one"
            ));
        }
        "CERTIFICATE" => {
            return Err("a CERTIFICATE; give its public key \
                        (`openssl x509 -in CERT -pubkey -noout`)"
                .into());
        }
        label => return Err(format!("a {label}, not a PUBLIC KEY")),
    }
    let provider = CryptoProvider::try_get_default()
        .ok_or("this build has no jsonwebtoken crypto provider")?;
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        let der = key.try_get_as_bytes().map_err(|e| e.to_string())?;
        let (modulus, _) = (provider.key_utils.rsa_pub_components_from_public_key)(der)
            .map_err(|e| format!("not a usable RSA public key ({e})"))?;
        let bits = significant_bits(&modulus);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "a {bits}-bit RSA key; RS256 needs at least {MIN_RSA_BITS} bits"
            ));
        }
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        let raw = key.try_get_as_bytes().map_err(|e| e.to_string())?;
        if raw.len() != 32 {
            return Err(format!("an Ed25519 key of {} bytes, not 32", raw.len()));
        }
        (provider.verifier_factory)(&Algorithm::EdDSA, &key)
            .map_err(|e| format!("not a usable Ed25519 public key ({e})"))?;
        return Ok((key, Algorithm::EdDSA));
    }
    if DecodingKey::from_ec_pem(pem).is_ok() {
        return Err("an EC (ECDSA) key; only RSA (RS256) and Ed25519 (EdDSA) are accepted".into());
    }
    Err("not a PEM-encoded RSA or Ed25519 public key".into())
}

/// The label of the first `-----BEGIN <label>-----` line.
fn pem_label(pem: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(pem).ok()?;
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")?
            .strip_suffix("-----")
    })
}

/// Bit length of a big-endian unsigned integer.
fn significant_bits(big_endian: &[u8]) -> usize {
    let Some(first) = big_endian.iter().position(|&byte| byte != 0) else {
        return 0;
    };
    (big_endian.len() - first) * 8 - big_endian[first].leading_zeros() as usize
}

/// The token of an upgrade request: `Authorization: Bearer <token>` (scheme
/// case-insensitive), else the first `access_token` query parameter,
/// percent-decoded (browsers cannot set headers on a WebSocket). A header
/// with another scheme (e.g. Basic from a proxy) is ignored. An empty token
/// is no token.
pub fn token_from_request<'a>(
    authorization: Option<&'a str>,
    path_and_query: &'a str,
) -> Option<Cow<'a, str>> {
    if let Some(token) = authorization.and_then(bearer_token) {
        return Some(Cow::Borrowed(token));
    }
    let (_, query) = path_and_query.split_once('?')?;
    let value = query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some(("access_token", value)) => Some(value),
            None if pair == "access_token" => Some(""),
            _ => None,
        })?;
    let token = percent_decode(value);
    (!token.is_empty()).then_some(token)
}

/// RFC 6750 §2.1: `Bearer 1*SP token`, surrounded by optional whitespace.
fn bearer_token(authorization: &str) -> Option<&str> {
    let value = authorization.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches([' ', '\t']);
    (!token.is_empty()).then_some(token)
}

/// Decodes `%XX` escapes; an invalid escape stays as it is (the token will
/// then fail verification as malformed, and count).
fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| {
                Some((
                    hex_value(*bytes.get(i + 1)?)?,
                    hex_value(*bytes.get(i + 2)?)?,
                ))
            })
            .flatten();
        match escaped {
            Some((high, low)) => {
                decoded.push(high << 4 | low);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    match String::from_utf8(decoded) {
        Ok(text) => Cow::Owned(text),
        Err(error) => Cow::Owned(String::from_utf8_lossy(error.as_bytes()).into_owned()),
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
    const NOW: u64 = 1_750_000_000;

    fn key_path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/auth_keys")
            .join(name)
    }

    fn key_file(name: &str) -> Vec<u8> {
        std::fs::read(key_path(name)).unwrap()
    }

    fn hs256() -> Authenticator {
        authenticator(AuthConfig {
            jwt_hs256_secret: SECRET.into(),
            ..AuthConfig::default()
        })
    }

    fn with_public_key(name: &str) -> Authenticator {
        authenticator(AuthConfig {
            jwt_public_key_file: Some(key_path(name)),
            ..AuthConfig::default()
        })
    }

    fn authenticator(config: AuthConfig) -> Authenticator {
        Authenticator::from_config(&config).unwrap().unwrap()
    }

    fn sign(algorithm: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(algorithm), claims, key).unwrap()
    }

    fn hs256_token(claims: &Value) -> String {
        let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
        sign(Algorithm::HS256, &key, claims)
    }

    fn rs256_token(claims: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(&key_file("rsa_private.pem")).unwrap();
        sign(Algorithm::RS256, &key, claims)
    }

    fn eddsa_token(private_key: &str, claims: &Value) -> String {
        let key = EncodingKey::from_ed_pem(&key_file(private_key)).unwrap();
        sign(Algorithm::EdDSA, &key, claims)
    }

    fn claims(sub: &str) -> Value {
        json!({ "sub": sub, "exp": NOW + 3600, "iat": NOW })
    }

    /// A token with a header and claims of our choosing and no signature.
    fn unsigned_token(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    fn user(name: &str) -> Result<Identity, AuthError> {
        Ok(Identity { user: name.into() })
    }

    #[test]
    fn valid_tokens_of_each_algorithm() {
        assert_eq!(
            hs256().verify(&hs256_token(&claims("alice")), NOW),
            user("alice")
        );
        let rs256 = with_public_key("rsa_public.pem");
        assert_eq!(rs256.algorithm_name(), "RS256");
        assert_eq!(rs256.verify(&rs256_token(&claims("bob")), NOW), user("bob"));
        let pkcs1 = with_public_key("rsa_public_pkcs1.pem");
        assert_eq!(pkcs1.verify(&rs256_token(&claims("bob")), NOW), user("bob"));
        let eddsa = with_public_key("ed25519_public.pem");
        assert_eq!(eddsa.algorithm_name(), "EdDSA");
        let token = eddsa_token("ed25519_private.pem", &claims("carol"));
        assert_eq!(eddsa.verify(&token, NOW), user("carol"));
    }

    #[test]
    fn expiry_boundary_is_exact_with_leeway() {
        let auth = hs256();
        let token = hs256_token(&json!({ "sub": "u", "exp": NOW }));
        // Default leeway 30 s: valid while now < exp + 30.
        assert_eq!(auth.verify(&token, NOW + 29), user("u"));
        assert_eq!(auth.verify(&token, NOW + 30), Err(AuthError::Expired));
        assert_eq!(auth.verify(&token, u64::MAX), Err(AuthError::Expired));
        let strict = authenticator(AuthConfig {
            jwt_hs256_secret: SECRET.into(),
            leeway_s: 0,
            ..AuthConfig::default()
        });
        assert_eq!(strict.verify(&token, NOW - 1), user("u"));
        assert_eq!(strict.verify(&token, NOW), Err(AuthError::Expired));
        let huge = hs256_token(&json!({ "sub": "u", "exp": u64::MAX }));
        assert_eq!(auth.verify(&huge, NOW), user("u"));
    }

    #[test]
    fn fractional_dates_round_up() {
        let auth = authenticator(AuthConfig {
            jwt_hs256_secret: SECRET.into(),
            leeway_s: 0,
            ..AuthConfig::default()
        });
        let token = hs256_token(&json!({ "sub": "u", "exp": NOW as f64 + 0.5 }));
        assert_eq!(auth.verify(&token, NOW), user("u"));
        assert_eq!(auth.verify(&token, NOW + 1), Err(AuthError::Expired));
        let token = hs256_token(&json!({ "sub": "u", "exp": NOW + 10, "nbf": NOW as f64 + 0.5 }));
        assert_eq!(auth.verify(&token, NOW), Err(AuthError::NotYetValid));
        assert_eq!(auth.verify(&token, NOW + 1), user("u"));
    }

    #[test]
    fn not_before_is_honoured_with_leeway() {
        let auth = hs256();
        let nbf = NOW + 100;
        let token = hs256_token(&json!({ "sub": "u", "exp": NOW + 3600, "nbf": nbf }));
        assert_eq!(auth.verify(&token, NOW), Err(AuthError::NotYetValid));
        assert_eq!(auth.verify(&token, nbf - 31), Err(AuthError::NotYetValid));
        assert_eq!(auth.verify(&token, nbf - 30), user("u"));
        assert_eq!(auth.verify(&token, nbf), user("u"));
    }

    #[test]
    fn claims_are_required_and_typed() {
        let auth = hs256();
        let verify = |claims: Value| auth.verify(&hs256_token(&claims), NOW);
        let exp = NOW + 60;
        assert_eq!(verify(json!({ "sub": "u" })), Err(AuthError::MissingExpiry));
        assert_eq!(
            verify(json!({ "exp": exp })),
            Err(AuthError::MissingSubject)
        );
        assert_eq!(
            verify(json!({ "exp": exp, "sub": "" })),
            Err(AuthError::MissingSubject)
        );
        assert_eq!(
            verify(json!({ "exp": exp, "sub": null })),
            Err(AuthError::MissingSubject)
        );
        assert_eq!(
            verify(json!({ "exp": exp, "sub": 42 })),
            Err(AuthError::InvalidClaim)
        );
        assert_eq!(
            verify(json!({ "exp": "soon", "sub": "u" })),
            Err(AuthError::InvalidClaim)
        );
        assert_eq!(
            verify(json!({ "exp": -5, "sub": "u" })),
            Err(AuthError::InvalidClaim)
        );
        let nbf_text = json!({ "exp": exp, "nbf": "now", "sub": "u" });
        assert_eq!(verify(nbf_text), Err(AuthError::InvalidClaim));
        let longest = "x".repeat(MAX_SUBJECT_BYTES);
        assert_eq!(
            verify(json!({ "exp": exp, "sub": longest })),
            user(&longest)
        );
        let too_long = "x".repeat(MAX_SUBJECT_BYTES + 1);
        assert_eq!(
            verify(json!({ "exp": exp, "sub": too_long })),
            Err(AuthError::SubjectTooLong)
        );
        assert_eq!(verify(json!([1, 2])), Err(AuthError::Malformed));
    }

    #[test]
    fn audience_and_issuer_when_configured() {
        let auth = authenticator(AuthConfig {
            jwt_hs256_secret: SECRET.into(),
            audience: Some("ringgate".into()),
            issuer: Some("https://idp.example".into()),
            ..AuthConfig::default()
        });
        let verify = |claims: Value| auth.verify(&hs256_token(&claims), NOW);
        let exp = NOW + 60;
        let iss = "https://idp.example";
        let ok = json!({ "exp": exp, "sub": "u", "aud": "ringgate", "iss": iss });
        assert_eq!(verify(ok), user("u"));
        let listed = json!({ "exp": exp, "sub": "u", "aud": ["x", "ringgate"], "iss": iss });
        assert_eq!(verify(listed), user("u"));
        let other = json!({ "exp": exp, "sub": "u", "aud": ["x"], "iss": iss });
        assert_eq!(verify(other), Err(AuthError::WrongAudience));
        let absent = json!({ "exp": exp, "sub": "u", "iss": iss });
        assert_eq!(verify(absent), Err(AuthError::WrongAudience));
        let wrong_iss = json!({ "exp": exp, "sub": "u", "aud": "ringgate", "iss": "evil" });
        assert_eq!(verify(wrong_iss), Err(AuthError::WrongIssuer));
        let no_iss = json!({ "exp": exp, "sub": "u", "aud": "ringgate" });
        assert_eq!(verify(no_iss), Err(AuthError::WrongIssuer));
        // Not configured: ignored.
        let any = json!({ "exp": exp, "sub": "u", "aud": "elsewhere", "iss": "anyone" });
        assert_eq!(hs256().verify(&hs256_token(&any), NOW), user("u"));
    }

    #[test]
    fn tampered_tokens_fail_the_signature() {
        let auth = with_public_key("rsa_public.pem");
        let token = rs256_token(&claims("alice"));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut forged = signature.as_bytes().to_vec();
        forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
        let forged = format!("{signed}.{}", String::from_utf8(forged).unwrap());
        assert_eq!(auth.verify(&forged, NOW), Err(AuthError::BadSignature));

        // Same signature, claims changed to another user.
        let (header, _) = signed.split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.encode(claims("mallory").to_string());
        let swapped = format!("{header}.{payload}.{signature}");
        assert_eq!(auth.verify(&swapped, NOW), Err(AuthError::BadSignature));

        let hs = hs256_token(&claims("alice"));
        let truncated = &hs[..hs.len() - 4];
        assert!(hs256().verify(truncated, NOW).is_err());
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let rs256 = with_public_key("rsa_public.pem");
        // The classic attack: HMAC keyed with the RSA public key's bytes.
        let public_pem = key_file("rsa_public.pem");
        let as_secret = EncodingKey::from_secret(&public_pem).unwrap();
        let forged = sign(Algorithm::HS256, &as_secret, &claims("admin"));
        assert_eq!(rs256.verify(&forged, NOW), Err(AuthError::WrongAlgorithm));
        // The same, with the header claiming RS256: the HMAC is not an RSA signature.
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        let (_, mac) = forged.rsplit_once('.').unwrap();
        let relabelled = jsonwebtoken::encode(&header, &claims("admin"), &as_secret);
        assert!(
            relabelled.is_err(),
            "jsonwebtoken refuses to sign RS256 with a secret"
        );
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims("admin").to_string());
        let relabelled = format!("{header}.{payload}.{mac}");
        assert_eq!(rs256.verify(&relabelled, NOW), Err(AuthError::BadSignature));

        // Each authenticator accepts its own algorithm only.
        let eddsa = with_public_key("ed25519_public.pem");
        assert_eq!(
            eddsa.verify(&rs256_token(&claims("u")), NOW),
            Err(AuthError::WrongAlgorithm)
        );
        assert_eq!(
            hs256().verify(&rs256_token(&claims("u")), NOW),
            Err(AuthError::WrongAlgorithm)
        );
        let hs512 = sign(
            Algorithm::HS512,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
            &claims("u"),
        );
        assert_eq!(hs256().verify(&hs512, NOW), Err(AuthError::WrongAlgorithm));
    }

    #[test]
    fn alg_none_is_always_refused() {
        let token = unsigned_token(&json!({ "alg": "none", "typ": "JWT" }), &claims("admin"));
        assert_eq!(hs256().verify(&token, NOW), Err(AuthError::WrongAlgorithm));
        let rs256 = with_public_key("rsa_public.pem");
        assert_eq!(rs256.verify(&token, NOW), Err(AuthError::WrongAlgorithm));
        let eddsa = with_public_key("ed25519_public.pem");
        assert_eq!(eddsa.verify(&token, NOW), Err(AuthError::WrongAlgorithm));
        let token = unsigned_token(&json!({ "alg": "None" }), &claims("admin"));
        assert_eq!(hs256().verify(&token, NOW), Err(AuthError::WrongAlgorithm));
        // Claiming the right algorithm with no signature is a bad signature.
        let token = unsigned_token(&json!({ "alg": "HS256" }), &claims("admin"));
        assert!(hs256().verify(&token, NOW).is_err());
    }

    #[test]
    fn wrong_key_fails() {
        let other_secret =
            EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!").unwrap();
        let token = sign(Algorithm::HS256, &other_secret, &claims("u"));
        assert_eq!(hs256().verify(&token, NOW), Err(AuthError::BadSignature));
        let eddsa = with_public_key("ed25519_public.pem");
        let token = eddsa_token("ed25519_other_private.pem", &claims("u"));
        assert_eq!(eddsa.verify(&token, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        let auth = hs256();
        for garbage in [
            "",
            "x",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "....",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9..!!!",
            "\u{0}\u{1}.\u{ff}.",
        ] {
            assert_eq!(
                auth.verify(garbage, NOW),
                Err(AuthError::Malformed),
                "{garbage:?}"
            );
        }
        // The signature is checked before the payload is read: an unsigned
        // payload is never parsed, however broken.
        let unread = "eyJhbGciOiJIUzI1NiJ9.!!!.abc";
        assert_eq!(auth.verify(unread, NOW), Err(AuthError::BadSignature));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(auth.verify(&long, NOW), Err(AuthError::TokenTooLarge));
    }

    #[test]
    fn every_failure_but_a_missing_token_counts() {
        let all = [
            AuthError::MissingToken,
            AuthError::TokenTooLarge,
            AuthError::Malformed,
            AuthError::WrongAlgorithm,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::MissingExpiry,
            AuthError::MissingSubject,
            AuthError::SubjectTooLong,
            AuthError::InvalidClaim,
            AuthError::WrongAudience,
            AuthError::WrongIssuer,
        ];
        let mut reasons: Vec<_> = all.iter().map(AuthError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len(), "reasons are distinct labels");
        for error in all {
            assert_eq!(
                error.counts_as_failed_auth(),
                error != AuthError::MissingToken
            );
        }
    }

    #[test]
    fn token_from_header_or_query() {
        let from = |authorization, target| token_from_request(authorization, target);
        assert_eq!(
            from(Some("Bearer abc.def.ghi"), "/ws").as_deref(),
            Some("abc.def.ghi")
        );
        assert_eq!(from(Some("bearer  t1"), "/").as_deref(), Some("t1"));
        assert_eq!(from(Some(" BEARER\tt1 "), "/").as_deref(), Some("t1"));
        assert_eq!(from(Some("Basic dXNlcjpwYXNz"), "/").as_deref(), None);
        assert_eq!(from(Some("Bearer"), "/").as_deref(), None);
        assert_eq!(from(Some("Bearer "), "/").as_deref(), None);
        assert_eq!(from(Some("Bearertoken"), "/").as_deref(), None);
        assert_eq!(from(None, "/ws").as_deref(), None);
        assert_eq!(from(None, "/ws?").as_deref(), None);
        assert_eq!(from(None, "/ws?access_token=t2").as_deref(), Some("t2"));
        let around = "/ws?room=1&access_token=t3&lang=en";
        assert_eq!(from(None, around).as_deref(), Some("t3"));
        assert_eq!(from(None, "/ws?my_access_token=x").as_deref(), None);
        assert_eq!(from(None, "/ws?access_token").as_deref(), None);
        assert_eq!(from(None, "/ws?access_token=").as_deref(), None);
        assert_eq!(
            from(None, "/?access_token=a&access_token=b").as_deref(),
            Some("a")
        );
        // Header wins; a non-Bearer header falls back to the query.
        assert_eq!(
            from(Some("Bearer hdr"), "/?access_token=q").as_deref(),
            Some("hdr")
        );
        assert_eq!(
            from(Some("Basic x"), "/?access_token=q").as_deref(),
            Some("q")
        );
    }

    #[test]
    fn query_token_is_percent_decoded() {
        let plain = token_from_request(None, "/?access_token=a.b.c").unwrap();
        assert!(matches!(plain, Cow::Borrowed("a.b.c")));
        let decoded = token_from_request(None, "/?x=1&access_token=a%2Eb%2ec%5F-&y").unwrap();
        assert_eq!(decoded, "a.b.c_-");
        let invalid = token_from_request(None, "/?access_token=a%zz%4").unwrap();
        assert_eq!(invalid, "a%zz%4");
        let not_utf8 = token_from_request(None, "/?access_token=%ff").unwrap();
        assert_eq!(not_utf8, "\u{fffd}");

        let token = hs256_token(&claims("dave"));
        let escaped: String = token
            .chars()
            .map(|c| format!("%{:02X}", c as u32))
            .collect();
        let target = format!("/chat?v=2&access_token={escaped}&t=9");
        let found = token_from_request(None, &target).unwrap();
        assert_eq!(hs256().verify(&found, NOW), user("dave"));
    }

    #[test]
    fn upgrade_decision() {
        let token = hs256_token(&claims("erin"));
        let header = format!("Bearer {token}");
        let optional = hs256();
        assert!(!optional.required());
        assert_eq!(optional.authenticate(None, "/", NOW), Ok(None));
        let known = optional.authenticate(Some(&header), "/", NOW);
        assert_eq!(
            known,
            Ok(Some(Identity {
                user: "erin".into()
            }))
        );
        // A bad token is refused even when auth is optional.
        let bad = optional.authenticate(Some("Bearer x.y.z"), "/", NOW);
        assert_eq!(bad, Err(AuthError::Malformed));

        let required = authenticator(AuthConfig {
            required: true,
            jwt_hs256_secret: SECRET.into(),
            ..AuthConfig::default()
        });
        let missing = required.authenticate(None, "/ws?room=1", NOW);
        assert_eq!(missing, Err(AuthError::MissingToken));
        assert!(!missing.unwrap_err().counts_as_failed_auth());
        let query = format!("/ws?access_token={token}");
        assert!(required.authenticate(None, &query, NOW).unwrap().is_some());
        let expired = required.authenticate(Some(&header), "/", NOW + 3600 + 30);
        assert_eq!(expired, Err(AuthError::Expired));
        assert!(expired.unwrap_err().counts_as_failed_auth());
    }

    /// A file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> TempFile {
            let path =
                std::env::temp_dir().join(format!("ringgate-auth-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn config_error(config: AuthConfig) -> AuthConfigError {
        Authenticator::from_config(&config).unwrap_err()
    }

    /// The message names the key, `key()` agrees, and the reason is there.
    fn assert_names(error: &AuthConfigError, key: &str, reason: &str) {
        let text = error.to_string();
        assert!(text.contains(&format!("`{key}`")), "{text}");
        assert_eq!(error.key(), key, "{text}");
        assert!(text.contains(reason), "{text}");
    }

    #[test]
    fn no_key_means_anonymous_unless_required() {
        assert!(
            Authenticator::from_config(&AuthConfig::default())
                .unwrap()
                .is_none()
        );
        let error = config_error(AuthConfig {
            required: true,
            ..AuthConfig::default()
        });
        assert_names(&error, "auth.required", "no key is configured");
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let file = TempFile::new("secret", format!("{SECRET}\r\n").as_bytes());
        let auth = authenticator(AuthConfig {
            jwt_hs256_secret_file: Some(file.0.clone()),
            ..AuthConfig::default()
        });
        assert_eq!(auth.algorithm_name(), "HS256");
        assert_eq!(auth.verify(&hs256_token(&claims("u")), NOW), user("u"));
    }

    #[test]
    fn config_errors_name_the_key() {
        let missing = PathBuf::from("/nonexistent/ringgate-secret");
        let error = config_error(AuthConfig {
            jwt_hs256_secret_file: Some(missing.clone()),
            ..AuthConfig::default()
        });
        assert_names(
            &error,
            "auth.jwt_hs256_secret_file",
            "/nonexistent/ringgate-secret",
        );
        let error = config_error(AuthConfig {
            jwt_public_key_file: Some(missing),
            ..AuthConfig::default()
        });
        assert_names(&error, "auth.jwt_public_key_file", "cannot read");

        let empty = TempFile::new("empty", b"\n");
        let error = config_error(AuthConfig {
            jwt_hs256_secret_file: Some(empty.0.clone()),
            ..AuthConfig::default()
        });
        assert_names(&error, "auth.jwt_hs256_secret_file", "is empty");

        let error = config_error(AuthConfig {
            jwt_hs256_secret: SECRET.into(),
            jwt_hs256_secret_file: Some(empty.0.clone()),
            ..AuthConfig::default()
        });
        assert_names(
            &error,
            "auth.jwt_hs256_secret_file",
            "auth.jwt_hs256_secret`",
        );
        let error = config_error(AuthConfig {
            jwt_hs256_secret: SECRET.into(),
            jwt_public_key_file: Some(key_path("rsa_public.pem")),
            ..AuthConfig::default()
        });
        assert_names(&error, "auth.jwt_public_key_file", "exactly one key");

        let error = config_error(AuthConfig {
            jwt_hs256_secret: "secret".into(),
            ..AuthConfig::default()
        });
        assert_names(&error, "auth.jwt_hs256_secret", "6 bytes");
        let error = config_error(AuthConfig {
            leeway_s: 3600,
            ..AuthConfig::default()
        });
        assert_names(&error, "auth.leeway_s", "3600");
        let error = config_error(AuthConfig {
            audience: Some(String::new()),
            ..AuthConfig::default()
        });
        assert_names(&error, "auth.audience", "empty");
    }

    #[test]
    fn bad_public_keys_are_refused_with_the_reason() {
        let bad_key = |name: &str| {
            config_error(AuthConfig {
                jwt_public_key_file: Some(key_path(name)),
                ..AuthConfig::default()
            })
        };
        let key = "auth.jwt_public_key_file";
        assert_names(
            &bad_key("rsa_private.pem"),
            key,
            "PRIVATE KEY; give the public key",
        );
        assert_names(&bad_key("ed25519_private.pem"), key, "PRIVATE KEY");
        assert_names(&bad_key("ec_p256_public.pem"), key, "EC (ECDSA) key");
        assert_names(&bad_key("rsa1024_public.pem"), key, "1024-bit RSA key");
        assert_names(&bad_key("README.md"), key, "no PEM block");

        let bad_pem = |name: &str, contents: &[u8]| {
            let file = TempFile::new(name, contents);
            config_error(AuthConfig {
                jwt_public_key_file: Some(file.0.clone()),
                ..AuthConfig::default()
            })
        };
        let garbled = b"-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n";
        assert_names(
            &bad_pem("garbled", garbled),
            key,
            "not a PEM-encoded RSA or Ed25519",
        );
        let cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_names(&bad_pem("cert", cert), key, "openssl x509");
        assert_names(&bad_pem("binary", &[0xff, 0x00, 0x13]), key, "no PEM block");
    }

    #[test]
    fn one_authenticator_serves_all_shards() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Authenticator>();
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let config = AuthConfig {
            jwt_hs256_secret: SECRET.into(),
            ..AuthConfig::default()
        };
        let text = format!("{config:?} {:?}", hs256());
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn config_parses_from_toml() {
        let config: AuthConfig = toml::from_str(
            "required = true\njwt_public_key_file = \"/etc/ringgate/jwt.pem\"\n\
             audience = \"ringgate\"\n",
        )
        .unwrap();
        assert!(config.required);
        assert_eq!(config.leeway_s, 30);
        assert_eq!(config.audience.as_deref(), Some("ringgate"));
        let unknown = toml::from_str::<AuthConfig>("jwt_secret = \"x\"\n").unwrap_err();
        assert!(unknown.to_string().contains("jwt_secret"), "{unknown}");
    }
}
