//! One JWK set parsed into keys that know what they may verify: the part of key handling that
//! needs no network, apart from the cache that fetches and refreshes (`jwks.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::AlgorithmFamily;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use serde::Deserialize;

use crate::Algorithm;

/// A key from the JWKS, with what it may verify.
///
/// jsonwebtoken parses the JWK into a [`DecodingKey`]; it is silent on two things a resource
/// server must respect, so they are checked here: the JWK's `use` (an encryption key must never
/// verify a signature) and, for EC keys, that the curve is the one the algorithm names.
pub struct VerifyingKey {
    pub kid: String,
    /// Why this key can never verify a token signature, if it cannot (e.g. `use: enc`).
    unusable: Option<String>,
    /// The JWK's own `alg`, which then is the only algorithm it verifies.
    alg: Option<Algorithm>,
    /// The algorithms of our allow-list this key's type and curve fit.
    fits: Vec<Algorithm>,
    key: Option<DecodingKey>,
}

impl VerifyingKey {
    /// Whether this key can verify any token at all (an `enc` key, say, never can).
    pub fn is_usable(&self) -> bool {
        self.unusable.is_none()
    }

    /// The decoding key for `alg`, or why this key does not verify `alg`.
    pub fn for_alg(&self, alg: Algorithm) -> Result<&DecodingKey, String> {
        if let Some(reason) = &self.unusable {
            return Err(reason.clone());
        }
        if let Some(own) = self.alg
            && own != alg
        {
            return Err(format!("key is for {} only", own.name()));
        }
        match &self.key {
            Some(key) if self.fits.contains(&alg) => Ok(key),
            _ => Err(format!("key type does not match {}", alg.name())),
        }
    }
}

/// Parses a JWKS document into keys usable for the `allowed` algorithms. Malformed entries are
/// skipped (logged), never fatal: one odd key must not take the others down.
pub fn parse_jwks(
    document: &[u8],
    allowed: &[Algorithm],
) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct Entries {
        keys: Vec<serde_json::Value>,
    }
    let set: Entries = serde_json::from_slice(document).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for value in set.keys {
        let jwk = match serde_json::from_value::<Jwk>(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::warn!(%error, "skipping a JWKS entry jsonwebtoken cannot read");
                continue;
            }
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::warn!("skipping a JWKS entry without kid");
            continue;
        };
        let key = parse_jwk(kid.clone(), &jwk, allowed);
        keys.insert(kid, Arc::new(key));
    }
    Ok(keys)
}

fn parse_jwk(kid: String, jwk: &Jwk, allowed: &[Algorithm]) -> VerifyingKey {
    let mut key = VerifyingKey {
        kid,
        unusable: None,
        alg: None,
        fits: Vec::new(),
        key: None,
    };
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(other) => {
            let named = match other {
                PublicKeyUse::Encryption => "enc",
                PublicKeyUse::Other(name) => name,
                PublicKeyUse::Signature => unreachable!("matched above"),
            };
            key.unusable = Some(format!("key use is `{named}`, not `sig`"));
            return key;
        }
    }
    if let Some(alg) = jwk.common.key_algorithm {
        match Algorithm::from_name(&alg.to_string()) {
            Some(alg) => key.alg = Some(alg),
            None => {
                key.unusable = Some(format!("key algorithm `{alg}` is not accepted here"));
                return key;
            }
        }
    }
    // Only public-key families: an `oct` JWK would be an HMAC secret, which no allow-list here
    // names, and which a resource server must never hold.
    key.fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => allowed
            .iter()
            .copied()
            .filter(|a| a.jwt().family() == AlgorithmFamily::Rsa)
            .collect(),
        AlgorithmParameters::EllipticCurve(ec) => allowed
            .iter()
            .copied()
            .filter(|a| match a {
                Algorithm::ES256 => ec.curve == EllipticCurve::P256,
                Algorithm::ES384 => ec.curve == EllipticCurve::P384,
                _ => false,
            })
            .collect(),
        _ => Vec::new(),
    };
    key.fits.retain(|a| key.alg.is_none_or(|own| own == *a));
    if key.fits.is_empty() {
        key.unusable = Some("no accepted algorithm fits this key".into());
        return key;
    }
    match DecodingKey::from_jwk(jwk) {
        Ok(decoding) => key.key = Some(decoding),
        Err(error) => key.unusable = Some(format!("key material is invalid: {error}")),
    }
    key
}
