//! HTTPS for the resource server: our certificate, client certificates requested (not required)
//! and verified against our CA, so RFC 8705 binding can be checked per connection.

use std::sync::Arc;

use playbook_certs::der;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;

/// A TLS server configuration from PEM: CA (for client certificates), certificate chain, key.
/// With `require_client_cert` every peer must present a certificate of the CA (the proxy
/// topology, where the only expected peer is the proxy).
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    require_client_cert: bool,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in der::certificates(ca_pem).map_err(|e| format!("CA certificate: {e}"))? {
        roots.add(ca).map_err(|e| format!("CA certificate: {e}"))?;
    }
    // Requested, not required: tokens that are not certificate-bound still work without one,
    // and a certificate that is presented must chain to our CA or the handshake fails.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = match require_client_cert {
        true => verifier,
        false => verifier.allow_unauthenticated(),
    };
    let verifier = verifier
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let chain = der::certificates(cert_pem).map_err(|e| format!("server certificate: {e}"))?;
    let key = der::private_key(key_pem).map_err(|e| format!("server key: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("server certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
