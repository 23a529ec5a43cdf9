//! A cache of what Keycloak's JVM loads at start, kept beside the build, one per JDK major.
//!
//! On JDK 17 and 21 it is a class-data-sharing (CDS) archive: mapping classes instead of reading
//! them from jars saves ~1.5 s of a ~9.5 s start here. On JDK 25 it is an AOT cache (JEPs 483,
//! 514, 515), which also keeps classes loaded and linked, and method profiles. Either is written
//! only when a JVM started to record it exits normally, which takes a while at its stop, so only
//! the one-time preparing start of a build writes it (to a private path, moved into place after
//! a clean stop). A cache that does not fit costs only the saving: the JVM ignores what it
//! cannot map.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which kind of cache a JDK can write and map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A dynamic CDS archive (`-XX:ArchiveClassesAtExit`, `-XX:SharedArchiveFile`).
    ClassData,
    /// An AOT cache (`-XX:AOTCacheOutput`, `-XX:AOTCache`), JDK 25 on.
    AheadOfTime,
}

impl Kind {
    pub(crate) fn for_java(major: u32) -> Self {
        if major >= 25 {
            Self::AheadOfTime
        } else {
            Self::ClassData
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::ClassData => "jsa",
            Self::AheadOfTime => "aot",
        }
    }
}

/// How one Keycloak start uses the class cache of its install.
pub(crate) enum ClassArchive {
    /// The install has none yet for this JDK.
    Absent,
    /// Map the existing cache.
    Read { path: PathBuf, kind: Kind },
    /// Write one at exit to `pending`, to become `path` after a clean stop.
    Write {
        pending: PathBuf,
        path: PathBuf,
        kind: Kind,
    },
}

impl ClassArchive {
    /// The install's cache for Java `major`, if it has one.
    pub(crate) fn existing(install: &Path, major: u32) -> Self {
        let (path, kind) = Self::path(install, major);
        if path.is_file() {
            Self::Read { path, kind }
        } else {
            Self::Absent
        }
    }

    /// A new cache for the install and Java `major`, written when this start stops.
    pub(crate) fn to_write(install: &Path, major: u32) -> Self {
        let (path, kind) = Self::path(install, major);
        let pending = path.with_extension(format!(
            "{}-{:08x}.{}",
            std::process::id(),
            rand::random::<u32>(),
            kind.extension()
        ));
        Self::Write {
            pending,
            path,
            kind,
        }
    }

    fn path(install: &Path, major: u32) -> (PathBuf, Kind) {
        let kind = Kind::for_java(major);
        let name = format!(".playbook-classes-java{major}.{}", kind.extension());
        (install.join(name), kind)
    }

    /// The JVM options that map, or write, this cache.
    pub(crate) fn java_options(&self) -> Option<String> {
        // Without the -Xlog:…=off, thousands of "Skipping …" lines written at exit would bury
        // the reason of a failed start at the end of the log.
        Some(match self {
            Self::Absent => return None,
            Self::Read {
                path,
                kind: Kind::ClassData,
            } => format!("-XX:SharedArchiveFile={}", path.display()),
            Self::Read {
                path,
                kind: Kind::AheadOfTime,
            } => format!("-XX:AOTCache={}", path.display()),
            Self::Write {
                pending,
                kind: Kind::ClassData,
                ..
            } => format!(
                "-XX:ArchiveClassesAtExit={} -Xlog:cds=off -Xlog:cds+dynamic=off",
                pending.display()
            ),
            Self::Write {
                pending,
                kind: Kind::AheadOfTime,
                ..
            } => format!(
                "-XX:AOTCacheOutput={} -Xlog:cds=off -Xlog:aot=off",
                pending.display()
            ),
        })
    }

    /// Whether stopping must let the JVM exit cleanly: it writes a new archive at exit.
    pub(crate) fn needs_clean_exit(&self) -> bool {
        matches!(self, Self::Write { .. })
    }

    /// How long a stop may take before it is forced: writing the archive takes a while.
    pub(crate) fn stop_grace(&self, usual: Duration) -> Duration {
        match self {
            Self::Write { .. } => usual * 4,
            _ => usual,
        }
    }

    /// Once the JVM has exited: keep a newly written archive only if it exited cleanly, and
    /// never what it wrote on the way (JDK 25 writes `<archive>.config` first, then the archive).
    pub(crate) fn finish(&self, exited_cleanly: bool) {
        if let Self::Write { pending, path, .. } = self {
            let kept = exited_cleanly && pending.is_file() && fs::rename(pending, path).is_ok();
            if !kept {
                let _ = fs::remove_file(pending);
            }
            let mut config = pending.clone().into_os_string();
            config.push(".config");
            let _ = fs::remove_file(config);
        }
    }
}

/// Removes what an earlier preparing start left half-written when it was stopped before its
/// JVM finished the archive (`.playbook-classes-javaN.<pid>-<random>.<ext>` whose process is
/// gone): a few hundred MB that no start would ever read.
pub(crate) fn remove_stale(install: &Path) {
    let Ok(entries) = fs::read_dir(install) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(pid) = pending_writer(&name.to_string_lossy())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            tracing::info!(file = %entry.path().display(), "removing a class archive an interrupted start left half-written");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The process that writes a pending archive, from its name (see [`ClassArchive::to_write`]);
/// `None` for the finished archive and anything else.
fn pending_writer(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".playbook-classes-java")?;
    let (_major, rest) = rest.split_once('.')?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_start_s_archive_goes_and_everything_else_stays() {
        let install = tempfile::tempdir().unwrap();
        let dir = install.path();
        let ClassArchive::Write { pending, path, .. } = ClassArchive::to_write(dir, 25) else {
            panic!("a pending archive");
        };
        assert_eq!(
            pending_writer(&pending.file_name().unwrap().to_string_lossy()),
            Some(std::process::id())
        );
        // Pid 4194304 is above Linux's highest, so no process has it.
        let stale = dir.join(".playbook-classes-java25.4194304-0a1b2c3d.aot");
        for file in [&pending, &path, &stale] {
            fs::write(file, b"archive").unwrap();
        }
        let other = dir.join("kc.sh");
        fs::write(&other, b"#!/bin/sh").unwrap();
        remove_stale(dir);
        assert!(!stale.exists(), "the dead writer's file is removed");
        assert!(pending.exists(), "a live writer's file stays");
        assert!(path.exists() && other.exists());
    }
}
