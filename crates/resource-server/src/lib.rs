//! The resource server of the playbook: an axum HTTPS API that accepts only Keycloak access
//! tokens it has verified itself, for the role and scopes each route declares.
//!
//! The pieces, in the order a request meets them:
//! - [`tls`]: HTTPS with our certificate; client certificates are *requested* and verified
//!   against our CA, so a certificate-bound token (RFC 8705) can be checked against the
//!   connection it arrives on.
//! - [`jwks`]: the realm's signing keys, found by OIDC discovery, parsed once, refreshed on an
//!   unknown `kid` at most once per interval, kept when Keycloak is down.
//! - [`token`]: the validation rules of docs/resource-server.md, in order, failing closed.
//! - [`introspect`]: optionally, Keycloak asked whether a locally valid token is still active.
//! - [`policy`]: the [`Authorized`] extractor, which also checks a DPoP proof (RFC 9449) where
//!   the token came with the `DPoP` scheme. A handler states its requirement in its signature
//!   (`Authorized<ReadUsers>`), like the seed's `@ScopesAllowed`, but scopes match whole tokens.
//! - [`api`]: the seed's endpoints over an in-memory store.

pub mod api;
pub mod config;
pub mod introspect;
pub mod jwk;
pub mod jwks;
pub mod policy;
pub mod server;
mod signed;
pub mod tls;
pub mod token;

pub use api::{AppState, router};
pub use config::{Algorithm, BindingMode, ClientCertSource, DpopConfig, ProxyTrust};
pub use introspect::{INTROSPECTION_CACHE_CAPACITY, IntrospectionConfig};
pub use jwks::JwksCache;
pub use playbook_dpop::{ProofAlgorithm, ProofRules};
pub use policy::{AuthError, Authorized, Policy, Refusal, Scheme};
pub use server::{
    DEFAULT_LEEWAY, DEFAULT_LISTEN, RETRY_INTERVAL, RunningServer, ServerConfig, ServerError,
};
pub use token::{
    CacheStats, TokenError, VERIFIED_CACHE_CAPACITY, Validator, ValidatorConfig, VerifiedToken,
};

/// The audience a token must name to be accepted here: the realm's bearer-only client.
pub use playbook_keycloak::RESOURCE_SERVER_CLIENT_ID as AUDIENCE;
