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
//! restored. Only a test run's Keycloak gets it ([`crate::ProviderConfig::short_lived`]: one
//! run, or a run or two when kept between runs); one kept for a room or a lab keeps the JVM's
//! defaults.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every method: no C2 compilation from now on. The JVM compiles at C1 instead.
const DIRECTIVE: &str = r#"[{ match: "*.*", c2: { Exclude: true } }]"#;

/// How long `jcmd` may take (it answers in ~0.2 s here; it gives up by itself after 10 s).
const JCMD_TIMEOUT: Duration = Duration::from_secs(15);

/// Has `jcmd` (beside `java`) add the directive, written into `dir`, to the JVM below `root`
/// (the restored PID namespace's init), on a thread of its own: the Keycloak is ready and used
/// meanwhile, and works the same either way. What fails is logged, and the Keycloak then
/// compiles as usual.
pub(crate) fn stop_c2(java: &Path, root: i32, dir: &Path) {
    let (java, dir) = (java.to_owned(), dir.to_owned());
    let spawned = std::thread::Builder::new()
        .name("playbook-jcmd".into())
        .spawn(move || {
            if let Err(reason) = add_directive(&java, root, &dir) {
                tracing::warn!("the restored Keycloak compiles as usual ({reason})");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("the restored Keycloak compiles as usual (no thread for jcmd: {e})");
    }
}

fn add_directive(java: &Path, root: i32, dir: &Path) -> Result<(), String> {
    // `jcmd` sits beside the real `java`, not beside a link to it (`/usr/bin/java`).
    let java = java.canonicalize().unwrap_or_else(|_| java.to_owned());
    let jcmd = java.with_file_name("jcmd");
    if !jcmd.is_file() {
        // A JRE: nothing to add the directive with, and nothing to warn about.
        tracing::debug!(jdk = %jcmd.display(), "no jcmd beside Java: the restored Keycloak compiles as usual");
        return Ok(());
    }
    let jvm = jvm_below(root).ok_or_else(|| format!("no JVM below process {root}"))?;
    let pid = namespace_pid(jvm).ok_or_else(|| format!("no namespace pid for process {jvm}"))?;
    // The JVMs run in PID namespaces of their own but share /tmp, where a JVM opens its attach
    // socket under its namespace pid: restored from similar snapshots, two JVMs can have the
    // same one. One `jcmd` per namespace pid at a time, across processes; before it, a socket
    // another JVM left there is removed (it would take this `jcmd`), and after it, this one's.
    let tmp = PathBuf::from(format!("/proc/{jvm}/root/tmp"));
    let lock = tmp.join(format!(".playbook-attach-{pid}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&lock)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| format!("cannot lock {}: {e}", lock.display()))?;
    let socket = tmp.join(format!(".java_pid{pid}"));
    let _ = std::fs::remove_file(&socket);
    // A path the JVM opens itself: the same file for it, which shares our mount namespace.
    let file = dir.join("compiler-directive.json");
    std::fs::write(&file, DIRECTIVE).map_err(|e| format!("{}: {e}", file.display()))?;
    let answered = run(Command::new(&jcmd)
        .arg(jvm.to_string())
        .arg("Compiler.directives_add")
        .arg(&file));
    let _ = std::fs::remove_file(&socket);
    drop(lock);
    answered.map(|()| tracing::debug!("the restored Keycloak compiles new code with C1 only"))
}

/// Runs `command` to its end, killed after [`JCMD_TIMEOUT`]; what it printed on failure.
fn run(command: &mut Command) -> Result<(), String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run jcmd: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < JCMD_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(format!("jcmd: {e}")),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("jcmd did not answer within {JCMD_TIMEOUT:?}"));
            }
        }
    }
    let output = child.wait_with_output().map_err(|e| format!("jcmd: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!(
            "jcmd: {} {}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
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
    fn no_jvm_is_found_in_a_tree_without_one_and_a_pid_is_its_own_namespaces() {
        // Below this test process run no `java`; it runs in the namespace it sees itself in.
        let me = std::process::id() as i32;
        assert_eq!(jvm_below(me), None);
        assert_eq!(namespace_pid(me), Some(std::process::id()));
    }
}
