//! RFC 9449 at the resource server: the `DPoP` scheme beside `Bearer`, each check of a proof
//! refusing with its own challenge, the downgrade both ways, the binding modes, the nonce, and
//! the RFC 9728 metadata that says all of it.

use playbook_dpop::{ProofClaims, ProofKey, ath};
use playbook_resource_server::BindingMode;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// The client's key, and a token bound to it.
fn bound(fx: &Fixture) -> (ProofKey, String) {
    let key = ProofKey::generate().unwrap();
    let mut claims = fx.claims();
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    (key, sign(&claims))
}

fn dpop(token: &str) -> String {
    format!("DPoP {token}")
}

/// A fresh proof for `GET path` with `token`.
fn proof(fx: &Fixture, key: &ProofKey, path: &str, token: &str) -> String {
    key.proof("GET", &fx.url(path), Some(token), None).unwrap()
}

fn assert_bad_proof(answer: &Answered, why: &str) {
    assert_eq!(answer.status, 401, "{answer:?}");
    let challenge = answer.challenge("DPoP").expect("a DPoP challenge");
    assert!(
        challenge.contains(r#"error="invalid_dpop_proof""#),
        "{challenge}"
    );
    assert!(challenge.contains(why), "{why}: {challenge}");
    assert!(challenge.contains("algs=\""), "{challenge}");
    // The Bearer challenge beside it carries no error: the client did not use that scheme.
    assert!(!answer.challenge("Bearer").unwrap().contains("error="));
}

#[tokio::test]
async fn a_dpop_bound_token_with_a_fresh_proof_is_accepted_once_per_proof() {
    let fx = Fixture::new().await;
    let (key, token) = bound(&fx);
    let first = proof(&fx, &key, "/api/users", &token);
    let ok = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&first])
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    // The same proof again is a replay (section 11.1); a fresh one works again.
    let replayed = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&first])
        .await;
    assert_bad_proof(&replayed, "used before");
    let again = proof(&fx, &key, "/api/users", &token);
    let ok = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&again])
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn each_check_of_the_proof_refuses_for_its_reason() {
    let fx = Fixture::new().await;
    let (key, token) = bound(&fx);
    let users = fx.url("/api/users");
    let send = |proofs: Vec<String>| {
        let token = token.clone();
        let fx = &fx;
        async move {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            fx.send(Method::GET, "/api/users", Some(&dpop(&token)), &proofs)
                .await
        }
    };
    let fresh = || ProofClaims::new("GET", &users, Some(&token), None);
    // No proof, two proofs.
    assert_bad_proof(&send(vec![]).await, "exactly one");
    let two = vec![
        proof(&fx, &key, "/api/users", &token),
        proof(&fx, &key, "/api/users", &token),
    ];
    assert_bad_proof(&send(two).await, "exactly one");
    // Made for another request: method, URL.
    let post = key
        .sign(&ProofClaims {
            htm: "POST".into(),
            ..fresh()
        })
        .unwrap();
    assert_bad_proof(&send(vec![post]).await, "another method");
    let other = proof(&fx, &key, "/api/user/1", &token);
    assert_bad_proof(&send(vec![other]).await, "another URL");
    // Old, or for another token.
    let stale = key
        .sign(&ProofClaims {
            iat: now() - 600,
            ..fresh()
        })
        .unwrap();
    assert_bad_proof(&send(vec![stale]).await, "window");
    let other_token = key
        .sign(&ProofClaims {
            ath: Some(ath("another")),
            ..fresh()
        })
        .unwrap();
    assert_bad_proof(&send(vec![other_token]).await, "ath");
    // A thief's own key: the proof is valid, but not by the key the token names.
    let thief = ProofKey::generate().unwrap();
    let stolen = proof(&fx, &thief, "/api/users", &token);
    assert_bad_proof(&send(vec![stolen]).await, "another key");
    // The query is not part of htu: a proof for the path holds with any query.
    let query = proof(&fx, &key, "/api/users", &token);
    let ok = fx
        .send(
            Method::GET,
            "/api/users?page=2",
            Some(&dpop(&token)),
            &[&query],
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test]
async fn a_bound_token_as_bearer_and_a_bearer_token_as_dpop_are_refused() {
    let fx = Fixture::new().await;
    let (key, token) = bound(&fx);
    // Downgrade (section 7.2): the DPoP-bound token without its proof, as a bearer token.
    let downgraded = fx
        .send(
            Method::GET,
            "/api/users",
            Some(&format!("Bearer {token}")),
            &[],
        )
        .await;
    assert_eq!(downgraded.status, 401);
    let challenge = downgraded.challenge("Bearer").unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        challenge.contains("presented as a bearer token"),
        "{challenge}"
    );
    // A bearer token under the DPoP scheme, even with a valid proof of some key.
    let bearer = sign(&fx.claims());
    let proof = proof(&fx, &key, "/api/users", &bearer);
    let answer = fx
        .send(Method::GET, "/api/users", Some(&dpop(&bearer)), &[&proof])
        .await;
    assert_eq!(answer.status, 401);
    let challenge = answer.challenge("DPoP").unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains("not DPoP-bound"), "{challenge}");
}

#[tokio::test]
async fn binding_modes_require_what_they_name() {
    let bearer_ok = |fx: &Fixture| sign(&fx.claims());
    // required-dpop: no Bearer scheme at all, so the only challenge is DPoP's.
    let fx = Fixture::with(with_binding(BindingMode::RequiredDpop)).await;
    let answer = fx
        .send(
            Method::GET,
            "/api/users",
            Some(&format!("Bearer {}", bearer_ok(&fx))),
            &[],
        )
        .await;
    assert_eq!(answer.status, 401);
    assert!(answer.challenge("Bearer").is_none(), "{answer:?}");
    assert!(answer.challenge("DPoP").unwrap().contains("not DPoP-bound"));
    let (key, token) = bound(&fx);
    let proof_ok = proof(&fx, &key, "/api/users", &token);
    assert_eq!(
        fx.send(Method::GET, "/api/users", Some(&dpop(&token)), &[&proof_ok])
            .await
            .status,
        200
    );
    // required-mtls: DPoP is not spoken, so a DPoP token is "no token" and gets bare challenges.
    let fx = Fixture::with(with_binding(BindingMode::RequiredMtls)).await;
    let (key, token) = bound(&fx);
    let proof_ok = proof(&fx, &key, "/api/users", &token);
    let answer = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&proof_ok])
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.challenges.len(), 1, "{answer:?}");
    assert!(!answer.challenges[0].contains("error="), "{answer:?}");
    // required: either binding, never none.
    let fx = Fixture::with(with_binding(BindingMode::Required)).await;
    let (key, token) = bound(&fx);
    let proof_ok = proof(&fx, &key, "/api/users", &token);
    assert_eq!(
        fx.send(Method::GET, "/api/users", Some(&dpop(&token)), &[&proof_ok])
            .await
            .status,
        200
    );
    let answer = fx
        .send(
            Method::GET,
            "/api/users",
            Some(&format!("Bearer {}", bearer_ok(&fx))),
            &[],
        )
        .await;
    assert!(
        answer
            .challenge("Bearer")
            .unwrap()
            .contains("not sender-constrained")
    );
    // off: the stolen DPoP token works as a bearer token; that is what "off" shows.
    let fx = Fixture::with(with_binding(BindingMode::Off)).await;
    let (_, token) = bound(&fx);
    let answer = fx
        .send(
            Method::GET,
            "/api/users",
            Some(&format!("Bearer {token}")),
            &[],
        )
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn with_nonces_a_proof_needs_the_servers_current_one() {
    let fx = Fixture::with(|config| config.dpop.nonce = true).await;
    let (key, token) = bound(&fx);
    let without = proof(&fx, &key, "/api/users", &token);
    let asked = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&without])
        .await;
    assert_eq!(asked.status, 401);
    assert!(
        asked
            .challenge("DPoP")
            .unwrap()
            .contains(r#"error="use_dpop_nonce""#)
    );
    let nonce = asked.nonce.expect("a DPoP-Nonce header");
    let with = key
        .proof("GET", &fx.url("/api/users"), Some(&token), Some(&nonce))
        .unwrap();
    let ok = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&with])
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let made_up = key
        .proof("GET", &fx.url("/api/users"), Some(&token), Some("made-up"))
        .unwrap();
    let refused = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&made_up])
        .await;
    assert!(
        refused
            .challenge("DPoP")
            .unwrap()
            .contains("use_dpop_nonce")
    );
}

#[tokio::test]
async fn the_metadata_says_what_the_running_configuration_does() {
    for mode in BindingMode::ALL {
        let fx = Fixture::with(with_binding(mode)).await;
        let answer = fx
            .send(
                Method::GET,
                playbook_resource_server::api::METADATA,
                None,
                &[],
            )
            .await;
        assert_eq!(answer.status, 200);
        let document: Value = serde_json::from_str(&answer.body).unwrap();
        let origin = fx.url("/").origin().ascii_serialization();
        assert_eq!(document["resource"], origin.as_str());
        assert_eq!(document["authorization_servers"], json!([fx.issuer]));
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
        assert_eq!(
            document["dpop_bound_access_tokens_required"],
            mode == BindingMode::RequiredDpop
        );
        assert_eq!(
            document["tls_client_certificate_bound_access_tokens"],
            matches!(
                mode,
                BindingMode::WhenPresent | BindingMode::Required | BindingMode::RequiredMtls
            ),
            "{mode:?}"
        );
        let algs = &document["dpop_signing_alg_values_supported"];
        assert_eq!(
            algs.is_null(),
            mode == BindingMode::RequiredMtls,
            "{mode:?}"
        );
        // Every challenge points at this document.
        let refused = fx.send(Method::GET, "/api/users", None, &[]).await;
        let expected =
            format!(r#"resource_metadata="{origin}/.well-known/oauth-protected-resource""#);
        assert!(
            refused.challenges.iter().all(|c| c.contains(&expected)),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn the_fapi2_profile_takes_no_rs256_token_and_no_token_from_the_query() {
    let fx = Fixture::with(|config| config.fapi2()).await;
    // FAPI 2.0 §5.4: PS256, ES256 (EdDSA) only; the fixture's issuer signs RS256.
    let (key, token) = bound(&fx);
    let proof = proof(&fx, &key, "/api/users", &token);
    let answer = fx
        .send(Method::GET, "/api/users", Some(&dpop(&token)), &[&proof])
        .await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .challenge("DPoP")
            .unwrap()
            .contains("signature algorithm not accepted"),
        "{answer:?}"
    );
    // §5.3.4: a token in the query is no token at all (bare challenges, no error).
    let path = format!("/api/users?access_token={}", sign(&fx.bound_claims()));
    let answer = fx.send(Method::GET, &path, None, &[]).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.challenges.iter().all(|c| !c.contains("error=")),
        "{answer:?}"
    );
    // The metadata says what the profile demands.
    let metadata = fx
        .send(
            Method::GET,
            playbook_resource_server::api::METADATA,
            None,
            &[],
        )
        .await;
    let document: Value = serde_json::from_str(&metadata.body).unwrap();
    assert_eq!(
        document["dpop_signing_alg_values_supported"],
        json!(["PS256", "ES256", "EdDSA"])
    );
}

#[tokio::test]
async fn a_host_header_that_tls_did_not_name_cannot_choose_the_proofs_origin() {
    let fx = Fixture::new().await;
    let (key, token) = bound(&fx);
    // A proof made for another server, sent here with that server's name in Host: the TLS
    // handshake named localhost (SNI), so the request is malformed, not a match.
    let elsewhere = url::Url::parse("https://api.elsewhere.example/api/users").unwrap();
    let proof = key.proof("GET", &elsewhere, Some(&token), None).unwrap();
    let (status, _) = fx
        .request_as(
            "/api/users",
            None,
            None,
            &[
                ("host", "api.elsewhere.example"),
                ("authorization", &dpop(&token)),
                ("dpop", &proof),
            ],
        )
        .await;
    assert_eq!(status, 400);
}
