//! Protect your own axum route with the playbook's validator: name the requirement as a
//! [`Policy`] and take [`Authorized`] in the handler; the extractor does the rest (401 with a
//! `WWW-Authenticate` challenge for a bad token, 403 `insufficient_scope` for a missing role or
//! scope, certificate binding per RFC 8705).
//!
//! ```sh
//! cargo run -p playbook-resource-server --example protect_route   # with `cargo playbook provider` running
//! ```

use axum::Router;
use axum::routing::get;
use playbook_certs::CertSet;
use playbook_keycloak::{KeycloakUrl, READONLY_ROLE, REALM, USERS_READ};
use playbook_resource_server::server::{self, ServerConfig};
use playbook_resource_server::{Authorized, Policy};

/// Who may read reports: the realm's read-only role, and the `users:read` scope.
struct ReadReports;
impl Policy for ReadReports {
    const REALM_ROLE: Option<&'static str> = Some(READONLY_ROLE);
    const ANY_SCOPE: &'static [&'static str] = &[USERS_READ];
}

async fn reports(caller: Authorized<ReadReports>) -> String {
    format!("reports for {:?}\n", caller.token.client_id)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (certs, _) = CertSet::ensure("certs", false)?;
    let issuer = KeycloakUrl::local(9443).realm(REALM).issuer().clone();
    let config = ServerConfig::new(issuer, "127.0.0.1:8445".parse()?, &certs);
    let server = server::start_with(config, |state| {
        Router::new()
            .route("/reports", get(reports))
            .with_state(state)
    })
    .await?;
    println!(
        "GET {}reports is protected; Ctrl-C stops",
        server.base_url()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
