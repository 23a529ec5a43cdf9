//! A local issuer (discovery + JWKS over HTTPS, with a fetch counter), test keys that sign
//! tokens, and a running resource server pointed at that issuer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use playbook_certs::{CertSet, Leaf};
use playbook_forge::{SigningKey as TestKey, b64_json, keycloak_like_claims};
use playbook_resource_server::server::{self, RunningServer, ServerConfig};
use playbook_resource_server::{BindingMode, ClientCertSource, ProxyTrust};
use serde_json::{Value, json};
use url::Url;

pub const KID: &str = "test-key-1";
pub const ENC_KID: &str = "test-enc-key";

/// One RSA key for the whole run: generating 2048-bit keys is the slow part of these tests.
pub static KEY: LazyLock<TestKey> = LazyLock::new(|| TestKey::generate(KID));
/// A key that is in no JWKS: tokens signed with it must never pass.
pub static ATTACKER_KEY: LazyLock<TestKey> = LazyLock::new(|| TestKey::generate("attacker"));

struct IssuerState {
    issuer: String,
    jwks: std::sync::RwLock<Value>,
    fetches: AtomicU64,
    up: AtomicBool,
    /// What the introspection endpoint says of any token; `None`: it answers 503.
    active: std::sync::RwLock<Option<bool>>,
    introspections: AtomicU64,
}

pub struct Fixture {
    pub server: RunningServer,
    pub issuer: String,
    issuer_state: Arc<IssuerState>,
    pub certs: CertSet,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A fixture whose server config `adjust` may change (binding mode, refresh interval).
    pub async fn with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::build(|config, _| adjust(config), true).await
    }

    /// A fixture whose server sits behind a reverse proxy, reading the client certificate from
    /// `Client-Cert`, with the trust `trust` gives for the fixture's certificates.
    pub async fn behind_proxy(trust: impl FnOnce(&CertSet) -> ProxyTrust) -> Self {
        Self::build(
            |config, certs| {
                config.client_cert = ClientCertSource::Header {
                    name: "Client-Cert".into(),
                    trust: trust(certs),
                };
            },
            true,
        )
        .await
    }

    /// A fixture whose resource server starts while nothing answers at the issuer's address
    /// yet, like a Keycloak still booting; [`Self::start_issuer`] brings it up.
    pub async fn with_issuer_not_started(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::build(|config, _| adjust(config), false).await
    }

    /// Serves the issuer on its address (for [`Self::with_issuer_not_started`]).
    pub fn start_issuer(&self) {
        let port = Url::parse(&self.issuer).unwrap().port().unwrap();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        serve_issuer(listener, &self.certs, self.issuer_state.clone());
    }

    async fn build(adjust: impl FnOnce(&mut ServerConfig, &CertSet), issuer_now: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (certs, _) = CertSet::ensure(dir.path(), false).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!(
            "https://localhost:{}/realms/test",
            listener.local_addr().unwrap().port()
        );
        let issuer_state = Arc::new(IssuerState {
            issuer: issuer.clone(),
            jwks: std::sync::RwLock::new(
                json!({ "keys": [KEY.jwk("sig"), KEY.jwk_as(ENC_KID, "enc")] }),
            ),
            fetches: AtomicU64::new(0),
            up: AtomicBool::new(true),
            active: std::sync::RwLock::new(Some(true)),
            introspections: AtomicU64::new(0),
        });
        if issuer_now {
            serve_issuer(listener, &certs, issuer_state.clone());
        } else {
            // Freed, so connecting is refused at once until the issuer starts on it.
            drop(listener);
        }
        let mut config = ServerConfig::new(
            Url::parse(&issuer).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            &certs,
        );
        config.leeway = Duration::from_secs(5);
        adjust(&mut config, &certs);
        let server = server::start(config).await.expect("resource server starts");
        Self {
            server,
            issuer,
            issuer_state,
            certs,
            _dir: dir,
        }
    }

    /// Claims of a token that passes every check (scope and role included).
    pub fn claims(&self) -> Value {
        keycloak_like_claims(&self.issuer)
    }

    /// Claims bound to the fixture's client certificate.
    pub fn bound_claims(&self) -> Value {
        let mut claims = self.claims();
        claims["cnf"] = json!({ "x5t#S256": self.certs.client.thumbprint_s256() });
        claims
    }

    /// GET /api/users, with or without the client certificate; returns status and challenge.
    pub async fn get(&self, token: Option<&str>, with_certificate: bool) -> (u16, String) {
        self.request("/api/users", token, with_certificate).await
    }

    pub async fn request(
        &self,
        path: &str,
        token: Option<&str>,
        with_certificate: bool,
    ) -> (u16, String) {
        let identity = with_certificate.then_some(&self.certs.client);
        self.request_as(path, token, identity, &[]).await
    }

    /// A request over a connection presenting `identity` (or none), with extra `headers`.
    pub async fn request_as(
        &self,
        path: &str,
        token: Option<&str>,
        identity: Option<&Leaf>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let http = match identity {
            Some(leaf) => {
                playbook_https::https_client_with_identity(&self.certs.ca_pem, &leaf.identity_pem())
            }
            None => playbook_https::https_client(&self.certs.ca_pem),
        }
        .unwrap();
        let mut request = http.get(self.server.base_url().join(path).unwrap());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.expect("the server answers");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status().as_u16(), challenge)
    }

    /// `method path` with `Authorization: <authorization>` and a `DPoP` header per proof, over a
    /// connection presenting no certificate: every challenge and the nonce of the answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<&str>,
        proofs: &[&str],
    ) -> Answered {
        let http = playbook_https::https_client(&self.certs.ca_pem).unwrap();
        let mut request = http.request(method, self.url(path));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        for proof in proofs {
            request = request.header("dpop", *proof);
        }
        let response = request.send().await.expect("the server answers");
        let headers = response.headers();
        Answered {
            status: response.status().as_u16(),
            challenges: (headers.get_all("www-authenticate").iter())
                .map(|v| v.to_str().unwrap().to_owned())
                .collect(),
            nonce: (headers.get("dpop-nonce")).map(|v| v.to_str().unwrap().to_owned()),
            body: String::new(),
        }
        .with_body(response)
        .await
    }

    /// The URL of `path` on the server, as a client names it (and a proof's `htu` must).
    pub fn url(&self, path: &str) -> Url {
        self.server.base_url().join(path).unwrap()
    }

    pub fn jwks_fetches(&self) -> u64 {
        self.issuer_state.fetches.load(Ordering::SeqCst)
    }

    /// Replaces the issuer's JWKS, like a key rotation that retires the old key.
    pub fn rotate_keys(&self, jwks: Value) {
        *self.issuer_state.jwks.write().unwrap() = jwks;
    }

    /// What the issuer's introspection endpoint answers from now on (`None`: 503).
    pub fn set_introspection(&self, active: Option<bool>) {
        *self.issuer_state.active.write().unwrap() = active;
    }

    /// How many introspection requests reached the issuer.
    pub fn introspections(&self) -> u64 {
        self.issuer_state.introspections.load(Ordering::SeqCst)
    }

    /// Makes the issuer answer 503 from now on, like a Keycloak that went down.
    pub fn take_issuer_down(&self) {
        self.issuer_state.up.store(false, Ordering::SeqCst);
    }
}

fn serve_issuer(listener: std::net::TcpListener, certs: &CertSet, state: Arc<IssuerState>) {
    async fn discovery(State(state): State<Arc<IssuerState>>) -> Json<Value> {
        Json(
            json!({ "issuer": state.issuer, "jwks_uri": format!("{}/protocol/openid-connect/certs", state.issuer) }),
        )
    }
    async fn jwks(
        State(state): State<Arc<IssuerState>>,
    ) -> Result<Json<Value>, axum::http::StatusCode> {
        state.fetches.fetch_add(1, Ordering::SeqCst);
        if state.up.load(Ordering::SeqCst) {
            Ok(Json(state.jwks.read().unwrap().clone()))
        } else {
            Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
        }
    }
    async fn introspect(
        State(state): State<Arc<IssuerState>>,
    ) -> Result<Json<Value>, axum::http::StatusCode> {
        state.introspections.fetch_add(1, Ordering::SeqCst);
        match *state.active.read().unwrap() {
            Some(active) => Ok(Json(json!({ "active": active }))),
            None => Err(axum::http::StatusCode::SERVICE_UNAVAILABLE),
        }
    }
    let app = Router::new()
        .route(
            "/realms/test/protocol/openid-connect/token/introspect",
            axum::routing::post(introspect),
        )
        .route(
            "/realms/test/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/realms/test/protocol/openid-connect/certs", get(jwks))
        .with_state(state);
    let tls = playbook_resource_server::tls::server_config(
        &certs.ca_pem,
        certs.keycloak.cert_pem(),
        certs.keycloak.key_pem(),
        false,
    )
    .unwrap();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .unwrap();
    tokio::spawn(server.serve(app.into_make_service()));
}

/// What [`Fixture::send`] got back.
#[derive(Debug)]
pub struct Answered {
    pub status: u16,
    pub challenges: Vec<String>,
    pub nonce: Option<String>,
    pub body: String,
}

impl Answered {
    async fn with_body(mut self, response: reqwest::Response) -> Self {
        self.body = response.text().await.unwrap_or_default();
        self
    }

    /// The challenge of `scheme` (`Bearer`, `DPoP`).
    pub fn challenge(&self, scheme: &str) -> Option<&str> {
        (self.challenges.iter())
            .find(|c| c.starts_with(&format!("{scheme} ")) || *c == scheme)
            .map(String::as_str)
    }
}

pub use playbook_keycloak::{sleep_until_unix, unix_now as now};

pub fn b64(value: &Value) -> String {
    b64_json(value)
}

/// A compact JWS signed with `key`, any header.
pub fn sign_with(key: &TestKey, header: &Value, claims: &Value) -> String {
    key.sign_with_header(header, claims)
}

/// A token signed with the JWKS key, RS256, kid [`KID`].
pub fn sign(claims: &Value) -> String {
    KEY.sign(claims)
}

pub fn assert_invalid_token((status, challenge): (u16, String)) {
    assert_eq!(status, 401, "challenge: {challenge}");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

pub fn assert_insufficient_scope((status, challenge): (u16, String)) {
    assert_eq!(status, 403, "challenge: {challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="users:read users:admin""#),
        "{challenge}"
    );
}

pub fn with_binding(mode: BindingMode) -> impl FnOnce(&mut ServerConfig) {
    move |config| config.binding = mode
}
