//! The mutual-TLS client-credentials grant, straight against Keycloak's token endpoint.

use playbook_certs::{Authority, CLIENT_CN, LeafSpec};
use playbook_client::{ClientError, TokenClient, TokenClientConfig};
use playbook_keycloak::{READONLY_ROLE, RESOURCE_SERVER_CLIENT_ID, USERS_READ};
use playbook_testkit::{TestRealm, certs, run};

fn token_client(realm: &TestRealm, identity: &playbook_certs::Leaf) -> TokenClient {
    let config = TokenClientConfig::playbook(realm.token_endpoint(), &certs().ca_pem, identity);
    TokenClient::new(config).expect("token client")
}

#[test]
fn token_after_role_assignment_carries_scope_audience_role_and_binding() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        let token = token_client(&realm, &certs().client)
            .request()
            .await
            .expect("a token");
        let claims = &token.claims;
        assert_eq!(claims.iss.as_deref(), Some(realm.issuer().as_str()));
        assert!(
            claims
                .audiences()
                .iter()
                .any(|a| a == RESOURCE_SERVER_CLIENT_ID),
            "{claims:?}"
        );
        assert!(
            claims.scopes().iter().any(|s| s == USERS_READ),
            "{claims:?}"
        );
        assert!(
            claims.realm_roles().iter().any(|r| r == READONLY_ROLE),
            "{claims:?}"
        );
        assert_eq!(claims.typ.as_deref(), Some("Bearer"));
        assert_eq!(claims.x5t_s256(), Some(certs().client.thumbprint_s256()));
    })
}

#[test]
fn token_before_role_assignment_has_neither_scope_nor_role() {
    run(async {
        let realm = TestRealm::new().await;
        let token = token_client(&realm, &certs().client)
            .request()
            .await
            .expect("a token");
        assert!(
            !token.claims.scopes().iter().any(|s| s == USERS_READ),
            "{:?}",
            token.claims
        );
        assert!(
            !token
                .claims
                .realm_roles()
                .iter()
                .any(|r| r == READONLY_ROLE)
        );
        // Still addressed to the resource server, which can therefore answer 403, not 401.
        assert!(
            token
                .claims
                .audiences()
                .iter()
                .any(|a| a == RESOURCE_SERVER_CLIENT_ID)
        );
    })
}

#[test]
fn token_request_without_client_certificate_is_refused() {
    run(async {
        let realm = TestRealm::new().await;
        let http = playbook_https::https_client(&certs().ca_pem).unwrap();
        let response = http
            .post(realm.token_endpoint())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", playbook_keycloak::CLIENT_ID),
                ("scope", USERS_READ),
            ])
            .send()
            .await
            .expect("Keycloak answers");
        assert_eq!(
            response.status().as_u16(),
            401,
            "{:?}",
            response.text().await
        );
    })
}

#[test]
fn certificate_from_another_ca_is_refused() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        let stranger = Authority::generate()
            .unwrap()
            .issue(&LeafSpec::client(CLIENT_CN))
            .unwrap();
        // Keycloak's alert often arrives after the request was sent (TLS 1.3), so a single
        // attempt could be classified right by luck: every one of twenty must be a refusal.
        let client = token_client(&realm, &stranger);
        for _ in 0..20 {
            let refused = client.request().await.unwrap_err();
            assert!(
                matches!(
                    refused,
                    ClientError::TokenRefused { status: 401, .. }
                        | ClientError::CertificateRefused { .. }
                ),
                "{refused}"
            );
        }
    })
}

#[test]
fn certificate_with_another_common_name_is_refused() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        // Signed by the CA Keycloak trusts, so only the subject DN check can refuse it.
        let ca = certs().authority().unwrap();
        let other = ca
            .issue(&LeafSpec::client("mtls-client-other.local"))
            .unwrap();
        let refused = token_client(&realm, &other).request().await.unwrap_err();
        assert!(
            matches!(refused, ClientError::TokenRefused { status: 401, .. }),
            "{refused}"
        );
    })
}
