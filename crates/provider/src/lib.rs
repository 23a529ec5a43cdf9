//! A real Keycloak for the playbook, started on demand.
//!
//! [`start`] returns a [`Keycloak`] handle. Whatever backend runs it, the handle looks the same:
//! an HTTPS base URL served with our certificate, admin credentials, and the CA that signs it.
//! Dropping the handle stops Keycloak; a native Keycloak also dies with the process that started
//! it, however that process ends (see `playbook_process::WATCHDOG`).
//!
//! Nothing else in the workspace knows how Keycloak starts: the CLI, the tests and the demo all go
//! through [`start`] and [`ProviderConfig`].

mod class_archive;
mod cluster_snapshot;
mod compiler;
mod config;
mod container;
mod database;
mod distribution;
mod error;
mod health;
mod image;
mod java;
mod native;
mod options;
pub mod postgres;
mod progress;
mod reuse;
mod snapshot;
mod warmup;

pub use config::{
    Backend, BackendChoice, DEFAULT_ADMIN_USER, ProviderConfig, SEED_ADMIN_PASSWORD,
    SnapshotExtras, SnapshotPolicy, Training, TrainingRun, env,
};
pub use container::CONTAINER_LABEL;
pub use error::ProviderError;
pub use playbook_proxy::{self as proxy, ReverseProxy, Topology};
pub use progress::{LogProgress, Progress};
pub use reuse::{Lease, reuse_dir, stop_leased};

/// The CRIU that native starts under `config` snapshot and restore Keycloak with, if there is a
/// usable one (version 4 or later, and we are root).
pub fn snapshot_criu(config: &ProviderConfig) -> Option<std::path::PathBuf> {
    snapshot::Criu::find(config).map(|criu| criu.path().to_owned())
}

use std::sync::Arc;

use playbook_keycloak::{Admin, AdminCredentials, KeycloakUrl, RealmUrl};
use url::Url;

/// The one place the Keycloak version is pinned: the distribution and the container image tag.
pub const KEYCLOAK_VERSION: &str = "26.7.3";

/// The native backend's name, as [`Keycloak::backend_name`] gives it and a kept Keycloak's lease
/// records it.
const NATIVE: &str = "native";
/// The official image, tagged [`KEYCLOAK_VERSION`]: the base of ours where a registry serves it.
pub const OFFICIAL_IMAGE: &str = "quay.io/keycloak/keycloak";
/// The container backend's image (`oauth2-provider/Dockerfile`), tagged [`KEYCLOAK_VERSION`]:
/// the official one with our build options baked in, so it starts `--optimized`.
pub const KEYCLOAK_IMAGE: &str = "oauth2-playbook/keycloak";

/// A running Keycloak. Dropping it stops Keycloak (external ones are left alone).
pub struct Keycloak {
    base_url: KeycloakUrl,
    admin: AdminCredentials,
    ca_pem: String,
    /// The proxy topology's reverse proxy, serving `base_url`; stopped before Keycloak.
    proxy: Option<ReverseProxy>,
    /// Keycloak's own address behind the proxy (None: direct, where it is `base_url`).
    behind_proxy: Option<Url>,
    backend: Running,
}

/// What keeps Keycloak alive; dropping it stops Keycloak.
enum Running {
    Native(native::NativeKeycloak),
    Container(Box<container::ContainerKeycloak>),
    External,
    /// Kept running by an earlier run (see `reuse.rs`); it outlives this handle.
    Reused,
    /// The cluster topology: native nodes on one PostgreSQL, behind the load balancer.
    Cluster(Box<Cluster>),
}

/// The cluster's parts besides its load balancer, stopped nodes first, the database last.
struct Cluster {
    nodes: Vec<(native::NativeKeycloak, Url)>,
    /// The playbook's own PostgreSQL; `None` with an external one (`--db-url`), or in the tree.
    postgres: Option<postgres::Postgres>,
    /// Restored as one tree, PostgreSQL and the nodes (see `cluster_snapshot.rs`): ended last.
    tree: Option<cluster_snapshot::Tree>,
}

impl Cluster {
    fn terminate(&self) {
        for (node, _) in &self.nodes {
            node.terminate();
        }
        if let Some(postgres) = &self.postgres {
            postgres.terminate();
        }
        if let Some(tree) = &self.tree {
            tree.terminate();
        }
    }
}

impl Keycloak {
    /// The server root, e.g. `https://localhost:9443/`.
    pub fn base_url(&self) -> &Url {
        self.base_url.as_url()
    }

    /// Keycloak's own address, past the proxy if there is one: where an attacker who can reach
    /// Keycloak directly sends a forged certificate header (the attack lab).
    pub fn direct_url(&self) -> &Url {
        self.behind_proxy.as_ref().unwrap_or(self.base_url.as_url())
    }

    /// The reverse proxy in front of this Keycloak (the proxy topology).
    pub fn proxy(&self) -> Option<&ReverseProxy> {
        self.proxy.as_ref()
    }

    /// The URLs of `realm` on this Keycloak: issuer, token endpoint, JWKS, ...
    pub fn realm(&self, realm: &str) -> RealmUrl {
        self.base_url.realm(realm)
    }

    pub fn admin_credentials(&self) -> &AdminCredentials {
        &self.admin
    }

    /// The CA that signed Keycloak's certificate: the only one its clients should trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// An Admin API session for this Keycloak.
    pub fn admin(&self) -> Result<Admin, ProviderError> {
        Ok(Admin::new(
            self.base_url.clone(),
            self.admin.clone(),
            &self.ca_pem,
        )?)
    }

    /// The cluster topology's nodes, each at its own address (past the load balancer); empty
    /// for a single Keycloak.
    pub fn nodes(&self) -> Vec<Url> {
        match &self.backend {
            Running::Cluster(cluster) => cluster.nodes.iter().map(|(_, url)| url.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Kills cluster node `index` (0-based) at once, as a crashed machine would go: the attack
    /// lab's `keycloak-node-down`. Blocking; does nothing outside the cluster topology.
    pub fn kill_node(&self, index: usize) {
        if let Running::Cluster(cluster) = &self.backend
            && let Some((node, _)) = cluster.nodes.get(index)
        {
            node.terminate();
        }
    }

    /// Which backend runs this Keycloak, for messages.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Running::Cluster(_) => "native cluster",
            Running::Native(_) => NATIVE,
            Running::Container(_) => "container",
            Running::External => "external",
            Running::Reused => "reused",
        }
    }

    /// Whether this Keycloak was restored from a snapshot instead of started (see
    /// [`snapshot_criu`] and [`SnapshotPolicy`]).
    pub fn restored_from_snapshot(&self) -> bool {
        match &self.backend {
            Running::Native(native) => native.restored(),
            Running::Cluster(cluster) => cluster.tree.is_some(),
            _ => false,
        }
    }

    /// Whether this handle started Keycloak and stops it: false for an external or kept one.
    pub fn is_owned(&self) -> bool {
        matches!(
            self.backend,
            Running::Native(_) | Running::Container(_) | Running::Cluster(_)
        )
    }

    /// Stops Keycloak now, without needing ownership or an async runtime: for handles shared
    /// through a `static` (whose destructors never run), from an exit hook. External ones are
    /// left alone. Idempotent.
    pub fn terminate(&self) {
        if let Some(proxy) = &self.proxy {
            proxy.terminate();
        }
        match &self.backend {
            Running::Native(native) => native.terminate(),
            Running::Container(container) => container.terminate(),
            Running::Cluster(cluster) => cluster.terminate(),
            Running::External | Running::Reused => {}
        }
    }

    /// Stops Keycloak now and waits for it to be gone.
    pub async fn stop(self) {
        if let Some(proxy) = self.proxy {
            tokio::task::spawn_blocking(move || drop(proxy)).await.ok();
        }
        match self.backend {
            Running::Native(native) => {
                tokio::task::spawn_blocking(move || drop(native)).await.ok();
            }
            Running::Cluster(cluster) => {
                tokio::task::spawn_blocking(move || drop(cluster))
                    .await
                    .ok();
            }
            Running::Container(container) => container.stop().await,
            Running::External | Running::Reused => {}
        }
    }
}

/// What this machine offers each backend, and what `auto` picks: for `playbook doctor`.
#[derive(Debug)]
pub struct BackendReport {
    /// The Java a native Keycloak would run on (path and major), or why there is none.
    pub java: Result<String, String>,
    /// Whether a Docker engine answers.
    pub docker: bool,
    /// Whether the distribution is already downloaded or built here.
    pub distribution_cached: bool,
    /// The backend a start with this configuration would use.
    pub picks: Backend,
}

pub async fn backend_report(config: &ProviderConfig) -> BackendReport {
    let java = java::find(config.java.as_deref())
        .map(|java| format!("Java {} ({})", java.major, java.path.display()))
        .map_err(|e| e.to_string());
    BackendReport {
        java,
        docker: container::docker_answers().await,
        distribution_cached: distribution::is_cached(config),
        picks: config.resolve_backend().await,
    }
}

/// Does the chosen backend's one-time work now (fetch and build the distribution, or build the
/// container image), so that a later start takes seconds; says what is ready.
pub async fn prepare(
    args: &ProviderConfig,
    progress: Arc<dyn Progress>,
) -> Result<String, ProviderError> {
    let backend = args.resolve_backend().await;
    let args = args.clone();
    let ready = tokio::task::spawn_blocking(move || match backend {
        Backend::Native => {
            let java = java::find(args.java.as_deref())?;
            let home = distribution::built_install(&args, &java, progress.as_ref())?;
            Ok(format!(
                "Keycloak {KEYCLOAK_VERSION} is built in {}",
                home.display()
            ))
        }
        Backend::Container => {
            let image = image::ensure(&args, progress.as_ref())?;
            Ok(format!("the Keycloak image {image} is ready"))
        }
        Backend::External => Ok("an external Keycloak needs no preparation".to_owned()),
    });
    ready.await.expect("the preparing task does not panic")
}

/// Starts (or connects to) Keycloak as `args` say, reporting slow stages to `progress`.
///
/// The realm is not imported here: call [`Admin::create_realm`] with a [`RealmTemplate`], under
/// whatever name you need.
pub async fn start(
    args: &ProviderConfig,
    certs: &playbook_certs::CertSet,
    progress: Arc<dyn Progress>,
) -> Result<Keycloak, ProviderError> {
    let running = health::running_playbook_keycloak(args, &certs.ca_pem).await;
    let backend = match running {
        Some(_) => Backend::External,
        None => args.resolve_backend().await,
    };
    let behind_proxy = args.topology == Topology::Proxy && backend != Backend::External;
    let clustered = args.topology == Topology::Cluster && backend != Backend::External;
    if (behind_proxy || clustered) && backend != Backend::Native {
        return Err(ProviderError::ProxyNeedsNative);
    }
    if (behind_proxy || clustered) && proxy::which(proxy::PROGRAM).is_none() {
        return Err(proxy::ProxyError::Missing.into());
    }
    if clustered && args.db_url.is_none() && !postgres::installed() {
        return Err(ProviderError::PostgresMissing);
    }
    if args.db_url.is_some() && args.topology != Topology::Cluster {
        return Err(ProviderError::BadSetting {
            name: "--db-url",
            reason: "only the cluster topology runs Keycloak on PostgreSQL: add --topology cluster"
                .into(),
        });
    }
    tracing::debug!(?backend, "Keycloak backend");
    let keycloak = match backend {
        Backend::External => {
            let (url, admin) = match running {
                Some(url) => {
                    progress.finished(&format!(
                        "using the playbook Keycloak already running at {url} (it stays running)"
                    ));
                    (url, args.admin_credentials_of_running())
                }
                None => (
                    args.url.clone().ok_or(ProviderError::ExternalWithoutUrl)?,
                    args.admin_credentials_or_default(),
                ),
            };
            let keycloak = Keycloak {
                base_url: KeycloakUrl::new(url),
                admin,
                ca_pem: certs.ca_pem.clone(),
                proxy: None,
                behind_proxy: None,
                backend: Running::External,
            };
            health::check_external(&keycloak).await?;
            keycloak
        }
        Backend::Native if clustered => start_cluster(args, certs, &progress).await?,
        Backend::Native if behind_proxy => {
            let native::Started {
                keycloak: native,
                url: own_url,
                admin,
                public_port,
            } = native::start(args, certs, &progress, true).await?;
            let public = public_port.expect("started behind the proxy");
            let upstream = proxy::Upstream {
                name: "keycloak",
                listen: public,
                ports: vec![own_url.port().expect("a local URL has a port")],
                present_certificate: false,
                health: None,
            };
            let proxy = ReverseProxy::start(upstream, certs).await?;
            progress.finished(&format!(
                "{} in front of Keycloak at {} (configuration: {})",
                proxy::PROGRAM,
                proxy.url(),
                proxy.config_path().display()
            ));
            Keycloak {
                base_url: KeycloakUrl::new(proxy.url().clone()),
                admin,
                ca_pem: certs.ca_pem.clone(),
                proxy: Some(proxy),
                behind_proxy: Some(own_url),
                backend: Running::Native(native),
            }
        }
        Backend::Native => {
            let started = native::start(args, certs, &progress, false).await?;
            let (native, admin) = (started.keycloak, started.admin);
            Keycloak {
                base_url: KeycloakUrl::new(started.url),
                admin,
                ca_pem: certs.ca_pem.clone(),
                proxy: None,
                behind_proxy: None,
                backend: Running::Native(native),
            }
        }
        Backend::Container => {
            let (container, base_url, admin) = container::start(args, certs, &progress).await?;
            Keycloak {
                base_url: KeycloakUrl::new(base_url),
                admin,
                ca_pem: certs.ca_pem.clone(),
                proxy: None,
                behind_proxy: None,
                backend: Running::Container(Box::new(container)),
            }
        }
    };
    Ok(keycloak)
}

/// The cluster topology: PostgreSQL, two Keycloak nodes on it, and the load balancer in front of
/// them on `args.https_port`, which checks each node's readiness and takes a node that is down
/// out of rotation.
async fn start_cluster(
    args: &ProviderConfig,
    certs: &playbook_certs::CertSet,
    progress: &Arc<dyn Progress>,
) -> Result<Keycloak, ProviderError> {
    const NODES: usize = 2;
    let public = config::port_or_free(args.https_port)
        .map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
    config::ensure_free(public)?;
    let native::StartedCluster {
        nodes,
        admin,
        postgres,
        tree,
        public_port,
    } = native::start_cluster(args, certs, progress, public, NODES).await?;
    let upstream = proxy::Upstream {
        name: "keycloak",
        listen: public_port,
        ports: nodes
            .iter()
            .map(|(_, url)| url.port().expect("a local URL has a port"))
            .collect(),
        present_certificate: false,
        health: Some(proxy::Health {
            path: "/health/ready",
            ports: nodes.iter().map(|(node, _)| node.management_port).collect(),
        }),
    };
    let balancer = ReverseProxy::start(upstream, certs).await?;
    progress.finished(&format!(
        "{} balancing {NODES} Keycloak nodes at {} (configuration: {})",
        proxy::PROGRAM,
        balancer.url(),
        balancer.config_path().display()
    ));
    let first = nodes[0].1.clone();
    Ok(Keycloak {
        base_url: KeycloakUrl::new(balancer.url().clone()),
        admin,
        ca_pem: certs.ca_pem.clone(),
        proxy: Some(balancer),
        behind_proxy: Some(first),
        backend: Running::Cluster(Box::new(Cluster {
            nodes,
            postgres,
            tree,
        })),
    })
}
