//! Claim rules: time, issuer, audience, type, and JSON types.

use serde_json::json;

use crate::support::*;

async fn rejected_with(change: impl FnOnce(&mut serde_json::Value)) {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    change(&mut claims);
    assert_invalid_token(fx.get(Some(&sign(&claims)), false).await);
}

#[tokio::test]
async fn expired_token_is_rejected() {
    rejected_with(|c| c["exp"] = json!(now() - 60)).await;
}

#[tokio::test]
async fn expiry_within_the_leeway_is_accepted() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["exp"] = json!(now() - 2);
    assert_eq!(fx.get(Some(&sign(&claims)), false).await.0, 200);
}

#[tokio::test]
async fn nbf_in_the_future_is_rejected() {
    rejected_with(|c| c["nbf"] = json!(now() + 120)).await;
}

#[tokio::test]
async fn missing_exp_is_rejected() {
    rejected_with(|c| {
        c.as_object_mut().unwrap().remove("exp");
    })
    .await;
}

#[tokio::test]
async fn exp_as_a_string_is_rejected() {
    rejected_with(|c| c["exp"] = json!((now() + 300).to_string())).await;
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    rejected_with(|c| c["iss"] = json!("https://localhost:1/realms/other")).await;
}

#[tokio::test]
async fn issuer_of_the_wrong_type_is_rejected() {
    rejected_with(|c| c["iss"] = json!(["https://localhost/realms/test"])).await;
}

#[tokio::test]
async fn audience_account_only_is_rejected() {
    rejected_with(|c| c["aud"] = json!("account")).await;
}

#[tokio::test]
async fn audience_of_the_wrong_type_is_rejected() {
    rejected_with(|c| c["aud"] = json!({ "oauth2-playbook-resource-server": true })).await;
    rejected_with(|c| c["aud"] = json!(["oauth2-playbook-resource-server", 7])).await;
}

#[tokio::test]
async fn single_string_audience_is_accepted() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["aud"] = json!("oauth2-playbook-resource-server");
    assert_eq!(fx.get(Some(&sign(&claims)), false).await.0, 200);
}

#[tokio::test]
async fn id_and_refresh_tokens_are_rejected() {
    rejected_with(|c| c["typ"] = json!("ID")).await;
    rejected_with(|c| c["typ"] = json!("Refresh")).await;
    rejected_with(|c| {
        c.as_object_mut().unwrap().remove("typ");
    })
    .await;
}

#[tokio::test]
async fn roles_of_the_wrong_type_are_invalid_not_absent() {
    rejected_with(|c| c["realm_access"] = json!(["oauth2-playbook-readonly"])).await;
    rejected_with(|c| c["scope"] = json!(["users:read"])).await;
}

#[tokio::test]
async fn a_remembered_token_still_expires() {
    let fx = Fixture::with(|c| c.leeway = std::time::Duration::ZERO).await;
    let mut claims = fx.claims();
    // Valid for 1-2 s (whole seconds): time for the first request even on a loaded machine.
    let exp = now() + 1;
    claims["exp"] = json!(exp);
    let token = sign(&claims);
    assert_eq!(fx.get(Some(&token), false).await.0, 200);
    // Expired from the first moment after second `exp`: wait for that, not longer.
    sleep_until_unix(exp + 1).await;
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn a_remembered_token_does_not_vouch_for_an_altered_copy() {
    let fx = Fixture::new().await;
    let token = sign(&fx.claims());
    assert_eq!(fx.get(Some(&token), false).await.0, 200);
    // The same header and signature around claims that grant more.
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut claims = fx.claims();
    claims["scope"] = json!("users:read users:admin");
    let altered = format!("{header}.{}.{signature}", b64(&claims));
    assert_invalid_token(fx.get(Some(&altered), false).await);
    // One character in the middle of the signature changed.
    let at = token.len() - 100;
    let other = if &token[at..=at] == "A" { "B" } else { "A" };
    let flipped = format!("{}{other}{}", &token[..at], &token[at + 1..]);
    assert_invalid_token(fx.get(Some(&flipped), false).await);
    assert_eq!(fx.get(Some(&token), false).await.0, 200);
}
