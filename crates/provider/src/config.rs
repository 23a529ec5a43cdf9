//! How to choose and configure the Keycloak backend: a plain configuration with its defaults,
//! and the environment variables that set it. The `playbook` CLI declares the matching flags
//! (naming these variables); tests read the environment alone.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use playbook_keycloak::{AdminCredentials, DEFAULT_HTTPS_PORT, Secret};

/// The environment variables of [`ProviderConfig::from_env`], one per field.
pub mod env {
    pub const BACKEND: &str = "PLAYBOOK_KEYCLOAK_BACKEND";
    pub const URL: &str = "PLAYBOOK_KEYCLOAK_URL";
    pub const ADMIN_USER: &str = "PLAYBOOK_KEYCLOAK_ADMIN_USER";
    pub const ADMIN_PASSWORD: &str = "PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD";
    pub const PORT: &str = "PLAYBOOK_KEYCLOAK_PORT";
    pub const DIST: &str = "PLAYBOOK_KEYCLOAK_DIST";
    pub const IMAGE: &str = "PLAYBOOK_KEYCLOAK_IMAGE";
    pub const JAVA: &str = "PLAYBOOK_JAVA";
    pub const CACHE_DIR: &str = "PLAYBOOK_CACHE_DIR";
    pub const START_TIMEOUT: &str = "PLAYBOOK_KEYCLOAK_START_TIMEOUT";
    pub const DB_URL: &str = "PLAYBOOK_DB_URL";
    pub const DB_USER: &str = "PLAYBOOK_DB_USER";
    pub const DB_PASSWORD: &str = "PLAYBOOK_DB_PASSWORD";
    pub const SNAPSHOTS: &str = "PLAYBOOK_KEYCLOAK_SNAPSHOTS";
    pub const CRIU: &str = "PLAYBOOK_CRIU";
}

/// The master-realm admin a started Keycloak is bootstrapped with.
pub const DEFAULT_ADMIN_USER: &str = "admin";
/// The password the seed's Keycloak uses, assumed for an external one when none is given.
pub const SEED_ADMIN_PASSWORD: &str = "admin";

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// External if a URL is given, else a container if Docker answers, else native.
    #[default]
    Auto,
    /// Keycloak's server distribution run with the local Java.
    Native,
    /// The Keycloak image, through Docker.
    Container,
    /// A Keycloak that is already running (e.g. oauth2-provider/start.sh).
    External,
}

impl BackendChoice {
    pub const ALL: [Self; 4] = [Self::Auto, Self::Native, Self::Container, Self::External];

    /// The one name of each choice: what the flag, the variable and `from_env` take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Container => "container",
            Self::External => "external",
        }
    }
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let names: Vec<&str> = Self::ALL.map(Self::name).to_vec();
        Self::ALL
            .into_iter()
            .find(|choice| choice.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("`{name}` is not one of {}", names.join(", ")))
    }
}

/// The flag's possible values, from the same names (the CLI enables the `clap` feature).
#[cfg(feature = "clap")]
impl clap::ValueEnum for BackendChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// When the native backend snapshots Keycloak (see `snapshot.rs`; needs root and CRIU 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotPolicy {
    /// Never: every start is a start.
    Off,
    /// From the second start of a configuration on: one started once (a throwaway
    /// certificates directory) is not worth a snapshot's ~10 s and ~430 MB.
    #[default]
    Repeated,
    /// From the first start on: for a configuration known to come back, like the tests'.
    Always,
}

impl SnapshotPolicy {
    pub const ALL: [Self; 3] = [Self::Off, Self::Repeated, Self::Always];

    /// The one name of each: what the flag, the variable and `from_env` take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Repeated => "repeated",
            Self::Always => "always",
        }
    }
}

impl FromStr for SnapshotPolicy {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let names: Vec<&str> = Self::ALL.map(Self::name).to_vec();
        Self::ALL
            .into_iter()
            .find(|policy| policy.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("`{name}` is not one of {}", names.join(", ")))
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for SnapshotPolicy {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// What actually runs Keycloak, once `auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Container,
    External,
}

/// Everything that decides which Keycloak runs and how; [`Default`] is the tutorial's setup.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub backend: BackendChoice,
    /// An already running Keycloak (selects the external backend under `auto`).
    pub url: Option<Url>,
    pub admin_user: String,
    /// Unset: a started Keycloak gets a random one, an external one is assumed to use the seed's.
    pub admin_password: Option<Secret>,
    /// The password the playbook Keycloak already running on `https_port` was started with
    /// (`playbook provider` saves it beside the certificates): used only when attaching to it.
    pub saved_admin_password: Option<Secret>,
    /// HTTPS port of a started Keycloak, on either backend; 0 picks a free one.
    pub https_port: u16,
    /// A distribution (.tar.gz or unpacked directory) to use instead of downloading one.
    pub dist: Option<PathBuf>,
    /// The container image; unset, the playbook's optimized image, built on first use.
    pub image: Option<String>,
    /// The Java of a native Keycloak (a `java` binary or a JDK home); unset, the newest
    /// supported one found.
    pub java: Option<PathBuf>,
    /// Where distributions, builds and kept instances live; unset, the per-user cache.
    pub cache_dir: Option<PathBuf>,
    pub start_timeout: Duration,
    /// Under `auto` with no URL: use the playbook Keycloak already serving `https_port` (its
    /// certificate signed by our CA, e.g. the tutorial's `playbook provider`) instead of
    /// stopping at a taken port. For commands that only need a Keycloak (`demo`, `lab`), not
    /// for `provider`, whose job is to own one.
    pub attach_running: bool,
    /// Where the client's TLS ends. Behind a proxy, `https_port` is the proxy's and Keycloak
    /// itself serves on a free port, reading client certificates from the proxy's header.
    pub topology: crate::Topology,
    /// The cluster topology's database: an external PostgreSQL's JDBC URL
    /// (`jdbc:postgresql://host:5432/keycloak`); unset, the playbook runs its own.
    pub db_url: Option<String>,
    /// The external database's user.
    pub db_user: String,
    pub db_password: Option<Secret>,
    /// Native backend: when to snapshot Keycloak and restore it instead of starting it (needs
    /// root and CRIU 4; see `snapshot.rs`). Without CRIU this changes nothing.
    pub snapshots: SnapshotPolicy,
    /// The `criu` binary; unset, the one `scripts/install-criu.sh` built, else `criu` on PATH.
    pub criu: Option<PathBuf>,
    /// What a snapshot is made with beyond the warm-up: a test run's (see [`SnapshotExtras`]).
    pub snapshot_extras: SnapshotExtras,
    /// Work run once against a Keycloak before its snapshot is taken (see [`Training`]).
    pub snapshot_training: Option<Training>,
    /// Keycloak lives one test run (a minute or two; one kept between runs, a run or two, until
    /// its spares run low) and serves a few hundred requests: a cluster's nodes compile with C1
    /// only (see [`crate::options::QUICK_COMPILER`]), and a restored Keycloak compiles no new
    /// code with C2 (see `compiler.rs`). A Keycloak kept for a demo, a room or a lab leaves this
    /// off.
    pub short_lived: bool,
}

/// What a test run's Keycloak is made with, paid once (~0.5 s a spare realm): added to a database kept beside
/// the build, which every later start copies, and so in every snapshot made from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotExtras {
    /// Spare realms, for the run to claim instead of importing realms (see
    /// `playbook_keycloak::RealmOrigin`).
    pub spare_realms: usize,
    /// The master realm hashes the admin's password with one PBKDF2 round instead of Argon2:
    /// a login then costs Keycloak ~0 instead of ~0.13 s of CPU, and a test run's tests and the
    /// commands they run log in ~100 times. For a throwaway Keycloak with a random password
    /// only.
    pub quick_admin_login: bool,
    /// The admin trades master's `admin` role for `create-realm` before the spares are made,
    /// so that Keycloak grants it each realm it makes from then on directly
    /// (`playbook_keycloak::Admin::narrow_to_realm_creation`): a permission check is then a
    /// lookup instead of a walk through ~17 roles per realm the server holds (21 % of a test
    /// run's Keycloak CPU, profiled). It can manage only those realms: for a Keycloak whose
    /// realms are all made so, a test run's.
    pub narrow_admin: bool,
}

/// Work a Keycloak is put through once before its snapshot is taken, after the warm-up: a test
/// run's lab, whose requests a JVM restored from that
/// snapshot then serves with code already compiled. A JVM compiles what it runs often; what it
/// compiled before the snapshot is in it, what it did not is compiled at every restore: over one
/// test run, C2 took ~22 s of the run's Keycloak's ~75 s of CPU. The crates above the provider
/// know that work, so it is handed in as a function.
#[derive(Clone)]
pub struct Training {
    /// Part of the snapshot's identity: other work makes another snapshot.
    pub name: &'static str,
    /// Runs the work against the Keycloak at `base_url` as `admin`, with the certificates it
    /// trusts; what it leaves is removed after it. It must import its realms, not claim the
    /// spares the runs need (`playbook_keycloak::Admin::importing`). A failure, a panic or a run
    /// past 5 minutes is a warning: the snapshot is made all the same.
    pub run: std::sync::Arc<
        dyn Fn(Url, AdminCredentials, playbook_certs::CertSet) -> TrainingRun + Send + Sync,
    >,
}

/// The work of a [`Training`]. It need not be `Send` (the lab's futures are not): it runs on a
/// runtime of its own, on a thread of its own.
pub type TrainingRun = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

impl std::fmt::Debug for Training {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Training")
            .field("name", &self.name)
            .finish()
    }
}

impl SnapshotExtras {
    /// What the extras are made from beyond their own settings, for whatever keeps them (a
    /// snapshot, a kept database) to be tied to: see [`playbook_keycloak::spares_made_from`].
    pub(crate) fn made_from(&self) -> String {
        match self.spare_realms {
            0 => String::new(),
            _ => playbook_keycloak::spares_made_from(),
        }
    }

    /// What a kept database's directory name says of the extras it holds, so that one made with
    /// other extras, or with spares of an older realm.json (which would be claimed as if they
    /// were today's), is never taken for it.
    pub(crate) fn name_suffix(&self) -> String {
        let Self {
            spare_realms,
            quick_admin_login,
            narrow_admin,
        } = self;
        let quick = if *quick_admin_login { "-quick" } else { "" };
        let narrow = if *narrow_admin { "-narrow" } else { "" };
        let made_from = match self.made_from().as_str() {
            "" => String::new(),
            source => {
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, source.as_bytes());
                let hex: String = digest.as_ref()[..6]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("-{hex}")
            }
        };
        format!("-spares{spare_realms}{made_from}{quick}{narrow}")
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            url: None,
            admin_user: DEFAULT_ADMIN_USER.to_owned(),
            admin_password: None,
            saved_admin_password: None,
            https_port: DEFAULT_HTTPS_PORT,
            dist: None,
            image: None,
            java: None,
            cache_dir: None,
            start_timeout: Duration::from_secs(180),
            attach_running: false,
            topology: crate::Topology::Direct,
            db_url: None,
            db_user: crate::postgres::USER.to_owned(),
            db_password: None,
            snapshots: SnapshotPolicy::default(),
            criu: None,
            snapshot_extras: SnapshotExtras::default(),
            snapshot_training: None,
            short_lived: false,
        }
    }
}

impl ProviderConfig {
    /// The defaults, overridden by whichever of the [`env`] variables are set (what tests use).
    pub fn from_env() -> Result<Self, crate::ProviderError> {
        fn var(name: &'static str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        }
        fn parsed<T: FromStr>(name: &'static str) -> Result<Option<T>, crate::ProviderError>
        where
            T::Err: std::fmt::Display,
        {
            var(name)
                .map(|value| {
                    value
                        .parse()
                        .map_err(|e: T::Err| crate::ProviderError::BadSetting {
                            name,
                            reason: e.to_string(),
                        })
                })
                .transpose()
        }
        let defaults = Self::default();
        Ok(Self {
            backend: parsed(env::BACKEND)?.unwrap_or(defaults.backend),
            url: parsed(env::URL)?,
            admin_user: var(env::ADMIN_USER).unwrap_or(defaults.admin_user),
            admin_password: var(env::ADMIN_PASSWORD).map(Secret::new),
            saved_admin_password: None,
            https_port: parsed(env::PORT)?.unwrap_or(defaults.https_port),
            dist: var(env::DIST).map(PathBuf::from),
            image: var(env::IMAGE),
            java: var(env::JAVA).map(PathBuf::from),
            cache_dir: var(env::CACHE_DIR).map(PathBuf::from),
            start_timeout: parsed(env::START_TIMEOUT)?
                .map(Duration::from_secs)
                .unwrap_or(defaults.start_timeout),
            attach_running: defaults.attach_running,
            topology: defaults.topology,
            db_url: var(env::DB_URL),
            db_user: var(env::DB_USER).unwrap_or(defaults.db_user),
            db_password: var(env::DB_PASSWORD).map(Secret::new),
            snapshots: parsed(env::SNAPSHOTS)?.unwrap_or(defaults.snapshots),
            criu: var(env::CRIU).map(PathBuf::from),
            snapshot_extras: defaults.snapshot_extras,
            snapshot_training: defaults.snapshot_training,
            short_lived: defaults.short_lived,
        })
    }

    pub(crate) fn start_timeout(&self) -> Duration {
        self.start_timeout
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

    /// Whether the user named an admin of their own: a Keycloak we start then gets a fresh
    /// database rather than a kept one (whose admin was chosen when it was made).
    pub(crate) fn has_custom_admin(&self) -> bool {
        self.admin_password.is_some() || self.admin_user != crate::DEFAULT_ADMIN_USER
    }

    /// The admin credentials to give a Keycloak we start: the configured ones or a random password.
    pub(crate) fn admin_credentials_or_random(&self) -> AdminCredentials {
        let password = self
            .admin_password
            .clone()
            .unwrap_or_else(|| Secret::new(random_password()));
        AdminCredentials::new(self.admin_user.clone(), password)
    }

    /// The admin credentials of an external Keycloak: the configured ones or the seed's default.
    pub(crate) fn admin_credentials_or_default(&self) -> AdminCredentials {
        let password = self
            .admin_password
            .clone()
            .unwrap_or_else(|| Secret::new(SEED_ADMIN_PASSWORD));
        AdminCredentials::new(self.admin_user.clone(), password)
    }

    /// The admin credentials of the playbook Keycloak found running: the configured ones, else
    /// the ones its starter saved, else the seed's.
    pub(crate) fn admin_credentials_of_running(&self) -> AdminCredentials {
        let password = self
            .admin_password
            .clone()
            .or_else(|| self.saved_admin_password.clone())
            .unwrap_or_else(|| Secret::new(SEED_ADMIN_PASSWORD));
        AdminCredentials::new(self.admin_user.clone(), password)
    }

    /// Where distributions and builds are kept: the one given, else the per-user cache.
    pub fn resolved_cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        playbook_process::user_cache_dir()
    }
}

pub(crate) fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// Fails with a clear line when the port is taken, instead of a Java stack trace later.
pub(crate) fn ensure_free(port: u16) -> Result<(), crate::ProviderError> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|_| crate::ProviderError::PortTaken { port })
}

/// `port`, or a free one when it is 0.
pub(crate) fn port_or_free(port: u16) -> std::io::Result<u16> {
    if port == 0 {
        playbook_process::free_port()
    } else {
        Ok(port)
    }
}
