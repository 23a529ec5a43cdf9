//! The `playbook` binary as users run it: its exit codes, its one-line errors, and the whole demo
//! against a real Keycloak (started by the demo itself, as `cargo demo` does).

mod demo;
mod errors;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `playbook` with `args`, no terminal and no input, as a script or CI would.
fn playbook(certs_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_playbook"))
        .arg("--certs-dir")
        .arg(certs_dir)
        .args(args)
        // Backtraces are on in this workspace's shells; errors must still be one line.
        .env("RUST_BACKTRACE", "1")
        .env_remove("PLAYBOOK_KEYCLOAK_URL")
        .env_remove("PLAYBOOK_KEYCLOAK_BACKEND")
        .stdin(Stdio::null())
        .output()
        .expect("the playbook binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
