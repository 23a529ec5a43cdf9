//! Step 2 of the flow: give the client's service-account user the realm role, via the Admin API.
//!
//! Typed reqwest calls rather than the `keycloak` crate: the flow needs five endpoints, which fit
//! in this file with the three types they return, while the crate brings the whole generated
//! Admin API and ties our reqwest version to its own.

use serde::Deserialize;
use serde_json::json;

use crate::{Admin, KeycloakError, Secret};

/// The user Keycloak creates for a client with service accounts enabled.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub id: String,
    pub username: String,
}

/// A realm role; the Admin API wants both `id` and `name` when mapping it.
#[derive(Debug, Clone, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    Assigned,
    AlreadyAssigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    NotAssigned,
}

/// Role provisioning in one realm.
pub struct Provisioner<'a> {
    pub(crate) admin: &'a Admin,
    pub(crate) realm: String,
}

#[derive(Deserialize)]
struct ClientRepresentation {
    id: String,
}

impl<'a> Provisioner<'a> {
    pub fn new(admin: &'a Admin, realm: impl Into<String>) -> Self {
        Self {
            admin,
            realm: realm.into(),
        }
    }

    /// Keycloak's own id of the client with this `clientId` (what Admin API paths take).
    pub async fn client_uuid(&self, client_id: &str) -> Result<String, KeycloakError> {
        let realm = &self.realm;
        let clients: Vec<ClientRepresentation> = self
            .admin
            .get(&format!("{realm}/clients?clientId={client_id}"))
            .await?
            .unwrap_or_default();
        clients
            .into_iter()
            .next()
            .map(|client| client.id)
            .ok_or_else(|| KeycloakError::ClientNotFound {
                client_id: client_id.into(),
                realm: realm.clone(),
            })
    }

    /// Tokens issued to this client from now on live `lifespan` (a client-level override of
    /// the realm's access-token lifespan).
    pub async fn set_access_token_lifespan(
        &self,
        client_id: &str,
        lifespan: std::time::Duration,
    ) -> Result<(), KeycloakError> {
        let lifespan = lifespan.as_secs().to_string();
        self.set_client_attributes(client_id, &[("access.token.lifespan", lifespan)])
            .await
    }

    /// Sets attributes of the client with this `clientId`, keeping the rest of it (one read,
    /// one write).
    pub async fn set_client_attributes(
        &self,
        client_id: &str,
        attributes: &[(&str, String)],
    ) -> Result<(), KeycloakError> {
        let path = format!(
            "{}/clients/{}",
            self.realm,
            self.client_uuid(client_id).await?
        );
        let mut client: serde_json::Value = self.admin.get(&path).await?.unwrap_or_default();
        for (name, value) in attributes {
            client["attributes"][*name] = value.as_str().into();
        }
        self.admin.put(&path, &client).await?;
        Ok(())
    }

    /// A new secret for the client: Keycloak generates it and refuses the old one from then on.
    /// The secret is never recorded in the trace.
    pub async fn rotate_secret(&self, client_id: &str) -> Result<Secret, KeycloakError> {
        #[derive(Deserialize)]
        struct Credential {
            value: String,
        }
        let path = format!(
            "{}/clients/{}/client-secret",
            self.realm,
            self.client_uuid(client_id).await?
        );
        let credential: Credential = self.admin.post_for(&path).await?;
        Ok(Secret::new(credential.value))
    }

    /// The service-account user of the client with this `clientId`.
    pub async fn service_account(&self, client_id: &str) -> Result<ServiceAccount, KeycloakError> {
        let realm = &self.realm;
        let uuid = self.client_uuid(client_id).await?;
        self.admin
            .get(&format!("{realm}/clients/{uuid}/service-account-user"))
            .await?
            .ok_or_else(|| KeycloakError::NoServiceAccount {
                client_id: client_id.into(),
                realm: realm.clone(),
            })
    }

    pub async fn realm_role(&self, name: &str) -> Result<Role, KeycloakError> {
        self.admin
            .get(&format!("{}/roles/{name}", self.realm))
            .await?
            .ok_or_else(|| KeycloakError::RoleNotFound {
                role: name.into(),
                realm: self.realm.clone(),
            })
    }

    /// The client's service account and the realm role: the two ends of an assignment.
    pub async fn account_and_role(
        &self,
        client_id: &str,
        role: &str,
    ) -> Result<(ServiceAccount, Role), KeycloakError> {
        Ok((
            self.service_account(client_id).await?,
            self.realm_role(role).await?,
        ))
    }

    /// The realm roles directly assigned to `user`.
    pub async fn assigned_roles(&self, user: &ServiceAccount) -> Result<Vec<Role>, KeycloakError> {
        Ok(self
            .admin
            .get(&self.mappings(user))
            .await?
            .unwrap_or_default())
    }

    /// Assigns `role` to `user`; assigning a role already held is reported, not an error.
    pub async fn assign(
        &self,
        user: &ServiceAccount,
        role: &Role,
    ) -> Result<Assignment, KeycloakError> {
        if self.holds(user, role).await? {
            return Ok(Assignment::AlreadyAssigned);
        }
        let body = json!([{ "id": role.id, "name": role.name }]);
        self.admin.post(&self.mappings(user), &body).await?;
        Ok(Assignment::Assigned)
    }

    /// Removes `role` from `user` (to reset a demo or a test).
    pub async fn revoke(
        &self,
        user: &ServiceAccount,
        role: &Role,
    ) -> Result<Revocation, KeycloakError> {
        if !self.holds(user, role).await? {
            return Ok(Revocation::NotAssigned);
        }
        let body = json!([{ "id": role.id, "name": role.name }]);
        self.admin.delete(&self.mappings(user), &body).await?;
        Ok(Revocation::Revoked)
    }

    async fn holds(&self, user: &ServiceAccount, role: &Role) -> Result<bool, KeycloakError> {
        Ok(self
            .assigned_roles(user)
            .await?
            .iter()
            .any(|r| r.id == role.id))
    }

    fn mappings(&self, user: &ServiceAccount) -> String {
        format!("{}/users/{}/role-mappings/realm", self.realm, user.id)
    }
}
