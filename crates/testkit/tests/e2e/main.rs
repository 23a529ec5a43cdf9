//! End-to-end tests against a real Keycloak (one per run, started by `playbook-testkit`).

mod client;
mod resource_server;
mod token;
