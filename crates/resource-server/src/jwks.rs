//! The issuer's signing keys: discovered, parsed once, refreshed carefully.
//!
//! A token naming an unknown `kid` may mean Keycloak rotated its keys, so the set is fetched
//! again — but only by one request at a time (the others wait for its result) and at most once
//! per `min_refresh_interval`, so a flood of made-up kids costs one fetch per interval, not one
//! per request. A failed fetch keeps the keys we have: Keycloak being down must not turn valid
//! tokens away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playbook_provider::describe;
use serde::Deserialize;
use url::Url;

use crate::Algorithm;

/// Default minimum time between two JWKS fetches.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// A key from the JWKS, with what it may verify.
pub struct VerifyingKey {
    pub kid: String,
    /// Why this key can never verify a token signature, if it cannot (e.g. `use: enc`).
    unusable: Option<String>,
    /// The JWK's own `alg`, which then is the only algorithm it verifies.
    alg: Option<Algorithm>,
    parsed: HashMap<Algorithm, ParsedPublicKey>,
}

impl VerifyingKey {
    /// The parsed key for `alg`, or why this key does not verify `alg`.
    pub fn for_alg(&self, alg: Algorithm) -> Result<&ParsedPublicKey, String> {
        if let Some(reason) = &self.unusable {
            return Err(reason.clone());
        }
        if let Some(own) = self.alg
            && own != alg
        {
            return Err(format!("key is for {} only", own.name()));
        }
        self.parsed
            .get(&alg)
            .ok_or_else(|| format!("key type does not match {}", alg.name()))
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS document into keys usable for the `allowed` algorithms. Malformed entries are
/// skipped (logged), never fatal: one odd key must not take the others down.
pub fn parse_jwks(
    document: &[u8],
    allowed: &[Algorithm],
) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    let set: JwkSet = serde_json::from_slice(document).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::warn!("skipping a JWKS entry with fields of the wrong type");
            continue;
        };
        let Some(kid) = jwk.kid.clone() else {
            tracing::warn!("skipping a JWKS entry without kid");
            continue;
        };
        let key = parse_jwk(kid.clone(), &jwk, allowed);
        keys.insert(kid, Arc::new(key));
    }
    Ok(keys)
}

fn parse_jwk(kid: String, jwk: &Jwk, allowed: &[Algorithm]) -> VerifyingKey {
    let mut key = VerifyingKey {
        kid,
        unusable: None,
        alg: None,
        parsed: HashMap::new(),
    };
    if let Some(use_) = jwk.use_.as_deref().filter(|u| *u != "sig") {
        key.unusable = Some(format!("key use is `{use_}`, not `sig`"));
        return key;
    }
    if let Some(alg) = &jwk.alg {
        match Algorithm::from_name(alg) {
            Some(alg) => key.alg = Some(alg),
            None => {
                key.unusable = Some(format!("key algorithm `{alg}` is not accepted here"));
                return key;
            }
        }
    }
    let b64 = |v: &Option<String>| v.as_deref().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    for &alg in allowed
        .iter()
        .filter(|a| key.alg.is_none_or(|own| own == **a))
    {
        let parsed = match (jwk.kty.as_deref(), alg) {
            (Some("RSA"), _) => match (b64(&jwk.n), b64(&jwk.e), rsa_params(alg)) {
                (Some(n), Some(e), Some(params)) => RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(params)
                    .ok(),
                _ => None,
            },
            (Some("EC"), Algorithm::ES256 | Algorithm::ES384) => {
                let (curve, verify): (&str, &'static dyn signature::VerificationAlgorithm) =
                    match alg {
                        Algorithm::ES256 => ("P-256", &signature::ECDSA_P256_SHA256_FIXED),
                        _ => ("P-384", &signature::ECDSA_P384_SHA384_FIXED),
                    };
                match (jwk.crv.as_deref() == Some(curve), b64(&jwk.x), b64(&jwk.y)) {
                    (true, Some(x), Some(y)) => {
                        let point = [&[4u8][..], &x, &y].concat();
                        ParsedPublicKey::new(verify, point).ok()
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(parsed) = parsed {
            key.parsed.insert(alg, parsed);
        }
    }
    if key.parsed.is_empty() && key.unusable.is_none() {
        key.unusable = Some("no accepted algorithm fits this key".into());
    }
    key
}

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 | Algorithm::ES384 => return None,
    })
}

/// Why no key could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    UnknownKid,
}

/// The issuer's keys, shared by all requests.
pub struct JwksCache {
    http: reqwest::Client,
    jwks_uri: Url,
    allowed: Vec<Algorithm>,
    min_refresh_interval: Duration,
    keys: RwLock<Arc<HashMap<String, Arc<VerifyingKey>>>>,
    /// Held by the one request that fetches; holds the time of the last fetch attempt.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    generation: AtomicU64,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: Url,
}

impl JwksCache {
    /// Finds the JWKS URL by OIDC discovery of `issuer` and loads the keys.
    ///
    /// Discovery must succeed (without it there is nothing to trust); the first key fetch may
    /// fail, in which case the server starts without keys and reports not-ready until a refresh
    /// succeeds.
    pub async fn discover(
        http: reqwest::Client,
        issuer: &Url,
        allowed: Vec<Algorithm>,
        min_refresh_interval: Duration,
    ) -> Result<Self, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.as_str().trim_end_matches('/')
        );
        let discovery: Discovery = async {
            let response = http.get(&url).send().await?.error_for_status()?;
            response.json().await
        }
        .await
        .map_err(|e| format!("OIDC discovery at {url} failed: {}", describe(&e)))?;
        // Mix-up defence: the document must describe the issuer we were told to trust.
        if discovery.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
            return Err(format!(
                "discovery at {url} names issuer {}, not {issuer}",
                discovery.issuer
            ));
        }
        let cache = Self::new(http, discovery.jwks_uri, allowed, min_refresh_interval);
        cache.refresh_now().await;
        Ok(cache)
    }

    /// A cache for a known JWKS URL, empty until the first refresh.
    pub fn new(
        http: reqwest::Client,
        jwks_uri: Url,
        allowed: Vec<Algorithm>,
        min_refresh_interval: Duration,
    ) -> Self {
        Self {
            http,
            jwks_uri,
            allowed,
            min_refresh_interval,
            keys: RwLock::new(Arc::new(HashMap::new())),
            refresh: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
        }
    }

    /// Installs the keys of a JWKS document, as a fetch would (offline start, benchmarks).
    pub fn preload(&self, document: &[u8]) -> Result<(), String> {
        let keys = parse_jwks(document, &self.allowed)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Whether any usable signing key is loaded (the readiness answer).
    pub fn has_keys(&self) -> bool {
        self.snapshot().values().any(|k| k.unusable.is_none())
    }

    /// Changes whenever a new key set is installed: results verified under an older one are stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// How many times the JWKS was fetched (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Arc<HashMap<String, Arc<VerifyingKey>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key for `kid`, refreshing the set once (rate-limited, single flight) if it is unknown.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyLookup> {
        if let Some(key) = self.snapshot().get(kid) {
            return Ok(key.clone());
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut last_fetch = self.refresh.lock().await;
        // Someone refreshed while we waited: use their result instead of fetching again.
        if self.generation.load(Ordering::Acquire) == seen
            && last_fetch.is_none_or(|at| at.elapsed() >= self.min_refresh_interval)
        {
            *last_fetch = Some(Instant::now());
            self.fetch().await;
        }
        drop(last_fetch);
        self.snapshot()
            .get(kid)
            .cloned()
            .ok_or(KeyLookup::UnknownKid)
    }

    /// Fetches now, ignoring the interval (start-up and readiness retries).
    pub async fn refresh_now(&self) {
        let mut last_fetch = self.refresh.lock().await;
        *last_fetch = Some(Instant::now());
        self.fetch().await;
    }

    async fn fetch(&self) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = async {
            let response = self
                .http
                .get(self.jwks_uri.clone())
                .send()
                .await
                .map_err(|e| describe(&e))?;
            let response = response.error_for_status().map_err(|e| describe(&e))?;
            let body = response.bytes().await.map_err(|e| describe(&e))?;
            parse_jwks(&body, &self.allowed)
        }
        .await;
        match fetched {
            Ok(keys) => {
                tracing::info!(jwks = %self.jwks_uri, kids = ?keys.keys().collect::<Vec<_>>(), "loaded signing keys");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                self.generation.fetch_add(1, Ordering::Release);
            }
            Err(reason) => {
                tracing::warn!(jwks = %self.jwks_uri, %reason, "JWKS fetch failed; keeping the keys already loaded");
            }
        }
    }
}
