//! Access-token validation, in the order of docs/resource-server.md, failing closed.
//!
//! Every failure names the check that failed (and the kid or claim involved) so logs explain a
//! 401 — but never contain the token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::Algorithm;
use crate::jwks::{JwksCache, KeyLookup};

/// Keycloak access tokens are 1–2 KiB; anything far larger is not one of ours.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was rejected. Each maps to 401 `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("token has {0} segments, not 3")]
    Segments(usize),
    #[error("{0} is not base64url")]
    Base64(&'static str),
    #[error("{0} is not a JSON object")]
    Json(&'static str),
    #[error("alg `{0}` is not accepted")]
    Algorithm(String),
    #[error("crit header {0} is not understood")]
    Critical(String),
    #[error("header has no kid")]
    MissingKid,
    #[error("kid `{0}` is not in the issuer's JWKS")]
    UnknownKid(String),
    #[error("kid `{kid}` cannot verify this token: {reason}")]
    KeyMismatch { kid: String, reason: String },
    #[error("signature does not verify with kid `{0}`")]
    Signature(String),
    #[error("claim `{0}` is missing")]
    Missing(&'static str),
    #[error("claim `{0}` has the wrong JSON type")]
    WrongType(&'static str),
    #[error("token expired {0} s ago")]
    Expired(i64),
    #[error("token is not valid for another {0} s (nbf)")]
    NotYetValid(i64),
    #[error("issuer `{0}` is not the expected one")]
    Issuer(String),
    #[error("audience {0} does not include ours")]
    Audience(String),
    #[error("token typ `{0}` is not `Bearer`")]
    Type(String),
}

/// What the validator checks against.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
}

/// A token that passed every check, reduced to what policy and binding need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub kid: String,
    pub scopes: Vec<String>,
    pub realm_roles: Vec<String>,
    /// RFC 8705 `cnf.x5t#S256`, when the token is certificate-bound.
    pub x5t_s256: Option<String>,
    pub expires_at: i64,
}

impl VerifiedToken {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
    pub fn has_realm_role(&self, role: &str) -> bool {
        self.realm_roles.iter().any(|r| r == role)
    }
}

pub struct Validator {
    config: ValidatorConfig,
    keys: Arc<JwksCache>,
    verified: VerifiedCache,
}

impl Validator {
    pub fn new(config: ValidatorConfig, keys: Arc<JwksCache>) -> Self {
        Self {
            config,
            keys,
            verified: VerifiedCache::default(),
        }
    }

    pub fn keys(&self) -> &JwksCache {
        &self.keys
    }

    /// Validates a token. A token that passed is remembered by its exact bytes for the current
    /// JWKS generation, so its next use only re-checks expiry; a changed byte is a new token.
    pub async fn validate(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        // 1. Bounded size, before any decoding or hashing work.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(token.len()));
        }
        let generation = self.keys.generation();
        if let Some(verified) = self.verified.get(token, generation) {
            // Time moves on: the only check whose answer can change for the same bytes and keys.
            return self.check_expiry(verified.expires_at).map(|()| verified);
        }
        let verified = Arc::new(self.validate_uncached(token).await?);
        self.verified.insert(token, generation, &verified);
        Ok(verified)
    }

    /// Every check, every time: what [`Self::validate`] does for a token it has not seen.
    pub async fn validate_uncached(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(token.len()));
        }
        // 2. Exactly three base64url segments.
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, payload_b64, signature_b64] = parts[..] else {
            return Err(TokenError::Segments(parts.len()));
        };
        let header = json_object(header_b64, "header")?;
        // 3. alg from the allow-list only.
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("(missing)");
        let alg = Algorithm::from_name(alg_name)
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or_else(|| TokenError::Algorithm(alg_name.to_owned()))?;
        // 4. We implement no JWS extension, so any `crit` is unknown.
        if let Some(crit) = header.get("crit") {
            return Err(TokenError::Critical(crit.to_string()));
        }
        // `jku`, `x5u`, `jwk` and `x5c` are never read: keys come only from the issuer's JWKS.
        // 5. kid, looked up in the cached JWKS (refreshed at most once per interval).
        let kid = match header.get("kid") {
            Some(Value::String(kid)) => kid.clone(),
            Some(_) => return Err(TokenError::WrongType("kid")),
            None => return Err(TokenError::MissingKid),
        };
        let key = self
            .keys
            .key(&kid)
            .await
            .map_err(|KeyLookup::UnknownKid| TokenError::UnknownKid(kid.clone()))?;
        let verifier = key.for_alg(alg).map_err(|reason| TokenError::KeyMismatch {
            kid: kid.clone(),
            reason,
        })?;
        // 6. Signature over the exact bytes received.
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| TokenError::Base64("signature"))?;
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        verifier
            .verify_sig(signed.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature(kid.clone()))?;
        // 7. Claims; a claim of the wrong JSON type is invalid, not absent.
        let claims = json_object(payload_b64, "payload")?;
        self.check_claims(&claims, kid)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        kid: String,
    ) -> Result<VerifiedToken, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let leeway = self.config.leeway.as_secs() as i64;
        let exp = number(claims, "exp")?.ok_or(TokenError::Missing("exp"))?;
        self.check_expiry(exp)?;
        if let Some(nbf) = number(claims, "nbf")?
            && now + leeway < nbf
        {
            return Err(TokenError::NotYetValid(nbf - now));
        }
        number(claims, "iat")?;
        let iss = string(claims, "iss")?.ok_or(TokenError::Missing("iss"))?;
        if iss != self.config.issuer {
            return Err(TokenError::Issuer(iss.to_owned()));
        }
        let audiences = match claims.get("aud") {
            None => return Err(TokenError::Missing("aud")),
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|a| a.as_str().ok_or(TokenError::WrongType("aud")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::WrongType("aud")),
        };
        if !audiences.contains(&self.config.audience.as_str()) {
            return Err(TokenError::Audience(format!("{audiences:?}")));
        }
        let typ = string(claims, "typ")?.ok_or(TokenError::Missing("typ"))?;
        if typ != "Bearer" {
            return Err(TokenError::Type(typ.to_owned()));
        }
        let scopes = string(claims, "scope")?
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        let realm_roles = match claims.get("realm_access") {
            None => Vec::new(),
            Some(Value::Object(access)) => match access.get("roles") {
                None => Vec::new(),
                Some(Value::Array(roles)) => roles
                    .iter()
                    .map(|r| {
                        r.as_str()
                            .map(String::from)
                            .ok_or(TokenError::WrongType("realm_access.roles"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(TokenError::WrongType("realm_access.roles")),
            },
            Some(_) => return Err(TokenError::WrongType("realm_access")),
        };
        let x5t_s256 = match claims.get("cnf") {
            None => None,
            Some(Value::Object(cnf)) => match cnf.get("x5t#S256") {
                None => None,
                Some(Value::String(thumbprint)) => Some(thumbprint.clone()),
                Some(_) => return Err(TokenError::WrongType("cnf.x5t#S256")),
            },
            Some(_) => return Err(TokenError::WrongType("cnf")),
        };
        Ok(VerifiedToken {
            subject: string(claims, "sub")?.map(String::from),
            client_id: string(claims, "azp")?.map(String::from),
            kid,
            scopes,
            realm_roles,
            x5t_s256,
            expires_at: exp,
        })
    }
}

impl Validator {
    fn check_expiry(&self, exp: i64) -> Result<(), TokenError> {
        let now = unix_now();
        if now > exp + self.config.leeway.as_secs() as i64 {
            Err(TokenError::Expired(now - exp))
        } else {
            Ok(())
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Tokens that passed every check, keyed by their exact bytes.
///
/// A client reuses one token for its whole lifetime (the playbook's client does), so verifying
/// its RSA signature on every request would repeat the same ~20 µs of work with the same answer.
/// A hit needs byte-for-byte equality with a token that passed, so the hasher only picks a
/// bucket: it can be a fast seeded one (a SHA-256 of the token cost more than the rest of a hit
/// together), and no collision can let a different token through. Only verified tokens get in,
/// so an attacker cannot fill the map. An entry is only valid for the JWKS generation it was
/// verified under (a key rotation or removal re-verifies everything), expiry is re-checked on
/// every hit, and the map is bounded: when full it is emptied, so a flood of distinct valid
/// tokens costs verifications, not memory. The tokens are never logged.
#[derive(Default)]
struct VerifiedCache {
    entries: RwLock<HashMap<Box<str>, Verified, foldhash::fast::RandomState>>,
}

/// A verified token and the JWKS generation it was verified under.
type Verified = (u64, Arc<VerifiedToken>);

const VERIFIED_CACHE_CAPACITY: usize = 10_000;

impl VerifiedCache {
    /// Shared, not copied: a hit costs a hash, a comparison and a reference count.
    fn get(&self, token: &str, generation: u64) -> Option<Arc<VerifiedToken>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token)
            .filter(|(seen, _)| *seen == generation)
            .map(|(_, verified)| verified.clone())
    }

    fn insert(&self, token: &str, generation: u64, verified: &Arc<VerifiedToken>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= VERIFIED_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(token.into(), (generation, verified.clone()));
    }
}

fn json_object(segment: &str, what: &'static str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Base64(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Json(what)),
    }
}

/// A NumericDate claim: absent is `None`, present but not a number is an error.
fn number(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::WrongType(name)),
        Some(_) => Err(TokenError::WrongType(name)),
    }
}

fn string<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::WrongType(name)),
    }
}
