//! A restored test Keycloak stops compiling new code with C2: its hot code is compiled already.
//!
//! A snapshot is dumped after a warm-up (and, for a test run, the lab's training) that had the
//! JVM compile the hot paths with C2, so a restored Keycloak starts with them compiled. What C2
//! compiles after the restore is code the run reaches that the warm-up did not, and code thrown
//! away because the run took other types or branches than the warm-up (JFR counted ~400 such
//! deoptimizations in one run), compiled again. Over the same 59 end-to-end tests, C2 spent 13 s
//! of the run's Keycloak's 47–48 s of CPU on it; with new compilations stopped at C1 (the C2
//! code already there stays), that Keycloak used 32–40 s and its requests were no slower
//! (docs/testing.md, "The cluster" and the CPU split).
//!
//! A JVM flag cannot say this: `-XX:TieredStopAtLevel=1` holds from the start, so the warm-up's
//! code would be C1's too (tried: the run's Keycloak then used 153 s of CPU instead of 95 s). A
//! compiler directive can be added to a running JVM, through the JDK's `jcmd`, once it is
//! restored. Only a Keycloak that lives one test run gets it ([`crate::ProviderConfig::short_lived`]):
//! one kept for a room or a lab keeps the JVM's defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every method: no C2 compilation from now on. The JVM compiles at C1 instead.
const DIRECTIVE: &str = r#"[{ match: "*.*", c2: { Exclude: true } }]"#;

/// How long `jcmd` may take (it answers in ~0.2 s here; it gives up by itself after 10 s).
const JCMD_TIMEOUT: Duration = Duration::from_secs(15);

/// A `jcmd` adding [`DIRECTIVE`] to a restored JVM, under way while its readiness is polled.
pub(crate) struct Pending {
    jcmd: tokio::process::Child,
    /// The attach socket the JVM opens for `jcmd`, removed afterwards (see [`Pending::finish`]).
    socket: PathBuf,
}

/// Starts `jcmd` (beside `java`) adding the directive, written into `dir`, to the JVM below
/// `root` (the restored PID namespace's init). `None`, logged, when the JDK has no `jcmd` or no
/// JVM is found: the Keycloak then compiles as usual.
pub(crate) fn stop_c2(java: &Path, root: i32, dir: &Path) -> Option<Pending> {
    let jcmd = java.canonicalize().ok()?.with_file_name("jcmd");
    if !jcmd.is_file() {
        tracing::debug!(jdk = %jcmd.display(), "no jcmd beside Java: the restored Keycloak keeps compiling with C2");
        return None;
    }
    let Some(jvm) = jvm_below(root) else {
        tracing::debug!(root, "no JVM found below the restored init");
        return None;
    };
    // The JVM names its socket with its own pid, which is its namespace's: another restored
    // JVM may have had the same one, and a socket it left would take this `jcmd`.
    let socket = PathBuf::from(format!(
        "/proc/{jvm}/root/tmp/.java_pid{}",
        namespace_pid(jvm)?
    ));
    let _ = std::fs::remove_file(&socket);
    let file = dir.join("compiler-directive.json");
    if let Err(e) = std::fs::write(&file, DIRECTIVE) {
        tracing::debug!(file = %file.display(), "cannot write the compiler directive: {e}");
        return None;
    }
    let started = tokio::process::Command::new(&jcmd)
        .arg(jvm.to_string())
        .arg("Compiler.directives_add")
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    match started {
        Ok(jcmd) => Some(Pending { jcmd, socket }),
        Err(e) => {
            tracing::debug!(jcmd = %jcmd.display(), "cannot run jcmd: {e}");
            None
        }
    }
}

impl Pending {
    /// Waits for `jcmd` (a failure is logged: the Keycloak works either way), then removes the
    /// attach socket so that no later JVM with the same namespace pid is mistaken for this one.
    pub(crate) async fn finish(self) {
        let Pending { jcmd, socket } = self;
        match tokio::time::timeout(JCMD_TIMEOUT, jcmd.wait_with_output()).await {
            Ok(Ok(output)) if output.status.success() => {
                tracing::debug!("the restored Keycloak compiles new code with C1 only")
            }
            Ok(Ok(output)) => tracing::warn!(
                "jcmd could not stop C2 in the restored Keycloak (it compiles as usual): {}",
                String::from_utf8_lossy(&output.stdout).trim()
            ),
            Ok(Err(e)) => tracing::warn!("jcmd did not run: {e}"),
            Err(_) => tracing::warn!(
                "jcmd took over {JCMD_TIMEOUT:?}: the restored Keycloak compiles as usual"
            ),
        }
        let _ = std::fs::remove_file(socket);
    }
}

/// The first process named `java` in the tree below `root`, breadth first, from `/proc`.
fn jvm_below(root: i32) -> Option<i32> {
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.is_some_and(|exe| exe.file_name().is_some_and(|name| name == "java")) {
            return Some(pid);
        }
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
        queue.extend(
            children
                .iter()
                .flat_map(|text| text.split_whitespace())
                .filter_map(|child| child.parse::<i32>().ok()),
        );
    }
    None
}

/// `pid`'s pid in its own PID namespace (the last of `NSpid` in its status).
fn namespace_pid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_found_in_the_tree_below_its_parent_and_its_own_namespace_pid_read() {
        // This test process is below its parent; a tree without `java` yields none.
        let me = std::process::id() as i32;
        assert_eq!(namespace_pid(me), Some(std::process::id()));
        assert_eq!(jvm_below(me), None);
    }
}
