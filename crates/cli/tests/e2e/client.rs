//! The client library through the whole flow, against Keycloak and the resource server.

use std::sync::Arc;

use playbook_client::ResourceApi;
use playbook_keycloak::USERS_READ;
use playbook_keycloak::{Assignment, Revocation};
use playbook_testkit::{TestRealm, run};
use serde_json::json;

#[test]
fn forbidden_before_provisioning_allowed_after() {
    run(async {
        let realm = TestRealm::new().await;
        let server = realm.resource_server().await;
        let tokens = realm.token_client();
        let api = ResourceApi::new(server.base_url(), tokens.clone());
        assert_eq!(api.get("/api/users").await.unwrap().status, 403);

        assert_eq!(realm.grant_readonly_role().await, Assignment::Assigned);
        tokens.forget().await;
        let answer = api.get("/api/users").await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        server.shutdown().await;
    })
}

#[test]
fn provisioning_twice_is_a_no_op_and_revoking_takes_the_scope_away() {
    run(async {
        let realm = TestRealm::new().await;
        assert_eq!(realm.grant_readonly_role().await, Assignment::Assigned);
        assert_eq!(
            realm.grant_readonly_role().await,
            Assignment::AlreadyAssigned
        );

        assert_eq!(realm.revoke_readonly_role().await, Revocation::Revoked);
        assert_eq!(realm.revoke_readonly_role().await, Revocation::NotAssigned);
        let server = realm.resource_server().await;
        let tokens = realm.token_client();
        let token = tokens.token().await.unwrap();
        assert!(
            !token.claims.scopes().iter().any(|s| s == USERS_READ),
            "{:?}",
            token.claims
        );
        let api = ResourceApi::new(server.base_url(), tokens);
        let answer = api.get("/api/users").await.unwrap();
        assert_eq!(answer.status, 403, "{answer:?}");
        assert!(answer.error_for_status().unwrap_err().is_refusal());
        server.shutdown().await;
    })
}

#[test]
fn a_hundred_calls_make_exactly_one_token_request() {
    run(async {
        let realm = TestRealm::new().await;
        // Keycloak's own record of token grants, to check the client's counter against.
        realm
            .admin
            .put(
                &format!("{}/events/config", realm.name),
                &json!({ "eventsEnabled": true, "enabledEventTypes": ["CLIENT_LOGIN"], "eventsListeners": ["jboss-logging"] }),
            )
            .await
            .unwrap();
        realm.grant_readonly_role().await;
        let server = realm.resource_server().await;
        let tokens = realm.token_client();
        let api = Arc::new(ResourceApi::new(server.base_url(), tokens.clone()));
        let calls = (0..100).map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get("/api/users").await.unwrap().status })
        });
        for status in futures_join(calls).await {
            assert_eq!(status, 200);
        }
        assert_eq!(tokens.requests_made(), 1);
        let events = client_logins(&realm).await;
        assert_eq!(
            events.len(),
            1,
            "Keycloak saw {} client-credentials grants",
            events.len()
        );
        // The event count does move when the client really asks again.
        tokens.request().await.unwrap();
        let events = client_logins(&realm).await;
        assert_eq!(events.len(), 2);
        server.shutdown().await;
    })
}

/// Keycloak's record of client-credentials grants in the realm.
async fn client_logins(realm: &TestRealm) -> Vec<serde_json::Value> {
    realm
        .admin
        .get(&format!("{}/events?type=CLIENT_LOGIN&max=1000", realm.name))
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        results.push(task.await.unwrap());
    }
    results
}
