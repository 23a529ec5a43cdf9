//! The resource server against tokens signed with test keys, served by a local HTTPS JWKS
//! endpoint: one test per rule of docs/resource-server.md, each asserting status and challenge.

mod support;

mod binding;
mod claims;
mod dpop;
mod forwarded;
mod header;
mod introspection;
mod jwks;
mod policy;
mod properties;
