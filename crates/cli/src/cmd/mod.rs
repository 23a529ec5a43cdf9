//! One module per subcommand.

pub mod certs;
pub mod client;
pub mod demo;
pub mod doctor;
pub mod lab;
pub mod proof;
pub mod provider;
pub mod resource_server;

/// Exit codes a script can tell apart.
pub const EXIT_FAILURE: u8 = 1;
/// The other side said no: 401/403, a refused certificate, wrong admin password.
pub const EXIT_REFUSED: u8 = 3;
/// The other side could not be reached: connection, TLS, DNS.
pub const EXIT_UNREACHABLE: u8 = 4;

pub fn exit_code(error: &anyhow::Error) -> u8 {
    use playbook_keycloak::KeycloakError;
    use playbook_provider::ProviderError;
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<playbook_client::ClientError>() {
            if e.is_refusal() {
                return EXIT_REFUSED;
            }
            if e.is_unreachable() {
                return EXIT_UNREACHABLE;
            }
        }
        // A Keycloak error on its own, or inside the launcher's (which forwards it transparently).
        let keycloak = cause.downcast_ref::<KeycloakError>().or_else(|| {
            match cause.downcast_ref::<ProviderError>() {
                Some(ProviderError::Keycloak(e)) => Some(e),
                _ => None,
            }
        });
        if let Some(e) = keycloak {
            if e.is_refusal() {
                return EXIT_REFUSED;
            }
            if e.is_unreachable() {
                return EXIT_UNREACHABLE;
            }
        }
    }
    EXIT_FAILURE
}

/// Runs a Keycloak start (or `--prepare`) unless Ctrl-C or SIGTERM comes first. Then the start
/// is dropped, which stops the Keycloak it was starting and removes a class archive that one was
/// writing, and the command ends with one line instead of leaving either behind.
pub async fn unless_interrupted<T>(
    start: impl std::future::Future<Output = Result<T, playbook_provider::ProviderError>>,
) -> anyhow::Result<T> {
    tokio::select! {
        started = start => Ok(started?),
        _ = shutdown_signal() => anyhow::bail!("interrupted while starting Keycloak; it was stopped"),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Where `playbook provider` leaves the admin password of the Keycloak it started, so that
/// `playbook client` in another terminal can use it without the password ever being printed.
pub fn admin_password_file(certs_dir: &std::path::Path) -> std::path::PathBuf {
    certs_dir.join("keycloak-admin-password")
}

pub fn save_admin_password(
    certs_dir: &std::path::Path,
    password: &playbook_keycloak::Secret,
) -> anyhow::Result<std::path::PathBuf> {
    let path = admin_password_file(certs_dir);
    playbook_certs::write_private(&path, password.expose().as_bytes())?;
    Ok(path)
}
