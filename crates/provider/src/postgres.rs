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

use playbook_keycloak::Secret;

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
        playbook_process::remove_stale_dirs(DIR_PREFIX);
        let guard = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(ProviderError::io(
                "create a directory in",
                std::env::temp_dir(),
            ))?;
        let dir = guard.path().to_owned();
        runner.hand_over(&dir)?;
        let password = Secret::new(crate::config::random_password());
        let password_file = dir.join("password");
        playbook_certs::write_private(&password_file, password.expose().as_bytes())
            .map_err(ProviderError::io("write", &password_file))?;
        runner.hand_over(&password_file)?;
        let log = dir.join("postgres.log");
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
        let port = playbook_process::free_port()
            .map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
        let child = spawn(&runner, &bin, &dir, port, &log)?;
        let postgres = Self {
            process: playbook_process::Owned::new(child, guard, Duration::from_secs(10)),
            port,
            password,
        };
        postgres.create_database(&bin, &log)?;
        Ok(postgres)
    }

    /// How Keycloak connects to it.
    pub fn access(&self) -> DatabaseAccess {
        DatabaseAccess {
            jdbc_url: format!("jdbc:postgresql://127.0.0.1:{}/{DATABASE}", self.port),
            user: USER.to_owned(),
            password: self.password.clone(),
        }
    }

    /// `createdb` until PostgreSQL accepts connections: it both waits and makes the database.
    fn create_database(&self, bin: &Path, log: &Path) -> Result<(), ProviderError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.process.exited() {
                return Err(ProviderError::PostgresFailed {
                    reason: format!("postgres exited ({status})"),
                    tail: tail(log, 15),
                });
            }
            let created = Command::new(bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    USER,
                    DATABASE,
                ])
                .env("PGPASSWORD", self.password.expose())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(ProviderError::io("run", bin.join("createdb")))?;
            if created.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProviderError::PostgresFailed {
                    reason: format!("no connection after {} s", START_TIMEOUT.as_secs()),
                    tail: tail(log, 15),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops PostgreSQL and removes its data. Idempotent.
    pub fn terminate(&self) {
        self.process.terminate();
    }
}

/// The newest PostgreSQL server Debian installed (`/usr/lib/postgresql/<major>/bin`).
fn binaries() -> Option<PathBuf> {
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
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-k")
        .arg(dir)
        .stdout(
            log_file
                .try_clone()
                .map_err(ProviderError::io("open", log))?,
        )
        .stderr(log_file)
        .spawn()
        .map_err(ProviderError::io("run", bin.join("postgres")))
}
