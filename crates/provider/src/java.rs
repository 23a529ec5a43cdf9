//! Finding a Java that can run Keycloak 26 (17 or newer).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ProviderError;

const MIN_MAJOR: u32 = 17;

/// A Java runtime fit for Keycloak.
#[derive(Debug, Clone)]
pub(crate) struct Java {
    pub path: PathBuf,
    pub major: u32,
}

/// `$JAVA_HOME/bin/java`, then `java` on `PATH`; the first that is 17+ wins.
pub(crate) fn find() -> Result<Java, ProviderError> {
    let mut seen = Vec::new();
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        candidates.push(PathBuf::from(home).join("bin/java"));
    } else {
        seen.push("JAVA_HOME is unset".to_string());
    }
    match on_path("java") {
        Some(java) => candidates.push(java),
        None => seen.push("no `java` on PATH".to_string()),
    }
    for path in candidates {
        match major_version(&path) {
            Some(major) if major >= MIN_MAJOR => return Ok(Java { path, major }),
            Some(major) => seen.push(format!("{} is Java {major}", path.display())),
            None => seen.push(format!("{} does not run", path.display())),
        }
    }
    Err(ProviderError::JavaMissing {
        found: seen.join(", "),
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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
    use super::parse_major;

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
}
