//! Every test of the workspace that needs a real Keycloak, in one binary so that one Keycloak
//! (started by `playbook-testkit` on first use) serves the whole `cargo test`: the `playbook`
//! binary as users run it (exit codes, one-line errors, the whole demo), the client, tokens, and
//! the resource server against real tokens.

mod auth;
mod cli_errors;
mod client;
mod cluster;
mod demo;
mod docs;
mod doctor;
mod lab;
mod proxy;
mod resource_server;
mod stage;
mod token;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `playbook` with `args`, no terminal and no input, as a script or CI would.
fn playbook(certs_dir: &Path, args: &[&str]) -> Output {
    playbook_with(certs_dir, args, &[])
}

/// [`playbook`] with environment variables set after the Keycloak ones are cleared.
fn playbook_with(certs_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_playbook"))
        .arg("--certs-dir")
        .arg(certs_dir)
        .args(args)
        // Backtraces are on in this workspace's shells; errors must still be one line.
        .env("RUST_BACKTRACE", "1")
        .env_remove("PLAYBOOK_KEYCLOAK_URL")
        .env_remove("PLAYBOOK_KEYCLOAK_BACKEND")
        .env_remove("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD")
        .env_remove("PLAYBOOK_KEYCLOAK_PORT")
        .env_remove("PLAYBOOK_API_PORT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the playbook binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
