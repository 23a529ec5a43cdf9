//! The reverse proxy of the proxy topology: Debian's HAProxy, run by the playbook like Keycloak
//! (started, waited for, stopped with everything it started), from a configuration written here.
//!
//! In production a client's TLS connection rarely ends at Keycloak or at the API: a proxy ends it,
//! checks the client certificate, and tells the upstream which certificate it checked in an HTTP
//! header. That header is the whole attack surface (CVE-2024-10039: anyone who could reach
//! Keycloak could send it themselves), so the configuration below makes the three trust
//! decisions explicit:
//! 1. the proxy strips whatever the client sent under the header's name, and sets it only from a
//!    certificate it verified against the local CA ([`FORWARDED_CERT_HEADER`], RFC 9440);
//! 2. the proxy connects upstream from its own address ([`UPSTREAM_SOURCE`]) and, to the API,
//!    with its own client certificate, so an upstream can tell the proxy from anyone else;
//! 3. each upstream reads the header only from the proxy (Keycloak's `proxy-trusted-addresses`,
//!    the resource server's `--client-cert-header` with `--trusted-proxy-cert`).
//!
//! HAProxy rather than nginx: it emits RFC 9440's `:base64(DER):` itself (`ssl_c_der,base64`),
//! which Keycloak's `rfc9440` lookup and the resource server read as is, where nginx only has a
//! URL-encoded PEM of its own format. One proxy process per upstream keeps each start and stop
//! with the part it fronts.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use playbook_certs::CertSet;
use url::Url;

use playbook_process as process;

/// Why the proxy could not start, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "the proxy topology needs HAProxy, which is not installed: install Debian's `haproxy` \
         package (apt-get install haproxy), or use --topology direct"
    )]
    Missing,

    #[error("the reverse proxy did not start: {reason}{}\n--- last lines of its log ---\n{tail}",
        config.as_ref().map(|c| format!(" (configuration: {})", c.display())).unwrap_or_default())]
    Failed {
        reason: String,
        config: Option<PathBuf>,
        tail: String,
    },

    #[error(
        "port {port}, the proxy's, is already in use; stop what holds it (`ss -ltnp 'sport = :{port}'`) or pick another port (0: a free one)"
    )]
    PortTaken { port: u16 },

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ProxyError {
    let path = path.into();
    move |source| ProxyError::Io {
        action,
        path,
        source,
    }
}

/// The last lines of the proxy's log, for failure messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The program started, found on `PATH` (Debian's `haproxy` package).
pub const PROGRAM: &str = "haproxy";
/// RFC 9440: the client certificate the proxy verified, as `:base64(DER):`.
pub const FORWARDED_CERT_HEADER: &str = "Client-Cert";
/// RFC 9440: the rest of the client's chain. Never set here (the CA signs client certificates
/// directly), always stripped, so a client cannot add links to the chain either.
pub const FORWARDED_CHAIN_HEADER: &str = "Client-Cert-Chain";
/// The attack lab's way to reach one replica through the load balancer (`1`, `2`): the cluster
/// scenarios revoke on one Keycloak node and ask another.
pub const PIN_HEADER: &str = "X-Playbook-Node";
/// The headers the proxy never passes on from a client: it sets them itself or not at all.
pub const STRIPPED_HEADERS: [&str; 7] = [
    FORWARDED_CERT_HEADER,
    FORWARDED_CHAIN_HEADER,
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
];
/// The address the proxy connects to its upstreams from. On one machine every party connects
/// from 127.0.0.1; a loopback address of its own is what lets Keycloak trust the proxy's headers
/// (`proxy-trusted-addresses`) and nobody else's.
pub const UPSTREAM_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// How long the proxy gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where TLS from the client ends: at the part itself, or at a reverse proxy in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// Today's flow: the client's TLS connection ends at Keycloak and at the API.
    #[default]
    Direct,
    /// A reverse proxy ends it and forwards the verified client certificate in a header.
    Proxy,
    /// Production's shape: the proxy as a load balancer in front of two Keycloak nodes sharing
    /// PostgreSQL, and of two resource-server replicas.
    Cluster,
}

impl Topology {
    pub const ALL: [Self; 3] = [Self::Direct, Self::Proxy, Self::Cluster];

    /// The one name of each topology: what the flag takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Proxy => "proxy",
            Self::Cluster => "cluster",
        }
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for Topology {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// One part behind the proxy.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `keycloak` or `api`: the name of the frontend and backend in the configuration.
    pub name: &'static str,
    /// The port clients connect to (the proxy's).
    pub listen: u16,
    /// The part's HTTPS port on 127.0.0.1: one, or one per replica (the cluster topology, where
    /// the proxy is the load balancer).
    pub ports: Vec<u16>,
    /// Whether the proxy presents its own certificate upstream (the resource server trusts the
    /// forwarded header by it; Keycloak trusts it by address and needs none).
    pub present_certificate: bool,
    /// How the load balancer tells a replica that is down: none for a single server.
    pub health: Option<Health>,
}

/// How replicas are checked: `GET path` on each replica's own health port (Keycloak's
/// management port, the API's own port); a replica failing two checks a second apart is taken
/// out of rotation, and back after one success.
#[derive(Debug, Clone)]
pub struct Health {
    pub path: &'static str,
    /// Each replica's health port, in the order of [`Upstream::ports`].
    pub ports: Vec<u16>,
}

/// The files the configuration names.
#[derive(Debug, Clone)]
pub struct ProxyFiles {
    /// The proxy's certificate and key in one PEM (HAProxy's `crt`), 0600, in the certificate
    /// directory (`CertSet::proxy`).
    pub identity: PathBuf,
    /// The local CA: the only anchor for client certificates and for the upstream's certificate.
    pub ca: PathBuf,
    /// The load balancer's statistics socket (0600), where it says which replicas it sends
    /// requests to; only with several replicas.
    pub stats: PathBuf,
}

/// The HAProxy configuration for `upstream`, commented for the learner who opens it
/// (docs/proxy.md walks through it).
pub fn render(upstream: &Upstream, files: &ProxyFiles) -> String {
    let Upstream {
        name,
        listen,
        present_certificate,
        ..
    } = upstream;
    let (identity, ca) = (files.identity.display(), files.ca.display());
    let stats = match upstream.health {
        Some(_) => format!(
            "    stats socket {} mode 600 level admin\n",
            files.stats.display()
        ),
        None => String::new(),
    };
    let stripped: String = STRIPPED_HEADERS
        .iter()
        .map(|header| format!("    http-request del-header {header}\n"))
        .collect();
    let own_certificate = if *present_certificate {
        format!(" crt {identity}")
    } else {
        String::new()
    };
    let (balancing, servers) = servers(upstream, &ca.to_string(), &own_certificate);
    format!(
        "# Written by oauth2-playbook for one run (the proxy topology); removed when the proxy stops.
global
    log stderr format raw local0 info
{stats}    maxconn 512
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-server-options ssl-min-ver TLSv1.2

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s

frontend {name}
    # TLS ends here. A client certificate is asked for, not required (JWKS fetches, admin calls
    # and bearer tokens come without one); one that is presented must chain to the local CA.
    bind 127.0.0.1:{listen} ssl crt {identity} ca-file {ca} verify optional alpn h2,http/1.1
    # Trust decision 1: nothing a client sends under these names reaches the upstream.
{stripped}    # RFC 9440: the certificate this proxy verified, and only that one.
    http-request set-header {FORWARDED_CERT_HEADER} :%[ssl_c_der,base64]: if {{ ssl_c_used }} {{ ssl_c_verify 0 }}
    http-request set-header X-Forwarded-For %[src]
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend {name}

backend {name}
    # Trust decision 2: the upstream knows the proxy by its source address and, where it asks,
    # by the proxy's own client certificate. The upstream's certificate must chain to the CA.
{balancing}{servers}"
    )
}

/// The backend's servers, and with several of them how the load balancer spreads requests,
/// retries a refused connection on another replica, checks each one and lets the attack lab
/// pin one (`X-Playbook-Node: N`).
fn servers(upstream: &Upstream, ca: &str, own_certificate: &str) -> (String, String) {
    let name = upstream.name;
    let tls = format!(
        "source {UPSTREAM_SOURCE} ssl verify required ca-file {ca} verifyhost localhost sni str(localhost) alpn http/1.1{own_certificate}"
    );
    let Some(health) = &upstream.health else {
        let port = upstream.ports.first().copied().unwrap_or_default();
        return (
            String::new(),
            format!("    server {name} 127.0.0.1:{port} {tls}\n"),
        );
    };
    let balancing = format!(
        "    balance roundrobin
    option redispatch
    retries 2
    option httpchk GET {path}
    http-check expect status 200
    default-server inter 1s fall 2 rise 1
",
        path = health.path
    );
    let mut servers = String::new();
    for (i, (port, check)) in upstream.ports.iter().zip(&health.ports).enumerate() {
        let n = i + 1;
        // A pinned request to a replica that is down fails loudly instead of going elsewhere.
        servers.push_str(&format!(
            "    http-request return status 503 content-type text/plain string \"{name}{n} is down\" if {{ req.hdr({PIN_HEADER}) -m str {n} }} !{{ srv_is_up({name}/{name}{n}) }}\n"
        ));
        servers.push_str(&format!(
            "    use-server {name}{n} if {{ req.hdr({PIN_HEADER}) -m str {n} }}\n"
        ));
        servers.push_str(&format!(
            "    server {name}{n} 127.0.0.1:{port} {tls} check check-ssl check-sni localhost port {check}\n"
        ));
    }
    (balancing, servers)
}

/// A running HAProxy in front of one part; dropping it stops the proxy and removes its files.
pub struct ReverseProxy {
    /// The backend's name in the configuration and in the statistics.
    name: &'static str,
    /// HAProxy, and its directory: the configuration, the log and the statistics socket, nothing
    /// secret (the proxy's key stays in the certificate directory).
    process: process::Owned,
    url: Url,
}

/// Every proxy's directory starts so, then the starter's pid (for `remove_stale_dirs`).
const DIR_PREFIX: &str = "oauth2-playbook-proxy-";

impl ReverseProxy {
    /// Writes the configuration into a directory of its own, starts HAProxy, and returns once
    /// it accepts connections on `upstream.listen` (0: a free port).
    pub async fn start(mut upstream: Upstream, certs: &CertSet) -> Result<Self, ProxyError> {
        let program = which(PROGRAM).ok_or(ProxyError::Missing)?;
        process::remove_stale_dirs(DIR_PREFIX);
        if upstream.listen == 0 {
            upstream.listen =
                process::free_port().map_err(io("find a free port on", "127.0.0.1"))?;
        }
        // Said now: HAProxy would exit with a bind error, and a connect could reach the other.
        if std::net::TcpListener::bind(("127.0.0.1", upstream.listen)).is_err() {
            return Err(ProxyError::PortTaken {
                port: upstream.listen,
            });
        }
        // Made (or checked) now, so the file the configuration names holds a valid identity.
        certs.proxy().map_err(|e| ProxyError::Failed {
            reason: format!("the proxy's certificate: {e}"),
            config: None,
            tail: String::new(),
        })?;
        let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
        let dir = tempfile::Builder::new()
            .prefix(&format!(
                "{DIR_PREFIX}{}-{}-",
                std::process::id(),
                upstream.name
            ))
            .tempdir()
            .map_err(io("create a directory in", std::env::temp_dir()))?;
        let files = ProxyFiles {
            identity: absolute(certs.files.proxy_identity()),
            ca: absolute(certs.files.ca_cert()),
            stats: dir.path().join("stats.sock"),
        };
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, render(&upstream, &files)).map_err(io("write", &config))?;
        let log = dir.path().join("haproxy.log");
        let child = spawn(&program, &config, &log)?;
        let proxy = Self {
            name: upstream.name,
            process: process::Owned::new(child, dir, Duration::from_secs(5)),
            url: playbook_https::local_url(upstream.listen),
        };
        if let Err(reason) = proxy.wait_listening(upstream.listen).await {
            // The proxy's directory goes with it: keep what the user needs to see why.
            let kept =
                std::env::temp_dir().join(format!("{DIR_PREFIX}failed-{}.cfg", upstream.name));
            let _ = std::fs::copy(&config, &kept);
            return Err(ProxyError::Failed {
                reason,
                config: Some(kept),
                tail: tail(&log, 15),
            });
        }
        tracing::debug!(url = %proxy.url, config = %config.display(), "reverse proxy listening");
        Ok(proxy)
    }

    /// The proxy's address: what clients use instead of the part's own.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The generated configuration, there while the proxy runs.
    pub fn config_path(&self) -> PathBuf {
        self.process.dir().join("haproxy.cfg")
    }

    /// Whether the load balancer sends requests to each replica now (its health checks'
    /// verdict), in the order of [`Upstream::ports`]; empty for a single server. Asked on its
    /// statistics socket (`show stat`), where HAProxy reports each server `UP` or `DOWN`.
    pub fn replicas_up(&self) -> Vec<bool> {
        use std::io::{Read, Write};
        let socket = self.process.dir().join("stats.sock");
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&socket) else {
            return Vec::new();
        };
        // The lab asks between requests: a stuck socket must not stall the run.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut csv = String::new();
        if stream.write_all(b"show stat\n").is_err() || stream.read_to_string(&mut csv).is_err() {
            return Vec::new();
        }
        replicas_up(&csv, self.name)
    }

    /// Waits until HAProxy accepts connections on `port` and is still running a moment later
    /// (a connection to another program that took the port meanwhile would not keep it alive).
    async fn wait_listening(&self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let exited = || self.process.exited();
        loop {
            if let Some(status) = exited() {
                return Err(format!("{PROGRAM} exited ({status})"));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return match exited() {
                    Some(status) => Err(format!("{PROGRAM} exited ({status})")),
                    None => Ok(()),
                };
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{PROGRAM} is not listening on port {port} after {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the proxy's whole process group, waits for it to be gone, and removes its files.
    /// Idempotent.
    pub fn terminate(&self) {
        self.process.terminate();
    }
}

/// Each replica's state in HAProxy's `show stat` CSV, for the backend `name`, in server order
/// (`name1`, `name2`, …): `UP` (also `UP 1/2`, going down but still used) or not.
fn replicas_up(csv: &str, name: &str) -> Vec<bool> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let column = |wanted: &str| header.iter().position(|c| *c == wanted);
    let (Some(proxy), Some(server), Some(status)) =
        (column("pxname"), column("svname"), column("status"))
    else {
        return Vec::new();
    };
    let mut replicas: Vec<(u32, bool)> = lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let n = fields
                .get(server)?
                .strip_prefix(name)?
                .parse::<u32>()
                .ok()?;
            (*fields.get(proxy)? == name)
                .then(|| (n, fields.get(status).is_some_and(|s| s.starts_with("UP"))))
        })
        .collect();
    replicas.sort();
    replicas.into_iter().map(|(_, up)| up).collect()
}

fn spawn(program: &Path, config: &Path, log: &Path) -> Result<std::process::Child, ProxyError> {
    let log_file = std::fs::File::create(log).map_err(io("create", log))?;
    process::watched("proxy-watchdog", program)
        // -db: stay in the foreground, one process, so the watchdog's group holds all of it.
        .args(["-db", "-f"])
        .arg(config)
        .stdout(log_file.try_clone().map_err(io("open", log))?)
        .stderr(log_file)
        .spawn()
        .map_err(io("run", program))
}

/// `program` on `PATH` (Debian puts HAProxy in /usr/sbin, which a user's `PATH` may lack).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(present_certificate: bool) -> String {
        let upstream = Upstream {
            name: "api",
            listen: 8443,
            ports: vec![20001],
            present_certificate,
            health: None,
        };
        let files = ProxyFiles {
            identity: "/certs/proxy-identity.pem".into(),
            ca: "/certs/ca.pem".into(),
            stats: "/run/p/stats.sock".into(),
        };
        render(&upstream, &files)
    }

    #[test]
    fn every_forwarding_header_a_client_sends_is_stripped_before_the_proxy_sets_its_own() {
        let config = rendered(true);
        let set = config
            .find("http-request set-header Client-Cert")
            .expect("the header is set");
        for header in STRIPPED_HEADERS {
            let stripped = config
                .find(&format!("http-request del-header {header}\n"))
                .unwrap_or_else(|| panic!("{header} is not stripped"));
            assert!(stripped < set, "{header} is stripped after it is set");
        }
        assert!(config.contains(":%[ssl_c_der,base64]: if { ssl_c_used } { ssl_c_verify 0 }"));
    }

    #[test]
    fn a_load_balancer_checks_each_replica_retries_elsewhere_and_fails_a_pin_to_a_dead_one() {
        let upstream = Upstream {
            name: "keycloak",
            listen: 9443,
            ports: vec![20001, 20002],
            present_certificate: false,
            health: Some(Health {
                path: "/health/ready",
                ports: vec![30001, 30002],
            }),
        };
        let files = ProxyFiles {
            identity: "/certs/proxy-identity.pem".into(),
            ca: "/certs/ca.pem".into(),
            stats: "/run/p/stats.sock".into(),
        };
        let config = render(&upstream, &files);
        for line in [
            "    stats socket /run/p/stats.sock mode 600 level admin\n",
            "    option redispatch\n",
            "    option httpchk GET /health/ready\n",
            "    default-server inter 1s fall 2 rise 1\n",
            "!{ srv_is_up(keycloak/keycloak2) }\n",
            "    use-server keycloak1 if { req.hdr(X-Playbook-Node) -m str 1 }\n",
            "    server keycloak2 127.0.0.1:20002 source 127.0.0.2 ssl verify required ca-file /certs/ca.pem verifyhost localhost sni str(localhost) alpn http/1.1 check check-ssl check-sni localhost port 30002\n",
        ] {
            assert!(config.contains(line), "{line:?} missing from:\n{config}");
        }
        assert!(
            !rendered(false).contains("stats socket"),
            "one server needs no statistics"
        );
    }

    #[test]
    fn the_statistics_say_which_replicas_are_up_in_server_order() {
        let csv = "# pxname,svname,qcur,status,weight\n\
                   keycloak,FRONTEND,,OPEN,\n\
                   keycloak,keycloak2,0,DOWN,1\n\
                   keycloak,keycloak1,0,UP 1/2,1\n\
                   api,api1,0,DOWN,1\n\
                   keycloak,BACKEND,0,UP,2\n";
        assert_eq!(replicas_up(csv, "keycloak"), [true, false]);
        assert_eq!(replicas_up(csv, "api"), [false]);
        assert!(replicas_up("garbage", "keycloak").is_empty());
    }

    #[test]
    fn the_proxy_verifies_both_sides_against_the_local_ca_only() {
        let config = rendered(false);
        assert!(config.contains("bind 127.0.0.1:8443 ssl crt /certs/proxy-identity.pem ca-file /certs/ca.pem verify optional"));
        assert!(config.contains(
            "server api 127.0.0.1:20001 source 127.0.0.2 ssl verify required ca-file /certs/ca.pem"
        ));
        assert!(!config.contains("verify none"));
        assert!(!config.contains("server api 127.0.0.1:20001 source 127.0.0.2 ssl verify required ca-file /certs/ca.pem verifyhost localhost sni str(localhost) alpn http/1.1 crt"));
        assert!(rendered(true).contains("alpn http/1.1 crt /certs/proxy-identity.pem\n"));
    }
}

/// docs/proxy.md shows the configuration line by line; this holds it to what [`render`] writes.
#[cfg(test)]
mod docs {
    use super::*;

    const DOC: &str = include_str!("../../../docs/proxy.md");

    /// The configuration block of the page: the text between its marker and the closing fence.
    fn shown() -> &'static str {
        let start = DOC
            .find("<!-- generated: haproxy.cfg -->\n```text\n")
            .expect("docs/proxy.md marks the generated configuration");
        let block = &DOC[start..];
        let body = &block[block.find("```text\n").expect("its fence") + 8..];
        &body[..body.find("```").expect("a closing fence")]
    }

    #[test]
    fn the_page_shows_the_configuration_the_api_proxy_is_started_with() {
        let upstream = Upstream {
            name: "api",
            listen: 8443,
            ports: vec![20001],
            present_certificate: true,
            health: None,
        };
        let files = ProxyFiles {
            identity: "/home/you/oauth2-playbook/certs/proxy-identity.pem".into(),
            ca: "/home/you/oauth2-playbook/certs/ca.pem".into(),
            stats: "/tmp/oauth2-playbook-proxy-4242-api-k2Xq9p/stats.sock".into(),
        };
        let rendered = render(&upstream, &files);
        assert_eq!(
            shown(),
            rendered,
            "docs/proxy.md shows:\n{}\nrender writes:\n{rendered}",
            shown()
        );
    }
}
