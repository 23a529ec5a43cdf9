//! Keycloak's configuration, written once for every backend that starts Keycloak.
//!
//! Keycloak reads each option either as a `kc.sh` flag (`--https-port=8443`) or as an
//! environment variable (`KC_HTTPS_PORT=8443`). The native backend passes flags, the container
//! backend environment variables; both render the lists below, so they cannot drift apart.

use playbook_keycloak::AdminCredentials;

/// One Keycloak option, e.g. `https-client-auth` = `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KcOption {
    name: &'static str,
    value: String,
}

impl KcOption {
    pub(crate) fn new(name: &'static str, value: impl Into<String>) -> Self {
        Self {
            name,
            value: value.into(),
        }
    }

    /// The `kc.sh` form: `--https-client-auth=request`.
    pub(crate) fn flag(&self) -> String {
        format!("--{}={}", self.name, self.value)
    }

    /// The environment form: `KC_HTTPS_CLIENT_AUTH=request`.
    pub(crate) fn env(&self) -> (String, String) {
        let name = format!("KC_{}", self.name.to_ascii_uppercase().replace('-', "_"));
        (name, self.value.clone())
    }
}

/// Where Keycloak keeps its data.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Database {
    /// H2 in a file: the native backend gives each instance a copy of a bootstrapped database.
    DevFile,
    /// H2 in memory: a container is thrown away with its data anyway (baked into its image).
    DevMem,
    /// PostgreSQL: the cluster topology's nodes share it.
    Postgres,
}

/// Build-time options: changing one needs a new `kc.sh build`. The native backend bakes them
/// into its cached build, `oauth2-provider/Dockerfile` into the container image.
pub(crate) fn build_options(database: Database) -> Vec<KcOption> {
    let db = match database {
        Database::DevFile => "dev-file",
        Database::DevMem => "dev-mem",
        Database::Postgres => "postgres",
    };
    vec![
        KcOption::new("health-enabled", "true"),
        // Ask for a client certificate without requiring one: the mTLS client presents it,
        // browsers and the admin CLI do not.
        KcOption::new("https-client-auth", "request"),
        KcOption::new("db", db),
        // SPIFFE identity providers (federated client authentication with a JWT-SVID) are a
        // preview feature in Keycloak 26.7; the workload-identity lesson needs them.
        KcOption::new("features", "spiffe"),
    ]
}

/// Behind the reverse proxy Keycloak reads the client certificate from the proxy's RFC 9440
/// header instead of its own TLS connection. Which lookup runs is a build-time choice, so the
/// proxy topology has a build of its own; the direct build stays as it was.
pub(crate) fn proxy_build_options(topology: crate::Topology) -> Option<KcOption> {
    (topology != crate::Topology::Direct)
        .then(|| KcOption::new("spi-x509cert-lookup--provider", "rfc9440"))
}

/// Runtime options behind the proxy: forwarded headers read, but only from the proxy's own
/// address (CVE-2024-10039: without that, anyone reaching Keycloak could claim a certificate).
pub(crate) fn proxy_options() -> Vec<KcOption> {
    use crate::proxy::{FORWARDED_CERT_HEADER, FORWARDED_CHAIN_HEADER, UPSTREAM_SOURCE};
    vec![
        KcOption::new("proxy-headers", "xforwarded"),
        KcOption::new("proxy-trusted-addresses", UPSTREAM_SOURCE.to_string()),
        KcOption::new(
            "spi-x509cert-lookup--rfc9440--ssl-client-cert",
            FORWARDED_CERT_HEADER,
        ),
        KcOption::new(
            "spi-x509cert-lookup--rfc9440--ssl-cert-chain",
            FORWARDED_CHAIN_HEADER,
        ),
        KcOption::new(
            "spi-x509cert-lookup--rfc9440--certificate-chain-length",
            "0",
        ),
    ]
}

/// Runtime options of a cluster node: the shared database (its password goes in the
/// environment), Infinispan clustered, its transport on loopback at a port of its own (two nodes
/// on one machine), the nodes finding each other through the database (`jdbc-ping`).
pub(crate) fn cluster_options(
    database: &crate::postgres::DatabaseAccess,
    cluster_port: u16,
) -> Vec<KcOption> {
    vec![
        KcOption::new("db-url", &database.jdbc_url),
        KcOption::new("db-username", &database.user),
        KcOption::new("cache", "ispn"),
        KcOption::new("cache-stack", "jdbc-ping"),
        KcOption::new("cache-embedded-network-bind-address", "127.0.0.1"),
        KcOption::new("cache-embedded-network-bind-port", cluster_port.to_string()),
    ]
}

/// Paths, as Keycloak will see them, of the files it serves TLS with.
pub(crate) struct TlsFiles {
    pub certificate: String,
    pub key: String,
    /// The CA that client certificates must chain to.
    pub client_ca: String,
}

/// Runtime options every backend shares: HTTPS only, from our certificate, trusting our CA for
/// client certificates (as PEM: no keytool, no JKS), and no cluster.
pub(crate) fn server_options(tls: &TlsFiles, https_port: u16) -> Vec<KcOption> {
    vec![
        KcOption::new("https-port", https_port.to_string()),
        KcOption::new("http-enabled", "false"),
        KcOption::new("https-certificate-file", &tls.certificate),
        KcOption::new("https-certificate-key-file", &tls.key),
        KcOption::new("truststore-paths", &tls.client_ca),
        KcOption::new("cache", "local"),
    ]
}

/// The JVM's garbage collector for every backend (`JAVA_OPTS_APPEND`): the serial collector
/// instead of Keycloak's G1. On a 2-core machine G1's concurrent threads compete with the
/// requests for CPU, and a playbook Keycloak lives minutes, not months. The end-to-end suite took
/// 31 s with it against 36–38 s with G1 (Keycloak's CPU: 38 s against 41–45 s); readiness did
/// not change. kc.sh puts `-XX:+UseG1GC` in its defaults, so G1 is switched off first.
pub(crate) const COLLECTOR: &str = "-XX:-UseG1GC -XX:+UseSerialGC";

/// `JAVA_OPTS_APPEND` of a node that starts, serves a few hundred requests and is gone within a
/// minute (a test run's cluster, see [`crate::ProviderConfig::short_lived`]): C1 only,
/// no C2. Keycloak's start is most of such a node's life, and C2 compiling it was most of its
/// CPU; a Keycloak that serves a whole run is the opposite, its requests much slower without C2
/// (measured: docs/testing.md, "The cluster").
pub(crate) const QUICK_COMPILER: &str = "-XX:TieredStopAtLevel=1";

/// The admin a fresh database is bootstrapped with. Pass these as environment variables
/// ([`KcOption::env`]): flags would show the password in `ps` and in our error messages.
pub(crate) fn bootstrap_admin(admin: &AdminCredentials) -> [KcOption; 2] {
    [
        KcOption::new("bootstrap-admin-username", &admin.username),
        KcOption::new("bootstrap-admin-password", admin.password.expose()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_option_renders_as_flag_and_environment_variable() {
        let option = KcOption::new("https-certificate-key-file", "/x/key.pem");
        assert_eq!(option.flag(), "--https-certificate-key-file=/x/key.pem");
        assert_eq!(
            option.env(),
            ("KC_HTTPS_CERTIFICATE_KEY_FILE".into(), "/x/key.pem".into())
        );
    }
}

/// `oauth2-provider/docker-compose.yaml` is for people who run Compose themselves; it cannot call
/// this module, so these tests hold it to the same options.
#[cfg(test)]
mod compose {
    use super::*;
    use crate::{KEYCLOAK_IMAGE, KEYCLOAK_VERSION};

    const COMPOSE: &str = include_str!("../../../oauth2-provider/docker-compose.yaml");

    /// The value of `KEY:` in the compose file's environment, without quotes.
    fn setting(key: &str) -> Option<&'static str> {
        COMPOSE.lines().find_map(|line| {
            let value = line.trim().strip_prefix(key)?.strip_prefix(':')?;
            Some(value.trim().trim_matches('"'))
        })
    }

    #[test]
    fn compose_runs_the_pinned_image() {
        let image = format!("image: {KEYCLOAK_IMAGE}:{KEYCLOAK_VERSION}");
        assert!(
            COMPOSE.lines().any(|l| l.trim() == image),
            "expected `{image}`"
        );
    }

    #[test]
    fn compose_sets_every_runtime_option_the_backends_set() {
        let tls = TlsFiles {
            certificate: "/opt/keycloak/conf/playbook/keycloak.pem".into(),
            key: "/opt/keycloak/conf/playbook/keycloak-key.pem".into(),
            client_ca: "/opt/keycloak/conf/playbook/ca.pem".into(),
        };
        for (name, value) in server_options(&tls, 9443).iter().map(KcOption::env) {
            assert_eq!(
                setting(&name),
                Some(value.as_str()),
                "{name} in docker-compose.yaml"
            );
        }
    }

    /// Build options live in the image (oauth2-provider/Dockerfile); repeating them here could
    /// only let the two disagree.
    #[test]
    fn compose_leaves_build_options_to_the_image() {
        for (name, _) in build_options(Database::DevMem).iter().map(KcOption::env) {
            assert_eq!(setting(&name), None, "{name} in docker-compose.yaml");
        }
        assert!(COMPOSE.contains("- --optimized"));
    }
}

/// The hostname Keycloak advertises (`--hostname`), so tokens carry the issuer every party
/// here uses, whichever backend issued them.
pub(crate) fn hostname(https_port: u16) -> String {
    playbook_https::local_url(https_port)
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}
