//! Step 3: client credentials over mutual TLS (or, for comparison, another way of authenticating
//! the client), with the token cached for its lifetime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use playbook_certs::Leaf;
use playbook_keycloak::Secret;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use playbook_dpop::ProofKey;
use playbook_https::{Answer, send_recorded};
use playbook_keycloak::{AuthMethod, CLIENT_ID, RealmUrl, TokenBinding, USERS_READ};
use playbook_trace::{CertView, Exchange, Party, ProofView, SentView, TokenView, Trace};

use crate::{Claims, ClientError, Credential};

/// Renew this long before expiry (or at half-life for very short tokens).
const RENEW_MARGIN: Duration = Duration::from_secs(30);

/// Where and as whom to ask for tokens.
#[derive(Debug, Clone)]
pub struct TokenClientConfig {
    pub token_endpoint: Url,
    pub client_id: String,
    pub scope: String,
    pub ca_pem: String,
    /// The TLS client certificate: how [`Credential::Certificate`] authenticates, and what binds
    /// the token to it.
    pub identity: Leaf,
    /// How the client authenticates at the token endpoint.
    pub credential: Credential,
    /// How the tokens are bound: to the certificate (the token requests present it), to the
    /// DPoP key (every request carries a proof), or not at all. It must match the client's
    /// setting in Keycloak, which refuses a request without what it binds to.
    pub binding: TokenBinding,
    /// The key DPoP proofs are signed with, for [`TokenBinding::Dpop`].
    pub dpop: Option<ProofKey>,
    /// The audience of client assertions: the issuer identifier (unused by the other methods).
    pub audience: String,
    /// Where each token request is recorded.
    pub trace: Trace,
    /// The lifeline this client is drawn as: the tutorial's client, or the lab's intruder.
    pub party: Party,
    /// The lifeline of the token endpoint: Keycloak, or the federated client's platform.
    pub authority: Party,
}

impl TokenClientConfig {
    /// An HTTPS client trusting only the CA, presenting the client certificate when that is how
    /// the client authenticates or what binds its tokens (otherwise none, and a token is a
    /// bearer token).
    pub fn https_client(&self) -> Result<reqwest::Client, ClientError> {
        if !self.presents_certificate() {
            return Ok(playbook_https::https_client(&self.ca_pem)?);
        }
        Ok(playbook_https::https_client_with_identity(
            &self.ca_pem,
            &self.identity.identity_pem(),
        )?)
    }

    /// The realm's client of `credential`'s method, authenticating with it, its tokens bound
    /// as the realm sets that client up: call [`Self::with_binding`] after it for another
    /// binding.
    pub fn with_credential(mut self, credential: Credential, realm: &RealmUrl) -> Self {
        self.client_id = credential.client_id().into();
        self.audience = realm.issuer().as_str().into();
        self.binding = TokenBinding::default_for(credential.method());
        self.credential = credential;
        self
    }

    /// Tokens bound as `binding` says, as the client in Keycloak was set up by
    /// [`crate::provision`]; DPoP needs [`Self::with_dpop_key`] too.
    pub fn with_binding(mut self, binding: TokenBinding) -> Self {
        self.binding = binding;
        self
    }

    /// DPoP-bound tokens (RFC 9449), proofs signed with `key`.
    pub fn with_dpop_key(mut self, key: ProofKey) -> Self {
        self.binding = TokenBinding::Dpop;
        self.dpop = Some(key);
        self
    }

    /// The DPoP key, when the tokens are DPoP-bound.
    pub fn dpop_key(&self) -> Result<Option<&ProofKey>, ClientError> {
        match (self.binding, &self.dpop) {
            (TokenBinding::Dpop, None) => Err(ClientError::BadCredential(
                "DPoP-bound tokens need a DPoP key (TokenClientConfig::with_dpop_key)".into(),
            )),
            (TokenBinding::Dpop, Some(key)) => Ok(Some(key)),
            _ => Ok(None),
        }
    }

    /// Whether this client's connections present the certificate: to authenticate, or to
    /// bind its tokens.
    pub fn presents_certificate(&self) -> bool {
        self.credential.presents_certificate() || self.binding == TokenBinding::Certificate
    }

    /// Why a request with this configuration's TLS identity failed to get an answer.
    pub(crate) async fn transport_error(&self, url: &Url, error: &reqwest::Error) -> ClientError {
        ClientError::from_transport(url, error, &self.ca_pem, &self.identity).await
    }

    /// The tutorial's client: [`CLIENT_ID`] asking for [`USERS_READ`].
    pub fn playbook(token_endpoint: Url, ca_pem: &str, identity: &Leaf) -> Self {
        Self {
            token_endpoint,
            client_id: CLIENT_ID.into(),
            scope: USERS_READ.into(),
            ca_pem: ca_pem.into(),
            identity: identity.clone(),
            credential: Credential::Certificate,
            binding: TokenBinding::Certificate,
            dpop: None,
            audience: String::new(),
            trace: Trace::off(),
            party: Party::Client,
            authority: Party::Keycloak,
        }
    }

    /// The workload's client at its platform (`token_endpoint`, asked as `workload` with the
    /// TLS client certificate), whose tokens are the federated client's assertions; recorded in
    /// the same trace, drawn from the same lifeline.
    pub fn platform(&self, token_endpoint: Url, workload: &str) -> Self {
        Self {
            token_endpoint,
            client_id: workload.into(),
            scope: String::new(),
            credential: Credential::Certificate,
            binding: TokenBinding::None,
            dpop: None,
            audience: String::new(),
            authority: Party::Platform,
            ..self.clone()
        }
    }

    /// The certificate this client presents, as the diagram shows it; none when it presents
    /// none.
    pub(crate) fn certificate_view(&self) -> Option<CertView> {
        self.presents_certificate().then(|| CertView {
            subject: self.identity.subject(),
            thumbprint: self.identity.thumbprint_s256(),
        })
    }
}

/// An access token with when to stop using it. `Debug` never prints the token.
#[derive(Clone)]
pub struct AccessToken {
    secret: Secret,
    renew_at: Instant,
    pub claims: Claims,
    pub expires_in: Duration,
}

impl AccessToken {
    /// The compact JWT, for an `Authorization` header.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }

    /// A log-safe excerpt: enough to tell tokens apart, useless to an attacker.
    pub fn fingerprint(&self) -> String {
        let jwt = self.expose();
        format!(
            "{}…{}",
            &jwt[..jwt.len().min(10)],
            &jwt[jwt.len().saturating_sub(6)..]
        )
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("fingerprint", &self.fingerprint())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Gets tokens with `grant_type=client_credentials`, authenticating by TLS client certificate.
///
/// One token serves every caller until shortly before it expires; callers arriving while a
/// request is in flight wait for that request instead of starting their own.
pub struct TokenClient {
    http: reqwest::Client,
    config: TokenClientConfig,
    /// The federated client's platform, asked for a fresh assertion before each request.
    platform: Option<Box<TokenClient>>,
    cached: Mutex<Option<AccessToken>>,
    requests: AtomicU64,
    /// The token endpoint's last DPoP nonce, once it asked for one (RFC 9449 section 8).
    nonce: std::sync::Mutex<Option<String>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    token_type: String,
}

#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenClient {
    pub fn new(config: TokenClientConfig) -> Result<Self, ClientError> {
        let http = config.https_client()?;
        let platform = match &config.credential {
            Credential::Federated { platform, workload } => Some(Box::new(TokenClient::new(
                config.platform(platform.clone(), workload),
            )?)),
            _ => None,
        };
        Ok(Self {
            http,
            platform,
            config,
            cached: Mutex::new(None),
            requests: AtomicU64::new(0),
            nonce: Default::default(),
        })
    }

    /// A token valid for a while yet: the cached one, or a new one.
    pub async fn token(&self) -> Result<AccessToken, ClientError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.clone());
        }
        let token = self.request().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Forgets `rejected` (e.g. after the API answered 401), unless a newer token replaced it.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.expose() == rejected.expose())
        {
            *cached = None;
        }
    }

    /// Drops the cached token, e.g. after the client's roles changed and its scopes with them.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// How many token requests reached the token endpoint: proof that caching works.
    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The mutual-TLS HTTPS client the tokens are requested with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn config(&self) -> &TokenClientConfig {
        &self.config
    }

    /// The token request's parameters; `scope` is optional (RFC 6749 §4.4.2), and an empty one
    /// is left out rather than sent empty, which Keycloak refuses. Then whatever the credential
    /// sends in the form (a client id, a secret, an assertion).
    async fn form(&self) -> Result<Vec<(&'static str, String)>, ClientError> {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if !self.config.scope.is_empty() {
            form.push(("scope", self.config.scope.clone()));
        }
        match (&self.platform, &self.config.credential) {
            // A platform token is single-use at Keycloak (its `jti`), so a new one every time.
            // Boxed: a platform's request is the same function, one level down.
            (Some(platform), _) => form.extend(crate::credential::assertion_fields(
                Box::pin(platform.request()).await?.expose().to_owned(),
            )),
            (None, Credential::Spiffe(source)) => {
                let svid = (source)
                    .jwt_svid(&self.config.audience, &self.config.trace, self.config.party)
                    .await?;
                form.extend(crate::credential::typed_assertion_fields(
                    playbook_keycloak::spiffe::ASSERTION_TYPE,
                    svid.expose().to_owned(),
                ));
            }
            (None, _) => form.extend(
                self.config
                    .credential
                    .form_fields(&self.config.client_id, &self.config.audience)?,
            ),
        }
        Ok(form)
    }

    /// Revokes `token` at the realm's revocation `endpoint` (RFC 7009), authenticated by the
    /// client certificate like the token request; the token is dropped from the cache too.
    pub async fn revoke(&self, endpoint: &Url, token: &AccessToken) -> Result<(), ClientError> {
        self.invalidate(token).await;
        let mut exchange = Exchange::new(
            self.config.party,
            Party::Keycloak,
            "POST",
            endpoint.as_str(),
        );
        exchange.purpose = "token revocation (RFC 7009), TLS client certificate".into();
        exchange.client_certificate = self.config.certificate_view();
        exchange.token = TokenView::decode(token.expose());
        let form = [
            ("token", token.expose()),
            ("token_type_hint", "access_token"),
            ("client_id", self.config.client_id.as_str()),
        ];
        exchange.sent = Some(SentView::form(&form));
        let request = self.http.post(endpoint.clone()).form(&form);
        let answer = send_recorded(&self.config.trace, exchange, request, |answer, exchange| {
            exchange.answer = if answer.is_success() {
                "revoked".into()
            } else {
                refusal(answer).error
            };
        })
        .await;
        match answer {
            Ok(answer) if answer.is_success() => Ok(()),
            Ok(answer) => Err(token_refused(&answer, &self.config)),
            Err(error) => Err(self.config.transport_error(endpoint, &error).await),
        }
    }

    /// One token request, no cache; recorded in the configuration's trace once answered. A
    /// token endpoint that asks for a DPoP nonce (`use_dpop_nonce`) is asked once more with it.
    pub async fn request(&self) -> Result<AccessToken, ClientError> {
        let url = &self.config.token_endpoint;
        let mut attempt = self.attempt().await?;
        if let Some(nonce) = asked_nonce(&attempt.0, false) {
            tracing::info!("the token endpoint asked for a DPoP nonce; asking again with it");
            *self.nonce.lock().unwrap_or_else(|e| e.into_inner()) = Some(nonce);
            attempt = self.attempt().await?;
        }
        let (answer, issued) = attempt;
        if !answer.is_success() {
            return Err(token_refused(&answer, &self.config));
        }
        let bad = |reason: &str| ClientError::BadResponse {
            url: url.to_string(),
            reason: reason.into(),
        };
        let body = issued.ok_or_else(|| bad("the answer is not a token response"))?;
        let claims =
            Claims::peek(&body.access_token).ok_or_else(|| bad("the access token is not a JWT"))?;
        if let Some(key) = self.config.dpop_key()? {
            // RFC 9449 section 5: a DPoP-bound token says so, and names the proof's key.
            let bound = body
                .token_type
                .eq_ignore_ascii_case(playbook_dpop::TOKEN_TYPE)
                && claims.jkt().as_deref() == Some(key.thumbprint());
            if !bound {
                return Err(bad(&format!(
                    "asked for a DPoP-bound token, got token_type {:?} and cnf.jkt {:?} (the proof's key is {}): is {} set to require DPoP in Keycloak? `cargo playbook client --auth {} --bind dpop` sets it",
                    body.token_type,
                    claims.jkt(),
                    key.thumbprint(),
                    self.config.client_id,
                    self.config.credential.method().name()
                )));
            }
        }
        let expires_in = Duration::from_secs(body.expires_in);
        let margin = RENEW_MARGIN.min(expires_in / 2);
        tracing::debug!(client_id = %self.config.client_id, expires_in = body.expires_in, "got an access token");
        Ok(AccessToken {
            secret: Secret::new(body.access_token),
            renew_at: Instant::now() + expires_in - margin,
            claims,
            expires_in,
        })
    }

    /// One token request as it goes on the wire, recorded; the answer, and the token response
    /// when it is one.
    async fn attempt(&self) -> Result<(Answer, Option<TokenResponse>), ClientError> {
        let url = &self.config.token_endpoint;
        // The assertion first: its own exchange comes before this one's.
        let form = self.form().await?;
        let mut exchange = Exchange::new(
            self.config.party,
            self.config.authority,
            "POST",
            url.as_str(),
        );
        let method = self.config.credential.method();
        exchange.purpose = match method {
            _ if self.config.authority == Party::Platform => format!(
                "the workload's identity token, as {} with the TLS client certificate",
                self.config.client_id
            ),
            AuthMethod::Mtls => format!(
                "client_credentials, scope {}, TLS client certificate",
                self.config.scope
            ),
            _ => format!(
                "client_credentials, scope {}, {} as {}{}",
                self.config.scope,
                method.oauth_name(),
                self.config.client_id,
                match self.config.binding {
                    TokenBinding::Certificate => ", certificate presented to bind the token",
                    TokenBinding::Dpop => ", a DPoP proof to bind the token to its key",
                    TokenBinding::None => "",
                }
            ),
        };
        exchange.client_certificate = self.config.certificate_view();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut sent = SentView::form(&form);
        let mut request = self.http.post(url.clone()).form(&form);
        if let Some((id, secret)) = self.config.credential.basic_auth(&self.config.client_id) {
            request = request.basic_auth(id, Some(secret));
            sent = sent.with_basic_auth();
        }
        if let Some(key) = self.config.dpop_key()? {
            let nonce = self.nonce.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let proof = key.proof("POST", url, None, nonce.as_deref())?;
            exchange.proof = ProofView::new(&proof, key.thumbprint());
            request = request.header(playbook_dpop::HEADER, proof);
        }
        exchange.sent = Some(sent);
        let mut issued: Option<TokenResponse> = None;
        let answer = send_recorded(&self.config.trace, exchange, request, |answer, exchange| {
            if !answer.is_success() {
                exchange.answer = refusal(answer).error;
            } else if let Ok(body) = answer.json::<TokenResponse>() {
                exchange.answer = match body
                    .token_type
                    .eq_ignore_ascii_case(playbook_dpop::TOKEN_TYPE)
                {
                    true => format!("DPoP-bound access token, {} s", body.expires_in),
                    false => format!("access token, {} s", body.expires_in),
                };
                exchange.token = TokenView::decode(&body.access_token);
                issued = Some(body);
            } else {
                exchange.answer = "not a token response".into();
            }
        })
        .await;
        match answer {
            Ok(answer) => Ok((answer, issued)),
            Err(error) => Err(self.config.transport_error(url, &error).await),
        }
    }
}

/// The nonce a server asked for with `use_dpop_nonce` (RFC 9449 section 8 and 9): a token
/// endpoint says so in its error body, a resource server in its challenge; either sends the
/// nonce in `DPoP-Nonce`.
pub(crate) fn asked_nonce(answer: &Answer, resource_server: bool) -> Option<String> {
    let asked = match resource_server {
        true => (answer.www_authenticate.as_deref())
            .is_some_and(|c| c.contains(playbook_dpop::USE_DPOP_NONCE)),
        false => refusal(answer).error == playbook_dpop::USE_DPOP_NONCE,
    };
    asked
        .then(|| {
            answer
                .header(playbook_dpop::NONCE_HEADER)
                .map(str::to_owned)
        })
        .flatten()
}

/// Keycloak's OAuth error answer (RFC 6749 §5.2); empty fields when the body is not one.
fn refusal(answer: &Answer) -> ErrorResponse {
    answer.json().unwrap_or_default()
}

fn token_refused(answer: &Answer, config: &TokenClientConfig) -> ClientError {
    let body = refusal(answer);
    let hint = match config.authority {
        Party::Platform => format!(
            "the workload's platform refused {}'s request for its identity token; `cargo playbook client --auth {}` sets the platform up again",
            config.client_id,
            AuthMethod::Federated.name()
        ),
        _ => crate::credential::refusal_hint(
            config.credential.method(),
            &config.client_id,
            &body.error_description,
        ),
    };
    ClientError::TokenRefused {
        status: answer.status.as_u16(),
        error: body.error,
        description: body.error_description,
        hint,
    }
}
