//! Starting and stopping the HTTPS server (used by the CLI, the demo and the tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use playbook_keycloak::RealmUrl;
use playbook_trace::{Party, Trace};
use url::Url;

use crate::introspect::{IntrospectionConfig, Introspector};
use crate::jwks::{JwksCache, MIN_REFRESH_INTERVAL};
use crate::policy::{Auth, Dpop};
use crate::token::{Validator, ValidatorConfig};
use crate::{Algorithm, AppState, BindingMode, ClientCertSource, DpopConfig, ProofAlgorithm};

/// The seed's resource-server address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8443,
));
/// How often a server without signing keys tries discovery and the JWKS again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Accepted clock difference with Keycloak for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// How often the keys are fetched again unasked (a removed key stops verifying within this).
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// Everything needed to run the server, already loaded (PEM text, not paths).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The realm whose tokens are accepted, known by its issuer.
    pub issuer: RealmUrl,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    /// How many verified tokens are remembered, so a reused token skips its signature check.
    pub verified_cache_capacity: usize,
    pub binding: BindingMode,
    pub min_refresh_interval: Duration,
    /// How often a server without keys (Keycloak down at start) tries again.
    pub retry_interval: Duration,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// How often the keys are fetched again even when no unknown `kid` asked for it, so a key
    /// Keycloak removed stops verifying tokens within this interval.
    pub jwks_refresh: Duration,
    /// Introspection mode (RFC 7662): off unless set.
    pub introspection: Option<IntrospectionConfig>,
    /// Where the server records its own exchanges with Keycloak (off by default).
    pub trace: Trace,
    /// The lifeline the server is drawn as: the lab runs a second one beside the first.
    pub party: Party,
    /// Where a request's client certificate comes from: its TLS connection, or a header from a
    /// trusted reverse proxy.
    pub client_cert: ClientCertSource,
    /// What DPoP proofs are accepted, and whether nonces are handed out.
    pub dpop: DpopConfig,
    /// The URL clients call this server at, when requests do not name it (a proxy rewriting
    /// `Host`): DPoP proofs' `htu` and the metadata's `resource` are under it.
    pub public_url: Option<Url>,
}

impl ServerConfig {
    /// The tutorial's defaults around the given issuer, certificates and address.
    pub fn new(issuer: Url, listen: SocketAddr, certs: &playbook_certs::CertSet) -> Self {
        Self {
            listen,
            issuer: RealmUrl::from_issuer(issuer),
            audience: crate::AUDIENCE.into(),
            algorithms: vec![Algorithm::RS256],
            leeway: DEFAULT_LEEWAY,
            verified_cache_capacity: crate::VERIFIED_CACHE_CAPACITY,
            binding: BindingMode::WhenPresent,
            min_refresh_interval: MIN_REFRESH_INTERVAL,
            retry_interval: RETRY_INTERVAL,
            ca_pem: certs.ca_pem.clone(),
            cert_pem: certs.resource_server.cert_pem().to_owned(),
            key_pem: certs.resource_server.key_pem().to_owned(),
            jwks_refresh: JWKS_REFRESH,
            introspection: None,
            trace: Trace::off(),
            party: Party::ResourceServer,
            client_cert: ClientCertSource::Tls,
            dpop: DpopConfig::default(),
            public_url: None,
        }
    }
}

impl ServerConfig {
    /// The FAPI 2.0 Security Profile's resource server (§5.3.4): only sender-constrained tokens
    /// (certificate or DPoP; a mode that names one keeps it), and only the signature algorithms
    /// §5.4 allows, for tokens (PS256, ES256: the realm signs PS256 under the profile) and for
    /// DPoP proofs (PS256, ES256, EdDSA). Tokens are read from the `Authorization` header only,
    /// never from a query parameter, under any profile.
    pub fn fapi2(&mut self) {
        if matches!(self.binding, BindingMode::Off | BindingMode::WhenPresent) {
            self.binding = BindingMode::Required;
        }
        self.algorithms = vec![Algorithm::PS256, Algorithm::ES256];
        self.dpop.rules.algorithms = vec![
            ProofAlgorithm::PS256,
            ProofAlgorithm::ES256,
            ProofAlgorithm::EdDSA,
        ];
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error(
        "cannot load the issuer's signing keys: {0}; is Keycloak running and is --issuer right?"
    )]
    Discovery(String),
    #[error("cannot listen on {addr}: {source}; is another server using it?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server; [`RunningServer::shutdown`] stops it gracefully.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    keys: Arc<JwksCache>,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub fn base_url(&self) -> Url {
        playbook_https::local_url(self.addr.port())
    }

    /// Fetches the issuer's keys now instead of at the next periodic refresh: after a key
    /// rotation it is known to have happened (a deploy, the lab), tokens signed by a removed
    /// key are refused at once. `why` labels the fetch on the trace.
    pub async fn refresh_keys(&self, why: &str) {
        self.keys.refresh_now(why).await;
    }

    /// Stops serving at once, every connection dropped, as a crashed replica would: the attack
    /// lab's `replica-down`. [`Self::shutdown`] still ends the handle afterwards.
    pub fn halt(&self) {
        self.refresher.abort();
        self.handle.shutdown();
    }

    /// Stops accepting, lets requests in flight finish (up to 10 s), then returns.
    pub async fn shutdown(self) {
        self.refresher.abort();
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        let _ = self.task.await;
    }
}

/// Discovers the issuer's keys, binds, and serves in the background.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    start_with(config, crate::router).await
}

/// Like [`start`], with a custom router built on the same state.
pub async fn start_with(
    config: ServerConfig,
    router: impl FnOnce(AppState) -> axum::Router,
) -> Result<RunningServer, ServerError> {
    let http = playbook_https::https_client(&config.ca_pem)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let keys = JwksCache::discover(
        http,
        &config.issuer,
        config.algorithms.clone(),
        config.min_refresh_interval,
        config.trace.clone(),
        config.party,
    )
    .await
    .map_err(ServerError::Discovery)?;
    if !keys.has_keys() {
        tracing::warn!(
            "no signing keys yet: discovery and the JWKS are tried again every {} s, and {} answers 503 until then",
            config.retry_interval.as_secs(),
            crate::api::READY
        );
    }
    serve(config, Arc::new(keys), router)
}

/// Serves with an already prepared key cache (no discovery): the load-test target uses this
/// with preloaded test keys. Must be called inside a tokio runtime.
pub fn serve(
    config: ServerConfig,
    keys: Arc<JwksCache>,
    router: impl FnOnce(AppState) -> axum::Router,
) -> Result<RunningServer, ServerError> {
    let require_peer_certificate = match &config.client_cert {
        ClientCertSource::Header { trust, .. } => trust.requires_peer_certificate(),
        ClientCertSource::Tls => false,
    };
    let tls = crate::tls::server_config(
        &config.ca_pem,
        &config.cert_pem,
        &config.key_pem,
        require_peer_certificate,
    )
    .map_err(ServerError::Tls)?;
    let validator = Validator::new(
        ValidatorConfig {
            issuer: config.issuer.issuer().to_string(),
            audience: config.audience.clone(),
            algorithms: config.algorithms.clone(),
            leeway: config.leeway,
            verified_cache_capacity: config.verified_cache_capacity,
        },
        keys.clone(),
    );
    let introspector = match &config.introspection {
        Some(_) if !playbook_certs::der::allows_client_auth(&config.cert_pem) => {
            return Err(ServerError::Tls(
                "the resource server's certificate is not valid for TLS client authentication, \
                 which --introspection needs to authenticate to Keycloak; regenerate the \
                 certificates with `cargo playbook certs --force`"
                    .into(),
            ));
        }
        Some(settings) => {
            let identity = format!("{}\n{}", config.cert_pem, config.key_pem);
            let http =
                playbook_https::https_client_with_identity(&config.ca_pem, identity.as_bytes())
                    .map_err(|e| ServerError::Tls(e.to_string()))?;
            let endpoint = settings
                .endpoint
                .clone()
                .unwrap_or_else(|| config.issuer.introspection());
            Some(Introspector::new(
                http,
                endpoint,
                settings,
                config.trace.clone(),
                config.party,
            ))
        }
        None => None,
    };
    let state = AppState::new(Arc::new(Auth {
        validator,
        binding: config.binding,
        introspector,
        client_cert: config.client_cert.clone(),
        ca_pem: config.ca_pem.clone(),
        dpop: config
            .binding
            .accepts_dpop()
            .then(|| Dpop::new(&config.dpop)),
        public_url: config.public_url.clone(),
        thumbprints: Default::default(),
    }));
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let handle = Handle::new();
    let server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(tls))
        .map_err(|source| ServerError::Bind { addr, source })?
        .handle(handle.clone())
        .serve(router(state.clone()).into_make_service_with_connect_info::<SocketAddr>());
    let task = tokio::spawn(server);
    // Started without keys (Keycloak down)? Keep trying in the background; /readyz tells.
    // With keys, fetch them again now and then: a key Keycloak removed must stop verifying.
    let (retry, every) = (config.retry_interval, config.jwks_refresh);
    let refreshed = keys.clone();
    let refresher = tokio::spawn(async move {
        let keys = refreshed;
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(retry.min(every)).await;
            if !keys.has_keys() {
                keys.refresh_now("again: no signing keys yet").await;
                last = tokio::time::Instant::now();
            } else if last.elapsed() >= every {
                keys.refresh_now("again: the periodic refresh").await;
                last = tokio::time::Instant::now();
            }
        }
    });
    tracing::debug!(%addr, issuer = %config.issuer.issuer(), binding = ?config.binding, "resource server listening");
    Ok(RunningServer {
        addr,
        state,
        keys,
        handle,
        task,
        refresher,
    })
}
