//! A Keycloak kept running across runs, for the developer loop (like testcontainers' reuse).
//!
//! Whatever backend started it, a Keycloak dies with its starter through a lifeline pipe (see
//! `playbook_process::WATCHDOG` and `container::REAPER`). To keep one, [`Keycloak::detach`] hands the
//! write end of that pipe to a *keeper*, a `sleep` in a process group of its own, and writes a
//! [`Lease`] saying where Keycloak is and how to log in. The next run attaches to it in
//! milliseconds; [`stop_leased`] kills the keeper, which closes the pipe, and the same watchdog
//! that guards every start stops Keycloak. Nothing but the keeper's pid needs trusting, and it
//! is checked to still be our `sleep` before it is signalled.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::{Keycloak, ProviderConfig, ProviderError, Running};
use playbook_keycloak::{AdminCredentials, Secret};

/// Where a kept Keycloak is and how to use it; written 0600, as it holds the admin password.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lease {
    pub base_url: Url,
    pub backend: String,
    admin_user: String,
    admin_password: String,
    keeper_pid: u32,
    /// Files the stopped Keycloak leaves behind (a native instance's database).
    leftovers: Vec<PathBuf>,
}

/// The folder of the kept Keycloak of `args`' cache: its lease and the certificates it serves.
pub fn reuse_dir(args: &ProviderConfig) -> PathBuf {
    args.resolved_cache_dir().join("reuse")
}

fn lease_file(dir: &Path) -> PathBuf {
    dir.join("keycloak.json")
}

impl Lease {
    /// The lease in `dir`, if there is one.
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(lease_file(dir)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn write(&self, dir: &Path) -> Result<(), ProviderError> {
        let path = lease_file(dir);
        std::fs::create_dir_all(dir).map_err(ProviderError::io("create", dir))?;
        let text = serde_json::to_vec_pretty(self).expect("a lease serializes");
        playbook_certs::write_private(&path, &text).map_err(ProviderError::io("write", path))
    }

    /// Whether the kept Keycloak runs natively: then it started from the database kept for its
    /// configuration, which holds a test run's spare realms (unless keeping it failed).
    pub fn native(&self) -> bool {
        self.backend == crate::NATIVE
    }

    /// The leased Keycloak, if it still answers with the leased admin credentials. Its handle
    /// leaves it running when dropped.
    pub async fn attach(&self, ca_pem: &str) -> Option<Keycloak> {
        if !keeper_alive(self.keeper_pid) {
            return None;
        }
        let keycloak = Keycloak {
            base_url: playbook_keycloak::KeycloakUrl::new(self.base_url.clone()),
            admin: AdminCredentials::new(
                self.admin_user.clone(),
                Secret::new(self.admin_password.clone()),
            ),
            ca_pem: ca_pem.to_owned(),
            proxy: None,
            behind_proxy: None,
            backend: Running::Reused,
        };
        // A login: the test run's admin may not read the master realm (`narrow_admin`).
        keycloak.admin().ok()?.renew_token().await.ok()?;
        Some(keycloak)
    }
}

/// Takes what a handle's slot holds, even if a panic poisoned its lock: stopping Keycloak must
/// work on every path, unwinding included.
pub(crate) fn take<T>(slot: &std::sync::Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The write end of a lifeline and what remains to clean up once Keycloak has stopped.
pub(crate) struct Lifeline {
    pub(crate) pipe: OwnedFd,
    pub(crate) leftovers: Vec<PathBuf>,
}

impl Keycloak {
    /// Leaves this Keycloak running after the process ends and writes its lease into `dir`.
    /// An external Keycloak was never ours to keep.
    pub fn detach(self, dir: &Path) -> Result<Lease, ProviderError> {
        let backend = self.backend_name().to_owned();
        if self.proxy.is_some() {
            // The proxy dies with this process; a kept Keycloak without it would be unreachable.
            return Err(ProviderError::NotDetachableBehindProxy);
        }
        let lifeline = match self.backend {
            Running::Native(native) => native.detach(),
            Running::Container(container) => container.detach(),
            Running::External | Running::Reused | Running::Cluster(_) => None,
        };
        let Some(lifeline) = lifeline else {
            return Err(ProviderError::NotDetachable { backend });
        };
        use std::os::unix::process::CommandExt;
        let keeper = Command::new("sleep")
            .arg("infinity")
            .stdin(Stdio::from(lifeline.pipe))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(ProviderError::io("run", "sleep"))?;
        // Until it has exec'd, the keeper's cmdline is ours: wait, so the lease can be checked.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !keeper_alive(keeper.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let lease = Lease {
            base_url: self.base_url.as_url().clone(),
            backend,
            admin_user: self.admin.username.clone(),
            admin_password: self.admin.password.expose().to_owned(),
            keeper_pid: keeper.id(),
            leftovers: lifeline.leftovers,
        };
        lease.write(dir)?;
        Ok(lease)
    }
}

/// Stops the Keycloak leased in `dir`, if any, and removes the lease; says what it stopped.
pub fn stop_leased(dir: &Path) -> Option<String> {
    let lease = Lease::read(dir)?;
    if keeper_alive(lease.keeper_pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid was just checked.
        unsafe {
            libc::kill(lease.keeper_pid as i32, libc::SIGTERM);
        }
        wait_until_gone(&lease.base_url, Duration::from_secs(60));
    }
    for path in &lease.leftovers {
        let _ = std::fs::remove_dir_all(path);
    }
    let _ = std::fs::remove_file(lease_file(dir));
    Some(format!(
        "stopped the kept Keycloak ({}) at {}",
        lease.backend, lease.base_url
    ))
}

/// Whether `pid` is still our keeper, not some process that inherited its number.
fn keeper_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline == b"sleep\0infinity\0")
}

/// Waits until nothing listens on Keycloak's port any more.
fn wait_until_gone(base_url: &Url, timeout: Duration) {
    let Some(port) = base_url.port_or_known_default() else {
        return;
    };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        std::thread::sleep(Duration::from_millis(200));
    }
}
