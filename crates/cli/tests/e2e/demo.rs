//! `playbook demo`, non-interactive, against a real Keycloak: the README's main command.
//!
//! The demo runs against the run's shared Keycloak as an external one, with the certificates
//! that Keycloak serves: starting Keycloak is the provider's part, tested by every other test.

use serde_json::Value;

use super::{playbook_with, shows_compact_jwt, stderr};

#[test]
fn the_demo_runs_both_lessons_and_the_four_steps_then_exits_0() {
    let realm = playbook_testkit::unique_realm("demo");
    let keycloak = playbook_testkit::run(playbook_testkit::keycloak());
    let certs_dir = playbook_testkit::certs().files.dir();
    let admin = keycloak.admin_credentials();
    let output = playbook_with(
        certs_dir,
        &["demo", "--json", "--api-port", "0"],
        &[
            ("PLAYBOOK_KEYCLOAK_BACKEND", "external"),
            ("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str()),
            ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
            ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
            ("PLAYBOOK_REALM", &realm),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "the demo failed:\n{}",
        stderr(&output)
    );
    let document: Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    assert_eq!(document["outcome"]["ok"], true);
    let events = document["events"].as_array().expect("events");

    // The events are the run's trace: steps, exchanges and lessons, as the stage draws them.
    let exchanges: Vec<&Value> = events.iter().filter(|e| e["kind"] == "exchange").collect();

    // The resource server's answers, in order: lesson 1, step 4, lesson 2.
    let answers: Vec<&Value> = exchanges
        .iter()
        .copied()
        .filter(|e| e["from"] == "Client" && e["to"] == "ResourceServer")
        .collect();
    let statuses: Vec<i64> = answers
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [403, 200, 401]);
    let challenge = |i: usize| answers[i]["www_authenticate"].as_str().unwrap_or_default();
    assert!(
        challenge(0).contains(r#"error="insufficient_scope""#),
        "{}",
        challenge(0)
    );
    assert!(
        challenge(2).contains(r#"error="invalid_token""#),
        "{}",
        challenge(2)
    );
    // The replay presented no certificate; the other calls presented the client's.
    assert!(answers[2]["client_certificate"].is_null());
    assert!(answers[1]["client_certificate"]["thumbprint"].is_string());

    // The tokens Keycloak issued: before the role, and after it.
    let tokens: Vec<&Value> = exchanges
        .iter()
        .filter(|e| e["to"] == "Keycloak" && e["url"].as_str().unwrap().ends_with("/token"))
        .filter_map(|e| {
            e["token"]["claims"]
                .as_object()
                .map(|_| &e["token"]["claims"])
        })
        .collect();
    assert_eq!(tokens.len(), 2);
    let scopes = |t: &Value| t["scope"].as_str().unwrap_or_default().to_owned();
    assert!(!scopes(tokens[0]).split(' ').any(|s| s == "users:read"));
    assert!(scopes(tokens[1]).split(' ').any(|s| s == "users:read"));
    let roles = tokens[1]["realm_access"]["roles"].as_array().unwrap();
    assert!(roles.iter().any(|r| r == "oauth2-playbook-readonly"));

    // Bound to the certificate the demo generated, and the token itself never printed.
    let certs = playbook_certs::CertSet::load(playbook_certs::Files::new(certs_dir))
        .expect("the demo used the run's certificates");
    for token in &tokens {
        assert_eq!(token["cnf"]["x5t#S256"], certs.client.thumbprint_s256());
    }
    // None is printed without --show-token.
    assert!(
        !shows_compact_jwt(&String::from_utf8_lossy(&output.stdout)),
        "a token was printed without --show-token"
    );
}

/// `demo --predict`: before each lesson's answer the room is asked what the resource server will
/// answer, with the same four choices, and the answer comes after the question (in the trace the
/// stage and the hand-outs draw, and on the terminal). With no terminal input the run goes on.
#[test]
fn predict_mode_asks_before_each_lessons_answer() {
    let realm = playbook_testkit::unique_realm("predict");
    let keycloak = playbook_testkit::run(playbook_testkit::keycloak());
    let admin = keycloak.admin_credentials();
    let env = [
        ("PLAYBOOK_KEYCLOAK_BACKEND", "external"),
        ("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str()),
        ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
        ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
        ("PLAYBOOK_REALM", &realm),
    ];
    let certs_dir = playbook_testkit::certs().files.dir();
    let args = ["demo", "--predict", "--json", "--api-port", "0"];
    let output = playbook_with(certs_dir, &args, &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let document: Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    let events = document["events"].as_array().unwrap();
    // Each question, then the next answer of the resource server.
    let order: Vec<String> = (events.iter())
        .filter_map(|e| match e["kind"].as_str() {
            Some("question") => Some("?".to_owned()),
            Some("exchange") if e["to"] == "ResourceServer" && e["from"] == "Client" => {
                Some(e["status"].to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(order, ["?", "403", "200", "?", "401"]);
    let question = events.iter().find(|e| e["kind"] == "question").unwrap();
    assert_eq!(question["choices"].as_array().unwrap().len(), 4);

    // The terminal asks it too, the choices lettered.
    let realm = playbook_testkit::unique_realm("predict-text");
    let mut env = env;
    env[4] = ("PLAYBOOK_REALM", &realm);
    let output = playbook_with(certs_dir, &["demo", "--predict", "--api-port", "0"], &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let asked = text
        .find("? The token was issued before the role was assigned")
        .unwrap();
    let answered = text.find("403 insufficient_scope: authenticated").unwrap();
    assert!(asked < answered, "asked before the answer:\n{text}");
    assert!(text.contains("c) 403 insufficient_scope"), "{text}");
}
