//! The resource server against tokens signed with test keys, served by a local HTTPS JWKS
//! endpoint: one test per rule of DESIGN.md section 5, each asserting status and challenge.

mod support;

mod binding;
mod claims;
mod header;
mod jwks;
mod policy;
