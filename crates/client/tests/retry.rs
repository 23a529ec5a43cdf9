//! The token client's cache and the API client's single retry, against a local HTTPS stand-in
//! that counts what it is asked (no Keycloak needed for these properties).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use playbook_certs::CertSet;
use playbook_client::{ResourceApi, TokenClient, TokenClientConfig};
use url::Url;

#[derive(Default)]
struct Counters {
    tokens: AtomicU64,
    calls: AtomicU64,
}

/// Serves `/token` (a fresh unsigned JWT each time) and `/api/users` (always 401).
async fn stand_in(certs: &CertSet) -> (Url, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let (t, c) = (counters.clone(), counters.clone());
    let app = Router::new()
        .route(
            "/token",
            post(move || {
                let n = t.tokens.fetch_add(1, Ordering::SeqCst);
                let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"n":{n}}}"#));
                async move { Json(serde_json::json!({ "access_token": format!("e30.{payload}.sig"), "expires_in": 300 })) }
            }),
        )
        .route(
            "/api/users",
            get(move || {
                c.calls.fetch_add(1, Ordering::SeqCst);
                async { (axum::http::StatusCode::UNAUTHORIZED, [("www-authenticate", r#"Bearer error="invalid_token""#)]) }
            }),
        );
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        certs.resource_server.cert_pem().as_bytes().to_vec(),
        certs.resource_server.key_pem().as_bytes().to_vec(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
    tokio::spawn(server.serve(app.into_make_service()));
    (
        Url::parse(&format!("https://localhost:{port}/")).unwrap(),
        counters,
    )
}

/// Certificates, the stand-in, and a token client pointed at it.
async fn setup() -> (tempfile::TempDir, Url, Arc<Counters>, Arc<TokenClient>) {
    let dir = tempfile::tempdir().unwrap();
    let (certs, _) = CertSet::ensure(dir.path(), false).unwrap();
    let (base, counters) = stand_in(&certs).await;
    let config =
        TokenClientConfig::playbook(base.join("/token").unwrap(), &certs.ca_pem, &certs.client);
    let tokens = Arc::new(TokenClient::new(config).unwrap());
    (dir, base, counters, tokens)
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_retries_once() {
    let (_dir, base, counters, tokens) = setup().await;
    let api = ResourceApi::new(base, tokens.clone()).unwrap();

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
