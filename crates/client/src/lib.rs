//! The OAuth client of the playbook, as the seed's `client/start.sh` runs it:
//!
//! 1. an Admin API session ([`playbook_keycloak::Admin`]);
//! 2. [`playbook_keycloak::Provisioner`] gives the client's service account the realm role;
//! 3. [`TokenClient`] gets a client-credentials token, authenticating with the TLS client
//!    certificate (RFC 8705) or, for comparison, a [`Credential`] of another method, and caches it;
//! 4. [`ResourceApi`] calls the resource server over the same mutual-TLS identity, so
//!    certificate-bound tokens are accepted, or with a DPoP proof per call for DPoP-bound ones.

mod api;
mod claims;
mod credential;
mod error;
mod handshake;
mod svid;
mod token;

pub use api::{ApiResponse, Presenting, ResourceApi};
pub use claims::Claims;
pub use credential::{
    ASSERTION_LIFETIME, ASSERTION_TYPE, AssertionClaims, Credential, enrol, provision, register,
    register_spiffe,
};
pub use error::ClientError;
pub use handshake::mtls_config;
pub use svid::SpiffeSource;
pub use token::{AccessToken, TokenClient, TokenClientConfig};
