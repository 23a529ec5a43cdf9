//! How to choose and configure the Keycloak backend: flags with environment fallbacks.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::admin::{AdminCredentials, Secret};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// External if a URL is given, else a container if Docker answers, else native.
    Auto,
    /// Keycloak's server distribution run with the local Java.
    Native,
    /// The Keycloak image, through Docker.
    Container,
    /// A Keycloak that is already running (e.g. oauth2-provider/start.sh).
    External,
}

/// What actually runs Keycloak, once `auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Container,
    External,
}

/// Keycloak options shared by every command that needs a Keycloak.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderArgs {
    /// Which Keycloak to use.
    #[arg(long = "keycloak-backend", env = "PLAYBOOK_KEYCLOAK_BACKEND", value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// URL of an already running Keycloak (selects the external backend under `auto`).
    #[arg(long = "keycloak-url", env = "PLAYBOOK_KEYCLOAK_URL")]
    pub url: Option<Url>,

    /// Keycloak admin user (master realm).
    #[arg(
        long = "keycloak-admin-user",
        env = "PLAYBOOK_KEYCLOAK_ADMIN_USER",
        default_value = "admin"
    )]
    pub admin_user: String,

    /// Keycloak admin password; a started Keycloak gets a random one when unset,
    /// an external one is assumed to use the seed's `admin`.
    #[arg(
        long = "keycloak-admin-password",
        env = "PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,

    /// HTTPS port of a started Keycloak; 0 picks a free one.
    #[arg(
        long = "keycloak-port",
        env = "PLAYBOOK_KEYCLOAK_PORT",
        default_value_t = 9443
    )]
    pub https_port: u16,

    /// A Keycloak distribution (.tar.gz or unpacked directory) to use instead of downloading one.
    #[arg(long = "keycloak-dist", env = "PLAYBOOK_KEYCLOAK_DIST")]
    pub dist: Option<PathBuf>,

    /// The Keycloak image of the container backend; unset, the playbook's optimized image,
    /// built on first use.
    #[arg(long = "keycloak-image", env = "PLAYBOOK_KEYCLOAK_IMAGE")]
    pub image: Option<String>,

    /// The Java that runs a native Keycloak (a `java` binary or a JDK home); unset, the newest
    /// one Keycloak supports among JAVA_HOME, PATH and /usr/lib/jvm.
    #[arg(long = "java", env = "PLAYBOOK_JAVA")]
    pub java: Option<PathBuf>,

    /// Where downloaded and built Keycloak distributions are kept.
    #[arg(long = "cache-dir", env = "PLAYBOOK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Seconds to wait for a started Keycloak to become ready.
    #[arg(
        long = "keycloak-start-timeout",
        env = "PLAYBOOK_KEYCLOAK_START_TIMEOUT",
        default_value_t = 180
    )]
    pub start_timeout_secs: u64,
}

impl ProviderArgs {
    /// The options as the environment alone sets them (what the tests use).
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct EnvOnly {
            #[command(flatten)]
            args: ProviderArgs,
        }
        <EnvOnly as clap::Parser>::parse_from(["playbook"]).args
    }

    pub(crate) fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }

    /// Decides `auto`: external if a URL is given, else container if Docker answers, else native.
    pub async fn resolve_backend(&self) -> Backend {
        match self.backend {
            BackendChoice::Native => Backend::Native,
            BackendChoice::Container => Backend::Container,
            BackendChoice::External => Backend::External,
            BackendChoice::Auto if self.url.is_some() => Backend::External,
            BackendChoice::Auto if crate::container::docker_answers().await => Backend::Container,
            BackendChoice::Auto => Backend::Native,
        }
    }

    /// The admin credentials to give a Keycloak we start: the configured ones or a random password.
    pub(crate) fn admin_credentials_or_random(&self) -> AdminCredentials {
        let password = self.admin_password.clone().unwrap_or_else(random_password);
        AdminCredentials::new(self.admin_user.clone(), Secret::new(password))
    }

    /// The admin credentials of an external Keycloak: the configured ones or the seed's default.
    pub(crate) fn admin_credentials_or_default(&self) -> AdminCredentials {
        let password = self
            .admin_password
            .clone()
            .unwrap_or_else(|| "admin".into());
        AdminCredentials::new(self.admin_user.clone(), Secret::new(password))
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("oauth2-playbook")
    }
}

pub(crate) fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// A free TCP port on loopback, for Keycloak to bind.
pub(crate) fn free_port() -> std::io::Result<u16> {
    // Below the kernel's ephemeral range: a port from bind(0) comes from that range, where any
    // outgoing connection may take it as its local port before Keycloak binds it (seen here as
    // "Unable to start the management interface … Address already in use").
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let floor = if ephemeral_start > 21_000 {
        20_000
    } else {
        1024
    };
    for _ in 0..64 {
        let port = rand::random_range(floor..ephemeral_start.max(floor + 1));
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Fails with a clear line when the port is taken, instead of a Java stack trace later.
pub(crate) fn ensure_free(port: u16) -> Result<(), crate::ProviderError> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|_| crate::ProviderError::PortTaken { port })
}

/// `port`, or a free one when it is 0.
pub(crate) fn port_or_free(port: u16) -> std::io::Result<u16> {
    if port == 0 { free_port() } else { Ok(port) }
}
