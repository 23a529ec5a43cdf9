//! HTTPS clients that trust exactly the playbook's CA, and nothing else.

use crate::ProviderError;

/// A client that trusts only `ca_pem`: no system roots, no way to skip verification.
pub fn https_client(ca_pem: &str) -> Result<reqwest::Client, ProviderError> {
    builder(ca_pem)?
        .build()
        .map_err(|e| ProviderError::Tls(e.to_string()))
}

/// Like [`https_client`], also presenting a client certificate (`identity_pem`: cert then key).
pub fn https_client_with_identity(
    ca_pem: &str,
    identity_pem: &[u8],
) -> Result<reqwest::Client, ProviderError> {
    let identity = reqwest::Identity::from_pem(identity_pem)
        .map_err(|e| ProviderError::Tls(format!("client certificate: {e}")))?;
    builder(ca_pem)?
        .identity(identity)
        .build()
        .map_err(|e| ProviderError::Tls(e.to_string()))
}

fn builder(ca_pem: &str) -> Result<reqwest::ClientBuilder, ProviderError> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| ProviderError::Tls(format!("CA certificate: {e}")))?;
    Ok(reqwest::Client::builder()
        .tls_certs_only([ca])
        .https_only(true)
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30)))
}
