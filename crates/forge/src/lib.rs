//! Tokens signed with keys that are not the realm's: what an attacker can make, and what the
//! resource server's tests sign with.
//!
//! None of this can produce a token a correct resource server accepts from Keycloak's realm:
//! the keys are generated here, so the realm never published them. That is the point of the
//! attack lab, which shows each forgery refused, and of the tests, which publish these keys in
//! a JWKS of their own.
//!
//! ```
//! use playbook_forge::{SigningKey, unsigned};
//! use serde_json::json;
//!
//! let attacker = SigningKey::generate("attacker");
//! let token = attacker.sign(&json!({ "sub": "me" }));
//! assert_eq!(token.split('.').count(), 3);
//! assert!(unsigned(&json!({ "sub": "me" })).ends_with('.'));
//! ```

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// An RSA-2048 key with a kid, able to publish itself as a JWK and sign compact JWS.
pub struct SigningKey {
    pub kid: String,
    pair: KeyPair,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        }
    }

    /// The public key as a JWK with the given `use` (`sig`, or `enc` to test its rejection).
    pub fn jwk(&self, use_: &str) -> Value {
        self.jwk_as(&self.kid, use_)
    }

    /// The same public key published under another kid.
    pub fn jwk_as(&self, kid: &str, use_: &str) -> Value {
        let public = self.pair.public_key();
        json!({
            "kid": kid, "kty": "RSA", "use": use_,
            "alg": if use_ == "sig" { "RS256" } else { "RSA-OAEP" },
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// The DER of the public key (what an HS256 confusion attack would use as its secret).
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// RS256 with this key's kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid }),
            claims,
        )
    }

    /// Any header; the algorithm named in `header.alg` (RS256/384/512, PS256) is used.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let encoding: &'static dyn signature::RsaEncoding = match header["alg"].as_str() {
            Some("RS384") => &signature::RSA_PKCS1_SHA384,
            Some("RS512") => &signature::RSA_PKCS1_SHA512,
            Some("PS256") => &signature::RSA_PSS_SHA256,
            _ => &signature::RSA_PKCS1_SHA256,
        };
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(encoding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// `alg: none`: a token with an empty signature, which a naive library would take as valid.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64_json(&json!({ "alg": "none", "typ": "JWT" })),
        b64_json(claims)
    )
}

/// HS256 with `secret`: with a published public key as the secret, the key-confusion attack on
/// libraries that let the token choose between RSA and HMAC.
pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// base64url (no padding) of a JSON value: a JWS segment.
pub fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON values serialize"))
}

/// Claims Keycloak would put in the playbook client's token for `issuer`, valid for 5 minutes:
/// what the resource server's tests and benchmarks sign with these keys.
pub fn keycloak_like_claims(issuer: &str) -> Value {
    let now = playbook_keycloak::unix_now();
    json!({
        "iss": issuer, "aud": [playbook_keycloak::RESOURCE_SERVER_CLIENT_ID, "account"],
        "sub": "service-account", "azp": playbook_keycloak::CLIENT_ID,
        "typ": "Bearer", "iat": now, "exp": now + 300,
        "scope": "profile users:read",
        "realm_access": { "roles": [playbook_keycloak::READONLY_ROLE, "default-roles"] },
    })
}
