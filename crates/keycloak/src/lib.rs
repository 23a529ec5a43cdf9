//! What a *user* of a running Keycloak needs, and nothing that starts one: the realm's names
//! and typed URLs ([`realm`]), the Admin API session ([`Admin`]) and the role provisioning of the
//! flow's step 2 ([`Provisioner`]).
//!
//! The client, the lab and the resource server depend on this crate; only the CLI and the test
//! kit depend on the launcher (`playbook-provider`), so a Rust user who wants the client in
//! their own service gets no container runtime with it.
//!
//! ```no_run
//! # async fn step_two() -> Result<(), playbook_keycloak::KeycloakError> {
//! use playbook_keycloak::{Admin, AdminCredentials, KeycloakUrl, Provisioner, Secret};
//! use playbook_keycloak::{CLIENT_ID, READONLY_ROLE, REALM};
//!
//! let ca_pem = std::fs::read_to_string("certs/ca.pem").unwrap();
//! let keycloak = KeycloakUrl::local(9443);
//! let admin = Admin::new(keycloak, AdminCredentials::new("admin", Secret::new("…")), &ca_pem)?;
//! let provisioner = Provisioner::new(&admin, REALM);
//! let (account, role) = provisioner.account_and_role(CLIENT_ID, READONLY_ROLE).await?;
//! provisioner.assign(&account, &role).await?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod error;
pub mod fapi2;
mod federation;
mod provision;
pub mod realm;
mod realm_key;
mod spare;

pub use admin::{Admin, AdminCredentials, Secret};

/// Seconds since the Unix epoch, as Keycloak's tokens count time (JWT NumericDate, RFC 7519
/// §2): `exp`, `iat` and `nbf` are compared with this by everyone who reads a token.
#[inline]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Sleeps until the wall clock reaches `unix` seconds (a token's NumericDate), and 20 ms more:
/// a token with `exp` E has expired from second `E + 1` on, to whoever compares whole seconds.
pub async fn sleep_until_unix(unix: i64) {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    if let Ok(left) = at.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + std::time::Duration::from_millis(20)).await;
    }
}
pub use error::KeycloakError;
pub use provision::{Assignment, Provisioner, Revocation, Role, ServiceAccount};
pub use realm::{
    ADMIN_CLI, AuthMethod, CLIENT_ID, DEFAULT_HTTPS_PORT, INTRUDER_CLIENT_ID, KeycloakUrl,
    MASTER_REALM, READ_USER, READONLY_ROLE, REALM, RESOURCE_SERVER_CLIENT_ID, RealmTemplate,
    RealmUrl, TokenBinding, USERS_ADMIN, USERS_READ, WRITE_USER, platform, spiffe,
};
pub use realm_key::RealmKey;
pub use spare::{RealmOrigin, SPARES_REALM, is_bundled_spare, is_spare, spares_made_from};
