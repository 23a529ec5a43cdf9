//! The realm definition: oauth2-provider/realm.json is the only one, built into the binary.

use serde_json::Value;

/// The realm name the tutorial uses.
pub const REALM: &str = "oauth2-playbook";

const REALM_JSON: &str = include_str!("../../../oauth2-provider/realm.json");

/// The bundled realm, ready to be imported under any name.
#[derive(Debug, Clone)]
pub struct RealmTemplate(Value);

impl RealmTemplate {
    /// The realm of oauth2-provider/realm.json.
    pub fn bundled() -> Self {
        Self(serde_json::from_str(REALM_JSON).expect("oauth2-provider/realm.json is valid JSON"))
    }

    /// The realm's JSON renamed to `name`: tests give every test its own realm this way.
    pub fn named(&self, name: &str) -> Value {
        let mut realm = self.0.clone();
        realm["realm"] = Value::String(name.to_owned());
        realm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_realm_defines_what_the_flow_needs() {
        let realm = RealmTemplate::bundled().named("renamed");
        assert_eq!(realm["realm"], "renamed");
        let clients = realm["clients"].as_array().unwrap();
        let mtls = clients
            .iter()
            .find(|c| c["clientId"] == "oauth2-playbook-client-credentials-mtls")
            .unwrap();
        assert_eq!(mtls["clientAuthenticatorType"], "client-x509");
        assert_eq!(
            mtls["attributes"]["tls.client.certificate.bound.access.tokens"],
            "true"
        );
        assert!(
            clients
                .iter()
                .any(|c| c["clientId"] == "oauth2-playbook-resource-server"
                    && c["bearerOnly"] == true)
        );
        // The role exists but nobody holds it: the client assigns it in step 2.
        assert_eq!(
            realm["roles"]["realm"][0]["name"],
            "oauth2-playbook-readonly"
        );
        assert!(realm.get("users").is_none());
    }
}
