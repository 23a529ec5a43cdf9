//! A server that refuses our certificate is a refusal (exit code 3 in the CLI), not an outage
//! (exit code 4). Keycloak's late TLS 1.3 alert is covered by the e2e tests; this stand-in is
//! rustls, which answers a certificate from another CA of the same name with `DecryptError`.

use playbook_certs::{Authority, CLIENT_CN, CertSet, LeafSpec};
use playbook_client::{ClientError, TokenClient, TokenClientConfig};

use super::stand_in;

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, _) = CertSet::ensure(dir.path(), false).unwrap();
    let (base, counters) = stand_in(&certs).await;
    let stranger = Authority::generate()
        .unwrap()
        .issue(&LeafSpec::client(CLIENT_CN))
        .unwrap();
    let config =
        TokenClientConfig::playbook(base.join("/token").unwrap(), &certs.ca_pem, &stranger);
    let tokens = TokenClient::new(config).unwrap();
    for _ in 0..3 {
        let error = tokens.request().await.unwrap_err();
        assert!(
            matches!(error, ClientError::CertificateRefused { .. }) && error.is_refusal(),
            "{error}"
        );
    }
    assert_eq!(counters.tokens.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_that_is_not_there_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, _) = CertSet::ensure(dir.path(), false).unwrap();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = url::Url::parse(&format!("https://localhost:{port}/token")).unwrap();
    let config = TokenClientConfig::playbook(endpoint, &certs.ca_pem, &certs.client);
    let error = TokenClient::new(config)
        .unwrap()
        .request()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Unreachable { .. }) && error.is_unreachable(),
        "{error}"
    );
}
