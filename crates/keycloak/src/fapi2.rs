//! FAPI 2.0 Security Profile (OpenID Foundation, final 2025), as Keycloak enforces it: a client
//! policy that applies one of Keycloak's built-in FAPI 2.0 client profiles to every client of the
//! realm, and a realm default signature algorithm FAPI 2.0 allows.
//!
//! What the profile then changes, measured on Keycloak 26.7: a `client_secret_basic` client's
//! token request is refused ("Configured client authentication method not allowed for client");
//! a client updated through the Admin API is reconfigured by the profile's executors (PS256
//! tokens, DPoP or certificate binding required); tokens are signed PS256.

use serde_json::json;

use crate::{KeycloakError, Provisioner, RealmKey, TokenBinding};

/// The name of the playbook's client policy in the realm.
pub const POLICY: &str = "oauth2-playbook-fapi2";

/// The name of the PS256 key provider the playbook adds (how it finds its own key again).
const KEY_NAME: &str = "oauth2-playbook-fapi2-ps256";

/// The prefix of the playbook's clients: the only ones it reconfigures back.
const CLIENTS: &str = "oauth2-playbook-";

/// The realm's token signature algorithm under FAPI 2.0 (§5.4: PS256, ES256 or EdDSA; Keycloak's
/// profiles default to PS256, which the realm's RSA keys can sign).
pub const SIGNATURE_ALGORITHM: &str = "PS256";

/// What the profile's executors set on a client updated under it (measured on Keycloak 26.7);
/// the first is how [`Provisioner::relax_fapi2`] knows such a client.
const CONFIGURED_MARK: &str = "access.token.signed.response.alg";
const CONFIGURED_ATTRIBUTES: [&str; 5] = [
    CONFIGURED_MARK,
    "id.token.signed.response.alg",
    "user.info.response.signature.alg",
    "request.object.signature.alg",
    "pkce.code.challenge.method",
];

/// Keycloak's built-in client profile for FAPI 2.0 with `binding`: certificate-bound tokens
/// (`fapi-2-security-profile`) or DPoP-bound ones (`fapi-2-dpop-security-profile`).
pub fn client_profile(binding: TokenBinding) -> &'static str {
    match binding {
        TokenBinding::Dpop => "fapi-2-dpop-security-profile",
        _ => "fapi-2-security-profile",
    }
}

impl Provisioner<'_> {
    /// Tokens of this realm signed with [`SIGNATURE_ALGORITHM`] from now on (one read, one
    /// write of the realm).
    /// A key for it is added now unless the realm has one: Keycloak would otherwise make one at
    /// the first token it signs, after a resource server started has fetched the realm's keys,
    /// and that server would spend its refetch on it. `key`: that key, imported (the lab's many
    /// realms share one, made in the test process); `None`: Keycloak generates it, as for a realm of
    /// the tutorial.
    pub async fn sign_for_fapi2(&self, key: Option<&RealmKey>) -> Result<(), KeycloakError> {
        let mut realm: serde_json::Value = self.admin.get(&self.realm).await?.unwrap_or_default();
        realm["defaultSignatureAlgorithm"] = SIGNATURE_ALGORITHM.into();
        self.admin.put(&self.realm, &realm).await?;
        let keys: serde_json::Value = (self.admin)
            .get(&format!("{}/keys", self.realm))
            .await?
            .unwrap_or_default();
        let has_key = (keys["keys"].as_array().into_iter().flatten())
            .any(|key| key["algorithm"] == SIGNATURE_ALGORITHM && key["status"] == "ACTIVE");
        if has_key {
            return Ok(());
        }
        let mut component = match key {
            Some(key) => key.provider(KEY_NAME, SIGNATURE_ALGORITHM),
            None => json!({
                "name": KEY_NAME, "providerId": "rsa-generated",
                "config": { "priority": ["100"], "algorithm": [SIGNATURE_ALGORITHM], "keySize": ["2048"] }
            }),
        };
        component["providerType"] = "org.keycloak.keys.KeyProvider".into();
        component["parentId"] = realm["id"].clone();
        component["config"]["active"] = json!(["true"]);
        component["config"]["enabled"] = json!(["true"]);
        self.admin
            .post(&format!("{}/components", self.realm), &component)
            .await
    }

    /// Every client of the realm under Keycloak's FAPI 2.0 profile for `binding`, from the next
    /// request on: the playbook's policy added to (or replacing its earlier self among) the
    /// realm's client policies; the others are kept.
    pub async fn enforce_fapi2(&self, binding: TokenBinding) -> Result<(), KeycloakError> {
        let mut policies = self.other_client_policies().await?;
        policies.push(json!({
            "name": POLICY,
            "description": "FAPI 2.0 Security Profile for every client (oauth2-playbook --profile fapi2)",
            "enabled": true,
            "conditions": [{ "condition": "any-client", "configuration": {} }],
            "profiles": [client_profile(binding)],
        }));
        let path = format!("{}/client-policies/policies", self.realm);
        self.admin
            .put(&path, &json!({ "policies": policies }))
            .await
    }

    /// Undoes [`Self::enforce_fapi2`] and [`Self::sign_for_fapi2`] where an earlier run left
    /// them (a kept Keycloak, or a run interrupted between the two): the playbook's policy and
    /// key removed, the realm back to RS256, and the playbook's clients the profile's executors
    /// reconfigured back to the realm's defaults. Policies, keys and clients of anyone else
    /// are left alone. Whether there was anything to undo.
    pub async fn relax_fapi2(&self) -> Result<bool, KeycloakError> {
        let path = format!("{}/client-policies/policies", self.realm);
        let current: serde_json::Value = self.admin.get(&path).await?.unwrap_or_default();
        let policy = (current["policies"].as_array().into_iter().flatten())
            .any(|policy| policy["name"] == POLICY);
        let components: Vec<serde_json::Value> = (self.admin)
            .get(&format!("{}/components?name={KEY_NAME}", self.realm))
            .await?
            .unwrap_or_default();
        if !policy && components.is_empty() {
            return Ok(false);
        }
        let others = self.other_client_policies().await?;
        self.admin
            .put(&path, &json!({ "policies": others }))
            .await?;
        for component in &components {
            let id = component["id"].as_str().unwrap_or_default();
            (self.admin)
                .remove(&format!("{}/components/{id}", self.realm))
                .await?;
        }
        let mut realm: serde_json::Value = self.admin.get(&self.realm).await?.unwrap_or_default();
        realm["defaultSignatureAlgorithm"] = "RS256".into();
        self.admin.put(&self.realm, &realm).await?;
        // The profile's executors reconfigured every client updated under it; the playbook's
        // go back to the realm's defaults (an empty algorithm is "the realm's").
        let clients: Vec<serde_json::Value> = (self.admin)
            .get(&format!("{}/clients", self.realm))
            .await?
            .unwrap_or_default();
        for mut client in clients {
            let ours = (client["clientId"].as_str()).is_some_and(|id| id.starts_with(CLIENTS));
            if !ours || client["attributes"][CONFIGURED_MARK] != SIGNATURE_ALGORITHM {
                continue;
            }
            for attribute in CONFIGURED_ATTRIBUTES {
                client["attributes"][attribute] = "".into();
            }
            client["fullScopeAllowed"] = true.into();
            client["consentRequired"] = false.into();
            let id = client["id"].as_str().unwrap_or_default().to_owned();
            (self.admin)
                .put(&format!("{}/clients/{id}", self.realm), &client)
                .await?;
        }
        Ok(true)
    }

    /// The realm's client policies but the playbook's.
    async fn other_client_policies(&self) -> Result<Vec<serde_json::Value>, KeycloakError> {
        let path = format!("{}/client-policies/policies", self.realm);
        let current: serde_json::Value = self.admin.get(&path).await?.unwrap_or_default();
        Ok((current["policies"].as_array().into_iter().flatten())
            .filter(|policy| policy["name"] != POLICY)
            .cloned()
            .collect())
    }
}
