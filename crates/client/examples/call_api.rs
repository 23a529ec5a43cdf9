//! Get a certificate-bound token with the client crate and call an API with it.
//!
//! The token request authenticates with the TLS client certificate (RFC 8705, no secret), and
//! the API call goes over a connection made with the same certificate, which a bound token
//! needs. Run it against the tutorial's setup (`cargo playbook provider`, `cargo playbook
//! resource-server`, and the role assigned by `cargo playbook client` once):
//!
//! ```sh
//! cargo run -p playbook-client --example call_api
//! ```

use std::sync::Arc;

use playbook_certs::{CertSet, Files};
use playbook_client::{ResourceApi, TokenClient, TokenClientConfig};
use playbook_keycloak::{KeycloakUrl, REALM};
use playbook_resource_server::api::LIST_USERS;
use url::Url;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let certs = CertSet::load(Files::new("certs"))?;
    let token_endpoint = KeycloakUrl::local(9443).realm(REALM).token();
    let config = TokenClientConfig::playbook(token_endpoint, &certs.ca_pem, &certs.client);
    let tokens = Arc::new(TokenClient::new(config)?);

    let token = tokens.token().await?;
    println!(
        "token {} bound to {:?}",
        token.fingerprint(),
        token.claims.x5t_s256()
    );

    let api = ResourceApi::new(Url::parse("https://localhost:8443/")?, tokens);
    let answer = api.get(LIST_USERS.path).await?;
    println!("GET /api/users: {} {}", answer.status, answer.body);
    Ok(())
}
