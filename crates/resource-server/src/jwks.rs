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

use playbook_https::{describe, send_recorded};
use playbook_keycloak::RealmUrl;
use playbook_trace::{Exchange, Party, Trace};
use serde::Deserialize;
use url::Url;

use crate::Algorithm;
use crate::jwk::{VerifyingKey, parse_jwks};

/// Default minimum time between two JWKS fetches.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

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
        self.snapshot().values().any(|k| k.is_usable())
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
