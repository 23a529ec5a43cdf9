//! Test keys that sign tokens like Keycloak does, for unit tests, benchmarks and the load
//! target (the keys themselves are `playbook-forge`'s). Behind the `testing` feature.

use serde_json::{Value, json};

pub use playbook_forge::{SigningKey as TestKey, b64_json};

/// Claims Keycloak would put in the playbook client's token for `issuer`, valid for 5 minutes.
pub fn keycloak_like_claims(issuer: &str) -> Value {
    let now = crate::unix_now();
    json!({
        "iss": issuer, "aud": [crate::AUDIENCE, "account"],
        "sub": "service-account", "azp": playbook_keycloak::CLIENT_ID,
        "typ": "Bearer", "iat": now, "exp": now + 300,
        "scope": "profile users:read",
        "realm_access": { "roles": [playbook_keycloak::READONLY_ROLE, "default-roles"] },
    })
}
