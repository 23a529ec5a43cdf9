//! The H2 databases of native Keycloak instances, and how any kept database is saved whole.
//!
//! A fresh database costs ~8 s of schema and master-realm creation at every start. The first start
//! of a build keeps its bootstrapped database as a template; every later instance starts from a
//! private copy (H2 allows one process per file).

use std::fs;
use std::path::{Path, PathBuf};

use crate::ProviderError;
use playbook_keycloak::AdminCredentials;

/// The file H2 keeps a database in (`jdbc:h2:file:<dir>/keycloakdb`).
pub(crate) const DATABASE_FILE: &str = "keycloakdb.mv.db";

/// The H2 database of one Keycloak process, in a directory of its own: H2 allows one process per
/// file, and tests run a second Keycloak beside the shared one.
pub(crate) struct InstanceDatabase {
    dir: PathBuf,
}

impl InstanceDatabase {
    /// A new directory, private (0700: the database holds the admin's password hash and, once
    /// the realm is in, its clients' secrets).
    pub(crate) fn fresh() -> Result<Self, ProviderError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!(
            "oauth2-playbook-keycloak-db-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(ProviderError::io("create", &dir))?;
        Ok(Self { dir })
    }

    pub(crate) fn jdbc_url(&self) -> String {
        format!(
            "jdbc:h2:file:{}/keycloakdb;NON_KEYWORDS=VALUE",
            self.dir.display()
        )
    }

    pub(crate) fn file(&self) -> PathBuf {
        self.dir.join(DATABASE_FILE)
    }

    /// The directory, for whoever removes it once Keycloak has stopped.
    pub(crate) fn into_dir(self) -> PathBuf {
        self.dir
    }

    pub(crate) fn remove(self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Makes `dir` whole or not at all: `fill` writes into a private (0700) staging directory beside
/// it, renamed into place once complete. Another process may save the same at the same time:
/// either copy serves, and the loser's is removed.
pub(crate) fn save_whole(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), ProviderError>,
) -> Result<(), ProviderError> {
    use std::os::unix::fs::DirBuilderExt;
    let staging = dir.with_extension(format!("staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(ProviderError::io("create", &staging))?;
    if let Err(e) = fill(&staging) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    if fs::rename(&staging, dir).is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    remove_superseded(dir);
    Ok(())
}

/// Removes the kept databases `dir` supersedes: those named as it is but for the digest of what
/// their spares were made from (see `SnapshotExtras::name_suffix`), an older realm.json's, which
/// no start asks for again (~250 MB each with 150 spares).
fn remove_superseded(dir: &Path) {
    let (Some(parent), Some(own)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if superseded(&own.to_string_lossy(), &entry.file_name().to_string_lossy()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `other` is `own` for other spares: the same name but for its 12-hex-digit digest.
fn superseded(own: &str, other: &str) -> bool {
    let digest = |part: &str| part.len() == 12 && part.bytes().all(|b| b.is_ascii_hexdigit());
    let (own, other): (Vec<&str>, Vec<&str>) =
        (own.split('-').collect(), other.split('-').collect());
    own != other
        && own.len() == other.len()
        && (own.iter().zip(&other)).all(|(a, b)| a == b || (digest(a) && digest(b)))
}

#[cfg(test)]
mod tests {
    use super::superseded;

    #[test]
    fn a_kept_database_supersedes_only_itself_for_another_realm() {
        let own = ".playbook-database-template-spares150-d0d28f6aa9d2-quick-narrow";
        let older = ".playbook-database-template-spares150-c8e160fc9cf0-quick-narrow";
        assert!(superseded(own, older));
        for kept in [
            own,
            ".playbook-database-template",
            ".playbook-database-template-spares24-c8e160fc9cf0-quick-narrow",
            ".playbook-database-template-spares150-c8e160fc9cf0-quick",
            ".playbook-database-template-spares150-d0d28f6aa9d2-quick-narrow.staging-42",
            ".playbook-cluster-database-pg15-spares150-c8e160fc9cf0-quick-narrow",
        ] {
            assert!(!superseded(own, kept), "{kept}");
        }
    }
}

/// A bootstrapped database (master realm and admin) kept beside the built install, with the
/// admin password it was made with (mode 0600); or one made from it with a test run's extras
/// (see [`crate::SnapshotExtras`]).
#[derive(Clone)]
pub(crate) struct DatabaseTemplate {
    dir: PathBuf,
    /// What it holds beyond the master realm and the admin.
    pub(crate) extras: crate::SnapshotExtras,
}

impl DatabaseTemplate {
    pub(crate) fn new(install: &Path) -> Self {
        Self {
            dir: install.join(".playbook-database-template"),
            extras: crate::SnapshotExtras::default(),
        }
    }

    /// This template with `extras` added, made or not; the same admin.
    pub(crate) fn with_extras(&self, extras: &crate::SnapshotExtras) -> Self {
        let mut name = self.dir.as_os_str().to_owned();
        name.push(extras.name_suffix());
        Self {
            dir: name.into(),
            extras: *extras,
        }
    }

    pub(crate) fn exists(&self) -> bool {
        self.dir.join(DATABASE_FILE).is_file() && self.dir.join("admin-password").is_file()
    }

    pub(crate) fn save(
        &self,
        database: &InstanceDatabase,
        admin: &AdminCredentials,
    ) -> Result<(), ProviderError> {
        save_whole(&self.dir, |staging| {
            fs::copy(database.file(), staging.join(DATABASE_FILE))
                .map_err(ProviderError::io("copy", database.file()))?;
            let password = staging.join("admin-password");
            playbook_certs::write_private(&password, admin.password.expose().as_bytes())
                .map_err(ProviderError::io("write", &password))
        })
    }

    /// Where a failure to make this template is remembered (a marker beside it, holding the
    /// reason), so that later starts do not pay for trying again; removed, they try.
    pub(crate) fn failure_marker(&self) -> PathBuf {
        self.dir.with_extension("failed")
    }

    /// A private copy of the template for one instance, and the admin it knows.
    pub(crate) fn instantiate(
        &self,
    ) -> Result<(InstanceDatabase, AdminCredentials), ProviderError> {
        let database = InstanceDatabase::fresh()?;
        let source = self.dir.join(DATABASE_FILE);
        fs::copy(&source, database.file()).map_err(ProviderError::io("copy", &source))?;
        let password_file = self.dir.join("admin-password");
        let password = fs::read_to_string(&password_file)
            .map_err(ProviderError::io("read", &password_file))?;
        let admin = AdminCredentials::new(
            crate::DEFAULT_ADMIN_USER,
            playbook_keycloak::Secret::new(password.trim()),
        );
        Ok((database, admin))
    }
}
