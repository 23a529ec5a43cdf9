//! PostgreSQL for the cluster topology: Debian's server binaries, run by the playbook like
//! Keycloak (its own data directory and port, stopped with everything it started).
//!
//! Keycloak's development database (H2 in a file) serves one process; a cluster's nodes share
//! their realms, keys and sessions' metadata through a real database, and find each other
//! through it too (JGroups' `jdbc-ping`). PostgreSQL refuses to run as root, so a root user runs
//! it as the `postgres` account the package creates, in a directory handed over to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use playbook_keycloak::{AdminCredentials, Secret};

use crate::ProviderError;
use crate::error::tail;

/// The database and its owner, both Keycloak's.
pub const DATABASE: &str = "keycloak";
pub const USER: &str = "keycloak";
/// Every data directory's parent starts so, then the starter's pid (for stale ones).
const DIR_PREFIX: &str = "oauth2-playbook-postgres-";
/// How long PostgreSQL gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How Keycloak reaches its database: the playbook's own PostgreSQL, or an external one
/// (`--db-url`).
#[derive(Debug, Clone)]
pub struct DatabaseAccess {
    pub jdbc_url: String,
    pub user: String,
    pub password: Secret,
}

impl DatabaseAccess {
    /// Keycloak's database on a PostgreSQL of the playbook's, on loopback at `port`.
    pub(crate) fn local(port: u16, password: Secret) -> Self {
        Self {
            jdbc_url: format!("jdbc:postgresql://127.0.0.1:{port}/{DATABASE}"),
            user: USER.to_owned(),
            password,
        }
    }
}

/// A running PostgreSQL; dropping it stops it and removes its data.
pub struct Postgres {
    /// PostgreSQL and the data directory's parent, removed with it.
    process: playbook_process::Owned,
    port: u16,
    password: Secret,
}

impl Postgres {
    /// Initialises a data directory, starts PostgreSQL on a free loopback port and creates
    /// Keycloak's database; blocking (run it off the async runtime).
    pub fn start() -> Result<Self, ProviderError> {
        let bin = binaries().ok_or(ProviderError::PostgresMissing)?;
        let runner = Runner::for_this_user();
        let guard = own_dir(&runner)?;
        let dir = guard.path().to_owned();
        let password = Secret::new(crate::config::random_password());
        let password_file = dir.join("password");
        playbook_certs::write_private(&password_file, password.expose().as_bytes())
            .map_err(ProviderError::io("write", &password_file))?;
        runner.hand_over(&password_file)?;
        let initdb = runner
            .command(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", password_file.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(ProviderError::io("run", bin.join("initdb")))?;
        let _ = std::fs::remove_file(&password_file);
        if !initdb.status.success() {
            return Err(ProviderError::PostgresFailed {
                reason: format!("initdb exited ({})", initdb.status),
                tail: String::from_utf8_lossy(&initdb.stderr).into_owned(),
            });
        }
        let postgres = Self::spawn(&runner, &bin, guard, password)?;
        postgres.create_database(&bin)?;
        Ok(postgres)
    }

    /// Starts PostgreSQL on a private copy of `template`'s data, which already holds Keycloak's
    /// database; returns it and the Keycloak admin that database knows. Blocking.
    pub(crate) fn start_from(
        template: &ClusterTemplate,
    ) -> Result<(Self, AdminCredentials), ProviderError> {
        let bin = binaries().ok_or(ProviderError::PostgresMissing)?;
        let runner = Runner::for_this_user();
        let guard = own_dir(&runner)?;
        copy_tree(&template.dir.join("data"), &guard.path().join("data"))?;
        let (password, admin) = template.secrets()?;
        let postgres = Self::spawn(&runner, &bin, guard, password)?;
        postgres.wait_accepting(&bin)?;
        Ok((postgres, admin))
    }

    /// PostgreSQL on `guard`'s data directory, on a free loopback port.
    fn spawn(
        runner: &Runner,
        bin: &Path,
        guard: tempfile::TempDir,
        password: Secret,
    ) -> Result<Self, ProviderError> {
        let port = playbook_process::free_port()
            .map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
        let child = spawn(runner, bin, guard.path(), port, &guard.path().join(LOG))?;
        Ok(Self {
            process: playbook_process::Owned::new(child, guard, Duration::from_secs(10)),
            port,
            password,
        })
    }

    /// How Keycloak connects to it.
    pub fn access(&self) -> DatabaseAccess {
        DatabaseAccess::local(self.port, self.password.clone())
    }

    /// `createdb` until PostgreSQL accepts connections: it both waits and makes the database.
    fn create_database(&self, bin: &Path) -> Result<(), ProviderError> {
        self.retry(|| self.client(bin, "createdb", &[DATABASE]))
    }

    /// Until PostgreSQL accepts connections to Keycloak's database.
    fn wait_accepting(&self, bin: &Path) -> Result<(), ProviderError> {
        self.retry(|| self.client(bin, "psql", &["-d", DATABASE, "-c", "SELECT 1"]))
    }

    /// Runs `command` until it succeeds, while PostgreSQL runs, for [`START_TIMEOUT`] at most.
    fn retry(&self, command: impl Fn() -> Command) -> Result<(), ProviderError> {
        let log = self.process.dir().join(LOG);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.process.exited() {
                return Err(ProviderError::PostgresFailed {
                    reason: format!("postgres exited ({status})"),
                    tail: tail(&log, 15),
                });
            }
            let mut command = command();
            let done = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(ProviderError::io("run", command.get_program()))?;
            if done.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProviderError::PostgresFailed {
                    reason: format!("no connection after {} s", START_TIMEOUT.as_secs()),
                    tail: tail(&log, 15),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One of PostgreSQL's client programs with `args`, connecting to this server as Keycloak's
    /// user.
    fn client(&self, bin: &Path, program: &str, args: &[&str]) -> Command {
        client(bin, self.port, &self.password, program, args)
    }

    /// Keeps this server's data as `template`, for clusters of the same install to start from,
    /// with `admin`, the Keycloak admin it knows; the Keycloak nodes using it must be stopped.
    /// Stops PostgreSQL. Blocking.
    pub(crate) fn save_as(
        &self,
        template: &ClusterTemplate,
        admin: &AdminCredentials,
    ) -> Result<(), ProviderError> {
        let bin = binaries().ok_or(ProviderError::PostgresMissing)?;
        // The stopped nodes' rows in JGroups' discovery table would send the next cluster's
        // nodes looking for members that are gone (and a dead coordinator's row keeps a node
        // from reporting ready: docs/production.md).
        let forgot = self
            .client(
                &bin,
                "psql",
                &["-d", DATABASE, "-c", "DELETE FROM jgroups_ping"],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(ProviderError::io("run", bin.join("psql")))?;
        if !forgot.status.success() {
            return Err(ProviderError::PostgresFailed {
                reason: "could not empty JGroups' discovery table before keeping the database"
                    .into(),
                tail: String::from_utf8_lossy(&forgot.stderr).into_owned(),
            });
        }
        // A fast shutdown, waited for: the data is copied only once PostgreSQL has written its
        // last checkpoint and removed its pid file.
        let data = self.process.dir().join("data");
        let stopped = Runner::for_this_user()
            .command(&bin.join("pg_ctl"))
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(ProviderError::io("run", bin.join("pg_ctl")))?;
        self.process.stop();
        if !stopped.status.success() || data.join("postmaster.pid").exists() {
            return Err(ProviderError::PostgresFailed {
                reason: "did not stop cleanly, so its data is not kept".into(),
                tail: String::from_utf8_lossy(&stopped.stderr).into_owned(),
            });
        }
        template.save(&data, &self.password, admin)
    }

    /// Stops PostgreSQL and removes its data. Idempotent.
    pub fn terminate(&self) {
        self.process.terminate();
    }
}

/// One of PostgreSQL's client programs with `args`, connecting to the playbook's server on
/// `port` as Keycloak's user.
fn client(bin: &Path, port: u16, password: &Secret, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(bin.join(program));
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER])
        .args(args)
        .env("PGPASSWORD", password.expose());
    command
}

/// Runs `sql` in Keycloak's database on the playbook's server on `port`. Blocking.
pub(crate) fn execute(port: u16, password: &Secret, sql: &str) -> Result<(), String> {
    let bin = binaries().ok_or("PostgreSQL is not installed")?;
    // Without the user's ~/.psqlrc, and failing on the first error.
    let args = ["-X", "-v", "ON_ERROR_STOP=1", "-d", DATABASE, "-c", sql];
    let output = client(&bin, port, password, "psql", &args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!(
            "psql: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// What `postgres` runs with: `data`, loopback on `port`, its Unix socket in `socket_dir` (an
/// empty path: none).
pub(crate) fn server_args(data: &Path, port: u16, socket_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["-D".into(), data.into()];
    args.extend(
        ["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"]
            .iter()
            .map(Into::into),
    );
    // Every instance runs on a data directory thrown away with it (the kept one is a copy made
    // after a clean stop), so nothing here needs to survive a machine crash: without fsync a
    // stop took ~2 s instead of ~0.1 s, its shutdown checkpoint syncing every file.
    args.extend(["-c", "fsync=off", "-k"].iter().map(Into::into));
    args.push(socket_dir.into());
    args
}

/// PostgreSQL's log, in its directory.
const LOG: &str = "postgres.log";

/// A new directory for one PostgreSQL, handed over to the user it runs as; stale ones of runs
/// that died are removed first.
fn own_dir(runner: &Runner) -> Result<tempfile::TempDir, ProviderError> {
    playbook_process::remove_stale_dirs(DIR_PREFIX);
    let guard = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir()
        .map_err(ProviderError::io(
            "create a directory in",
            std::env::temp_dir(),
        ))?;
    runner.hand_over(guard.path())?;
    Ok(guard)
}

/// `cp -a`: a data directory's files keep their owner (PostgreSQL's user) and modes (0700: it
/// refuses anything laxer), which the standard library's copy would not.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), ProviderError> {
    let copied = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .map_err(ProviderError::io("run", "cp"))?;
    if !copied.status.success() {
        return Err(ProviderError::PostgresFailed {
            reason: format!("could not copy {} to {}", from.display(), to.display()),
            tail: String::from_utf8_lossy(&copied.stderr).into_owned(),
        });
    }
    Ok(())
}

/// A cluster's database as its first node left it (schema, master realm and admin, and whatever
/// the start's [`crate::SnapshotExtras`] added), kept beside the cluster's built install: a node
/// on a fresh database spends ~9 s creating the schema, ~10 s more making the master realm and
/// the extras. One per PostgreSQL major version (a data directory is tied to it) and extras.
#[derive(Clone)]
pub(crate) struct ClusterTemplate {
    dir: PathBuf,
}

impl ClusterTemplate {
    /// The template for `install` and `extras`, made or not (its directory's name says what it
    /// holds; PostgreSQL must be installed, for its major version).
    pub(crate) fn new(
        install: &Path,
        extras: &crate::SnapshotExtras,
    ) -> Result<Self, ProviderError> {
        let bin = binaries().ok_or(ProviderError::PostgresMissing)?;
        let major = bin
            .parent()
            .and_then(Path::file_name)
            .map(|major| major.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            dir: install.join(format!(
                ".playbook-cluster-database-pg{major}{}",
                extras.name_suffix()
            )),
        })
    }

    /// Whether a whole template is there (it is renamed into place only once complete).
    pub(crate) fn exists(&self) -> bool {
        ["data/PG_VERSION", "db-password", "admin-password"]
            .iter()
            .all(|file| self.dir.join(file).is_file())
    }

    /// Private (0700): the data holds password hashes and the realms' client secrets.
    fn save(
        &self,
        data: &Path,
        password: &Secret,
        admin: &AdminCredentials,
    ) -> Result<(), ProviderError> {
        crate::database::save_whole(&self.dir, |staging| {
            copy_tree(data, &staging.join("data"))?;
            for (name, secret) in [
                ("db-password", password),
                ("admin-password", &admin.password),
            ] {
                let file = staging.join(name);
                playbook_certs::write_private(&file, secret.expose().as_bytes())
                    .map_err(ProviderError::io("write", &file))?;
            }
            Ok(())
        })
    }

    /// Removes a template that PostgreSQL could not start from: the next start makes a new one.
    pub(crate) fn discard(&self) {
        let aside = self
            .dir
            .with_extension(format!("discarded-{}", std::process::id()));
        if std::fs::rename(&self.dir, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }

    /// Its data directory, to be copied (with [`copy_tree`]) before PostgreSQL runs on it.
    pub(crate) fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// What it holds, for the identity of what is made from it.
    pub(crate) fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The database user's password and the Keycloak admin the template was made with.
    pub(crate) fn secrets(&self) -> Result<(Secret, AdminCredentials), ProviderError> {
        let read = |name: &str| {
            let file = self.dir.join(name);
            std::fs::read_to_string(&file)
                .map(|secret| Secret::new(secret.trim()))
                .map_err(ProviderError::io("read", &file))
        };
        let admin = AdminCredentials::new(crate::DEFAULT_ADMIN_USER, read("admin-password")?);
        Ok((read("db-password")?, admin))
    }
}

/// The newest PostgreSQL server Debian installed (`/usr/lib/postgresql/<major>/bin`).
pub(crate) fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether this machine has PostgreSQL's server binaries (for the tests' skip line, and doctor).
pub fn installed() -> bool {
    binaries().is_some()
}

/// Who runs PostgreSQL: this user, or, for root (which PostgreSQL refuses), `postgres`.
enum Runner {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl Runner {
    fn for_this_user() -> Self {
        // SAFETY: geteuid and getpwnam have no memory-safety preconditions; the name is a
        // NUL-terminated literal and the record is read at once.
        unsafe {
            if libc::geteuid() != 0 {
                return Self::Me;
            }
            let entry = libc::getpwnam(c"postgres".as_ptr());
            if entry.is_null() {
                return Self::Me;
            }
            Self::Postgres {
                uid: (*entry).pw_uid,
                gid: (*entry).pw_gid,
            }
        }
    }

    /// Gives `path` to the user PostgreSQL runs as.
    fn hand_over(&self, path: &Path) -> Result<(), ProviderError> {
        if let Self::Postgres { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(ProviderError::io("hand over to the postgres user", path))?;
        }
        Ok(())
    }

    /// A command running `program` as this runner. For `postgres`, the user and group are set
    /// in the child itself rather than through `runuser`, which would stand between PostgreSQL
    /// and the signals that stop it cleanly.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        self.apply(&mut command);
        command
    }

    /// The standard library drops root's supplementary groups itself when it sets the user
    /// (`setgroups(0)` before `setuid`).
    fn apply(&self, command: &mut Command) {
        use std::os::unix::process::CommandExt;
        if let Self::Postgres { uid, gid } = *self {
            command.uid(uid).gid(gid);
        }
    }
}

fn spawn(
    runner: &Runner,
    bin: &Path,
    dir: &Path,
    port: u16,
    log: &Path,
) -> Result<Child, ProviderError> {
    let log_file = std::fs::File::create(log).map_err(ProviderError::io("create", log))?;
    runner.hand_over(log)?;
    // The watchdog runs as PostgreSQL's user too: it only ever signals its own group.
    let mut command = playbook_process::watched("postgres-watchdog", bin.join("postgres"));
    runner.apply(&mut command);
    command
        .args(server_args(&dir.join("data"), port, dir))
        .stdout(
            log_file
                .try_clone()
                .map_err(ProviderError::io("open", log))?,
        )
        .stderr(log_file)
        .spawn()
        .map_err(ProviderError::io("run", bin.join("postgres")))
}
