//! Everything that can stop Keycloak from being there, each with what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "no Java 17+ found to run Keycloak natively ({found}); install OpenJDK 17 or newer and set JAVA_HOME, \
         or start Docker for the container backend"
    )]
    JavaMissing { found: String },

    #[error(
        "cannot get the Keycloak {version} distribution; tried: {tried}. Install Maven (mvn) or set \
         PLAYBOOK_KEYCLOAK_DIST to a keycloak-{version}.tar.gz or unpacked directory"
    )]
    DistributionUnavailable { version: String, tried: String },

    #[error("`{command}` failed: {reason}\n--- last lines of {log} ---\n{tail}")]
    BuildFailed {
        command: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },

    #[error(
        "Keycloak did not become ready: {reason}\ncommand: {command}\n--- last lines of {log} ---\n{tail}"
    )]
    StartFailed {
        reason: String,
        command: String,
        log: PathBuf,
        tail: String,
    },

    #[error(
        "port {port} is already in use (another Keycloak or `cargo playbook provider`?); stop it, or pass \
         --keycloak-port 0 / PLAYBOOK_KEYCLOAK_PORT=0 to pick a free port"
    )]
    PortTaken { port: u16 },

    #[error("the container backend cannot start Keycloak: {0}; is a Docker daemon running?")]
    Container(String),

    #[error(
        "the image {image} is not in the local Docker engine; build or pull it, or unset \
         PLAYBOOK_KEYCLOAK_IMAGE / --keycloak-image to have the playbook build its own"
    )]
    ImageMissing { image: String },

    #[error(
        "the image {image} was not built with the playbook's build options (missing {missing}), so \
         `start --optimized` cannot run it; build it FROM that image with oauth2-provider/Dockerfile \
         (docker build --build-arg KEYCLOAK_BASE={image} -t NAME oauth2-provider)"
    )]
    ImageNotOptimized { image: String, missing: String },

    #[error(
        "building the Keycloak image {image} failed ({reason}); \
         scripts/build-keycloak-image.sh runs the same build by hand\n--- last lines ---\n{tail}"
    )]
    ImageBuildFailed {
        image: String,
        reason: String,
        tail: String,
    },

    #[error("a {backend} Keycloak cannot be kept running: it was not started by this process")]
    NotDetachable { backend: String },

    #[error(
        "a Keycloak behind the proxy cannot be kept running: its proxy stops with this process, \
         and Keycloak alone would not be the topology asked for"
    )]
    NotDetachableBehindProxy,

    #[error(transparent)]
    Proxy(#[from] playbook_proxy::ProxyError),

    #[error(
        "the proxy and cluster topologies run Keycloak natively (a container's traffic does not \
         arrive from the proxy's own address); pass --keycloak-backend native, or --topology direct"
    )]
    ProxyNeedsNative,

    #[error(
        "the cluster topology needs PostgreSQL's server, which is not installed: install Debian's \
         `postgresql` package (apt-get install postgresql), or use another --topology"
    )]
    PostgresMissing,

    #[error("PostgreSQL did not start: {reason}\n--- last lines of its log ---\n{tail}")]
    PostgresFailed { reason: String, tail: String },

    /// Making a kept database (the cluster's, or one with a test run's extras) failed.
    #[error("could not prepare a kept database: {reason}")]
    KeptDatabase { reason: String },

    #[error("{name}: {reason}")]
    BadSetting { name: &'static str, reason: String },

    #[error("the external backend needs a URL: set PLAYBOOK_KEYCLOAK_URL or --keycloak-url")]
    ExternalWithoutUrl,

    /// Keycloak is there but does not answer as it should (unreachable, refused the admin).
    #[error(transparent)]
    Keycloak(#[from] playbook_keycloak::KeycloakError),

    #[error(transparent)]
    Tls(#[from] playbook_https::TlsMaterialError),

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ProviderError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub(crate) fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
