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
mod dpop;
mod lab;
mod proxy;
mod resource_server;
mod snapshot;
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

/// Whether `text` shows a compact JWT (a token, an assertion): two base64url JSON parts and a
/// dot. Not merely `eyJ`, which a thumbprint or a kid (random base64url) contains by chance.
fn shows_compact_jwt(text: &str) -> bool {
    static COMPACT_JWT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.").unwrap()
    });
    COMPACT_JWT.is_match(text)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `playbook demo --topology TOPOLOGY` against `keycloak` (the run's Keycloak of that topology)
/// as an external one, as people read it (no colour): its text, after checking that it exited 0
/// with the resource server's three answers in order (403, 200, 401), every exchange through
/// the proxy.
fn demo_through(keycloak: &playbook_provider::Keycloak, topology: &str) -> String {
    let realm = playbook_testkit::unique_realm(&format!("{topology}-demo"));
    let admin = keycloak.admin_credentials();
    let output = playbook_with(
        playbook_testkit::certs().files.dir(),
        &["demo", "--topology", topology, "--api-port", "0"],
        &[
            ("PLAYBOOK_KEYCLOAK_BACKEND", "external"),
            ("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str()),
            ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
            ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
            ("PLAYBOOK_REALM", &realm),
            ("NO_COLOR", "1"),
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{}\n{text}", stderr(&output));
    let answers: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ResourceServer ──▶ Client"))
        .map(str::trim)
        .collect();
    assert_eq!(answers.len(), 3, "{text}");
    assert!(answers[0].starts_with("403 insufficient_scope"), "{text}");
    assert!(answers[1].starts_with("200 OK"), "{text}");
    assert!(answers[2].starts_with("401 invalid_token"), "{text}");
    let arrows = text.matches(" ──▶ ").count();
    let via = text.matches("via          Proxy").count();
    assert_eq!(via * 2, arrows, "every exchange passes the proxy:\n{text}");
    text
}
