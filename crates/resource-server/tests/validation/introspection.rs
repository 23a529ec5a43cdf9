//! Introspection mode against a stand-in introspection endpoint: what is cached and for how
//! long, and that a token is never accepted when the endpoint cannot be asked.

use std::time::Duration;

use playbook_resource_server::IntrospectionConfig;
use serde_json::json;

use crate::support::*;

async fn introspecting(ttl: Duration) -> Fixture {
    Fixture::with(|config| {
        config.introspection = Some(IntrospectionConfig {
            ttl,
            ..IntrospectionConfig::default()
        })
    })
    .await
}

#[tokio::test]
async fn answers_are_reused_for_the_ttl_then_asked_again() {
    let fx = introspecting(Duration::from_secs(1)).await;
    let token = sign(&fx.claims());
    for _ in 0..3 {
        assert_eq!(fx.get(Some(&token), false).await.0, 200);
    }
    assert_eq!(fx.introspections(), 1, "one question per token per TTL");
    fx.set_introspection(Some(false));
    assert_eq!(
        fx.get(Some(&token), false).await.0,
        200,
        "within the TTL, the cached answer stands"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, challenge) = fx.get(Some(&token), false).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("token is not active"), "{challenge}");
    assert_eq!(fx.introspections(), 2);
}

#[tokio::test]
async fn an_answer_is_never_reused_past_the_tokens_expiry() {
    // A TTL far longer than the token: the token's exp bounds the cache.
    let fx = introspecting(Duration::from_secs(600)).await;
    let mut claims = fx.claims();
    let exp = now() + 1;
    claims["exp"] = json!(exp);
    let token = sign(&claims);
    assert_eq!(fx.get(Some(&token), false).await.0, 200);
    fx.set_introspection(Some(false));
    // Past exp, still within the fixture's 5 s leeway: valid locally, so Keycloak is asked.
    sleep_until_unix(exp + 1).await;
    let (status, challenge) = fx.get(Some(&token), false).await;
    assert_eq!(status, 401, "{challenge}");
    assert!(challenge.contains("token is not active"), "{challenge}");
    assert_eq!(fx.introspections(), 2);
}

#[tokio::test]
async fn no_answer_means_503_never_200_and_is_not_cached() {
    let fx = introspecting(Duration::from_secs(60)).await;
    let token = sign(&fx.claims());
    fx.set_introspection(None);
    let response = playbook_https::https_client(&fx.certs.ca_pem)
        .unwrap()
        .get(fx.server.base_url().join("/api/users").unwrap())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        fx.get(Some(&token), false).await.0,
        503,
        "the failure was not cached"
    );
    assert_eq!(fx.introspections(), 2);
    fx.set_introspection(Some(true));
    assert_eq!(
        fx.get(Some(&token), false).await.0,
        200,
        "asked again once it answers"
    );
}

#[tokio::test]
async fn an_invalid_token_is_refused_before_keycloak_is_asked() {
    let fx = introspecting(Duration::from_secs(60)).await;
    let forged = ATTACKER_KEY.sign(&fx.claims());
    assert_invalid_token(fx.get(Some(&forged), false).await);
    assert_eq!(
        fx.introspections(),
        0,
        "local checks come first: no call for a forgery"
    );
}

#[tokio::test]
async fn a_certificate_that_cannot_authenticate_a_client_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, _) = playbook_certs::CertSet::ensure(dir.path(), false).unwrap();
    // What certificate sets made before introspection existed hold: a server-only certificate.
    let server_only = certs
        .authority()
        .unwrap()
        .issue(&playbook_certs::LeafSpec::server(
            playbook_certs::RESOURCE_SERVER_CN,
        ))
        .unwrap();
    let mut config = playbook_resource_server::ServerConfig::new(
        "https://localhost:1/realms/test".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &certs,
    );
    config.cert_pem = server_only.cert_pem().to_owned();
    config.key_pem = server_only.key_pem().to_owned();
    config.introspection = Some(IntrospectionConfig::default());
    let error = playbook_resource_server::server::start(config)
        .await
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("cargo playbook certs --force"),
        "{error}"
    );
}
