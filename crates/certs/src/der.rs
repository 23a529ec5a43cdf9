//! PEM read into the DER types rustls takes, for the parties that build TLS configurations
//! themselves (the resource server, and the client's handshake probe), and what a certificate
//! may be used for.

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

/// Whether the first certificate of a PEM bundle may authenticate a TLS client (no extended
/// key usage at all, or one that lists client authentication).
pub fn allows_client_auth(pem: &str) -> bool {
    let der = first_certificate(pem);
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    match cert.extended_key_usage() {
        Ok(Some(usage)) => usage.value.client_auth || usage.value.any,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// A certificate as a reverse proxy forwards it in RFC 9440's `Client-Cert` header: an RFC 8941
/// byte sequence, `:base64(DER):`.
pub fn to_forwarded(der: &[u8]) -> String {
    use base64::Engine;
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// The DER of an RFC 9440 `Client-Cert` value; `None` for anything that is not one byte
/// sequence (PEM, bare base64, URL encoding, a list, an empty one).
pub fn from_forwarded(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let inner = value.trim_ascii().strip_prefix(b":")?.strip_suffix(b":")?;
    base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()
        .filter(|der| !der.is_empty())
}

/// Checks a client certificate that arrived as DER from elsewhere than a TLS handshake (a
/// reverse proxy's forwarded header): exactly one certificate, nothing after it (not a chain),
/// signed by the CA in `ca_pem` and valid now for TLS client authentication. The proxy checked
/// it already; checking again means a misconfigured proxy cannot bring in a foreign certificate.
pub fn verify_forwarded_client(der: &[u8], ca_pem: &str) -> Result<(), &'static str> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], _)) => {}
        Ok(_) => return Err("more than one certificate"),
        Err(_) => return Err("not a DER certificate"),
    }
    crate::check::verify_chain(der, ca_pem, true).map_err(|error| match error {
        crate::check::ChainError::Ca => "the CA certificate is unreadable",
        crate::check::ChainError::Leaf => "not a DER certificate",
        crate::check::ChainError::NotSigned(_) => {
            "not a client certificate of the playbook's CA, or not valid now"
        }
    })
}

/// The private key of a PEM key file.
pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use crate::{Authority, LeafSpec};

    #[test]
    fn client_auth_is_read_from_the_extended_key_usage() {
        let ca = Authority::generate().unwrap();
        let server = ca.issue(&LeafSpec::server("s")).unwrap();
        let both = ca.issue(&LeafSpec::server("s").also_client()).unwrap();
        let client = ca.issue(&LeafSpec::client("c")).unwrap();
        assert!(!super::allows_client_auth(server.cert_pem()));
        assert!(super::allows_client_auth(both.cert_pem()));
        assert!(super::allows_client_auth(client.cert_pem()));
        assert!(!super::allows_client_auth("not a certificate"));
    }
}
