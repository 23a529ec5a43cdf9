//! Deciding whether certificates found on disk can be reused.

use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};

use crate::der::first_certificate as pem_der;

/// Material this close to expiry is reported rather than silently used until it breaks mid-demo.
pub const RENEW_BEFORE: Duration = Duration::days(7);

/// What is wrong with a certificate set on disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0} is missing")]
    Missing(String),
    #[error("{0} is not a readable PEM certificate or key")]
    Unreadable(String),
    #[error("{file} expired on {date}")]
    Expired { file: String, date: String },
    #[error("{file} expires on {date}, in less than 7 days")]
    ExpiresSoon { file: String, date: String },
    #[error("{file} is not signed by the CA in ca.pem ({reason})")]
    NotSignedByCa { file: String, reason: String },
    #[error("{key} does not belong to {cert}")]
    KeyMismatch { cert: String, key: String },
}

/// The expiry of a PEM certificate, or `None` when it cannot be parsed.
fn not_after(cert_pem: &str) -> Option<OffsetDateTime> {
    let der = pem_der(cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(cert.validity().not_after.to_datetime())
}

/// Checks that a certificate is parseable and not about to expire.
pub(crate) fn check_lifetime(file: &str, cert_pem: &str) -> Result<(), Problem> {
    let expiry = not_after(cert_pem).ok_or_else(|| Problem::Unreadable(file.into()))?;
    let now = OffsetDateTime::now_utc();
    let date = expiry.date().to_string();
    if expiry <= now {
        Err(Problem::Expired {
            file: file.into(),
            date,
        })
    } else if expiry - now < RENEW_BEFORE {
        Err(Problem::ExpiresSoon {
            file: file.into(),
            date,
        })
    } else {
        Ok(())
    }
}

/// Checks that `leaf_pem` chains to `ca_pem` for the given usage, the way a TLS peer would.
pub(crate) fn check_chain(
    file: &str,
    leaf_pem: &str,
    ca_pem: &str,
    client: bool,
) -> Result<(), Problem> {
    verify_chain(&pem_der(leaf_pem), ca_pem, client).map_err(|reason| match reason {
        ChainError::Ca => Problem::Unreadable("ca.pem".into()),
        ChainError::Leaf => Problem::Unreadable(file.into()),
        ChainError::NotSigned(reason) => Problem::NotSignedByCa {
            file: file.into(),
            reason,
        },
    })
}

pub(crate) enum ChainError {
    Ca,
    Leaf,
    NotSigned(String),
}

/// Whether the certificate `leaf_der` chains to the CA in `ca_pem`, valid now, for TLS client
/// (`client`) or server authentication.
pub(crate) fn verify_chain(leaf_der: &[u8], ca_pem: &str, client: bool) -> Result<(), ChainError> {
    let ca_der = CertificateDer::from(pem_der(ca_pem));
    let anchor = anchor_from_trusted_cert(&ca_der).map_err(|_| ChainError::Ca)?;
    let leaf_der = CertificateDer::from(leaf_der);
    let leaf = EndEntityCert::try_from(&leaf_der).map_err(|_| ChainError::Leaf)?;
    let usage = if client {
        KeyUsage::client_auth()
    } else {
        KeyUsage::server_auth()
    };
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::now(),
        usage,
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| ChainError::NotSigned(format!("{e:?}")))
}

/// Checks that the private key in `key_pem` is the one certified in `cert_pem`.
pub(crate) fn check_key(
    cert_file: &str,
    cert_pem: &str,
    key_file: &str,
    key_pem: &str,
) -> Result<(), Problem> {
    let key =
        rcgen::KeyPair::from_pem(key_pem).map_err(|_| Problem::Unreadable(key_file.into()))?;
    let der = pem_der(cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| Problem::Unreadable(cert_file.into()))?;
    let certified = cert.public_key().subject_public_key.data.as_ref();
    if certified == rcgen::PublicKeyData::der_bytes(&key) {
        Ok(())
    } else {
        Err(Problem::KeyMismatch {
            cert: cert_file.into(),
            key: key_file.into(),
        })
    }
}
