//! A real headless Chromium for the tests of the instructor's stage, driven over the W3C
//! WebDriver protocol through Debian's `chromedriver`: a few plain HTTP calls, no browser
//! download, no Node.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The flags this machine's Chromium needs to run headless in a sandbox-less CI.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,720",
];

/// How long chromedriver lets an asynchronous script run: above any [`Browser::wait_for`] limit,
/// which the page enforces itself.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// A WebDriver key: what presenter clickers send.
pub const SPACE: &str = " ";
pub const ARROW_RIGHT: &str = "\u{E014}";
pub const PAGE_DOWN: &str = "\u{E00F}";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and one headless Chromium with a fresh profile. Tests ask
    /// [`crate::extras::BROWSER`] first; the error still names what is missing.
    pub async fn launch() -> Result<Self, String> {
        let extra = &crate::extras::BROWSER;
        let Some([chromium, chromedriver]) = extra.paths().and_then(|p| <[_; 2]>::try_from(p).ok())
        else {
            return Err(format!("{} are needed: {}", extra.needs, extra.install));
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // Its own process group, so that Chromium and its helpers go with it, whatever happens.
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromedriver.display()))?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err("chromedriver did not answer within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "timeouts": { "script": SCRIPT_TIMEOUT.as_millis() as u64 },
            "goog:chromeOptions": { "binary": chromium, "args": args }
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let session = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("chromedriver refused the session: {answer}"))?;
        Ok(Self {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            _profile: profile,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page, returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Waits until `script` (with `args`) returns something truthy, for at most `limit`.
    ///
    /// The page polls itself, in one asynchronous script: a poll from here every 25 ms was a
    /// WebDriver round trip each (this process, chromedriver, Chromium), and the stage's tests
    /// made hundreds of them, which made their Chromium use twice the CPU of one that only loads
    /// a page. A navigation meanwhile ends the wait with WebDriver's "document unloaded" error.
    pub async fn wait_for(&self, script: &str, args: Value, limit: Duration) -> Value {
        assert!(
            limit < SCRIPT_TIMEOUT,
            "a wait longer than {SCRIPT_TIMEOUT:?}"
        );
        let poll = format!(
            r#"const [args, limit, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
            const check = function () {{ {script} }};
            const deadline = Date.now() + limit;
            (function poll() {{
              let value;
              try {{ value = check.apply(null, args); }} catch (e) {{ done({{ thrown: String(e) }}); return; }}
              if (value !== null && value !== undefined && value !== false && value !== "" && value !== 0) done({{ value }});
              else if (Date.now() > deadline) done({{ timeout: true }});
              else setTimeout(poll, 25);
            }})();"#
        );
        let answer = self
            .call(
                reqwest::Method::POST,
                "/execute/async",
                json!({ "script": poll, "args": [args, limit.as_millis() as u64] }),
            )
            .await;
        if let Some(thrown) = answer.get("thrown") {
            panic!("`{script}` threw in the page: {thrown}");
        }
        if answer.get("timeout").is_some() {
            let page = self
                .execute("return JSON.stringify(document.body.dataset) + ' ' + document.body.innerText.slice(0, 300)", json!([]))
                .await;
            panic!("the page never satisfied `{script}` within {limit:?}; it shows: {page}");
        }
        answer["value"].clone()
    }

    /// Presses and releases one key, as a keyboard (or a presenter's clicker) would.
    pub async fn press(&self, key: &str) {
        let actions = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
            { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }
        ]}]});
        self.call(reqwest::Method::POST, "/actions", actions).await;
    }

    /// Clicks the first element matching `css`, as a mouse would.
    pub async fn click(&self, css: &str) {
        let element = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        let id = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element reference")
            .to_owned();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("valid base64");
        std::fs::write(path, bytes).expect("the screenshot is written");
    }
}

impl Browser {
    /// Ends the session, which closes Chromium.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    /// chromedriver and every Chromium process go too, even when a test failed before
    /// [`Browser::quit`].
    fn drop(&mut self) {
        // SAFETY: signals the process group this struct created; no memory is involved.
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}
