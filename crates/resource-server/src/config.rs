//! The two choices a deployment makes about tokens, named as flags and variables name them.

/// JWS algorithms this server can verify. `none` and the HMAC family are deliberately absent:
/// a resource server holds no shared secret with Keycloak, and accepting HS256 would let anyone
/// with the public key forge tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Every algorithm this server can verify.
    pub const ALL: [Self; 8] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// What this server demands of a token's sender constraint: a certificate binding (RFC 8705,
/// `cnf.x5t#S256`, checked against the request's client certificate) or a DPoP binding (RFC
/// 9449, `cnf.jkt`, checked against the request's proof). A binding a token carries is always
/// checked, except under `Off`; the modes differ in what they require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindingMode {
    /// Ignore `cnf` (not recommended; for comparison in the tutorial and the lab): a stolen
    /// bound token is accepted as a bearer token.
    Off,
    /// A bound token must arrive with what it is bound to; a bearer token is accepted.
    #[default]
    WhenPresent,
    /// Every token must be bound, by certificate or by DPoP, and arrive with it.
    Required,
    /// Every token must be certificate-bound (DPoP is not accepted).
    RequiredMtls,
    /// Every token must be DPoP-bound (the `Bearer` scheme is not accepted).
    RequiredDpop,
}

impl BindingMode {
    pub const ALL: [Self; 5] = [
        Self::Off,
        Self::WhenPresent,
        Self::Required,
        Self::RequiredMtls,
        Self::RequiredDpop,
    ];

    /// The one name of each mode: what the flag and the variable take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::WhenPresent => "when-present",
            Self::Required => "required",
            Self::RequiredMtls => "required-mtls",
            Self::RequiredDpop => "required-dpop",
        }
    }

    /// Whether the `DPoP` scheme is accepted at all.
    pub fn accepts_dpop(self) -> bool {
        self != Self::RequiredMtls
    }

    /// Whether the `Bearer` scheme is accepted (for bearer and certificate-bound tokens).
    pub fn accepts_bearer_scheme(self) -> bool {
        self != Self::RequiredDpop
    }

    /// Whether certificate-bound tokens are checked against the client certificate: RFC 9728's
    /// `tls_client_certificate_bound_access_tokens`.
    pub fn checks_certificates(self) -> bool {
        matches!(
            self,
            Self::WhenPresent | Self::Required | Self::RequiredMtls
        )
    }
}

/// The DPoP side of the server (RFC 9449): what proofs it accepts, and whether it hands out
/// nonces (section 9) so that a proof cannot be made before the server asked for it.
#[derive(Debug, Clone, Default)]
pub struct DpopConfig {
    pub rules: playbook_dpop::ProofRules,
    pub nonce: bool,
}

/// The flags' possible values, from the names above (the CLI enables the `clap` feature).
#[cfg(feature = "clap")]
mod flags {
    use super::{Algorithm, BindingMode};
    use clap::builder::PossibleValue;

    impl clap::ValueEnum for BindingMode {
        fn value_variants<'a>() -> &'a [Self] {
            &Self::ALL
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(PossibleValue::new(self.name()))
        }
    }

    impl clap::ValueEnum for Algorithm {
        fn value_variants<'a>() -> &'a [Self] {
            &Self::ALL
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(PossibleValue::new(self.name()))
        }
    }
}

/// Where a request's client certificate comes from, for the binding check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientCertSource {
    /// The request's own TLS connection: the client connects to this server directly.
    #[default]
    Tls,
    /// A header a reverse proxy sets from the certificate it verified (RFC 9440 `Client-Cert`).
    /// The TLS peer is then the proxy, and the header is believed only from the proxy.
    Header { name: String, trust: ProxyTrust },
}

/// How this server tells its reverse proxy from anyone else who can connect to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTrust {
    /// The proxy's own TLS client certificate, by its `x5t#S256` thumbprint. Every peer must then
    /// present a certificate of the CA; only the proxy's makes its header count. Preferred: it
    /// holds wherever the proxy runs and whoever else shares its network.
    Certificate { thumbprint: String },
    /// The peer addresses the proxy connects from. Weaker: anyone who can connect from one of
    /// them (another process on the proxy's host, a spoofed address on a flat network) is
    /// believed too.
    Addresses(Vec<std::net::IpAddr>),
}

impl ProxyTrust {
    /// Whether this trust needs a client certificate from every TLS peer.
    pub fn requires_peer_certificate(&self) -> bool {
        matches!(self, Self::Certificate { .. })
    }
}
