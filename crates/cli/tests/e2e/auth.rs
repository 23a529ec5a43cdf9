//! Every way a client proves who it is (`--auth`), against the real Keycloak: each method gets a
//! token and a 200 from the API, only the certificate binds the token (and binding, where
//! required, refuses the others), a rotated secret is refused at once, an assertion cannot be
//! replayed, and a secret never reaches the output.

use std::sync::Arc;

use playbook_client::{ClientError, Credential, ResourceApi, TokenClient, TokenClientConfig};
use playbook_keycloak::{AuthMethod, TokenBinding};
use playbook_resource_server::{BindingMode, RunningServer};
use playbook_testkit::{TestRealm, certs, run};

use super::{playbook_with, shows_compact_jwt, stderr};

/// The realm's client of `method`, with its role and its credential provisioned, its tokens
/// bound as the realm sets the method up.
async fn client_of(realm: &TestRealm, method: AuthMethod) -> (Arc<TokenClient>, Credential) {
    bound_client_of(realm, method, TokenBinding::default_for(method)).await
}

async fn bound_client_of(
    realm: &TestRealm,
    method: AuthMethod,
    binding: TokenBinding,
) -> (Arc<TokenClient>, Credential) {
    // Nothing written to the run's shared certificates directory, which other tests copy.
    let credential = playbook_client::enrol(&realm.provisioner(), method, binding)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", method.name()));
    let client = token_client(realm, credential.clone(), binding);
    (client, credential)
}

fn token_client(
    realm: &TestRealm,
    credential: Credential,
    binding: TokenBinding,
) -> Arc<TokenClient> {
    let config =
        TokenClientConfig::playbook(realm.token_endpoint(), &certs().ca_pem, &certs().client)
            .with_credential(credential, &realm.urls())
            .with_binding(binding);
    Arc::new(TokenClient::new(config).unwrap())
}

#[test]
fn every_method_gets_a_token_and_a_200_and_only_the_certificate_binds_it() {
    run(async {
        let realm = TestRealm::new().await;
        let server = realm.resource_server().await;
        for method in AuthMethod::ALL {
            let (tokens, _) = client_of(&realm, method).await;
            let token = tokens
                .token()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", method.name()));
            assert_eq!(token.claims.azp.as_deref(), Some(method.client_id()));
            assert_eq!(
                token.claims.x5t_s256().is_some(),
                method == AuthMethod::Mtls,
                "{}: cnf {:?}",
                method.name(),
                token.claims.cnf
            );
            let answer = ResourceApi::new(server.base_url(), tokens)
                .get("/api/users")
                .await
                .unwrap();
            assert_eq!(answer.status, 200, "{}: {answer:?}", method.name());
        }
        server.shutdown().await;
    })
}

#[test]
fn a_rotated_secret_is_refused_at_once() {
    run(async {
        let realm = TestRealm::new().await;
        for method in [AuthMethod::Secret, AuthMethod::SecretJwt] {
            let (_, old) = client_of(&realm, method).await;
            let (current, _) = client_of(&realm, method).await;
            current.token().await.unwrap();
            let refused = token_client(&realm, old, TokenBinding::None)
                .token()
                .await
                .unwrap_err();
            assert!(
                matches!(&refused, ClientError::TokenRefused { .. }),
                "{}: {refused}",
                method.name()
            );
            let line = refused.to_string();
            assert!(line.contains(method.client_id()), "{line}");
            assert!(line.contains("--auth"), "says what to do: {line}");
        }
    })
}

/// The CLI against `realm` on the run's Keycloak, as its administrator, certificates in `dir`.
pub(super) fn playbook_in(
    realm: &TestRealm,
    dir: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    playbook_in_env(realm, dir, args, &[])
}

/// [`playbook_in`] with more of the command's environment.
fn playbook_in_env(
    realm: &TestRealm,
    dir: &std::path::Path,
    args: &[&str],
    more: &[(&str, &str)],
) -> std::process::Output {
    let admin = realm.keycloak.admin_credentials();
    let env = [
        ("PLAYBOOK_KEYCLOAK_URL", realm.keycloak.base_url().as_str()),
        ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
        ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
        ("PLAYBOOK_REALM", &realm.name),
    ];
    let env: Vec<_> = env.iter().chain(more).copied().collect();
    playbook_with(dir, args, &env)
}

/// What each method keeps that must never be shown: the secret, or the private key's PEM body
/// (its lines, any of which would be a piece of the key). The federated client keeps nothing:
/// what it must not show is the platform's token, a compact JWT like any other.
fn kept_secrets(certs_dir: &std::path::Path, method: AuthMethod) -> Vec<String> {
    let files = playbook_certs::Files::new(certs_dir);
    let kept = match method {
        AuthMethod::Mtls => files.client_key(),
        AuthMethod::PrivateKeyJwt => files.assertion_key(),
        AuthMethod::Federated => return Vec::new(),
        _ => files.client_secret(method.name()),
    };
    let text = std::fs::read_to_string(&kept).unwrap();
    (text.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .map(String::from)
        .collect()
}

/// The README's promise for every method: how the client authenticated is shown as it crossed
/// the wire (the header, the form, an assertion's decoded claims, the certificate), and what it
/// keeps (a secret, a private key) never appears, not even with `--json` (which carries the
/// run's whole trace); no compact JWT (a token, an assertion) is printed either.
#[test]
fn the_client_command_shows_the_wire_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    playbook_testkit::copy_certs(dir.path());
    let realm = run(TestRealm::new());
    let server = run(realm.resource_server());
    let api = server.base_url();
    for method in AuthMethod::ALL {
        for json in [false, true] {
            let mut args = vec!["client", "--auth", method.name(), "--api-url", api.as_str()];
            if json {
                args.push("--json");
            }
            let output = playbook_in(&realm, dir.path(), &args);
            let name = method.name();
            assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let kept = kept_secrets(dir.path(), method);
            let keeps = method != AuthMethod::Federated;
            assert_eq!(kept.concat().len() >= 16, keeps, "{name}: what it keeps");
            for (what, text) in [("stdout", &stdout), ("stderr", &stderr(&output))] {
                for piece in &kept {
                    assert!(
                        !text.contains(piece.as_str()),
                        "{name} --json={json}: a secret in {what}"
                    );
                }
                assert!(
                    !shows_compact_jwt(text),
                    "{name} --json={json}: a compact JWT in {what}"
                );
            }
            if json {
                continue;
            }
            // The wire, as the terminal draws it.
            let expected: &[&str] = match method {
                AuthMethod::Mtls => &[
                    "client_id=oauth2-playbook-client-credentials-mtls",
                    "CN=mtls-client",
                ],
                AuthMethod::Secret => &["Authorization: Basic ***", "(none presented)"],
                AuthMethod::SecretPost => &["client_secret=***"],
                AuthMethod::SecretJwt => &[r#""alg":"HS256""#, "client_assertion=(signed JWT)"],
                AuthMethod::PrivateKeyJwt => {
                    &[r#""alg":"ES256""#, r#""typ":"client-authentication+jwt""#]
                }
                AuthMethod::Federated => &[
                    "Client         ──▶ Platform",
                    "the workload's identity token",
                    r#""sub":"oauth2-playbook-workload""#,
                    "client_assertion=(signed JWT)",
                ],
            };
            for shown in expected {
                assert!(stdout.contains(shown), "{name}: {shown} not in {stdout}");
            }
        }
    }
    // Bound on request: the certificate on the token request and on the API call, its
    // thumbprint in the token.
    let output = playbook_in(
        &realm,
        dir.path(),
        &[
            "client",
            "--auth",
            "secret",
            "--bind",
            "certificate",
            "--api-url",
            api.as_str(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let thumbprint = certs().client.thumbprint_s256();
    for shown in [
        "certificate presented to bind the token".to_owned(),
        format!("cnf.x5t#S256 {thumbprint}"),
        "Bearer token, same client certificate".to_owned(),
    ] {
        assert!(stdout.contains(&shown), "{shown} not in {stdout}");
    }
    run(server.shutdown());
}

/// How a client authenticates and whether its token is bound are separate: a secret client's
/// token is a plain bearer token, accepted where binding is only checked when present and refused
/// where it is required; any method told to bind gets a token that passes both, and only with
/// the certificate.
#[test]
fn a_secret_clients_bearer_token_is_refused_where_binding_is_required() {
    run(async {
        let realm = TestRealm::new().await;
        let lenient = realm.resource_server().await;
        let strict = realm
            .resource_server_with(|config| config.binding = BindingMode::Required)
            .await;
        let (secret, _) = client_of(&realm, AuthMethod::Secret).await;
        let token = secret.token().await.unwrap();
        assert!(token.claims.x5t_s256().is_none(), "a bearer token");
        let answer = |server: &RunningServer, tokens: &Arc<TokenClient>| {
            ResourceApi::new(server.base_url(), tokens.clone())
        };
        let accepted = answer(&lenient, &secret)
            .get_with("/api/users", token.expose())
            .await
            .unwrap();
        assert_eq!(accepted.status, 200, "{accepted:?}");
        let refused = answer(&strict, &secret)
            .get_with("/api/users", token.expose())
            .await
            .unwrap();
        assert_eq!(refused.status, 401, "{refused:?}");
        assert!(
            (refused.www_authenticate.as_deref().unwrap_or_default()).contains("invalid_token"),
            "{refused:?}"
        );
        // The same client method, told to bind: the certificate rides along on the token request,
        // the token carries its thumbprint and passes where binding is required, and the same
        // token without the certificate is refused even where binding is only checked if present.
        for method in [AuthMethod::Secret, AuthMethod::PrivateKeyJwt] {
            let (bound, _) = bound_client_of(&realm, method, TokenBinding::Certificate).await;
            let token = bound.token().await.unwrap();
            assert_eq!(
                token.claims.x5t_s256(),
                Some(certs().client.thumbprint_s256()),
                "{}: bound to the client certificate",
                method.name()
            );
            let served = answer(&strict, &bound).get("/api/users").await.unwrap();
            assert_eq!(served.status, 200, "{}: {served:?}", method.name());
            let thief =
                ResourceApi::without_certificate(lenient.base_url(), bound.clone()).unwrap();
            let stolen = thief.get_with("/api/users", token.expose()).await.unwrap();
            assert_eq!(stolen.status, 401, "{}: {stolen:?}", method.name());
        }
        let (mtls, _) = client_of(&realm, AuthMethod::Mtls).await;
        let bound = answer(&strict, &mtls).get("/api/users").await.unwrap();
        assert_eq!(bound.status, 200, "{bound:?}");
        lenient.shutdown().await;
        strict.shutdown().await;
    })
}

/// An assertion is single-use: Keycloak remembers its `jti`, so one captured on the wire and
/// sent again is refused, for either assertion method.
#[test]
fn a_replayed_client_assertion_is_refused() {
    run(async {
        let realm = TestRealm::new().await;
        let http = playbook_https::https_client(&certs().ca_pem).unwrap();
        for method in [AuthMethod::SecretJwt, AuthMethod::PrivateKeyJwt] {
            let (_, credential) = client_of(&realm, method).await;
            let mut form = credential
                .form_fields(method.client_id(), realm.issuer().as_str())
                .unwrap();
            form.push(("grant_type", "client_credentials".into()));
            let send = || http.post(realm.token_endpoint()).form(&form).send();
            let first = send().await.unwrap();
            assert_eq!(first.status(), 200, "{}: the first use", method.name());
            let again = send().await.unwrap();
            assert_eq!(again.status(), 400, "{}: the replay", method.name());
            let error: serde_json::Value = again.json().await.unwrap();
            assert_eq!(error["error"], "invalid_client", "{error}");
            assert!(
                error["error_description"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("reuse"),
                "{error}"
            );
        }
    })
}

/// `demo --auth`: the same lessons with a secret client and with the federated one, whose
/// second lesson turns around: their tokens are bearer tokens, so the replay without a
/// certificate is served. Neither the secret nor any compact JWT (a token, the platform's
/// token) reaches the output or the hand-outs, which show the token request as it was sent,
/// masked and decoded.
#[test]
fn the_demo_with_a_secret_or_federated_client_shows_its_token_is_a_bearer_token() {
    let keycloak = run(playbook_testkit::keycloak());
    let admin = keycloak.admin_credentials();
    for (method, sent) in [
        (AuthMethod::SecretPost, "client_secret"),
        (AuthMethod::Federated, "client_assertion claims"),
    ] {
        let name = method.name();
        let dir = tempfile::tempdir().unwrap();
        playbook_testkit::copy_certs(dir.path());
        let realm = playbook_testkit::unique_realm("demo-auth");
        let (hand_out, diagram) = (dir.path().join("run.html"), dir.path().join("run.mmd"));
        let output = playbook_with(
            dir.path(),
            &[
                "demo",
                "--json",
                "--api-port",
                "0",
                "--auth",
                name,
                "--export",
                hand_out.to_str().unwrap(),
                "--export",
                diagram.to_str().unwrap(),
            ],
            &[
                ("PLAYBOOK_KEYCLOAK_BACKEND", "external"),
                ("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str()),
                ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
                ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
                ("PLAYBOOK_REALM", &realm),
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let events = document["events"].as_array().unwrap();
        let statuses: Vec<i64> = (events.iter())
            .filter(|e| {
                e["kind"] == "exchange" && e["from"] == "Client" && e["to"] == "ResourceServer"
            })
            .map(|e| e["status"].as_i64().unwrap())
            .collect();
        assert_eq!(
            statuses,
            [403, 200, 200],
            "{name}: the replay of a bearer token is served"
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("bearer token"), "{name}: the lesson says why");
        let hand_out = std::fs::read_to_string(hand_out).unwrap();
        assert!(
            hand_out.contains("Client authentication, as sent") && hand_out.contains(sent),
            "{name}: the hand-out shows the token request as sent"
        );
        let ran_against = format!(" · client {} · token binding none", method.oauth_name());
        assert!(
            hand_out.contains(&ran_against),
            "{name}: the hand-out says what it ran"
        );
        let diagram = std::fs::read_to_string(diagram).unwrap();
        let kept = kept_secrets(dir.path(), method);
        for shown in [text.into_owned(), stderr(&output), hand_out, diagram] {
            assert!(
                !shows_compact_jwt(&shown),
                "{name}: a compact JWT reached an output"
            );
            for piece in &kept {
                assert!(
                    !shown.contains(piece.as_str()),
                    "{name}: the secret reached an output"
                );
            }
        }
    }
}

/// A client in Keycloak set up for another method than the one asked for: the client command
/// ends with one line naming the mismatch and what to do, exit 3 (a refusal).
#[test]
fn a_client_set_up_for_another_method_is_one_line_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    playbook_testkit::copy_certs(dir.path());
    let realm = run(TestRealm::new());
    run(async {
        let provisioner = realm.provisioner();
        let method = AuthMethod::SecretJwt;
        let path = format!(
            "{}/clients/{}",
            realm.name,
            provisioner.client_uuid(method.client_id()).await.unwrap()
        );
        let mut client: serde_json::Value = realm.admin.get(&path).await.unwrap().unwrap();
        client["clientAuthenticatorType"] = AuthMethod::Secret.keycloak_authenticator().into();
        realm.admin.put(&path, &client).await.unwrap();
    });
    let output = playbook_in(
        &realm,
        dir.path(),
        &["client", "--auth", AuthMethod::SecretJwt.name()],
    );
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {text}");
    assert!(
        errors[0].contains("oauth2-playbook-client-secret-jwt")
            && errors[0].contains("another method"),
        "{}",
        errors[0]
    );
}

/// Workload identity through a real SPIFFE issuer: SPIRE's server and agent, started by the
/// client command, the JWT-SVID fetched from the agent's Workload API as the assertion; Keycloak
/// trusts SPIRE's bundle endpoint. Nothing of SPIRE outlives the command, and no SVID or token
/// reaches the output whole.
#[test]
fn the_federated_client_gets_a_token_with_a_real_jwt_svid_from_spire() {
    const TEST: &str = "auth::the_federated_client_gets_a_token_with_a_real_jwt_svid_from_spire";
    if !playbook_testkit::extras::SPIRE.available(TEST) {
        return;
    }
    let realm = run(TestRealm::new());
    if realm.keycloak.backend_name() == "container" {
        eprintln!(
            "skipped: {TEST} needs Keycloak outside a container (it fetches SPIRE's bundle endpoint on this machine's loopback)"
        );
        return;
    }
    let server = run(realm.resource_server());
    let api = server.base_url();
    let dir = tempfile::tempdir().unwrap();
    playbook_testkit::copy_certs(dir.path());
    // SPIRE's directory goes there, so that only this test's SPIRE is looked for at the end (the
    // lab's tests and the executed docs run theirs meanwhile). Not deeper: its agent's socket
    // path must fit in 107 bytes.
    let temp = dir.path();
    for json in [false, true] {
        let mut args = vec![
            "client",
            "--auth",
            "federated",
            "--platform",
            "spiffe",
            "--api-url",
            api.as_str(),
        ];
        if json {
            args.push("--json");
        }
        let output = playbook_in_env(
            &realm,
            dir.path(),
            &args,
            &[("TMPDIR", temp.to_str().unwrap())],
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        for shown in [
            playbook_keycloak::spiffe::ASSERTION_TYPE.to_owned(),
            playbook_keycloak::spiffe::workload_id(),
            playbook_keycloak::spiffe::CLIENT_ID.to_owned(),
        ] {
            assert!(
                stdout.contains(&shown),
                "--json={json}: {shown} not in {stdout}"
            );
        }
        if !json {
            assert!(stdout.contains("200 OK"), "{stdout}");
        }
        for (what, text) in [("stdout", &stdout), ("stderr", &stderr(&output))] {
            assert!(
                !shows_compact_jwt(text),
                "--json={json}: a whole JWT in {what}"
            );
        }
    }
    let running = std::process::Command::new("pgrep")
        .args(["-f", &format!("{}/oauth2-playbook-spire-", temp.display())])
        .output()
        .expect("pgrep runs");
    assert!(
        running.stdout.is_empty(),
        "SPIRE outlived the command: {}",
        String::from_utf8_lossy(&running.stdout)
    );
    run(server.shutdown());
}
