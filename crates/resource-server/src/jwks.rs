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

use jsonwebtoken::AlgorithmFamily;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use playbook_https::{describe, send_recorded};
use playbook_keycloak::RealmUrl;
use playbook_trace::{Exchange, Party, Trace};
use serde::Deserialize;
use url::Url;

use crate::Algorithm;

/// Default minimum time between two JWKS fetches.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// A key from the JWKS, with what it may verify.
///
/// jsonwebtoken parses the JWK into a [`DecodingKey`]; it is silent on two things a resource
/// server must respect, so they are checked here: the JWK's `use` (an encryption key must never
/// verify a signature) and, for EC keys, that the curve is the one the algorithm names.
pub struct VerifyingKey {
    pub kid: String,
    /// Why this key can never verify a token signature, if it cannot (e.g. `use: enc`).
    unusable: Option<String>,
    /// The JWK's own `alg`, which then is the only algorithm it verifies.
    alg: Option<Algorithm>,
    /// The algorithms of our allow-list this key's type and curve fit.
    fits: Vec<Algorithm>,
    key: Option<DecodingKey>,
}

impl VerifyingKey {
    /// The decoding key for `alg`, or why this key does not verify `alg`.
    pub fn for_alg(&self, alg: Algorithm) -> Result<&DecodingKey, String> {
        if let Some(reason) = &self.unusable {
            return Err(reason.clone());
        }
        if let Some(own) = self.alg
            && own != alg
        {
            return Err(format!("key is for {} only", own.name()));
        }
        match &self.key {
            Some(key) if self.fits.contains(&alg) => Ok(key),
            _ => Err(format!("key type does not match {}", alg.name())),
        }
    }
}

/// Parses a JWKS document into keys usable for the `allowed` algorithms. Malformed entries are
/// skipped (logged), never fatal: one odd key must not take the others down.
pub fn parse_jwks(
    document: &[u8],
    allowed: &[Algorithm],
) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct Entries {
        keys: Vec<serde_json::Value>,
    }
    let set: Entries = serde_json::from_slice(document).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for value in set.keys {
        let jwk = match serde_json::from_value::<Jwk>(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::warn!(%error, "skipping a JWKS entry jsonwebtoken cannot read");
                continue;
            }
        };
        let Some(kid) = jwk.common.key_id.clone() else {
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
        fits: Vec::new(),
        key: None,
    };
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(other) => {
            let named = match other {
                PublicKeyUse::Encryption => "enc",
                PublicKeyUse::Other(name) => name,
                PublicKeyUse::Signature => unreachable!("matched above"),
            };
            key.unusable = Some(format!("key use is `{named}`, not `sig`"));
            return key;
        }
    }
    if let Some(alg) = jwk.common.key_algorithm {
        match Algorithm::from_name(&alg.to_string()) {
            Some(alg) => key.alg = Some(alg),
            None => {
                key.unusable = Some(format!("key algorithm `{alg}` is not accepted here"));
                return key;
            }
        }
    }
    // Only public-key families: an `oct` JWK would be an HMAC secret, which no allow-list here
    // names, and which a resource server must never hold.
    key.fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => allowed
            .iter()
            .copied()
            .filter(|a| a.jwt().family() == AlgorithmFamily::Rsa)
            .collect(),
        AlgorithmParameters::EllipticCurve(ec) => allowed
            .iter()
            .copied()
            .filter(|a| match a {
                Algorithm::ES256 => ec.curve == EllipticCurve::P256,
                Algorithm::ES384 => ec.curve == EllipticCurve::P384,
                _ => false,
            })
            .collect(),
        _ => Vec::new(),
    };
    key.fits.retain(|a| key.alg.is_none_or(|own| own == *a));
    if key.fits.is_empty() {
        key.unusable = Some("no accepted algorithm fits this key".into());
        return key;
    }
    match DecodingKey::from_jwk(jwk) {
        Ok(decoding) => key.key = Some(decoding),
        Err(error) => key.unusable = Some(format!("key material is invalid: {error}")),
    }
    key
}

/// The issuer's keys, shared by all requests.
pub struct JwksCache {
    http: reqwest::Client,
    /// Where the keys are: known from the start, or found by discovery of the issuer (again at
    /// every refresh until it succeeds, when Keycloak was down at start).
    jwks_uri: RwLock<Option<Url>>,
    issuer: Option<RealmUrl>,
    allowed: Vec<Algorithm>,
    min_refresh_interval: Duration,
    keys: RwLock<Arc<HashMap<String, Arc<VerifyingKey>>>>,
    /// Held by the one request that fetches; holds the time of the last fetch an unknown kid
    /// caused (the one the interval limits).
    refresh: tokio::sync::Mutex<Option<Instant>>,
    generation: AtomicU64,
    /// Where discovery and JWKS fetches are recorded (for the instructor's stage), and the
    /// lifeline of the server that makes them.
    trace: Trace,
    party: Party,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: Url,
}

/// Why discovery did not give a JWKS URL: worth retrying, or not.
enum Discovery {
    Unreachable(String),
    Refused(String),
}

impl JwksCache {
    /// Finds the JWKS URL by OIDC discovery of `issuer` and loads the keys.
    ///
    /// An issuer that answers discovery for another issuer is a configuration error and fails
    /// at once. One that cannot be reached (Keycloak not started yet, or down) is not: the cache
    /// starts empty, every refresh tries discovery again, and the server reports not-ready until
    /// keys arrive.
    pub async fn discover(
        http: reqwest::Client,
        issuer: &RealmUrl,
        allowed: Vec<Algorithm>,
        min_refresh_interval: Duration,
        trace: Trace,
        party: Party,
    ) -> Result<Self, String> {
        let cache = Self {
            issuer: Some(issuer.clone()),
            trace,
            party,
            ..Self::new(http, None, allowed, min_refresh_interval)
        };
        match cache.discover_jwks_uri("at start").await {
            Ok(()) => cache.refresh_now("at start").await,
            Err(Discovery::Unreachable(reason)) => {
                tracing::warn!(%reason, "cannot reach the issuer yet");
            }
            Err(Discovery::Refused(reason)) => return Err(reason),
        }
        Ok(cache)
    }

    /// OIDC discovery of the issuer; on success the JWKS URL is known from then on.
    async fn discover_jwks_uri(&self, why: &str) -> Result<(), Discovery> {
        let Some(issuer) = &self.issuer else {
            return Ok(());
        };
        let url = issuer.discovery();
        let document: DiscoveryDocument = self
            .get_recorded(&url, "OIDC discovery", why, |_| "discovery document".into())
            .await
            .and_then(|body| serde_json::from_slice(&body).map_err(|e| e.to_string()))
            .map_err(|e| Discovery::Unreachable(format!("OIDC discovery at {url} failed: {e}")))?;
        // Mix-up defence: the document must describe the issuer we were told to trust.
        if document.issuer.trim_end_matches('/') != issuer.issuer().as_str() {
            return Err(Discovery::Refused(format!(
                "discovery at {url} names issuer {}, not {}",
                document.issuer,
                issuer.issuer()
            )));
        }
        *self.jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = Some(document.jwks_uri);
        Ok(())
    }

    /// A cache for a known JWKS URL, empty until the first refresh.
    pub fn new(
        http: reqwest::Client,
        jwks_uri: impl Into<Option<Url>>,
        allowed: Vec<Algorithm>,
        min_refresh_interval: Duration,
    ) -> Self {
        Self {
            http,
            jwks_uri: RwLock::new(jwks_uri.into()),
            issuer: None,
            allowed,
            min_refresh_interval,
            keys: RwLock::new(Arc::new(HashMap::new())),
            refresh: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            trace: Trace::off(),
            party: Party::ResourceServer,
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

    fn snapshot(&self) -> Arc<HashMap<String, Arc<VerifyingKey>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key for `kid`, refreshing the set once (rate-limited, single flight) if it is unknown.
    pub async fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        if let Some(key) = self.snapshot().get(kid) {
            return Some(key.clone());
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut last_fetch = self.refresh.lock().await;
        // Someone refreshed while we waited: use their result instead of fetching again.
        if self.generation.load(Ordering::Acquire) == seen
            && last_fetch.is_none_or(|at| at.elapsed() >= self.min_refresh_interval)
        {
            *last_fetch = Some(Instant::now());
            self.fetch(&format!(
                "again: a token names the unknown kid {}",
                shorten(kid)
            ))
            .await;
        }
        drop(last_fetch);
        self.snapshot().get(kid).cloned()
    }

    /// Fetches now, ignoring the interval (start-up, readiness retries, the periodic refresh).
    /// It does not count against the interval: a kid that appears just after a scheduled fetch
    /// must still be fetchable at once.
    /// `why` says on the trace's arrow why the keys are fetched (at start, a periodic refresh).
    pub async fn refresh_now(&self, why: &str) {
        let _single_flight = self.refresh.lock().await;
        self.fetch(why).await;
    }

    async fn fetch(&self, why: &str) {
        let known = self
            .jwks_uri
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let jwks_uri = match known {
            Some(uri) => uri,
            None => match self.discover_jwks_uri(why).await {
                Ok(()) => match self
                    .jwks_uri
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                {
                    Some(uri) => uri,
                    None => return,
                },
                Err(Discovery::Unreachable(reason) | Discovery::Refused(reason)) => {
                    tracing::warn!(%reason, "still no signing keys");
                    return;
                }
            },
        };
        let fetched =
            self.get_recorded(&jwks_uri, "the realm's signing keys (JWKS)", why, |body| {
                match parse_jwks(body, &self.allowed) {
                    Ok(keys) => format!("{} key(s)", keys.len()),
                    Err(_) => "not a JWKS".into(),
                }
            })
            .await
            .and_then(|body| parse_jwks(&body, &self.allowed));
        match fetched {
            Ok(keys) => {
                tracing::info!(jwks = %jwks_uri, kids = ?keys.keys().collect::<Vec<_>>(), "loaded signing keys");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                self.generation.fetch_add(1, Ordering::Release);
            }
            Err(reason) => {
                tracing::warn!(jwks = %jwks_uri, %reason, "JWKS fetch failed; keeping the keys already loaded");
            }
        }
    }

    /// `GET url` expecting 200, recorded in the trace with `answer` describing the body and
    /// `why` saying why it is fetched now.
    async fn get_recorded(
        &self,
        url: &Url,
        purpose: &str,
        why: &str,
        answer: impl Fn(&[u8]) -> String,
    ) -> Result<Vec<u8>, String> {
        let mut exchange = Exchange::new(self.party, Party::Keycloak, "GET", url.as_str());
        exchange.purpose = purpose.into();
        exchange.reason = why.into();
        let request = self.http.get(url.clone());
        let got = send_recorded(&self.trace, exchange, request, |got, exchange| {
            exchange.answer = answer(&got.body);
        })
        .await
        .map_err(|e| describe(&e))?;
        if !got.is_success() {
            return Err(format!("{url} answered {}", got.status));
        }
        Ok(got.body)
    }
}

/// A kid as an arrow shows it: an attacker's kid can be long.
fn shorten(kid: &str) -> String {
    match kid.char_indices().nth(12) {
        Some((cut, _)) => format!("{}…", &kid[..cut]),
        None => kid.to_owned(),
    }
}
