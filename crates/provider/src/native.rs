//! Keycloak as a local process: `kc.sh start --optimized` from the cached build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use playbook_certs::CertSet;
use url::Url;

use crate::config::{free_port, port_or_free};
use crate::error::tail;
use crate::health::{NotReady, wait_ready};
use crate::{AdminCredentials, KEYCLOAK_VERSION, Progress, ProviderArgs, ProviderError};

/// Runs `"$@"` (kc.sh and the java it forks) and kills their whole process group as soon as its
/// stdin reaches EOF. Our process holds the only write end of that pipe, so Keycloak dies with
/// us however we end: return, panic, Ctrl-C or SIGKILL. kc.sh does not `exec` java, so a signal
/// to kc.sh alone would leave java running; the process group catches both.
const WATCHDOG: &str = r#"exec 3<&0
{ while read -r _ <&3; do :; done; kill -TERM 0; } &
watcher=$!
"$@" </dev/null 3<&-
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

/// How long Keycloak gets to shut down gracefully before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A running native Keycloak; dropping it stops the whole process group.
pub(crate) struct NativeKeycloak {
    child: Mutex<Child>,
    /// Kept open only to keep the watchdog waiting; closing it stops Keycloak.
    lifeline: Mutex<Option<ChildStdin>>,
}

pub(crate) async fn start(
    args: &ProviderArgs,
    certs: &CertSet,
    progress: &Arc<dyn Progress>,
) -> Result<(NativeKeycloak, Url, AdminCredentials), ProviderError> {
    let java = crate::java::find()?;
    let install = {
        let (args, java, progress) = (args.clone(), java.clone(), progress.clone());
        tokio::task::spawn_blocking(move || {
            crate::distribution::built_install(&args, &java, progress.as_ref())
        })
        .await
        .expect("the build task does not panic")?
    };
    let https_port = port_or_free(args.https_port)
        .map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
    ensure_free(https_port)?;
    let management_port =
        free_port().map_err(ProviderError::io("find a free port", "127.0.0.1"))?;
    let admin = args.admin_credentials_or_random();
    let base_url = Url::parse(&format!("https://localhost:{https_port}/")).expect("valid URL");
    let options = start_options(certs, https_port, management_port);
    let log = std::env::temp_dir().join(format!("oauth2-playbook-keycloak-{https_port}.log"));
    let shown = format!(
        "{} start --optimized {}",
        install.join("bin/kc.sh").display(),
        options.join(" ")
    );

    progress.stage(&format!(
        "starting Keycloak {KEYCLOAK_VERSION} (native, Java {}) on {base_url}",
        java.major
    ));
    let keycloak = spawn(&install, &java.path, &options, &admin, &log)?;
    let health = format!("https://localhost:{management_port}/health/ready");
    let waited = wait_ready(&health, &certs.ca_pem, args.start_timeout(), || {
        let mut child = keycloak.child.lock().expect("not poisoned");
        child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| format!("Keycloak exited ({status})"))
    })
    .await;
    match waited {
        Ok(took) => {
            progress.finished(&format!(
                "Keycloak ready at {base_url} in {:.1} s",
                took.as_secs_f64()
            ));
            Ok((keycloak, base_url, admin))
        }
        Err(NotReady::Exited(reason) | NotReady::TimedOut(reason)) => {
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

fn start_options(certs: &CertSet, https_port: u16, management_port: u16) -> Vec<String> {
    let files = &certs.files;
    // Absolute, because Keycloak resolves relative paths against its own working directory.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
    vec![
        format!("--hostname=https://localhost:{https_port}"),
        format!("--https-port={https_port}"),
        "--http-enabled=false".into(),
        "--http-host=127.0.0.1".into(),
        format!("--http-management-port={management_port}"),
        format!(
            "--https-certificate-file={}",
            absolute(files.keycloak_cert())
        ),
        format!(
            "--https-certificate-key-file={}",
            absolute(files.keycloak_key())
        ),
        // The CA that client certificates must chain to, as PEM: no keytool, no JKS.
        format!("--truststore-paths={}", absolute(files.ca_cert())),
        "--cache=local".into(),
    ]
}

/// Fails with a clear line when the port is taken, instead of a Java stack trace later.
fn ensure_free(port: u16) -> Result<(), ProviderError> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| ProviderError::Io {
            action: "listen on port",
            path: PathBuf::from(format!(
                "127.0.0.1:{port} (pass --keycloak-port 0 to pick a free port)"
            )),
            source: e,
        })
}

fn spawn(
    install: &Path,
    java: &Path,
    options: &[String],
    admin: &AdminCredentials,
    log: &Path,
) -> Result<NativeKeycloak, ProviderError> {
    use std::os::unix::process::CommandExt;
    let log_file = fs::File::create(log).map_err(ProviderError::io("create", log))?;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("keycloak-watchdog")
        .arg(install.join("bin/kc.sh"))
        .args(["start", "--optimized"])
        .args(options)
        .env("JAVA", java)
        // Environment, not flags: flags show up in `ps` and in our error messages.
        .env("KC_BOOTSTRAP_ADMIN_USERNAME", &admin.username)
        .env("KC_BOOTSTRAP_ADMIN_PASSWORD", admin.password.expose())
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
    let lifeline = child.stdin.take();
    Ok(NativeKeycloak {
        child: Mutex::new(child),
        lifeline: Mutex::new(lifeline),
    })
}

impl NativeKeycloak {
    /// SIGTERM to the group, then SIGKILL after [`STOP_GRACE`]; returns when no member is left.
    /// Idempotent, so a shared handle can be stopped from an exit hook and dropped later.
    pub(crate) fn terminate(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        self.lifeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let group = -(child.id() as i32);
        signal(group, libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            let _ = child.try_wait();
            if !group_alive(group) {
                break;
            }
            if Instant::now() > deadline {
                signal(group, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.wait();
    }
}

impl Drop for NativeKeycloak {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn signal(group: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(group, signal);
    }
}

fn group_alive(group: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(group, 0) == 0 }
}
