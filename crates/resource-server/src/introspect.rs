//! Introspection mode (RFC 7662): a token that validates locally is also asked about at
//! Keycloak, so a revoked token (RFC 7009) stops working at once instead of at its expiry.
//!
//! The resource server authenticates as its own confidential client, with its own TLS
//! certificate (RFC 8705 `tls_client_auth`): no secret to leak. Answers are cached by the
//! token's SHA-256 for no longer than the token lives and no longer than a short TTL, which is
//! then the longest a revocation can go unnoticed. Errors are never cached, and when Keycloak
//! cannot be asked the request fails with 503: the token may well be good (401 would send the
//! client for a new token it does not need), but it cannot be called good either.

use std::time::{Duration, Instant};

use playbook_https::send_recorded;
use playbook_keycloak::RESOURCE_SERVER_CLIENT_ID;
use playbook_trace::{Exchange, Party, Trace};
use serde::Deserialize;
use url::Url;

/// How long an answer may be reused by default: the longest a revocation goes unnoticed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// Answers remembered at most; a full cache makes room one entry at a time, as the
/// verified-token cache does, so no request pays for emptying it.
pub const INTROSPECTION_CACHE_CAPACITY: usize = 10_000;

/// Whom to ask and as whom.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The realm's introspection endpoint; `None`: the issuer's.
    pub endpoint: Option<Url>,
    pub client_id: String,
    pub ttl: Duration,
}

impl Default for IntrospectionConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            client_id: RESOURCE_SERVER_CLIENT_ID.into(),
            ttl: DEFAULT_TTL,
        }
    }
}

/// Why introspection did not say "active".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionError {
    #[error("Keycloak says the token is not active (revoked, or its session ended)")]
    Inactive,
    #[error("cannot ask Keycloak whether the token is active: {0}")]
    Unavailable(String),
}

pub struct Introspector {
    http: reqwest::Client,
    endpoint: Url,
    client_id: String,
    ttl: Duration,
    /// By the token's SHA-256: whether Keycloak called it active, and until when that stands.
    answers: quick_cache::sync::Cache<[u8; 32], (bool, Instant)>,
    trace: Trace,
    party: Party,
}

#[derive(Deserialize)]
struct Answer {
    active: bool,
}

impl Introspector {
    /// `http` must present the resource server's client certificate.
    pub fn new(
        http: reqwest::Client,
        endpoint: Url,
        config: &IntrospectionConfig,
        trace: Trace,
        party: Party,
    ) -> Self {
        Self {
            http,
            endpoint,
            client_id: config.client_id.clone(),
            ttl: config.ttl,
            answers: quick_cache::sync::Cache::new(INTROSPECTION_CACHE_CAPACITY),
            trace,
            party,
        }
    }

    /// The answers cache's hits and misses.
    pub fn cache_stats(&self) -> crate::token::CacheStats {
        crate::token::CacheStats::of(&self.answers)
    }

    /// Whether Keycloak still calls `token` active; `expires_at` (its `exp`) bounds the caching.
    pub async fn check(&self, token: &str, expires_at: i64) -> Result<(), IntrospectionError> {
        let key: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let cached = (self.answers.get(&key))
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(active, _)| active);
        let active = match cached {
            Some(active) => active,
            None => {
                let active = self.ask(token).await?;
                let lives = u64::try_from(expires_at - playbook_keycloak::unix_now()).unwrap_or(0);
                let until = Instant::now() + self.ttl.min(Duration::from_secs(lives));
                self.answers.insert(key, (active, until));
                active
            }
        };
        if active {
            Ok(())
        } else {
            Err(IntrospectionError::Inactive)
        }
    }

    async fn ask(&self, token: &str) -> Result<bool, IntrospectionError> {
        let mut exchange =
            Exchange::new(self.party, Party::Keycloak, "POST", self.endpoint.as_str());
        exchange.purpose = format!(
            "token introspection (RFC 7662) as {}, TLS client certificate",
            self.client_id
        );
        exchange.token = playbook_trace::TokenView::decode(token);
        let request = self
            .http
            .post(self.endpoint.clone())
            .form(&[("token", token), ("client_id", self.client_id.as_str())]);
        let answered = send_recorded(&self.trace, exchange, request, |answer, exchange| {
            exchange.answer = match answer.json::<Answer>() {
                Ok(said) if answer.is_success() => format!("active: {}", said.active),
                _ => answer.reason().into(),
            };
        })
        .await;
        let answer = match answered {
            Err(error) => Err(playbook_https::describe(&error)),
            Ok(answer) if !answer.is_success() => {
                Err(format!("{} answered {}", self.endpoint, answer.status))
            }
            Ok(answer) => answer
                .json::<Answer>()
                .map(|said| said.active)
                .map_err(|e| format!("{} answered unreadable JSON: {e}", self.endpoint)),
        };
        answer.map_err(|e| {
            tracing::warn!(error = %e, "introspection failed; answering 503");
            IntrospectionError::Unavailable(e)
        })
    }
}
