//! Making certificates in memory: the CA and the leaves it signs.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{CertsError, SERVER_NAMES};

const CA_LIFETIME: Duration = Duration::days(365);
const LEAF_LIFETIME: Duration = Duration::days(90);
/// Backdating absorbs small clock differences between this machine and a container.
const BACKDATE: Duration = Duration::minutes(5);

/// A certificate authority that exists only to sign the playbook's leaves.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A fresh CA with a new P-256 key.
    pub fn generate() -> Result<Self, CertsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name("oauth2-playbook local CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, CA_LIFETIME);
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// An existing CA, e.g. to sign one more client certificate with the CA Keycloak trusts.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertsError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
        })
    }

    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Signs a new leaf with its own fresh key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf, CertsError> {
        let mut params = CertificateParams::new(spec.names.clone())?;
        params.distinguished_name = name(&spec.common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = spec.usages.clone();
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, spec.lifetime);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What a leaf is for: the names it carries and its extended key usage.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    common_name: String,
    names: Vec<String>,
    usages: Vec<ExtendedKeyUsagePurpose>,
    lifetime: Duration,
}

impl LeafSpec {
    /// A TLS server certificate valid for [`SERVER_NAMES`].
    pub fn server(common_name: &str) -> Self {
        Self {
            common_name: common_name.to_owned(),
            names: SERVER_NAMES.iter().map(|s| s.to_string()).collect(),
            usages: vec![ExtendedKeyUsagePurpose::ServerAuth],
            lifetime: LEAF_LIFETIME,
        }
    }

    /// A TLS client certificate; Keycloak identifies the OAuth client by `common_name`.
    pub fn client(common_name: &str) -> Self {
        Self {
            common_name: common_name.to_owned(),
            names: vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "oauth2-playbook.dev".into(),
            ],
            usages: vec![ExtendedKeyUsagePurpose::ClientAuth],
            lifetime: LEAF_LIFETIME,
        }
    }

    /// A server that is also a TLS client of another server (the resource server introspecting
    /// tokens at Keycloak).
    pub fn also_client(mut self) -> Self {
        self.usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        self
    }

    /// The same leaf, valid for `lifetime` from now instead of the usual 90 days (a short-lived
    /// certificate, or one about to expire, to see what notices it).
    pub fn valid_for(mut self, lifetime: std::time::Duration) -> Self {
        self.lifetime = Duration::try_from(lifetime).unwrap_or(LEAF_LIFETIME);
        self
    }
}

/// A signed certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Leaf {
    cert_pem: String,
    key_pem: String,
}

impl Leaf {
    pub(crate) fn from_pem(cert_pem: String, key_pem: String) -> Self {
        Self { cert_pem, key_pem }
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A certificate and its key read back from one PEM ([`Self::identity_pem`]'s form);
    /// `None` unless it holds exactly a certificate and a key.
    pub fn from_identity_pem(pem: &str) -> Option<Self> {
        let start = pem.find("-----BEGIN CERTIFICATE-----")?;
        let end = pem.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
        let key_start = pem.find("-----BEGIN PRIVATE KEY-----")?;
        let cert = format!("{}\n", &pem[start..end]);
        let key = pem[key_start..].to_owned();
        (key_start >= end && pem[end..].matches("BEGIN CERTIFICATE").count() == 0)
            .then(|| Self::from_pem(cert, key))
    }

    /// Certificate then key in one buffer: the form TLS client libraries (reqwest) take.
    pub fn identity_pem(&self) -> Vec<u8> {
        format!("{}{}", self.cert_pem, self.key_pem).into_bytes()
    }

    /// This certificate with a new private key: all a thief who copied only the certificate
    /// (which is public) can present. The TLS handshake signs with the key the certificate
    /// names, so no peer accepts it; the attack lab shows that.
    pub fn with_stranger_key(&self) -> Result<Self, CertsError> {
        Ok(Self::from_pem(
            self.cert_pem.clone(),
            crate::signing_key_pem()?,
        ))
    }

    /// The DER of the certificate.
    pub fn cert_der(&self) -> Vec<u8> {
        crate::der::first_certificate(&self.cert_pem)
    }

    /// The subject, e.g. `CN=mtls-client-dev.local`: what Keycloak matches against a client's
    /// `x509.subjectdn`. Empty if the certificate cannot be parsed.
    pub fn subject(&self) -> String {
        let der = self.cert_der();
        x509_parser::parse_x509_certificate(&der)
            .map(|(_, cert)| cert.subject().to_string())
            .unwrap_or_default()
    }

    /// `base64url(SHA-256(DER))`: the RFC 8705 `x5t#S256` a bound token carries in `cnf`.
    pub fn thumbprint_s256(&self) -> String {
        thumbprint_s256(&self.cert_der())
    }
}

impl std::fmt::Debug for Leaf {
    /// Never prints the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("thumbprint_s256", &self.thumbprint_s256())
            .finish_non_exhaustive()
    }
}

/// `base64url(SHA-256(der))` without padding, as RFC 8705 section 3.1 defines `x5t#S256`.
pub fn thumbprint_s256(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}
