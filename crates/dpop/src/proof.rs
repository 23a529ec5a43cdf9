//! The client's half: a key, and proofs signed with it (RFC 9449 section 4.2).

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use url::Url;

use crate::{PROOF_TYPE, ProofError, ath, htu_of, unix_now};

/// The client's DPoP key (P-256, ES256: what every DPoP server accepts) with its public JWK and
/// RFC 7638 thumbprint, the value a DPoP-bound token carries as `cnf.jkt`. `Debug` never prints
/// the private key.
#[derive(Clone)]
pub struct ProofKey {
    key: EncodingKey,
    jwk: Jwk,
    thumbprint: String,
}

impl std::fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProofKey(jkt {})", self.thumbprint)
    }
}

/// The claims of one proof. [`ProofClaims::new`] makes them right; the attack lab bends them
/// (an old `iat`, another URL) to show each check refusing.
#[derive(Debug, Clone, Serialize)]
pub struct ProofClaims {
    /// Unique per proof, so a server can refuse a proof seen before.
    pub jti: String,
    /// The request's method.
    pub htm: String,
    /// The request's URL without query and fragment.
    pub htu: String,
    pub iat: i64,
    /// The access token's hash, on requests that carry one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    /// The server's nonce, once it asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl ProofClaims {
    /// A fresh proof's claims for `htm url`, carrying `access_token`'s hash when there is one.
    pub fn new(htm: &str, url: &Url, access_token: Option<&str>, nonce: Option<&str>) -> Self {
        Self {
            jti: uuid::Uuid::new_v4().to_string(),
            htm: htm.to_owned(),
            htu: htu_of(url),
            iat: unix_now(),
            ath: access_token.map(ath),
            nonce: nonce.map(str::to_owned),
        }
    }
}

impl ProofKey {
    /// The key of a PKCS#8 PEM (P-256), as `playbook_certs` makes and keeps it.
    pub fn from_pem(pem: &str) -> Result<Self, ProofError> {
        let unusable = |why: String| ProofError::KeyUnusable(why);
        let der = playbook_certs::der::private_key(pem).map_err(unusable)?;
        let key = EncodingKey::from_ec_der(der.secret_der());
        let mut jwk =
            Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|e| unusable(e.to_string()))?;
        // The proof's `jwk` carries the key and nothing else a verifier could trip on.
        jwk.common = Default::default();
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| unusable(e.to_string()))?;
        Ok(Self {
            key,
            jwk,
            thumbprint,
        })
    }

    /// A key made for the occasion (the lab's thief, the tests).
    pub fn generate() -> Result<Self, ProofError> {
        let pem = playbook_certs::signing_key_pem()
            .map_err(|e| ProofError::KeyUnusable(e.to_string()))?;
        Self::from_pem(&pem)
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key: what `cnf.jkt` names.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The public key as the proofs carry it.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A fresh proof for `htm url`, with `ath` when an access token goes with it and the
    /// server's `nonce` when it asked for one.
    pub fn proof(
        &self,
        htm: &str,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, ProofError> {
        self.sign(&ProofClaims::new(htm, url, access_token, nonce))
    }

    /// A proof with exactly these claims (any serializable claims: the tests and the lab bend
    /// them).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, ProofError> {
        let header = Header {
            typ: Some(PROOF_TYPE.into()),
            jwk: Some(self.jwk.clone()),
            ..Header::new(Algorithm::ES256)
        };
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| ProofError::KeyUnusable(e.to_string()))
    }
}
