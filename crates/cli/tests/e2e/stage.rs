//! `playbook demo --stage` in a real headless Chromium, against the real Keycloak: the page is
//! stepped through with the presenter's keys, and what it shows is checked against what
//! happened (statuses in order, the certificate against `cnf`, no token or password on it).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use playbook_testkit::browser::{ARROW_RIGHT, Browser, PAGE_DOWN, SPACE};
use serde_json::json;

use super::shows_compact_jwt;

/// Waits until the run waits for Next (true) or has finished (false).
const WAITING_OR_FINISHED: &str = "const b = document.body.dataset; \
    return b.finished !== '' ? 'finished' : (b.waiting === 'true' ? 'waiting' : null);";

/// `playbook demo --stage` running, stopped when dropped (the stage lingers for its downloads
/// until then), with its stderr read line by line until [`Demo::drain`].
struct Demo {
    child: Child,
    stderr: Option<std::io::Lines<BufReader<ChildStderr>>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// The demo with `args` in `realm` of the run's Keycloak (as an external one).
    fn start(realm: &str, args: &[&OsStr]) -> Self {
        let keycloak = playbook_testkit::run(playbook_testkit::keycloak());
        let admin = keycloak.admin_credentials();
        let mut child = Command::new(env!("CARGO_BIN_EXE_playbook"))
            .arg("--certs-dir")
            .arg(playbook_testkit::certs().files.dir())
            .arg("demo")
            .args(args)
            .env("PLAYBOOK_KEYCLOAK_BACKEND", "external")
            .env("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str())
            .env("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username)
            .env("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose())
            .env("PLAYBOOK_REALM", realm)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the playbook binary runs");
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        Self {
            child,
            stderr: Some(stderr),
        }
    }

    /// The URL on the first line of stderr that starts with `prefix` (`stage: `, `audience: `).
    fn url(&mut self, prefix: &str) -> String {
        let lines = self.stderr.as_mut().expect("stderr not drained yet");
        lines
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix(prefix)
                    .map(|rest| rest.split(' ').next().unwrap().to_owned())
            })
            .unwrap_or_else(|| panic!("the demo prints the {prefix}URL"))
    }

    /// The rest of stderr, read on a thread so that the demo never blocks on a full pipe.
    fn drain(&mut self) -> std::thread::JoinHandle<Vec<String>> {
        let lines = self.stderr.take().expect("stderr drained once");
        std::thread::spawn(move || lines.map_while(Result::ok).collect())
    }
}

#[test]
fn the_stage_draws_the_real_run_as_the_presenter_steps_through_it() {
    if !playbook_testkit::extras::BROWSER
        .available("stage::the_stage_draws_the_real_run_as_the_presenter_steps_through_it")
    {
        return;
    }
    let realm = playbook_testkit::unique_realm("stage");
    let keycloak = playbook_testkit::run(playbook_testkit::keycloak());
    let admin = keycloak.admin_credentials();
    let exports = tempfile::tempdir().unwrap();
    let export = |ext: &str| exports.path().join(format!("run.{ext}"));
    let (html, svg, mmd) = (export("html"), export("svg"), export("mmd"));
    let args: Vec<&OsStr> = ["--stage", "--stage-port", "0", "--api-port", "0", "--json"]
        .iter()
        .map(OsStr::new)
        .chain([
            OsStr::new("--export"),
            html.as_os_str(),
            OsStr::new("--export"),
            svg.as_os_str(),
            OsStr::new("--export"),
            mmd.as_os_str(),
        ])
        .collect();
    let mut demo = Demo::start(&realm, &args);
    let url = demo.url("stage: ");
    let log = demo.drain();

    let thumbprint = playbook_testkit::certs().client.thumbprint_s256();
    let password = admin.password.expose().to_owned();
    let (timings, shown_exchanges) = playbook_testkit::run(async {
        let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
        eprintln!("stage page weight: {:.1} KB", page.len() as f64 / 1024.0);

        let browser = Browser::launch().await.expect("a headless Chromium");
        browser.goto(&url).await;
        let keys = [SPACE, ARROW_RIGHT, PAGE_DOWN];
        let mut presses = 0;
        loop {
            let state = browser
                .wait_for(WAITING_OR_FINISHED, json!([]), Duration::from_secs(90))
                .await;
            if state == "finished" {
                break;
            }
            let step = browser
                .execute("return document.body.dataset.step", json!([]))
                .await;
            browser.press(keys[presses % keys.len()]).await;
            presses += 1;
            // The press counts once the page has moved past that step (it may already be
            // waiting for the next one: a step can take less than a poll).
            browser
                .wait_for(
                    "return document.body.dataset.step !== arguments[0] || document.body.dataset.finished !== ''",
                    json!([step]),
                    Duration::from_secs(30),
                )
                .await;
        }
        let finished = browser
            .execute("return document.body.dataset.finished", json!([]))
            .await;
        if finished != "true" {
            // What the room would see says which step failed.
            let shown = browser
                .execute("return document.body.innerText", json!([]))
                .await;
            panic!("the run did not finish well (finished: {finished}); the page shows:\n{shown}");
        }
        assert_eq!(
            presses, 6,
            "a Next before each lesson and each of the four steps"
        );

        let answers = browser
            .execute(
                "return [...document.querySelectorAll('.exchange[data-from=Client][data-to=ResourceServer]')].map(g => g.dataset.status)",
                json!([]),
            )
            .await;
        assert_eq!(answers, json!(["403", "200", "401"]));
        let all = browser
            .execute(
                "return document.querySelectorAll('.exchange').length",
                json!([]),
            )
            .await;
        let steps = browser
            .execute(
                "return [...document.querySelectorAll('.step text')].map(t => t.textContent)",
                json!([]),
            )
            .await;
        assert_eq!(
            steps.as_array().unwrap().len(),
            7,
            "setup, two lessons, four steps: {steps}"
        );

        // Projector-grade: scrolled to the last arrow, the lifelines' names are still in view
        // at the top of the diagram, and with no arrow selected the diagram has the width.
        let header = browser
            .execute(
                "const d = document.getElementById('diagram'); d.scrollTop = d.scrollHeight; \
                 const l = document.getElementById('lifelines').getBoundingClientRect(); \
                 const p = d.getBoundingClientRect(); \
                 return [d.scrollTop > 0, Math.round(l.top - p.top), l.height > 20, \
                         document.getElementById('lifelines').textContent.includes('ResourceServer'), \
                         getComputedStyle(document.getElementById('details')).display]",
                json!([]),
            )
            .await;
        assert_eq!(header[0], true, "the diagram scrolled: {header}");
        // At the very top of the pane; scrolled away with the diagram it would be thousands of
        // pixels above.
        assert!(
            (0..=2).contains(&header[1].as_i64().unwrap()),
            "the names at the top: {header}"
        );
        assert_eq!(
            (&header[2], &header[3]),
            (&json!(true), &json!(true)),
            "{header}"
        );
        assert_eq!(
            header[4], "none",
            "no details panel before an arrow is chosen"
        );

        // The 200: the certificate presented is the one the token is bound to.
        browser
            .click(".exchange[data-from=Client][data-to=ResourceServer][data-status='200']")
            .await;
        let shown = browser
            .wait_for(
                "const d = [...document.querySelectorAll('.detail')].find(d => !d.hidden); return d && d.innerText",
                json!([]),
                Duration::from_secs(5),
            )
            .await;
        let shown = shown.as_str().unwrap();
        assert!(shown.contains("✓ Equal"), "{shown}");
        let side_by_side = browser
            .execute(
                "return [...[...document.querySelectorAll('.detail')].find(d => !d.hidden).querySelectorAll('.thumbprint')].map(e => e.textContent)",
                json!([]),
            )
            .await;
        assert_eq!(
            side_by_side,
            json!([thumbprint, thumbprint]),
            "certificate thumbprint, then cnf"
        );
        assert!(
            shown.contains("\"users:read") || shown.contains(" users:read"),
            "decoded claims shown: {shown}"
        );

        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        browser
            .execute(
                "document.querySelector('.detail:not([hidden]) h3').scrollIntoView()",
                json!([]),
            )
            .await;
        browser
            .screenshot(&shots.join("stage-finished-run.png"))
            .await;

        // The replay: no certificate, so the binding cannot hold.
        browser
            .click(".exchange[data-from=Client][data-to=ResourceServer][data-status='401']")
            .await;
        let shown = browser
            .execute(
                "return [...document.querySelectorAll('.detail')].find(d => !d.hidden).innerText",
                json!([]),
            )
            .await;
        let shown = shown.as_str().unwrap();
        assert!(
            shown.contains("✗ Not equal") && shown.contains("none presented"),
            "{shown}"
        );
        assert!(
            shown.contains("invalid_token"),
            "the WWW-Authenticate challenge is shown: {shown}"
        );

        let dom = browser
            .execute("return document.documentElement.outerHTML", json!([]))
            .await;
        let dom = dom.as_str().unwrap();
        assert!(!shows_compact_jwt(dom), "a raw token reached the page");
        assert!(
            !dom.contains(&password),
            "the admin password reached the page"
        );

        browser.press("t").await;
        browser
            .screenshot(&shots.join("stage-finished-run-dark.png"))
            .await;
        eprintln!(
            "screenshots: {}",
            shots.join("stage-finished-run*.png").display()
        );
        let timings = browser
            .execute("return window.stageTimings", json!([]))
            .await;
        browser.quit().await;
        eprintln!("exchanges on the page: {all}");
        (timings, all.as_u64().unwrap())
    });
    eprintln!("ms from Next to the next arrow on screen: {timings}");

    // The page stays up for the downloads until the presenter closes it: SIGTERM ends it well.
    // SAFETY: signals the child this test started; no memory is involved.
    unsafe { libc::kill(demo.child.id() as i32, libc::SIGTERM) };
    let status = demo.child.wait().unwrap();
    let log = log.join().unwrap().join("\n");
    assert_eq!(status.code(), Some(0), "{log}");

    let svg = std::fs::read_to_string(export("svg")).unwrap();
    let drawn = svg.matches(r#"<g class="exchange""#).count() as u64;
    assert_eq!(
        drawn, shown_exchanges,
        "the hand-out shows what the room saw"
    );
    assert!(!shows_compact_jwt(&svg));
    let html = std::fs::read_to_string(export("html")).unwrap();
    assert!(html.contains("<svg") && html.contains("✓ Equal") && !shows_compact_jwt(&html));
    let mermaid = std::fs::read_to_string(export("mmd")).unwrap();
    assert!(mermaid.starts_with("sequenceDiagram\n"));
    for answer in [
        "R-->>C: 403 insufficient_scope",
        "R-->>C: 200",
        "R-->>C: 401 invalid_token",
    ] {
        assert!(mermaid.contains(answer), "{answer} missing:\n{mermaid}");
    }
}

/// The room's view, in a real Chromium: with `--stage-listen` and `--predict`, the audience page
/// has no Next and cannot step the run, shows the choices while a question is open and takes a
/// vote, the presenter's page shows the tally, and the audience page ends with every arrow.
#[test]
fn the_audience_page_votes_on_predictions_and_cannot_step_the_run() {
    if !playbook_testkit::extras::BROWSER
        .available("stage::the_audience_page_votes_on_predictions_and_cannot_step_the_run")
    {
        return;
    }
    let realm = playbook_testkit::unique_realm("audience");
    let args = [
        "--stage",
        "--predict",
        "--json",
        "--stage-port",
        "0",
        "--stage-listen",
        "127.0.0.1:0",
        "--api-port",
        "0",
    ]
    .map(OsStr::new);
    let mut demo = Demo::start(&realm, &args);
    let presenter = demo.url("stage: ");
    let audience = demo.url("audience: ");
    let _log = demo.drain();

    playbook_testkit::run(async {
        let browser = Browser::launch().await.expect("a headless Chromium");
        let next_until = |until: &'static str| {
            let browser = &browser;
            async move {
                loop {
                    let state = browser
                        .wait_for(WAITING_OR_FINISHED, json!([]), Duration::from_secs(90))
                        .await;
                    let step = browser
                        .execute("return document.body.dataset.step", json!([]))
                        .await;
                    if state == "finished" || step == until {
                        return;
                    }
                    browser.press(SPACE).await;
                    browser
                        .wait_for(
                            "return document.body.dataset.step !== arguments[0] || document.body.dataset.finished !== ''",
                            json!([step]),
                            Duration::from_secs(30),
                        )
                        .await;
                }
            }
        };
        // The presenter steps to the first question.
        browser.goto(&presenter).await;
        next_until("Reveal the answer").await;

        // The room: no Next, the choices as buttons; a Next sent from there is refused.
        browser.goto(&audience).await;
        let choices = browser
            .wait_for(
                "const v = document.getElementById('vote'); \
                 return !v.hidden && v.querySelectorAll('button').length",
                json!([]),
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(choices, 4);
        let next_button = browser
            .execute("return document.getElementById('next') === null", json!([]))
            .await;
        assert_eq!(next_button, true, "no Next on the audience page");
        let refused = reqwest::Client::new()
            .post(format!("{audience}next"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        browser.click("#vote button:nth-child(3)").await;
        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        browser
            .screenshot(&shots.join("stage-audience-predict.png"))
            .await;

        // The presenter sees the tally, then reveals and runs to the end.
        browser.goto(&presenter).await;
        let tally = browser
            .wait_for(
                "const t = document.getElementById('tally'); \
                 return !t.hidden && t.textContent.includes('c) 1') && t.textContent",
                json!([]),
                Duration::from_secs(30),
            )
            .await;
        assert!(
            tally.as_str().unwrap().starts_with("Votes: a) 0"),
            "{tally}"
        );
        next_until("the end").await;

        // The room saw the whole run, in order.
        browser.goto(&audience).await;
        let answers = browser
            .wait_for(
                "const s = [...document.querySelectorAll('.exchange[data-from=Client][data-to=ResourceServer]')].map(g => g.dataset.status); \
                 return document.body.dataset.finished === 'true' && s",
                json!([]),
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(answers, json!(["403", "200", "401"]));
        browser.quit().await;
    });
    // The stage lingers for its downloads until stopped: dropping the demo stops it.
    drop(demo);
}
