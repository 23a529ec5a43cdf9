//! PEM read into the DER types rustls takes, for the parties that build TLS configurations
//! themselves (the resource server, and the client's handshake probe).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate of a PEM bundle, in order (a chain: leaf first).
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certificates.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certificates)
}

/// The DER of the first certificate of a PEM bundle (empty if there is none): for checks that
/// then report a certificate they cannot parse.
pub(crate) fn first_certificate(pem: &str) -> Vec<u8> {
    certificates(pem)
        .ok()
        .and_then(|all| all.into_iter().next())
        .map(|der| der.to_vec())
        .unwrap_or_default()
}

/// The private key of a PEM key file.
pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())
}
