//! What every HTTPS caller of the playbook shares: a client that trusts exactly the playbook's
//! CA (no system roots, no way to skip verification), the one seam through which every party
//! sends and records an exchange ([`send_recorded`]), and the one-line description of an error
//! chain that tells a user what went wrong.
//!
//! It sits just above the certificates so that the resource server, the client and the Keycloak
//! launcher can each use it without depending on one another.
//!
//! ```
//! // A cause chain as reqwest builds one: the reason is in the innermost cause.
//! #[derive(Debug)]
//! struct Request(std::io::Error);
//! impl std::fmt::Display for Request {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str("error sending request")
//!     }
//! }
//! impl std::error::Error for Request {
//!     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
//!         Some(&self.0)
//!     }
//! }
//! let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
//! assert_eq!(
//!     playbook_https::describe(&Request(refused)),
//!     "error sending request: connection refused"
//! );
//! ```

mod recorded;

pub use recorded::{Answer, send_recorded};

use std::time::Duration;

/// Why an HTTPS client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid TLS material: {0}")]
pub struct TlsMaterialError(String);

/// A server on this machine as every party here reaches it: `https://localhost:<port>/`, the
/// name the local CA's server certificates are issued for.
pub fn local_url(port: u16) -> url::Url {
    url::Url::parse(&format!("https://localhost:{port}/")).expect("a valid URL")
}

/// A client that trusts only `ca_pem`.
pub fn https_client(ca_pem: &str) -> Result<reqwest::Client, TlsMaterialError> {
    builder(ca_pem)?
        .build()
        .map_err(|e| TlsMaterialError(describe(&e)))
}

/// Like [`https_client`], its connections leaving from `source`: the attack lab's intruder on
/// the reverse proxy's own host, connecting from the proxy's address.
pub fn https_client_from(
    ca_pem: &str,
    source: std::net::IpAddr,
) -> Result<reqwest::Client, TlsMaterialError> {
    builder(ca_pem)?
        .local_address(source)
        .build()
        .map_err(|e| TlsMaterialError(describe(&e)))
}

/// Like [`https_client`], also presenting a client certificate (`identity_pem`: cert then key).
pub fn https_client_with_identity(
    ca_pem: &str,
    identity_pem: &[u8],
) -> Result<reqwest::Client, TlsMaterialError> {
    let identity = reqwest::Identity::from_pem(identity_pem)
        .map_err(|e| TlsMaterialError(format!("client certificate: {e}")))?;
    // The reason (a key that does not match the certificate, say) is in the cause chain.
    builder(ca_pem)?
        .identity(identity)
        .build()
        .map_err(|e| TlsMaterialError(describe(&e)))
}

fn builder(ca_pem: &str) -> Result<reqwest::ClientBuilder, TlsMaterialError> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| TlsMaterialError(format!("CA certificate: {e}")))?;
    Ok(reqwest::Client::builder()
        .tls_certs_only([ca])
        .https_only(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30)))
}

/// An error and its causes in one line, each cause once: many errors repeat their source in
/// their own message, and a reqwest error's cause chain is where "connection refused" or
/// "certificate not trusted" actually lives.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A response header as text, when present and readable: what the parties record of an answer
/// (`Content-Type`, `WWW-Authenticate`). A header sent several times (a challenge per scheme)
/// reads as one list, as RFC 9110 section 5.3 allows.
pub(crate) fn header(
    response: &reqwest::Response,
    name: reqwest::header::HeaderName,
) -> Option<String> {
    let values: Vec<&str> = (response.headers().get_all(name).iter())
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}
