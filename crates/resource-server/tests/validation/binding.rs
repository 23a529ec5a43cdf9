//! RFC 8705 certificate binding over real mutual TLS.

use playbook_resource_server::BindingMode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn bound_token_with_its_certificate_is_accepted() {
    let fx = Fixture::new().await;
    assert_eq!(fx.get(Some(&sign(&fx.bound_claims())), true).await.0, 200);
}

#[tokio::test]
async fn bound_token_without_a_client_certificate_is_rejected() {
    let fx = Fixture::new().await;
    assert_invalid_token(fx.get(Some(&sign(&fx.bound_claims())), false).await);
}

#[tokio::test]
async fn bound_token_with_another_certificate_is_rejected() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["cnf"] = json!({ "x5t#S256": fx.certs.keycloak.thumbprint_s256() });
    assert_invalid_token(fx.get(Some(&sign(&claims)), true).await);
}

#[tokio::test]
async fn required_mode_rejects_unbound_tokens() {
    let fx = Fixture::with(with_binding(BindingMode::Required)).await;
    assert_invalid_token(fx.get(Some(&sign(&fx.claims())), true).await);
    assert_eq!(fx.get(Some(&sign(&fx.bound_claims())), true).await.0, 200);
}

#[tokio::test]
async fn off_mode_ignores_binding() {
    let fx = Fixture::with(with_binding(BindingMode::Off)).await;
    assert_eq!(fx.get(Some(&sign(&fx.bound_claims())), false).await.0, 200);
}

#[tokio::test]
async fn cnf_of_the_wrong_type_is_invalid() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["cnf"] = json!("bound");
    assert_invalid_token(fx.get(Some(&sign(&claims)), true).await);
}
