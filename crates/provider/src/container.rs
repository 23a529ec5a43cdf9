//! Keycloak in a container (testcontainers), configured like the native backend.
//!
//! The image is the optimized one of `oauth2-provider/Dockerfile` (see `image.rs`), started with
//! `start --optimized`. It listens on the same host port as a native Keycloak would (9443 unless
//! told otherwise), on loopback only, and advertises `https://localhost:<port>` as its hostname,
//! so every later step of the tutorial works unchanged whichever backend runs it.

use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playbook_certs::CertSet;
use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, CopyTargetOptions, GenericImage, ImageExt};
use url::Url;

use crate::config::{ensure_free, port_or_free};
use crate::health::{NotReady, wait_ready};
use crate::options::{KcOption, TlsFiles, bootstrap_admin, server_options};
use crate::{KEYCLOAK_VERSION, Progress, ProviderConfig, ProviderError};
use playbook_keycloak::AdminCredentials;

const HTTPS_PORT: u16 = 8443;
const MANAGEMENT_PORT: u16 = 9000;
const CERT_DIR: &str = "/opt/keycloak/conf/playbook";
/// Marks every container this backend starts, so that leftovers can be found:
/// `docker ps -a --filter label=oauth2-playbook`.
pub const CONTAINER_LABEL: &str = "oauth2-playbook";

/// Removes the container named by `$1` as soon as its stdin reaches EOF. Our process holds the
/// only write end of that pipe, so the container goes with us however we end, SIGKILL included.
/// It runs in a process group of its own, so the terminal's Ctrl-C does not end it before it
/// has done its job.
const REAPER: &str = r#"while read -r _; do :; done
exec docker rm --force --volumes "$1" >/dev/null 2>&1
"#;

/// The container's runtime configuration: the native backend's server options with paths inside
/// the image; the build options are baked into the image.
fn environment(admin: &AdminCredentials, host_port: u16) -> Vec<(String, String)> {
    let tls = TlsFiles {
        certificate: format!("{CERT_DIR}/keycloak.pem"),
        key: format!("{CERT_DIR}/keycloak-key.pem"),
        client_ca: format!("{CERT_DIR}/ca.pem"),
    };
    let local = [
        // The URL clients use, not the one inside the container: tokens carry it as `iss`.
        KcOption::new("hostname", crate::options::hostname(host_port)),
        // Inside a container, loopback is unreachable through the published port.
        KcOption::new("http-host", "0.0.0.0"),
    ];
    local
        .into_iter()
        .chain(server_options(&tls, HTTPS_PORT))
        .chain(bootstrap_admin(admin))
        .map(|option| option.env())
        .collect()
}

/// Publishes the HTTPS port on `https` and the management port on a port Docker picks, both
/// on loopback only (testcontainers' own mapping would publish on every interface).
fn publish_on_loopback(https: u16) -> impl Fn(&mut HostConfig) + Send + Sync + 'static {
    move |host: &mut HostConfig| {
        let on_loopback = |port: String| {
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(port),
            }])
        };
        host.publish_all_ports = Some(false);
        host.port_bindings = Some(
            [
                (format!("{HTTPS_PORT}/tcp"), on_loopback(https.to_string())),
                (format!("{MANAGEMENT_PORT}/tcp"), on_loopback(String::new())),
            ]
            .into(),
        );
    }
}

pub(crate) struct ContainerKeycloak {
    container: ContainerAsync<GenericImage>,
    /// Kept open only to keep the reaper waiting; closing it removes the container.
    lifeline: Mutex<Option<ChildStdin>>,
}

impl ContainerKeycloak {
    pub(crate) async fn stop(self) {
        let _ = self.container.rm().await;
        crate::reuse::take(&self.lifeline);
    }

    /// Lets the container outlive this handle: its lifeline (the reaper removes it when that
    /// closes). `ContainerAsync` removes its container when dropped and cannot be told
    /// otherwise, so it is forgotten instead.
    pub(crate) fn detach(self) -> Option<crate::reuse::Lifeline> {
        let pipe = crate::reuse::take(&self.lifeline)?;
        std::mem::forget(self.container);
        Some(crate::reuse::Lifeline {
            pipe: pipe.into(),
            leftovers: Vec::new(),
        })
    }

    /// Removes the container without an async runtime (for exit hooks); idempotent.
    pub(crate) fn terminate(&self) {
        crate::reuse::take(&self.lifeline);
        let _ = Command::new("docker")
            .args(["rm", "--force", "--volumes", self.container.id()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether a Docker daemon answers (not just a `docker` client being installed).
pub(crate) async fn docker_answers() -> bool {
    let probe = tokio::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(tokio::time::timeout(Duration::from_secs(5), probe).await, Ok(Ok(status)) if status.success())
}

pub(crate) async fn start(
    args: &ProviderConfig,
    certs: &CertSet,
    progress: &Arc<dyn Progress>,
) -> Result<(ContainerKeycloak, Url, AdminCredentials), ProviderError> {
    let https = port_or_free(args.https_port)
        .map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
    ensure_free(https)?;
    let image = {
        let (args, progress) = (args.clone(), progress.clone());
        tokio::task::spawn_blocking(move || crate::image::ensure(&args, progress.as_ref()))
            .await
            .expect("the image task does not panic")?
    };
    let (name, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
    let admin = args.admin_credentials_or_random();
    let file = |name: &str| format!("{CERT_DIR}/{name}");
    // The image runs as uid 1000 in group 0, so group-readable is the tightest mode that works.
    let private = |name: &str| CopyTargetOptions::new(file(name)).with_mode(0o640);
    let mut request = GenericImage::new(name, tag)
        .with_exposed_port(HTTPS_PORT.tcp())
        .with_exposed_port(MANAGEMENT_PORT.tcp())
        .with_label(CONTAINER_LABEL, KEYCLOAK_VERSION)
        .with_copy_to(
            file("keycloak.pem"),
            certs.keycloak.cert_pem().as_bytes().to_vec(),
        )
        .with_copy_to(
            private("keycloak-key.pem"),
            certs.keycloak.key_pem().as_bytes().to_vec(),
        )
        .with_copy_to(file("ca.pem"), certs.ca_pem.as_bytes().to_vec())
        .with_cmd(["start", "--optimized"])
        .with_host_config_modifier(publish_on_loopback(https))
        .with_startup_timeout(args.start_timeout());
    for (name, value) in environment(&admin, https) {
        request = request.with_env_var(name, value);
    }
    request = request.with_env_var("JAVA_OPTS_APPEND", crate::options::COLLECTOR);
    let base_url = playbook_keycloak::KeycloakUrl::local(https)
        .as_url()
        .clone();
    progress.stage(&format!(
        "starting Keycloak {KEYCLOAK_VERSION} (container {image}) on {base_url}"
    ));
    let container = request
        .start()
        .await
        .map_err(|e| ProviderError::Container(e.to_string()))?;
    let keycloak = ContainerKeycloak {
        lifeline: Mutex::new(reaper(container.id())),
        container,
    };
    let management = keycloak
        .container
        .get_host_port_ipv4(MANAGEMENT_PORT.tcp())
        .await
        .map_err(|e| ProviderError::Container(e.to_string()))?;
    let health = playbook_https::local_url(management)
        .join("health/ready")
        .expect("a static path")
        .to_string();
    let id = keycloak.container.id().to_owned();
    match wait_ready(&health, &certs.ca_pem, args.start_timeout(), || exited(&id)).await {
        Ok(took) => {
            progress.finished(&format!(
                "Keycloak ready at {base_url} in {:.1} s (container)",
                took.as_secs_f64()
            ));
            Ok((keycloak, base_url, admin))
        }
        Err(NotReady::Exited(reason) | NotReady::TimedOut(reason)) => {
            let mut logs = keycloak.container.stdout_to_vec().await.unwrap_or_default();
            logs.extend(keycloak.container.stderr_to_vec().await.unwrap_or_default());
            let text = String::from_utf8_lossy(&logs);
            let lines: Vec<&str> = text.lines().collect();
            keycloak.stop().await;
            Err(ProviderError::Container(format!(
                "{reason}\n--- last lines of the container log ---\n{}",
                lines[lines.len().saturating_sub(25)..].join("\n")
            )))
        }
    }
}

/// Starts the reaper of container `id` and returns the write end of its lifeline.
fn reaper(id: &str) -> Option<ChildStdin> {
    use std::os::unix::process::CommandExt;
    let child = Command::new("/bin/sh")
        .args(["-c", REAPER, "keycloak-reaper", id])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    match child {
        Ok(mut child) => child.stdin.take(),
        Err(error) => {
            tracing::warn!(%error, "no reaper for the Keycloak container: it is removed only on a clean exit");
            None
        }
    }
}

/// `Some(state)` once the container is no longer running, e.g. Keycloak refused its options.
fn exited(id: &str) -> Option<String> {
    let output = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            id,
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match state.split_once(' ') {
        Some(("running" | "created" | "restarting", _)) => None,
        Some((status, code)) => Some(format!("the container is {status} (exit code {code})")),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use playbook_keycloak::Secret;

    /// Docker is not needed to check what the container would be told.
    #[test]
    fn container_gets_the_native_configuration_as_environment() {
        let admin = AdminCredentials::new("admin", Secret::new("s3cret"));
        let env = environment(&admin, 9443);
        let has = |name: &str, value: &str| env.contains(&(name.into(), value.into()));
        assert!(has("KC_HOSTNAME", "https://localhost:9443"));
        assert!(has("KC_HTTP_HOST", "0.0.0.0"));
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
    }

    #[test]
    fn ports_are_published_on_loopback_only() {
        let mut host = HostConfig::default();
        publish_on_loopback(9443)(&mut host);
        let bindings = host.port_bindings.expect("bindings");
        let https = bindings["8443/tcp"].as_ref().expect("published");
        assert_eq!(https[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(https[0].host_port.as_deref(), Some("9443"));
        let management = bindings["9000/tcp"].as_ref().expect("published");
        assert_eq!(management[0].host_ip.as_deref(), Some("127.0.0.1"));
    }
}
