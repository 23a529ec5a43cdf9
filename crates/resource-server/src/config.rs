//! Configuration: flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

/// JWS algorithms this server can verify. `none` and the HMAC family are deliberately absent:
/// a resource server holds no shared secret with Keycloak, and accepting HS256 would let anyone
/// with the public key forge tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

impl Algorithm {
    /// The JOSE name (`"RS256"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
        }
    }

    /// The same algorithm as jsonwebtoken names it.
    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::RS384 => jsonwebtoken::Algorithm::RS384,
            Self::RS512 => jsonwebtoken::Algorithm::RS512,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::PS384 => jsonwebtoken::Algorithm::PS384,
            Self::PS512 => jsonwebtoken::Algorithm::PS512,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::RS256,
            Self::RS384,
            Self::RS512,
            Self::PS256,
            Self::PS384,
            Self::PS512,
            Self::ES256,
            Self::ES384,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

/// When a token must be bound to the client certificate of its connection (RFC 8705).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BindingMode {
    /// Ignore `cnf` (not recommended; for comparison in the tutorial).
    Off,
    /// A token carrying `cnf.x5t#S256` must arrive with that certificate.
    #[default]
    WhenPresent,
    /// Every token must be certificate-bound and arrive with its certificate.
    Required,
}

/// `playbook resource-server` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The realm's issuer URL; the JWKS URL comes from its OIDC discovery document.
    #[arg(
        long,
        env = "PLAYBOOK_ISSUER",
        default_value = "https://localhost:9443/realms/oauth2-playbook"
    )]
    pub issuer: Url,

    /// The audience tokens must name.
    #[arg(long, env = "PLAYBOOK_AUDIENCE", default_value = crate::AUDIENCE)]
    pub audience: String,

    /// Address to listen on.
    #[arg(long, env = "PLAYBOOK_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// Certificate binding of tokens (RFC 8705).
    #[arg(long, env = "PLAYBOOK_BINDING", value_enum, default_value_t = BindingMode::WhenPresent)]
    pub binding: BindingMode,

    /// Accepted clock difference with Keycloak, in seconds, for `exp` and `nbf`.
    #[arg(long, env = "PLAYBOOK_LEEWAY_SECS", default_value_t = 30)]
    pub leeway_secs: u64,

    /// Accepted signature algorithms (comma-separated).
    #[arg(
        long,
        env = "PLAYBOOK_ALGORITHMS",
        value_enum,
        value_delimiter = ',',
        default_value = "RS256"
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
}
