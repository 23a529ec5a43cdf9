//! The client against local HTTPS stand-ins (no Keycloak needed for these properties): the token
//! cache and the single retry, and how transport failures are classified.

mod certificate;
mod retry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use playbook_certs::CertSet;
use playbook_client::{TokenClient, TokenClientConfig};
use url::Url;

#[derive(Default)]
pub struct Counters {
    pub tokens: AtomicU64,
    pub calls: AtomicU64,
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
    // The resource server's TLS: client certificates requested and checked against our CA.
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(
        playbook_resource_server::tls::server_config(
            &certs.ca_pem,
            certs.resource_server.cert_pem(),
            certs.resource_server.key_pem(),
            false,
        )
        .unwrap(),
    );
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
pub async fn setup() -> (tempfile::TempDir, Url, Arc<Counters>, Arc<TokenClient>) {
    let dir = tempfile::tempdir().unwrap();
    let (certs, _) = CertSet::ensure(dir.path(), false).unwrap();
    let (base, counters) = stand_in(&certs).await;
    let config =
        TokenClientConfig::playbook(base.join("/token").unwrap(), &certs.ca_pem, &certs.client);
    let tokens = Arc::new(TokenClient::new(config).unwrap());
    (dir, base, counters, tokens)
}
