//! The certificates of the playbook: one local CA and the leaves it signs.
//!
//! Every TLS party of the flow (Keycloak, the resource server, the client) trusts exactly this CA,
//! so no party ever skips certificate checks. The CA lives a year, leaves 90 days, like a small
//! real PKI.
//!
//! ```
//! let ca = playbook_certs::Authority::generate().unwrap();
//! let client = ca.issue(&playbook_certs::LeafSpec::client(playbook_certs::CLIENT_CN)).unwrap();
//! assert!(client.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert_eq!(client.thumbprint_s256().len(), 43); // base64url(SHA-256), as in RFC 8705 `cnf`
//! ```

mod authority;
mod check;
pub mod der;
mod store;

pub use authority::{Authority, Leaf, LeafSpec, thumbprint_s256};
pub use check::Problem;
pub use store::{CertSet, Ensured, Files, write_private};

/// The client certificate's common name; the realm's `x509.subjectdn` matches it.
pub const CLIENT_CN: &str = "mtls-client-dev.local";
/// The resource server's certificate: a TLS server, and the client Keycloak knows as
/// `oauth2-playbook-resource-server` when it introspects tokens.
pub const RESOURCE_SERVER_CN: &str = "resource-server";
/// The reverse proxy of the proxy topology: a TLS server to clients, a TLS client upstream.
pub const PROXY_CN: &str = "oauth2-playbook-proxy";
/// The attack lab's second client, registered in the realm like the first (same CA).
pub const INTRUDER_CN: &str = "mtls-intruder-dev.local";
/// Names every server certificate answers to (the seed's SANs).
pub const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "oauth2-playbook.dev"];
/// Password of the PKCS#12 truststore. A truststore holds no secret, but Java insists on one.
pub const TRUSTSTORE_PASSWORD: &str = "changeit";

/// A new P-256 signing key (PKCS#8 PEM), held in memory: what a `private_key_jwt` client signs
/// its assertions with, kept by [`CertSet::assertion_key`] or made for one lab scenario.
pub fn signing_key_pem() -> Result<String, CertsError> {
    Ok(rcgen::KeyPair::generate()?.serialize_pem())
}

/// Why certificates could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the PKCS#12 truststore: {0}")]
    Truststore(String),
    #[error("no certificates in {dir}; run `cargo playbook certs` to make them")]
    NotFound { dir: std::path::PathBuf },
    #[error(
        "certificates in {dir} are not usable: {problem}; run `cargo playbook certs --force` to regenerate them"
    )]
    Unusable {
        dir: std::path::PathBuf,
        problem: Problem,
    },
}
