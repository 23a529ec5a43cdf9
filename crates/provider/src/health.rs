//! Readiness: Keycloak answers `/health/ready` with 200 only once its bootstrap is complete.

use std::time::{Duration, Instant};

use crate::{Keycloak, ProviderError};
use playbook_https::describe;

/// Why waiting stopped without a ready Keycloak.
pub(crate) enum NotReady {
    Exited(String),
    TimedOut(String),
}

/// Polls `health_url` until it answers 200, Keycloak dies (`exited` says so) or `timeout` passes.
pub(crate) async fn wait_ready(
    health_url: &str,
    ca_pem: &str,
    timeout: Duration,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<Duration, NotReady> {
    let started = Instant::now();
    let http = playbook_https::https_client(ca_pem).map_err(|e| NotReady::Exited(e.to_string()))?;
    loop {
        if let Some(status) = exited() {
            return Err(NotReady::Exited(status));
        }
        let last = match http.get(health_url).send().await {
            Ok(response) if response.status().is_success() => return Ok(started.elapsed()),
            Ok(response) => format!("{health_url} answered {}", response.status()),
            Err(error) => describe(&error),
        };
        if started.elapsed() > timeout {
            return Err(NotReady::TimedOut(format!(
                "not ready after {} s (last: {last})",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The Keycloak already serving the configured port, when the configuration says to attach to
/// one (`attach_running`, `auto`, no URL) and its TLS certificate is signed by our CA: one the
/// playbook started with these certificates, not a stranger that happens to hold the port.
pub(crate) async fn running_playbook_keycloak(
    config: &crate::ProviderConfig,
    ca_pem: &str,
) -> Option<url::Url> {
    let wanted = config.attach_running
        && config.backend == crate::BackendChoice::Auto
        && config.url.is_none()
        && config.https_port != 0;
    if !wanted || std::net::TcpListener::bind(("127.0.0.1", config.https_port)).is_ok() {
        return None;
    }
    let keycloak = playbook_keycloak::KeycloakUrl::local(config.https_port);
    let http = playbook_https::https_client(ca_pem).ok()?;
    let answer = http
        .get(keycloak.realm(playbook_keycloak::MASTER_REALM).discovery())
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    match answer {
        Ok(response) if response.status().is_success() => Some(keycloak.as_url().clone()),
        _ => None,
    }
}

/// Checks that an external Keycloak answers over TLS with our CA and serves the master realm.
pub(crate) async fn check_external(keycloak: &Keycloak) -> Result<(), ProviderError> {
    let http = playbook_https::https_client(keycloak.ca_pem())?;
    let url = keycloak.realm(playbook_keycloak::MASTER_REALM).discovery();
    let unreachable = |reason: String| {
        ProviderError::from(playbook_keycloak::KeycloakError::Unreachable {
            url: keycloak.base_url().to_string(),
            reason,
        })
    };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(describe(&e)))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(unreachable(format!(
            "discovery answered {}",
            response.status()
        )))
    }
}
