//! One JWK set parsed into keys that know what they may verify: the part of key handling that
//! needs no network, apart from the cache that fetches and refreshes (`jwks.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::AlgorithmFamily;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use serde::Deserialize;

use crate::Algorithm;

/// A key from the JWKS, with what it may verify.
///
/// jsonwebtoken reads the JWK; it is silent on two things a resource server must respect, so
/// they are checked here: the JWK's `use` (an encryption key must never verify a signature) and,
/// for EC keys, that the curve is the one the algorithm names.
///
/// The key material is parsed into aws-lc-rs keys once, one per algorithm it may verify, when
/// the JWKS is loaded. jsonwebtoken's `DecodingKey` keeps an RSA key as its modulus and exponent
/// and builds the aws-lc key again at every verification, which cost every token not seen
/// before ~2 µs (docs/benchmarks.md, "A token not seen before").
pub struct VerifyingKey {
    pub kid: String,
    /// Why this key can never verify a token signature, if it cannot (e.g. `use: enc`).
    unusable: Option<String>,
    /// The JWK's own `alg`, which then is the only algorithm it verifies.
    alg: Option<Algorithm>,
    /// The parsed key for each algorithm of our allow-list this key's type and curve fit.
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl VerifyingKey {
    /// Whether this key can verify any token at all (an `enc` key, say, never can).
    pub fn is_usable(&self) -> bool {
        self.unusable.is_none()
    }

    /// The parsed key for `alg`, or why this key does not verify `alg`.
    pub fn for_alg(&self, alg: Algorithm) -> Result<&ParsedPublicKey, String> {
        if let Some(reason) = &self.unusable {
            return Err(reason.clone());
        }
        if let Some(own) = self.alg
            && own != alg
        {
            return Err(format!("key is for {} only", own.name()));
        }
        (self.verifiers.iter())
            .find(|(fits, _)| *fits == alg)
            .map(|(_, key)| key)
            .ok_or_else(|| format!("key type does not match {}", alg.name()))
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
        verifiers: Vec::new(),
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
    let fits: Vec<Algorithm> = match &jwk.algorithm {
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
    let fits = fits
        .into_iter()
        .filter(|a| key.alg.is_none_or(|own| own == *a));
    for alg in fits {
        match parsed(&jwk.algorithm, alg) {
            Ok(parsed) => key.verifiers.push((alg, parsed)),
            Err(error) => {
                key.unusable = Some(format!("key material is invalid: {error}"));
                key.verifiers.clear();
                return key;
            }
        }
    }
    if key.verifiers.is_empty() {
        key.unusable = Some("no accepted algorithm fits this key".into());
    }
    key
}

/// The aws-lc-rs key verifying `alg` with these JWK parameters (RFC 7518 section 6).
fn parsed(params: &AlgorithmParameters, alg: Algorithm) -> Result<ParsedPublicKey, String> {
    let bytes = |b64: &str| URL_SAFE_NO_PAD.decode(b64).map_err(|e| e.to_string());
    match params {
        AlgorithmParameters::RSA(rsa) => {
            let scheme: &'static RsaParameters = match alg {
                Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                Algorithm::ES256 | Algorithm::ES384 => return Err("not an RSA algorithm".into()),
            };
            RsaPublicKeyComponents {
                n: bytes(&rsa.n)?,
                e: bytes(&rsa.e)?,
            }
            .to_parsed_public_key(scheme)
            .map_err(|e| e.to_string())
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let scheme = match alg {
                Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return Err("not an EC algorithm".into()),
            };
            // SEC 1 uncompressed point: 0x04, then x and y.
            let mut point = vec![0x04];
            point.extend(bytes(&ec.x)?);
            point.extend(bytes(&ec.y)?);
            ParsedPublicKey::new(scheme, point).map_err(|e| e.to_string())
        }
        _ => Err("not a public-key JWK".into()),
    }
}
