//! A 401 renews the token once and retries once; concurrent callers share one token request.

use std::sync::atomic::Ordering;

use playbook_client::ResourceApi;

use super::setup;

#[tokio::test]
async fn a_401_renews_the_token_once_and_retries_once() {
    let (_dir, base, counters, tokens) = setup().await;
    let api = ResourceApi::new(base, tokens.clone());

    let answer = api.get("/api/users").await.unwrap();
    assert_eq!(
        answer.status, 401,
        "the second 401 is returned, not retried again"
    );
    assert_eq!(counters.calls.load(Ordering::SeqCst), 2);
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 2);
    assert_eq!(tokens.requests_made(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() {
    let (_dir, _base, counters, tokens) = setup().await;
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await.unwrap().expose().to_owned() })
        })
        .collect();
    let mut seen = Vec::new();
    for waiter in waiters {
        seen.push(waiter.await.unwrap());
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "everyone got the same token");
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 1);
}
