//! Keycloak in a container (testcontainers), configured like the native backend.
//!
//! Not exercised on machines without a Docker engine; it mirrors `native.rs` option for option:
//! the same image version, certificates, client-auth mode, truststore and health checks.

use std::time::Duration;

use playbook_certs::CertSet;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, CopyTargetOptions, GenericImage, ImageExt};
use url::Url;

use crate::health::{NotReady, wait_ready};
use crate::options::{
    Database, KcOption, TlsFiles, bootstrap_admin, build_options, server_options,
};
use crate::{
    AdminCredentials, KEYCLOAK_IMAGE, KEYCLOAK_VERSION, Progress, ProviderArgs, ProviderError,
};

const HTTPS_PORT: u16 = 8443;
const MANAGEMENT_PORT: u16 = 9000;
const CERT_DIR: &str = "/opt/keycloak/conf/playbook";

/// The container's whole Keycloak configuration: the native backend's build and server options,
/// with an in-memory database and paths inside the image.
fn environment(admin: &AdminCredentials) -> Vec<(String, String)> {
    let tls = TlsFiles {
        certificate: format!("{CERT_DIR}/keycloak.pem"),
        key: format!("{CERT_DIR}/keycloak-key.pem"),
        client_ca: format!("{CERT_DIR}/ca.pem"),
    };
    // The host port is only known after start, so the issuer follows the request's host.
    let local = [KcOption::new("hostname-strict", "false")];
    build_options(Database::DevMem)
        .into_iter()
        .chain(server_options(&tls, HTTPS_PORT))
        .chain(local)
        .chain(bootstrap_admin(admin))
        .map(|option| option.env())
        .collect()
}

pub(crate) struct ContainerKeycloak {
    container: ContainerAsync<GenericImage>,
}

impl ContainerKeycloak {
    pub(crate) async fn stop(self) {
        let _ = self.container.rm().await;
    }

    /// Removes the container without an async runtime (for exit hooks); idempotent.
    pub(crate) fn terminate(&self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", "--volumes", self.container.id()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Whether a Docker daemon answers (not just a `docker` client being installed).
pub(crate) async fn docker_answers() -> bool {
    let probe = tokio::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(tokio::time::timeout(Duration::from_secs(5), probe).await, Ok(Ok(status)) if status.success())
}

pub(crate) async fn start(
    args: &ProviderArgs,
    certs: &CertSet,
    progress: &dyn Progress,
) -> Result<(ContainerKeycloak, Url, AdminCredentials), ProviderError> {
    let admin = args.admin_credentials_or_random();
    let file = |name: &str| format!("{CERT_DIR}/{name}");
    // The image runs as uid 1000 in group 0, so group-readable is the tightest mode that works.
    let private = |name: &str| CopyTargetOptions::new(file(name)).with_mode(0o640);
    let mut image = GenericImage::new(KEYCLOAK_IMAGE, KEYCLOAK_VERSION)
        .with_exposed_port(HTTPS_PORT.tcp())
        .with_exposed_port(MANAGEMENT_PORT.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Listening on"))
        .with_copy_to(
            file("keycloak.pem"),
            certs.keycloak.cert_pem().as_bytes().to_vec(),
        )
        .with_copy_to(
            private("keycloak-key.pem"),
            certs.keycloak.key_pem().as_bytes().to_vec(),
        )
        .with_copy_to(file("ca.pem"), certs.ca_pem.as_bytes().to_vec())
        .with_cmd(["start"])
        .with_startup_timeout(args.start_timeout());
    for (name, value) in environment(&admin) {
        image = image.with_env_var(name, value);
    }
    progress.stage(&format!(
        "starting Keycloak {KEYCLOAK_VERSION} (container {KEYCLOAK_IMAGE})"
    ));
    let container = image
        .start()
        .await
        .map_err(|e| ProviderError::Container(e.to_string()))?;
    let port = |p: u16| container.get_host_port_ipv4(p.tcp());
    let https = port(HTTPS_PORT)
        .await
        .map_err(|e| ProviderError::Container(e.to_string()))?;
    let management = port(MANAGEMENT_PORT)
        .await
        .map_err(|e| ProviderError::Container(e.to_string()))?;
    let base_url = Url::parse(&format!("https://localhost:{https}/")).expect("valid URL");
    let health = format!("https://localhost:{management}/health/ready");
    match wait_ready(&health, &certs.ca_pem, args.start_timeout(), || None).await {
        Ok(took) => {
            progress.finished(&format!(
                "Keycloak ready at {base_url} in {:.1} s",
                took.as_secs_f64()
            ));
            Ok((ContainerKeycloak { container }, base_url, admin))
        }
        Err(NotReady::Exited(reason) | NotReady::TimedOut(reason)) => {
            let logs = container.stdout_to_vec().await.unwrap_or_default();
            let text = String::from_utf8_lossy(&logs);
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            let _ = container.rm().await;
            Err(ProviderError::Container(format!(
                "{reason}\n--- last lines of the container log ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    /// Docker is not needed to check what the container would be told.
    #[test]
    fn container_gets_the_native_configuration_as_environment() {
        let admin = AdminCredentials::new("admin", Secret::new("s3cret"));
        let env = environment(&admin);
        let has = |name: &str, value: &str| env.contains(&(name.into(), value.into()));
        assert!(has("KC_HTTPS_CLIENT_AUTH", "request"));
        assert!(has("KC_HEALTH_ENABLED", "true"));
        assert!(has("KC_DB", "dev-mem"));
        assert!(has("KC_HTTP_ENABLED", "false"));
        assert!(has("KC_HTTPS_PORT", "8443"));
        assert!(has(
            "KC_HTTPS_CERTIFICATE_FILE",
            &format!("{CERT_DIR}/keycloak.pem")
        ));
        assert!(has(
            "KC_HTTPS_CERTIFICATE_KEY_FILE",
            &format!("{CERT_DIR}/keycloak-key.pem")
        ));
        assert!(has("KC_TRUSTSTORE_PATHS", &format!("{CERT_DIR}/ca.pem")));
        assert!(has("KC_BOOTSTRAP_ADMIN_PASSWORD", "s3cret"));
        for option in crate::options::build_options(Database::DevFile) {
            let (name, value) = option.env();
            assert!(
                name == "KC_DB" || has(&name, &value),
                "the container misses the native build option {name}={value}"
            );
        }
    }
}
