//! The seed's `client/start.sh`, step by step, shared by `playbook client` and `playbook demo`.
//! The parties record every exchange into the run's trace; the report draws them from there, so
//! this file says only what each step does and what it means.

use std::sync::Arc;

use playbook_client::{AccessToken, ApiResponse, ResourceApi, TokenClient};
use playbook_keycloak::READONLY_ROLE;
use playbook_keycloak::{Admin, Assignment, Provisioner, Revocation};
use playbook_resource_server::api::LIST_USERS;

use crate::report::Report;

/// The participants of one run of the flow.
pub struct Flow<'a> {
    pub admin: &'a Admin,
    pub realm: &'a str,
    pub tokens: Arc<TokenClient>,
    pub api: ResourceApi,
    pub show_token: bool,
}

impl Flow<'_> {
    /// Step 1: an admin token for the Admin API.
    pub async fn admin_token(&self, report: &mut Report) -> anyhow::Result<()> {
        report.step("1. Admin token").await;
        self.admin.renew_token().await?;
        Ok(())
    }

    /// Step 2: the client's service account gets the realm role.
    pub async fn assign_role(&self, report: &mut Report) -> anyhow::Result<Assignment> {
        report
            .step("2. Assign the realm role to the client's service account")
            .await;
        let provisioner = Provisioner::new(self.admin, self.realm);
        let (account, role) = provisioner
            .account_and_role(&self.tokens.config().client_id, READONLY_ROLE)
            .await?;
        let assignment = provisioner.assign(&account, &role).await?;
        report.note(&match assignment {
            Assignment::Assigned => format!("{READONLY_ROLE} assigned to {}", account.username),
            Assignment::AlreadyAssigned => format!(
                "{} already holds {READONLY_ROLE}: nothing to do",
                account.username
            ),
        });
        // Scopes are decided when a token is issued: a token cached from before is now stale.
        self.tokens.forget().await;
        Ok(assignment)
    }

    /// Step 3: a client-credentials token, authenticated by the TLS client certificate (or the
    /// client's other credential).
    pub async fn token(&self, report: &mut Report) -> anyhow::Result<AccessToken> {
        let token = self.tokens.token().await?;
        if self.show_token {
            report.note(&format!("access token: {}", token.expose()));
        }
        Ok(token)
    }

    /// Step 4: `GET /api/users` with the token over the same mutual-TLS identity.
    pub async fn call_api(&self) -> anyhow::Result<ApiResponse> {
        Ok(self.api.get(LIST_USERS.path).await?)
    }
}

/// Resets the demo before it is shown: the client's role is removed so the first lesson shows a
/// 403.
pub async fn reset(admin: &Admin, realm: &str, client_id: &str) -> anyhow::Result<Revocation> {
    let provisioner = Provisioner::new(admin, realm);
    let (account, role) = provisioner
        .account_and_role(client_id, READONLY_ROLE)
        .await?;
    Ok(provisioner.revoke(&account, &role).await?)
}
