//! Step 4: calling the resource server with the token, over the same mutual-TLS identity.

use std::sync::Arc;

use playbook_https::{Answer, send_recorded};
use playbook_keycloak::{READONLY_ROLE, USERS_READ};
use playbook_trace::{Exchange, Party, TokenView};
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
            tokens,
            server: Party::ResourceServer,
            headers: Vec::new(),
        }
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
            tokens,
            with_certificate: false,
            server: Party::ResourceServer,
            headers: Vec::new(),
        })
    }

    /// `GET path` with a bearer token; on 401 it renews the token once and retries once.
    pub async fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        let token = self.tokens.token().await?;
        let first = self.send(path, token.expose()).await?;
        if first.status != 401 {
            return Ok(first);
        }
        tracing::info!("the API answered 401; renewing the token once");
        self.tokens.invalidate(&token).await;
        let renewed = self.tokens.token().await?;
        self.send(path, renewed.expose()).await
    }

    /// `GET path` with exactly this token (no cache, no retry): for demos and tests.
    pub async fn get_with(&self, path: &str, token: &str) -> Result<ApiResponse, ClientError> {
        self.send(path, token).await
    }

    async fn send(&self, path: &str, token: &str) -> Result<ApiResponse, ClientError> {
        let url = self
            .base_url
            .join(path)
            .map_err(|e| ClientError::BadResponse {
                url: self.base_url.to_string(),
                reason: format!("bad path {path}: {e}"),
            })?;
        let config = self.tokens.config();
        let mut exchange = Exchange::new(config.party, self.server, "GET", url.as_str());
        exchange.token = TokenView::decode(token);
        exchange.client_certificate = config.certificate_view().filter(|_| self.with_certificate);
        exchange.purpose = if self.with_certificate {
            "Bearer token, same client certificate".into()
        } else {
            "Bearer token, no client certificate".into()
        };
        let mut request = self.http.get(url.clone()).bearer_auth(token);
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
            Ok(answer) => Ok(ApiResponse::from(&answer)),
            Err(error) => Err(config.transport_error(&url, &error).await),
        }
    }
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
