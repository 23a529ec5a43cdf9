//! Finding the Java that runs Keycloak natively: the newest one Keycloak supports.
//!
//! Keycloak 26.7 supports Java 21 and 25, and still runs on the deprecated 17. Newer JDKs also
//! start it faster (25 has the AOT cache, see `class_archive.rs`), so among every JDK found
//! (`JAVA_HOME`, `java` on `PATH`, the usual JVM folders) the newest supported one wins, then
//! 17, then an unsupported newer one. `PLAYBOOK_JAVA` / `--java` overrides the choice.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ProviderError;

/// Below this, Keycloak 26 does not run at all.
const MIN_MAJOR: u32 = 17;
/// The majors Keycloak 26.7 supports, best first; 17 runs but is deprecated.
const PREFERRED: [u32; 3] = [25, 21, 17];
/// Where package managers and installers put JDKs.
const JVM_FOLDERS: [&str; 3] = ["/usr/lib/jvm", "/usr/java", "/opt/java"];

/// A Java runtime fit for Keycloak.
#[derive(Debug, Clone)]
pub(crate) struct Java {
    pub path: PathBuf,
    pub major: u32,
}

/// The `java` to use: `chosen` (a `java` binary or a JDK home) when given, else the best found.
pub(crate) fn find(chosen: Option<&Path>) -> Result<Java, ProviderError> {
    if let Some(chosen) = chosen {
        let path = if chosen.is_dir() {
            chosen.join("bin/java")
        } else {
            chosen.to_owned()
        };
        return match major_version(&path) {
            Some(major) if major >= MIN_MAJOR => Ok(Java { path, major }),
            Some(major) => Err(ProviderError::JavaMissing {
                found: format!("PLAYBOOK_JAVA={} is Java {major}", path.display()),
            }),
            None => Err(ProviderError::JavaMissing {
                found: format!("PLAYBOOK_JAVA={} does not run", path.display()),
            }),
        };
    }
    let mut seen = Vec::new();
    let mut usable = Vec::new();
    for path in candidates() {
        match major_version(&path) {
            Some(major) if major >= MIN_MAJOR => usable.push(Java { path, major }),
            Some(major) => seen.push(format!("{} is Java {major}", path.display())),
            None => seen.push(format!("{} does not run", path.display())),
        }
    }
    best(usable).ok_or_else(|| ProviderError::JavaMissing {
        found: if seen.is_empty() {
            "none in JAVA_HOME, on PATH or in /usr/lib/jvm".to_owned()
        } else {
            seen.join(", ")
        },
    })
}

/// The preferred majors in their order, then any newer one; the first found of each wins.
fn best(usable: Vec<Java>) -> Option<Java> {
    let rank = |major: u32| {
        PREFERRED
            .iter()
            .position(|&m| m == major)
            .unwrap_or(PREFERRED.len())
    };
    usable.into_iter().min_by_key(|java| rank(java.major))
}

/// Every `java` that may be there, `JAVA_HOME` first, each real binary once.
fn candidates() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let java_home = std::env::var_os("JAVA_HOME").map(|home| PathBuf::from(home).join("bin/java"));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("java"))
            .find(|candidate| candidate.is_file())
    });
    let in_folders = JVM_FOLDERS.iter().flat_map(|folder| {
        let mut homes: Vec<PathBuf> = std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin/java"))
            .collect();
        homes.sort();
        homes
    });
    let mut real_paths = Vec::new();
    for path in java_home.into_iter().chain(on_path).chain(in_folders) {
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        if !real_paths.contains(&real) {
            real_paths.push(real);
            found.push(path);
        }
    }
    found
}

/// The major version `java -version` reports (`"1.8.0_402"` is 8, `"17.0.15"` is 17).
fn major_version(java: &Path) -> Option<u32> {
    let output = Command::new(java).arg("-version").output().ok()?;
    parse_major(&String::from_utf8_lossy(&output.stderr))
}

fn parse_major(version_output: &str) -> Option<u32> {
    let quoted = version_output.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_old_and_new_version_styles() {
        assert_eq!(
            parse_major(r#"openjdk version "17.0.15" 2025-04-15"#),
            Some(17)
        );
        assert_eq!(parse_major(r#"openjdk version "25" 2025-09-16"#), Some(25));
        assert_eq!(parse_major(r#"java version "1.8.0_402""#), Some(8));
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn the_newest_supported_java_wins_then_17_then_unsupported_newer_ones() {
        let java = |major| Java {
            path: PathBuf::from(format!("/jdk{major}/bin/java")),
            major,
        };
        let pick =
            |majors: &[u32]| best(majors.iter().map(|&m| java(m)).collect()).map(|j| j.major);
        assert_eq!(pick(&[17, 25]), Some(25));
        assert_eq!(pick(&[17, 21]), Some(21));
        assert_eq!(pick(&[26, 17]), Some(17));
        assert_eq!(pick(&[26]), Some(26));
        assert_eq!(pick(&[]), None);
    }
}
