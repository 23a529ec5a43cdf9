//! The resource server's half: one proof checked in the order of RFC 9449 section 4.3. What
//! needs the access token's binding (`cnf.jkt`), the replay cache or the nonce is the caller's,
//! with the [`VerifiedProof`] this returns.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use serde::Deserialize;
use url::Url;

use crate::{PROOF_TYPE, ath};

/// Proofs are a few hundred bytes (an RSA key makes them ~1.5 KiB); anything far larger is not
/// one, and is refused before any decoding.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// A `jti` is a UUID or similar; a long one would only cost the replay cache.
const MAX_JTI_BYTES: usize = 256;
/// The largest `iat` accepted as a number of seconds (2^53: exact in a JSON number).
const MAX_SAFE_SECONDS: f64 = 9_007_199_254_740_992.0;

/// The asymmetric algorithms a proof may be signed with (section 4.3, check 5): never `none`,
/// never an HMAC, whose key would have to be shared with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProofAlgorithm {
    ES256,
    ES384,
    EdDSA,
    PS256,
    PS384,
    PS512,
    RS256,
    RS384,
    RS512,
}

impl ProofAlgorithm {
    pub const ALL: [Self; 9] = [
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
    ];

    /// The JOSE name, as `alg` and the `algs` of a challenge spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
            Self::PS256 => A::PS256,
            Self::PS384 => A::PS384,
            Self::PS512 => A::PS512,
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
        }
    }

    /// Whether `jwk` is a key of this algorithm's type and curve. jsonwebtoken would make an
    /// HMAC key of an `oct` JWK and leave a P-384 key to fail at ES256 verification; checked here
    /// so each refusal names its reason.
    fn fits(self, jwk: &Jwk) -> bool {
        match (&jwk.algorithm, self) {
            (AlgorithmParameters::EllipticCurve(ec), Self::ES256) => {
                ec.curve == EllipticCurve::P256
            }
            (AlgorithmParameters::EllipticCurve(ec), Self::ES384) => {
                ec.curve == EllipticCurve::P384
            }
            (AlgorithmParameters::OctetKeyPair(okp), Self::EdDSA) => {
                okp.curve == EllipticCurve::Ed25519
            }
            (AlgorithmParameters::RSA(_), algorithm) => matches!(
                algorithm,
                Self::PS256 | Self::PS384 | Self::PS512 | Self::RS256 | Self::RS384 | Self::RS512
            ),
            _ => false,
        }
    }
}

/// What a server accepts in a proof.
#[derive(Debug, Clone)]
pub struct ProofRules {
    /// The allow-list of signing algorithms, advertised as `algs` in challenges and as
    /// `dpop_signing_alg_values_supported` in the resource's metadata.
    pub algorithms: Vec<ProofAlgorithm>,
    /// How old a proof's `iat` may be. Short: a proof is made for one request, just before it.
    pub max_age: Duration,
    /// How far ahead of this server's clock `iat` may be (clock skew).
    pub max_ahead: Duration,
}

impl Default for ProofRules {
    /// Every asymmetric algorithm jsonwebtoken verifies; `iat` within the last 60 s, or 5 s
    /// ahead: Keycloak's own window is 25 s behind to 15 s ahead, and a proof is made for one
    /// request, just before it.
    fn default() -> Self {
        Self {
            algorithms: ProofAlgorithm::ALL.to_vec(),
            max_age: Duration::from_secs(60),
            max_ahead: Duration::from_secs(5),
        }
    }
}

/// A proof that passed every check this crate can make alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key: it must equal the token's `cnf.jkt`.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    pub alg: ProofAlgorithm,
    /// The server nonce the proof carries, if any.
    pub nonce: Option<String>,
}

/// Why a proof was refused. Each is `invalid_dpop_proof` on the wire; [`ProofError::summary`]
/// is the fixed text a challenge may carry (never text from the proof).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("proof is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("proof typ is not dpop+jwt")]
    Type,
    #[error("proof alg `{0}` is not accepted")]
    Algorithm(String),
    #[error("proof header has no jwk")]
    MissingKey,
    #[error("proof jwk holds private key material")]
    PrivateKey,
    #[error("proof jwk is not a usable public key for its alg: {0}")]
    KeyUnusable(String),
    #[error("proof signature does not verify with its jwk")]
    Signature,
    #[error("proof claim `{0}` is missing or malformed")]
    Claim(&'static str),
    #[error("proof htm `{0}` is not the request's method")]
    Method(String),
    #[error("proof htu `{0}` is not the request's URL")]
    Url(String),
    #[error("proof iat is {0} s old")]
    Stale(i64),
    #[error("proof iat is {0} s in the future")]
    Future(i64),
    #[error("proof ath is missing or not the hash of the access token presented")]
    TokenHash,
}

impl ProofError {
    /// A fixed description for the challenge: the detailed message can carry attacker-chosen
    /// values (a method, a URL).
    pub fn summary(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "proof too large",
            Self::Malformed(_) => "malformed proof",
            Self::Type => "proof typ must be dpop+jwt",
            Self::Algorithm(_) => "proof algorithm not accepted",
            Self::MissingKey | Self::PrivateKey | Self::KeyUnusable(_) => {
                "proof jwk is not an accepted public key"
            }
            Self::Signature => "invalid proof signature",
            Self::Claim(_) => "missing or malformed proof claim",
            Self::Method(_) => "proof is for another method",
            Self::Url(_) => "proof is for another URL",
            Self::Stale(_) | Self::Future(_) => "proof iat outside the accepted window",
            Self::TokenHash => "proof ath does not match the access token",
        }
    }
}

/// JWK members that only a private (or symmetric) key has (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<f64>,
    ath: Option<String>,
    nonce: Option<String>,
}

impl ProofRules {
    /// How long a `jti` must be remembered: as long as a proof carrying it can be accepted.
    pub fn replay_window(&self) -> Duration {
        self.max_age + self.max_ahead
    }

    /// The `algs` of a challenge: the allow-list, space-separated.
    pub fn algs(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        names.join(" ")
    }

    /// Checks `proof` for the request `htm url` (section 4.3, checks 2 to 9, 11 and 12's
    /// `ath`), with `access_token` the token it accompanies (none at a token endpoint).
    pub fn verify(
        &self,
        proof: &str,
        htm: &str,
        url: &Url,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<VerifiedProof, ProofError> {
        if proof.len() > MAX_PROOF_BYTES {
            return Err(ProofError::TooLarge(proof.len()));
        }
        let mut segments = proof.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(ProofError::Malformed("not three segments"));
        };
        let json = |segment: &str, what| {
            let bytes = URL_SAFE_NO_PAD
                .decode(segment)
                .map_err(|_| ProofError::Malformed(what))?;
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|_| ProofError::Malformed(what))
        };
        let header = json(header_b64, "header is not base64url JSON")?;
        if header.get("typ").and_then(|t| t.as_str()) != Some(PROOF_TYPE) {
            return Err(ProofError::Type);
        }
        let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        let alg = ProofAlgorithm::from_name(alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| ProofError::Algorithm(alg.chars().take(16).collect()))?;
        if header.get("crit").is_some() {
            return Err(ProofError::Malformed("crit is not understood"));
        }
        let jwk = header.get("jwk").ok_or(ProofError::MissingKey)?;
        let members = jwk.as_object().ok_or(ProofError::MissingKey)?;
        if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
            return Err(ProofError::PrivateKey);
        }
        let jwk: Jwk = serde_json::from_value(jwk.clone())
            .map_err(|e| ProofError::KeyUnusable(e.to_string()))?;
        if !alg.fits(&jwk) {
            return Err(ProofError::KeyUnusable(format!(
                "not a key for {}",
                alg.name()
            )));
        }
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| ProofError::KeyUnusable(e.to_string()))?;
        let signed = &proof[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(signature_b64, signed.as_bytes(), &key, alg.jwt()) {
            Ok(true) => {}
            _ => return Err(ProofError::Signature),
        }
        let claims: Claims = serde_json::from_value(json(payload_b64, "payload is not JSON")?)
            .map_err(|_| ProofError::Malformed("claims of the wrong type"))?;
        let jti = (claims.jti)
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES)
            .ok_or(ProofError::Claim("jti"))?;
        let htm_claimed = claims.htm.ok_or(ProofError::Claim("htm"))?;
        if htm_claimed != htm {
            return Err(ProofError::Method(htm_claimed));
        }
        let htu_claimed = claims.htu.ok_or(ProofError::Claim("htu"))?;
        match Url::parse(&htu_claimed) {
            Ok(claimed) if htu_of(&claimed) == htu_of(url) => {}
            _ => return Err(ProofError::Url(htu_claimed)),
        }
        // A NumericDate a clock can hold: anything else (negative, huge, not finite) would
        // only overflow the window's arithmetic.
        let iat = (claims.iat)
            .filter(|iat| iat.is_finite() && (0.0..=MAX_SAFE_SECONDS).contains(iat))
            .ok_or(ProofError::Claim("iat"))? as i64;
        if now - iat > self.max_age.as_secs() as i64 {
            return Err(ProofError::Stale(now - iat));
        }
        if iat - now > self.max_ahead.as_secs() as i64 {
            return Err(ProofError::Future(iat - now));
        }
        if let Some(token) = access_token
            && claims.ath.as_deref() != Some(ath(token).as_str())
        {
            return Err(ProofError::TokenHash);
        }
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| ProofError::KeyUnusable(e.to_string()))?;
        Ok(VerifiedProof {
            jkt,
            jti,
            iat,
            alg,
            nonce: claims.nonce,
        })
    }
}

/// A URL as `htu` compares it (section 4.3, check 9): scheme, host, port and path, with what the
/// url crate normalises when it parses (scheme and host case, the default port, dot segments),
/// query and fragment left out. Percent-encoding is compared as sent (`%75` is not `u`): that
/// can only refuse an oddly encoded proof, never accept a wrong one.
pub fn htu_of(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProofClaims, ProofKey, unix_now};

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn htu_ignores_query_fragment_case_and_default_port() {
        let base = htu_of(&url("https://localhost:8443/api/users"));
        for same in [
            "https://localhost:8443/api/users?page=2",
            "https://localhost:8443/api/users#top",
            "HTTPS://LocalHost:8443/api/users",
            "https://localhost:8443/api/./users",
        ] {
            assert_eq!(htu_of(&url(same)), base, "{same}");
        }
        assert_eq!(
            htu_of(&url("https://example.com:443/a")),
            htu_of(&url("https://example.com/a"))
        );
        for other in [
            "http://localhost:8443/api/users",
            "https://localhost:9443/api/users",
            "https://localhost:8443/api/user",
            "https://127.0.0.1:8443/api/users",
        ] {
            assert_ne!(htu_of(&url(other)), base, "{other}");
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s_own_example() {
        // RFC 7638 section 3.1: this RSA key's SHA-256 thumbprint.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_fresh_proof_verifies_and_names_its_key() {
        let key = ProofKey::generate().unwrap();
        let api = url("https://localhost:8443/api/users");
        let proof = key.proof("GET", &api, Some("tok"), None).unwrap();
        let checked = ProofRules::default()
            .verify(&proof, "GET", &api, Some("tok"), unix_now())
            .unwrap();
        assert_eq!(checked.jkt, key.thumbprint());
        assert_eq!(checked.alg, ProofAlgorithm::ES256);
    }

    #[test]
    fn each_bent_claim_is_refused_for_its_own_reason() {
        let key = ProofKey::generate().unwrap();
        let api = url("https://localhost:8443/api/users");
        let rules = ProofRules::default();
        let now = unix_now();
        let check = |claims: ProofClaims| {
            rules.verify(&key.sign(&claims).unwrap(), "GET", &api, Some("tok"), now)
        };
        let fresh = || ProofClaims::new("GET", &api, Some("tok"), None);
        assert!(matches!(
            check(ProofClaims {
                htm: "POST".into(),
                ..fresh()
            }),
            Err(ProofError::Method(_))
        ));
        assert!(matches!(
            check(ProofClaims {
                htu: "https://localhost:8443/api/user".into(),
                ..fresh()
            }),
            Err(ProofError::Url(_))
        ));
        assert!(matches!(
            check(ProofClaims {
                iat: now - 3600,
                ..fresh()
            }),
            Err(ProofError::Stale(3600))
        ));
        assert!(matches!(
            check(ProofClaims {
                iat: now + 60,
                ..fresh()
            }),
            Err(ProofError::Future(60))
        ));
        assert_eq!(
            check(ProofClaims {
                ath: Some(ath("another token")),
                ..fresh()
            }),
            Err(ProofError::TokenHash)
        );
        assert_eq!(
            check(ProofClaims {
                ath: None,
                ..fresh()
            }),
            Err(ProofError::TokenHash)
        );
        assert_eq!(
            check(ProofClaims {
                jti: String::new(),
                ..fresh()
            }),
            Err(ProofError::Claim("jti"))
        );
        // An iat no clock holds is malformed, not a panic in the window's arithmetic.
        let with_iat = |iat: serde_json::Value| {
            let mut claims = serde_json::to_value(fresh()).unwrap();
            claims["iat"] = iat;
            rules.verify(&key.sign(&claims).unwrap(), "GET", &api, Some("tok"), now)
        };
        for iat in [(-1e300).into(), 1e300.into(), (-5).into()] {
            assert_eq!(with_iat(iat), Err(ProofError::Claim("iat")));
        }
    }

    /// A header rewritten as `edit` says, re-signed with `key` so only the header is wrong.
    fn with_header(key: &ProofKey, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let api = url("https://localhost:8443/api/users");
        let proof = key.proof("GET", &api, None, None).unwrap();
        let mut parts = proof.split('.');
        let mut header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                .unwrap();
        edit(&mut header);
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        format!(
            "{header}.{}.{}",
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    }

    #[test]
    fn a_header_that_is_not_a_proofs_is_refused() {
        let key = ProofKey::generate().unwrap();
        let api = url("https://localhost:8443/api/users");
        let check =
            |proof: &str| ProofRules::default().verify(proof, "GET", &api, None, unix_now());
        let jwt = with_header(&key, |h| h["typ"] = "JWT".into());
        assert_eq!(check(&jwt), Err(ProofError::Type));
        let none = with_header(&key, |h| h["alg"] = "none".into());
        assert!(matches!(check(&none), Err(ProofError::Algorithm(_))));
        let hmac = with_header(&key, |h| h["alg"] = "HS256".into());
        assert!(matches!(check(&hmac), Err(ProofError::Algorithm(_))));
        let private = with_header(&key, |h| h["jwk"]["d"] = "c2VjcmV0".into());
        assert_eq!(check(&private), Err(ProofError::PrivateKey));
        let keyless = with_header(&key, |h| {
            h.as_object_mut().unwrap().remove("jwk");
        });
        assert_eq!(check(&keyless), Err(ProofError::MissingKey));
        let other = ProofKey::generate().unwrap();
        let swapped = with_header(&key, |h| {
            h["jwk"] = serde_json::to_value(other.public_jwk()).unwrap()
        });
        assert_eq!(check(&swapped), Err(ProofError::Signature));
        let rs = with_header(&key, |h| h["alg"] = "RS256".into());
        assert!(matches!(check(&rs), Err(ProofError::KeyUnusable(_))));
        let only_rsa = ProofRules {
            algorithms: vec![ProofAlgorithm::PS256],
            ..ProofRules::default()
        };
        let proof = key.proof("GET", &api, None, None).unwrap();
        assert!(matches!(
            only_rsa.verify(&proof, "GET", &api, None, unix_now()),
            Err(ProofError::Algorithm(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_proofs_are_refused_never_panic(proof in ".{0,300}", header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let api = url("https://localhost:8443/api/users");
            let rules = ProofRules::default();
            proptest::prop_assert!(rules.verify(&proof, "GET", &api, None, 0).is_err());
            let forged = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(&header));
            proptest::prop_assert!(rules.verify(&forged, "GET", &api, None, 0).is_err());
        }
    }
}
