//! DPoP (RFC 9449) against the real Keycloak: every method but the certificate's gets
//! DPoP-bound tokens naming the client's key, the API serves them with fresh proofs and refuses
//! each bent, replayed, stolen or downgraded presentation with 401 (never 2xx or 5xx), a fresh
//! proof still works after the attacks, Keycloak refuses a DPoP client without a proof, the
//! metadata document says what the server does, and the attack lab's five scenarios hold.

use std::sync::Arc;

use playbook_client::{
    ApiResponse, ClientError, Presenting, ResourceApi, TokenClient, TokenClientConfig,
};
use playbook_dpop::{ProofClaims, ProofKey, unix_now};
use playbook_keycloak::{AuthMethod, TokenBinding};
use playbook_lab::{Answer, Lab, scenario};
use playbook_testkit::{TestRealm, certs, run};
use playbook_trace::Trace;

/// `method`'s client with DPoP-bound tokens, its proofs signed with a key made for the test.
async fn dpop_client(realm: &TestRealm, method: AuthMethod) -> (Arc<TokenClient>, ProofKey) {
    let credential = playbook_client::enrol(&realm.provisioner(), method, TokenBinding::Dpop)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", method.name()));
    let key = ProofKey::generate().unwrap();
    let config =
        TokenClientConfig::playbook(realm.token_endpoint(), &certs().ca_pem, &certs().client)
            .with_credential(credential, &realm.urls())
            .with_dpop_key(key.clone());
    (Arc::new(TokenClient::new(config).unwrap()), key)
}

fn error_of(answer: &ApiResponse) -> String {
    answer.summary()
}

#[test]
fn every_method_but_mtls_gets_a_dpop_bound_token_served_with_fresh_proofs() {
    run(async {
        let realm = TestRealm::new().await;
        let server = realm.resource_server().await;
        for method in AuthMethod::ALL {
            if method == AuthMethod::Mtls {
                continue;
            }
            let (tokens, key) = dpop_client(&realm, method).await;
            let token = tokens
                .token()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", method.name()));
            assert_eq!(
                token.claims.jkt().as_deref(),
                Some(key.thumbprint()),
                "{}",
                method.name()
            );
            assert!(
                token.claims.x5t_s256().is_none(),
                "{}: one binding",
                method.name()
            );
            let api = ResourceApi::new(server.base_url(), tokens.clone());
            let answer = api.get("/api/users").await.unwrap();
            assert_eq!(answer.status, 200, "{}: {answer:?}", method.name());
            // Another route, another proof (its own htu): the proof is accepted and the
            // route's policy decides (this client has users:read only).
            let other = api
                .get("/api/user/00000000-0000-0000-0000-000000000000")
                .await
                .unwrap();
            assert_eq!(other.status, 403, "{}: {other:?}", method.name());
            assert_eq!(error_of(&other), "insufficient_scope");
        }
        server.shutdown().await;
    })
}

#[test]
fn each_refused_dpop_request_gets_401_and_a_fresh_proof_still_works() {
    run(async {
        let realm = TestRealm::new().await;
        let server = realm.resource_server().await;
        let (tokens, key) = dpop_client(&realm, AuthMethod::PrivateKeyJwt).await;
        let token = tokens.token().await.unwrap();
        let token = token.expose();
        let api = ResourceApi::new(server.base_url(), tokens.clone());
        let users = api.url("/api/users").unwrap();
        let fresh = || ProofClaims::new("GET", &users, Some(token), None);
        let sign = |claims: ProofClaims| key.sign(&claims).unwrap();
        let captured = sign(fresh());
        let first = api
            .get_presenting(
                "/api/users",
                token,
                Presenting::Dpop(vec![captured.clone()]),
            )
            .await
            .unwrap();
        assert_eq!(first.status, 200, "{first:?}");
        let thief = ResourceApi::without_certificate(server.base_url(), tokens.clone())
            .unwrap()
            .with_dpop_key(Some(ProofKey::generate().unwrap()));
        let (bearer_tokens, _) = {
            let credential = playbook_client::enrol(
                &realm.provisioner(),
                AuthMethod::Secret,
                TokenBinding::None,
            )
            .await
            .unwrap();
            let config = TokenClientConfig::playbook(
                realm.token_endpoint(),
                &certs().ca_pem,
                &certs().client,
            )
            .with_credential(credential, &realm.urls());
            (Arc::new(TokenClient::new(config).unwrap()), ())
        };
        let bearer = bearer_tokens.token().await.unwrap();
        let keyed = key
            .proof("GET", &users, Some(bearer.expose()), None)
            .unwrap();
        let refusals = [
            (
                "replayed proof",
                api.get_presenting(
                    "/api/users",
                    token,
                    Presenting::Dpop(vec![captured.clone()]),
                )
                .await,
                "invalid_dpop_proof",
            ),
            (
                "a thief's own key",
                thief.get_with("/api/users", token).await,
                "invalid_dpop_proof",
            ),
            (
                "proof for POST",
                api.get_presenting(
                    "/api/users",
                    token,
                    Presenting::Dpop(vec![sign(ProofClaims {
                        htm: "POST".into(),
                        ..fresh()
                    })]),
                )
                .await,
                "invalid_dpop_proof",
            ),
            (
                "proof for another URL",
                api.get_presenting(
                    "/api/users",
                    token,
                    Presenting::Dpop(vec![
                        key.proof("GET", &api.url("/api/user/x").unwrap(), Some(token), None)
                            .unwrap(),
                    ]),
                )
                .await,
                "invalid_dpop_proof",
            ),
            (
                "stale proof",
                api.get_presenting(
                    "/api/users",
                    token,
                    Presenting::Dpop(vec![sign(ProofClaims {
                        iat: unix_now() - 600,
                        ..fresh()
                    })]),
                )
                .await,
                "invalid_dpop_proof",
            ),
            (
                "two proofs",
                api.get_presenting(
                    "/api/users",
                    token,
                    Presenting::Dpop(vec![sign(fresh()), sign(fresh())]),
                )
                .await,
                "invalid_dpop_proof",
            ),
            (
                "no proof",
                api.get_presenting("/api/users", token, Presenting::Dpop(vec![]))
                    .await,
                "invalid_dpop_proof",
            ),
            (
                "downgraded to Bearer",
                api.get_presenting("/api/users", token, Presenting::Bearer)
                    .await,
                "invalid_token",
            ),
            (
                "a bearer token as DPoP",
                api.get_presenting("/api/users", bearer.expose(), Presenting::Dpop(vec![keyed]))
                    .await,
                "invalid_token",
            ),
        ];
        for (what, answer, error) in refusals {
            let answer = answer.unwrap();
            assert_eq!(answer.status, 401, "{what}: {answer:?}");
            assert_eq!(error_of(&answer), error, "{what}: {answer:?}");
        }
        // After all that, the client's next request, with a proof of its own, is served.
        let after = api.get_with("/api/users", token).await.unwrap();
        assert_eq!(after.status, 200, "{after:?}");
        server.shutdown().await;
    })
}

#[test]
fn keycloak_refuses_a_dpop_client_without_a_proof_and_says_what_to_do() {
    run(async {
        let realm = TestRealm::new().await;
        let credential = playbook_client::enrol(
            &realm.provisioner(),
            AuthMethod::SecretPost,
            TokenBinding::Dpop,
        )
        .await
        .unwrap();
        let config =
            TokenClientConfig::playbook(realm.token_endpoint(), &certs().ca_pem, &certs().client)
                .with_credential(credential, &realm.urls())
                .with_binding(TokenBinding::None);
        let refused = TokenClient::new(config).unwrap().token().await.unwrap_err();
        assert!(
            matches!(&refused, ClientError::TokenRefused { .. }),
            "{refused}"
        );
        let line = refused.to_string();
        assert!(line.contains("DPoP proof is missing"), "{line}");
        assert!(line.contains("--bind dpop"), "says what to do: {line}");
    })
}

#[test]
fn the_metadata_document_and_the_challenges_say_what_the_server_checks() {
    run(async {
        let realm = TestRealm::new().await;
        let server = realm
            .resource_server_with(|config| {
                config.binding = playbook_resource_server::BindingMode::RequiredDpop
            })
            .await;
        let http = playbook_https::https_client(&certs().ca_pem).unwrap();
        let url = server
            .base_url()
            .join(playbook_resource_server::api::METADATA)
            .unwrap();
        let document: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(
            document["authorization_servers"][0],
            realm.urls().issuer().as_str()
        );
        assert_eq!(document["dpop_bound_access_tokens_required"], true);
        assert_eq!(
            document["tls_client_certificate_bound_access_tokens"],
            false
        );
        assert_eq!(document["dpop_signing_alg_values_supported"][0], "ES256");
        let (tokens, _) = dpop_client(&realm, AuthMethod::Secret).await;
        let answer = ResourceApi::new(server.base_url(), tokens)
            .get("/api/users")
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        server.shutdown().await;
    })
}

#[test]
fn the_client_command_binds_with_dpop_and_mtls_refuses_it_in_one_line() {
    let realm = run(TestRealm::new());
    let server = run(realm.resource_server());
    let api = server.base_url();
    let dir = tempfile::tempdir().unwrap();
    playbook_testkit::copy_certs(dir.path());
    let output = super::auth::playbook_in(
        &realm,
        dir.path(),
        &[
            "client",
            "--auth",
            "secret",
            "--bind",
            "dpop",
            "--api-url",
            api.as_str(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", super::stderr(&output));
    for shown in [
        "DPoP-bound access token",
        "dpop claims",
        "equal: the proof is signed by the key the token is bound to",
        "200 OK",
    ] {
        assert!(stdout.contains(shown), "{shown} missing from:\n{stdout}");
    }
    let key = std::fs::metadata(dir.path().join("client-dpop-key.pem")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
    let refused = super::auth::playbook_in(
        &realm,
        dir.path(),
        &["client", "--auth", "mtls", "--bind", "dpop"],
    );
    assert_ne!(refused.status.code(), Some(0));
    let said = super::stderr(&refused);
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(said.contains("private-key-jwt"), "{said}");
    run(server.shutdown());
}

#[test]
fn the_labs_dpop_scenarios_hold_with_the_answers_they_teach() {
    let expected: [(&str, &[u16]); 5] = [
        ("dpop-stolen-token", &[200, 401, 200]),
        ("dpop-replayed-proof", &[200, 401, 200]),
        ("dpop-proof-for-another-request", &[200, 401, 401, 401]),
        ("dpop-downgrade", &[401, 200, 401, 401, 200]),
        ("dpop-stale-proof", &[401, 401, 200]),
    ];
    for (name, statuses) in expected {
        let verdict = run(async {
            let admin = playbook_testkit::admin().await;
            Lab::new(admin, certs(), Trace::new())
                .run(scenario(name).expect("a scenario"))
                .await
                .unwrap_or_else(|e| panic!("{name} could not run: {e}"))
        });
        let got: Vec<u16> = (verdict.attempts.iter())
            .map(|a| match a.answer {
                Answer::Status { status, .. } => status,
                _ => 0,
            })
            .collect();
        assert_eq!(got, statuses, "{name}: {:?}", verdict.attempts);
        assert!(verdict.held(), "{name}");
        assert!(verdict.scenario.rfc.starts_with("RFC 9449"), "{name}");
    }
}

#[test]
fn a_server_that_hands_out_nonces_gets_one_retry_with_its_nonce() {
    run(async {
        let realm = TestRealm::new().await;
        let server = realm
            .resource_server_with(|config| config.dpop.nonce = true)
            .await;
        let credential = playbook_client::enrol(
            &realm.provisioner(),
            AuthMethod::SecretJwt,
            TokenBinding::Dpop,
        )
        .await
        .unwrap();
        let trace = Trace::new();
        let mut config =
            TokenClientConfig::playbook(realm.token_endpoint(), &certs().ca_pem, &certs().client)
                .with_credential(credential, &realm.urls())
                .with_dpop_key(ProofKey::generate().unwrap());
        config.trace = trace.clone();
        let api = ResourceApi::new(
            server.base_url(),
            Arc::new(TokenClient::new(config).unwrap()),
        );
        let first = api.get("/api/users").await.unwrap();
        assert_eq!(first.status, 200, "{first:?}");
        // The nonce is kept: the next call needs no second round.
        let second = api.get("/api/users").await.unwrap();
        assert_eq!(second.status, 200, "{second:?}");
        let run = trace.snapshot();
        let answers: Vec<(u16, bool)> = (run.exchanges())
            .filter(|e| e.path() == "/api/users")
            .map(|e| {
                let nonce = e
                    .proof
                    .as_ref()
                    .is_some_and(|p| p.claims["nonce"].is_string());
                (e.status.unwrap_or(0), nonce)
            })
            .collect();
        assert_eq!(
            answers,
            [(401, false), (200, true), (200, true)],
            "{answers:?}"
        );
        server.shutdown().await;
    })
}

/// `demo --profile fapi2 ARGS` against the run's Keycloak in a realm of its own: its output.
fn fapi2_demo(args: &[&str]) -> std::process::Output {
    let realm = playbook_testkit::unique_realm("fapi2");
    let keycloak = run(playbook_testkit::keycloak());
    let admin = keycloak.admin_credentials();
    let mut all = vec!["demo", "--profile", "fapi2", "--json", "--api-port", "0"];
    all.extend_from_slice(args);
    super::playbook_with(
        certs().files.dir(),
        &all,
        &[
            ("PLAYBOOK_KEYCLOAK_BACKEND", "external"),
            ("PLAYBOOK_KEYCLOAK_URL", keycloak.base_url().as_str()),
            ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
            ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
            ("PLAYBOOK_REALM", &realm),
        ],
    )
}

#[test]
fn the_fapi2_profile_refuses_a_secret_client_and_a_bearer_token_then_runs_with_either_binding() {
    for (args, issued) in [
        (
            &["--auth", "private-key-jwt", "--bind", "dpop"][..],
            "DPoP-bound access token",
        ),
        (&[][..], "access token"),
    ] {
        let output = fapi2_demo(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            super::stderr(&output)
        );
        let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let events = document["events"].as_array().unwrap();
        let exchanges: Vec<&serde_json::Value> =
            events.iter().filter(|e| e["kind"] == "exchange").collect();
        // Keycloak refused the secret client's token request, the API the bearer token.
        assert!(
            exchanges.iter().any(|e| e["to"] == "Keycloak"
                && e["status"] == 400
                && e["purpose"]
                    .as_str()
                    .unwrap()
                    .contains("client_secret_basic")),
            "{args:?}"
        );
        let api: Vec<i64> = (exchanges.iter())
            .filter(|e| e["to"] == "ResourceServer")
            .map(|e| e["status"].as_i64().unwrap())
            .collect();
        assert_eq!(api, [401, 403, 200, 401], "{args:?}");
        // The flow's tokens are signed PS256 and bound, as the profile demands.
        let token = (exchanges.iter())
            .find(|e| {
                e["answer"].as_str().unwrap_or("").starts_with(issued)
                    && e["to"] == "Keycloak"
                    && !e["purpose"]
                        .as_str()
                        .unwrap()
                        .contains("client_secret_basic")
            })
            .expect("a token issued");
        assert_eq!(token["token"]["header"]["alg"], "PS256", "{args:?}");
        assert!(token["token"]["claims"]["cnf"].is_object(), "{args:?}");
        let lessons: Vec<&str> = (events.iter())
            .filter(|e| e["kind"] == "lesson")
            .map(|e| e["text"].as_str().unwrap())
            .collect();
        assert!(lessons.iter().any(|l| l.contains("§5.3.2")), "{lessons:?}");
        assert!(lessons.iter().any(|l| l.contains("§5.3.4")), "{lessons:?}");
    }
    let refused = fapi2_demo(&["--auth", "secret"]);
    assert_ne!(refused.status.code(), Some(0));
    let said = super::stderr(&refused);
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(said.contains("--profile fapi2 allows"), "{said}");
}

#[test]
fn the_lab_under_fapi2_holds_and_refuses_what_the_profile_forbids() {
    for name in [
        "stolen-token",
        "key-rotation",
        "replayed-assertion",
        "dpop-stolen-token",
    ] {
        let verdict = run(async {
            let admin = playbook_testkit::admin().await;
            Lab::new(admin, certs(), Trace::new())
                .under_fapi2()
                .run(scenario(name).unwrap())
                .await
                .unwrap_or_else(|e| panic!("{name} could not run under FAPI 2.0: {e}"))
        });
        assert!(verdict.held(), "{name}: {:?}", verdict.attempts);
    }
    let forbidden = run(async {
        let admin = playbook_testkit::admin().await;
        Lab::new(admin, certs(), Trace::new())
            .under_fapi2()
            .run(scenario("stolen-secret").unwrap())
            .await
    });
    let said = forbidden.unwrap_err().to_string();
    assert!(
        said.contains("--profile fapi2") && said.contains("shared secret"),
        "{said}"
    );
}
