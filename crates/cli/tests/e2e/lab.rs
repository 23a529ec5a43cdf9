//! The attack lab against the real Keycloak: every scenario, each in its own realm, asserting
//! the statuses and challenges the defences answer, not just that the lab says it held.

use playbook_lab::{Answer, Attempt, Lab, Verdict, scenario};
use playbook_trace::{Party, Trace};

use super::shows_compact_jwt;

/// Runs one scenario on the run's shared Keycloak, recording its exchanges.
fn run(name: &str) -> (Verdict, Trace) {
    playbook_testkit::run(async {
        let admin = playbook_testkit::admin().await;
        let trace = Trace::new();
        let verdict = Lab::new(admin, playbook_testkit::certs(), trace.clone())
            .run(scenario(name).expect("a scenario"))
            .await
            .unwrap_or_else(|e| panic!("scenario {name} could not run: {e}"));
        (verdict, trace)
    })
}

fn statuses(verdict: &Verdict) -> Vec<u16> {
    verdict
        .attempts
        .iter()
        .map(|a| match a.answer {
            Answer::Status { status, .. } => status,
            Answer::NoToken { .. } | Answer::Active { .. } | Answer::Survived { .. } => 0,
        })
        .collect()
}

fn challenge(attempt: &Attempt) -> &str {
    match &attempt.answer {
        Answer::Status {
            www_authenticate: Some(challenge),
            ..
        } => challenge,
        _ => "",
    }
}

#[test]
fn a_stolen_token_with_another_certificate_is_refused_unless_binding_is_off() {
    let (verdict, trace) = run("stolen-token");
    // Each party on its own lifeline: the intruder is not drawn as the client, and the two
    // resource servers are told apart.
    let replays: Vec<(Party, Party, Option<u16>)> = trace
        .snapshot()
        .exchanges()
        .filter(|e| e.path().starts_with("/api/"))
        .map(|e| (e.from, e.to, e.status))
        .collect();
    assert_eq!(
        replays,
        [
            (Party::Intruder, Party::ResourceServer, Some(401)),
            (Party::Intruder, Party::UnboundResourceServer, Some(200)),
        ]
    );
    assert_eq!(statuses(&verdict), [401, 200], "{verdict:#?}");
    assert!(challenge(&verdict.attempts[0]).contains(r#"error="invalid_token""#));
    assert!(
        challenge(&verdict.attempts[0]).contains("certificate"),
        "{}",
        challenge(&verdict.attempts[0])
    );
    assert!(verdict.held());
}

#[test]
fn forged_tokens_are_all_refused() {
    let (verdict, trace) = run("forged-tokens");
    assert_eq!(statuses(&verdict), [401; 6], "{verdict:#?}");
    for attempt in &verdict.attempts {
        assert!(
            challenge(attempt).contains(r#"error="invalid_token""#),
            "{}: {}",
            attempt.tried,
            challenge(attempt)
        );
    }
    // The forgeries really were what they claim: their decoded headers reached the trace.
    let algs: Vec<String> = trace
        .snapshot()
        .exchanges()
        .filter_map(|e| e.token.as_ref())
        .map(|t| t.header["alg"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        algs.contains(&"none".to_owned()) && algs.contains(&"HS256".to_owned()),
        "{algs:?}"
    );
    assert!(verdict.held());
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let (verdict, _) = run("wrong-audience");
    assert_eq!(statuses(&verdict), [401], "{verdict:#?}");
    assert!(
        challenge(&verdict.attempts[0]).contains("audience"),
        "{}",
        challenge(&verdict.attempts[0])
    );
    assert!(verdict.held());
}

#[test]
fn an_expired_token_is_refused_and_the_client_renews_before_expiry() {
    let (verdict, _) = run("expiry");
    assert_eq!(statuses(&verdict), [200, 200, 401], "{verdict:#?}");
    let renewals = &verdict.attempts[1].tried;
    let requests: u32 = renewals
        .rsplit_once('(')
        .and_then(|(_, n)| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no token request count in {renewals:?}"));
    assert!(requests >= 2, "the client's cache renewed: {renewals}");
    assert!(
        challenge(&verdict.attempts[2]).contains("expired"),
        "{}",
        challenge(&verdict.attempts[2])
    );
    assert!(verdict.held());
}

#[test]
fn a_revoked_role_outlives_in_the_old_token_but_not_in_a_new_one() {
    let (verdict, _) = run("role-removed");
    assert_eq!(statuses(&verdict), [200, 200, 403], "{verdict:#?}");
    assert!(challenge(&verdict.attempts[2]).contains(r#"error="insufficient_scope""#));
    assert!(verdict.held());
}

#[test]
fn a_revoked_token_passes_jwks_only_and_fails_introspection() {
    let (verdict, trace) = run("revocation");
    assert_eq!(statuses(&verdict), [200, 200, 401], "{verdict:#?}");
    assert!(
        challenge(&verdict.attempts[2]).contains("not active"),
        "{}",
        challenge(&verdict.attempts[2])
    );
    let run = trace.snapshot();
    let introspections: Vec<String> = run
        .exchanges()
        .filter(|e| e.url.ends_with("/token/introspect"))
        .map(|e| e.answer.clone())
        .collect();
    assert_eq!(introspections, ["active: true", "active: false"]);
    assert!(
        run.exchanges()
            .filter(|e| e.url.ends_with("/token/introspect"))
            .all(|e| e.from == Party::IntrospectingResourceServer)
    );
    assert!(
        run.exchanges()
            .any(|e| e.url.ends_with("/revoke") && e.status == Some(200))
    );
    assert!(verdict.held());
}

#[test]
fn after_key_rotation_old_and_new_tokens_pass_until_the_old_key_is_removed() {
    let (verdict, trace) = run("key-rotation");
    assert_eq!(
        statuses(&verdict),
        [200, 200, 200, 401, 200],
        "{verdict:#?}"
    );
    assert!(
        challenge(&verdict.attempts[3]).contains("unknown signing key"),
        "{}",
        challenge(&verdict.attempts[3])
    );
    // Between the new key's first token and its first use, the resource server fetched the
    // JWKS exactly once.
    let run = trace.snapshot();
    let exchanges: Vec<_> = run.exchanges().collect();
    let token_requests: Vec<usize> = (0..exchanges.len())
        .filter(|&i| exchanges[i].url.ends_with("/token") && exchanges[i].token.is_some())
        .collect();
    let new_token = token_requests[1];
    let first_use = (new_token..exchanges.len())
        .find(|&i| exchanges[i].to == playbook_trace::Party::ResourceServer)
        .unwrap();
    let fetches = exchanges[new_token..first_use]
        .iter()
        .filter(|e| e.from == playbook_trace::Party::ResourceServer && e.url.ends_with("/certs"))
        .count();
    assert_eq!(fetches, 1, "JWKS fetches for the new kid");
    let new_kid = exchanges[new_token].token.as_ref().unwrap().header["kid"].clone();
    let old_kid = exchanges[token_requests[0]].token.as_ref().unwrap().header["kid"].clone();
    assert_ne!(new_kid, old_kid, "new tokens carry the new key's kid");
    assert!(verdict.held());
}

#[test]
fn a_certificate_from_another_ca_gets_no_token_and_one_line() {
    let (verdict, _) = run("foreign-ca");
    match &verdict.attempts[0].answer {
        Answer::NoToken { why } => {
            assert!(!why.contains('\n'), "one line: {why}");
            assert!(why.to_lowercase().contains("certificate"), "{why}");
        }
        other => panic!("a token was issued: {other:?}"),
    }
    assert!(verdict.held());
}

/// Why Keycloak issued no token, for an attempt that got none.
fn no_token_why(attempt: &Attempt) -> &str {
    match &attempt.answer {
        Answer::NoToken { why } => why,
        other => panic!("a token was issued for {:?}: {other:?}", attempt.tried),
    }
}

#[test]
fn a_stolen_secret_gets_tokens_and_a_stolen_public_key_or_certificate_gets_none() {
    let (verdict, trace) = run("stolen-secret");
    assert_eq!(statuses(&verdict), [200, 0, 0], "{verdict:#?}");
    let secret = trace
        .snapshot()
        .exchanges()
        .find(|e| e.path().starts_with("/api/"))
        .map(|e| (e.from, e.client_certificate.is_some(), e.status))
        .unwrap();
    assert_eq!(
        secret,
        (Party::Intruder, false, Some(200)),
        "the thief spends it over a connection without any certificate"
    );
    let key = no_token_why(&verdict.attempts[1]);
    assert!(
        key.contains("oauth2-playbook-client-private-key-jwt"),
        "{key}"
    );
    assert!(
        key.contains("invalid_client") || key.contains("unauthorized_client"),
        "{key}"
    );
    let certificate = no_token_why(&verdict.attempts[2]);
    assert!(
        certificate.contains("without its private key") && certificate.contains("KeyMismatch"),
        "{certificate}"
    );
    assert!(!certificate.contains('\n'), "one line: {certificate}");
    assert!(verdict.held());
}

#[test]
fn a_client_assertion_is_single_use_for_this_server_recent_and_signed_by_the_held_key() {
    let (verdict, trace) = run("replayed-assertion");
    assert_eq!(statuses(&verdict), [200, 0, 0, 0, 0], "{verdict:#?}");
    let [replayed, elsewhere, stale, another_key] =
        [1, 2, 3, 4].map(|i| no_token_why(&verdict.attempts[i]).to_owned());
    assert!(replayed.contains("reuse"), "{replayed}");
    assert!(elsewhere.to_lowercase().contains("audience"), "{elsewhere}");
    assert!(
        stale.contains("not active") || stale.contains("expired") || stale.contains("past"),
        "{stale}"
    );
    assert!(
        another_key.contains("invalid_client") || another_key.contains("unauthorized_client"),
        "{another_key}"
    );
    // Every token request drew its assertion decoded, never the compact JWT.
    let sent: Vec<_> = (trace.snapshot().exchanges())
        .filter_map(|e| e.sent.clone())
        .collect();
    assert_eq!(sent.len(), 5);
    assert!(sent.iter().all(|s| s.assertion.is_some()));
    assert!(!shows_compact_jwt(&serde_json::to_string(&sent).unwrap()));
    assert!(verdict.held());
}

#[test]
fn a_rotated_secret_is_refused_at_once_and_earlier_tokens_live_on() {
    let (verdict, trace) = run("secret-rotation");
    assert_eq!(statuses(&verdict), [0, 200, 200], "{verdict:#?}");
    let old = no_token_why(&verdict.attempts[0]);
    assert!(old.contains("--auth secret"), "says what to do: {old}");
    let token_requests: Vec<Option<u16>> = (trace.snapshot().exchanges())
        .filter(|e| e.path().ends_with("/token"))
        .map(|e| e.status)
        .collect();
    assert_eq!(
        token_requests,
        [Some(200), Some(401), Some(200)],
        "before, the old secret after the rotation, the new one"
    );
    assert!(verdict.held());
}

#[test]
fn a_platform_token_is_accepted_once_and_its_copy_refused() {
    let (verdict, trace) = run("stolen-platform-token");
    assert_eq!(statuses(&verdict), [200, 0], "{verdict:#?}");
    assert!(no_token_why(&verdict.attempts[1]).contains("reuse"));
    let from_platform: Vec<_> = (trace.snapshot().exchanges())
        .filter(|e| e.to == Party::Platform)
        .map(|e| e.status)
        .collect();
    assert_eq!(
        from_platform,
        [Some(200)],
        "the workload's token, drawn from its platform"
    );
    assert!(verdict.held());
}

#[test]
fn platform_tokens_for_another_audience_another_workload_or_an_untrusted_issuer_get_nothing() {
    for (name, refusal) in [
        ("token-for-another-audience", "audience"),
        ("wrong-workload", "Invalid client"),
        ("untrusted-issuer", "Invalid client"),
    ] {
        let (verdict, _) = run(name);
        // The workload's own token first: the trust works, so the refusal is the one check.
        assert_eq!(statuses(&verdict), [200, 0], "{name}: {verdict:#?}");
        let why = no_token_why(&verdict.attempts[1]);
        assert!(why.contains(refusal), "{name}: {why}");
        assert!(verdict.held(), "{name}");
    }
}

#[test]
fn playbook_lab_lists_the_scenarios_and_runs_one_as_json() {
    let certs_dir = playbook_testkit::certs().files.dir();
    let listed = super::playbook(certs_dir, &["lab"]);
    assert_eq!(listed.status.code(), Some(0));
    let list = String::from_utf8_lossy(&listed.stdout);
    for s in &playbook_lab::SCENARIOS {
        assert!(list.contains(s.name), "{} missing from:\n{list}", s.name);
    }

    let keycloak = playbook_testkit::run(playbook_testkit::keycloak());
    let admin = keycloak.admin_credentials();
    let hand_outs = tempfile::tempdir().unwrap();
    let (dir, diagram) = (
        hand_outs.path().join("lab"),
        hand_outs.path().join("whole.mmd"),
    );
    let output = super::playbook_with(
        certs_dir,
        &[
            "lab",
            "stolen-token",
            "--predict",
            "--json",
            "--api-port",
            "0",
            "--export",
            dir.to_str().unwrap(),
            "--export",
            diagram.to_str().unwrap(),
        ],
        &[
            ("PLAYBOOK_KEYCLOAK_BACKEND", "external"),
            ("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str()),
            ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
            ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", super::stderr(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["outcome"]["held"], true);
    let attempts = &document["outcome"]["scenarios"][0]["attempts"];
    assert_eq!(attempts[0]["answer"]["status"], 401, "{attempts}");
    assert_eq!(attempts[1]["answer"]["status"], 200, "{attempts}");
    assert_eq!(document["outcome"]["scenarios"][0]["rfc"], "RFC 8705 §3");
    // --predict: the room is asked before the attack runs.
    let kinds: Vec<&str> = (document["events"].as_array().unwrap().iter())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let asked = kinds
        .iter()
        .position(|k| *k == "question")
        .expect("a question");
    let first_verdict = kinds.iter().position(|k| *k == "verdict").unwrap();
    assert!(asked < first_verdict, "{kinds:?}");
    // The hand-outs: the scenario's page (titled, dated, printable, its verdicts and lesson),
    // its SVG and mermaid, and the whole run's mermaid.
    let page = std::fs::read_to_string(dir.join("stolen-token.html")).unwrap();
    for shown in [
        "<title>The attack lab: stolen-token",
        r#"<p id="context">Exported "#,
        " · Keycloak at https://localhost:",
        "@media print",
        "✓ refused, as it must be",
        "RFC 8705 §3",
    ] {
        assert!(page.contains(shown), "{shown} missing from the hand-out");
    }
    assert!(dir.join("stolen-token.svg").exists() && dir.join("stolen-token.mmd").exists());
    let whole = std::fs::read_to_string(diagram).unwrap();
    assert!(whole.contains("Note over") && whole.contains("✓ accepted, as expected"));
}

/// The tutorial ends with the lab while its Keycloak and resource server still run: the lab must
/// find that Keycloak on its port, sign in with the password `playbook provider` saved (never
/// one on the command line), and give its resource server a free port, saying so.
#[test]
fn beside_the_tutorial_the_lab_uses_its_keycloak_and_saved_password_and_a_free_api_port() {
    let keycloak = playbook_testkit::run(playbook_testkit::keycloak());
    let port = keycloak.base_url().port().expect("a port").to_string();
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    playbook_testkit::copy_certs(&certs_dir);
    playbook_certs::write_private(
        &certs_dir.join("keycloak-admin-password"),
        keycloak.admin_credentials().password.expose().as_bytes(),
    )
    .unwrap();
    // The tutorial's resource server holds 8443 (or something else already does).
    let api_port = playbook_resource_server::DEFAULT_LISTEN.port();
    let _tutorial_api = std::net::TcpListener::bind(("127.0.0.1", api_port));

    let output = super::playbook_with(
        &certs_dir,
        &["lab", "wrong-audience"],
        &[("PLAYBOOK_KEYCLOAK_PORT", &port)],
    );
    let stderr = super::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("port {api_port} is taken")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "using the playbook Keycloak already running at https://localhost:{port}/"
        )),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("refused, as it must be"), "{stdout}");
}

/// A lab hand-out opens offline in a real browser (from a file, nothing fetched) with the
/// scenario's title, its verdicts and its lesson, and prints.
#[test]
fn a_lab_hand_out_opens_offline_in_a_browser() {
    if !playbook_testkit::extras::BROWSER
        .available("lab::a_lab_hand_out_opens_offline_in_a_browser")
    {
        return;
    }
    let keycloak = playbook_testkit::run(playbook_testkit::keycloak());
    let admin = keycloak.admin_credentials();
    let hand_outs = tempfile::tempdir().unwrap();
    let page = hand_outs.path().join("wrong-audience.html");
    let output = super::playbook_with(
        playbook_testkit::certs().files.dir(),
        &[
            "lab",
            "wrong-audience",
            "--api-port",
            "0",
            "--export",
            page.to_str().unwrap(),
        ],
        &[
            ("PLAYBOOK_KEYCLOAK_BACKEND", "external"),
            ("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str()),
            ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
            ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", super::stderr(&output));
    playbook_testkit::run(async {
        let browser = playbook_testkit::browser::Browser::launch()
            .await
            .expect("a headless Chromium");
        browser.goto(&format!("file://{}", page.display())).await;
        let shown = browser
            .execute(
                "return [document.title, document.querySelectorAll('.verdict.held').length, \
                 performance.getEntriesByType('resource').length]",
                serde_json::json!([]),
            )
            .await;
        assert!(
            shown[0]
                .as_str()
                .unwrap()
                .starts_with("The attack lab: wrong-audience"),
            "{shown}"
        );
        assert_eq!(shown[1], 1, "one attempt, held: {shown}");
        assert_eq!(shown[2], 0, "nothing fetched: {shown}");
        let lesson = browser
            .execute(
                "return [...document.querySelectorAll('.lesson text')].map(t => t.textContent).join(' ')",
                serde_json::json!([]),
            )
            .await;
        assert!(lesson.as_str().unwrap().contains("RFC 9068"), "{lesson}");
        browser.quit().await;
    });
}
