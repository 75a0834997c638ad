//! [`TokenService`]: issues and verifies the JWTs that travel with every request.
//!
//! # What a token says, and what it does not
//!
//! A Flowkeep token is an EdDSA (Ed25519) JWT with header `{"alg":"EdDSA","typ":"JWT","kid":…}` and claims
//!
//! | claim | meaning |
//! |---|---|
//! | `iss` | the configured issuer |
//! | `sub` | the user id the request runs as |
//! | `iat`, `nbf`, `exp` | issued, valid from, expires (Unix seconds) |
//! | `jti` | a random token id (for audit and future revocation) |
//! | `typ` | `"short"` or `"long"` |
//! | `imp` | the impostor's user id, only when impersonating |
//! | `username` | for logs and clients; never trusted for authorization |
//!
//! **Roles, names and flags are never taken from a token.** [`VerifiedToken`] carries only ids: the
//! caller is resolved afresh from the store on every request (with the role cache), so a disabled or
//! deleted user's token stops working at once and a role change applies to the next request.
//!
//! # Legacy OpenIAP Flow tokens
//!
//! When `legacy_aes_secret` is configured, OpenIAP Flow's tokens are accepted for migration: HS256 over
//! `{data: {_id, impostor?, …}, iat, exp}`, keyed with the first 32 characters of `aes_secret`. Only the
//! `_id` and `impostor` of `data` are read; Flowkeep never issues such tokens.
//!
//! # Errors
//!
//! [`TokenError`] messages are safe to send to a client: they say why a token was refused, never echo
//! the token or key material.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroize;

use crate::keys::{random_bytes, KeyError, LegacySecret, SigningKeyRing};
use crate::wellknown;

/// The longest token accepted, in bytes. Our tokens are about 400 bytes; OpenIAP Flow's slim tokens are
/// smaller. The bound keeps a hostile client from making us decode megabytes of base64.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The longest clock leeway accepted in configuration: more would stretch short tokens noticeably.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Token lifetimes, issuer and migration settings.
#[derive(Clone)]
pub struct TokenConfig {
    /// The `iss` claim of issued tokens, and the only issuer accepted (for example the public URL).
    pub issuer: String,
    /// Lifetime of short tokens (sign-in, refresh, connection tokens). Default 15 minutes.
    pub short_ttl: Duration,
    /// Lifetime of long tokens (sign-in with `longtoken`, agents, device login). Default 30 days. The
    /// signing key ring must keep retired keys at least this long.
    pub long_ttl: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 30 seconds, at most 5 minutes.
    pub leeway: Duration,
    /// OpenIAP Flow's `aes_secret`, to accept its HS256 tokens during a migration. `None` (the default)
    /// refuses every HS256 token.
    pub legacy_aes_secret: Option<String>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            issuer: "flowkeep".to_owned(),
            short_ttl: Duration::from_secs(15 * 60),
            long_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            leeway: Duration::from_secs(30),
            legacy_aes_secret: None,
        }
    }
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("issuer", &self.issuer)
            .field("short_ttl", &self.short_ttl)
            .field("long_ttl", &self.long_ttl)
            .field("leeway", &self.leeway)
            .field("legacy_aes_secret", &self.legacy_aes_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Short or long lifetime: the `typ` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// [`TokenConfig::short_ttl`].
    Short,
    /// [`TokenConfig::long_ttl`].
    Long,
}

/// What to put in a new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    /// The user the token authenticates (the impersonated user when impersonating).
    pub user_id: &'a str,
    /// That user's username, for logs and clients only.
    pub username: &'a str,
    /// The real user behind an impersonation. The caller must already have checked that the impostor
    /// may read and update the target (`Caller::impersonate`).
    pub impostor: Option<&'a str>,
    /// Short or long lifetime.
    pub kind: TokenKind,
}

/// A newly issued token and what the server should record about it (the audit entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// The key that signed it.
    pub kid: String,
    /// `iat` (Unix seconds).
    pub issued_at: i64,
    /// `exp` (Unix seconds).
    pub expires_at: i64,
    /// Short or long.
    pub kind: TokenKind,
}

/// A token whose signature, issuer and lifetime checked out.
///
/// It carries ids only, never roles or names: resolve the caller from the store on every request.
/// Fields are private and there is no public constructor, so a `VerifiedToken` always comes from
/// [`TokenService::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    user_id: String,
    impostor: Option<String>,
    expires_at: i64,
    kind: TokenKind,
    legacy: bool,
    jti: Option<String>,
    kid: Option<String>,
}

impl VerifiedToken {
    /// The user the request runs as.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The real user behind an impersonation, if any.
    pub fn impostor(&self) -> Option<&str> {
        self.impostor.as_deref()
    }

    /// `exp` (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Short or long. For a legacy token, inferred from its lifetime (longer than the configured short
    /// lifetime means long).
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// Whether this is an OpenIAP Flow HS256 token accepted through `legacy_aes_secret`. Clients holding
    /// one should be given a Flowkeep token.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// The token's `jti` (absent from legacy tokens).
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// The key that signed it (absent from legacy tokens).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// Why a token could not be issued or was refused. Client-safe messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet (`nbf` or `iat` in the future beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The signature does not match.
    #[error("the token signature is invalid")]
    BadSignature,
    /// The token names no key, or a key this server does not have (never had, or pruned).
    #[error("the token was signed with an unknown key")]
    UnknownKid,
    /// The token is not a well-formed JWT of the expected shape.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token was issued by someone else.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// The token's algorithm is not accepted (`none`, HS256 without legacy configured, RSA, …).
    #[error("the token algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    /// Root is a system identity: no token may carry it.
    #[error("root is a system identity and cannot use a token")]
    RootNotAllowed,
    /// The issue request is invalid (empty user id, impostor equal to the user).
    #[error("invalid token request: {0}")]
    InvalidRequest(&'static str),
    /// The token configuration is invalid (operator-facing, at start).
    #[error("invalid token configuration: {0}")]
    InvalidConfig(String),
    /// Signing failed inside the JWT library.
    #[error("the token could not be signed")]
    Signing,
}

/// The claims of a Flowkeep token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    typ: TokenKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    imp: Option<String>,
    #[serde(default)]
    username: String,
}

/// The part of an OpenIAP Flow token we read: `{data: {_id, impostor}, iat, exp}`.
#[derive(Debug, Deserialize)]
struct LegacyClaims {
    data: LegacyData,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct LegacyData {
    #[serde(rename = "_id")]
    id: Option<String>,
    impostor: Option<String>,
}

/// Issues and verifies tokens with a [`SigningKeyRing`] (and, for migration, a [`LegacySecret`]).
///
/// Rotate keys through [`TokenService::ring_mut`]; the core keeps the service behind a lock.
pub struct TokenService {
    config: TokenConfig,
    legacy: Option<LegacySecret>,
    ring: SigningKeyRing,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("config", &self.config)
            .field("legacy", &self.legacy.is_some())
            .field("ring", &self.ring)
            .finish()
    }
}

impl TokenService {
    /// Checks the configuration and builds the service.
    ///
    /// Refused: an empty issuer; a zero short lifetime or a long lifetime shorter than the short one; a
    /// leeway over 5 minutes; a key ring whose retention is shorter than the long lifetime (a long token
    /// would outlive its key); an empty, short or well-known `legacy_aes_secret`.
    pub fn new(mut config: TokenConfig, ring: SigningKeyRing) -> Result<Self, TokenError> {
        let legacy = match config.legacy_aes_secret.take() {
            Some(mut secret) => {
                let parsed = LegacySecret::new(&secret);
                secret.zeroize();
                Some(parsed.map_err(|e| TokenError::InvalidConfig(e.to_string()))?)
            }
            None => None,
        };
        if config.issuer.trim().is_empty() {
            return Err(TokenError::InvalidConfig("the issuer must not be empty".to_owned()));
        }
        if config.short_ttl.as_secs() == 0 {
            return Err(TokenError::InvalidConfig("the short token lifetime must be at least one second".to_owned()));
        }
        if config.long_ttl < config.short_ttl {
            return Err(TokenError::InvalidConfig(
                "the long token lifetime must not be shorter than the short one".to_owned(),
            ));
        }
        if config.leeway > MAX_LEEWAY {
            return Err(TokenError::InvalidConfig("the clock leeway must be at most 5 minutes".to_owned()));
        }
        if ring.retention() < config.long_ttl {
            return Err(TokenError::InvalidConfig(format!(
                "signing keys are kept {} s after rotation, less than the long token lifetime of {} s: \
                 long tokens would stop verifying before they expire",
                ring.retention().as_secs(),
                config.long_ttl.as_secs()
            )));
        }
        Ok(TokenService { config, legacy, ring })
    }

    /// The configuration in force (`legacy_aes_secret` is always `None` here: the secret is kept only in
    /// its checked form).
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Whether OpenIAP Flow HS256 tokens are accepted.
    pub fn accepts_legacy(&self) -> bool {
        self.legacy.is_some()
    }

    /// The signing key ring.
    pub fn ring(&self) -> &SigningKeyRing {
        &self.ring
    }

    /// The signing key ring, to rotate or prune keys.
    pub fn ring_mut(&mut self) -> &mut SigningKeyRing {
        &mut self.ring
    }

    /// The JWKS document of the live signing keys.
    pub fn jwks(&self) -> serde_json::Value {
        self.ring.jwks()
    }

    /// Issues a token signed by the active key, valid from `now` for the kind's lifetime.
    pub fn issue(&self, request: &TokenRequest<'_>, now: i64) -> Result<IssuedToken, TokenError> {
        if request.user_id.is_empty() {
            return Err(TokenError::InvalidRequest("the user id is empty"));
        }
        if request.user_id == wellknown::ROOT || request.impostor == Some(wellknown::ROOT) {
            return Err(TokenError::RootNotAllowed);
        }
        match request.impostor {
            Some("") => return Err(TokenError::InvalidRequest("the impostor id is empty")),
            Some(impostor) if impostor == request.user_id => {
                return Err(TokenError::InvalidRequest("a user cannot impersonate itself"))
            }
            _ => {}
        }
        let ttl = match request.kind {
            TokenKind::Short => self.config.short_ttl,
            TokenKind::Long => self.config.long_ttl,
        };
        let expires_at = now.saturating_add(secs(ttl));
        let mut jti = [0u8; 16];
        random_bytes(&mut jti).map_err(|_| TokenError::Signing)?;
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: request.user_id.to_owned(),
            iat: now,
            nbf: now,
            exp: expires_at,
            jti: URL_SAFE_NO_PAD.encode(jti),
            typ: request.kind,
            imp: request.impostor.map(str::to_owned),
            username: request.username.to_owned(),
        };
        let (kid, key) = self.ring.signer();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key).map_err(|_| TokenError::Signing)?;
        Ok(IssuedToken { token, jti: claims.jti, kid: kid.to_owned(), issued_at: now, expires_at, kind: request.kind })
    }

    /// Verifies a token at time `now`: the algorithm (EdDSA; HS256 only with a legacy secret; never
    /// `none`), the key by `kid`, the signature, the issuer, and `exp`/`nbf`/`iat` with the configured
    /// leeway. Root tokens are refused.
    pub fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Malformed("empty token"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("the token is too long"));
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            // An algorithm jsonwebtoken does not know (`none`, typos) fails the header parse; report it
            // as such when the header is otherwise readable.
            Err(_) => return Err(unknown_alg(token).unwrap_or(TokenError::Malformed("unreadable header"))),
        };
        match header.alg {
            Algorithm::EdDSA => self.verify_flowkeep(token, header.kid.as_deref(), now),
            Algorithm::HS256 if self.legacy.is_some() => self.verify_legacy(token, now),
            other => Err(TokenError::UnsupportedAlgorithm(format!("{other:?}"))),
        }
    }

    fn verify_flowkeep(&self, token: &str, kid: Option<&str>, now: i64) -> Result<VerifiedToken, TokenError> {
        let kid = kid.ok_or(TokenError::UnknownKid)?;
        let key = self.ring.decoding_key(kid).ok_or(TokenError::UnknownKid)?;
        let claims: Claims = decode(token, key, Algorithm::EdDSA)?;
        // Constant-time comparison is not needed: the issuer is public.
        if claims.iss != self.config.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Malformed("empty subject"));
        }
        if claims.sub == wellknown::ROOT || claims.imp.as_deref() == Some(wellknown::ROOT) {
            return Err(TokenError::RootNotAllowed);
        }
        self.check_times(Some(claims.iat), Some(claims.nbf), claims.exp, now)?;
        Ok(VerifiedToken {
            user_id: claims.sub,
            impostor: claims.imp.filter(|i| !i.is_empty()),
            expires_at: claims.exp,
            kind: claims.typ,
            legacy: false,
            jti: Some(claims.jti),
            kid: Some(kid.to_owned()),
        })
    }

    fn verify_legacy(&self, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        let Some(legacy) = &self.legacy else {
            return Err(TokenError::UnsupportedAlgorithm("HS256".to_owned()));
        };
        let key = DecodingKey::from_secret(legacy.key_bytes());
        let claims: LegacyClaims = decode(token, &key, Algorithm::HS256)?;
        // OpenIAP Flow always sets `exp`; a token without one would never expire, so it is refused.
        let exp = claims.exp.ok_or(TokenError::Malformed("the token has no expiry"))?;
        let user_id = claims.data.id.filter(|id| !id.is_empty()).ok_or(TokenError::Malformed("no user id"))?;
        let impostor = claims.data.impostor.filter(|i| !i.is_empty());
        // OpenIAP Flow mints root tokens with the same secret for internal use; one that leaked must not
        // grant anything here.
        if user_id == wellknown::ROOT || impostor.as_deref() == Some(wellknown::ROOT) {
            return Err(TokenError::RootNotAllowed);
        }
        self.check_times(claims.iat, claims.nbf, exp, now)?;
        let lifetime = claims.iat.map_or(i64::MAX, |iat| exp.saturating_sub(iat));
        let kind = if lifetime > secs(self.config.short_ttl) { TokenKind::Long } else { TokenKind::Short };
        Ok(VerifiedToken { user_id, impostor, expires_at: exp, kind, legacy: true, jti: None, kid: None })
    }

    /// Checks `exp`, `nbf` and `iat` against `now`, with the leeway for clock skew between servers.
    fn check_times(&self, iat: Option<i64>, nbf: Option<i64>, exp: i64, now: i64) -> Result<(), TokenError> {
        let leeway = secs(self.config.leeway);
        if now >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        let not_before = nbf.into_iter().chain(iat).max();
        if not_before.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// Verifies the signature with exactly one algorithm and decodes the claims. Time and issuer checks are
/// ours (with the caller's `now`), so jsonwebtoken's own, which read the system clock, are off.
fn decode<T: serde::de::DeserializeOwned>(token: &str, key: &DecodingKey, alg: Algorithm) -> Result<T, TokenError> {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<T>(token, key, &validation).map(|data| data.claims).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            TokenError::UnsupportedAlgorithm(format!("{alg:?}"))
        }
        ErrorKind::Json(_) => TokenError::Malformed("the claims do not have the expected shape"),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => TokenError::Malformed("not a JWT"),
        // Key-format errors concern our own keys, not the client's input; to the client it is simply a
        // signature that does not verify.
        _ => TokenError::BadSignature,
    })
}

/// If the header is readable JSON with an `alg` that jsonwebtoken does not support (such as `none`),
/// the error naming it; the name is echoed only when it is short and plain.
fn unknown_alg(token: &str) -> Option<TokenError> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let alg = value.get("alg")?.as_str()?;
    let shown = if !alg.is_empty() && alg.len() <= 16 && alg.chars().all(|c| c.is_ascii_alphanumeric()) {
        alg.to_owned()
    } else {
        "(unrecognised)".to_owned()
    };
    Some(TokenError::UnsupportedAlgorithm(shown))
}

/// A duration in whole seconds as a timestamp offset (saturating: configured lifetimes are small).
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl From<KeyError> for TokenError {
    fn from(e: KeyError) -> Self {
        TokenError::InvalidConfig(e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::keys::{MasterKey, MemoryKeyStore, Purpose};
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const USER: &str = "65f0a1b2c3d4e5f6a7b8c9d0";
    const OTHER: &str = "65f0a1b2c3d4e5f6a7b8c9d1";
    const LEGACY_SECRET: &str = "k3v9QmZr1xW8tYp2LsN5bH7cJd4fG6aE-and-more";

    struct Fixture {
        master: MasterKey,
        store: MemoryKeyStore,
        service: TokenService,
    }

    fn fixture(legacy: Option<&str>) -> Fixture {
        let master = MasterKey::generate().unwrap();
        let store = MemoryKeyStore::new();
        let config = TokenConfig { legacy_aes_secret: legacy.map(str::to_owned), ..TokenConfig::default() };
        let wrap = master.derive(Purpose::TokenKeyWrap).unwrap();
        let ring = SigningKeyRing::load_or_init(&store, &wrap, config.long_ttl, NOW).unwrap();
        let service = TokenService::new(config, ring).unwrap();
        Fixture { master, store, service }
    }

    fn request(kind: TokenKind) -> TokenRequest<'static> {
        TokenRequest { user_id: USER, username: "alice", impostor: None, kind }
    }

    fn segments(token: &str) -> (serde_json::Value, serde_json::Value) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        (header, claims)
    }

    /// Replaces the claims segment, keeping header and signature.
    fn with_claims(token: &str, claims: &serde_json::Value) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        format!("{}.{}.{}", parts[0], body, parts[2])
    }

    /// An OpenIAP Flow slim token, made the way OpenIAP Flow makes it: HS256 over `{data, iat, exp}`
    /// keyed with the first 32 characters of aes_secret.
    fn openiap_token(secret: &str, data: serde_json::Value, iat: i64, exp: i64) -> String {
        let key: String = secret.chars().take(32).collect();
        let claims = json!({ "data": data, "iat": iat, "exp": exp });
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key.as_bytes()))
            .unwrap()
    }

    #[test]
    fn short_and_long_tokens_round_trip_with_the_right_expiry() {
        let f = fixture(None);
        for (kind, ttl, typ) in [(TokenKind::Short, 15 * 60, "short"), (TokenKind::Long, 30 * 86_400, "long")] {
            let issued = f.service.issue(&request(kind), NOW).unwrap();
            assert_eq!(issued.expires_at, NOW + ttl);
            assert_eq!(issued.kid, f.service.ring().active_kid());
            let (header, claims) = segments(&issued.token);
            assert_eq!(header["alg"], "EdDSA");
            assert_eq!(header["kid"], issued.kid);
            assert_eq!(claims["iss"], "flowkeep");
            assert_eq!(claims["sub"], USER);
            assert_eq!(claims["iat"], NOW);
            assert_eq!(claims["nbf"], NOW);
            assert_eq!(claims["exp"], NOW + ttl);
            assert_eq!(claims["typ"], typ);
            assert_eq!(claims["username"], "alice");
            assert_eq!(claims["jti"], issued.jti);
            assert!(claims.get("imp").is_none());
            assert!(claims.get("roles").is_none());

            let verified = f.service.verify(&issued.token, NOW + ttl - 1).unwrap();
            assert_eq!(verified.user_id(), USER);
            assert_eq!(verified.impostor(), None);
            assert_eq!(verified.expires_at(), NOW + ttl);
            assert_eq!(verified.kind(), kind);
            assert!(!verified.is_legacy());
            assert_eq!(verified.jti(), Some(issued.jti.as_str()));
            assert_eq!(verified.kid(), Some(issued.kid.as_str()));
        }
        // Every token gets its own jti.
        let a = f.service.issue(&request(TokenKind::Short), NOW).unwrap();
        let b = f.service.issue(&request(TokenKind::Short), NOW).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn impostor_is_carried() {
        let f = fixture(None);
        let req = TokenRequest { user_id: USER, username: "alice", impostor: Some(OTHER), kind: TokenKind::Short };
        let issued = f.service.issue(&req, NOW).unwrap();
        assert_eq!(segments(&issued.token).1["imp"], OTHER);
        let verified = f.service.verify(&issued.token, NOW).unwrap();
        assert_eq!(verified.user_id(), USER);
        assert_eq!(verified.impostor(), Some(OTHER));
    }

    #[test]
    fn invalid_requests_and_root_are_refused() {
        let f = fixture(None);
        let mut req = request(TokenKind::Short);
        req.user_id = "";
        assert!(matches!(f.service.issue(&req, NOW), Err(TokenError::InvalidRequest(_))));
        req.user_id = wellknown::ROOT;
        assert_eq!(f.service.issue(&req, NOW), Err(TokenError::RootNotAllowed));
        req.user_id = USER;
        req.impostor = Some(USER);
        assert!(matches!(f.service.issue(&req, NOW), Err(TokenError::InvalidRequest(_))));
        req.impostor = Some("");
        assert!(matches!(f.service.issue(&req, NOW), Err(TokenError::InvalidRequest(_))));
    }

    #[test]
    fn expired_and_premature_tokens_are_refused_with_leeway() {
        let f = fixture(None);
        let issued = f.service.issue(&request(TokenKind::Short), NOW).unwrap();
        let exp = issued.expires_at;
        // Within the 30 s leeway it still verifies; after, it does not.
        assert!(f.service.verify(&issued.token, exp + 29).is_ok());
        assert_eq!(f.service.verify(&issued.token, exp + 30), Err(TokenError::Expired));
        assert_eq!(f.service.verify(&issued.token, exp + 86_400), Err(TokenError::Expired));
        // Issued "in the future" by a server with a fast clock: tolerated within the leeway only.
        assert!(f.service.verify(&issued.token, NOW - 30).is_ok());
        assert_eq!(f.service.verify(&issued.token, NOW - 31), Err(TokenError::NotYetValid));
    }

    #[test]
    fn retired_key_still_verifies_and_pruned_key_does_not() {
        let mut f = fixture(None);
        let old = f.service.issue(&request(TokenKind::Long), NOW).unwrap();
        let wrap = f.master.derive(Purpose::TokenKeyWrap).unwrap();
        let rotated_at = NOW + 100;
        let new_kid = f.service.ring_mut().rotate_in(&f.store, &wrap, rotated_at).unwrap();
        assert_ne!(new_kid, old.kid);

        let new = f.service.issue(&request(TokenKind::Short), rotated_at).unwrap();
        assert_eq!(new.kid, new_kid);
        assert_eq!(f.service.verify(&old.token, rotated_at).unwrap().kid(), Some(old.kid.as_str()));
        assert!(f.service.verify(&new.token, rotated_at).is_ok());

        // The old key is kept as long as a long token can live: prune at the end of the retention keeps
        // it, so the old long token verifies until it expires.
        let end_of_retention = rotated_at + secs(f.service.ring().retention());
        assert!(f.service.ring_mut().prune_in(&f.store, end_of_retention).unwrap().is_empty());
        assert!(f.service.verify(&old.token, old.expires_at - 1).is_ok());

        let pruned = f.service.ring_mut().prune_in(&f.store, end_of_retention + 1).unwrap();
        assert_eq!(pruned, vec![old.kid.clone()]);
        assert_eq!(f.service.verify(&old.token, old.expires_at - 1), Err(TokenError::UnknownKid));

        // A restart sees the same: the pruned key is gone from the store too.
        let config = TokenConfig::default();
        let ring = SigningKeyRing::load_or_init(&f.store, &wrap, config.long_ttl, end_of_retention + 2).unwrap();
        let restarted = TokenService::new(config, ring).unwrap();
        assert_eq!(restarted.verify(&old.token, old.expires_at - 1), Err(TokenError::UnknownKid));
        assert!(restarted.verify(&new.token, rotated_at).is_ok());
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let f = fixture(None);
        let other = fixture(None);
        let foreign = other.service.issue(&request(TokenKind::Short), NOW).unwrap();
        assert_eq!(f.service.verify(&foreign.token, NOW), Err(TokenError::UnknownKid));

        // A foreign token relabelled with our kid fails on the signature.
        let (mut header, _) = segments(&foreign.token);
        header["kid"] = json!(f.service.ring().active_kid());
        let parts: Vec<&str> = foreign.token.split('.').collect();
        let relabelled =
            format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()), parts[1], parts[2]);
        assert_eq!(f.service.verify(&relabelled, NOW), Err(TokenError::BadSignature));

        header.as_object_mut().unwrap().remove("kid");
        let no_kid =
            format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()), parts[1], parts[2]);
        assert_eq!(f.service.verify(&no_kid, NOW), Err(TokenError::UnknownKid));
    }

    #[test]
    fn tampered_payload_is_refused() {
        let f = fixture(None);
        let issued = f.service.issue(&request(TokenKind::Short), NOW).unwrap();
        let (_, claims) = segments(&issued.token);
        for (field, value) in [
            ("sub", json!(OTHER)),
            ("exp", json!(NOW + 10 * 365 * 86_400)),
            ("imp", json!(OTHER)),
            ("typ", json!("long")),
        ] {
            let mut changed = claims.clone();
            changed[field] = value;
            assert_eq!(
                f.service.verify(&with_claims(&issued.token, &changed), NOW),
                Err(TokenError::BadSignature),
                "{field}"
            );
        }
        // A flipped signature byte.
        let mut bytes = issued.token.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(f.service.verify(&String::from_utf8(bytes).unwrap(), NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let f = fixture(None);
        let master = &f.master;
        let wrap = master.derive(Purpose::TokenKeyWrap).unwrap();
        // Same keys, different issuer: as if another deployment shared the database.
        let ring = SigningKeyRing::load_or_init(&f.store, &wrap, TokenConfig::default().long_ttl, NOW).unwrap();
        let other =
            TokenService::new(TokenConfig { issuer: "https://elsewhere".to_owned(), ..TokenConfig::default() }, ring)
                .unwrap();
        let token = other.issue(&request(TokenKind::Short), NOW).unwrap().token;
        assert_eq!(f.service.verify(&token, NOW), Err(TokenError::WrongIssuer));
    }

    #[test]
    fn alg_none_and_hs256_are_refused_without_legacy() {
        let f = fixture(None);
        let issued = f.service.issue(&request(TokenKind::Short), NOW).unwrap();
        let (_, claims) = segments(&issued.token);
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        for token in [format!("{none_header}.{body}."), format!("{none_header}.{body}")] {
            assert_eq!(f.service.verify(&token, NOW), Err(TokenError::UnsupportedAlgorithm("none".to_owned())));
        }
        // HS256 over our own claims shape, keyed with anything (here: the public key bytes, the classic
        // algorithm-confusion attack).
        let public = URL_SAFE_NO_PAD.decode(&f.store.records()[0].public_key).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(issued.kid.clone());
        let hs = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&public)).unwrap();
        assert_eq!(f.service.verify(&hs, NOW), Err(TokenError::UnsupportedAlgorithm("HS256".to_owned())));
        // And an OpenIAP Flow token, when legacy is not configured.
        let legacy = openiap_token(LEGACY_SECRET, json!({"_id": USER}), NOW, NOW + 300);
        assert_eq!(f.service.verify(&legacy, NOW), Err(TokenError::UnsupportedAlgorithm("HS256".to_owned())));
        // Other algorithms and garbage.
        let mut header = Header::new(Algorithm::HS512);
        header.kid = Some(issued.kid);
        let hs512 = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"k")).unwrap();
        assert_eq!(f.service.verify(&hs512, NOW), Err(TokenError::UnsupportedAlgorithm("HS512".to_owned())));
        for garbage in ["", "abc", "a.b.c", "....", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(matches!(f.service.verify(garbage, NOW), Err(TokenError::Malformed(_))), "{garbage:.20}");
        }
    }

    #[test]
    fn legacy_openiap_tokens_verify_when_configured() {
        let f = fixture(Some(LEGACY_SECRET));
        assert!(f.service.accepts_legacy());
        // A slim token as OpenIAP Flow issues it (5 minutes), with an impostor.
        let token = openiap_token(LEGACY_SECRET, json!({"_id": USER, "impostor": OTHER}), NOW, NOW + 300);
        let verified = f.service.verify(&token, NOW + 10).unwrap();
        assert_eq!(verified.user_id(), USER);
        assert_eq!(verified.impostor(), Some(OTHER));
        assert_eq!(verified.expires_at(), NOW + 300);
        assert_eq!(verified.kind(), TokenKind::Short);
        assert!(verified.is_legacy());
        assert_eq!(verified.kid(), None);

        // A full token (roles and all): the roles are ignored, only ids are returned; an empty impostor
        // means none; a 365-day token is a long one.
        let full = openiap_token(
            LEGACY_SECRET,
            json!({"_type": "user", "_id": USER, "impostor": "", "name": "Alice", "username": "alice",
                   "roles": [{"_id": "5a1702fa245d9013697656fb", "name": "admins"}]}),
            NOW,
            NOW + 365 * 86_400,
        );
        let verified = f.service.verify(&full, NOW).unwrap();
        assert_eq!(verified.user_id(), USER);
        assert_eq!(verified.impostor(), None);
        assert_eq!(verified.kind(), TokenKind::Long);

        // Flowkeep tokens still work alongside.
        let ours = f.service.issue(&request(TokenKind::Short), NOW).unwrap();
        assert!(!f.service.verify(&ours.token, NOW).unwrap().is_legacy());

        // Expired, wrong secret, tampered, root, and shapeless legacy tokens are refused.
        assert_eq!(f.service.verify(&token, NOW + 300 + 30), Err(TokenError::Expired));
        let wrong = openiap_token("another-secret-of-enough-length-000", json!({"_id": USER}), NOW, NOW + 300);
        assert_eq!(f.service.verify(&wrong, NOW), Err(TokenError::BadSignature));
        let (_, claims) = segments(&token);
        let mut changed = claims.clone();
        changed["data"]["_id"] = json!(OTHER);
        assert_eq!(f.service.verify(&with_claims(&token, &changed), NOW), Err(TokenError::BadSignature));
        let root = openiap_token(LEGACY_SECRET, json!({"_id": wellknown::ROOT}), NOW, NOW + 300);
        assert_eq!(f.service.verify(&root, NOW), Err(TokenError::RootNotAllowed));
        let no_id = openiap_token(LEGACY_SECRET, json!({"name": "x"}), NOW, NOW + 300);
        assert!(matches!(f.service.verify(&no_id, NOW), Err(TokenError::Malformed(_))));
        let key: String = LEGACY_SECRET.chars().take(32).collect();
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"data": {"_id": USER}, "iat": NOW}),
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap();
        assert!(matches!(f.service.verify(&no_exp, NOW), Err(TokenError::Malformed(_))));
        // The secret's characters beyond the 32nd play no part, as in OpenIAP Flow.
        let same_prefix =
            openiap_token("k3v9QmZr1xW8tYp2LsN5bH7cJd4fG6aE-other-tail", json!({"_id": USER}), NOW, NOW + 60);
        assert!(f.service.verify(&same_prefix, NOW).is_ok());
    }

    #[test]
    fn service_can_be_shared_between_threads() {
        // The core keeps one service behind a lock for every connection.
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TokenService>();
        assert_send_sync::<MemoryKeyStore>();
    }

    #[test]
    fn configuration_is_checked() {
        let master = MasterKey::generate().unwrap();
        let wrap = master.derive(Purpose::TokenKeyWrap).unwrap();
        let store = MemoryKeyStore::new();
        let ring = |retention: Duration| SigningKeyRing::load_or_init(&store, &wrap, retention, NOW).unwrap();
        let long = TokenConfig::default().long_ttl;
        let bad = [
            TokenConfig { issuer: " ".to_owned(), ..TokenConfig::default() },
            TokenConfig { short_ttl: Duration::ZERO, ..TokenConfig::default() },
            TokenConfig { long_ttl: Duration::from_secs(60), ..TokenConfig::default() },
            TokenConfig { leeway: Duration::from_secs(3600), ..TokenConfig::default() },
            TokenConfig { legacy_aes_secret: Some(String::new()), ..TokenConfig::default() },
            TokenConfig {
                legacy_aes_secret: Some("O1itlrmA47WzxPj95YHD2sZs7IchYaQI25mQ".to_owned()),
                ..TokenConfig::default()
            },
            TokenConfig { legacy_aes_secret: Some("changeme".to_owned()), ..TokenConfig::default() },
        ];
        for config in bad {
            let shown = format!("{config:?}");
            assert!(matches!(TokenService::new(config, ring(long)), Err(TokenError::InvalidConfig(_))), "{shown}");
        }
        // Retired keys must outlive long tokens.
        let err = TokenService::new(TokenConfig::default(), ring(long - Duration::from_secs(1))).unwrap_err();
        assert!(matches!(err, TokenError::InvalidConfig(ref m) if m.contains("long token")), "{err}");
        // The legacy secret is never shown.
        let config = TokenConfig { legacy_aes_secret: Some(LEGACY_SECRET.to_owned()), ..TokenConfig::default() };
        assert!(!format!("{config:?}").contains("k3v9"));
        let service = TokenService::new(config, ring(long)).unwrap();
        assert!(!format!("{service:?}").contains("k3v9"));
        assert_eq!(service.config().legacy_aes_secret, None);
    }

    #[test]
    fn error_messages_are_client_safe() {
        let f = fixture(Some(LEGACY_SECRET));
        let issued = f.service.issue(&request(TokenKind::Short), NOW).unwrap();
        let (_, claims) = segments(&issued.token);
        let mut changed = claims.clone();
        changed["sub"] = json!(OTHER);
        let attempts = [
            f.service.verify(&with_claims(&issued.token, &changed), NOW),
            f.service.verify(&issued.token, NOW + 10 * 86_400),
            f.service.verify("eyJhbGciOiJub25lIn0.e30.", NOW),
            f.service
                .verify(&openiap_token("another-secret-of-enough-length-000", json!({"_id": USER}), NOW, NOW + 1), NOW),
        ];
        for result in attempts {
            let message = result.unwrap_err().to_string();
            for secret in [LEGACY_SECRET, &issued.token, &issued.jti, USER, OTHER] {
                assert!(!message.contains(secret), "{message}");
            }
        }
    }
}
