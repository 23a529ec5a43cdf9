//! The seed's `client/start.sh`, step by step, shared by `playbook client` and `playbook demo`.

use playbook_resource_server::unix_now;
use std::sync::Arc;

use playbook_client::{AccessToken, ApiResponse, ResourceApi, TokenClient};
use playbook_keycloak::{Admin, Assignment, Provisioner, Revocation};
use playbook_keycloak::{CLIENT_ID, READONLY_ROLE};
use serde_json::json;

use crate::report::{Actor, Report};

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
        report.arrow(
            Actor::Client,
            Actor::AuthServer,
            "POST /realms/master/protocol/openid-connect/token (password grant, admin-cli)",
            json!({ "endpoint": "/realms/master/protocol/openid-connect/token", "grant_type": "password" }),
        );
        self.admin.renew_token().await?;
        report.arrow(
            Actor::AuthServer,
            Actor::Client,
            "admin access token (lives 60 s, renewed as needed)",
            json!({}),
        );
        Ok(())
    }

    /// Step 2: the client's service account gets the realm role.
    pub async fn assign_role(&self, report: &mut Report) -> anyhow::Result<Assignment> {
        report
            .step("2. Assign the realm role to the client's service account")
            .await;
        let provisioner = Provisioner::new(self.admin, self.realm);
        let (account, role) = provisioner
            .account_and_role(CLIENT_ID, READONLY_ROLE)
            .await?;
        report.arrow(
            Actor::Client,
            Actor::AuthServer,
            &format!(
                "POST /admin/realms/{}/users/{{id}}/role-mappings/realm [{READONLY_ROLE}]",
                self.realm
            ),
            json!({ "user": account.username, "role": role.name }),
        );
        let assignment = provisioner.assign(&account, &role).await?;
        let summary = match assignment {
            Assignment::Assigned => format!("{READONLY_ROLE} assigned to {}", account.username),
            Assignment::AlreadyAssigned => format!(
                "{} already holds {READONLY_ROLE}: nothing to do",
                account.username
            ),
        };
        report.arrow(
            Actor::AuthServer,
            Actor::Client,
            &summary,
            json!({ "assignment": format!("{assignment:?}") }),
        );
        // Scopes are decided when a token is issued: a token cached from before is now stale.
        self.tokens.forget().await;
        Ok(assignment)
    }

    /// Step 3: a client-credentials token, authenticated by the TLS client certificate.
    pub async fn token(&self, report: &mut Report) -> anyhow::Result<AccessToken> {
        let config = self.tokens.config();
        report.arrow(
            Actor::Client,
            Actor::AuthServer,
            &format!(
                "POST {} grant_type=client_credentials client_id={} scope={} + TLS client certificate CN={}",
                config.token_endpoint.path(),
                config.client_id,
                config.scope,
                playbook_certs::CLIENT_CN
            ),
            json!({ "endpoint": config.token_endpoint.as_str(), "client_id": config.client_id, "scope": config.scope }),
        );
        let token = self.tokens.token().await?;
        let claims = &token.claims;
        let expires_in = claims.exp.map(|exp| exp - unix_now());
        report.arrow(
            Actor::AuthServer,
            Actor::Client,
            &format!("access token ({})", token.fingerprint()),
            json!({
                "sub": claims.sub, "scope": claims.scope, "realm_roles": claims.realm_roles(),
                "aud": claims.audiences(), "exp": claims.exp, "expires_in": expires_in,
                "cnf": { "x5t#S256": claims.x5t_s256() },
                "access_token": self.show_token.then(|| token.expose()),
            }),
        );
        report.detail("sub", claims.sub.as_deref().unwrap_or("-"));
        report.detail(
            "scope",
            claims
                .scope
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("(none)"),
        );
        report.detail("realm roles", &claims.realm_roles().join(", "));
        report.detail("aud", &claims.audiences().join(", "));
        report.detail(
            "exp",
            &format!(
                "{} (in {} s)",
                claims.exp.unwrap_or(0),
                expires_in.unwrap_or(0)
            ),
        );
        report.detail(
            "cnf.x5t#S256",
            claims.x5t_s256().as_deref().unwrap_or("(not bound)"),
        );
        if self.show_token {
            report.detail("token", token.expose());
        }
        Ok(token)
    }

    /// Step 4: `GET /api/users` with the token over the same mutual-TLS identity.
    pub async fn call_api(&self, report: &mut Report) -> anyhow::Result<ApiResponse> {
        report.arrow(
            Actor::Client,
            Actor::ResourceServer,
            "GET /api/users (Authorization: Bearer, same client certificate)",
            json!({ "path": "/api/users" }),
        );
        let answer = self.api.get("/api/users").await?;
        report_answer(report, &answer);
        Ok(answer)
    }
}

pub fn report_answer(report: &mut Report, answer: &ApiResponse) {
    let summary = match answer.status {
        200 => format!(
            "200 OK, {} user(s)",
            answer.body.as_array().map_or(0, Vec::len)
        ),
        status => format!(
            "{status} {}",
            answer.www_authenticate.as_deref().unwrap_or("")
        ),
    };
    report.arrow(
        Actor::ResourceServer,
        Actor::Client,
        &summary,
        json!({ "status": answer.status, "www_authenticate": answer.www_authenticate, "body": answer.body }),
    );
}

/// Resets the demo before it is shown: the role is removed so the first lesson shows a 403.
pub async fn reset(admin: &Admin, realm: &str) -> anyhow::Result<Revocation> {
    let provisioner = Provisioner::new(admin, realm);
    let (account, role) = provisioner
        .account_and_role(CLIENT_ID, READONLY_ROLE)
        .await?;
    Ok(provisioner.revoke(&account, &role).await?)
}
