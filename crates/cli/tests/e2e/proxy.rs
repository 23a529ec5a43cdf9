//! The proxy topology against the real Keycloak and the real HAProxy: the demo's steps and
//! lessons through the proxy, each proxy scenario of the attack lab, and nothing left running.
//! Without HAProxy each test prints one `skipped:` line (unless PLAYBOOK_REQUIRE_PROXY or
//! PLAYBOOK_REQUIRE_EXTRAS is set).

use playbook_lab::{Answer, Lab, Verdict, scenario};
use playbook_trace::{Party, Trace};

/// Runs one scenario behind the proxy on the run's proxied Keycloak.
fn run(test: &str, name: &str) -> Option<(Verdict, Trace)> {
    playbook_testkit::run(async {
        let keycloak = playbook_testkit::keycloak_behind_proxy(test).await?;
        let admin = keycloak.admin().expect("an Admin API client");
        let trace = Trace::new();
        trace.through_proxy(keycloak.base_url().as_str());
        let verdict = Lab::new(&admin, playbook_testkit::certs(), trace.clone())
            .behind_proxy(keycloak.direct_url().clone())
            .run(scenario(name).expect("a scenario"))
            .await
            .unwrap_or_else(|e| panic!("scenario {name} could not run: {e}"));
        Some((verdict, trace))
    })
}

/// Each attempt's answer in a line: the status and the challenge's description, or the OAuth
/// error of a refused token request.
fn answers(verdict: &Verdict) -> Vec<String> {
    verdict
        .attempts
        .iter()
        .map(|a| match &a.answer {
            Answer::Status {
                status,
                www_authenticate,
            } => {
                let why = www_authenticate
                    .as_deref()
                    .and_then(|c| c.split("error_description=\"").nth(1))
                    .and_then(|d| d.split('"').next())
                    .unwrap_or_default();
                format!("{status} {why}").trim().to_owned()
            }
            Answer::NoToken { why } => format!("no token: {why}"),
            Answer::Active { active } => format!("active {active}"),
            Answer::Survived { .. } => "survived".to_owned(),
        })
        .collect()
}

#[test]
fn the_demo_runs_its_steps_and_lessons_through_the_proxy_and_leaves_nothing_running() {
    const TEST: &str = "the_demo_runs_its_steps_and_lessons_through_the_proxy";
    let Some(keycloak) = playbook_testkit::run(playbook_testkit::keycloak_behind_proxy(TEST))
    else {
        return;
    };
    let text = super::demo_through(keycloak, "proxy");
    // Keycloak bound both tokens to the certificate the proxy forwarded.
    let thumbprint = playbook_testkit::certs().client.thumbprint_s256();
    assert_eq!(
        text.matches(&format!("cnf.x5t#S256 {thumbprint}")).count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("certificate-bound but no client certificate was presented"),
        "{text}"
    );
    // The resource server's proxy, its configuration named, is gone with the demo.
    let line = text
        .lines()
        .find(|l| l.contains("haproxy in front of the resource server"))
        .unwrap_or_else(|| panic!("the demo names its proxy:\n{text}"));
    let config = line
        .split("configuration: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the proxy's configuration path");
    let config = std::path::Path::new(config.trim());
    assert!(!config.exists(), "{} outlived the demo", config.display());
    let running = std::process::Command::new("pgrep")
        .args(["-f", &config.display().to_string()])
        .output()
        .expect("pgrep runs");
    assert!(
        running.stdout.is_empty(),
        "a proxy outlived the demo: {}",
        String::from_utf8_lossy(&running.stdout)
    );
}

#[test]
fn a_certificate_header_sent_around_the_proxy_to_the_api_is_refused() {
    let Some((verdict, trace)) = run("forged_header_to_api", "forged-header-to-api") else {
        return;
    };
    assert_eq!(
        answers(&verdict),
        [
            "200",
            "401 client certificate header not from the trusted proxy",
        ],
        "{verdict:#?}"
    );
    // The genuine call passed the proxy; the forged one did not.
    let calls: Vec<(Party, Option<Party>)> = trace
        .snapshot()
        .exchanges()
        .filter(|e| e.path().starts_with("/api/"))
        .map(|e| (e.from, e.via))
        .collect();
    assert_eq!(
        calls,
        [(Party::Client, Some(Party::Proxy)), (Party::Intruder, None)]
    );
}

#[test]
fn a_certificate_header_sent_through_the_proxy_is_replaced_by_the_proxys() {
    let Some((verdict, _)) = run("forged_header_through_proxy", "forged-header-through-proxy")
    else {
        return;
    };
    let answers = answers(&verdict);
    assert_eq!(
        answers[..2],
        [
            "401 token is bound to another client certificate",
            "401 token is certificate-bound but no client certificate was presented",
        ],
        "{verdict:#?}"
    );
    assert!(answers[2].contains("401 invalid_client"), "{answers:?}");
    assert!(verdict.held());
}

#[test]
fn a_certificate_header_sent_straight_to_keycloak_gets_no_token() {
    let Some((verdict, _)) = run("forged_header_to_keycloak", "forged-header-to-keycloak") else {
        return;
    };
    let answers = answers(&verdict);
    assert_eq!(answers[0], "200", "{answers:?}");
    assert!(
        answers[1].starts_with("no token: 401 invalid_client"),
        "{answers:?}"
    );
    // From the proxy's own address the same forgery is believed: the refusal above is
    // Keycloak's proxy-trusted-addresses at work, not a malformed header.
    assert_eq!(answers[2], "200", "{answers:?}");
    assert!(verdict.held());
}

#[test]
fn a_stolen_token_stays_bound_end_to_end_behind_the_proxy() {
    let Some((verdict, trace)) = run("stolen_token_behind_proxy", "stolen-token-behind-proxy")
    else {
        return;
    };
    assert_eq!(
        answers(&verdict),
        [
            "200",
            "401 token is bound to another client certificate",
            "401 token is certificate-bound but no client certificate was presented",
        ],
        "{verdict:#?}"
    );
    // Keycloak, reading the proxy's header, bound the token to the client's certificate.
    let thumbprint = playbook_testkit::certs().client.thumbprint_s256();
    let run = trace.snapshot();
    let issued = run
        .exchanges()
        .find(|e| e.to == Party::Keycloak && e.path().ends_with("/token"))
        .and_then(|e| e.token.as_ref())
        .expect("the token request is recorded");
    assert_eq!(issued.x5t_s256(), Some(thumbprint.as_str()));
}
