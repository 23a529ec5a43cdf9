//! A real SPIFFE issuer for the workload-identity lesson: a SPIRE server and agent run by the
//! playbook (like HAProxy and PostgreSQL: a watchdog on each, stopped with their process groups,
//! their directory removed), set up the way a small deployment is:
//!
//! - the server, trust domain [`spiffe::TRUST_DOMAIN`], signing JWT-SVIDs, serving its SPIFFE
//!   bundle (the keys that verify them) at an HTTPS bundle endpoint with a certificate of the
//!   playbook's CA, which Keycloak trusts already (profile `https_web`);
//! - the agent, attested to the server with a one-time join token, bootstrapped with the
//!   server's own bundle (no insecure bootstrap);
//! - the workload, registered as [`spiffe::workload_id`] for whatever runs as this user (unix
//!   uid attestation), which then asks the agent's Workload API for its JWT-SVID.
//!
//! SPIRE is an optional extra: `scripts/install-spire.sh` builds it once with Go's tooling.
//! The server and agent are driven through their own command lines, which is how SPIRE's
//! documentation sets them up; nothing here speaks SPIRE's gRPC.

use std::path::{Path, PathBuf};
use std::time::Duration;

use playbook_certs::{CertSet, LeafSpec};
use playbook_keycloak::spiffe;
use playbook_process::Owned;
use url::Url;

/// The SPIRE release `scripts/install-spire.sh` builds.
pub const VERSION: &str = "v1.13.3";
/// The variable that names a directory holding `spire-server` and `spire-agent`.
pub const DIR_VARIABLE: &str = "PLAYBOOK_SPIRE_DIR";
/// Prefix of the directories the runs make, so that those of killed runs are swept.
const DIR_PREFIX: &str = "oauth2-playbook-spire-";
/// How long the server and the agent get to come up, and the workload's entry to reach the
/// agent (it syncs every 5 s).
const READY_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SpireError {
    #[error(
        "SPIRE is not installed: run scripts/install-spire.sh (it builds spire-server and spire-agent with Go, once), or name their directory in {DIR_VARIABLE}"
    )]
    Missing,
    #[error("SPIRE's {part} did not come up: {reason}{}", if tail.is_empty() { String::new() } else { format!("\n--- last lines ---\n{tail}") })]
    Failed {
        part: &'static str,
        reason: String,
        tail: String,
    },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SpireError {
    let path = path.into();
    move |source| SpireError::Io {
        action,
        path,
        source,
    }
}

/// Where `spire-server` and `spire-agent` are: [`DIR_VARIABLE`], else `PATH`, else where
/// `scripts/install-spire.sh` builds them in the playbook's cache.
pub fn installed() -> Option<PathBuf> {
    let has_both =
        |dir: &Path| dir.join("spire-server").is_file() && dir.join("spire-agent").is_file();
    let named = std::env::var_os(DIR_VARIABLE).map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let cached = playbook_process::user_cache_dir()
        .join("spire")
        .join(VERSION)
        .join("bin");
    named
        .into_iter()
        .chain(on_path)
        .chain([cached])
        .find(|dir| has_both(dir))
}

/// A running SPIRE server and agent, the workload registered. Both stop when this is dropped.
pub struct Spire {
    // The agent first: it is the server's client.
    agent: Owned,
    server: Owned,
    bin: PathBuf,
    bundle_endpoint: Url,
}

impl Spire {
    /// Starts the server, registers the agent (join token) and the workload (this user's uid),
    /// starts the agent, and waits until the workload can get its JWT-SVID.
    pub async fn start(certs: &CertSet) -> Result<Self, SpireError> {
        let bin = installed().ok_or(SpireError::Missing)?;
        playbook_process::remove_stale_dirs(DIR_PREFIX);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(io("create a directory in", std::env::temp_dir()))?;
        let root = dir.path().to_owned();
        let port = |what| playbook_process::free_port().map_err(io(what, "127.0.0.1"));
        let (server_port, bundle_port) =
            (port("find a free port on")?, port("find a free port on")?);

        // The bundle endpoint's TLS identity: a server certificate of the playbook's CA.
        let identity = certs
            .authority()
            .and_then(|ca| ca.issue(&LeafSpec::server("localhost")))
            .map_err(|e| SpireError::Failed {
                part: "bundle endpoint",
                reason: format!("its certificate: {e}"),
                tail: String::new(),
            })?;
        let (cert, key) = (root.join("bundle-cert.pem"), root.join("bundle-key.pem"));
        std::fs::write(&cert, identity.cert_pem()).map_err(io("write", &cert))?;
        playbook_certs::write_private(&key, identity.key_pem().as_bytes())
            .map_err(io("write", &key))?;

        let server_config = root.join("server.conf");
        let server_socket = root.join("server.sock");
        std::fs::write(
            &server_config,
            server_conf(&root, server_port, bundle_port, &cert, &key),
        )
        .map_err(io("write", &server_config))?;
        let server_log = root.join("server.log");
        let server = spawn(
            "spire-server-watchdog",
            &bin.join("spire-server"),
            &["run", "-config"],
            &server_config,
            &server_log,
        )?;
        let server = Owned::new(server, dir, Duration::from_secs(5));
        let admin = |args: &[&str]| run(&bin.join("spire-server"), args, &server_socket);
        wait_until("server", &server_log, || admin(&["healthcheck"])).await?;

        let agent_id = format!("{}/agent", spiffe::trust_domain_id());
        let bundle =
            admin(&["bundle", "show"]).map_err(|reason| failed("server", reason, &server_log))?;
        let token = admin(&["token", "generate", "-spiffeID", &agent_id])
            .map_err(|reason| failed("server", reason, &server_log))?;
        let token = token
            .split_whitespace()
            .last()
            .ok_or_else(|| failed("server", "no join token in its answer".into(), &server_log))?
            .to_owned();
        let uid = user_id();
        admin(&[
            "entry",
            "create",
            "-parentID",
            &agent_id,
            "-spiffeID",
            &spiffe::workload_id(),
            "-selector",
            &format!("unix:uid:{uid}"),
        ])
        .map_err(|reason| failed("server", reason, &server_log))?;

        let agent_dir = tempfile::Builder::new()
            .prefix("agent-")
            .tempdir_in(&root)
            .map_err(io("create a directory in", &root))?;
        let agent_root = agent_dir.path().to_owned();
        let bootstrap = agent_root.join("bootstrap.pem");
        std::fs::write(&bootstrap, bundle).map_err(io("write", &bootstrap))?;
        let agent_config = agent_root.join("agent.conf");
        let socket = agent_root.join("agent.sock");
        std::fs::write(
            &agent_config,
            agent_conf(&agent_root, server_port, &bootstrap, &socket),
        )
        .map_err(io("write", &agent_config))?;
        let agent_log = agent_root.join("agent.log");
        let agent = spawn(
            "spire-agent-watchdog",
            &bin.join("spire-agent"),
            &["run", "-joinToken", &token, "-config"],
            &agent_config,
            &agent_log,
        )?;
        let agent = Owned::new(agent, agent_dir, Duration::from_secs(5));
        let fetch = || {
            run(
                &bin.join("spire-agent"),
                &["api", "fetch", "jwt", "-audience", "readiness"],
                &socket,
            )
        };
        wait_until("agent", &agent_log, fetch).await?;
        let bundle_endpoint =
            Url::parse(&format!("https://localhost:{bundle_port}/")).expect("a local URL");
        tracing::debug!(%bundle_endpoint, "SPIRE server and agent ready");
        Ok(Self {
            agent,
            server,
            bin,
            bundle_endpoint,
        })
    }

    /// The SPIFFE bundle endpoint (HTTPS, the local CA's certificate): Keycloak's trust.
    pub fn bundle_endpoint(&self) -> &Url {
        &self.bundle_endpoint
    }

    /// The agent's program, which the workload runs to ask for its JWT-SVID.
    pub fn agent_program(&self) -> PathBuf {
        self.bin.join("spire-agent")
    }

    /// The agent's Workload API socket.
    pub fn workload_socket(&self) -> PathBuf {
        self.agent.dir().join("agent.sock")
    }

    /// Stops the agent, then the server; their files go with them.
    pub fn stop(self) {
        self.agent.terminate();
        self.server.terminate();
    }
}

/// The server's configuration: in-memory keys, SQLite in its directory, join-token node
/// attestation, JWT-SVIDs for 5 minutes, and the bundle endpoint on `bundle_port`.
fn server_conf(root: &Path, port: u16, bundle_port: u16, cert: &Path, key: &Path) -> String {
    let root = root.display();
    format!(
        r#"server {{
  bind_address = "127.0.0.1"
  bind_port = "{port}"
  socket_path = "{root}/server.sock"
  trust_domain = "{domain}"
  data_dir = "{root}/server-data"
  log_level = "WARN"
  ca_key_type = "ec-p256"
  jwt_key_type = "ec-p256"
  default_jwt_svid_ttl = "5m"
  federation {{
    bundle_endpoint {{
      address = "127.0.0.1"
      port = {bundle_port}
      profile "https_web" {{
        serving_cert_file {{
          cert_file_path = "{cert}"
          key_file_path = "{key}"
          file_sync_interval = "1h"
        }}
      }}
    }}
  }}
}}

plugins {{
  DataStore "sql" {{
    plugin_data {{
      database_type = "sqlite3"
      connection_string = "{root}/server-data/datastore.sqlite3"
    }}
  }}
  KeyManager "memory" {{
    plugin_data {{}}
  }}
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}
}}
"#,
        domain = spiffe::TRUST_DOMAIN,
        cert = cert.display(),
        key = key.display(),
    )
}

/// The agent's configuration: the server's address and bundle, join-token attestation, its
/// Workload API on `socket`, and workloads told apart by their unix uid.
fn agent_conf(root: &Path, server_port: u16, bootstrap: &Path, socket: &Path) -> String {
    format!(
        r#"agent {{
  data_dir = "{root}/data"
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "{server_port}"
  socket_path = "{socket}"
  trust_bundle_path = "{bootstrap}"
  trust_domain = "{domain}"
}}

plugins {{
  KeyManager "memory" {{
    plugin_data {{}}
  }}
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}
  WorkloadAttestor "unix" {{
    plugin_data {{}}
  }}
}}
"#,
        root = root.display(),
        socket = socket.display(),
        bootstrap = bootstrap.display(),
        domain = spiffe::TRUST_DOMAIN,
    )
}

fn spawn(
    name: &str,
    program: &Path,
    args: &[&str],
    config: &Path,
    log: &Path,
) -> Result<std::process::Child, SpireError> {
    let log_file = std::fs::File::create(log).map_err(io("create", log))?;
    playbook_process::watched(name, program)
        .args(args)
        .arg(config)
        .stdout(log_file.try_clone().map_err(io("open", log))?)
        .stderr(log_file)
        .spawn()
        .map_err(io("run", program))
}

/// One `spire-server` or `spire-agent` command against `socket`: its output, or why it failed.
fn run(program: &Path, args: &[&str], socket: &Path) -> Result<String, String> {
    let output = std::process::Command::new(program)
        .args(args)
        .arg("-socketPath")
        .arg(socket)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

/// Polls `ready` until it succeeds, at most [`READY_WITHIN`].
async fn wait_until(
    part: &'static str,
    log: &Path,
    ready: impl Fn() -> Result<String, String>,
) -> Result<(), SpireError> {
    let started = std::time::Instant::now();
    loop {
        match ready() {
            Ok(_) => return Ok(()),
            Err(reason) if started.elapsed() > READY_WITHIN => {
                return Err(failed(part, reason, log));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn failed(part: &'static str, reason: String, log: &Path) -> SpireError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    SpireError::Failed {
        part,
        reason,
        tail: lines[lines.len().saturating_sub(15)..].join("\n"),
    }
}

/// This process's user id: the selector the workload is registered under.
fn user_id() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}
