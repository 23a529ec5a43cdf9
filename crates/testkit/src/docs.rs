//! Executed docs: the shell blocks a learner is told to paste, run as written against the test
//! run's Keycloak, so a command that stops working, or output a page promises that the program
//! no longer prints, turns the suite red and names the page.
//!
//! Every ```` ```sh ```` block of an executed page carries a marker on the line before it, an
//! HTML comment that Markdown renders as nothing:
//!
//! ```text
//! <!-- test: run; expect "HTTP/2 401" -->         run it; it must exit 0 and print the text
//! <!-- test: run; expect 'realm="x"' -->          the same, single quotes around a text with "
//! <!-- test: background; until "Press Ctrl-C" --> a server: started, waited for, stopped at the end
//! <!-- test: run; starts-keycloak -->             it would start Keycloak: it gets the run's own
//! <!-- test: skip; it runs this very test -->     never run, with the reason
//! <!-- test: run; needs curl-jq -->                run where the optional extra is installed
//! ```
//!
//! An unmarked block is an error, so a new block cannot slip past the test. What the runner
//! changes, and why it is faithful:
//! - `cargo demo` and `cargo playbook` run the `playbook` binary under test: they are aliases of
//!   `cargo run -p playbook-cli --` (checked against `.cargo/config.toml`), and cargo cannot be
//!   run again inside the `cargo test` that runs this.
//! - The default ports 9443 and 8443 become the run's, because every page that is executed says
//!   that the commands take your port in their place when you chose another one; the commands
//!   get the same ports through the documented `PLAYBOOK_*` variables.
//! - A block that starts Keycloak (`starts-keycloak`) is pointed at the run's Keycloak as an
//!   external one (`PLAYBOOK_KEYCLOAK_URL` and the admin credentials in the environment, never on
//!   a command line): one Keycloak serves the whole test run.
//! - `./certs` starts as a copy of the run's certificates (which Keycloak serves), so the
//!   page's `cargo playbook certs` finds them and reuses them.
//! - A block that `needs` an optional extra ([`crate::extras`]) is skipped, with the extra's one
//!   `skipped:` line per page, where the extra is missing and not required.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ports the pages show, and what replaces them.
const KEYCLOAK_PORT: u16 = playbook_keycloak::DEFAULT_HTTPS_PORT;
const API_PORT: u16 = playbook_resource_server::DEFAULT_LISTEN.port();

/// What the runner does with a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Run,
    Background,
    Skip(String),
}

/// One marked shell block of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// 1-based line of the opening fence, for the failure message.
    pub line: usize,
    pub mode: Mode,
    /// Texts the output must contain (a background block is ready once it printed them all).
    pub expects: Vec<String>,
    pub starts_keycloak: bool,
    /// The optional extras it needs (`needs curl-jq`).
    pub needs: Vec<&'static crate::extras::Extra>,
    pub script: String,
}

/// Every ```` ```sh ```` block of `markdown` with its marker; an unmarked block or a marker
/// this module does not understand is an error naming its line.
pub fn blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let language = fence.trim_start_matches('`').trim();
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("```"))
            .ok_or_else(|| format!("line {}: a code block that never closes", i + 1))?;
        if matches!(language, "sh" | "bash" | "shell" | "console") {
            let marker = i
                .checked_sub(1)
                .map(|m| lines[m].trim())
                .and_then(|m| m.strip_prefix("<!-- test:"))
                .and_then(|m| m.strip_suffix("-->"))
                .ok_or_else(|| {
                    format!(
                        "line {}: a shell block without a `<!-- test: ... -->` marker on the line before",
                        i + 1
                    )
                })?;
            let mut block = parse_marker(marker).map_err(|e| format!("line {}: {e}", i))?;
            block.line = i + 1;
            block.script = lines[i + 1..end].join("\n");
            found.push(block);
        }
        i = end + 1;
    }
    Ok(found)
}

fn parse_marker(marker: &str) -> Result<Block, String> {
    let mut parts = marker.split(';').map(str::trim);
    let mode = match parts.next().unwrap_or_default() {
        "run" => Mode::Run,
        "background" => Mode::Background,
        "skip" => Mode::Skip(parts.by_ref().collect::<Vec<_>>().join("; ")),
        other => {
            return Err(format!(
                "unknown test mode `{other}` (run, background, skip)"
            ));
        }
    };
    let mut block = Block {
        line: 0,
        mode,
        expects: Vec::new(),
        starts_keycloak: false,
        needs: Vec::new(),
        script: String::new(),
    };
    for part in parts {
        let quoted = |key: &str| {
            part.strip_prefix(key)
                .map(str::trim)
                .and_then(|q| {
                    ['"', '\'']
                        .into_iter()
                        .find_map(|mark| q.strip_prefix(mark)?.strip_suffix(mark))
                })
                .map(str::to_owned)
        };
        if let Some(text) = quoted("expect").or_else(|| quoted("until")) {
            block.expects.push(text);
        } else if part == "starts-keycloak" {
            block.starts_keycloak = true;
        } else if let Some(name) = part.strip_prefix("needs ") {
            let extra = crate::extras::named(name.trim())
                .ok_or_else(|| format!("no optional extra named `{}`", name.trim()))?;
            block.needs.push(extra);
        } else {
            return Err(format!("unknown marker part `{part}`"));
        }
    }
    if block.mode == Mode::Background && block.expects.is_empty() {
        return Err("a background block needs `until \"TEXT\"` to know when it is ready".into());
    }
    Ok(block)
}

/// Where a page's blocks run: a working directory with `./certs`, the ports, the servers
/// started so far (stopped when the session is dropped).
pub struct Session {
    page: String,
    dir: tempfile::TempDir,
    playbook: PathBuf,
    keycloak_port: u16,
    api_port: u16,
    /// The page's own realm in place of the tutorial's, so pages (and the other tests) run in
    /// parallel on the run's one Keycloak.
    realm: String,
    env: Vec<(String, String)>,
    keycloak_env: Vec<(String, String)>,
    servers: Vec<Child>,
    /// How many blocks ran (skipped ones not counted).
    pub ran: usize,
    /// The Keycloak the page's blocks use: the run's, or the run's behind the proxy.
    keycloak: &'static playbook_provider::Keycloak,
    /// Held while the page runs on the run's cluster (see [`crate::cluster_shared`]).
    _cluster: Option<std::sync::RwLockReadGuard<'static, ()>>,
}

impl Session {
    /// A session for `page` (its name in messages), running `playbook` for the cargo aliases.
    pub fn new(page: &str, playbook: &Path) -> Self {
        Self::on(page, playbook, crate::run(crate::keycloak()))
    }

    /// A session for a page about the proxy topology: its blocks get the run's Keycloak behind
    /// the proxy, and Keycloak's own address past it for the lab (`PLAYBOOK_KEYCLOAK_DIRECT_URL`).
    /// `None`, after one `skipped:` line, where HAProxy is missing and not required.
    pub fn behind_proxy(page: &str, playbook: &Path) -> Option<Self> {
        let test = format!("the executed docs of {page}");
        let keycloak = crate::run(crate::keycloak_behind_proxy(&test))?;
        let mut session = Self::on(page, playbook, keycloak);
        session.keycloak_env.push((
            "PLAYBOOK_KEYCLOAK_DIRECT_URL".into(),
            keycloak.direct_url().to_string(),
        ));
        Some(session)
    }

    /// A session for a page about the cluster topology: its blocks get the run's cluster (the
    /// load balancer's address). `None`, after one `skipped:` line, where HAProxy or PostgreSQL
    /// is missing and not required.
    pub fn in_cluster(page: &str, playbook: &Path) -> Option<Self> {
        let test = format!("the executed docs of {page}");
        let keycloak = crate::run(crate::keycloak_in_cluster(&test))?;
        let mut session = Self::on(page, playbook, keycloak);
        session._cluster = Some(crate::cluster_shared());
        Some(session)
    }

    fn on(page: &str, playbook: &Path, keycloak: &'static playbook_provider::Keycloak) -> Self {
        check_aliases();
        let keycloak_port = keycloak.base_url().port().expect("the run's Keycloak port");
        let api_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("a working directory");
        crate::copy_certs(&dir.path().join("certs"));
        let realm = crate::unique_realm("docs");
        let env = vec![
            ("PLAYBOOK_KEYCLOAK_PORT".into(), keycloak_port.to_string()),
            ("PLAYBOOK_REALM".into(), realm.clone()),
            (
                "PLAYBOOK_ISSUER".into(),
                keycloak.realm(&realm).issuer().to_string(),
            ),
            ("PLAYBOOK_LISTEN".into(), format!("127.0.0.1:{api_port}")),
            // `demo` and `lab` start resource servers of their own: on free ports, never on
            // another page's (or the tutorial's 8443).
            ("PLAYBOOK_API_PORT".into(), "0".into()),
            (
                "PLAYBOOK_API_URL".into(),
                playbook_https::local_url(api_port).to_string(),
            ),
            ("NO_COLOR".into(), "1".into()),
        ];
        let admin = keycloak.admin_credentials();
        let keycloak_env = vec![
            (
                playbook_provider::env::URL.into(),
                keycloak.base_url().to_string(),
            ),
            (
                playbook_provider::env::ADMIN_USER.into(),
                admin.username.clone(),
            ),
            (
                playbook_provider::env::ADMIN_PASSWORD.into(),
                admin.password.expose().to_owned(),
            ),
        ];
        Self {
            page: page.to_owned(),
            dir,
            playbook: playbook.to_owned(),
            keycloak_port,
            api_port,
            realm,
            env,
            keycloak_env,
            servers: Vec::new(),
            ran: 0,
            keycloak,
            _cluster: None,
        }
    }

    /// Runs every block of the page in order; panics at the first that fails, naming the page
    /// and line. Returns how many blocks ran.
    pub fn run_page(&mut self, markdown: &str) -> usize {
        let blocks = blocks(markdown).unwrap_or_else(|e| panic!("{}: {e}", self.page));
        let mut missing: Vec<&str> = Vec::new();
        for block in &blocks {
            // One `skipped:` line per missing extra and page, however many blocks need it.
            let absent = block.needs.iter().find(|extra| {
                missing.contains(&extra.name)
                    || !extra.available(&format!("the executed docs of {}", self.page))
                    || !self.reaches(extra)
            });
            if let Some(extra) = absent {
                if !missing.contains(&extra.name) {
                    missing.push(extra.name);
                }
                continue;
            }
            let started = Instant::now();
            match block.mode {
                Mode::Skip(_) => continue,
                Mode::Run => self.run(block),
                Mode::Background => self.background(block),
            }
            // What each block costs the suite (shown with --nocapture): the budget in
            // docs/testing.md is made of these.
            eprintln!(
                "[docs] {} line {}: {:.1} s",
                self.page,
                block.line,
                started.elapsed().as_secs_f64()
            );
            self.ran += 1;
        }
        self.ran
    }

    /// Whether the run's Keycloak can reach what `extra` serves on this machine's loopback: SPIRE's
    /// bundle endpoint is beyond a container's reach (one line says so).
    fn reaches(&self, extra: &crate::extras::Extra) -> bool {
        if *extra != crate::extras::SPIRE || self.keycloak.backend_name() != "container" {
            return true;
        }
        eprintln!(
            "skipped: the executed docs of {} with {} need Keycloak outside a container (it fetches SPIRE's bundle endpoint on this machine's loopback)",
            self.page, extra.needs
        );
        false
    }

    /// The page's text with the run's ports in place of the documented ones.
    fn localized(&self, text: &str) -> String {
        text.replace(
            &format!("localhost:{KEYCLOAK_PORT}"),
            &format!("localhost:{}", self.keycloak_port),
        )
        .replace(
            &format!("localhost:{API_PORT}"),
            &format!("localhost:{}", self.api_port),
        )
        .replace(
            &format!("/realms/{}/", playbook_keycloak::REALM),
            &format!("/realms/{}/", self.realm),
        )
    }

    fn command(&self, block: &Block, output: &Path) -> Command {
        let script = format!("{}\n{}\n", prelude(), self.localized(&block.script));
        let log = std::fs::File::create(output).expect("an output file");
        let mut command = Command::new("bash");
        command
            .args(["-e", "-o", "pipefail", "-c", &script])
            .current_dir(self.dir.path())
            .env("PLAYBOOK_BIN", &self.playbook)
            .env_remove("PLAYBOOK_CERTS_DIR")
            .env_remove("PLAYBOOK_API_PORT")
            .env_remove(playbook_provider::env::BACKEND)
            .env_remove(playbook_provider::env::URL)
            .env_remove(playbook_provider::env::ADMIN_USER)
            .env_remove(playbook_provider::env::ADMIN_PASSWORD)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle"))
            .stderr(log)
            .process_group(0);
        if block.starts_keycloak {
            command.envs(self.keycloak_env.iter().map(|(k, v)| (k, v)));
        }
        command
    }

    fn output_path(&self, block: &Block) -> PathBuf {
        self.dir.path().join(format!("block-{}.log", block.line))
    }

    fn fail(&self, block: &Block, why: &str) -> ! {
        let output = std::fs::read_to_string(self.output_path(block)).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{} line {}: {why}\n--- the block ---\n{}\n--- its output (last 60 lines) ---\n{}",
            self.page,
            block.line,
            block.script,
            tail.join("\n")
        );
    }

    fn missing(&self, block: &Block) -> Vec<String> {
        let output = std::fs::read_to_string(self.output_path(block)).unwrap_or_default();
        block
            .expects
            .iter()
            .map(|e| self.localized(e))
            .filter(|e| !output.contains(e.as_str()))
            .collect()
    }

    /// A block that would start Keycloak finds what a fresh one has: no tutorial realm yet
    /// (it imports the realm itself, like `playbook provider` and `demo` do).
    fn fresh_keycloak(&self, block: &Block) {
        if !block.starts_keycloak {
            return;
        }
        crate::run(async {
            let admin = self.keycloak.admin().expect("an Admin API client");
            let realm = &self.realm;
            if admin.realm_exists(realm).await.expect("the realm list") {
                admin
                    .retire_realm(realm)
                    .await
                    .expect("the tutorial realm out of the way");
            }
        });
    }

    /// Starts the block in its own process group, its output to its log file.
    fn spawn(&self, block: &Block) -> Child {
        self.fresh_keycloak(block);
        self.command(block, &self.output_path(block))
            .spawn()
            .expect("bash runs")
    }

    fn run(&mut self, block: &Block) {
        let mut child = self.spawn(block);
        let status = wait_timeout(&mut child, Duration::from_secs(300)).unwrap_or_else(|| {
            stop(&mut child);
            self.fail(block, "still running after 300 s")
        });
        if !status.success() {
            self.fail(block, &format!("exited with {status}"));
        }
        let missing = self.missing(block);
        if !missing.is_empty() {
            self.fail(
                block,
                &format!("the page promises {missing:?}, not printed"),
            );
        }
    }

    fn background(&mut self, block: &Block) {
        let mut child = self.spawn(block);
        let started = Instant::now();
        while !self.missing(block).is_empty() {
            if let Ok(Some(status)) = child.try_wait() {
                self.fail(block, &format!("a server block exited with {status}"));
            }
            if started.elapsed() > Duration::from_secs(120) {
                stop(&mut child);
                self.fail(block, "not ready after 120 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.servers.push(child);
    }
}

impl Drop for Session {
    /// Stops the servers the page started as Ctrl-C would, newest first.
    fn drop(&mut self) {
        while let Some(mut child) = self.servers.pop() {
            stop(&mut child);
        }
    }
}

/// `cargo demo` and `cargo playbook` as `.cargo/config.toml` defines them, on the binary under
/// test; any other cargo command in a page is an error.
fn prelude() -> &'static str {
    r#"cargo() {
  case "$1" in
    demo) shift; "$PLAYBOOK_BIN" demo "$@" ;;
    playbook) shift; "$PLAYBOOK_BIN" "$@" ;;
    *) echo "executed docs: only cargo's playbook aliases run here, not: cargo $*" >&2; return 97 ;;
  esac
}"#
}

/// The prelude stands for the aliases only while they mean what it assumes.
fn check_aliases() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cargo/config.toml");
    let config = std::fs::read_to_string(&config).expect(".cargo/config.toml");
    for alias in [
        r#"playbook = "run -p playbook-cli --""#,
        r#"demo = "run -p playbook-cli -- demo""#,
    ] {
        assert!(
            config.lines().any(|l| l.trim() == alias),
            "executed docs assume `{alias}` in .cargo/config.toml"
        );
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if started.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to the block's process group (bash and what it started), then SIGKILL if needed.
fn stop(child: &mut Child) {
    let group = child.id() as i32;
    // SAFETY: signalling a process group this session created.
    unsafe {
        libc::kill(-group, libc::SIGTERM);
    }
    if wait_timeout(child, Duration::from_secs(30)).is_none() {
        // SAFETY: as above.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Every Markdown page a reader sees: README.md and docs/.
    fn pages() -> Vec<(String, String)> {
        let root = repository();
        let mut pages = vec![(
            "README.md".to_owned(),
            std::fs::read_to_string(root.join("README.md")).unwrap(),
        )];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
                pages.push((name, std::fs::read_to_string(path).unwrap()));
            }
        }
        pages
    }

    #[test]
    fn the_readme_layout_lists_exactly_the_crates_that_exist() {
        let (_, readme) = &pages()[0];
        let layout = readme
            .split("## Layout")
            .nth(1)
            .and_then(|rest| rest.split("```").nth(1))
            .expect("README has a Layout block");
        let mut listed: Vec<String> = layout
            .lines()
            .filter_map(|line| line.strip_prefix("crates/"))
            .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
            .collect();
        let mut present: Vec<String> = std::fs::read_dir(repository().join("crates"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("Cargo.toml").exists())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        listed.sort();
        present.sort();
        assert_eq!(listed, present, "README's Layout and crates/ disagree");
    }

    #[test]
    fn the_docs_diagrams_name_the_lifelines_as_the_trace_does() {
        use playbook_trace::Party;
        let mut diagrams = 0;
        for (page, text) in pages() {
            for block in text.split("```mermaid").skip(1) {
                let block = block.split("```").next().unwrap();
                if !block.contains("sequenceDiagram") {
                    continue;
                }
                diagrams += 1;
                let mut declared = Vec::new();
                for line in block.lines().map(str::trim) {
                    let Some(participant) = line.strip_prefix("participant ") else {
                        continue;
                    };
                    let (id, name) = participant
                        .split_once(" as ")
                        .unwrap_or((participant, participant));
                    let party = Party::ALL
                        .into_iter()
                        .find(|p| p.name() == name)
                        .unwrap_or_else(|| panic!("{page}: `{name}` is not a lifeline name"));
                    assert!(
                        id == name || id == party.id(),
                        "{page}: `{id}` stands for {name}, whose id is {}",
                        party.id()
                    );
                    declared.push(id.to_owned());
                }
                for line in block.lines().map(str::trim) {
                    let Some((from, rest)) = line.split_once("->>") else {
                        continue;
                    };
                    let from = from.trim_end_matches('-');
                    let to = rest.split(':').next().unwrap().trim();
                    for end in [from, to] {
                        assert!(
                            declared.iter().any(|d| d == end),
                            "{page}: `{end}` in `{line}` is not a declared participant"
                        );
                    }
                }
            }
        }
        assert!(diagrams >= 3, "README, concepts and sequence have diagrams");
    }

    #[test]
    fn marked_blocks_are_found_with_their_modes_and_promises() {
        let page = "# Page\n\n<!-- test: run; expect \"HTTP/2 401\"; expect 'realm=\"x\"' -->\n```sh\ncurl -i https://localhost:8443/\n```\n\n```rust\nfn not_shell() {}\n```\n<!-- test: background; until \"ready\"; starts-keycloak -->\n```sh\ncargo playbook provider\n```\n<!-- test: skip; it runs this very test -->\n```sh\ncargo test\n```\n";
        let found = blocks(page).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].mode, Mode::Run);
        assert_eq!(found[0].line, 4);
        assert_eq!(found[0].expects, ["HTTP/2 401", "realm=\"x\""]);
        assert_eq!(found[0].script, "curl -i https://localhost:8443/");
        assert_eq!(found[1].mode, Mode::Background);
        assert!(found[1].starts_keycloak);
        assert_eq!(found[2].mode, Mode::Skip("it runs this very test".into()));
    }

    #[test]
    fn an_unmarked_or_misspelt_block_is_an_error_naming_its_line() {
        let unmarked = blocks("text\n```sh\nls\n```\n").unwrap_err();
        assert!(unmarked.starts_with("line 2:"), "{unmarked}");
        let unknown = blocks("<!-- test: runn -->\n```sh\nls\n```\n").unwrap_err();
        assert!(unknown.contains("runn"), "{unknown}");
        let part = blocks("<!-- test: run; expects \"x\" -->\n```sh\nls\n```\n").unwrap_err();
        assert!(part.contains("expects"), "{part}");
        let server = blocks("<!-- test: background -->\n```sh\nls\n```\n").unwrap_err();
        assert!(server.contains("until"), "{server}");
        let open = blocks("<!-- test: run -->\n```sh\nls\n").unwrap_err();
        assert!(open.contains("never closes"), "{open}");
    }
}
