//! `doctor --preflight`: the night-before check on the room's machine, in seconds and without
//! starting anything: what a class will need that this machine could lack. Each line says what
//! to do; the exit code is 0 only if the class will run.

use std::path::{Path, PathBuf};

use playbook_provider::{Backend, BackendReport};

use super::verdict::{Misconfigured, Verdict, fail};

/// What `--step` needs to show each step whole: the size the terminal output is written for.
const TERMINAL: (u16, u16) = (100, 30);

/// Room for a Keycloak distribution and its build (or the container image), and the runs.
const FREE_DISK_BYTES: u64 = 2 << 30;

/// Browsers the stage page is known to work in, looked for on `PATH`.
const BROWSERS: [&str; 5] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "firefox",
    "microsoft-edge",
];

/// The backend can start Keycloak in seconds: what it runs on is there, and its one-time work
/// (download and build, or the image) is done.
pub fn keycloak_ready(report: &BackendReport) -> Verdict {
    let fix = "run `cargo playbook provider --prepare` now, so the room does not wait for the download and build";
    match report.picks {
        Backend::Native if !report.distribution_cached => fail(
            Misconfigured,
            "the Keycloak distribution is not downloaded and built yet",
            fix,
        ),
        Backend::Native => Verdict::Pass("the Keycloak build is cached: a start takes seconds".into()),
        Backend::Container => Verdict::Pass(
            "Docker answers; `cargo playbook provider --keycloak-backend container --prepare` builds the image ahead".into(),
        ),
        Backend::External => Verdict::Pass("an external Keycloak is set".into()),
    }
}

/// The stage's port is free (Keycloak's and the API's are in the `ports` line).
pub fn stage_port(port: u16) -> Verdict {
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        Verdict::Pass(format!("{port} free for the stage"))
    } else {
        fail(
            Misconfigured,
            format!("port {port}, the stage's, is taken"),
            format!(
                "stop whatever holds it (`ss -ltnp 'sport = :{port}'`), or pass --stage-port 0"
            ),
        )
    }
}

/// The audience page's address can be listened on beside the stage's own port, and what the
/// room will open.
pub fn audience(listen: Option<std::net::SocketAddr>, stage_port: u16) -> Verdict {
    let Some(listen) = listen else {
        return Verdict::Pass("no audience page asked for (--stage-listen ADDR checks one)".into());
    };
    if listen.port() == 0 {
        return fail(
            Misconfigured,
            format!("{listen} would put the audience page on a port nobody knows in advance"),
            "give the room a fixed port, e.g. 0.0.0.0:8089",
        );
    }
    if listen.port() == stage_port && !listen.ip().is_loopback() {
        return fail(
            Misconfigured,
            format!("{listen} and the stage's own 127.0.0.1:{stage_port} would clash"),
            "give the audience page another port (e.g. 8089)",
        );
    }
    match std::net::TcpListener::bind(listen) {
        Ok(_) => Verdict::Pass(format!(
            "the room opens {} (listening on {listen} works)",
            playbook_stage::audience::url(listen)
        )),
        Err(error) => fail(
            Misconfigured,
            format!("cannot listen on {listen} for the audience page: {error}"),
            "pick an address of this machine's classroom interface and a free port",
        ),
    }
}

/// A browser to open the stage in, on this machine.
pub fn browser(path: Option<&std::ffi::OsStr>) -> Verdict {
    let found = path
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .flat_map(|dir| BROWSERS.map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file());
    match found {
        Some(browser) => Verdict::Pass(format!("{} for the stage", browser.display())),
        None => fail(
            Misconfigured,
            format!(
                "no browser found on PATH (looked for {})",
                BROWSERS.join(", ")
            ),
            "install one (Debian: `apt-get install chromium`), or present from another machine's browser",
        ),
    }
}

/// HAProxy for `--topology proxy`: a class that does not show the proxy runs without it, so its
/// absence is said, not failed.
pub fn proxy(found: Option<PathBuf>) -> Verdict {
    match found {
        Some(path) => Verdict::Pass(format!("{} for --topology proxy", path.display())),
        None => Verdict::Skipped(
            "no HAProxy: --topology proxy needs it (`apt-get install haproxy`); everything else runs without it",
        ),
    }
}

/// PostgreSQL for `--topology cluster`: said, not failed, like the proxy.
pub fn database(installed: bool) -> Verdict {
    if installed {
        Verdict::Pass("PostgreSQL's server for --topology cluster".into())
    } else {
        Verdict::Skipped(
            "no PostgreSQL: --topology cluster needs it (`apt-get install postgresql`); everything else runs without it",
        )
    }
}

/// The terminal `--step` will run in: big enough for a step on one screen, and in colour.
pub fn terminal(size: Option<(u16, u16)>, no_color: bool) -> Verdict {
    let Some((width, height)) = size else {
        return fail(
            Misconfigured,
            "not run in a terminal",
            "run the pre-flight in the terminal you will present from",
        );
    };
    let (min_width, min_height) = TERMINAL;
    if width < min_width || height < min_height {
        return fail(
            Misconfigured,
            format!(
                "the terminal is {width}×{height}; a step of `--step` needs {min_width}×{min_height}"
            ),
            "enlarge the window, or make the font smaller until it fits",
        );
    }
    let colour = if no_color {
        "no colour (NO_COLOR is set: statuses are not green and red)"
    } else {
        "in colour"
    };
    Verdict::Pass(format!("{width}×{height}, {colour}"))
}

/// Free space where Keycloak is kept.
pub fn disk(dir: &Path) -> Verdict {
    // The nearest existing ancestor: the cache may not exist yet.
    let existing: PathBuf = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_owned();
    match free_bytes(&existing) {
        Some(free) if free >= FREE_DISK_BYTES => {
            Verdict::Pass(format!("{} GiB free in {}", free >> 30, existing.display()))
        }
        Some(free) => fail(
            Misconfigured,
            format!(
                "{} MiB free in {}; Keycloak's build and the runs need {} GiB",
                free >> 20,
                existing.display(),
                FREE_DISK_BYTES >> 30
            ),
            "free some space, or pass --cache-dir on a roomier disk",
        ),
        None => Verdict::Pass(format!("free space in {} unknown", existing.display())),
    }
}

/// Free bytes on the file system holding `dir`, for an unprivileged user.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Pass(_))
    }

    #[test]
    fn the_terminal_must_hold_a_step() {
        assert!(passed(&terminal(Some((120, 40)), false)));
        assert!(!passed(&terminal(Some((80, 24)), false)));
        assert!(!passed(&terminal(None, false)));
    }

    #[test]
    fn a_missing_proxy_is_said_without_failing_the_class() {
        assert!(passed(&proxy(Some(PathBuf::from("/usr/sbin/haproxy")))));
        assert!(
            matches!(proxy(None), Verdict::Skipped(why) if why.contains("apt-get install haproxy"))
        );
    }

    #[test]
    fn a_browser_is_found_on_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert!(!passed(&browser(Some(&path))));
        std::fs::write(dir.path().join("firefox"), "").unwrap();
        assert!(passed(&browser(Some(&path))));
    }

    #[test]
    fn a_taken_stage_port_is_named() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(!passed(&stage_port(port)));
        drop(held);
        assert!(passed(&stage_port(port)));
    }

    #[test]
    fn disk_space_is_read_from_the_nearest_existing_directory() {
        let verdict = disk(Path::new("/tmp/no/such/dir/yet"));
        let (Verdict::Pass(said) | Verdict::Fail { said, .. }) = &verdict else {
            panic!("a verdict");
        };
        assert!(said.contains("/tmp"), "{said}");
    }
}
