//! Access-token validation, in the order of docs/resource-server.md, failing closed.
//!
//! Every failure names the check that failed (and the kid or claim involved) so logs explain a
//! 401 — but never contain the token.

use playbook_keycloak::unix_now;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::Algorithm;
use crate::jwks::JwksCache;
use crate::signed::{SignedKey, SignedRef};

/// Keycloak access tokens are 1–2 KiB; anything far larger is not one of ours.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was rejected. Each maps to 401 `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("token has {0} segments, not 3")]
    Segments(usize),
    #[error("header is not a JWS header we accept: {0}")]
    Header(String),
    #[error("signature is not base64url")]
    SignatureEncoding,
    #[error("payload is not a JSON object of claims with the right types")]
    Claims,
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
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("issuer is not the expected one")]
    Issuer,
    #[error("audience does not include ours")]
    Audience,
    #[error("token typ `{0}` is not `Bearer` (or `DPoP` with cnf.jkt)")]
    Type(String),
}

/// What the validator checks against.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    /// How many verified tokens are remembered ([`VERIFIED_CACHE_CAPACITY`] by default): enough
    /// for every client that calls within a token's lifetime keeps their tokens verified once.
    pub verified_cache_capacity: usize,
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
    /// RFC 9449 `cnf.jkt`, when the token is DPoP-bound: the thumbprint of the proof key.
    pub jkt: Option<String>,
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
    headers: HeaderMemo,
}

/// How often a cache answered from memory, since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CacheStats {
    pub(crate) fn of<K, V, W, B, L>(cache: &quick_cache::sync::Cache<K, V, W, B, L>) -> Self
    where
        K: Eq + std::hash::Hash,
        V: Clone,
        W: quick_cache::Weighter<K, V> + Clone,
        B: std::hash::BuildHasher + Clone,
        L: quick_cache::Lifecycle<K, V> + Clone,
    {
        Self {
            hits: cache.hits(),
            misses: cache.misses(),
        }
    }
}

impl Validator {
    /// The verified-token cache's hits and misses: a low hit rate means most requests pay a
    /// signature check (many clients, short-lived tokens, or a flood).
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats::of(&self.verified.entries)
    }

    pub fn new(config: ValidatorConfig, keys: Arc<JwksCache>) -> Self {
        Self {
            verified: VerifiedCache::new(config.verified_cache_capacity),
            config,
            keys,
            headers: HeaderMemo::default(),
        }
    }

    pub fn keys(&self) -> &JwksCache {
        &self.keys
    }

    /// The issuer whose tokens are accepted.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
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
    ///
    /// jsonwebtoken decodes the header into its typed `Header` (an `alg` it does not know, such
    /// as `none`, fails there) and reads the JWKS keys, which aws-lc-rs parses once (see
    /// [`crate::jwk`]) and verifies the signature with over the exact bytes received.
    /// Around them are the checks it is silent on, or that this server makes its own way: the
    /// size bound, exactly three segments, our allow-list of algorithms (which excludes HS* by
    /// type), an unknown `crit` (jsonwebtoken parses `crit` but never refuses it), a required
    /// `kid`, and the claims, read once into [`Claims`] so that a claim of the wrong JSON type is
    /// invalid, never mistaken for absent. The claims are checked here rather than by its
    /// `decode` + `Validation`, which parses the header three times and the claims twice: that
    /// cost ~2.5 µs more a token (docs/benchmarks.md).
    pub async fn validate_uncached(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(token.len()));
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TokenError::Segments(token.split('.').count()));
        };
        let remembered = self.headers.get(header_b64);
        let Header { alg, kid } = match &remembered {
            Some(header) => header.clone(),
            None => self.read_header(token)?,
        };
        let key = self
            .keys
            .key(&kid)
            .await
            .ok_or_else(|| TokenError::UnknownKid(kid.clone()))?;
        let verifier = key.for_alg(alg).map_err(|reason| TokenError::KeyMismatch {
            kid: kid.clone(),
            reason,
        })?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| TokenError::SignatureEncoding)?;
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        if verifier.verify_sig(signed.as_bytes(), &signature).is_err() {
            return Err(TokenError::Signature(kid));
        }
        if remembered.is_none() {
            self.headers.remember(
                header_b64,
                Header {
                    alg,
                    kid: kid.clone(),
                },
            );
        }
        let json = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Claims)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Claims)?;
        self.check_claims(claims, kid)
    }

    /// The JWS header's checks (RFC 7515 section 4.1, RFC 8725 section 3.1).
    fn read_header(&self, token: &str) -> Result<Header, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Header(e.to_string()))?;
        let alg = (self.config.algorithms.iter().copied())
            .find(|a| a.jwt() == header.alg)
            .ok_or_else(|| TokenError::Algorithm(format!("{:?}", header.alg)))?;
        // We implement no JWS extension, so any `crit` is unknown.
        if let Some(crit) = &header.crit {
            return Err(TokenError::Critical(format!("{crit:?}")));
        }
        // `jku`, `x5u`, `jwk` and `x5c` are never read: keys come only from the issuer's JWKS.
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        Ok(Header { alg, kid })
    }

    /// RFC 7519 section 4.1 and RFC 9068 section 4, in the order a 401 is best explained.
    fn check_claims(&self, claims: Claims<'_>, kid: String) -> Result<VerifiedToken, TokenError> {
        let exp = claims.exp.ok_or(TokenError::Missing("exp"))? as i64;
        self.check_expiry(exp)?;
        if let Some(nbf) = claims.nbf
            && unix_now() + (self.config.leeway.as_secs() as i64) < nbf as i64
        {
            return Err(TokenError::NotYetValid);
        }
        let iss = claims.iss.ok_or(TokenError::Missing("iss"))?;
        if iss != self.config.issuer {
            return Err(TokenError::Issuer);
        }
        let ours = match claims.aud.ok_or(TokenError::Missing("aud"))? {
            Audience::One(one) => one == self.config.audience,
            Audience::Many(many) => many.iter().any(|a| *a == self.config.audience),
        };
        if !ours {
            return Err(TokenError::Audience);
        }
        // Keycloak types a DPoP-bound token `DPoP`; one that says so must carry its binding.
        let typ = claims.typ.ok_or(TokenError::Missing("typ"))?;
        let jkt = claims.cnf.as_ref().and_then(|c| c.jkt.clone());
        let dpop = typ == playbook_dpop::TOKEN_TYPE && jkt.is_some();
        if typ != "Bearer" && !dpop {
            return Err(TokenError::Type(typ.into_owned()));
        }
        Ok(VerifiedToken {
            subject: claims.sub,
            client_id: claims.azp,
            kid,
            scopes: claims
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
            realm_roles: claims
                .realm_access
                .and_then(|a| a.roles)
                .unwrap_or_default(),
            x5t_s256: claims.cnf.and_then(|c| c.x5t_s256),
            jkt,
            expires_at: exp,
        })
    }
}

/// The claims this server reads, with the JSON types they must have: a claim of the wrong type
/// fails deserialization, so it is invalid, never mistaken for absent. NumericDates may be
/// fractional (RFC 7519 section 2).
/// Strings that are only compared are borrowed from the payload, not copied.
#[derive(Deserialize)]
struct Claims<'a> {
    exp: Option<f64>,
    nbf: Option<f64>,
    #[allow(dead_code)] // read for its type only
    iat: Option<f64>,
    #[serde(borrow)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow)]
    aud: Option<Audience<'a>>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    sub: Option<String>,
    azp: Option<String>,
    scope: Option<String>,
    realm_access: Option<RealmAccess>,
    cnf: Option<Confirmation>,
}

/// RFC 7519 section 4.1.3: one audience, or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

#[derive(Deserialize)]
struct RealmAccess {
    roles: Option<Vec<String>>,
}

/// What a bound token is bound to: a certificate's thumbprint (RFC 8705 section 3.1) or a DPoP
/// key's (RFC 9449 section 6.1).
#[derive(Deserialize)]
struct Confirmation {
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    jkt: Option<String>,
}

impl Validator {
    /// The one check a remembered token needs again.
    fn check_expiry(&self, exp: i64) -> Result<(), TokenError> {
        if unix_now() > exp + self.config.leeway.as_secs() as i64 {
            Err(TokenError::Expired)
        } else {
            Ok(())
        }
    }
}

/// What a JWS header that passed [`Validator::read_header`] says.
#[derive(Clone)]
struct Header {
    alg: Algorithm,
    kid: String,
}

/// The header segments of tokens that verified, read once. Every token one key signs starts with
/// the same header bytes, so a new token's header costs a lookup instead of a base64 and JSON
/// decoding (docs/benchmarks.md, "Where a new token's time goes"). The answer depends on those bytes and the fixed
/// allow-list alone, and only a header whose token verified gets in, so nobody else can fill it.
#[derive(Default)]
struct HeaderMemo {
    entries: RwLock<HashMap<Box<str>, Header>>,
}

/// An issuer signs with a handful of keys (Keycloak: one per algorithm, two during a rotation).
const HEADERS_REMEMBERED: usize = 16;

impl HeaderMemo {
    fn get(&self, segment: &str) -> Option<Header> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(segment).cloned()
    }

    fn remember(&self, segment: &str, header: Header) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= HEADERS_REMEMBERED {
            entries.clear();
        }
        entries.insert(segment.into(), header);
    }
}

/// Tokens that passed every check, keyed by their exact bytes.
///
/// A client reuses one token for its whole lifetime (the playbook's client does), so verifying
/// its RSA signature on every request would repeat the same ~15 µs of work with the same answer.
/// A hit needs byte-for-byte equality with a token that passed, so the hasher only picks a
/// bucket: it can be a fast seeded one (a SHA-256 of the token cost more than the rest of a hit
/// together), and no collision can let a different token through. Only verified tokens get in,
/// so an attacker cannot fill the map. An entry is only valid for the JWKS generation it was
/// verified under (a key rotation or removal re-verifies everything), and expiry is re-checked on
/// every hit. The tokens are never logged.
///
/// The map is bounded, and a full one makes room one entry at a time (quick_cache's CLOCK-Pro
/// style eviction, which admits a token seen again into its main part over ones seen once): a
/// flood of distinct valid tokens costs verifications, not memory, and no request pays for
/// emptying it all at once, which the clear-when-full map before it did (a p99.9 of 16–20 ms
/// under such a flood, docs/benchmarks.md).
///
/// Tokens are found by the last bytes of their signature and compared whole ([`SignedKey`]).
struct VerifiedCache {
    entries: quick_cache::sync::Cache<SignedKey, Verified>,
}

/// A verified token and the JWKS generation it was verified under.
type Verified = (u64, Arc<VerifiedToken>);

/// How many verified tokens are remembered by default: about 2.6 KiB each with their claims, so
/// ~2.6 MiB, which CPU caches can hold; a new token's insertion and the eviction it causes touch
/// that memory. 10,000 measured a new token at 1.32 raw verifications against 1.28, within
/// the machine's noise, with twice the server's memory (docs/benchmarks.md). Envoy's JWT filter
/// remembers 100 per worker thread by default.
pub const VERIFIED_CACHE_CAPACITY: usize = 1_000;

impl VerifiedCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// Shared, not copied: a hit costs a hash, a comparison and a reference count.
    fn get(&self, token: &str, generation: u64) -> Option<Arc<VerifiedToken>> {
        self.entries
            .get(&SignedRef(token.as_bytes()))
            .filter(|(seen, _)| *seen == generation)
            .map(|(_, verified)| verified)
    }

    fn insert(&self, token: &str, generation: u64, verified: &Arc<VerifiedToken>) {
        self.entries.insert(
            SignedKey::new(token.as_bytes()),
            (generation, verified.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(n: usize) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            subject: Some(format!("subject-{n}")),
            client_id: None,
            kid: "kid".into(),
            scopes: Vec::new(),
            realm_roles: Vec::new(),
            x5t_s256: None,
            jkt: None,
            expires_at: 0,
        })
    }

    #[test]
    fn a_flood_of_new_tokens_stays_bounded_and_spares_the_token_in_use() {
        let cache = VerifiedCache::new(VERIFIED_CACHE_CAPACITY);
        let in_use = "the token a client keeps using";
        cache.insert(in_use, 1, &verified(0));
        for n in 1..=3 * VERIFIED_CACHE_CAPACITY {
            cache.insert(&format!("token-{n}"), 1, &verified(n));
            // The client's own requests keep arriving between the flood's.
            if n % 100 == 0 {
                assert!(cache.get(in_use, 1).is_some(), "evicted after {n} others");
            }
        }
        // Its shards round their share up: the bound is the cache's own capacity.
        assert!(cache.entries.len() as u64 <= cache.entries.capacity());
        assert!(cache.entries.len() >= VERIFIED_CACHE_CAPACITY / 2);
        // Room was made one entry at a time: the newest are there.
        assert!(
            cache
                .get(&format!("token-{}", 3 * VERIFIED_CACHE_CAPACITY), 1)
                .is_some()
        );
    }

    #[test]
    fn an_entry_counts_only_for_its_key_generation() {
        let cache = VerifiedCache::new(VERIFIED_CACHE_CAPACITY);
        cache.insert("token", 1, &verified(1));
        assert!(cache.get("token", 1).is_some());
        assert!(cache.get("token", 2).is_none());
    }
}
