//! Keycloak as a local process: `kc.sh start --optimized` from the cached build.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use playbook_certs::CertSet;
use url::Url;

use crate::class_archive::ClassArchive;
use crate::config::SnapshotPolicy;
use crate::config::{ensure_free, port_or_free};
use crate::database::{DatabaseTemplate, InstanceDatabase};
use crate::error::tail;
use crate::health::{NotReady, wait_ready};
use crate::options::{KcOption, TlsFiles, bootstrap_admin, server_options};
use crate::postgres::{ClusterTemplate, DatabaseAccess, Postgres};
use crate::snapshot::{Connections, Plan, Snapshot, Snapshots};
use crate::{KEYCLOAK_VERSION, Progress, ProviderConfig, ProviderError};
use playbook_keycloak::AdminCredentials;
use playbook_process::free_port;

/// How long Keycloak gets to shut down gracefully before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A system property nothing reads, on the JVM of a Keycloak started only to prepare a database
/// that is kept: what tells it, in a process list, from the Keycloak a run uses (`.ci/run`
/// counts those).
const PREPARING_MARK: &str = "-Dplaybook.preparing=database";

/// A running native Keycloak; dropping it stops the whole process group.
pub(crate) struct NativeKeycloak {
    child: Mutex<Process>,
    /// Kept open only to keep the watchdog waiting; closing it stops Keycloak.
    lifeline: Mutex<Option<OwnedFd>>,
    /// This instance's own database, removed once Keycloak has stopped.
    database: Mutex<Option<InstanceDatabase>>,
    /// Keycloak's output, removed after a clean stop (kept when it failed to start).
    log: Mutex<Option<PathBuf>>,
    archive: ClassArchive,
    /// Handed to a keeper (see `reuse.rs`): this handle must no longer stop Keycloak.
    detached: std::sync::atomic::AtomicBool,
    /// Where its health is served (`/health/ready`): a load balancer checks it there.
    pub(crate) management_port: u16,
    https_port: u16,
}

/// The process that is Keycloak.
enum Process {
    /// Started here: `kc.sh` under the watchdog in a process group of its own; `namespaced`:
    /// under `unshare`, the watchdog the init of a PID namespace, to be snapshotted.
    Spawned { child: Child, namespaced: bool },
    /// Restored from a snapshot: the init of its PID namespace, our child. Its death ends every
    /// process in the namespace, so it is the one signalled.
    Restored { pid: i32, status: Option<i32> },
    /// One node of a cluster restored as one tree (see `cluster_snapshot.rs`): `kc.sh`, leader
    /// of the process group it shares with its JVM, not our child. `pidfd` says when the leader
    /// is gone, so that a group id reused since is never signalled.
    Member { leader: i32, pidfd: OwnedFd },
}

impl Process {
    /// How it ended, if it has (reaping it).
    fn exited(&mut self) -> Option<String> {
        match self {
            Self::Spawned { child, .. } => child.try_wait().ok().flatten().map(|s| s.to_string()),
            Self::Restored { pid, status } => {
                if status.is_none() {
                    let mut raw = 0;
                    // SAFETY: waitpid(2) on our own child, without blocking.
                    match unsafe { libc::waitpid(*pid, &mut raw, libc::WNOHANG) } {
                        reaped if reaped == *pid => *status = Some(raw),
                        // Not our child any more (reaped elsewhere): gone as far as we can tell.
                        -1 if std::io::Error::last_os_error().raw_os_error()
                            == Some(libc::ECHILD) =>
                        {
                            *status = Some(0)
                        }
                        _ => {}
                    }
                }
                use std::os::unix::process::ExitStatusExt;
                status.map(|raw| std::process::ExitStatus::from_raw(raw).to_string())
            }
            Self::Member { pidfd, .. } => {
                use std::os::fd::AsRawFd;
                let mut poll = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll(2) on one descriptor we own, without waiting; a pidfd is readable
                // once its process has ended. An error (EINTR) says nothing: not ended.
                let ready = unsafe { libc::poll(&mut poll, 1, 0) } > 0;
                let ended = ready && poll.revents & libc::POLLIN != 0;
                ended.then(|| "ended".to_owned())
            }
        }
    }

    /// Sends `signal` to all of Keycloak's processes. A namespace's init takes only SIGKILL from
    /// outside (it has no handlers), which then ends the rest of the namespace.
    fn signal(&self, signal: i32) {
        match self {
            Self::Spawned { child, namespaced } => {
                let init = namespaced.then(|| crate::snapshot::first_child(child.id()));
                if let Some(init) = init.flatten() {
                    playbook_process::signal(init, libc::SIGKILL);
                }
                playbook_process::signal(-(child.id() as i32), signal);
            }
            Self::Restored { pid, .. } => playbook_process::signal(*pid, libc::SIGKILL),
            Self::Member { leader, .. } => playbook_process::signal(-*leader, signal),
        }
    }

    /// Whether any of Keycloak's processes is left.
    fn alive(&mut self) -> bool {
        match self {
            // `unshare` outlives every process of its namespace.
            Self::Spawned { child, .. } => {
                let _ = child.try_wait();
                playbook_process::group_alive(-(child.id() as i32))
            }
            Self::Restored { .. } => self.exited().is_none(),
            Self::Member { leader, .. } => playbook_process::group_alive(-*leader),
        }
    }

    fn wait(&mut self) {
        match self {
            Self::Spawned { child, .. } => {
                let _ = child.wait();
            }
            // Reaped by its parent in the tree.
            Self::Member { .. } => {
                while self.alive() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Self::Restored { pid, status } => {
                while status.is_none() {
                    let mut raw = 0;
                    // SAFETY: waitpid(2) on our own child.
                    let reaped = unsafe { libc::waitpid(*pid, &mut raw, 0) };
                    let interrupted =
                        std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
                    if reaped == *pid || !interrupted {
                        *status = Some(raw);
                    }
                }
            }
        }
    }
}

/// Where a Keycloak keeps its data.
pub(crate) enum Store {
    /// Its own copy of an H2 file.
    File(InstanceDatabase),
    /// An H2 file to be kept as a template once Keycloak has prepared it; that Keycloak's JVM
    /// carries [`PREPARING_MARK`].
    Kept(InstanceDatabase),
    /// The cluster's shared PostgreSQL, and the port this node's cluster transport binds.
    Cluster {
        database: crate::postgres::DatabaseAccess,
        cluster_port: u16,
    },
}

/// A native Keycloak started (or restored) and ready.
pub(crate) struct Started {
    pub(crate) keycloak: NativeKeycloak,
    pub(crate) url: Url,
    pub(crate) admin: AdminCredentials,
    /// Behind the proxy: the port Keycloak names as its hostname, where the proxy must listen.
    pub(crate) public_port: Option<u16>,
}

/// Starts Keycloak on `args.https_port`, or, `behind_proxy`, with `args.https_port` the
/// proxy's (then Keycloak itself takes a free port and advertises the public one as its
/// hostname).
pub(crate) async fn start(
    args: &ProviderConfig,
    certs: &CertSet,
    progress: &Arc<dyn Progress>,
    behind_proxy: bool,
) -> Result<Started, ProviderError> {
    // The ports first: a taken one costs a second, not a Java search and a distribution build.
    let public_port = behind_proxy
        .then(|| port_or_free(args.https_port))
        .transpose()
        .map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
    let https_port = match public_port {
        // Not the proxy's: it is free until the proxy starts, after Keycloak.
        Some(public) => std::iter::repeat_with(free_port)
            .find(|port| port.as_ref().map_or(true, |port| *port != public))
            .expect("an endless iterator"),
        None => port_or_free(args.https_port),
    }
    .map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
    for port in public_port.into_iter().chain([https_port]) {
        ensure_free(port)?;
    }
    let (java, install) = built(args, progress).await?;
    crate::class_archive::remove_stale(&install);
    let launcher = Launcher {
        install: &install,
        java: &java,
        certs,
        timeout: args.start_timeout(),
        progress: progress.as_ref(),
        topology: args.topology,
        public_port,
        extras: args.snapshot_extras,
        training: args.snapshot_training.as_ref(),
        short_lived: args.short_lived,
    };
    // A database that already holds the master realm and an admin skips ~8 s of bootstrap. Its
    // admin password was chosen when it was made, so an admin given by the user needs a fresh
    // database instead.
    let base = DatabaseTemplate::new(&install);
    let custom_admin = args.has_custom_admin();
    let (template, database, admin) = match custom_admin {
        true => (
            base,
            InstanceDatabase::fresh()?,
            args.admin_credentials_or_random(),
        ),
        false => {
            let no_archive = matches!(
                ClassArchive::existing(&install, java.major),
                ClassArchive::Absent
            );
            if !base.exists() || no_archive {
                launcher.prime(&base).await?;
            }
            let template = launcher.with_extras(base).await;
            let (database, admin) = template.instantiate()?;
            (template, database, admin)
        }
    };
    let archive = || ClassArchive::existing(&install, java.major);
    // A configuration started before is restored from its snapshot (see `snapshot.rs`). Not with
    // an admin of the user's (a fresh database, not the template a snapshot starts from).
    let snapshots = (args.snapshots != SnapshotPolicy::Off && !custom_admin)
        .then(|| crate::snapshot::Criu::find(args))
        .flatten()
        .map(|criu| Snapshots::new(&install, criu));
    let mut database = Some(database);
    if let Some(snapshots) = &snapshots {
        let identity = launcher.identity(snapshots, &admin, &archive());
        // Held until the restore or the snapshot is done: another start of the same
        // configuration meanwhile starts plainly instead of racing this one.
        let started = match snapshots.plan::<crate::snapshot::Meta>(&identity, args.snapshots) {
            Plan::Restore(snapshot, _lock) => {
                // Behind the proxy, the snapshot's public port too (its hostname names it).
                let public_port = snapshot.meta.public_port;
                launcher
                    .restore_fitting(snapshots, snapshot, args.https_port, &mut database)
                    .await
                    .map(|keycloak| (keycloak, public_port))
            }
            Plan::Make(_lock) => {
                let fresh = database.take().expect("not used yet");
                launcher
                    .make(snapshots, &identity, https_port, fresh, &admin, &template)
                    .await?
                    .map(|keycloak| (keycloak, public_port))
            }
            Plan::Plain => None,
        };
        if let Some((keycloak, public_port)) = started {
            let url = base_url(keycloak.https_port);
            return Ok(Started {
                keycloak,
                url,
                admin,
                public_port,
            });
        }
    }
    let database = match database {
        Some(database) => database,
        None => template.instantiate()?.0,
    };
    let keycloak = launcher
        .launch(
            https_port,
            Store::File(database),
            &admin,
            archive(),
            "",
            false,
        )
        .await?;
    Ok(Started {
        keycloak,
        url: base_url(https_port),
        admin,
        public_port,
    })
}

/// What [`start_cluster`] started.
pub(crate) struct StartedCluster {
    /// Each node and its address.
    pub(crate) nodes: Vec<(NativeKeycloak, Url)>,
    pub(crate) admin: AdminCredentials,
    /// The playbook's own PostgreSQL, started here (`None` with `--db-url`, or in the tree).
    pub(crate) postgres: Option<Postgres>,
    /// PostgreSQL and the nodes restored as one tree (see `cluster_snapshot.rs`).
    pub(crate) tree: Option<crate::cluster_snapshot::Tree>,
    /// Where the load balancer must listen: the nodes name it as their hostname.
    pub(crate) public_port: u16,
}

/// The cluster topology's Keycloak nodes: `nodes` of them on one database, one after the other
/// (the first one up is the cluster's coordinator), each on free ports, all naming the load
/// balancer's `public_port` as their hostname. The database is `--db-url`'s, else a PostgreSQL
/// of the playbook's, started from the install's [`ClusterTemplate`] (made first if need be)
/// unless the user named an admin of their own.
pub(crate) async fn start_cluster(
    args: &ProviderConfig,
    certs: &CertSet,
    progress: &Arc<dyn Progress>,
    public_port: u16,
    nodes: usize,
) -> Result<StartedCluster, ProviderError> {
    let (java, install) = built(args, progress).await?;
    crate::class_archive::remove_stale(&install);
    // The first node (the one the lab never kills) writes the install's class cache when it stops
    // cleanly, the first time; every node maps it from then on (~30 % off a start).
    let archive = |node: usize| match ClassArchive::existing(&install, java.major) {
        ClassArchive::Absent if node == 1 => ClassArchive::to_write(&install, java.major),
        existing => existing,
    };
    let launcher = Launcher {
        install: &install,
        java: &java,
        certs,
        timeout: args.start_timeout(),
        progress: progress.as_ref(),
        topology: args.topology,
        public_port: Some(public_port),
        extras: crate::SnapshotExtras::default(),
        training: None,
        short_lived: args.short_lived,
    };
    let (postgres, database, admin) = match &args.db_url {
        Some(url) => {
            let access = DatabaseAccess {
                jdbc_url: url.clone(),
                user: args.db_user.clone(),
                password: args
                    .db_password
                    .clone()
                    .unwrap_or_else(|| playbook_keycloak::Secret::new("")),
            };
            (None, access, args.admin_credentials_or_random())
        }
        None => {
            let template = ClusterTemplate::new(&install, &args.snapshot_extras)?;
            if !args.has_custom_admin() && !template.exists() {
                launcher
                    .prime_cluster(&template, &args.snapshot_extras, archive(1))
                    .await?;
            }
            let request = crate::cluster_snapshot::Request {
                launcher: &launcher,
                args,
                template: &template,
                public_port,
                nodes,
            };
            if let Some(restored) = crate::cluster_snapshot::start(request).await {
                return Ok(restored);
            }
            progress.stage("starting PostgreSQL (the cluster's database)");
            let kept = match !args.has_custom_admin() && template.exists() {
                true => {
                    let from = template.clone();
                    match blocking(move || Postgres::start_from(&from)).await {
                        Ok(started) => Some(started),
                        Err(e) => {
                            tracing::warn!(
                                "the cluster's kept database did not start ({e}); removed, the next start makes a new one"
                            );
                            template.discard();
                            None
                        }
                    }
                }
                false => None,
            };
            let (postgres, admin) = match kept {
                Some(started) => started,
                None => (
                    blocking(Postgres::start).await?,
                    args.admin_credentials_or_random(),
                ),
            };
            let access = postgres.access();
            (Some(postgres), access, admin)
        }
    };
    let mut started = Vec::new();
    for node in 1..=nodes {
        let (https_port, cluster_port) = (free_port_but(public_port)?, free_port_but(public_port)?);
        let store = Store::Cluster {
            database: database.clone(),
            cluster_port,
        };
        let purpose = format!(" (cluster node {node} of {nodes})");
        let keycloak = launcher
            .launch(https_port, store, &admin, archive(node), &purpose, false)
            .await?;
        started.push((keycloak, base_url(https_port)));
    }
    Ok(StartedCluster {
        nodes: started,
        admin,
        postgres,
        tree: None,
        public_port,
    })
}

/// A free loopback port other than `taken` (the load balancer's, which is not listening yet).
fn free_port_but(taken: u16) -> Result<u16, ProviderError> {
    std::iter::repeat_with(free_port)
        .find(|port| port.as_ref().map_or(true, |port| *port != taken))
        .expect("an endless iterator")
        .map_err(ProviderError::io("find a free port", "127.0.0.1"))
}

/// Runs blocking work (processes, files) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ProviderError> + Send + 'static,
) -> Result<T, ProviderError> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("the blocking task does not panic")
}

/// The Java to run Keycloak on, and the install built for `args` (fetched and built if need
/// be, off the async runtime).
async fn built(
    args: &ProviderConfig,
    progress: &Arc<dyn Progress>,
) -> Result<(crate::java::Java, PathBuf), ProviderError> {
    let java = crate::java::find(args.java.as_deref())?;
    let install = {
        let (args, java, progress) = (args.clone(), java.clone(), progress.clone());
        tokio::task::spawn_blocking(move || {
            crate::distribution::built_install(&args, &java, progress.as_ref())
        })
        .await
        .expect("the build task does not panic")?
    };
    Ok((java, install))
}

pub(crate) fn base_url(https_port: u16) -> Url {
    playbook_keycloak::KeycloakUrl::local(https_port)
        .as_url()
        .clone()
}

/// What `kc.sh start --optimized` runs with: its flags, `JAVA_OPTS_APPEND`, the database it owns
/// (H2) and the secrets it reads from its environment.
pub(crate) struct NodeCommand {
    pub(crate) options: Vec<String>,
    pub(crate) java_options: String,
    pub(crate) database: Option<InstanceDatabase>,
    pub(crate) secret_env: Vec<(String, String)>,
}

/// What every start of one built install shares.
pub(crate) struct Launcher<'a> {
    pub(crate) install: &'a Path,
    pub(crate) java: &'a crate::java::Java,
    pub(crate) certs: &'a CertSet,
    pub(crate) timeout: Duration,
    pub(crate) progress: &'a dyn Progress,
    topology: crate::Topology,
    /// The proxy's port, which Keycloak names as its hostname (None: direct).
    public_port: Option<u16>,
    /// What a snapshot is made with (see [`ProviderConfig::snapshot_extras`]).
    extras: crate::SnapshotExtras,
    /// See [`ProviderConfig::snapshot_training`].
    training: Option<&'a crate::Training>,
    /// See [`ProviderConfig::short_lived`].
    short_lived: bool,
}

impl Launcher<'_> {
    /// Starts Keycloak on `https_port` with `database` and waits until it is ready;
    /// `namespaced`: in a PID namespace of its own, to be snapshotted.
    async fn launch(
        &self,
        https_port: u16,
        store: Store,
        admin: &AdminCredentials,
        archive: ClassArchive,
        purpose: &str,
        namespaced: bool,
    ) -> Result<NativeKeycloak, ProviderError> {
        let management_port =
            free_port().map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
        let NodeCommand {
            options,
            java_options,
            database,
            secret_env,
        } = self.command(
            (https_port, management_port, self.public_port),
            store,
            &archive,
            namespaced,
        );
        let log = log_path(https_port);
        let shown = format!(
            "{} start --optimized {}",
            self.install.join("bin/kc.sh").display(),
            options.join(" ")
        );
        let url = base_url(https_port);
        self.progress.stage(&format!(
            "starting Keycloak {KEYCLOAK_VERSION} (native, Java {}) on {url}{purpose}",
            self.java.major
        ));
        let keycloak = spawn(
            self.install,
            &self.java.path,
            &options,
            admin,
            &secret_env,
            &log,
            database,
            archive,
            &java_options,
            (https_port, management_port),
            namespaced,
        )?;
        match self.ready(&keycloak).await {
            Ok(took) => {
                self.progress.finished(&format!(
                    "Keycloak ready at {url} in {:.1} s{purpose}",
                    took.as_secs_f64()
                ));
                Ok(keycloak)
            }
            Err(NotReady::Exited(reason) | NotReady::TimedOut(reason)) => {
                // The log is what the user needs now: stopping must not remove it.
                crate::reuse::take(&keycloak.log);
                drop(keycloak);
                Err(ProviderError::StartFailed {
                    reason,
                    command: shown,
                    tail: tail(&log, 25),
                    log,
                })
            }
        }
    }

    /// What `kc.sh start` is given to run on these ports (HTTPS, management, and the public one
    /// it names as its hostname behind a proxy) with `store`.
    pub(crate) fn command(
        &self,
        (https_port, management_port, public_port): (u16, u16, Option<u16>),
        store: Store,
        archive: &ClassArchive,
        namespaced: bool,
    ) -> NodeCommand {
        let mut options = self.options(https_port, management_port, public_port);
        let mut java_options = java_opts_append(archive, namespaced);
        // Not while writing the class cache, whose method profiles C1 alone would not gather.
        let cluster_node = matches!(store, Store::Cluster { .. });
        if self.short_lived && cluster_node && !matches!(archive, ClassArchive::Write { .. }) {
            java_options = format!("{java_options} {}", crate::options::QUICK_COMPILER);
        }
        let (database, secret_env) = match store {
            Store::File(database) => {
                options.push(format!("--db-url={}", database.jdbc_url()));
                (Some(database), Vec::new())
            }
            Store::Kept(database) => {
                options.push(format!("--db-url={}", database.jdbc_url()));
                java_options = format!("{java_options} {PREPARING_MARK}");
                (Some(database), Vec::new())
            }
            Store::Cluster {
                database,
                cluster_port,
            } => {
                options.retain(|option| !option.starts_with("--cache="));
                let password = database.password.clone();
                options.extend(
                    crate::options::cluster_options(&database, cluster_port)
                        .iter()
                        .map(KcOption::flag),
                );
                // The password as an environment variable: a flag would show it in `ps`.
                let password = KcOption::new("db-password", password.expose());
                (None, vec![password.env()])
            }
        };
        NodeCommand {
            options,
            java_options,
            database,
            secret_env,
        }
    }

    /// Waits until `keycloak` answers on its health endpoint.
    async fn ready(&self, keycloak: &NativeKeycloak) -> Result<Duration, NotReady> {
        let health = playbook_https::local_url(keycloak.management_port)
            .join("health/ready")
            .expect("a static path")
            .to_string();
        wait_ready(&health, &self.certs.ca_pem, self.timeout, || {
            let mut child = keycloak.child.lock().expect("not poisoned");
            child
                .exited()
                .map(|status| format!("Keycloak exited ({status})"))
        })
        .await
    }

    /// Keycloak's options on these ports; behind a proxy it names `public_port` as its hostname
    /// and reads client certificates from the proxy's header.
    fn options(
        &self,
        https_port: u16,
        management_port: u16,
        public_port: Option<u16>,
    ) -> Vec<String> {
        let mut options = start_options(self.certs, https_port, management_port, public_port);
        if self.topology != crate::Topology::Direct {
            options.extend(crate::options::proxy_options().iter().map(KcOption::flag));
        }
        options
    }

    /// What a snapshot of a Keycloak started here is tied to (see `snapshot.rs`): its options
    /// but the ports, its certificates, Java and admin.
    fn identity(
        &self,
        snapshots: &Snapshots,
        admin: &AdminCredentials,
        archive: &ClassArchive,
    ) -> String {
        let options = self.options(0, 0, self.public_port.map(|_| 0)).join(" ");
        let install = self.install.display().to_string();
        let java = self.java.path.display().to_string();
        let files = &self.certs.files;
        snapshots.identity(
            &[
                &install,
                &java,
                &java_opts_append(archive, true),
                &options,
                &admin.username,
                admin.password.expose(),
                &format!("{:?}", self.extras),
                &self.extras.made_from(),
                self.training.map_or("", |training| training.name),
            ],
            &[files.keycloak_cert(), files.keycloak_key(), files.ca_cert()],
        )
    }

    /// Restores `snapshot` if its ports fit the start asked for (any free port, or its own) and
    /// are free; `None` (after a warning, the snapshot removed if it is to blame) otherwise.
    async fn restore_fitting(
        &self,
        snapshots: &Snapshots,
        snapshot: Snapshot,
        asked_port: u16,
        database: &mut Option<InstanceDatabase>,
    ) -> Option<NativeKeycloak> {
        let meta = &snapshot.meta;
        let ports = [
            Some(meta.https_port),
            Some(meta.management_port),
            meta.public_port,
        ];
        let ports_free = || {
            ports
                .iter()
                .flatten()
                .all(|port| ensure_free(*port).is_ok())
        };
        // The port asked for is the one clients reach: behind the proxy, the proxy's.
        let reached = meta.public_port.unwrap_or(meta.https_port);
        if !(asked_port == 0 || asked_port == reached) || !ports_free() {
            tracing::info!(
                port = reached,
                "Keycloak's snapshot is for another or a taken port: starting Keycloak instead"
            );
            return None;
        }
        let fresh = database.take()?;
        match self.restore(snapshots, &snapshot, fresh, true).await {
            Ok(keycloak) => Some(keycloak),
            // A port taken meanwhile is not the snapshot's fault.
            Err(reason) if !ports_free() => {
                tracing::warn!(%reason, "Keycloak's snapshot did not restore (its port was taken meanwhile); starting Keycloak instead");
                None
            }
            Err(reason) => {
                tracing::warn!(%reason, "Keycloak's snapshot did not restore: removed; starting Keycloak instead");
                snapshots.discard(snapshot);
                None
            }
        }
    }

    /// The first start of a configuration to be snapshotted: started in a PID namespace on
    /// `database`, worked through a run's requests, dumped and restored. Whatever fails on the way
    /// is remembered (see [`Snapshots::failed`]) and leaves a Keycloak running if it can; `None`
    /// when the one started is gone (the caller starts another).
    async fn make(
        &self,
        snapshots: &Snapshots,
        identity: &str,
        https_port: u16,
        database: InstanceDatabase,
        admin: &AdminCredentials,
        template: &DatabaseTemplate,
    ) -> Result<Option<NativeKeycloak>, ProviderError> {
        let archive = ClassArchive::existing(self.install, self.java.major);
        let keycloak = match self
            .launch(https_port, Store::File(database), admin, archive, "", true)
            .await
        {
            Ok(keycloak) => keycloak,
            // `unshare` refused, say: remembered, and started as before.
            Err(error) => {
                snapshots.failed(identity, &format!("started in a PID namespace: {error}"));
                return Ok(None);
            }
        };
        // The extras are in the database already, unless keeping them there failed.
        let missing = match template.extras == self.extras {
            true => crate::SnapshotExtras::default(),
            false => self.extras,
        };
        self.progress.stage(&match missing.spare_realms {
            0 => "working Keycloak through a run's requests, then keeping its snapshot (once)"
                .to_owned(),
            spares => format!(
                "working Keycloak through a run's requests, importing {spares} spare realms (~0.5 s each), then keeping its snapshot (once)"
            ),
        });
        let exercised = crate::warmup::exercise(
            &base_url(https_port),
            admin,
            self.certs,
            match self.public_port {
                None => crate::warmup::TokenRoute::Mtls,
                Some(_) => crate::warmup::TokenRoute::Forwarded,
            },
            &missing,
            self.training,
        )
        .await;
        if let Err(reason) = exercised {
            snapshots.failed(identity, &format!("its warm-up: {reason}"));
            return Ok(Some(keycloak));
        }
        let Some((init, meta)) = keycloak.describe(https_port, self.public_port) else {
            snapshots.failed(identity, "its processes were not found in /proc");
            return Ok(Some(keycloak));
        };
        let saved = meta.database.clone();
        let keep = |staging: &Path| {
            fs::copy(&saved, staging.join(crate::database::DATABASE_FILE))
                .map(drop)
                .map_err(|e| format!("cannot keep the database: {e}"))
        };
        let snapshot = match snapshots.make(identity, init, meta, Connections::Close, keep) {
            Ok(snapshot) => snapshot,
            Err(failure) => {
                snapshots.failed(identity, &failure.reason);
                return Ok((!failure.stopped).then_some(keycloak));
            }
        };
        // The dump stopped it; its log stays, for the restored Keycloak to write on.
        crate::reuse::take(&keycloak.log);
        drop(keycloak);
        let database = template.instantiate()?.0;
        match self.restore(snapshots, &snapshot, database, false).await {
            Ok(keycloak) => Ok(Some(keycloak)),
            Err(reason) => {
                snapshots.discard(snapshot);
                snapshots.failed(identity, &format!("its restore: {reason}"));
                Ok(None)
            }
        }
    }

    /// Restores `snapshot` on `database` and waits until it is ready; `fresh_log`: a new log
    /// (else the one the snapshotted start wrote goes on).
    async fn restore(
        &self,
        snapshots: &Snapshots,
        snapshot: &Snapshot,
        database: InstanceDatabase,
        fresh_log: bool,
    ) -> Result<NativeKeycloak, String> {
        let archive = ClassArchive::existing(self.install, self.java.major);
        let meta = &snapshot.meta;
        let url = base_url(meta.https_port);
        self.progress.stage(&format!(
            "restoring Keycloak {KEYCLOAK_VERSION} (native, Java {}) on {url} from its snapshot",
            self.java.major
        ));
        let started = Instant::now();
        let log = log_path(meta.https_port);
        if fresh_log {
            create_log(&log).map_err(|e| format!("cannot create {log:?}: {e}"))?;
        }
        let restored = match snapshots.restore(snapshot, &database, &log) {
            Ok(restored) => restored,
            Err(reason) => {
                database.remove();
                return Err(reason);
            }
        };
        if let (true, Some(dir)) = (self.short_lived, database.file().parent()) {
            crate::compiler::stop_c2(&self.java.path, restored.pid, dir);
        }
        let keycloak = NativeKeycloak {
            child: Mutex::new(Process::Restored {
                pid: restored.pid,
                status: None,
            }),
            lifeline: Mutex::new(Some(restored.lifeline)),
            database: Mutex::new(Some(database)),
            log: Mutex::new(Some(log)),
            archive,
            detached: false.into(),
            management_port: meta.management_port,
            https_port: meta.https_port,
        };
        match self.ready(&keycloak).await {
            Ok(_) => {
                self.progress.finished(&format!(
                    "Keycloak ready at {url} in {:.1} s (restored from its snapshot)",
                    started.elapsed().as_secs_f64()
                ));
                Ok(keycloak)
            }
            Err(NotReady::Exited(reason) | NotReady::TimedOut(reason)) => Err(reason),
        }
    }

    /// Makes the cluster's database template once: a node on a fresh PostgreSQL creates the schema,
    /// the master realm and a random admin, gets `extras`, and is stopped; the database is kept.
    /// A failure fails the start: a cluster that cannot import a realm would fail its users.
    async fn prime_cluster(
        &self,
        template: &ClusterTemplate,
        extras: &crate::SnapshotExtras,
        archive: ClassArchive,
    ) -> Result<(), ProviderError> {
        self.progress
            .stage("starting PostgreSQL (once: preparing the cluster's database)");
        let postgres = blocking(Postgres::start).await?;
        let admin = AdminCredentials::new(
            crate::DEFAULT_ADMIN_USER,
            playbook_keycloak::Secret::new(crate::config::random_password()),
        );
        let https_port = free_port_but(self.public_port.unwrap_or_default())?;
        let store = Store::Cluster {
            database: postgres.access(),
            cluster_port: free_port_but(https_port)?,
        };
        let spares = extras.spare_realms;
        let purpose = format!(
            " (once: preparing the cluster's database{})",
            match spares {
                0 => String::new(),
                n => format!(" with {n} spare realms"),
            }
        );
        let node = self
            .launch(https_port, store, &admin, archive, &purpose, false)
            .await?;
        let key = playbook_keycloak::RealmKey::generate();
        let added = crate::warmup::add_extras(
            &base_url(https_port),
            &admin,
            self.certs,
            extras,
            None,
            &key,
        )
        .await;
        let template = template.clone();
        blocking(move || {
            node.terminate();
            added.map_err(|reason| ProviderError::KeptDatabase { reason })?;
            postgres.save_as(&template, &admin)
        })
        .await
    }

    /// The template every start of this configuration copies: `base`, or, for a configuration
    /// with extras (a test run's), `base` with them added, made once (~1 min with 150 spare
    /// realms) and kept beside it: a Keycloak started, not only one restored from a snapshot,
    /// then has them (without CRIU, a test run imported its ~110 realms instead). Failing to make
    /// it is a warning and a marker beside it: the runs import their realms instead, and do not
    /// try again until the marker is removed.
    async fn with_extras(&self, base: DatabaseTemplate) -> DatabaseTemplate {
        if self.extras == crate::SnapshotExtras::default() {
            return base;
        }
        let kept = base.with_extras(&self.extras);
        let marker = kept.failure_marker();
        if kept.exists() {
            return kept;
        }
        if marker.exists() {
            return base;
        }
        match self.prime_extras(&base, &kept).await {
            Ok(()) => kept,
            Err(error) => {
                let _ = fs::write(&marker, error.to_string());
                tracing::warn!(%error, marker = %marker.display(), "could not keep a database with a test run's extras; its realms are imported from now on (remove the marker to try again)");
                base
            }
        }
    }

    /// Starts Keycloak on a copy of `base`, adds the extras and keeps its database as `kept`.
    async fn prime_extras(
        &self,
        base: &DatabaseTemplate,
        kept: &DatabaseTemplate,
    ) -> Result<(), ProviderError> {
        let (database, admin) = base.instantiate()?;
        let purpose = format!(
            " (once: keeping a database with {} spare realms, ~0.5 s each)",
            self.extras.spare_realms
        );
        let (certs, extras) = (self.certs, self.extras);
        let adding = admin.clone();
        let archive = ClassArchive::existing(self.install, self.java.major);
        self.keep_prepared(database, admin, archive, &purpose, kept, |url| async move {
            let key = playbook_keycloak::RealmKey::generate();
            crate::warmup::add_extras(&url, &adding, certs, &extras, None, &key).await
        })
        .await
    }

    /// Bootstraps a fresh database once (master realm, random admin) and keeps it as the
    /// template for every later start of this install, and the classes it loaded as the
    /// install's class archive.
    async fn prime(&self, template: &DatabaseTemplate) -> Result<(), ProviderError> {
        let admin = AdminCredentials::new(
            crate::DEFAULT_ADMIN_USER,
            playbook_keycloak::Secret::new(crate::config::random_password()),
        );
        let archive = ClassArchive::to_write(self.install, self.java.major);
        let purpose = " (once: preparing a reusable database and class archive)";
        self.keep_prepared(
            InstanceDatabase::fresh()?,
            admin,
            archive,
            purpose,
            template,
            |_| async { Ok(()) },
        )
        .await
    }

    /// Starts Keycloak on `database`, has `prepare` work on it (given its URL), stops it
    /// cleanly and keeps the database as `template`; nothing is kept if either failed.
    async fn keep_prepared<Prepared>(
        &self,
        database: InstanceDatabase,
        admin: AdminCredentials,
        archive: ClassArchive,
        purpose: &str,
        template: &DatabaseTemplate,
        prepare: impl FnOnce(Url) -> Prepared,
    ) -> Result<(), ProviderError>
    where
        Prepared: std::future::Future<Output = Result<(), String>>,
    {
        let port = free_port_but(self.public_port.unwrap_or_default())?;
        let keycloak = self
            .launch(port, Store::Kept(database), &admin, archive, purpose, false)
            .await?;
        let prepared = prepare(base_url(port)).await;
        let template = template.clone();
        blocking(move || {
            let (database, stopped) = keycloak.terminate_keeping_database();
            let saved = prepared
                .and(stopped)
                .map_err(|reason| ProviderError::KeptDatabase { reason })
                .and_then(|()| template.save(&database, &admin));
            database.remove();
            saved
        })
        .await
    }
}

fn start_options(
    certs: &CertSet,
    https_port: u16,
    management_port: u16,
    public_port: Option<u16>,
) -> Vec<String> {
    let files = &certs.files;
    // Absolute, because Keycloak resolves relative paths against its own working directory.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
    let tls = TlsFiles {
        certificate: absolute(files.keycloak_cert()),
        key: absolute(files.keycloak_key()),
        client_ca: absolute(files.ca_cert()),
    };
    let local = [
        KcOption::new(
            "hostname",
            crate::options::hostname(public_port.unwrap_or(https_port)),
        ),
        KcOption::new("http-host", "127.0.0.1"),
        KcOption::new("http-management-port", management_port.to_string()),
    ];
    local
        .into_iter()
        .chain(server_options(&tls, https_port))
        .map(|option| option.flag())
        .collect()
}

/// Where a Keycloak on `https_port` writes its output.
pub(crate) fn log_path(https_port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("oauth2-playbook-keycloak-{https_port}.log"))
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    install: &Path,
    java: &Path,
    options: &[String],
    admin: &AdminCredentials,
    secret_env: &[(String, String)],
    log: &Path,
    database: Option<InstanceDatabase>,
    archive: ClassArchive,
    java_options: &str,
    (https_port, management_port): (u16, u16),
    namespaced: bool,
) -> Result<NativeKeycloak, ProviderError> {
    use std::os::unix::process::CommandExt;
    let log_file = create_log(log).map_err(ProviderError::io("create", log))?;
    // In a PID namespace, its init (the watchdog) a session leader: CRIU dumps a tree whole.
    let mut command = match namespaced {
        true => {
            let mut command = Command::new("unshare");
            command.args(["--pid", "--fork", "setsid", "/bin/sh"]);
            command
        }
        false => Command::new("/bin/sh"),
    };
    command.env("JAVA_OPTS_APPEND", java_options);
    let mut child = command
        .arg("-c")
        .arg(playbook_process::WATCHDOG)
        .arg("keycloak-watchdog")
        .arg(install.join("bin/kc.sh"))
        .args(["start", "--optimized"])
        .args(options)
        .env("JAVA", java)
        .envs(bootstrap_admin(admin).iter().map(KcOption::env))
        .envs(secret_env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(
            log_file
                .try_clone()
                .map_err(ProviderError::io("open", log))?,
        )
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .map_err(ProviderError::io("run", install.join("bin/kc.sh")))?;
    let lifeline = child.stdin.take().map(OwnedFd::from);
    Ok(NativeKeycloak {
        child: Mutex::new(Process::Spawned { child, namespaced }),
        lifeline: Mutex::new(lifeline),
        database: Mutex::new(database),
        log: Mutex::new(Some(log.to_path_buf())),
        archive,
        detached: false.into(),
        management_port,
        https_port,
    })
}

/// A new, empty log: its path in the shared temporary directory is predictable (it names the
/// port), so a symbolic link planted there is refused rather than followed.
pub(crate) fn create_log(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// `JAVA_OPTS_APPEND` for `kc.sh`: whatever the user set there, then ours. `namespaced`: no
/// `/tmp/hsperfdata_<user>/<pid>` file, whose pid would be the namespace's, the same in every one.
fn java_opts_append(archive: &ClassArchive, namespaced: bool) -> String {
    let theirs = std::env::var("JAVA_OPTS_APPEND").unwrap_or_default();
    let perf_data = if namespaced { "-XX:-UsePerfData" } else { "" };
    [theirs.trim(), crate::options::COLLECTOR, perf_data]
        .into_iter()
        .map(str::to_owned)
        .chain(archive.java_options())
        .filter(|options| !options.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl NativeKeycloak {
    /// A node of a restored cluster tree (see `cluster_snapshot.rs`): `leader` leads its process
    /// group; `None` when it is gone already.
    pub(crate) fn member(
        leader: i32,
        log: PathBuf,
        archive: ClassArchive,
        (https_port, management_port): (u16, u16),
    ) -> Option<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, leader, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the descriptor was just made and is owned by nothing else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Some(Self {
            child: Mutex::new(Process::Member { leader, pidfd }),
            lifeline: Mutex::new(None),
            database: Mutex::new(None),
            log: Mutex::new(Some(log)),
            archive,
            detached: false.into(),
            management_port,
            https_port,
        })
    }

    pub(crate) fn restored(&self) -> bool {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(*child, Process::Restored { .. })
    }

    /// The init of its PID namespace (started `namespaced`) and what a restore must know.
    fn describe(
        &self,
        https_port: u16,
        public_port: Option<u16>,
    ) -> Option<(i32, crate::snapshot::Meta)> {
        let child = self.child.lock().ok()?;
        let Process::Spawned {
            child,
            namespaced: true,
        } = &*child
        else {
            return None;
        };
        let init = crate::snapshot::first_child(child.id())?;
        let (database, log) = (self.database.lock().ok()?, self.log.lock().ok()?);
        let ports = (https_port, self.management_port);
        let mut meta = crate::snapshot::describe(init, ports, log.as_ref()?, database.as_ref()?)?;
        meta.public_port = public_port;
        Some((init, meta))
    }

    /// Stops the whole group (see `stop_processes`); returns when no member is left.
    /// Idempotent, so a shared handle can be stopped from an exit hook and dropped later.
    pub(crate) fn terminate(&self) {
        self.shut_down(false);
    }

    /// `abandon`: dropped without being stopped (a failed or interrupted start), so even an
    /// archive being written is not worth waiting for: the JVM is killed and the file removed.
    fn shut_down(&self, abandon: bool) {
        if self.detached.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.stop_processes(!abandon && self.archive.needs_clean_exit());
        let database = crate::reuse::take(&self.database);
        if let Some(database) = database {
            database.remove();
        }
    }

    /// Lets Keycloak outlive this handle: its lifeline and what to remove once it has stopped.
    pub(crate) fn detach(self) -> Option<crate::reuse::Lifeline> {
        let pipe = crate::reuse::take(&self.lifeline)?;
        self.detached
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let database = crate::reuse::take(&self.database);
        let log = crate::reuse::take(&self.log);
        let leftovers = database
            .map(InstanceDatabase::into_dir)
            .into_iter()
            .chain(log)
            .collect();
        Some(crate::reuse::Lifeline { pipe, leftovers })
    }

    /// Stops Keycloak cleanly (H2 writes out what it holds at its close) and hands its database
    /// over instead of removing it; with an error when Keycloak had to be killed, as H2 may then
    /// have lost its last writes.
    fn terminate_keeping_database(self) -> (InstanceDatabase, Result<(), String>) {
        let stopped = match self.stop_processes(true) {
            true => Ok(()),
            false => Err("Keycloak did not stop in time and was killed".to_owned()),
        };
        let database =
            crate::reuse::take(&self.database).expect("a running Keycloak has its database");
        (database, stopped)
    }

    /// `clean`: SIGTERM, and the JVM's exit awaited (up to a grace period). Only a JVM writing
    /// the class archive (it writes at exit) or a database to be kept needs it; every other
    /// Keycloak here runs on a throwaway copy of the database, so it is killed at once instead
    /// of given the ~3 s a graceful stop takes. Whether it stopped cleanly.
    fn stop_processes(&self, clean: bool) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        crate::reuse::take(&self.lifeline);
        // Stopped before (a cluster node the lab killed, a snapshotted one): its group id may
        // belong to another process by now, so it is not signalled again.
        if child.exited().is_some() {
            return false;
        }
        let mut killed = !clean;
        child.signal(if killed { libc::SIGKILL } else { libc::SIGTERM });
        let deadline = Instant::now() + self.archive.stop_grace(STOP_GRACE);
        while child.alive() {
            if Instant::now() > deadline {
                child.signal(libc::SIGKILL);
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait();
        self.archive.finish(!killed);
        if let Some(log) = crate::reuse::take(&self.log) {
            let _ = fs::remove_file(log);
        }
        !killed
    }
}

impl Drop for NativeKeycloak {
    fn drop(&mut self) {
        self.shut_down(true);
    }
}
