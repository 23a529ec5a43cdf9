//! The resource server validating real Keycloak tokens.

use playbook_client::ResourceApi;
use playbook_testkit::{TestRealm, certs, run};

#[test]
fn token_with_role_and_scope_reads_users() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        let server = realm.resource_server().await;
        let api = ResourceApi::new(server.base_url(), realm.token_client());
        let answer = api.get("/api/users").await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(
            answer
                .body
                .as_array()
                .is_some_and(|users| !users.is_empty()),
            "{answer:?}"
        );
        server.shutdown().await;
    })
}

#[test]
fn token_issued_before_the_role_was_assigned_is_forbidden() {
    run(async {
        let realm = TestRealm::new().await;
        let tokens = realm.token_client();
        let early = tokens.request().await.unwrap();
        realm.grant_readonly_role().await;
        let server = realm.resource_server().await;
        let api = ResourceApi::new(server.base_url(), tokens);
        let answer = api.get_with("/api/users", early.expose()).await.unwrap();
        assert_eq!(answer.status, 403, "{answer:?}");
        let challenge = answer.www_authenticate.unwrap_or_default();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        server.shutdown().await;
    })
}

#[test]
fn bound_token_replayed_without_the_client_certificate_is_rejected() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        let token = realm.token_client().request().await.unwrap();
        let server = realm.resource_server().await;
        // Same token, same CA trust, but a connection without the client certificate.
        let http = playbook_https::https_client(&certs().ca_pem).unwrap();
        let response = http
            .get(server.base_url().join("/api/users").unwrap())
            .bearer_auth(token.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        server.shutdown().await;
    })
}

#[test]
fn loaded_keys_keep_validating_when_keycloak_no_longer_serves_them() {
    run(async {
        // The run shares one Keycloak, so the outage is this realm's alone: once it is gone
        // (retired: renamed, on the run's Keycloak), Keycloak answers 404 for its discovery
        // document and JWKS.
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        let tokens = realm.token_client();
        let token = tokens.request().await.unwrap();
        let server = realm.resource_server().await;
        let api = ResourceApi::new(server.base_url(), tokens);
        let call = || api.get_with("/api/users", token.expose());
        assert_eq!(call().await.unwrap().status, 200);

        realm.admin.retire_realm(&realm.name).await.unwrap();
        let jwks = playbook_https::https_client(&certs().ca_pem)
            .unwrap()
            .get(realm.urls().jwks())
            .send()
            .await
            .unwrap();
        assert_eq!(
            jwks.status(),
            404,
            "the realm's keys are gone from Keycloak"
        );
        let answer = call().await.unwrap();
        assert_eq!(
            answer.status, 200,
            "cached keys must survive the outage: {answer:?}"
        );
        server.shutdown().await;
    })
}
