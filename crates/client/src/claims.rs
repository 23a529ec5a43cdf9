//! The claims of an access token, read for display and decisions on the client side only.
//!
//! The client does not verify its own tokens (the resource server does): these claims are what
//! Keycloak says it issued, shown to the learner, never used to grant anything.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub azp: Option<String>,
    pub exp: Option<i64>,
    /// When Keycloak issued the token, by its own clock.
    pub iat: Option<i64>,
    #[serde(default)]
    pub aud: Value,
    pub scope: Option<String>,
    #[serde(default)]
    pub realm_access: Value,
    #[serde(default)]
    pub cnf: Value,
    #[serde(default)]
    pub typ: Option<String>,
}

impl Claims {
    /// Decodes the payload of a compact JWT without checking anything.
    pub fn peek(jwt: &str) -> Option<Self> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `aud` as a list, whether Keycloak sent one string or an array.
    pub fn audiences(&self) -> Vec<String> {
        match &self.aud {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The space-separated `scope` as tokens.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    pub fn realm_roles(&self) -> Vec<String> {
        self.realm_access["roles"]
            .as_array()
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The RFC 8705 certificate thumbprint the token is bound to, if any.
    pub fn x5t_s256(&self) -> Option<String> {
        self.cnf["x5t#S256"].as_str().map(String::from)
    }

    /// The RFC 9449 DPoP key thumbprint the token is bound to, if any.
    pub fn jkt(&self) -> Option<String> {
        self.cnf["jkt"].as_str().map(String::from)
    }
}
