//! A class-data-sharing (CDS) archive of the classes Keycloak's JVM loads, kept beside the build.
//!
//! Mapping classes from an archive instead of reading them from jars saves ~1.5 s of a ~9.5 s
//! start here. JDK 17 writes such an archive only when a JVM started with
//! `-XX:ArchiveClassesAtExit` exits normally, which takes ~10 s more at its stop, so only the
//! one-time preparing start of a build writes it (to a private path, moved into place after a
//! clean stop). An archive that does not fit (another JDK, say) costs only the saving: the JVM
//! ignores what it cannot map.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How one Keycloak start uses the class archive of its install.
pub(crate) enum ClassArchive {
    /// The install has none yet.
    Absent,
    /// Map the existing archive.
    Read(PathBuf),
    /// Write one at exit to `pending`, to become `path` after a clean stop.
    Write { pending: PathBuf, path: PathBuf },
}

impl ClassArchive {
    /// The install's archive, if it has one.
    pub(crate) fn existing(install: &Path) -> Self {
        let path = Self::path(install);
        if path.is_file() {
            Self::Read(path)
        } else {
            Self::Absent
        }
    }

    /// A new archive for the install, written when this start stops.
    pub(crate) fn to_write(install: &Path) -> Self {
        let path = Self::path(install);
        let pending = path.with_extension(format!(
            "{}-{:08x}.jsa",
            std::process::id(),
            rand::random::<u32>()
        ));
        Self::Write { pending, path }
    }

    fn path(install: &Path) -> PathBuf {
        install.join(".playbook-classes.jsa")
    }

    /// `JAVA_OPTS_APPEND` for `kc.sh`: whatever the user set there, then ours.
    pub(crate) fn java_opts_append(&self) -> Option<String> {
        let ours = match self {
            Self::Absent => return None,
            Self::Read(path) => format!("-XX:SharedArchiveFile={}", path.display()),
            // Without -Xlog:cds=off, thousands of "Skipping …" lines written at exit would bury
            // the reason of a failed start at the end of the log.
            Self::Write { pending, .. } => format!(
                "-XX:ArchiveClassesAtExit={} -Xlog:cds=off -Xlog:cds+dynamic=off",
                pending.display()
            ),
        };
        match std::env::var("JAVA_OPTS_APPEND") {
            Ok(theirs) if !theirs.trim().is_empty() => Some(format!("{theirs} {ours}")),
            _ => Some(ours),
        }
    }

    /// How long a stop may take before it is forced: writing the archive takes a while.
    pub(crate) fn stop_grace(&self, usual: Duration) -> Duration {
        match self {
            Self::Write { .. } => usual * 4,
            _ => usual,
        }
    }

    /// Once the JVM has exited: keep a newly written archive only if it exited cleanly.
    pub(crate) fn finish(&self, exited_cleanly: bool) {
        if let Self::Write { pending, path } = self {
            let kept = exited_cleanly && pending.is_file() && fs::rename(pending, path).is_ok();
            if !kept {
                let _ = fs::remove_file(pending);
            }
        }
    }
}
