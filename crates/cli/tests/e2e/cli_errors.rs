//! Failures that need no Keycloak: each is one readable line and a distinct exit code.

use super::{playbook, playbook_with, stderr};

/// The `error:` lines of a run, which must be exactly one, and no panic or backtrace.
fn the_error_line(output: &std::process::Output) -> String {
    let text = stderr(output);
    assert!(
        !text.contains("panicked") && !text.contains("stack backtrace"),
        "{text}"
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "expected one error line in:\n{text}");
    errors[0].to_owned()
}

/// The exit code, and one error line that says every one of `needles`.
fn assert_fails(output: &std::process::Output, code: i32, needles: &[&str]) {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    let line = the_error_line(output);
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }
}

#[test]
fn an_unreachable_keycloak_exits_4_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    assert!(playbook(&certs_dir, &["certs"]).status.success());
    let output = playbook(
        &certs_dir,
        &[
            "client",
            "--keycloak-url",
            // Port 1 on loopback: nothing listens there.
            "https://localhost:1",
            "--keycloak-admin-password",
            "unused",
        ],
    );
    assert_fails(
        &output,
        4,
        &[
            "cannot reach Keycloak at https://localhost:1",
            "`cargo playbook provider` starts one",
        ],
    );
}

#[test]
fn missing_certificates_name_the_command_that_makes_them() {
    let dir = tempfile::tempdir().unwrap();
    let output = playbook(
        &dir.path().join("empty"),
        &["client", "--keycloak-url", "https://localhost:1"],
    );
    assert_fails(
        &output,
        1,
        &[
            "no certificates in",
            "run `cargo playbook certs` to make them",
        ],
    );
}

#[test]
fn a_bad_flag_exits_2_with_usage() {
    let dir = tempfile::tempdir().unwrap();
    let output = playbook(dir.path(), &["client", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("unexpected argument '--no-such-flag'"),
        "{text}"
    );
    assert!(text.contains("Usage: playbook client"), "{text}");
}

/// The certificate client always binds; asking it for a bearer token is refused before anything
/// starts, saying which methods can.
#[test]
fn a_certificate_client_without_binding_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = playbook(
        &dir.path().join("certs"),
        &["demo", "--auth", "mtls", "--bind", "none"],
    );
    assert_fails(&output, 1, &["--auth mtls always binds", "another --auth"]);
}

/// `demo` and `lab` attach only to a Keycloak whose certificate our CA signed: whatever else
/// holds the port is not mistaken for one, and the port is reported as taken.
#[test]
fn a_keycloak_port_held_by_a_stranger_is_reported_not_attached_to() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stranger.local_addr().unwrap().port().to_string();
    let output = playbook_with(
        &dir.path().join("certs"),
        &["lab", "wrong-audience", "--api-port", "0"],
        &[("PLAYBOOK_KEYCLOAK_PORT", &port)],
    );
    let taken_message = format!("port {port} is already in use");
    assert_fails(&output, 1, &[&taken_message]);
    assert!(
        !stderr(&output).contains("already running"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_taken_api_port_fails_before_keycloak_starts() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = playbook(
        &dir.path().join("certs"),
        &["demo", "--api-port", &port, "--keycloak-port", "0"],
    );
    let taken_message = format!("port {port} is already in use");
    assert_fails(&output, 1, &[&taken_message, "--api-port 0"]);
    // Keycloak never started: the port was checked first.
    assert!(
        !stderr(&output).contains("starting Keycloak"),
        "{}",
        stderr(&output)
    );
}

/// `doctor --preflight` starts nothing and answers at once, one line per thing a class needs;
/// a taken stage port fails it with what to do.
#[test]
fn the_preflight_checks_a_rooms_machine_without_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let output = playbook(
        dir.path(),
        &["doctor", "--preflight", "--stage-port", &port],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    for check in [
        "Keycloak backends:",
        "Keycloak build:",
        "ports:",
        "audience page:",
        "browser:",
        "reverse proxy:",
        "cluster database:",
        "terminal:",
        "disk:",
    ] {
        assert!(text.contains(check), "{check} missing from:\n{text}");
    }
    assert!(
        text.contains(&format!("✗ stage port: port {port}, the stage's, is taken")),
        "{text}"
    );
    assert!(text.contains("--stage-port 0"), "{text}");
}

/// The proxy topology's wrong combinations are said in one line before anything starts: its
/// scenarios without the proxy, and a Keycloak container behind it.
#[test]
fn the_proxy_topology_refuses_what_cannot_work_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = playbook(dir.path(), &["lab", "forged-header-to-api"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let said = stderr(&output);
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(said.contains("run it with --topology proxy"), "{said}");
    assert!(!dir.path().join("keycloak-admin-password").exists());

    let output = playbook(
        dir.path(),
        &[
            "provider",
            "--topology",
            "proxy",
            "--keycloak-backend",
            "container",
            "--keycloak-port",
            "0",
        ],
    );
    let said = stderr(&output);
    assert_ne!(output.status.code(), Some(0), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(
        said.contains("pass --keycloak-backend native, or --topology direct"),
        "{said}"
    );
}
