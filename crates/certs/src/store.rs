//! The certificate set on disk: where each file lives, writing it, and reusing it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use p12_keystore::{Certificate as P12Certificate, KeyStore, KeyStoreEntry};
use rcgen::KeyPair;

use crate::check::{check_chain, check_key, check_lifetime};
use crate::{
    Authority, CLIENT_CN, CertsError, Leaf, LeafSpec, PROXY_CN, Problem, RESOURCE_SERVER_CN,
    TRUSTSTORE_PASSWORD,
};

/// The file names inside the certificate directory.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// No CA at all: a directory never set up, rather than a broken set.
    fn nothing_there(&self) -> bool {
        !self.ca_cert().exists() && !self.ca_key().exists()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The CA certificate: every client's only trust anchor, and Keycloak's `truststore-paths`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }
    /// The CA as a PKCS#12 truststore, for Keycloak's `https-trust-store-file`.
    pub fn ca_truststore(&self) -> PathBuf {
        self.dir.join("ca-truststore.p12")
    }
    pub fn keycloak_cert(&self) -> PathBuf {
        self.dir.join("keycloak.pem")
    }
    pub fn keycloak_key(&self) -> PathBuf {
        self.dir.join("keycloak-key.pem")
    }
    pub fn resource_server_cert(&self) -> PathBuf {
        self.dir.join("resource-server.pem")
    }
    pub fn resource_server_key(&self) -> PathBuf {
        self.dir.join("resource-server-key.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client-key.pem")
    }

    /// The key `private_key_jwt` signs client assertions with (0600). Not the TLS certificate's
    /// key: the TLS identity and the assertion key are rotated, and can leak, independently.
    pub fn assertion_key(&self) -> PathBuf {
        self.dir.join("client-assertion-key.pem")
    }
    /// The client's DPoP proof key (0600).
    pub fn dpop_key(&self) -> PathBuf {
        self.dir.join("client-dpop-key.pem")
    }
    /// The reverse proxy's certificate and key in one file (0600), the form HAProxy's `crt`
    /// reads: its TLS server identity towards clients, and the client certificate it presents
    /// upstream, by which the resource server knows it is the proxy.
    pub fn proxy_identity(&self) -> PathBuf {
        self.dir.join("proxy-identity.pem")
    }
    /// Where the client keeps the secret Keycloak gave it for a secret-based method (0600).
    pub fn client_secret(&self, method: &str) -> PathBuf {
        self.dir.join(format!("client-secret-{method}"))
    }

    /// Every (certificate, key, is-client) pair of leaves.
    fn leaves(&self) -> [(PathBuf, PathBuf, bool); 3] {
        [
            (self.keycloak_cert(), self.keycloak_key(), false),
            (
                self.resource_server_cert(),
                self.resource_server_key(),
                false,
            ),
            (self.client_cert(), self.client_key(), true),
        ]
    }
}

/// Whether [`CertSet::ensure`] made new material or found a usable set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Generated,
    Reused,
}

/// A complete, verified set of the playbook's certificates, with the files it was read from.
#[derive(Debug, Clone)]
pub struct CertSet {
    pub files: Files,
    pub ca_pem: String,
    pub keycloak: Leaf,
    pub resource_server: Leaf,
    pub client: Leaf,
}

impl CertSet {
    /// Reuses a valid set in `dir`, or generates one if the directory holds none.
    ///
    /// A set that exists but is broken (expired, expiring within 7 days, mismatched) is an error
    /// rather than silently replaced: something may trust that CA. `force` regenerates anyway.
    pub fn ensure(dir: impl Into<PathBuf>, force: bool) -> Result<(Self, Ensured), CertsError> {
        let files = Files::new(dir);
        if force || files.nothing_there() {
            return Ok((Self::generate(files)?, Ensured::Generated));
        }
        Ok((Self::load(files)?, Ensured::Reused))
    }

    /// Reads and verifies the set in `files`, failing with the first [`Problem`] found.
    pub fn load(files: Files) -> Result<Self, CertsError> {
        if files.nothing_there() {
            return Err(CertsError::NotFound { dir: files.dir });
        }
        let unusable = |problem| CertsError::Unusable {
            dir: files.dir.clone(),
            problem,
        };
        let ca_pem = read(&files.ca_cert()).map_err(unusable)?;
        let ca_key = read(&files.ca_key()).map_err(unusable)?;
        check_lifetime("ca.pem", &ca_pem).map_err(unusable)?;
        check_key("ca.pem", &ca_pem, "ca-key.pem", &ca_key).map_err(unusable)?;
        let mut leaves = Vec::new();
        for (cert_path, key_path, client) in files.leaves() {
            let (cert_name, key_name) = (file_name(&cert_path), file_name(&key_path));
            let cert = read(&cert_path).map_err(unusable)?;
            let key = read(&key_path).map_err(unusable)?;
            check_lifetime(&cert_name, &cert).map_err(unusable)?;
            check_chain(&cert_name, &cert, &ca_pem, client).map_err(unusable)?;
            check_key(&cert_name, &cert, &key_name, &key).map_err(unusable)?;
            leaves.push(Leaf::from_pem(cert, key));
        }
        if !files.ca_truststore().exists() {
            write_truststore(&files.ca_truststore(), &ca_pem)?;
        }
        let [keycloak, resource_server, client] =
            <[Leaf; 3]>::try_from(leaves).expect("three leaves");
        Ok(Self {
            files,
            ca_pem,
            keycloak,
            resource_server,
            client,
        })
    }

    /// The `private_key_jwt` signing key (PKCS#8 PEM), made on first use: sets generated before
    /// it existed stay valid.
    pub fn assertion_key(&self) -> Result<String, CertsError> {
        key_made_once(&self.files.assertion_key())
    }

    /// The client's DPoP key (PKCS#8 PEM, P-256), made on first use like the assertion key: the
    /// key its DPoP proofs are signed with and its DPoP-bound tokens name (RFC 9449).
    pub fn dpop_key(&self) -> Result<String, CertsError> {
        key_made_once(&self.files.dpop_key())
    }

    /// The reverse proxy's certificate and key (server and client use), made on first use like
    /// the assertion key: sets generated before the proxy existed stay valid, and a set only
    /// ever run direct carries no identity it does not use.
    ///
    /// One file, written whole under a temporary name and then renamed: two parties making it
    /// at once (a test run's parallel tests) each read a matching certificate and key, never one
    /// party's certificate with the other's key.
    pub fn proxy(&self) -> Result<Leaf, CertsError> {
        let path = self.files.proxy_identity();
        if let Ok(pem) = fs::read_to_string(&path)
            && let Some(leaf) = Leaf::from_identity_pem(&pem)
            && check_chain("proxy-identity.pem", leaf.cert_pem(), &self.ca_pem, true).is_ok()
            && check_key(
                "proxy-identity.pem",
                leaf.cert_pem(),
                "proxy-identity.pem",
                leaf.key_pem(),
            )
            .is_ok()
            && check_lifetime("proxy-identity.pem", leaf.cert_pem()).is_ok()
        {
            return Ok(leaf);
        }
        let leaf = self
            .authority()?
            .issue(&LeafSpec::server(PROXY_CN).also_client())?;
        let staging = path.with_extension(format!("pem.{}", std::process::id()));
        let identity = String::from_utf8(leaf.identity_pem()).expect("PEM is ASCII");
        write_file(&staging, &identity, true)?;
        fs::rename(&staging, &path).map_err(io("rename", &staging))?;
        Ok(leaf)
    }

    /// The CA of this set, able to sign more leaves (reads `ca-key.pem`).
    pub fn authority(&self) -> Result<Authority, CertsError> {
        let key =
            fs::read_to_string(self.files.ca_key()).map_err(io("read", &self.files.ca_key()))?;
        Authority::from_pem(&self.ca_pem, &key)
    }

    /// Makes a new CA and leaves and writes them, keys with mode 0600.
    pub fn generate(files: Files) -> Result<Self, CertsError> {
        fs::create_dir_all(&files.dir).map_err(io("create", &files.dir))?;
        let ca = Authority::generate()?;
        let set = Self {
            ca_pem: ca.cert_pem(),
            keycloak: ca.issue(&LeafSpec::server("keycloak"))?,
            resource_server: ca.issue(&LeafSpec::server(RESOURCE_SERVER_CN).also_client())?,
            client: ca.issue(&LeafSpec::client(CLIENT_CN))?,
            files,
        };
        let f = &set.files;
        write_file(&f.ca_key(), &ca.key_pem(), true)?;
        write_file(&f.ca_cert(), &set.ca_pem, false)?;
        write_truststore(&f.ca_truststore(), &set.ca_pem)?;
        for (leaf, (cert, key, _)) in [&set.keycloak, &set.resource_server, &set.client]
            .into_iter()
            .zip(f.leaves())
        {
            write_file(&key, leaf.key_pem(), true)?;
            write_file(&cert, leaf.cert_pem(), false)?;
        }
        let assertion_key = KeyPair::generate()?.serialize_pem();
        write_file(&f.assertion_key(), &assertion_key, true)?;
        tracing::debug!(dir = %f.dir.display(), "generated a new CA, leaf certificates and the assertion key");
        Ok(set)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, Problem> {
    fs::read_to_string(path).map_err(|_| Problem::Missing(file_name(path)))
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CertsError {
    let path = path.to_owned();
    move |source| CertsError::Io {
        action,
        path,
        source,
    }
}

/// Writes a file only its owner may read (0600), tightening one that existed looser: the one
/// writer of every secret the playbook keeps (private keys, admin passwords, leases).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, contents, 0o600)
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)
}

/// A signing key kept at `path`, made there (0600) the first time it is asked for.
fn key_made_once(path: &Path) -> Result<String, CertsError> {
    if let Ok(pem) = fs::read_to_string(path) {
        return Ok(pem);
    }
    let pem = crate::signing_key_pem()?;
    write_file(path, &pem, true)?;
    Ok(pem)
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CertsError> {
    let mode = if private { 0o600 } else { 0o644 };
    write_with_mode(path, contents.as_bytes(), mode).map_err(io("write", path))
}

fn write_truststore(path: &Path, ca_pem: &str) -> Result<(), CertsError> {
    let cert = P12Certificate::from_der(&crate::der::first_certificate(ca_pem))
        .map_err(|e| CertsError::Truststore(e.to_string()))?;
    let mut store = KeyStore::new();
    store.add_entry("oauth2-playbook-ca", KeyStoreEntry::Certificate(cert));
    let bytes = store
        .writer(TRUSTSTORE_PASSWORD)
        .write()
        .map_err(|e| CertsError::Truststore(e.to_string()))?;
    fs::write(path, bytes).map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_identity_is_made_once_in_one_private_file_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (set, _) = CertSet::ensure(dir.path(), false).unwrap();
        let path = set.files.proxy_identity();
        assert!(!path.exists(), "made on first use, not with the set");
        let first = set.proxy().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            set.proxy().unwrap().thumbprint_s256(),
            first.thumbprint_s256()
        );
        assert!(crate::der::allows_client_auth(first.cert_pem()));
        // A file that does not hold a certificate and its key is replaced, not trusted.
        fs::write(&path, first.cert_pem()).unwrap();
        let second = set.proxy().unwrap();
        assert_ne!(second.thumbprint_s256(), first.thumbprint_s256());
        assert!(Leaf::from_identity_pem(&fs::read_to_string(&path).unwrap()).is_some());
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("proxy-identity.pem.")
            })
            .count();
        assert_eq!(leftovers, 0, "no staging file left");
    }

    #[test]
    fn generates_then_reuses_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (first, how) = CertSet::ensure(dir.path(), false).unwrap();
        assert_eq!(how, Ensured::Generated);
        for key in [
            first.files.ca_key(),
            first.files.keycloak_key(),
            first.files.resource_server_key(),
            first.files.client_key(),
            first.files.assertion_key(),
        ] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let (second, how) = CertSet::ensure(dir.path(), false).unwrap();
        assert_eq!(how, Ensured::Reused);
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(
            first.client.thumbprint_s256(),
            second.client.thumbprint_s256()
        );
        assert_eq!(
            first.assertion_key().unwrap(),
            second.assertion_key().unwrap()
        );
        // A set from before the assertion key existed gets one on first use, 0600.
        fs::remove_file(first.files.assertion_key()).unwrap();
        let made = second.assertion_key().unwrap();
        assert!(made.contains("PRIVATE KEY"));
        let mode = fs::metadata(first.files.assertion_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn reloaded_authority_signs_leaves_that_chain_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let (set, _) = CertSet::ensure(dir.path(), false).unwrap();
        let extra = set
            .authority()
            .unwrap()
            .issue(&LeafSpec::client("another"))
            .unwrap();
        assert!(check_chain("x", extra.cert_pem(), &set.ca_pem, true).is_ok());
        let stranger = Authority::generate().unwrap();
        assert!(check_chain("x", extra.cert_pem(), &stranger.cert_pem(), true).is_err());
    }

    #[test]
    fn force_regenerates() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = CertSet::ensure(dir.path(), false).unwrap();
        let (second, how) = CertSet::ensure(dir.path(), true).unwrap();
        assert_eq!(how, Ensured::Generated);
        assert_ne!(first.ca_pem, second.ca_pem);
    }

    #[test]
    fn leaf_from_another_ca_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (set, _) = CertSet::ensure(dir.path(), false).unwrap();
        let stranger = Authority::generate()
            .unwrap()
            .issue(&LeafSpec::client(CLIENT_CN))
            .unwrap();
        write_file(&set.files.client_cert(), stranger.cert_pem(), false).unwrap();
        write_file(&set.files.client_key(), stranger.key_pem(), true).unwrap();
        let err = CertSet::ensure(dir.path(), false).unwrap_err();
        let line = err.to_string();
        assert!(
            line.contains("client.pem is not signed by the CA"),
            "{line}"
        );
        assert!(line.contains("--force"), "{line}");
        assert_eq!(read(&set.files.client_cert()).unwrap(), stranger.cert_pem());
    }

    #[test]
    fn key_of_another_leaf_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let (set, _) = CertSet::ensure(dir.path(), false).unwrap();
        write_file(&set.files.client_key(), set.keycloak.key_pem(), true).unwrap();
        let err = CertSet::ensure(dir.path(), false).unwrap_err();
        assert!(
            matches!(
                err,
                CertsError::Unusable {
                    problem: Problem::KeyMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_leaf_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (set, _) = CertSet::ensure(dir.path(), false).unwrap();
        fs::remove_file(set.files.resource_server_cert()).unwrap();
        let err = CertSet::ensure(dir.path(), false).unwrap_err();
        assert!(
            err.to_string().contains("resource-server.pem is missing"),
            "{err}"
        );
    }

    #[test]
    fn loading_an_empty_directory_says_how_to_make_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let err = CertSet::load(Files::new(dir.path())).unwrap_err();
        assert!(matches!(err, CertsError::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("run `cargo playbook certs`"),
            "{err}"
        );
    }

    #[test]
    fn expiring_certificate_is_reported() {
        let ca = Authority::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        assert!(matches!(
            check_lifetime("x.pem", &pem),
            Err(Problem::ExpiresSoon { .. })
        ));
        assert!(check_lifetime("ca.pem", &ca.cert_pem()).is_ok());
    }

    #[test]
    fn truststore_reads_back_as_a_trusted_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (set, _) = CertSet::ensure(dir.path(), false).unwrap();
        let bytes = fs::read(set.files.ca_truststore()).unwrap();
        let store = KeyStore::from_pkcs12(
            &bytes,
            TRUSTSTORE_PASSWORD,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .unwrap();
        let entry = store.entry("oauth2-playbook-ca").expect("CA entry");
        match entry {
            KeyStoreEntry::Certificate(c) => {
                assert_eq!(c.as_der(), crate::der::first_certificate(&set.ca_pem))
            }
            other => panic!("unexpected entry {other:?}"),
        }
    }
}
