//! Key lookup: unknown kids, key use, refresh limits, and surviving an issuer outage.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let fx = Fixture::new().await;
    let token = sign_with(
        &KEY,
        &json!({ "alg": "RS256", "kid": "nobody" }),
        &fx.claims(),
    );
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn missing_kid_is_rejected() {
    let fx = Fixture::new().await;
    let token = sign_with(&KEY, &json!({ "alg": "RS256" }), &fx.claims());
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn flood_of_unknown_kids_causes_at_most_one_fetch_per_interval() {
    let fx = Fixture::with(|c| c.min_refresh_interval = Duration::from_secs(3600)).await;
    let before = fx.jwks_fetches();
    let fx = &fx;
    let requests = (0..50).map(|i| {
        let token = sign_with(
            &KEY,
            &json!({ "alg": "RS256", "kid": format!("random-{i}") }),
            &fx.claims(),
        );
        async move { fx.get(Some(&token), false).await }
    });
    for answer in futures::future::join_all(requests).await {
        assert_invalid_token(answer);
    }
    // The first unknown kid fetches (start-up and scheduled fetches do not count against the
    // interval, so a key rotated in just after one is found at once); the others that waited
    // for that fetch use its result.
    assert_eq!(fx.jwks_fetches() - before, 1);
    // One more, after it: nothing is in flight to wait for, so only the interval holds it back.
    let late = sign_with(
        &KEY,
        &json!({ "alg": "RS256", "kid": "random-late" }),
        &fx.claims(),
    );
    assert_invalid_token(fx.get(Some(&late), false).await);
    assert_eq!(fx.jwks_fetches() - before, 1, "within the interval");
}

#[tokio::test]
async fn unknown_kid_refreshes_once_the_interval_has_passed() {
    // Short: this test only waits for it to pass (that a flood within one interval costs one
    // fetch is the test above, with an interval of an hour). A slow machine only waits longer.
    let interval = Duration::from_millis(200);
    let fx = Fixture::with(|c| c.min_refresh_interval = interval).await;
    let before = fx.jwks_fetches();
    let rotated = sign_with(
        &KEY,
        &json!({ "alg": "RS256", "kid": "rotated" }),
        &fx.claims(),
    );
    assert_invalid_token(fx.get(Some(&rotated), false).await);
    assert_eq!(fx.jwks_fetches() - before, 1, "an unknown kid fetches");
    // The issuer publishes the key just after that fetch, as a rotation can.
    fx.rotate_keys(json!({ "keys": [KEY.jwk("sig"), KEY.jwk_as("rotated", "sig")] }));
    tokio::time::sleep(interval).await;
    assert_eq!(fx.get(Some(&rotated), false).await.0, 200);
    assert_eq!(
        fx.jwks_fetches() - before,
        2,
        "once the interval has passed, the same kid fetches again and finds the key"
    );
}

#[tokio::test]
async fn key_with_use_enc_does_not_verify_signatures() {
    let fx = Fixture::new().await;
    let token = sign_with(
        &KEY,
        &json!({ "alg": "RS256", "kid": ENC_KID }),
        &fx.claims(),
    );
    assert_invalid_token(fx.get(Some(&token), false).await);
}

#[tokio::test]
async fn cached_keys_keep_working_when_the_issuer_is_down() {
    let fx = Fixture::with(|c| c.min_refresh_interval = Duration::from_millis(10)).await;
    fx.take_issuer_down();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // An unknown kid makes the server try (and fail) to refresh; the known key must survive it.
    let unknown = sign_with(
        &KEY,
        &json!({ "alg": "RS256", "kid": "rotated" }),
        &fx.claims(),
    );
    assert_invalid_token(fx.get(Some(&unknown), false).await);
    assert_eq!(fx.get(Some(&sign(&fx.claims())), false).await.0, 200);
    assert_eq!(fx.request("/readyz", None, false).await.0, 200);
}

#[tokio::test]
async fn a_remembered_token_is_verified_again_after_a_key_rotation() {
    let fx = Fixture::with(|c| c.min_refresh_interval = Duration::from_millis(10)).await;
    let token = sign(&fx.claims());
    assert_eq!(fx.get(Some(&token), false).await.0, 200);
    assert_eq!(
        fx.get(Some(&token), false).await.0,
        200,
        "served from the verified cache"
    );
    // The issuer retires the key; a token with the new kid makes the server refresh.
    fx.rotate_keys(json!({ "keys": [ATTACKER_KEY.jwk("sig")] }));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new_key_token = ATTACKER_KEY.sign(&fx.claims());
    assert_eq!(fx.get(Some(&new_key_token), false).await.0, 200);
    assert_invalid_token(fx.get(Some(&token), false).await);
}

/// Started before Keycloak, the server keeps trying discovery (every 5 s by default, faster
/// here) instead of exiting: not ready and refusing tokens until the issuer answers, then ready
/// and accepting them.
#[tokio::test]
async fn a_server_started_before_its_issuer_waits_for_it() {
    let fx =
        Fixture::with_issuer_not_started(|c| c.retry_interval = Duration::from_millis(200)).await;
    assert_eq!(fx.request("/readyz", None, false).await.0, 503);
    assert_invalid_token(fx.get(Some(&sign(&fx.claims())), false).await);
    fx.start_issuer();
    let mut ready = 503;
    for _ in 0..60 {
        ready = fx.request("/readyz", None, false).await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(ready, 200, "still not ready 15 s after the issuer came up");
    assert_eq!(fx.get(Some(&sign(&fx.claims())), false).await.0, 200);
}
