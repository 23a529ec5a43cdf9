//! The trust behind the federated method: the realm's workload platform (a realm of its own,
//! made from `oauth2-provider/platform-realm.json`), and the realm trusting it as an OpenID
//! Connect identity provider that may vouch for clients (Keycloak 26.6+'s federated client
//! authentication), both set up through the Admin API.
//!
//! The identity provider is given the platform's signing key itself rather than its JWKS URL:
//! Keycloak in a container cannot reach the platform's URL as the host names it (the published
//! port is the host's), and the key is what a JWKS URL would give it. In production the
//! identity provider points at the platform's JWKS (a Kubernetes cluster's OIDC discovery, a
//! SPIFFE bundle endpoint), so that the platform can rotate its keys.

use serde_json::{Value, json};

use crate::realm::{platform, spiffe};
use crate::{Admin, KeycloakError, Provisioner, RealmUrl};

impl Provisioner<'_> {
    /// Makes this realm's workload platform when it is missing (its workloads' tokens made for
    /// this realm), and has this realm trust it as identity provider
    /// [`platform::IDENTITY_PROVIDER`], with its current signing key; the platform's URLs.
    pub async fn trust_platform(&self) -> Result<RealmUrl, KeycloakError> {
        let keycloak = self.admin.keycloak();
        let name = platform::realm(&self.realm);
        let issuer = keycloak.realm(&self.realm);
        if !self.admin.realm_exists(&name).await? {
            self.admin.create_platform_realm(&name, &issuer).await?;
        } else {
            self.admin.aim_workloads_at(&name, issuer.issuer()).await?;
        }
        let platform = keycloak.realm(&name);
        let (key_id, public_key) = self.signing_key(&name).await?;
        let provider = json!({
            "alias": platform::IDENTITY_PROVIDER,
            "displayName": format!("Workload platform (realm {name})"),
            "providerId": "oidc",
            "enabled": true,
            "config": {
                "issuer": platform.issuer().as_str(),
                "validateSignature": "true",
                "useJwksUrl": "false",
                "publicKeySignatureVerifier": public_key,
                "publicKeySignatureVerifierKeyId": key_id,
                "supportsClientAssertions": "true",
            },
        });
        let instances = format!("{}/identity-provider/instances", self.realm);
        let existing = format!("{instances}/{}", platform::IDENTITY_PROVIDER);
        if self.admin.get::<Value>(&existing).await?.is_some() {
            self.admin.put(&existing, &provider).await?;
        } else {
            self.admin.post(&instances, &provider).await?;
        }
        Ok(platform)
    }

    /// Has this realm trust a SPIRE server, by its SPIFFE bundle endpoint (its JWT-SVID keys,
    /// fetched and refreshed by Keycloak over HTTPS), as identity provider
    /// [`spiffe::IDENTITY_PROVIDER`].
    pub async fn trust_spiffe(&self, bundle_endpoint: &url::Url) -> Result<(), KeycloakError> {
        let provider = json!({
            "alias": spiffe::IDENTITY_PROVIDER,
            "displayName": "SPIRE (trust domain oauth2-playbook.test)",
            "providerId": "spiffe",
            "enabled": true,
            "config": {
                "trustDomain": spiffe::trust_domain_id(),
                "bundleEndpoint": bundle_endpoint.as_str(),
            },
        });
        let instances = format!("{}/identity-provider/instances", self.realm);
        let existing = format!("{instances}/{}", spiffe::IDENTITY_PROVIDER);
        if self.admin.get::<Value>(&existing).await?.is_some() {
            self.admin.put(&existing, &provider).await
        } else {
            self.admin.post(&instances, &provider).await
        }
    }

    /// The trust as Keycloak holds it now: the identity provider's configuration, `None` when
    /// there is none (for `doctor`, which changes nothing).
    pub async fn platform_trust(&self) -> Result<Option<Value>, KeycloakError> {
        let path = format!(
            "{}/identity-provider/instances/{}",
            self.realm,
            platform::IDENTITY_PROVIDER
        );
        self.admin.get(&path).await
    }

    /// The active RS256 key of `realm`: its kid and its public key (base64 DER), what the
    /// trust holds a copy of (`doctor` compares them).
    pub async fn signing_key(&self, realm: &str) -> Result<(String, String), KeycloakError> {
        let keys: Value = self
            .admin
            .get(&format!("{realm}/keys"))
            .await?
            .unwrap_or_default();
        let kid = keys["active"]["RS256"].as_str().unwrap_or_default();
        (keys["keys"].as_array().into_iter().flatten())
            .find(|key| key["kid"] == kid)
            .and_then(|key| Some((kid.to_owned(), key["publicKey"].as_str()?.to_owned())))
            .ok_or_else(|| KeycloakError::NoSigningKey {
                realm: realm.into(),
            })
    }
}

impl Admin {
    /// The workloads of `platform_realm` make their tokens for `issuer` from now on, by their
    /// audience mappers: a spare platform's (made for no realm), or an existing one's for its
    /// realm's issuer as it is now (a realm reached at another address has another issuer).
    pub(crate) async fn aim_workloads_at(
        &self,
        platform_realm: &str,
        issuer: &url::Url,
    ) -> Result<(), KeycloakError> {
        let platform = Provisioner::new(self, platform_realm);
        for workload in [
            platform::WORKLOAD_CLIENT_ID,
            platform::OTHER_WORKLOAD_CLIENT_ID,
        ] {
            let client = format!(
                "{platform_realm}/clients/{}",
                platform.client_uuid(workload).await?
            );
            let mappers: Vec<Value> = self
                .get(&format!("{client}/protocol-mappers/models"))
                .await?
                .unwrap_or_default();
            let audience = "included.custom.audience";
            for mut mapper in mappers {
                if mapper["protocolMapper"] != "oidc-audience-mapper"
                    || mapper["config"][audience] == issuer.as_str()
                {
                    continue;
                }
                mapper["config"][audience] = issuer.as_str().into();
                let id = mapper["id"].as_str().unwrap_or_default().to_owned();
                let path = format!("{client}/protocol-mappers/models/{id}");
                self.put(&path, &mapper).await?;
            }
        }
        Ok(())
    }
}
