//! A test run's cluster, PostgreSQL and both Keycloak nodes, frozen to disk as one process tree
//! and thawed instead of started: ~1 s instead of two nodes started one after the other (~10 s
//! of CPU each), which was the end-to-end tests' longest chain and their second largest bill.
//!
//! The same CRIU as `snapshot.rs` (read it first), with what a cluster adds:
//! - **One tree.** The watchdog is the init of a PID namespace and runs `tree.sh`, which starts
//!   PostgreSQL and the nodes, each in a session of its own: all of them are its descendants,
//!   which is what CRIU dumps.
//! - **Connections kept.** The nodes' connections to PostgreSQL and to each other (JGroups) are
//!   dumped established (`--tcp-established`) and come back as they were, on the same ports:
//!   a restore needs every port of the snapshot free (else the cluster starts as before).
//! - **An IPC namespace.** PostgreSQL keeps a System V shared memory segment, which CRIU dumps
//!   only with a namespace of its own.
//! - **A time namespace.** CRIU restores it with the monotonic clock where the dump left it, so
//!   the nodes' timers (JGroups' failure detection and discovery among them) go on from where
//!   they were instead of all falling due at once. The wall clock cannot be held back: JGroups'
//!   discovery rows in the database are dated by it, and Keycloak takes a row older than a
//!   minute for a node gone, reporting itself not ready until its coordinator writes the row
//!   again (~15 s; the load balancer then had no node to send to). A restore dates them anew.
//! - **A fixed data directory** (`<identity>.live`, in memory where `/dev/shm` has room, else
//!   beside the snapshots; see `snapshot::live_root`): PostgreSQL holds its files open, and CRIU
//!   reopens them at their paths. So one restored cluster per snapshot at a
//!   time, under the snapshot's lock; another start meanwhile starts its cluster as before.
//! - **PostgreSQL as root.** It refuses root (`geteuid() == 0`), and CRIU cannot read the resource
//!   limits of another user's process where root lacks CAP_SYS_RESOURCE (containers, these
//!   machines). So a two-line library preloaded into PostgreSQL alone answers `geteuid` and
//!   `getuid` with its data directory's owner; the C compiler builds it the first time (no
//!   compiler: no snapshot). Only a test run's cluster does this (`ProviderConfig::short_lived`,
//!   loopback only, thrown away with the run); `playbook provider` runs PostgreSQL as its user.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::class_archive::ClassArchive;
use crate::config::{SnapshotPolicy, ensure_free};
use crate::health::{NotReady, wait_ready};
use crate::native::{Launcher, NativeKeycloak, StartedCluster, Store};
use crate::options::{KcOption, bootstrap_admin};
use crate::postgres::{ClusterTemplate, DatabaseAccess};
use crate::snapshot::{Connections, Plan, Snapshot, Snapshots};
use crate::{KEYCLOAK_VERSION, ProviderConfig};
use playbook_keycloak::AdminCredentials;

/// What the tree is made of, beside the nodes' command (part of the identity, so that a change to
/// `tree.sh` makes new snapshots).
const TREE: &str = "in a time namespace; PostgreSQL told it runs as its data's owner, its dynamic shared memory System V's; then each node";

/// The tree's script, in its fixed directory.
const SCRIPT: &str = "tree.sh";

/// What a restore must know: every port the tree listens on or is connected from, and the
/// watchdog's lifeline.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ClusterMeta {
    public_port: u16,
    postgres_port: u16,
    nodes: Vec<NodePorts>,
    lifeline_pipe: String,
    /// The logs the tree had open (each node's, then PostgreSQL's): where they were is what CRIU
    /// knows them by, whatever the temporary directory is at a restore.
    logs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct NodePorts {
    https: u16,
    management: u16,
    cluster: u16,
}

impl ClusterMeta {
    fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        let nodes = self
            .nodes
            .iter()
            .flat_map(|node| [node.https, node.management, node.cluster]);
        [self.public_port, self.postgres_port]
            .into_iter()
            .chain(nodes)
    }
}

/// A restored tree: the init of its namespaces (our child) and its lifeline, and the snapshot's
/// lock, held while the tree uses the fixed data directory. Stopping it ends every process in it.
pub(crate) struct Tree {
    init: i32,
    /// Set once the init has been reaped: its pid may be another process's from then on.
    reaped: std::sync::atomic::AtomicBool,
    lifeline: Mutex<Option<OwnedFd>>,
    /// PostgreSQL's data, a copy of the snapshot's: removed once the tree has ended.
    data: PathBuf,
    _lock: fs::File,
}

impl Tree {
    /// Kills the init, which ends the namespace; waits for it. Idempotent.
    pub(crate) fn terminate(&self) {
        let lifeline = self
            .lifeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if lifeline.is_none() {
            return;
        }
        if !self.reaped.load(std::sync::atomic::Ordering::SeqCst) {
            playbook_process::signal(self.init, libc::SIGKILL);
            let mut status = 0;
            // SAFETY: waitpid(2) on our own child.
            while unsafe { libc::waitpid(self.init, &mut status, 0) } < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
        let _ = fs::remove_dir_all(&self.data);
    }

    /// Why the tree, or the node on `https_port` in it, is gone, if it is (reaping the init).
    fn gone(&self, https_port: u16) -> Option<String> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut status = 0;
        // SAFETY: waitpid(2) on our own child, without blocking.
        if self.reaped.load(SeqCst)
            || unsafe { libc::waitpid(self.init, &mut status, libc::WNOHANG) } != 0
        {
            self.reaped.store(true, SeqCst);
            return Some("the restored tree ended".to_owned());
        }
        member(self.init, https_port)
            .is_none()
            .then(|| "the node is no longer in the restored tree".to_owned())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// What a snapshot of a cluster needs from the start that asks for one.
pub(crate) struct Request<'a> {
    pub(crate) launcher: &'a Launcher<'a>,
    pub(crate) args: &'a ProviderConfig,
    pub(crate) template: &'a ClusterTemplate,
    /// The load balancer's port as chosen for this start (the snapshot's when it is restored).
    pub(crate) public_port: u16,
    pub(crate) nodes: usize,
}

/// The cluster restored from its snapshot, or started in one tree, snapshotted and restored;
/// `None` (after saying why where it matters) to start it as before.
pub(crate) async fn start(request: Request<'_>) -> Option<StartedCluster> {
    let Request { args, template, .. } = request;
    let eligible = args.short_lived
        && args.snapshots != SnapshotPolicy::Off
        && !args.has_custom_admin()
        && args.db_url.is_none()
        && template.exists();
    if !eligible {
        return None;
    }
    let criu = crate::snapshot::Criu::find(args)?;
    let launcher = request.launcher;
    let archive = ClassArchive::existing(launcher.install, launcher.java.major);
    if !matches!(archive, ClassArchive::Read { .. }) {
        return None;
    }
    let snapshots = Snapshots::new(launcher.install, criu);
    if !snapshots.fixed_root_ready() {
        tracing::info!(root = ?snapshots.fixed_root(), "the cluster's fixed directory cannot be made private: starting the cluster instead");
        return None;
    }
    let (password, admin) = template.secrets().ok()?;
    let owner = owner(&template.data())?;
    let tree = TreeSpec {
        request: &request,
        snapshots: &snapshots,
        archive,
        password,
        admin,
        owner,
    };
    let identity = tree.identity();
    match snapshots.plan::<ClusterMeta>(&identity, args.snapshots) {
        Plan::Restore(snapshot, lock) => tree.restore_fitting(&identity, snapshot, lock).await,
        Plan::Make(lock) => match tree.make(&identity, lock).await {
            Ok(started) => Some(started),
            Err(reason) => {
                snapshots.failed(&identity, &reason);
                None
            }
        },
        Plan::Plain => None,
    }
}

/// Everything a tree is made or restored with.
struct TreeSpec<'a> {
    request: &'a Request<'a>,
    snapshots: &'a Snapshots,
    archive: ClassArchive,
    password: playbook_keycloak::Secret,
    admin: AdminCredentials,
    /// The data directory's owner, whom PostgreSQL is told it runs as.
    owner: u32,
}

impl TreeSpec<'_> {
    /// The node's options but its ports, Java and its options, the admin, the template and the
    /// certificates (see `Snapshots::identity`).
    fn identity(&self) -> String {
        let launcher = self.request.launcher;
        let ports = NodePorts {
            https: 0,
            management: 0,
            cluster: 0,
        };
        let command = self.node_command(ports, 0, 0);
        let files = &launcher.certs.files;
        self.snapshots.identity(
            &[
                TREE,
                &launcher.install.display().to_string(),
                &launcher.java.path.display().to_string(),
                &command.java_options,
                &command.options.join(" "),
                &self.admin.username,
                self.admin.password.expose(),
                &self.request.template.name(),
                &self.request.nodes.to_string(),
                &self.snapshots.fixed_root().display().to_string(),
            ],
            &[files.keycloak_cert(), files.keycloak_key(), files.ca_cert()],
        )
    }

    /// A node's command on these ports, naming the load balancer's `public_port` as its
    /// hostname.
    fn node_command(
        &self,
        ports: NodePorts,
        postgres_port: u16,
        public_port: u16,
    ) -> crate::native::NodeCommand {
        let store = Store::Cluster {
            database: DatabaseAccess::local(postgres_port, self.password.clone()),
            cluster_port: ports.cluster,
        };
        let ports = (ports.https, ports.management, Some(public_port));
        self.request
            .launcher
            .command(ports, store, &self.archive, true)
    }

    /// Restores `snapshot` if its ports fit the start (the load balancer's any free one, or the
    /// snapshot's) and are free.
    async fn restore_fitting(
        &self,
        identity: &str,
        snapshot: Snapshot<ClusterMeta>,
        lock: fs::File,
    ) -> Option<StartedCluster> {
        let asked = self.request.args.https_port;
        let meta = &snapshot.meta;
        let ports_free = || meta.ports().all(|port| ensure_free(port).is_ok());
        if !(asked == 0 || asked == meta.public_port) || !ports_free() {
            tracing::info!(
                port = meta.public_port,
                "the cluster's snapshot is for another or a taken port: starting the cluster instead"
            );
            return None;
        }
        match self.restore(identity, &snapshot, lock).await {
            Ok(started) => Some(started),
            // The connections are restored on their own ports too, which another socket may hold
            // by now: not the snapshot's fault either.
            Err(reason) if !ports_free() || reason.contains("Address already in use") => {
                tracing::warn!(%reason, "the cluster's snapshot did not restore (a port was taken meanwhile); starting the cluster instead");
                None
            }
            Err(reason) => {
                tracing::warn!(%reason, "the cluster's snapshot did not restore: removed; starting the cluster instead");
                self.snapshots.discard(snapshot);
                None
            }
        }
    }

    /// Starts the tree on a copy of the template, waits for its nodes, dumps it and restores it.
    async fn make(&self, identity: &str, lock: fs::File) -> Result<StartedCluster, String> {
        let launcher = self.request.launcher;
        let live = self.snapshots.live_dir(identity);
        // A run that crashed while it made this snapshot left one.
        let _ = fs::remove_dir_all(&live);
        let live_guard = Removed(Some(live.clone()));
        fs::create_dir_all(&live).map_err(|e| format!("cannot create {live:?}: {e}"))?;
        crate::postgres::copy_tree(&self.request.template.data(), &live.join("data"))
            .map_err(|e| e.to_string())?;
        let preload = preload(self.snapshots.dir(), self.owner)?;
        let meta = self.ports(identity)?;
        for log in &meta.logs {
            crate::native::create_log(log).map_err(|e| format!("cannot create {log:?}: {e}"))?;
        }
        let script = self.script(&live, &preload, &meta);
        let script_path = live.join(SCRIPT);
        fs::write(&script_path, script)
            .map_err(|e| format!("cannot write {script_path:?}: {e}"))?;
        launcher.progress.stage(&format!(
            "starting PostgreSQL and {} Keycloak {KEYCLOAK_VERSION} nodes in one tree, to snapshot them (once)",
            meta.nodes.len()
        ));
        let mut tree = Spawned(self.spawn(&script_path, &meta)?);
        for (index, node) in meta.nodes.iter().enumerate() {
            if index > 0 {
                fs::write(live.join(format!("go-{}", index + 1)), b"")
                    .map_err(|e| format!("cannot start node {}: {e}", index + 1))?;
            }
            let health = health_url(node.management);
            let exited = || tree.exited(node.https);
            wait_ready(&health, &launcher.certs.ca_pem, launcher.timeout, exited)
                .await
                .map_err(|(NotReady::Exited(reason) | NotReady::TimedOut(reason))| {
                    let postgres = crate::error::tail(&live.join(POSTGRES_LOG), 3);
                    format!(
                        "node {} in the tree: {reason} (PostgreSQL's log: {})",
                        index + 1,
                        postgres.replace('\n', " / ")
                    )
                })?;
        }
        // Each node's JIT compiles what the cluster's tests will ask of it, once, into the
        // snapshot; one node after the other, since their realms are one database's.
        launcher
            .progress
            .stage("working each node through a run's requests (once)");
        for (index, node) in meta.nodes.iter().enumerate() {
            crate::warmup::exercise(
                &crate::native::base_url(node.https),
                &self.admin,
                launcher.certs,
                crate::warmup::TokenRoute::Forwarded,
                &crate::SnapshotExtras::default(),
                None,
            )
            .await
            .map_err(|reason| format!("the warm-up of node {}: {reason}", index + 1))?;
        }
        let init = crate::snapshot::first_child(tree.0.id()).ok_or("the tree's init is gone")?;
        let lifeline_pipe =
            crate::snapshot::lifeline_pipe(init).ok_or("the tree's lifeline was not found")?;
        let meta = ClusterMeta {
            lifeline_pipe,
            ..meta
        };
        // The restore below copies the data again and owns it from then on.
        live_guard.keep();
        let data = live.join("data");
        let keep = |staging: &Path| {
            crate::postgres::copy_tree(&data, &staging.join("data")).map_err(|e| e.to_string())
        };
        let snapshot = self
            .snapshots
            .make(identity, init, meta, Connections::Keep, keep)
            .map_err(|failure| failure.reason)?;
        drop(tree);
        self.restore(identity, &snapshot, lock)
            .await
            .inspect_err(|_| {
                self.snapshots.discard(snapshot);
            })
    }

    /// Free ports for everything the tree listens on, all different.
    fn ports(&self, identity: &str) -> Result<ClusterMeta, String> {
        let public = self.request.public_port;
        let mut taken = vec![public];
        let mut next = || -> Result<u16, String> {
            loop {
                let port = playbook_process::free_port()
                    .map_err(|e| format!("cannot find a free port: {e}"))?;
                if !taken.contains(&port) {
                    taken.push(port);
                    return Ok(port);
                }
            }
        };
        let postgres_port = next()?;
        let nodes: Vec<NodePorts> = (0..self.request.nodes)
            .map(|_| {
                Ok(NodePorts {
                    https: next()?,
                    management: next()?,
                    cluster: next()?,
                })
            })
            .collect::<Result<_, String>>()?;
        let logs = nodes
            .iter()
            .map(|node| crate::native::log_path(node.https))
            .chain([self.snapshots.live_dir(identity).join(POSTGRES_LOG)])
            .collect();
        Ok(ClusterMeta {
            public_port: public,
            postgres_port,
            nodes,
            lifeline_pipe: String::new(),
            logs,
        })
    }

    /// `tree.sh`: PostgreSQL, node 1 once PostgreSQL accepts connections, each next node once
    /// its `go-N` file exists (the first one up is the cluster's coordinator; started together,
    /// two nodes can each become one). Secrets come from the environment, never this file.
    fn script(&self, live: &Path, preload: &Path, meta: &ClusterMeta) -> String {
        let bin = crate::postgres::binaries().unwrap_or_default();
        let server = std::iter::once(bin.join("postgres").into_os_string())
            .chain(crate::postgres::server_args(
                &live.join("data"),
                meta.postgres_port,
                Path::new(""),
            ))
            // Its parallel queries' shared memory in the IPC namespace, which CRIU dumps, not in
            // `/dev/shm` files, which would be gone by the next restore.
            .chain(["-c".into(), "dynamic_shared_memory_type=sysv".into()])
            .map(|arg| quote(&arg.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        // A PostgreSQL that exits ends the tree, which the start notices, instead of node 1
        // waiting for it until the start times out.
        let mut script = format!(
            "LD_PRELOAD={} setsid {server} >>{} 2>&1 </dev/null &\n\
             postgres=$!\n\
             until {} -q -h 127.0.0.1 -p {}; do kill -0 \"$postgres\" || exit 1; sleep 0.1; done\n",
            quote(&preload.display().to_string()),
            quote(&live.join(POSTGRES_LOG).display().to_string()),
            quote(&bin.join("pg_isready").display().to_string()),
            meta.postgres_port,
        );
        let kc = self.request.launcher.install.join("bin/kc.sh");
        for (index, node) in meta.nodes.iter().enumerate() {
            if index > 0 {
                let go = live.join(format!("go-{}", index + 1));
                script.push_str(&format!(
                    "until [ -e {} ]; do sleep 0.1; done\n",
                    quote(&go.display().to_string())
                ));
            }
            let command = self.node_command(*node, meta.postgres_port, meta.public_port);
            let words = std::iter::once(kc.display().to_string())
                .chain(["start".into(), "--optimized".into()])
                .chain(command.options)
                .map(|word| quote(&word))
                .collect::<Vec<_>>()
                .join(" ");
            let log = crate::native::log_path(node.https);
            script.push_str(&format!(
                "setsid {words} >>{} 2>&1 </dev/null &\n",
                quote(&log.display().to_string())
            ));
        }
        script.push_str("wait\n");
        script
    }

    /// `unshare` making the namespaces, its init the watchdog running `script`, its stdin the
    /// lifeline.
    fn spawn(&self, script: &Path, meta: &ClusterMeta) -> Result<Child, String> {
        use std::os::unix::process::CommandExt;
        let launcher = self.request.launcher;
        let command = self.node_command(meta.nodes[0], meta.postgres_port, meta.public_port);
        Command::new("unshare")
            .args([
                "--pid", "--ipc", "--time", "--fork", "setsid", "/bin/sh", "-c",
            ])
            .arg(playbook_process::WATCHDOG)
            .arg("cluster-watchdog")
            .arg("/bin/sh")
            .arg(script)
            .env("JAVA", &launcher.java.path)
            .env("JAVA_OPTS_APPEND", &command.java_options)
            .envs(bootstrap_admin(&self.admin).iter().map(KcOption::env))
            .envs(command.secret_env)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))
    }

    /// Restores `snapshot` on a fresh copy of its data and waits for every node.
    async fn restore(
        &self,
        identity: &str,
        snapshot: &Snapshot<ClusterMeta>,
        lock: fs::File,
    ) -> Result<StartedCluster, String> {
        let launcher = self.request.launcher;
        let meta = &snapshot.meta;
        let url = crate::native::base_url(meta.public_port);
        launcher.progress.stage(&format!(
            "restoring PostgreSQL and {} Keycloak {KEYCLOAK_VERSION} nodes (native, Java {}) behind {url} from their snapshot",
            meta.nodes.len(),
            launcher.java.major
        ));
        let started = Instant::now();
        let live = self.snapshots.live_dir(identity);
        fs::create_dir_all(&live).map_err(|e| format!("cannot create {live:?}: {e}"))?;
        // The tree's shell holds its script open, so CRIU reopens it: written again, the same,
        // where something emptied `/dev/shm` since the dump.
        let script_path = live.join(SCRIPT);
        if !script_path.exists() {
            let preload = preload(self.snapshots.dir(), self.owner)?;
            fs::write(&script_path, self.script(&live, &preload, meta))
                .map_err(|e| format!("cannot write {script_path:?}: {e}"))?;
        }
        let data = live.join("data");
        // The tree before this one removed it when it ended; a crashed run's is still there.
        let _ = fs::remove_dir_all(&data);
        let data_guard = Removed(Some(data.clone()));
        crate::postgres::copy_tree(&snapshot.dir.join("data"), &data).map_err(|e| e.to_string())?;
        // Today's paths (the nodes' in today's temporary directory), handed in for the dumped ones.
        let logs: Vec<PathBuf> = meta
            .nodes
            .iter()
            .map(|node| crate::native::log_path(node.https))
            .chain([live.join(POSTGRES_LOG)])
            .collect();
        if meta.logs.len() != logs.len() {
            return Err("the snapshot names other logs than its tree's".to_owned());
        }
        let files = logs
            .iter()
            .map(|log| {
                crate::native::create_log(log)
                    .map_err(|e| format!("cannot create {log:?}: {e}"))?;
                // Appended to, as `tree.sh` opened them: PostgreSQL's processes share one.
                crate::snapshot::open_for_restore(log, true)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let handed: Vec<_> = files
            .iter()
            .zip(&meta.logs)
            .map(|(file, dumped)| (file.as_raw_fd(), dumped.as_path()))
            .collect();
        let restored = self.snapshots.restore_tree(
            snapshot,
            &handed,
            &meta.lifeline_pipe,
            &live,
            Connections::Keep,
        )?;
        data_guard.keep();
        let tree = Tree {
            init: restored.pid,
            reaped: false.into(),
            lifeline: Mutex::new(Some(restored.lifeline)),
            data,
            _lock: lock,
        };
        // JGroups' discovery rows are dated by the wall clock, which went on since the dump: a
        // row older than a minute is stale to Keycloak, and a node whose coordinator's row is
        // stale reports itself not ready (for ~15 s here, until the coordinator writes it again).
        crate::postgres::execute(
            meta.postgres_port,
            &self.password,
            "UPDATE jgroups_ping SET last_update = EXTRACT(EPOCH FROM now())::bigint",
        )?;
        let mut nodes = Vec::new();
        for (index, node) in meta.nodes.iter().enumerate() {
            let exited = || tree.gone(node.https);
            wait_ready(
                &health_url(node.management),
                &launcher.certs.ca_pem,
                launcher.timeout,
                exited,
            )
            .await
            .map_err(|(NotReady::Exited(reason) | NotReady::TimedOut(reason))| {
                format!("node {} restored: {reason}", index + 1)
            })?;
            let member = member(tree.init, node.https)
                .and_then(|leader| {
                    let archive = ClassArchive::existing(launcher.install, launcher.java.major);
                    let log = crate::native::log_path(node.https);
                    NativeKeycloak::member(leader, log, archive, (node.https, node.management))
                })
                .ok_or(format!(
                    "node {} restored but not found in /proc",
                    index + 1
                ))?;
            nodes.push((member, crate::native::base_url(node.https)));
        }
        launcher.progress.finished(&format!(
            "PostgreSQL and {} Keycloak nodes ready in {:.1} s (restored from their snapshot)",
            nodes.len(),
            started.elapsed().as_secs_f64()
        ));
        Ok(StartedCluster {
            nodes,
            admin: self.admin.clone(),
            postgres: None,
            tree: Some(tree),
            public_port: meta.public_port,
        })
    }
}

/// PostgreSQL's log in the live directory.
const POSTGRES_LOG: &str = "postgres.log";

fn health_url(management_port: u16) -> String {
    playbook_https::local_url(management_port)
        .join("health/ready")
        .expect("a static path")
        .to_string()
}

/// The `unshare` of a tree being made; dropping it kills the tree (after a dump it is gone).
struct Spawned(Child);

impl Spawned {
    /// Why the tree or the node on `https_port` is gone, if it is: the whole tree ended, or the
    /// node, once started, is no longer in it.
    fn exited(&mut self, https_port: u16) -> Option<String> {
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(format!("the tree ended ({status})"));
        }
        let init = crate::snapshot::first_child(self.0.id())?;
        let log = crate::native::log_path(https_port);
        let started = fs::metadata(&log).is_ok_and(|m| m.len() > 0);
        (started && member(init, https_port).is_none()).then(|| {
            format!(
                "the node exited: {}",
                crate::error::tail(&log, 5).replace('\n', " / ")
            )
        })
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(init) = crate::snapshot::first_child(self.0.id()) {
            playbook_process::signal(init, libc::SIGKILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed when dropped, unless kept: what a failed start leaves is not worth keeping.
struct Removed(Option<PathBuf>);

impl Removed {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// The `kc.sh` of the node on `https_port` among `init`'s descendants: the leader of its process
/// group (it shares it with its JVM).
fn member(init: i32, https_port: u16) -> Option<i32> {
    let flag = format!("--https-port={https_port}");
    let mut pending = vec![init];
    while let Some(pid) = pending.pop() {
        let children = fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
            .collect::<String>();
        pending.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let has_flag = cmdline
            .split(|byte| *byte == 0)
            .any(|arg| arg == flag.as_bytes());
        // SAFETY: getpgid(2) has no memory-safety preconditions.
        if has_flag && unsafe { libc::getpgid(pid) } == pid {
            return Some(pid);
        }
    }
    None
}

/// The owner of PostgreSQL's data directory, unless it is root.
fn owner(data: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let uid = fs::metadata(data).ok()?.uid();
    (uid != 0).then_some(uid)
}

/// The library that tells PostgreSQL it runs as `uid`, built once beside the snapshots.
fn preload(dir: &Path, uid: u32) -> Result<PathBuf, String> {
    let library = dir.join(format!("postgres-runs-as-{uid}.so"));
    if library.is_file() {
        return Ok(library);
    }
    let source = "#include <sys/types.h>\n\
                  uid_t geteuid(void) { return OWNER; }\n\
                  uid_t getuid(void) { return OWNER; }\n";
    let partial = library.with_extension(format!("partial-{}", std::process::id()));
    let mut compiler = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-x", "c", "-", "-o"])
        .arg(&partial)
        .arg(format!("-DOWNER={uid}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("no C compiler (cc) to build {library:?}: {e}"))?;
    if let Some(mut stdin) = compiler.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(source.as_bytes());
    }
    let output = compiler
        .wait_with_output()
        .map_err(|e| format!("cc: {e}"))?;
    if !output.status.success() {
        let _ = fs::remove_file(&partial);
        return Err(format!(
            "cc could not build {library:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    fs::rename(&partial, &library).map_err(|e| format!("cannot keep {library:?}: {e}"))?;
    Ok(library)
}

/// `word` as one shell word.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_word_comes_back_whole_from_the_shell() {
        let word = "it's a --flag=\"x\" $HOME `id`";
        let echoed = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(word)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&echoed.stdout), word);
    }

    #[test]
    fn a_restore_needs_every_port_of_the_tree() {
        let meta = ClusterMeta {
            public_port: 1,
            postgres_port: 2,
            nodes: vec![
                NodePorts {
                    https: 3,
                    management: 4,
                    cluster: 5,
                },
                NodePorts {
                    https: 6,
                    management: 7,
                    cluster: 8,
                },
            ],
            lifeline_pipe: String::new(),
            logs: Vec::new(),
        };
        assert_eq!(
            meta.ports().collect::<Vec<_>>(),
            (1..=8).collect::<Vec<_>>()
        );
    }
}
