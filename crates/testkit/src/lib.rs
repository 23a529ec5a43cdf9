//! Test support for the end-to-end tests: one real Keycloak per test run, a fresh realm per test.
//!
//! Keycloak starts on first use and serves every test of the binary; every Keycloak-backed test
//! of the workspace lives in one binary (`crates/cli/tests/e2e`), so a whole `cargo test` pays
//! for one start. Each test imports the bundled realm under its own name, so tests do not see
//! each other's role assignments. When no backend can start (no Java, no Docker, no
//! distribution), every test fails with that reason: nothing is skipped.
//!
//! With `PLAYBOOK_KEYCLOAK_REUSE=1` the Keycloak outlives the run and the next run attaches to it
//! (`playbook provider --stop` stops it): the developer loop then pays for no start at all.
//!
//! [`browser`] drives a real headless Chromium for the instructor's stage; [`extras`] lets a
//! test that needs such an optional program skip with one line where it is missing.
//! [`cpu`] counts CPU time the way the benchmark examples of the CLI do.
//!
//! ```no_run
//! #[test]
//! fn flow() {
//!     playbook_testkit::run(async {
//!         let realm = playbook_testkit::TestRealm::new().await;
//!         assert!(realm.issuer().as_str().contains(&realm.name));
//!     })
//! }
//! ```

pub mod browser;
pub mod cpu;
pub mod docs;
pub mod extras;
mod training;

use std::future::Future;
use std::sync::{Arc, LazyLock, OnceLock};

use playbook_certs::CertSet;
use playbook_client::{TokenClient, TokenClientConfig};
use playbook_keycloak::{Admin, Assignment, Provisioner, Revocation, Role, ServiceAccount};
use playbook_keycloak::{CLIENT_ID, MASTER_REALM, READONLY_ROLE, RealmKey, RealmOrigin, RealmUrl};
use playbook_keycloak::{SPARES_REALM, is_bundled_spare, is_spare};
use playbook_provider::{Keycloak, Progress, ProviderConfig};
use playbook_resource_server::{RunningServer, ServerConfig};
use url::Url;

/// One runtime for all tests, so that the shared Keycloak's clients outlive any single test.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

/// Opts in to a Keycloak kept across runs.
pub const REUSE_VARIABLE: &str = "PLAYBOOK_KEYCLOAK_REUSE";

fn reuse() -> bool {
    std::env::var(REUSE_VARIABLE).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The runs' certificates, made once in the cache and kept (regenerated when they expire): under
/// reuse the ones the kept Keycloak serves; else the ones a Keycloak snapshot is tied to, so
/// that the next run restores the shared Keycloak instead of starting it (see docs/testing.md).
static CERTS: LazyLock<CertSet> = LazyLock::new(|| {
    let config = provider_config();
    let dir = if reuse() {
        playbook_provider::reuse_dir(&config).join("certs")
    } else {
        config.resolved_cache_dir().join("test-certs")
    };
    // A set that expired (or soon will) is the tests' own: remade, not a reason to fail.
    let (set, _) = CertSet::ensure(&dir, false)
        .or_else(|_| CertSet::ensure(&dir, true))
        .expect("test certificates");
    set
});

static KEYCLOAK: tokio::sync::OnceCell<Result<Keycloak, String>> =
    tokio::sync::OnceCell::const_new();
static STOP_AT_EXIT: OnceLock<()> = OnceLock::new();

/// The provider's configuration from the environment alone; a bad variable fails the test.
fn provider_config() -> ProviderConfig {
    ProviderConfig::from_env().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a test body on the shared runtime.
pub fn run<F: Future>(test: F) -> F::Output {
    RUNTIME.block_on(test)
}

/// The certificates of this test run (a CA of the tests' own, kept in the cache).
pub fn certs() -> &'static CertSet {
    &CERTS
}

/// Copies the run's certificate files into `dir` (created), keys staying 0600: a certificates
/// directory of its own for a test that writes beside them (the saved admin password), still
/// trusted by the run's Keycloak.
pub fn copy_certs(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("a certificates directory");
    for entry in std::fs::read_dir(certs().files.dir()).expect("the run's certificates") {
        let entry = entry.expect("a certificates entry");
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("a copy");
        }
    }
}

/// The shared Keycloak, started on first use. Panics with the reason when none can start.
pub async fn keycloak() -> &'static Keycloak {
    let started = KEYCLOAK
        .get_or_init(|| async {
            let mut args = provider_config();
            if std::env::var_os(playbook_provider::env::PORT).is_none() {
                args.https_port = 0;
            }
            snapshotted(&mut args, SPARE_REALMS);
            args.snapshot_training = Some(training::lab());
            let started = match reuse() {
                true => kept(&args).await,
                false => {
                    let progress: Arc<dyn Progress> = Arc::new(TestProgress);
                    let started = playbook_provider::start(&args, certs(), progress).await;
                    if started.is_ok() {
                        STOP_AT_EXIT.get_or_init(register_exit_hook);
                    }
                    started.map_err(|e| e.to_string())
                }
            };
            if started.is_ok() {
                start_cluster_early();
            }
            started
        })
        .await;
    match started {
        Ok(keycloak) => keycloak,
        Err(reason) => panic!(
            "no Keycloak for the end-to-end tests: {reason}\n\
             (PLAYBOOK_KEYCLOAK_BACKEND selects native, container or external; see docs/testing.md)"
        ),
    }
}

static KEYCLOAK_BEHIND_PROXY: tokio::sync::OnceCell<Result<Keycloak, String>> =
    tokio::sync::OnceCell::const_new();

/// The run's Keycloak behind the reverse proxy, started on first use for the proxy topology's
/// tests; `None`, after one `skipped:` line, when HAProxy is missing and not required.
///
/// It is the run's second Keycloak, and the only other one: which certificate lookup Keycloak
/// runs (its TLS connection, or the proxy's header) is fixed when Keycloak is built, so one
/// Keycloak cannot serve both topologies. It always runs natively (the proxy must reach it from
/// an address of its own) and is never kept across runs.
pub async fn keycloak_behind_proxy(test: &str) -> Option<&'static Keycloak> {
    if !extras::PROXY.available(test) {
        return None;
    }
    Some(
        started_once(
            &KEYCLOAK_BEHIND_PROXY,
            playbook_provider::Topology::Proxy,
            test,
        )
        .await,
    )
}

/// The run's one Keycloak of `topology`, started natively on first use into `cell`: the
/// topologies other than direct are native-only, and never kept across runs.
async fn started_once(
    cell: &'static tokio::sync::OnceCell<Result<Keycloak, String>>,
    topology: playbook_provider::Topology,
    test: &str,
) -> &'static Keycloak {
    match start_once(cell, topology).await {
        Ok(keycloak) => keycloak,
        Err(reason) => panic!(
            "no Keycloak of the {} topology for {test}: {reason}",
            topology.name()
        ),
    }
}

/// What [`started_once`] waits for: the start, made by whichever caller comes first.
async fn start_once(
    cell: &'static tokio::sync::OnceCell<Result<Keycloak, String>>,
    topology: playbook_provider::Topology,
) -> &'static Result<Keycloak, String> {
    cell.get_or_init(|| async {
        let mut args = ProviderConfig {
            backend: playbook_provider::BackendChoice::Native,
            url: None,
            https_port: 0,
            topology,
            ..provider_config()
        };
        // The proxy's Keycloak is snapshotted with these; the cluster's nodes never are
        // (their PostgreSQL connections would not survive a restore), but their kept
        // database holds the same extras.
        snapshotted(&mut args, PROXY_SPARE_REALMS);
        let progress: Arc<dyn Progress> = Arc::new(TestProgress);
        let started = playbook_provider::start(&args, certs(), progress).await;
        if started.is_ok() {
            STOP_AT_EXIT.get_or_init(register_exit_hook);
        }
        started.map_err(|e| e.to_string())
    })
    .await
}

static KEYCLOAK_IN_CLUSTER: tokio::sync::OnceCell<Result<Keycloak, String>> =
    tokio::sync::OnceCell::const_new();

/// Tests that use the cluster share it; the one that kills a node takes it alone, so that no
/// other test has a request in flight on the node it kills.
static CLUSTER_USE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held while a test uses the run's cluster beside others.
pub fn cluster_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    CLUSTER_USE.read().unwrap_or_else(|e| e.into_inner())
}

/// Held while a test does what others must not see half-done (killing a node).
pub fn cluster_exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    CLUSTER_USE.write().unwrap_or_else(|e| e.into_inner())
}

/// The run's cluster topology (PostgreSQL, two Keycloak nodes, HAProxy balancing them), started
/// on first use for the cluster's tests, or early (see [`start_cluster_early`]); `None`, after one `skipped:` line, when HAProxy or
/// PostgreSQL is missing and not required. Its nodes are built for PostgreSQL, so they cannot be
/// the run's other Keycloaks; never kept across runs, stopped at exit with them.
pub async fn keycloak_in_cluster(test: &str) -> Option<&'static Keycloak> {
    if !extras::PROXY.available(test) || !extras::POSTGRES.available(test) {
        return None;
    }
    Some(
        started_once(
            &KEYCLOAK_IN_CLUSTER,
            playbook_provider::Topology::Cluster,
            test,
        )
        .await,
    )
}

/// Starts the run's cluster now, in the background, when this run has every cluster test to run
/// and HAProxy and PostgreSQL are installed. The cluster is the run's longest chain (two nodes
/// started one after the other, ~18 s each beside the other tests, then its tests one after the
/// other): started by its first test, which the harness runs ~13 s in (it runs tests in name
/// order), it ended the e2e binary. A failure is its tests' to report.
fn start_cluster_early() {
    let installed = [&extras::PROXY, &extras::POSTGRES]
        .iter()
        .all(|extra| extra.paths().is_some());
    if installed && is_e2e_binary() && runs_tests_named("cluster", std::env::args().skip(1)) {
        RUNTIME.spawn(start_once(
            &KEYCLOAK_IN_CLUSTER,
            playbook_provider::Topology::Cluster,
        ));
    }
}

/// Whether this process is the end-to-end test binary (`crates/cli/tests/e2e`, which Cargo
/// builds as `e2e-<hash>`), the only one with cluster tests: the examples that time the flow
/// (`auth_cost`, `token_load`) use the test kit too, and must not have a cluster start beside them.
fn is_e2e_binary() -> bool {
    std::env::current_exe().is_ok_and(|exe| {
        exe.file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("e2e-"))
    })
}

/// Whether a test binary given `args` runs every test whose name holds `name`: no test name to
/// filter by, no `--skip` that could match such a test, and not merely listing the tests. The harness does
/// not tell a test which others will run, so its arguments are read here; the options of
/// libtest that take a value are skipped with their value.
fn runs_tests_named(name: &str, mut args: impl Iterator<Item = String>) -> bool {
    while let Some(arg) = args.next() {
        let skipped = match arg.as_str() {
            "--list" | "--ignored" => return false,
            "--skip" => args.next(),
            "--test-threads" | "--format" | "--logfile" | "--color" | "--shuffle-seed" | "-Z" => {
                args.next();
                None
            }
            other if other.starts_with("--skip=") => Some(other["--skip=".len()..].to_owned()),
            flag if flag.starts_with('-') => None,
            _filter => return false,
        };
        // `--skip X` skips every test whose name holds X: `cluster`, `clus` or `cluster::`.
        if skipped.is_some_and(|skipped| name.contains(&skipped) || skipped.contains(name)) {
            return false;
        }
    }
    true
}

/// The Keycloak an earlier run kept, or a new one kept for the next run. A file lock keeps two
/// runs from starting one each.
async fn kept(args: &ProviderConfig) -> Result<Keycloak, String> {
    let dir = playbook_provider::reuse_dir(args);
    let lock_path = dir.join("lock");
    let lock = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::File::create(&lock_path))
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let started = std::time::Instant::now();
    if let Some(lease) = playbook_provider::Lease::read(&dir)
        && let Some(keycloak) = lease.attach(&certs().ca_pem).await
    {
        let admin = keycloak.admin().map_err(|e| e.to_string())?;
        let realms = admin.realm_names().await.map_err(|e| e.to_string())?;
        let counted = realms.iter().any(|r| r == SPARES_REALM);
        let (spares, stale): (Vec<String>, Vec<String>) = (realms.into_iter())
            .filter(|r| r != MASTER_REALM && r != SPARES_REALM)
            .partition(|r| is_spare(r));
        // A native one starts on the database kept with spares: one an earlier run left with
        // fewer than a whole run claims, or with none counted (made by an older playbook),
        // would have this one import most of its realms (see docs/testing.md, "Keep Keycloak
        // between runs"), where a new one is restored in about a second, or started in a few.
        let left = spares.iter().filter(|r| is_bundled_spare(r)).count();
        let renew = match lease.native() && (!counted || left < RUN_REALMS) {
            true => Some(format!("{left} spare realms left")),
            false => drop_realms(&admin, &stale).await.err(),
        };
        match renew {
            None => {
                eprintln!(
                    "[testkit] reusing the kept Keycloak ({}) at {} (attached, {} old realms dropped, in {} ms)",
                    lease.backend,
                    lease.base_url,
                    stale.len(),
                    started.elapsed().as_millis()
                );
                return Ok(keycloak);
            }
            Some(why) => eprintln!(
                "[testkit] not reusing the kept Keycloak at {} ({why}): a new one",
                lease.base_url
            ),
        }
    }
    let _ = playbook_provider::stop_leased(&dir);
    let progress: Arc<dyn Progress> = Arc::new(TestProgress);
    let keycloak = playbook_provider::start(args, certs(), progress)
        .await
        .map_err(|e| e.to_string())?;
    let lease = keycloak.detach(&dir).map_err(|e| e.to_string())?;
    eprintln!(
        "[testkit] keeping Keycloak at {} for the next run ({REUSE_VARIABLE}=1); \
         `cargo playbook provider --stop` stops it",
        lease.base_url
    );
    drop(lock);
    Ok(lease
        .attach(&certs().ca_pem)
        .await
        .expect("the Keycloak just started answers"))
}

/// Deletes a kept Keycloak's realms of earlier runs, which would pile up in one kept for weeks:
/// all of them are the tests'. One at a time: a hundred deletions at once make Keycloak's H2
/// database fail some of them with "Database operation failed".
async fn drop_realms(admin: &Admin, stale: &[String]) -> Result<(), String> {
    for realm in stale {
        (admin.delete_realm(realm).await)
            .map_err(|e| format!("deleting an earlier run's realm {realm}: {e}"))?;
    }
    Ok(())
}

/// Statics are never dropped, so the shared Keycloak is stopped from `atexit`; the native
/// backend's watchdog covers the exits that skip it (SIGKILL, abort).
fn register_exit_hook() {
    extern "C" fn stop_keycloak() {
        for keycloak in [
            KEYCLOAK.get(),
            KEYCLOAK_BEHIND_PROXY.get(),
            KEYCLOAK_IN_CLUSTER.get(),
        ] {
            if let Some(Ok(keycloak)) = keycloak {
                keycloak.terminate();
            }
        }
    }
    // SAFETY: registering a plain `extern "C" fn` with no captured state.
    unsafe {
        libc::atexit(stop_keycloak);
    }
}

struct TestProgress;

impl Progress for TestProgress {
    fn stage(&self, message: &str) {
        eprintln!("[testkit] {message}");
    }
    fn finished(&self, message: &str) {
        eprintln!("[testkit] {message}");
    }
}

/// Every test realm's name starts so.
const REALM_PREFIX: &str = "test-";

/// Every run has the same configuration (the certificates are kept): its Keycloak's snapshot is
/// worth making on the first run already; and its database is kept with `spares` spare realms,
/// quick admin logins and an admin narrowed to the realms it makes. It lives one run
/// (`short_lived`: compiled for that, see `ProviderConfig::short_lived`).
fn snapshotted(args: &mut ProviderConfig, spares: usize) {
    args.short_lived = true;
    if std::env::var_os(playbook_provider::env::SNAPSHOTS).is_none() {
        args.snapshots = playbook_provider::SnapshotPolicy::Always;
    }
    args.snapshot_extras = playbook_provider::SnapshotExtras {
        spare_realms: spares,
        quick_admin_login: true,
        narrow_admin: true,
    };
}

/// The realms of the bundled one a whole run makes, in this process and in the `playbook`
/// commands it runs (~110 on 2026-12-05), with room to grow.
const RUN_REALMS: usize = 130;
/// The spare realms in the run's Keycloak's kept database (see `playbook_keycloak::RealmOrigin`),
/// a few more than [`RUN_REALMS`]. Beyond them, realms are imported.
const SPARE_REALMS: usize = 150;
/// The same behind the proxy, whose tests make ~10.
const PROXY_SPARE_REALMS: usize = 24;

/// A realm name no other test uses (`test-<what>-<random>`), for tests whose commands import the
/// bundled realm themselves (`PLAYBOOK_REALM`). A kept Keycloak drops the realms of earlier runs
/// at the next run's start.
pub fn unique_realm(what: &str) -> String {
    format!("{REALM_PREFIX}{what}-{:08x}", rand::random::<u32>())
}

/// The signing key of every test realm: one RSA key per run instead of two per realm.
static REALM_KEY: LazyLock<RealmKey> = LazyLock::new(RealmKey::generate);

/// A realm of its own for one test: the bundled realm imported under a unique name. A clone is
/// another handle to the same realm (a test that runs the CLI off the runtime hands it one).
#[derive(Clone)]
pub struct TestRealm {
    pub name: String,
    pub keycloak: &'static Keycloak,
    pub admin: &'static Admin,
    /// A spare renamed (the run's Keycloak was restored from a snapshot made with spares), or
    /// imported.
    pub origin: RealmOrigin,
}

/// One Admin API session for the whole run: each new session logs in with the admin password,
/// which costs Keycloak ~0.1 s of CPU hashing it.
pub async fn admin() -> &'static Admin {
    static ADMIN: tokio::sync::OnceCell<Admin> = tokio::sync::OnceCell::const_new();
    ADMIN
        .get_or_init(|| async { keycloak().await.admin().expect("an Admin API client") })
        .await
}

impl TestRealm {
    pub async fn new() -> Self {
        let keycloak = keycloak().await;
        let admin = admin().await;
        let name = format!("{REALM_PREFIX}{:08x}", rand::random::<u32>());
        let started = std::time::Instant::now();
        let origin = admin
            .create_bundled_realm(&name, || Some(&*REALM_KEY))
            .await
            .unwrap_or_else(|e| panic!("making realm {name}: {e}"));
        eprintln!(
            "[testkit] realm {name} made in {} ms ({origin:?})",
            started.elapsed().as_millis()
        );
        Self {
            name,
            keycloak,
            admin,
            origin,
        }
    }

    pub fn issuer(&self) -> Url {
        self.urls().issuer().clone()
    }

    /// The realm's issuer, token endpoint, JWKS, ... on the shared Keycloak.
    pub fn urls(&self) -> RealmUrl {
        self.keycloak.realm(&self.name)
    }

    pub fn token_endpoint(&self) -> Url {
        self.urls().token()
    }

    /// A resource server trusting this realm, on a free port.
    pub async fn resource_server(&self) -> RunningServer {
        self.resource_server_with(|_| {}).await
    }

    /// A resource server trusting this realm, its configuration adjusted by `adjust`.
    pub async fn resource_server_with(
        &self,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> RunningServer {
        let listen = "127.0.0.1:0".parse().expect("valid address");
        let mut config = ServerConfig::new(self.issuer(), listen, certs());
        adjust(&mut config);
        playbook_resource_server::server::start(config)
            .await
            .expect("the resource server starts")
    }

    /// The mTLS token client of the realm's client, with the run's client certificate.
    pub fn token_client(&self) -> Arc<TokenClient> {
        let config =
            TokenClientConfig::playbook(self.token_endpoint(), &certs().ca_pem, &certs().client);
        Arc::new(TokenClient::new(config).expect("a token client"))
    }

    pub fn provisioner(&self) -> Provisioner<'_> {
        Provisioner::new(self.admin, &self.name)
    }

    /// Step 2 of the flow: the client's service account gets the read-only realm role.
    pub async fn grant_readonly_role(&self) -> Assignment {
        let provisioner = self.provisioner();
        let (account, role) = self.account_and_role().await;
        provisioner
            .assign(&account, &role)
            .await
            .expect("role assignment")
    }

    pub async fn revoke_readonly_role(&self) -> Revocation {
        let provisioner = self.provisioner();
        let (account, role) = self.account_and_role().await;
        provisioner
            .revoke(&account, &role)
            .await
            .expect("role revocation")
    }

    async fn account_and_role(&self) -> (ServiceAccount, Role) {
        self.provisioner()
            .account_and_role(CLIENT_ID, READONLY_ROLE)
            .await
            .expect("the realm's client and role")
    }
}

#[cfg(test)]
mod tests {
    use super::runs_tests_named;

    #[test]
    fn the_cluster_starts_early_only_when_every_cluster_test_runs() {
        let runs =
            |args: &[&str]| runs_tests_named("cluster", args.iter().map(|arg| arg.to_string()));
        assert!(runs(&[]));
        assert!(runs(&["-q", "--test-threads", "2", "--skip", "proxy"]));
        assert!(!runs(&["--skip", "cluster::"]));
        assert!(!runs(&["token::"]), "a name filter");
        assert!(!runs(&["--skip", "cluster"]));
        assert!(!runs(&["--skip=clus"]));
        assert!(!runs(&["--list"]));
        assert!(!runs(&["--format", "json", "lab::"]));
    }
}
