//! Every flag that more than one command takes, declared once; each maps onto a library's plain
//! configuration type, whose `Default` holds the default (flags left unset keep it).
//!
//! The environment variable of each flag is named by the library that reads it (e.g.
//! `playbook_provider::env`), so tests that read only the environment agree with the CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use playbook_keycloak::{Admin, AdminCredentials, DEFAULT_HTTPS_PORT, RealmUrl, Secret};
use playbook_keycloak::{AuthMethod, KeycloakUrl, REALM, TokenBinding};
use playbook_provider::{BackendChoice, ProviderConfig, SnapshotPolicy, Topology, env};
use playbook_resource_server::{
    Algorithm, BindingMode, ClientCertSource, IntrospectionConfig, ProofAlgorithm,
};
use playbook_resource_server::{ProxyTrust, ServerConfig};
use url::Url;

/// Where Keycloak is and who administers it: `provider`, `client` and `demo` all take these.
#[derive(Debug, Clone, clap::Args)]
pub struct KeycloakArgs {
    /// URL of an already running Keycloak [default: https://localhost:<keycloak-port>/; for
    /// `provider` and `demo`, setting it selects the external backend].
    #[arg(long = "keycloak-url", env = env::URL)]
    pub url: Option<Url>,

    /// Keycloak admin user (master realm).
    #[arg(long = "keycloak-admin-user", env = env::ADMIN_USER, default_value = playbook_provider::DEFAULT_ADMIN_USER)]
    pub admin_user: String,

    /// Keycloak admin password [default: a started Keycloak gets a random one, saved 0600 in
    /// the certs dir, which later commands read; an external one is assumed to use the seed's
    /// `admin`].
    #[arg(
        long = "keycloak-admin-password",
        env = env::ADMIN_PASSWORD,
        hide_env_values = true
    )]
    pub admin_password: Option<String>,

    /// HTTPS port of Keycloak, native or container; 0 picks a free one when starting it.
    #[arg(long = "keycloak-port", env = env::PORT, default_value_t = DEFAULT_HTTPS_PORT)]
    pub port: u16,
}

impl KeycloakArgs {
    /// The Keycloak to talk to: the given URL, else this machine on the given port.
    pub fn url(&self) -> KeycloakUrl {
        match &self.url {
            Some(url) => KeycloakUrl::new(url.clone()),
            None => KeycloakUrl::local(self.port),
        }
    }

    /// The admin password: the one given, else the one saved in the certs dir by the command
    /// that started Keycloak (`provider`, `demo`), so no doc ever puts it on a command line.
    pub fn admin_password(&self, certs_dir: &Path) -> Option<String> {
        self.admin_password.clone().or_else(|| {
            std::fs::read_to_string(crate::cmd::admin_password_file(certs_dir))
                .ok()
                .map(|saved| saved.trim().to_owned())
        })
    }

    /// An Admin API session for `keycloak`, with [`Self::admin_password`] or else the seed's.
    pub fn admin(
        &self,
        certs_dir: &Path,
        keycloak: KeycloakUrl,
        ca_pem: &str,
    ) -> anyhow::Result<Admin> {
        let password = self
            .admin_password(certs_dir)
            .unwrap_or_else(|| playbook_provider::SEED_ADMIN_PASSWORD.into());
        let credentials = AdminCredentials::new(&self.admin_user, Secret::new(password));
        Ok(Admin::new(keycloak, credentials, ca_pem)?)
    }
}

/// How to start Keycloak: `provider` and `demo` take these.
#[derive(Debug, Clone, clap::Args)]
pub struct LaunchArgs {
    /// Which Keycloak to use [default: auto: external if a URL is given, else a container if
    /// Docker answers, else native].
    #[arg(
        long = "keycloak-backend",
        env = env::BACKEND,
        value_enum,
        ignore_case = true
    )]
    pub backend: Option<BackendChoice>,

    /// A Keycloak distribution (.tar.gz or unpacked directory) to use instead of downloading one.
    #[arg(long = "keycloak-dist", env = env::DIST)]
    pub dist: Option<PathBuf>,

    /// The container backend's image [default: the playbook's optimized image, built when missing].
    #[arg(long = "keycloak-image", env = env::IMAGE)]
    pub image: Option<String>,

    /// The Java of a native Keycloak: a `java` binary or a JDK home [default: the newest of 25,
    /// 21, 17 in JAVA_HOME, PATH and /usr/lib/jvm].
    #[arg(long = "java", env = env::JAVA)]
    pub java: Option<PathBuf>,

    /// Where downloaded and built Keycloak distributions are kept [default: the per-user cache].
    #[arg(long = "cache-dir", env = env::CACHE_DIR)]
    pub cache_dir: Option<PathBuf>,

    /// Seconds to wait for a started Keycloak to become ready.
    #[arg(long = "keycloak-start-timeout", env = env::START_TIMEOUT)]
    pub start_timeout_secs: Option<u64>,

    /// The cluster topology's database: an external PostgreSQL's JDBC URL
    /// (jdbc:postgresql://HOST:5432/DB) [default: the playbook runs its own].
    #[arg(long = "db-url", env = env::DB_URL)]
    pub db_url: Option<String>,

    /// The external database's user.
    #[arg(long = "db-user", env = env::DB_USER, default_value = playbook_provider::postgres::USER)]
    pub db_user: String,

    /// Native backend, as root with CRIU 4 (scripts/install-criu.sh): when to snapshot a ready
    /// Keycloak and restore it (~0.4 s) instead of starting it [default: repeated: from the
    /// second start of the same configuration on].
    #[arg(long = "keycloak-snapshots", env = env::SNAPSHOTS, value_enum, ignore_case = true)]
    pub snapshots: Option<SnapshotPolicy>,

    /// The criu binary [default: the one scripts/install-criu.sh built, else criu on PATH].
    #[arg(long = "criu", env = env::CRIU)]
    pub criu: Option<PathBuf>,

    /// A file holding the external database's password (a flag would show it in `ps`; the
    /// PLAYBOOK_DB_PASSWORD variable works too).
    #[arg(long = "db-password-file", value_parser = secret_file)]
    pub db_password_file: Option<Secret>,
}

/// The secret a file holds (its last line break dropped), read when the flags are parsed, so
/// an unreadable file is one line before anything starts.
fn secret_file(path: &str) -> Result<Secret, String> {
    std::fs::read_to_string(path)
        .map(|text| Secret::new(text.trim_end_matches(['\n', '\r'])))
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// Where the client's TLS ends: `demo`, `lab`, `provider` and `resource-server` take it.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TopologyArgs {
    /// direct: the client's TLS ends at Keycloak and at the resource server. proxy: at HAProxy
    /// (Debian's haproxy package) in front of each, which verifies the client certificate and
    /// forwards it in the RFC 9440 Client-Cert header, read only from the proxy; Keycloak then
    /// runs natively.
    #[arg(long, env = "PLAYBOOK_TOPOLOGY", value_enum, default_value_t = Topology::Direct)]
    pub topology: Topology,
}

/// Everything a command that may start Keycloak takes: `provider`, `demo`, `doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub keycloak: KeycloakArgs,

    #[command(flatten)]
    pub launch: LaunchArgs,
}

impl StartArgs {
    /// The provider's configuration from both groups of flags, for a command that starts and
    /// owns its Keycloak (`provider`).
    pub fn config(&self, certs_dir: &Path) -> ProviderConfig {
        provider_config(&self.keycloak, &self.launch, certs_dir)
    }

    /// The Keycloak of a command that only needs one (`demo`, `lab`): the playbook Keycloak
    /// already running on the port (the tutorial's), used and left running, else a new one.
    ///
    /// Behind the proxy it attaches to nothing: a Keycloak found on the port may be a direct
    /// one, and the run would then draw, and claim, a proxy that is not there. A proxied
    /// Keycloak already running is used by naming it (`--keycloak-url`).
    pub async fn attach_or_start(
        &self,
        certs_dir: &Path,
        certs: &playbook_certs::CertSet,
        topology: Topology,
    ) -> anyhow::Result<playbook_provider::Keycloak> {
        let config = ProviderConfig {
            attach_running: topology == Topology::Direct,
            topology,
            ..self.config(certs_dir)
        };
        crate::cmd::unless_interrupted(playbook_provider::start(
            &config,
            certs,
            crate::progress::for_stderr(),
        ))
        .await
    }
}

fn provider_config(
    keycloak: &KeycloakArgs,
    launch: &LaunchArgs,
    certs_dir: &Path,
) -> ProviderConfig {
    let defaults = ProviderConfig::default();
    ProviderConfig {
        backend: launch.backend.unwrap_or(defaults.backend),
        url: keycloak.url.clone(),
        admin_user: keycloak.admin_user.clone(),
        admin_password: keycloak.admin_password.clone().map(Secret::new),
        saved_admin_password: keycloak.admin_password(certs_dir).map(Secret::new),
        https_port: keycloak.port,
        dist: launch.dist.clone(),
        image: launch.image.clone(),
        java: launch.java.clone(),
        cache_dir: launch.cache_dir.clone(),
        start_timeout: launch
            .start_timeout_secs
            .map_or(defaults.start_timeout, Duration::from_secs),
        attach_running: defaults.attach_running,
        topology: defaults.topology,
        db_url: launch.db_url.clone(),
        db_user: launch.db_user.clone(),
        snapshots: launch.snapshots.unwrap_or(defaults.snapshots),
        criu: launch.criu.clone(),
        snapshot_extras: defaults.snapshot_extras,
        snapshot_training: defaults.snapshot_training,
        short_lived: defaults.short_lived,
        db_password: launch
            .db_password_file
            .clone()
            .or_else(|| std::env::var(env::DB_PASSWORD).ok().map(Secret::new)),
    }
}

/// The port of the resource server a command starts (`demo`, `lab`).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ApiPortArgs {
    /// HTTPS port of the resource server; 0 picks a free one [default: 8443, or a free one
    /// when 8443 is taken, e.g. by the tutorial's resource server].
    #[arg(long = "api-port", env = "PLAYBOOK_API_PORT")]
    pub api_port: Option<u16>,
}

impl ApiPortArgs {
    /// The port to listen on, decided before Keycloak starts so that a taken port costs a
    /// second: a port asked for must be free; the default gives way to a free port, in one line.
    pub fn resolve(self) -> anyhow::Result<u16> {
        let default = playbook_resource_server::DEFAULT_LISTEN.port();
        let free =
            |port: u16| port == 0 || std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        match self.api_port {
            Some(port) if free(port) => Ok(port),
            Some(port) => anyhow::bail!(
                "port {port} is already in use (another resource server?); stop it, or pass \
                 --api-port 0 / PLAYBOOK_API_PORT=0 to pick a free port"
            ),
            None if free(default) => Ok(default),
            None => {
                eprintln!(
                    "port {default} is taken (the tutorial's resource server?): this run's resource \
                     server listens on a free port instead"
                );
                Ok(0)
            }
        }
    }
}

/// The resource server as the tutorial runs it on this machine: what `client` calls and what
/// `doctor` checks unless told another URL.
pub fn local_api_url() -> Url {
    playbook_https::local_url(playbook_resource_server::DEFAULT_LISTEN.port())
}

/// Which realm of Keycloak the flow runs in.
#[derive(Debug, Clone, clap::Args)]
pub struct RealmArgs {
    /// The realm: the tutorial's, or another name so that several runs can share one Keycloak
    /// (`provider` and `demo` import the bundled realm under it).
    #[arg(long, env = "PLAYBOOK_REALM", default_value = REALM)]
    pub realm: String,
}

/// A security profile a run follows end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// FAPI 2.0 Security Profile.
    Fapi2,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// Follow a security profile end to end: fapi2 (FAPI 2.0 Security Profile) turns on
    /// Keycloak's FAPI 2.0 client policy for the realm (fapi-2-security-profile, or
    /// fapi-2-dpop-security-profile with --bind dpop; tokens signed PS256) and the resource
    /// server's FAPI 2.0 checks (sender-constrained tokens only; PS256 or ES256 signatures).
    #[arg(long, env = "PLAYBOOK_PROFILE", value_enum)]
    pub profile: Option<Profile>,
}

impl ProfileArgs {
    pub fn fapi2(&self) -> bool {
        self.profile == Some(Profile::Fapi2)
    }

    /// FAPI 2.0 lets a client authenticate with mTLS or private_key_jwt only, and bind its
    /// tokens to its certificate or a DPoP key: anything else is said before anything starts.
    pub fn check(&self, auth: &AuthArgs) -> anyhow::Result<()> {
        let binding = auth.binding()?;
        let allowed = matches!(auth.method, AuthMethod::Mtls | AuthMethod::PrivateKeyJwt)
            && matches!(binding, TokenBinding::Certificate | TokenBinding::Dpop);
        if self.fapi2() && !allowed {
            anyhow::bail!(
                "--profile fapi2 allows --auth mtls or private-key-jwt, with --bind certificate or dpop (FAPI 2.0 §5.3.2); got --auth {} --bind {}",
                auth.method.name(),
                binding.name()
            );
        }
        Ok(())
    }
}

/// How the client proves who it is at the token endpoint.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// The client authentication method, each with a client of its own in the realm: mtls
    /// (tls_client_auth, the seed's), secret (client_secret_basic), secret-post, secret-jwt
    /// (client_secret_jwt), private-key-jwt, federated (no secret: its workload platform's
    /// token). Secrets are rotated through the Admin API and kept 0600 in the certs dir; mtls
    /// binds the token to the certificate, the others when --bind certificate asks.
    #[arg(
        long = "auth",
        env = "PLAYBOOK_AUTH",
        default_value = AuthMethod::default().name(),
        value_parser = auth_method(),
    )]
    pub method: AuthMethod,

    /// Bind the tokens to a key the client holds, apart from how it authenticates: certificate
    /// (the TLS client certificate is presented on the token request and Keycloak puts its
    /// thumbprint in cnf.x5t#S256, RFC 8705), dpop (every request carries a DPoP proof signed
    /// with the key in certs/client-dpop-key.pem, whose thumbprint Keycloak puts in cnf.jkt, RFC
    /// 9449) or none (a bearer token) [default: certificate for mtls, none for the others].
    #[arg(long = "bind", env = "PLAYBOOK_BIND", value_parser = token_binding())]
    pub binding: Option<TokenBinding>,

    /// The workload platform that vouches for the federated client: oidc (a realm of the same
    /// Keycloak, an OpenID Connect issuer) or spiffe (a SPIRE server and agent the playbook
    /// runs, its JWT-SVID the assertion; needs scripts/install-spire.sh once).
    #[arg(long, env = "PLAYBOOK_PLATFORM", value_enum, default_value = "oidc")]
    pub platform: Platform,
}

/// Who issues the federated client's assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// The realm's workload platform: another realm of the same Keycloak.
    Oidc,
    /// SPIRE: a real SPIFFE issuer.
    Spiffe,
}

impl AuthArgs {
    /// The binding asked for, else the method's own; mtls always binds, since its certificate
    /// is on every token request and its client in the realm is set to bind.
    /// SPIRE, started for this run, when the federated client's platform is SPIFFE.
    pub async fn spire(
        &self,
        certs: &playbook_certs::CertSet,
    ) -> anyhow::Result<Option<playbook_spire::Spire>> {
        if self.platform != Platform::Spiffe {
            return Ok(None);
        }
        if self.method != AuthMethod::Federated {
            anyhow::bail!(
                "--platform spiffe is the federated client's platform: add --auth federated"
            );
        }
        Ok(Some(playbook_spire::Spire::start(certs).await?))
    }

    pub fn binding(&self) -> anyhow::Result<TokenBinding> {
        let binding = self
            .binding
            .unwrap_or(TokenBinding::default_for(self.method));
        if self.method == AuthMethod::Mtls && binding != TokenBinding::Certificate {
            anyhow::bail!(
                "--auth mtls always binds its tokens to the certificate; for a bearer or DPoP-bound token pick another --auth (e.g. private-key-jwt: no secret, no certificate)"
            );
        }
        Ok(binding)
    }
}

/// `--bind`'s possible values, from the bindings' one list of names.
fn token_binding() -> impl clap::builder::TypedValueParser<Value = TokenBinding> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(TokenBinding::ALL.map(TokenBinding::name))
        .try_map(|name| TokenBinding::from_name(&name).ok_or("not a binding"))
}

/// `--dpop-algorithms`' possible values, from the algorithms' one list of names.
fn proof_algorithm() -> impl clap::builder::TypedValueParser<Value = ProofAlgorithm> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(ProofAlgorithm::ALL.map(ProofAlgorithm::name))
        .try_map(|name| ProofAlgorithm::from_name(&name).ok_or("not an algorithm"))
}

/// `--auth`'s possible values, from the methods' one list of names.
fn auth_method() -> impl clap::builder::TypedValueParser<Value = AuthMethod> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(AuthMethod::ALL.map(AuthMethod::name))
        .try_map(|name| AuthMethod::from_name(&name).ok_or("not a method"))
}

/// The issuer the resource server trusts: `resource-server` serves with it, `doctor` checks
/// tokens against it.
#[derive(Debug, Clone, clap::Args)]
pub struct IssuerArgs {
    /// The realm's issuer URL, as the resource server is configured with it; the JWKS URL comes
    /// from its OIDC discovery document [default: the oauth2-playbook realm on
    /// https://localhost:9443].
    #[arg(long, env = "PLAYBOOK_ISSUER")]
    pub issuer: Option<Url>,
}

impl IssuerArgs {
    /// The issuer given, else the tutorial's realm on this machine's Keycloak.
    pub fn realm(&self) -> RealmUrl {
        match &self.issuer {
            Some(issuer) => RealmUrl::from_issuer(issuer.clone()),
            None => KeycloakUrl::local(DEFAULT_HTTPS_PORT).realm(REALM),
        }
    }
}

/// `playbook resource-server`'s options; unset ones keep [`ServerConfig::new`]'s defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub issuer: IssuerArgs,

    /// The audience tokens must name.
    #[arg(long, env = "PLAYBOOK_AUDIENCE", default_value = playbook_resource_server::AUDIENCE)]
    pub audience: String,

    /// Address to listen on.
    #[arg(long, env = "PLAYBOOK_LISTEN", default_value_t = playbook_resource_server::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Sender-constrained tokens: a bound token is always checked against its certificate
    /// (RFC 8705) or DPoP proof (RFC 9449); required takes either and refuses bearer tokens,
    /// required-mtls and required-dpop name one; off ignores bindings (for comparison only)
    /// [default: when-present].
    #[arg(long, env = "PLAYBOOK_BINDING", value_enum)]
    pub binding: Option<BindingMode>,

    /// Hand out DPoP nonces (RFC 9449 section 9): a proof must carry this server's current
    /// nonce, so it cannot have been made in advance; a proof without one gets 401
    /// use_dpop_nonce and the nonce in DPoP-Nonce.
    #[arg(long, env = "PLAYBOOK_DPOP_NONCE")]
    pub dpop_nonce: bool,

    /// Algorithms a DPoP proof may be signed with, comma-separated [default: all asymmetric
    /// ones: ES256, ES384, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512].
    #[arg(
        long,
        env = "PLAYBOOK_DPOP_ALGORITHMS",
        value_delimiter = ',',
        value_parser = proof_algorithm()
    )]
    pub dpop_algorithms: Vec<ProofAlgorithm>,

    #[command(flatten)]
    pub profile: ProfileArgs,

    /// The URL clients call this server at, when a proxy in front rewrites the Host header:
    /// DPoP proofs' htu and the metadata's resource are under it [default: https:// and the
    /// Host of each request].
    #[arg(long, env = "PLAYBOOK_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// Accepted clock difference with Keycloak, in seconds, for `exp` and `nbf` [default: 30].
    #[arg(long, env = "PLAYBOOK_LEEWAY_SECS")]
    pub leeway_secs: Option<u64>,

    /// Accepted signature algorithms, comma-separated [default: RS256].
    #[arg(
        long,
        env = "PLAYBOOK_ALGORITHMS",
        value_delimiter = ',',
        value_enum,
        ignore_case = true
    )]
    pub algorithms: Vec<Algorithm>,

    /// CA certificate: trusted for Keycloak's TLS and for client certificates.
    #[arg(long, env = "PLAYBOOK_CA")]
    pub ca: Option<PathBuf>,

    /// Server certificate (PEM).
    #[arg(long, env = "PLAYBOOK_TLS_CERT")]
    pub cert: Option<PathBuf>,

    /// Server private key (PEM).
    #[arg(long, env = "PLAYBOOK_TLS_KEY")]
    pub key: Option<PathBuf>,

    /// Also ask Keycloak whether each valid token is still active (RFC 7662), as the realm's
    /// `oauth2-playbook-resource-server` client with this server's certificate: a revoked token
    /// is refused at once; 503 while Keycloak cannot be asked.
    #[arg(long, env = "PLAYBOOK_INTROSPECTION")]
    pub introspection: bool,

    /// How long an introspection answer is reused, in seconds: the longest a revocation goes
    /// unnoticed [default: 10].
    #[arg(
        long,
        env = "PLAYBOOK_INTROSPECTION_TTL_SECS",
        requires = "introspection"
    )]
    pub introspection_ttl_secs: Option<u64>,

    /// How many verified tokens are remembered, so that a client reusing its token skips the
    /// signature check; a bigger cache holds more clients' tokens and costs every new token
    /// more [default: 1000, about 2.6 MiB].
    #[arg(long, env = "PLAYBOOK_VERIFIED_CACHE_CAPACITY", value_parser = clap::value_parser!(u32).range(1..))]
    pub verified_cache_capacity: Option<u32>,

    /// How often the realm's keys are fetched again unasked, in seconds, so that a key removed
    /// from Keycloak stops verifying tokens [default: 300].
    #[arg(long, env = "PLAYBOOK_JWKS_REFRESH_SECS")]
    pub jwks_refresh_secs: Option<u64>,

    /// Behind a reverse proxy of your own: read the client certificate from this header, in RFC
    /// 9440's `:base64(DER):` form (e.g. Client-Cert), believed only from the proxy named by
    /// --trusted-proxy-cert or --trusted-proxy-addr; a header from anyone else gets 401.
    #[arg(long, env = "PLAYBOOK_CLIENT_CERT_HEADER")]
    pub client_cert_header: Option<String>,

    /// The proxy's own TLS client certificate (PEM): only the peer presenting it may set the
    /// header, and every peer must present a certificate of the CA (preferred).
    #[arg(
        long,
        env = "PLAYBOOK_TRUSTED_PROXY_CERT",
        requires = "client_cert_header",
        conflicts_with = "trusted_proxy_addr"
    )]
    pub trusted_proxy_cert: Option<PathBuf>,

    /// The addresses the proxy connects from, comma-separated. Weaker than
    /// --trusted-proxy-cert: anything that can connect from one of them is believed too.
    #[arg(
        long,
        env = "PLAYBOOK_TRUSTED_PROXY_ADDR",
        value_delimiter = ',',
        requires = "client_cert_header"
    )]
    pub trusted_proxy_addr: Vec<std::net::IpAddr>,
}

impl ServerArgs {
    /// Applies the flags that were given to `config`.
    pub fn apply(&self, config: &mut ServerConfig) {
        config.audience = self.audience.clone();
        if let Some(binding) = self.binding {
            config.binding = binding;
        }
        if let Some(secs) = self.leeway_secs {
            config.leeway = Duration::from_secs(secs);
        }
        if !self.algorithms.is_empty() {
            config.algorithms = self.algorithms.clone();
        }
        if self.introspection {
            let mut introspection = IntrospectionConfig::default();
            if let Some(secs) = self.introspection_ttl_secs {
                introspection.ttl = Duration::from_secs(secs);
            }
            config.introspection = Some(introspection);
        }
        if let Some(capacity) = self.verified_cache_capacity {
            config.verified_cache_capacity = capacity as usize;
        }
        if let Some(secs) = self.jwks_refresh_secs {
            config.jwks_refresh = Duration::from_secs(secs);
        }
        config.dpop.nonce = self.dpop_nonce;
        if !self.dpop_algorithms.is_empty() {
            config.dpop.rules.algorithms = self.dpop_algorithms.clone();
        }
        if let Some(url) = &self.public_url {
            config.public_url = Some(url.clone());
        }
        if self.profile.fapi2() {
            config.fapi2();
        }
    }

    /// Flags that contradict each other, said before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        let chosen = !self.algorithms.is_empty() || !self.dpop_algorithms.is_empty();
        if self.profile.fapi2() && chosen {
            anyhow::bail!(
                "--profile fapi2 sets the accepted algorithms itself (PS256, ES256; EdDSA for DPoP proofs); drop --algorithms and --dpop-algorithms"
            );
        }
        if self.profile.fapi2() && self.binding == Some(BindingMode::Off) {
            anyhow::bail!(
                "--profile fapi2 requires sender-constrained tokens; --binding off contradicts it"
            );
        }
        Ok(())
    }

    /// The issuer given, else the tutorial's realm on this machine's Keycloak.
    pub fn issuer(&self) -> Url {
        self.issuer.realm().issuer().clone()
    }

    /// Where the client certificate comes from: the TLS connection, or the header of a proxy
    /// this server can tell from anyone else.
    /// `ca_pem` is the CA the server trusts: the proxy's certificate must be one of its client
    /// certificates, or the proxy could never complete a handshake.
    pub fn client_cert(&self, ca_pem: &str) -> anyhow::Result<ClientCertSource> {
        let Some(name) = &self.client_cert_header else {
            return Ok(ClientCertSource::Tls);
        };
        // A name no request can carry would leave every bound token "without a certificate".
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            anyhow::bail!(
                "--client-cert-header {name:?} is not an HTTP header name (e.g. Client-Cert)"
            );
        }
        let trust = match (&self.trusted_proxy_cert, self.trusted_proxy_addr.as_slice()) {
            (Some(path), _) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                let der = playbook_certs::der::certificates(&pem)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                playbook_certs::der::verify_forwarded_client(&der[0], ca_pem).map_err(|why| {
                    anyhow::anyhow!(
                        "--trusted-proxy-cert {}: {why}; the proxy presents it to this server, which trusts only its CA",
                        path.display()
                    )
                })?;
                ProxyTrust::Certificate {
                    thumbprint: playbook_certs::thumbprint_s256(&der[0]),
                }
            }
            (None, []) => anyhow::bail!(
                "--client-cert-header needs to know the proxy: pass --trusted-proxy-cert FILE (its client certificate) or --trusted-proxy-addr ADDR"
            ),
            (None, addresses) => ProxyTrust::Addresses(addresses.to_vec()),
        };
        Ok(ClientCertSource::Header {
            name: name.clone(),
            trust,
        })
    }
}
