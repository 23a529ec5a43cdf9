//! Processes the playbook owns (Keycloak, the reverse proxy): they die with the playbook however
//! it ends, a stop reaches every process they started, and each gets a port of its own.

/// Runs `"$@"` and kills its whole process group as soon as its stdin reaches EOF. Our process
/// holds the only write end of that pipe, so the program dies with us however we end: return,
/// panic, Ctrl-C or SIGKILL. kc.sh does not `exec` java, so a signal to kc.sh alone would leave
/// java running; the process group catches both.
pub const WATCHDOG: &str = r#"exec 3<&0
{ while read -r _ <&3; do :; done; kill -TERM 0; } &
watcher=$!
"$@" </dev/null 3<&-
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

pub fn signal(group: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(group, signal);
    }
}

/// Whether process `target` (> 0), or a member of process group `-target` (< 0, as kill(2)
/// takes it), is still running. A dead process whose zombie is not reaped yet is not: it holds no
/// memory, port or file any more, and an orphan's zombie waits for init to reap it, which on some
/// machines takes seconds (~1.5 s on these, at every stop of a watched process: its group
/// outlives its watchdog as zombies). A zombie leader whose other threads still run is running.
pub fn group_alive(target: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(target, 0) } != 0 {
        return false;
    }
    // kill(2) counts zombies; /proc tells them apart, when it is this PID namespace's.
    if !own_proc() {
        return true;
    }
    let leader = target.abs();
    if target > 0 {
        // Unreadable: gone meanwhile, or hidden; taken as running, the safe side for callers.
        return running(leader).is_none_or(|(alive, _)| alive);
    }
    // The group's leader (a watchdog) runs through most of a stop: /proc need not be read whole.
    if running(leader).is_some_and(|(alive, _)| alive) {
        return true;
    }
    std::fs::read_dir("/proc").map_or(true, |entries| {
        entries.flatten().any(|entry| {
            (entry.file_name().to_str())
                .and_then(|pid| pid.parse::<i32>().ok())
                .and_then(running)
                .is_some_and(|(alive, pgrp)| alive && pgrp == leader)
        })
    })
}

/// From `/proc/<pid>/stat`: whether the process runs (not a zombie whose threads are all gone),
/// and its process group; `None` when there is no such process (any more).
fn running(pid: i32) -> Option<(bool, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp … num_threads …`: comm may hold spaces and parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let zombie = fields.first() == Some(&"Z");
    let threads: u32 = fields.get(17)?.parse().ok()?;
    Some((!zombie || threads > 1, fields.get(2)?.parse().ok()?))
}

/// Whether `/proc` shows this process's own PID namespace (not so in a sandbox that did not
/// mount its own): only then do its entries name the processes kill(2) sees.
fn own_proc() -> bool {
    static OWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| {
        std::fs::read_link("/proc/self")
            .ok()
            .and_then(|link| link.to_str()?.parse::<u32>().ok())
            == Some(std::process::id())
    })
}

/// A free TCP port on loopback, for a process the playbook starts to bind.
pub fn free_port() -> std::io::Result<u16> {
    // Below the kernel's ephemeral range: a port from bind(0) comes from that range, where any
    // outgoing connection may take it as its local port before Keycloak binds it (seen here as
    // "Unable to start the management interface … Address already in use").
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let floor = if ephemeral_start > 21_000 {
        20_000
    } else {
        1024
    };
    for _ in 0..64 {
        let port = rand::random_range(floor..ephemeral_start.max(floor + 1));
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Stops the process group `child` leads: SIGTERM, then SIGKILL after `grace`; returns once no
/// member is left and `child` is reaped.
pub fn stop_group(child: &mut std::process::Child, grace: std::time::Duration) {
    // Stopped before: its group id may belong to another process by now.
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let group = -(child.id() as i32);
    signal(group, libc::SIGTERM);
    let deadline = std::time::Instant::now() + grace;
    while group_alive(group) {
        let _ = child.try_wait();
        if std::time::Instant::now() > deadline {
            signal(group, libc::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.wait();
}

/// Removes the directories `<temp>/<prefix><pid>-…` whose starter `pid` is gone: a run killed
/// before it could clean up (its watchdog stopped the processes; nothing else removes their
/// files). The prefix names the kind (`oauth2-playbook-proxy-`, `oauth2-playbook-postgres-`).
pub fn remove_stale_dirs(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let starter = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok());
        if starter.is_some_and(|pid| !group_alive(pid)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The per-user cache of what the playbook downloads and builds once (Keycloak, SPIRE):
/// `$XDG_CACHE_HOME/oauth2-playbook`, else `~/.cache/oauth2-playbook` (`PLAYBOOK_CACHE_DIR`
/// overrides it, as the flag of that name does).
pub fn user_cache_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("PLAYBOOK_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("oauth2-playbook")
}

/// `/bin/sh` running [`WATCHDOG`] around `program` (named `name` in `ps`), in a process group of
/// its own, its stdin the lifeline: add the program's arguments and outputs, spawn, and hand the
/// child to [`Owned::new`].
pub fn watched(name: &str, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg(name)
        .arg(program)
        .stdin(std::process::Stdio::piped())
        .process_group(0);
    command
}

/// A process the playbook owns and the directory its files live in: stopped, group and all, and
/// the directory removed when dropped or [`Owned::terminate`]d, and by its watchdog if the
/// playbook dies first.
pub struct Owned {
    child: std::sync::Mutex<std::process::Child>,
    /// Kept open only to keep the watchdog waiting; closing it stops the process.
    lifeline: std::sync::Mutex<Option<std::process::ChildStdin>>,
    dir: tempfile::TempDir,
    /// How long it gets to stop on SIGTERM before SIGKILL.
    grace: std::time::Duration,
}

impl Owned {
    /// Owns `child`, spawned from [`watched`], and `dir`.
    pub fn new(
        mut child: std::process::Child,
        dir: tempfile::TempDir,
        grace: std::time::Duration,
    ) -> Self {
        Self {
            lifeline: std::sync::Mutex::new(child.stdin.take()),
            child: std::sync::Mutex::new(child),
            dir,
            grace,
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// How it ended, if it has.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().ok().flatten()
    }

    /// Stops the whole group and waits for it to be gone, keeping the directory (for what is
    /// kept of it) until [`Owned::terminate`] or the drop. Idempotent.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        self.lifeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        stop_group(&mut child, self.grace);
    }

    /// Stops the whole group, waits for it to be gone, and removes the directory. Idempotent.
    pub fn terminate(&self) {
        self.stop();
        // Also here, not only when the directory's handle drops: a process stopped from an exit
        // hook (a `static` handle) is never dropped.
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_group_of_zombies_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .process_group(0)
            .spawn()
            .unwrap();
        let group = -(child.id() as i32);
        assert!(group_alive(group));
        assert!(group_alive(child.id() as i32));
        signal(group, libc::SIGKILL);
        // Not reaped yet: a zombie, which kill(2) still finds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while group_alive(group) {
            assert!(std::time::Instant::now() < deadline, "the group never died");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // SAFETY: signal 0 only checks for existence.
        assert_eq!(unsafe { libc::kill(group, 0) }, 0, "still a zombie");
        assert!(!group_alive(child.id() as i32));
        child.wait().unwrap();
    }
}
