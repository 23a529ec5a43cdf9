//! What can go wrong talking to a running Keycloak, each with what to do about it.

#[derive(Debug, thiserror::Error)]
pub enum KeycloakError {
    #[error(
        "cannot reach Keycloak at {url}: {reason}; is it running? (`cargo playbook provider` starts one)"
    )]
    Unreachable { url: String, reason: String },

    #[error(
        "Keycloak refused the admin credentials of user `{user}`; pass its password with --keycloak-admin-password / PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD, or keep the certs/keycloak-admin-password that the command that started it saved"
    )]
    AdminRefused { user: String },

    #[error("Keycloak Admin API {method} {path} answered {status}: {body}")]
    AdminApi {
        method: &'static str,
        path: String,
        status: u16,
        body: String,
    },

    #[error("unexpected answer from Keycloak at {url}: {reason}")]
    BadAnswer { url: String, reason: String },

    #[error(
        "client `{client_id}` not found in realm `{realm}`; was the realm imported from oauth2-provider/realm.json?"
    )]
    ClientNotFound { client_id: String, realm: String },

    #[error(
        "client `{client_id}` has no service account; enable \"Service accounts\" on it in realm `{realm}`"
    )]
    NoServiceAccount { client_id: String, realm: String },

    #[error(
        "realm role `{role}` not found in realm `{realm}`; was the realm imported from oauth2-provider/realm.json?"
    )]
    RoleNotFound { role: String, realm: String },

    #[error(
        "realm `{realm}` has no active RS256 signing key; give it one (Realm settings > Keys) or import it again"
    )]
    NoSigningKey { realm: String },

    #[error(transparent)]
    Tls(#[from] playbook_https::TlsMaterialError),
}

impl KeycloakError {
    /// Whether Keycloak could not be reached (connection, TLS, DNS).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Whether Keycloak answered "no" to who we are.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::AdminRefused { .. })
    }
}
