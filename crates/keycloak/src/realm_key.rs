//! RSA signing keys made here rather than by Keycloak, so that creating a realm costs Keycloak
//! half as much: one key for many realms of the bundled one, or one per workload platform.
//!
//! A new realm gets two RSA-2048 keys that Keycloak generates for it (one to sign, one to
//! encrypt): measured on a 2-core machine, that is ~0.4 s of the ~0.85 s of CPU a bare realm
//! costs. The lab and the tests create a realm per scenario, dozens per run, so they make one key
//! per run here and import it into each realm as Keycloak's `rsa` key provider (a realm renamed
//! from a spare keeps the key of the warm-up that made it, see `spare.rs`). A shared key gives
//! nothing away between realms: each token names its issuer, and a resource server accepts only
//! its own issuer's. The tutorial's one realm keeps the keys Keycloak generates for it. A
//! workload platform's realm gets a key of its own (`RealmTemplate::platform`): each stands
//! for a separate authority.

use base64::Engine;
use serde_json::{Value, json};

use crate::Secret;

/// An RSA-2048 private key (PKCS #8, PEM) that realms sign their tokens with.
#[derive(Debug)]
pub struct RealmKey {
    pkcs8_pem: Secret,
}

impl RealmKey {
    /// A fresh key; ~0.1–0.2 s of CPU, paid once instead of once per realm.
    pub fn generate() -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let der = pair.as_der().expect("an RSA key as PKCS #8");
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
            .collect();
        Self {
            pkcs8_pem: Secret::new(format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                lines.join("\n")
            )),
        }
    }

    /// Keycloak's `rsa` key provider named `name`, this key signing with `algorithm`: imported,
    /// so that Keycloak makes no key of its own for it.
    pub(crate) fn provider(&self, name: &str, algorithm: &str) -> Value {
        json!({ "name": name, "providerId": "rsa", "config": {
            "priority": ["100"], "algorithm": [algorithm], "keyUse": ["SIG"],
            "privateKey": [self.pkcs8_pem.expose()] } })
    }

    /// The realm's key providers (`components` of a realm representation): this key to sign
    /// with RS256, and the HMAC and AES keys Keycloak makes cheaply for its own cookies and
    /// internal tokens. With key providers given, Keycloak generates no RSA key of its own.
    pub(crate) fn key_providers(&self) -> Value {
        let provider = |name: &str, id: &str, config: Value| json!({ "name": name, "providerId": id, "subComponents": {}, "config": config });
        let mut signing = self.provider("playbook-rsa", "RS256");
        signing["subComponents"] = json!({});
        json!([
            signing,
            provider(
                "hmac-generated-hs512",
                "hmac-generated",
                json!({ "priority": ["100"], "algorithm": ["HS512"] })
            ),
            provider(
                "aes-generated",
                "aes-generated",
                json!({ "priority": ["100"] })
            ),
        ])
    }
}
