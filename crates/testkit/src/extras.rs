//! Optional extras: programs a few tests need that a fresh machine may not have (a browser, a
//! proxy; a database tomorrow). Keycloak is not one of them: without it the e2e tests fail.
//!
//! A test asks [`Extra::available`] first. When the extra is missing it prints exactly one
//! `skipped: <test> needs <what> (<how to install>)` line and passes, so README's test command is
//! green on a machine without the extra; unless the extra's own variable (or
//! [`REQUIRE_ALL_VARIABLE`]) is set, as `.ci/run` does, and then the test fails saying what to
//! install.
//!
//! ```no_run
//! #[test]
//! fn draws_in_a_browser() {
//!     if !playbook_testkit::extras::BROWSER.available("draws_in_a_browser") {
//!         return;
//!     }
//!     // ... drive Chromium
//! }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

/// Set (to anything but `0`), every extra is required: what CI sets.
pub const REQUIRE_ALL_VARIABLE: &str = "PLAYBOOK_REQUIRE_EXTRAS";

/// A program some tests need, where to find it, and how to get it.
#[derive(Debug)]
pub struct Extra {
    /// How a test names it (the executed docs' `needs NAME`).
    pub name: &'static str,
    /// What the skip line says the test needs.
    pub needs: &'static str,
    /// How to install it, as the skip line says.
    pub install: &'static str,
    /// Set (to anything but `0`), a missing extra fails the test instead of skipping it.
    pub require_variable: &'static str,
    /// Each program the extra consists of, as the paths where it may be installed.
    pub programs: &'static [&'static [&'static str]],
    /// Where it is found instead, for an extra the playbook builds itself into its cache.
    pub locate: Option<fn() -> Option<Vec<PathBuf>>>,
}

/// Extras are told apart by name (their one home).
impl PartialEq for Extra {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Extra {}

/// Headless Chromium and chromedriver: the instructor's stage drawn in a real browser.
pub const BROWSER: Extra = Extra {
    name: "browser",
    needs: "Chromium and chromedriver",
    install: "apt-get install chromium chromium-driver",
    require_variable: "PLAYBOOK_REQUIRE_BROWSER",
    programs: &[
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    ],
    locate: None,
};

/// curl and jq: the tutorial's "explore by hand" commands, which the executed docs run.
pub const CURL_JQ: Extra = Extra {
    name: "curl-jq",
    needs: "curl and jq",
    install: "apt-get install curl jq",
    require_variable: "PLAYBOOK_REQUIRE_CURL_JQ",
    programs: &[
        &["/usr/bin/curl", "/usr/local/bin/curl", "/bin/curl"],
        &["/usr/bin/jq", "/usr/local/bin/jq", "/bin/jq"],
    ],
    locate: None,
};

/// HAProxy: the proxy topology's reverse proxy, in front of Keycloak and the resource server.
pub const PROXY: Extra = Extra {
    name: "proxy",
    needs: "HAProxy",
    install: "apt-get install haproxy",
    require_variable: "PLAYBOOK_REQUIRE_PROXY",
    programs: &[&[
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]],
    locate: None,
};

/// PostgreSQL's server: the cluster topology's database, under its two Keycloak nodes.
pub const POSTGRES: Extra = Extra {
    name: "postgresql",
    needs: "PostgreSQL",
    install: "apt-get install postgresql",
    require_variable: "PLAYBOOK_REQUIRE_POSTGRES",
    // Debian's majors of the last releases (playbook_provider::postgres takes any).
    programs: &[&[
        "/usr/lib/postgresql/18/bin/postgres",
        "/usr/lib/postgresql/17/bin/postgres",
        "/usr/lib/postgresql/16/bin/postgres",
        "/usr/lib/postgresql/15/bin/postgres",
        "/usr/lib/postgresql/14/bin/postgres",
        "/usr/lib/postgresql/13/bin/postgres",
    ]],
    locate: None,
};

/// SPIRE's server and agent: a real SPIFFE issuer for the workload-identity lesson, built once
/// with Go by `scripts/install-spire.sh` (found where `playbook_spire::installed` looks).
pub const SPIRE: Extra = Extra {
    name: "spire",
    needs: "SPIRE (spire-server and spire-agent)",
    install: "scripts/install-spire.sh",
    require_variable: "PLAYBOOK_REQUIRE_SPIRE",
    programs: &[],
    locate: Some(|| {
        playbook_spire::installed()
            .map(|dir| vec![dir.join("spire-server"), dir.join("spire-agent")])
    }),
};

/// CRIU 4, run as root: the native backend's Keycloak snapshots, restored instead of started
/// (found where `playbook_provider::snapshot_criu` looks: `PLAYBOOK_CRIU`, the cache, `PATH`).
pub const CRIU: Extra = Extra {
    name: "criu",
    needs: "CRIU 4 and root (Keycloak snapshots)",
    install: "scripts/install-criu.sh, as root",
    require_variable: "PLAYBOOK_REQUIRE_CRIU",
    programs: &[],
    locate: Some(|| {
        let config = playbook_provider::ProviderConfig::from_env().ok()?;
        let wanted = config.snapshots != playbook_provider::SnapshotPolicy::Off;
        wanted
            .then(|| playbook_provider::snapshot_criu(&config))
            .flatten()
            .map(|criu| vec![criu])
    }),
};

/// Every extra, for the docs and for a test that keeps their variables apart.
pub const ALL: [&Extra; 6] = [&BROWSER, &CURL_JQ, &PROXY, &POSTGRES, &SPIRE, &CRIU];

/// The extra of that name.
pub fn named(name: &str) -> Option<&'static Extra> {
    ALL.into_iter().find(|extra| extra.name == name)
}

impl Extra {
    /// The installed path of each program, in the order of [`Extra::programs`]; `None` when any
    /// is missing.
    pub fn paths(&self) -> Option<Vec<PathBuf>> {
        if let Some(locate) = self.locate {
            return locate();
        }
        self.programs
            .iter()
            .map(|candidates| {
                candidates
                    .iter()
                    .map(Path::new)
                    .find(|path| path.exists())
                    .map(Path::to_path_buf)
            })
            .collect()
    }

    /// Whether `test` can run: true when the extra is installed; otherwise one `skipped:` line
    /// and false, or a panic naming what to install when the extra is required.
    pub fn available(&self, test: &str) -> bool {
        if self.paths().is_some() {
            return true;
        }
        if self.required() {
            panic!(
                "{test} needs {} ({}), and {} (or {REQUIRE_ALL_VARIABLE}) says it must run",
                self.needs, self.install, self.require_variable
            );
        }
        let line = self.skip_line(test);
        // Written to the stream itself, not through `eprintln!`, which the test harness captures
        // and hides for a passing test: the skip must be seen.
        let _ = writeln!(std::io::stderr(), "{line}");
        false
    }

    fn skip_line(&self, test: &str) -> String {
        format!("skipped: {test} needs {} ({})", self.needs, self.install)
    }

    fn required(&self) -> bool {
        self.required_by(|name| std::env::var(name).ok())
    }

    /// Whether `var` (the environment, or a test's stand-in) requires this extra.
    fn required_by(&self, var: impl Fn(&str) -> Option<String>) -> bool {
        [self.require_variable, REQUIRE_ALL_VARIABLE]
            .iter()
            .any(|name| var(name).is_some_and(|v| !v.is_empty() && v != "0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISSING: Extra = Extra {
        name: "nothing",
        needs: "a program that is nowhere",
        install: "apt-get install nothing",
        require_variable: "PLAYBOOK_REQUIRE_NOTHING_THAT_EXISTS",
        programs: &[&["/bin/sh"], &["/nonexistent/playbook-extra"]],
        locate: None,
    };

    #[test]
    fn a_missing_program_makes_the_extra_missing_and_says_how_to_get_it() {
        assert!(MISSING.paths().is_none());
        assert_eq!(
            MISSING.skip_line("t"),
            "skipped: t needs a program that is nowhere (apt-get install nothing)"
        );
        let present = Extra {
            programs: &[&["/nonexistent/a", "/bin/sh"]],
            ..MISSING
        };
        assert_eq!(present.paths(), Some(vec![PathBuf::from("/bin/sh")]));
        assert!(present.available("t"));
    }

    #[test]
    fn its_own_variable_or_the_global_one_requires_an_extra_and_0_does_not() {
        let only = |set: &'static str, value: &'static str| {
            move |name: &str| (name == set).then(|| value.to_owned())
        };
        assert!(MISSING.required_by(only(MISSING.require_variable, "1")));
        assert!(MISSING.required_by(only(REQUIRE_ALL_VARIABLE, "yes")));
        assert!(!MISSING.required_by(only(REQUIRE_ALL_VARIABLE, "0")));
        assert!(!MISSING.required_by(only(MISSING.require_variable, "")));
        assert!(!MISSING.required_by(only("PLAYBOOK_REQUIRE_BROWSER_TYPO", "1")));
    }

    #[test]
    fn extras_have_their_own_variables() {
        let mut names: Vec<&str> = ALL.iter().map(|e| e.require_variable).collect();
        names.push(REQUIRE_ALL_VARIABLE);
        assert!(ALL.iter().all(|e| named(e.name).is_some_and(|n| n == *e)));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(names.iter().all(|n| n.starts_with("PLAYBOOK_REQUIRE_")));
    }
}
