//! A ready Keycloak frozen to disk and thawed instead of started: ~0.4 s instead of ~5 s here.
//!
//! Most of a start is the JVM's: Quarkus booting, Keycloak's bootstrap, the master realm read and
//! cached, the hot code compiled. CRIU (Checkpoint/Restore In Userspace) saves a process tree
//! with all of that done and puts it back later, memory, threads, open files and listening
//! sockets included. It works with any JDK, which is why it is used here instead of CRaC (which
//! needs a CRaC build of the JDK; none is installed on the machines this project targets).
//!
//! The first start of a configuration runs Keycloak in a PID namespace of its own (`unshare
//! --pid`), so that its ~100 thread ids can be given back without colliding with the host's.
//! Once it is ready it is dumped (which stops it), its database file saved beside the images, and
//! restored at once. Every later start of the same configuration restores it: the same ports,
//! certificate files and admin, a private copy of the saved database, and a new log and lifeline
//! handed in with `--inherit-fd`.
//!
//! What ties a snapshot to its configuration (its identity): Keycloak's options but the ports,
//! the certificate files' contents, the admin, the Java and its options, CRIU itself, and the
//! boot (CLOCK_MONOTONIC restarts at boot: a JVM restored after a reboot would see its clock run
//! backwards). CRIU needs root (CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE) and version 4 on the
//! kernels here (`scripts/install-criu.sh`); without either, every start is a plain start.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ProviderConfig;
use crate::config::SnapshotPolicy;
use crate::database::{DATABASE_FILE, InstanceDatabase};

/// Snapshots kept per install, the most recently used ones (the tests', the tutorial's, …):
/// each is ~430 MB.
const KEPT: usize = 3;
/// How long the markers of a configuration without a snapshot outlive its last start.
const MARKERS_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// What a snapshot holds besides a ready Keycloak: part of its identity, so that a change here
/// makes new snapshots.
const FORMAT: &str =
    "exercised by warmup.rs, its tokens by their topology's route, with its extras";

/// Where `scripts/install-criu.sh` puts the CRIU it builds, below the playbook's cache.
const INSTALLED: &str = "criu/bin/criu";

/// A CRIU that can dump and restore here.
#[derive(Debug, Clone)]
pub(crate) struct Criu {
    path: PathBuf,
    version: String,
}

impl Criu {
    /// The CRIU `config` names, else the one `scripts/install-criu.sh` built, else `criu` on the
    /// PATH; none unless it is version 4 or later and we are root.
    pub(crate) fn find(config: &ProviderConfig) -> Option<Self> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            tracing::debug!("Keycloak snapshots need root (CRIU): starting Keycloak plainly");
            return None;
        }
        let installed = config.resolved_cache_dir().join(INSTALLED);
        let found = match &config.criu {
            Some(named) => {
                let found = Self::at(named);
                if found.is_none() {
                    tracing::warn!(criu = %named.display(), "not a CRIU 4 or later: starting Keycloak without snapshots");
                }
                found
            }
            None => Self::at(&installed).or_else(|| Self::at(Path::new("criu"))),
        };
        // Root without the right to make a PID namespace (a container's root, say) cannot
        // snapshot either; asking costs a few milliseconds.
        let namespaces = Command::new("unshare")
            .args(["--pid", "--fork", "true"])
            .status()
            .is_ok_and(|status| status.success());
        if found.is_some() && !namespaces {
            tracing::debug!("no PID namespaces here: starting Keycloak without snapshots");
            return None;
        }
        found
    }

    /// The CRIU at `path`, if it is version 4 or later.
    fn at(path: &Path) -> Option<Self> {
        let output = Command::new(path).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.lines().find_map(|l| l.strip_prefix("Version: "))?;
        let major: u32 = version.split('.').next()?.trim().parse().ok()?;
        (major >= 4).then(|| Self {
            path: path.to_owned(),
            version: version.trim().to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// CRIU in a process group of its own: a Ctrl-C meant for us must not stop it halfway
    /// through a dump (it takes ~0.3 s; we stop Keycloak after it).
    fn run(&self, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&self.path);
        command.args(args).process_group(0);
        command
    }
}

/// What a restore needs to know about the Keycloak that was dumped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) https_port: u16,
    pub(crate) management_port: u16,
    /// Behind the proxy topology: the proxy's port, which Keycloak names as its hostname.
    #[serde(default)]
    pub(crate) public_port: Option<u16>,
    /// The paths and the pipe the dumped process had open, which a restore hands new files for.
    log: PathBuf,
    pub(crate) database: PathBuf,
    lifeline_pipe: String,
}

/// The snapshots of one built install.
pub(crate) struct Snapshots {
    dir: PathBuf,
    /// Where the fixed directories are (see [`fixed_root`]).
    live: PathBuf,
    criu: Criu,
}

/// What a start of a configuration does about its snapshot.
pub(crate) enum Plan<M = Meta> {
    /// Restore it (the lock held until then).
    Restore(Snapshot<M>, fs::File),
    /// Start Keycloak to snapshot it (the lock held until then).
    Make(fs::File),
    /// Start Keycloak as before.
    Plain,
}

/// Why a snapshot was not made, and whether the dump stopped Keycloak on the way.
pub(crate) struct MakeFailure {
    pub(crate) stopped: bool,
    pub(crate) reason: String,
}

/// One snapshot: CRIU's images, the database as it was, and what a restore must know (`M`:
/// [`Meta`] for one Keycloak, another for a cluster).
pub(crate) struct Snapshot<M = Meta> {
    pub(crate) dir: PathBuf,
    pub(crate) meta: M,
}

/// What CRIU does with the TCP connections of the tree it dumps. One Keycloak's are its
/// clients', outside the tree: closed. A cluster's run between its own processes (nodes and
/// their database), all in the tree: kept, and restored established.
#[derive(Clone, Copy)]
pub(crate) enum Connections {
    Close,
    Keep,
}

impl Connections {
    fn flag(self) -> &'static str {
        match self {
            Self::Close => "--tcp-close",
            Self::Keep => "--tcp-established",
        }
    }
}

/// A Keycloak restored from a snapshot: the init of its PID namespace (our child, so that its
/// exit can be waited for) and the write end of its new lifeline.
pub(crate) struct Restored {
    pub(crate) pid: i32,
    pub(crate) lifeline: OwnedFd,
}

impl Snapshots {
    pub(crate) fn new(install: &Path, criu: Criu) -> Self {
        Self::with_fixed_root(install, criu, fixed_root)
    }

    /// [`Self::new`], its fixed directories in the folder `root` picks for the snapshots' path.
    fn with_fixed_root(install: &Path, criu: Criu, root: fn(&Path) -> PathBuf) -> Self {
        let dir = install.join(".playbook-snapshots");
        remove_partial(&dir);
        let live = root(&dir);
        Self { dir, live, criu }
    }

    /// Where a snapshot whose processes must find their files at fixed paths keeps them while
    /// it runs (see `cluster_snapshot.rs`); used under the identity's lock only.
    pub(crate) fn live_dir(&self, identity: &str) -> PathBuf {
        self.live.join(format!("{identity}.live"))
    }

    /// Whether [`Self::live_dir`]'s parent is usable now: a private folder of ours, made again if
    /// something emptied `/dev/shm` since. `false`: a cluster starts as before, and its snapshot
    /// is kept for later.
    pub(crate) fn fixed_root_ready(&self) -> bool {
        self.live == self.dir || private_folder(&self.live)
    }

    /// Part of a fixed-path snapshot's identity: one made with its files elsewhere would not
    /// find them.
    pub(crate) fn fixed_root(&self) -> &Path {
        &self.live
    }

    /// Where the snapshots are: private to root.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identity of a configuration: `parts` (options, Java options, admin), the certificate
    /// files, the environment Keycloak's scripts read (`KC_*`, `QUARKUS_*`, `JAVA_*`), CRIU's
    /// version and the boot.
    pub(crate) fn identity(&self, parts: &[&str], files: &[PathBuf]) -> String {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let mut environment: Vec<String> = std::env::vars()
            .filter(|(name, _)| {
                ["KC_", "QUARKUS_", "JAVA_"]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        environment.sort();
        let fixed = [FORMAT, self.criu.version.as_str(), boot.trim()];
        for part in parts
            .iter()
            .copied()
            .chain(environment.iter().map(String::as_str))
            .chain(fixed)
        {
            context.update(part.as_bytes());
            context.update(&[0]);
        }
        for file in files {
            context.update(&fs::read(file).unwrap_or_default());
            context.update(&[0]);
        }
        let digest = context.finish();
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// What this start of `identity` does: restore its snapshot; make one (under `Always`, or
    /// under `Repeated` when the configuration was started before: one used once, like a
    /// throwaway certificates directory, is not worth ~10 s and ~430 MB); or start plainly when
    /// an earlier attempt failed or another start of it holds its lock.
    pub(crate) fn plan<M: DeserializeOwned>(
        &self,
        identity: &str,
        policy: SnapshotPolicy,
    ) -> Plan<M> {
        let _ = fs::create_dir_all(&self.dir);
        private(&self.dir);
        let failed = self.dir.join(format!("{identity}.failed"));
        if let Ok(reason) = fs::read_to_string(&failed) {
            tracing::debug!(%reason, marker = %failed.display(), "this configuration failed to snapshot before: starting Keycloak plainly (remove the marker to try again)");
            return Plan::Plain;
        }
        let lock = self.dir.join(format!("{identity}.lock"));
        let Ok(lock) = fs::File::create(&lock) else {
            return Plan::Plain;
        };
        if lock.try_lock().is_err() {
            return Plan::Plain;
        }
        if let Some(snapshot) = self.find(identity) {
            return Plan::Restore(snapshot, lock);
        }
        let seen = self.dir.join(format!("{identity}.seen"));
        if policy == SnapshotPolicy::Always || seen.exists() {
            return Plan::Make(lock);
        }
        let _ = fs::write(&seen, b"");
        Plan::Plain
    }

    /// Remembers that snapshotting `identity` failed, so that later starts do not try again,
    /// and says so once.
    pub(crate) fn failed(&self, identity: &str, reason: &str) {
        let marker = self.dir.join(format!("{identity}.failed"));
        let _ = fs::write(&marker, reason);
        tracing::warn!(%reason, marker = %marker.display(), "Keycloak could not be snapshotted; it starts as before from now on (remove the marker to try again, or set {}=off)", crate::env::SNAPSHOTS);
    }

    /// The snapshot of `identity`, if one was made.
    fn find<M: DeserializeOwned>(&self, identity: &str) -> Option<Snapshot<M>> {
        let dir = self.dir.join(identity);
        let text = fs::read_to_string(dir.join("meta.json")).ok()?;
        let meta = serde_json::from_str(&text).ok()?;
        Some(Snapshot { dir, meta })
    }

    /// Dumps the Keycloak whose PID namespace init is `init` (which stops it), with `meta`, as
    /// the snapshot of `identity`; `keep` then copies its data into the snapshot's directory
    /// (given the directory). A failed dump leaves Keycloak running; a failure after it does not.
    pub(crate) fn make<M: Serialize>(
        &self,
        identity: &str,
        init: i32,
        meta: M,
        connections: Connections,
        keep: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<Snapshot<M>, MakeFailure> {
        let staging = self
            .dir
            .join(format!("{identity}.partial-{}", std::process::id()));
        let images = staging.join("images");
        let running = |reason: String| MakeFailure {
            stopped: false,
            reason,
        };
        fs::create_dir_all(&images)
            .map_err(|e| running(format!("cannot create {images:?}: {e}")))?;
        let dumped = self
            .criu
            .run(&[
                "dump",
                connections.flag(),
                "--file-locks",
                "-v2",
                "-o",
                "dump.log",
            ])
            .arg("-t")
            .arg(init.to_string())
            .arg("-D")
            .arg(&images)
            .output();
        let dump_failed = match dumped {
            Ok(output) if output.status.success() => None,
            Ok(_) => Some(criu_error(&images.join("dump.log"), "dump")),
            Err(e) => Some(format!("cannot run {}: {e}", self.criu.path.display())),
        };
        if let Some(reason) = dump_failed {
            let _ = fs::remove_dir_all(&staging);
            return Err(running(reason));
        }
        let stopped = |reason: String| {
            let _ = fs::remove_dir_all(&staging);
            MakeFailure {
                stopped: true,
                reason,
            }
        };
        keep(&staging).map_err(stopped)?;
        let text = serde_json::to_vec_pretty(&meta).expect("meta serializes");
        fs::write(staging.join("meta.json"), text)
            .map_err(|e| stopped(format!("cannot write the snapshot: {e}")))?;
        // The identity's lock is held: no other start renames into `dir` meanwhile.
        let dir = self.dir.join(identity);
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&staging, &dir)
            .map_err(|e| stopped(format!("cannot keep the snapshot: {e}")))?;
        self.evict();
        Ok(Snapshot { dir, meta })
    }

    /// Restores `snapshot` on a private copy of its database in `database`, its output
    /// appended to `log`.
    pub(crate) fn restore(
        &self,
        snapshot: &Snapshot,
        database: &InstanceDatabase,
        log: &Path,
    ) -> Result<Restored, String> {
        let saved = snapshot.dir.join(DATABASE_FILE);
        fs::copy(&saved, database.file()).map_err(|e| format!("cannot copy {saved:?}: {e}"))?;
        let log_file = open_for_restore(log, true)?;
        let database_file = open_for_restore(&database.file(), false)?;
        let handed = [
            (log_file.as_raw_fd(), snapshot.meta.log.as_path()),
            (database_file.as_raw_fd(), snapshot.meta.database.as_path()),
        ];
        let work = database.file().parent().map(Path::to_owned);
        let work = work.ok_or("the database file has no directory")?;
        self.restore_tree(
            snapshot,
            &handed,
            &snapshot.meta.lifeline_pipe,
            &work,
            Connections::Close,
        )
    }

    /// Restores the tree of `snapshot`, handing it `files` in place of the ones it had open at
    /// those paths (CRIU checks that a file is as it was; a log has grown since) and a new
    /// lifeline in place of `lifeline_pipe`. CRIU's pid file and log go in `work`.
    pub(crate) fn restore_tree<M>(
        &self,
        snapshot: &Snapshot<M>,
        files: &[(RawFd, &Path)],
        lifeline_pipe: &str,
        work: &Path,
        connections: Connections,
    ) -> Result<Restored, String> {
        let _ = touch(&snapshot.dir);
        let (reader, writer) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let pidfile = work.join("keycloak.pid");
        let restore_log = work.join("restore.log");
        // CRIU refuses to write over a pid file (one an earlier restore in `work` left).
        let _ = fs::remove_file(&pidfile);
        // CRIU names a regular file by its path without the leading slash.
        let key = |path: &Path| {
            path.display()
                .to_string()
                .trim_start_matches('/')
                .to_owned()
        };
        // The files land on these numbers in CRIU's process (see `pre_exec` below).
        let handed: Vec<(RawFd, i32, String)> = files
            .iter()
            .map(|(fd, path)| (*fd, key(path)))
            .chain([(reader.as_raw_fd(), lifeline_pipe.to_owned())])
            .zip(FIRST_HANDED..)
            .map(|((fd, key), number)| (fd, number, key))
            .collect();
        if handed.len() > MAX_HANDED {
            return Err(format!("a restore is handed at most {MAX_HANDED} files"));
        }
        let mut command = self.criu.run(&[
            "restore",
            connections.flag(),
            "--file-locks",
            "--restore-detached",
            "--restore-sibling",
            "-v2",
        ]);
        command
            .arg("-D")
            .arg(snapshot.dir.join("images"))
            .arg("-o")
            .arg(&restore_log)
            .arg("--pidfile")
            .arg(&pidfile);
        for (_, number, key) in &handed {
            command
                .arg("--inherit-fd")
                .arg(format!("fd[{number}]:{key}"));
        }
        let numbers: Vec<(i32, i32)> = handed.iter().map(|(fd, n, _)| (*fd, *n)).collect();
        use std::os::unix::process::CommandExt;
        // SAFETY: fcntl(2) and dup2(2) are async-signal-safe, and nothing is allocated. Each
        // file is first moved above the numbers (a source may already sit on one of them), then
        // put on its number; dup2 clears close-on-exec there.
        unsafe {
            command.pre_exec(move || {
                let mut moved = [0; MAX_HANDED];
                for (slot, (fd, _)) in moved.iter_mut().zip(&numbers) {
                    *slot = libc::fcntl(*fd, libc::F_DUPFD, FIRST_HANDED + MAX_HANDED as i32);
                    if *slot < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (fd, (_, number)) in moved.iter().zip(&numbers) {
                    if libc::dup2(*fd, *number) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let status = command
            .status()
            .map_err(|e| format!("cannot run {}: {e}", self.criu.path.display()))?;
        if !status.success() {
            return Err(criu_error(&restore_log, "restore"));
        }
        let pid = fs::read_to_string(&pidfile)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or("CRIU restored Keycloak but wrote no pid file")?;
        let _ = fs::remove_file(&restore_log);
        Ok(Restored {
            pid,
            lifeline: writer,
        })
    }

    /// Removes a snapshot that failed to restore, so the next start makes a new one.
    pub(crate) fn discard<M>(&self, snapshot: Snapshot<M>) {
        let _ = fs::remove_dir_all(snapshot.dir);
    }

    /// Keeps the [`KEPT`] most recently used snapshots, and the markers (`.seen`, `.lock`) of
    /// configurations started within [`MARKERS_KEPT_FOR`]: a throwaway certificates directory
    /// leaves one of each, and would otherwise leave them for good. A `.failed` marker stays
    /// until it is removed by hand, as its warning says. A cluster's fixed directory
    /// (`<identity>.live`) goes with its snapshot.
    fn evict(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut snapshots: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|entry| entry.path().join("meta.json").is_file())
            .map(|entry| {
                let used = entry.metadata().and_then(|m| m.modified());
                (used.unwrap_or(std::time::UNIX_EPOCH), entry.path())
            })
            .collect();
        snapshots.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
        for (_, dir) in snapshots.into_iter().skip(KEPT) {
            let _ = fs::remove_dir_all(dir);
        }
        // The fixed directory of a snapshot gone (see `live_dir`), unless a start holds its lock
        // (held here until the directory is gone). Beside the snapshots too: where they were
        // before `/dev/shm` had room.
        let roots = [&self.live, &self.dir];
        let entries = roots[..if self.live == self.dir { 1 } else { 2 }]
            .iter()
            .flat_map(|root| fs::read_dir(root).into_iter().flatten().flatten());
        for entry in entries {
            let name = entry.file_name();
            let Some(identity) = name.to_str().and_then(|n| n.strip_suffix(".live")) else {
                continue;
            };
            if self.dir.join(identity).join("meta.json").is_file() {
                continue;
            }
            let lock = fs::File::open(self.dir.join(format!("{identity}.lock")));
            if lock.as_ref().map_or(true, |lock| lock.try_lock().is_ok()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let Some(unused_since) = std::time::SystemTime::now().checked_sub(MARKERS_KEPT_FOR) else {
            return;
        };
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let marker = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("seen" | "lock")
            );
            // Every start opens its configuration's lock, which truncates it and so dates it: a
            // start in progress holds a new one. (A `.seen` is written once.)
            let unused = fs::metadata(path.with_extension("lock"))
                .and_then(|m| m.modified())
                .map_or(true, |modified| modified < unused_since);
            if marker && unused && !path.with_extension("").join("meta.json").is_file() {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// What a restore of the Keycloak whose namespace init is `init` needs: its ports, and the pipe
/// and files it has open.
pub(crate) fn describe(
    init: i32,
    (https_port, management_port): (u16, u16),
    log: &Path,
    database: &InstanceDatabase,
) -> Option<Meta> {
    Some(Meta {
        https_port,
        management_port,
        public_port: None,
        log: log.to_owned(),
        database: database.file(),
        lifeline_pipe: lifeline_pipe(init)?,
    })
}

/// The pipe the watchdog `init` holds: its lifeline, the only pipe it has (not always as fd 0:
/// while it runs a command with redirections, the shell keeps it at fd 10 and up).
pub(crate) fn lifeline_pipe(init: i32) -> Option<String> {
    let lifeline = fs::read_dir(format!("/proc/{init}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .find(|target| target.to_string_lossy().starts_with("pipe:["))?;
    Some(lifeline.display().to_string())
}

/// A file a restored process gets in place of the one it had: a log appended to, a database
/// read and written.
pub(crate) fn open_for_restore(path: &Path, append: bool) -> Result<fs::File, String> {
    fs::OpenOptions::new()
        .read(!append)
        .write(true)
        .append(append)
        .create(true)
        .open(path)
        .map_err(|e| format!("cannot open {path:?}: {e}"))
}

/// Where the files handed to a restore are numbered from in CRIU's process, and how many at most.
const FIRST_HANDED: i32 = 100;
const MAX_HANDED: usize = 8;

/// The first child of `pid` (the init `unshare --fork` made), from `/proc`.
pub(crate) fn first_child(pid: u32) -> Option<i32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Snapshots hold the admin password and private keys in their memory images: root only.
fn private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
}

/// Where a build's fixed directories go (see [`Snapshots::live_dir`]). A cluster's restore copies
/// PostgreSQL's data, ~1,800 files, into one, and its end removes them: on these machines' ext4
/// the copy took up to 2 s of CPU in a whole test run, in memory 0.15 s. So in `/dev/shm`, a
/// folder named after the snapshots' path (one per build): kept once it is there and ours, made
/// where `/dev/shm` is a tmpfs with room to spare; else beside the snapshots (one that another
/// user made first, say, since `/dev/shm` is everyone's).
fn fixed_root(dir: &Path) -> PathBuf {
    const ROOM: u64 = 2 << 30;
    let shm = Path::new("/dev/shm");
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        dir.as_os_str().as_encoded_bytes(),
    );
    let name: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let folder = shm.join(format!("oauth2-playbook-snapshots-{name}"));
    let roomy_tmpfs = || {
        rustix::fs::statfs(shm).is_ok_and(|stat| {
            stat.f_type == libc::TMPFS_MAGIC
                && stat.f_bavail.saturating_mul(stat.f_bsize as u64) >= ROOM
        })
    };
    match folder.exists() || roomy_tmpfs() {
        true if private_folder(&folder) => folder,
        _ => dir.to_path_buf(),
    }
}

/// Whether `path` is a directory of ours that no one else may enter, made so if it is missing.
/// Not a link: in `/dev/shm` anyone may have made one there first.
fn private_folder(path: &Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = fs::DirBuilder::new().mode(0o700).create(path);
    fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o077 == 0
    })
}

/// A dump interrupted midway leaves a `.partial-<pid>` directory; the next start removes it.
fn remove_partial(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split_once(".partial-"))
            .map(|(_, p)| p)
        else {
            continue;
        };
        let running = pid
            .parse::<i32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !running || pid == std::process::id().to_string() {
            tracing::info!(dir = %entry.path().display(), "removing a snapshot an interrupted start left half-written");
            // A directory of images, or a file (the cluster's preloaded library, being built).
            let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
        }
    }
}

/// Marks a snapshot used (for [`Snapshots::evict`]): its directory's modification time.
fn touch(dir: &Path) -> std::io::Result<()> {
    let marker = dir.join("used");
    fs::write(&marker, b"")?;
    fs::remove_file(marker)
}

/// The last error lines of a CRIU log, for a one-line warning; the log itself is moved to the
/// temporary directory first (where it was goes with the failed attempt).
fn criu_error(log: &Path, what: &str) -> String {
    let kept = std::env::temp_dir().join(format!(
        "oauth2-playbook-criu-{what}-{}.log",
        std::process::id()
    ));
    let log = match fs::copy(log, &kept) {
        Ok(_) => kept.as_path(),
        Err(_) => log,
    };
    let text = fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("Error") && !line.contains("RLIMIT_NOFILE"))
        .collect();
    let last = errors
        .iter()
        .rev()
        .take(2)
        .rev()
        .copied()
        .collect::<Vec<_>>();
    format!("CRIU failed ({}): {}", log.display(), last.join(" / "))
}

/// A pipe whose write end closes on exec (it stays ours), the read end handed to CRIU.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshots(install: &Path) -> Snapshots {
        let criu = Criu {
            path: PathBuf::from("criu"),
            version: "4.1.1".into(),
        };
        // Fixed directories beside the snapshots, where the tests look and clean up.
        Snapshots::with_fixed_root(install, criu, Path::to_path_buf)
    }

    #[test]
    fn a_fixed_root_is_a_private_folder_of_ours_never_a_link_or_one_others_may_enter() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made");
        assert!(private_folder(&made), "a missing one is made");
        assert_eq!(
            fs::metadata(&made).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!private_folder(&open), "one others may enter");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&made, &link).unwrap();
        assert!(!private_folder(&link), "a link, even to a folder of ours");
    }

    #[test]
    fn a_changed_certificate_or_option_is_another_identity() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("keycloak.pem");
        fs::write(&cert, "one").unwrap();
        let snapshots = snapshots(dir.path());
        let first = snapshots.identity(&["--https-port=0"], std::slice::from_ref(&cert));
        assert_eq!(
            first,
            snapshots.identity(&["--https-port=0"], std::slice::from_ref(&cert))
        );
        assert_ne!(
            first,
            snapshots.identity(&["--cache=ispn"], std::slice::from_ref(&cert))
        );
        fs::write(&cert, "another").unwrap();
        assert_ne!(first, snapshots.identity(&["--https-port=0"], &[cert]));
    }

    #[test]
    fn a_half_written_snapshot_of_a_process_gone_is_removed_and_the_oldest_and_unused_markers_evicted()
     {
        let install = tempfile::tempdir().unwrap();
        let dir = install.path().join(".playbook-snapshots");
        // No process has pid 0 in /proc; every Linux system has pid 1.
        for name in ["a.partial-0", "b.partial-1"] {
            fs::create_dir_all(dir.join(name)).unwrap();
        }
        let snapshots = snapshots(install.path());
        assert!(!dir.join("a.partial-0").exists());
        assert!(dir.join("b.partial-1").exists());
        for (age, name) in ["old", "older", "newer", "newest"].iter().enumerate() {
            fs::create_dir_all(dir.join(name)).unwrap();
            fs::write(dir.join(name).join("meta.json"), "{}").unwrap();
            let used =
                std::time::SystemTime::now() - std::time::Duration::from_secs(100 - age as u64);
            fs::File::open(dir.join(name))
                .unwrap()
                .set_modified(used)
                .unwrap();
        }
        let week_ago = std::time::SystemTime::now() - MARKERS_KEPT_FOR;
        for (name, modified) in [
            ("gone.seen", week_ago),
            ("gone.lock", week_ago),
            ("gone.failed", week_ago),
            ("newest.lock", week_ago),
            // Written at a first start long ago; the lock says when it was last started.
            ("recent.seen", week_ago),
            ("recent.lock", std::time::SystemTime::now()),
        ] {
            fs::File::create(dir.join(name))
                .unwrap()
                .set_modified(modified)
                .unwrap();
        }
        // A cluster's fixed directory: kept beside its snapshot, removed without one.
        for live in ["newest.live", "gone.live"] {
            fs::create_dir_all(dir.join(live).join("data")).unwrap();
        }
        snapshots.evict();
        assert!(dir.join("newest.live").exists());
        assert!(!dir.join("gone.live").exists());
        let kept: Vec<bool> = ["old", "older", "newer", "newest"]
            .iter()
            .map(|name| dir.join(name).exists())
            .collect();
        assert_eq!(kept, [false, true, true, true]);
        // Markers of configurations a week unused go, unless a snapshot or a failure needs them.
        let markers: Vec<bool> = [
            "gone.seen",
            "gone.lock",
            "gone.failed",
            "newest.lock",
            "recent.seen",
            "recent.lock",
        ]
        .iter()
        .map(|name| dir.join(name).exists())
        .collect();
        assert_eq!(markers, [false, false, true, true, true, true]);
    }
}
