//! Step 4: calling the resource server with the token, over the same mutual-TLS identity.

use std::sync::Arc;

use playbook_dpop::ProofKey;
use playbook_https::{Answer, send_recorded};
use playbook_keycloak::{READONLY_ROLE, USERS_READ};
use playbook_trace::{Exchange, Party, ProofView, TokenView};
use url::Url;

use crate::{ClientError, TokenClient};

/// What the resource server answered.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    /// The RFC 6750 challenge on 401/403, which says why.
    pub www_authenticate: Option<String>,
    pub body: serde_json::Value,
}

impl ApiResponse {
    /// The answer in a few words: how many users, or the challenge's error code.
    pub fn summary(&self) -> String {
        match (self.status, &self.www_authenticate) {
            (200, _) => format!("OK, {} user(s)", self.body.as_array().map_or(0, Vec::len)),
            (_, Some(challenge)) => challenge
                .split("error=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or(challenge)
                .to_owned(),
            _ => String::new(),
        }
    }

    /// Turns 401 and 403 into [`ClientError::ApiRefused`] with the likely cause.
    pub fn error_for_status(self) -> Result<Self, ClientError> {
        let hint = match self.status {
            401 => {
                "the token was rejected: is the resource server trusting this realm, and was the token sent with the client certificate it is bound to?".to_owned()
            }
            403 => format!(
                "the token lacks the realm role or scope: assign {READONLY_ROLE} (step 2) and request a new token with scope {USERS_READ}"
            ),
            _ => return Ok(self),
        };
        Err(ClientError::ApiRefused {
            status: self.status,
            challenge: self.www_authenticate,
            hint,
        })
    }
}

/// The resource server's API, called with tokens from a shared [`TokenClient`].
pub struct ResourceApi {
    http: reqwest::Client,
    base_url: Url,
    tokens: Arc<TokenClient>,
    /// Whether the connection presents the token client's certificate.
    with_certificate: bool,
    /// The lifeline the server is drawn as (the lab runs several side by side).
    server: Party,
    /// Headers sent on every call beside the token: the attack lab's forged ones.
    headers: Vec<(String, String)>,
    /// The key of the DPoP proofs sent with each call (`Authorization: DPoP`); `None` sends the
    /// token as a bearer token.
    dpop: Option<ProofKey>,
    /// The server's last DPoP nonce, once it asked for one.
    nonce: std::sync::Mutex<Option<String>>,
}

/// How one call presents its token, for [`ResourceApi::get_presenting`].
#[derive(Debug, Clone)]
pub enum Presenting {
    /// `Authorization: Bearer`, no proof.
    Bearer,
    /// `Authorization: DPoP` with exactly these proofs (none, one, or a replayed one twice).
    Dpop(Vec<String>),
}

impl ResourceApi {
    /// Presents the token client's certificate too: a certificate-bound token is only accepted
    /// over a connection made with the certificate it is bound to.
    pub fn new(base_url: Url, tokens: Arc<TokenClient>) -> Self {
        // One TLS configuration and connection pool for both servers.
        let http = tokens.http().clone();
        Self {
            http,
            base_url,
            with_certificate: tokens.config().presents_certificate(),
            dpop: tokens.config().dpop.clone(),
            tokens,
            server: Party::ResourceServer,
            headers: Vec::new(),
            nonce: Default::default(),
        }
    }

    /// Signs the proofs with `key` instead of the token client's: a thief holding a stolen
    /// DPoP-bound token and a key of its own.
    pub fn with_dpop_key(mut self, key: Option<ProofKey>) -> Self {
        self.dpop = key;
        self
    }

    /// Draws the server called as `server` in the trace: the lab tells its resource servers
    /// apart this way.
    pub fn drawn_as(mut self, server: Party) -> Self {
        self.server = server;
        self
    }

    /// Sends `name: value` on every call too: what an attacker adds to a request (a forged
    /// certificate header); the trace says so.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same API called the way a thief holding only the token would: trusting the CA but
    /// presenting no client certificate.
    pub fn without_certificate(
        base_url: Url,
        tokens: Arc<TokenClient>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            http: playbook_https::https_client(&tokens.config().ca_pem)?,
            base_url,
            dpop: tokens.config().dpop.clone(),
            tokens,
            with_certificate: false,
            server: Party::ResourceServer,
            headers: Vec::new(),
            nonce: Default::default(),
        })
    }

    /// `GET path` with a bearer token; on 401 it renews the token once and retries once.
    pub async fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        let token = self.tokens.token().await?;
        let first = self.send(path, token.expose()).await?;
        // A nonce the server still wants is not the token's fault: renewing would not help.
        let nonce_wanted = (first.www_authenticate.as_deref())
            .is_some_and(|c| c.contains(playbook_dpop::USE_DPOP_NONCE));
        if first.status != 401 || nonce_wanted {
            return Ok(first);
        }
        tracing::info!("the API answered 401; renewing the token once");
        self.tokens.invalidate(&token).await;
        let renewed = self.tokens.token().await?;
        self.send(path, renewed.expose()).await
    }

    /// `GET path` with exactly this token (no cache, no retry): for demos and tests. With a
    /// DPoP key, a fresh proof goes with it.
    pub async fn get_with(&self, path: &str, token: &str) -> Result<ApiResponse, ClientError> {
        self.send(path, token).await
    }

    /// `GET path` with this token, presented exactly as `presenting` says (the attack lab's
    /// replayed, bent and missing proofs, a DPoP token downgraded to Bearer).
    pub async fn get_presenting(
        &self,
        path: &str,
        token: &str,
        presenting: Presenting,
    ) -> Result<ApiResponse, ClientError> {
        let url = self.url(path)?;
        let answer = self.call(&url, token, presenting, None).await?;
        Ok(ApiResponse::from(&answer))
    }

    /// The URL of `path` on this API: what a proof's `htu` names.
    pub fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base_url
            .join(path)
            .map_err(|e| ClientError::BadResponse {
                url: self.base_url.to_string(),
                reason: format!("bad path {path}: {e}"),
            })
    }

    async fn send(&self, path: &str, token: &str) -> Result<ApiResponse, ClientError> {
        let url = self.url(path)?;
        let Some(key) = &self.dpop else {
            let answer = self.call(&url, token, Presenting::Bearer, None).await?;
            return Ok(ApiResponse::from(&answer));
        };
        // A server that hands out nonces answers the first proof without one with
        // `use_dpop_nonce`; the next proof carries it (RFC 9449 section 9).
        let mut answer = None;
        for _ in 0..2 {
            let nonce = self.nonce.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let proof = key.proof("GET", &url, Some(token), nonce.as_deref())?;
            let this = self
                .call(&url, token, Presenting::Dpop(vec![proof]), Some(key))
                .await?;
            // A server may hand out its next nonce on any answer (section 9); keep the latest.
            if let Some(nonce) = this.header(playbook_dpop::NONCE_HEADER) {
                *self.nonce.lock().unwrap_or_else(|e| e.into_inner()) = Some(nonce.to_owned());
            }
            let asked = crate::token::asked_nonce(&this, true).is_some();
            answer = Some(this);
            if !asked {
                break;
            }
        }
        Ok(ApiResponse::from(&answer.expect("one call at least")))
    }

    /// One call, recorded: the token as `presenting` says, the proof's key shown (when known)
    /// next to the token's `cnf.jkt`.
    async fn call(
        &self,
        url: &Url,
        token: &str,
        presenting: Presenting,
        key: Option<&ProofKey>,
    ) -> Result<Answer, ClientError> {
        let config = self.tokens.config();
        let mut exchange = Exchange::new(config.party, self.server, "GET", url.as_str());
        exchange.token = TokenView::decode(token);
        exchange.client_certificate = config.certificate_view().filter(|_| self.with_certificate);
        let connection = match self.with_certificate {
            true => "same client certificate",
            false => "no client certificate",
        };
        let mut request = self.http.get(url.clone());
        exchange.purpose = match &presenting {
            Presenting::Bearer => {
                request = request.bearer_auth(token);
                format!("Bearer token, {connection}")
            }
            Presenting::Dpop(proofs) => {
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("{} {token}", playbook_dpop::SCHEME),
                );
                for proof in proofs {
                    request = request.header(playbook_dpop::HEADER, proof);
                }
                let thumbprint = match key {
                    Some(key) => key.thumbprint().to_owned(),
                    None => proof_thumbprint(proofs.first()),
                };
                exchange.proof = proofs.first().and_then(|p| ProofView::new(p, &thumbprint));
                match proofs.len() {
                    1 => format!("DPoP token and proof, {connection}"),
                    n => format!("DPoP token with {n} proofs, {connection}"),
                }
            }
        };
        for (name, value) in &self.headers {
            exchange
                .purpose
                .push_str(&format!(", and a {name} header of its own"));
            request = request.header(name, value);
        }
        let answer = send_recorded(&config.trace, exchange, request, |answer, exchange| {
            exchange.answer = ApiResponse::from(answer).summary();
        })
        .await;
        match answer {
            Ok(answer) => Ok(answer),
            Err(error) => Err(config.transport_error(url, &error).await),
        }
    }
}

/// The thumbprint of the key a proof carries, for showing a proof made elsewhere (the lab's
/// bent ones): read from its header's `jwk`, unchecked.
fn proof_thumbprint(proof: Option<&String>) -> String {
    let header = proof.and_then(|p| TokenView::decode(p)).map(|v| v.header);
    header
        .and_then(|h| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(h["jwk"].clone()).ok())
        .and_then(|jwk| {
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .ok()
        })
        .unwrap_or_default()
}

impl From<&Answer> for ApiResponse {
    /// The body as JSON, or as a JSON string when it is not JSON.
    fn from(answer: &Answer) -> Self {
        Self {
            status: answer.status.as_u16(),
            www_authenticate: answer.www_authenticate.clone(),
            body: answer
                .json()
                .unwrap_or_else(|_| serde_json::Value::String(answer.text())),
        }
    }
}
