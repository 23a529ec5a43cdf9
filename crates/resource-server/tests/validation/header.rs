//! Shape, size and header rules: everything decided before a key is even looked up.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn valid_token_is_accepted() {
    let fx = Fixture::new().await;
    assert_eq!(fx.get(Some(&sign(&fx.claims())), false).await.0, 200);
}

#[tokio::test]
async fn no_token_gets_a_bare_bearer_challenge() {
    let fx = Fixture::new().await;
    let (status, challenge) = fx.get(None, false).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let fx = Fixture::new().await;
    let token = playbook_forge::unsigned(&fx.claims());
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    let fx = Fixture::new().await;
    // The classic confusion attack: the public key (known to all) used as an HMAC secret.
    let token = playbook_forge::hs256(
        &KEY.public_der(),
        &json!({ "alg": "HS256", "kid": KID }),
        &fx.claims(),
    );
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn rs512_is_rejected_when_rs256_is_pinned() {
    let fx = Fixture::new().await;
    let token = sign_with(&KEY, &json!({ "alg": "RS512", "kid": KID }), &fx.claims());
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn unknown_crit_is_rejected() {
    let fx = Fixture::new().await;
    let token = sign_with(
        &KEY,
        &json!({ "alg": "RS256", "kid": KID, "crit": ["exp-ext"], "exp-ext": 1 }),
        &fx.claims(),
    );
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn embedded_jwk_and_jku_cannot_bring_their_own_key() {
    let fx = Fixture::new().await;
    let attacker_jwk = ATTACKER_KEY.jwk("sig");
    let header = json!({ "alg": "RS256", "kid": "attacker", "jwk": attacker_jwk, "jku": "https://attacker.invalid/jwks" });
    let forged = sign_with(&ATTACKER_KEY, &header, &fx.claims());
    assert_invalid_token(fx.get(Some(&forged), false).await);
    // Same header fields on a genuine token: ignored, not trusted and not fatal.
    let header = json!({ "alg": "RS256", "kid": KID, "jwk": attacker_jwk, "jku": "https://attacker.invalid/jwks", "x5u": "https://attacker.invalid/cert" });
    assert_eq!(
        fx.get(Some(&sign_with(&KEY, &header, &fx.claims())), false)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn two_and_four_segments_are_rejected() {
    let fx = Fixture::new().await;
    let token = sign(&fx.claims());
    let parts: Vec<&str> = token.split('.').collect();
    assert_invalid_token(
        fx.get(Some(&format!("{}.{}", parts[0], parts[1])), false)
            .await,
    );
    assert_invalid_token(fx.get(Some(&format!("{token}.{}", parts[2])), false).await);
}

#[tokio::test]
async fn bad_base64_is_rejected() {
    let fx = Fixture::new().await;
    let token = sign(&fx.claims());
    let (head, rest) = token.split_once('.').unwrap();
    assert_invalid_token(fx.get(Some(&format!("{head}*.{rest}")), false).await);
    assert_invalid_token(fx.get(Some(&format!("{token}!")), false).await);
    assert_invalid_token(fx.get(Some("%%%.%%%.%%%"), false).await);
}

#[tokio::test]
async fn oversized_token_is_rejected() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["padding"] = json!("x".repeat(10_000));
    assert_invalid_token(fx.get(Some(&sign(&claims)), false).await);
}

#[tokio::test]
async fn tampered_payload_fails_the_signature() {
    let fx = Fixture::new().await;
    let token = sign(&fx.claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = fx.claims();
    claims["scope"] = json!("users:admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_invalid_token(fx.get(Some(&tampered), false).await);
}
