//! Behind a reverse proxy: the client certificate comes from the proxy's RFC 9440 `Client-Cert`
//! header, believed only from the proxy (by its certificate, or by its address), over real TLS.

use base64::Engine;
use playbook_certs::der::to_forwarded as header_of;
use playbook_certs::{Authority, LeafSpec};
use playbook_resource_server::ProxyTrust;

use crate::support::*;

async fn by_certificate() -> Fixture {
    Fixture::behind_proxy(|certs| ProxyTrust::Certificate {
        thumbprint: certs.proxy().unwrap().thumbprint_s256(),
    })
    .await
}

#[tokio::test]
async fn the_proxys_header_carries_the_client_certificate_a_bound_token_is_checked_against() {
    let fx = by_certificate().await;
    let proxy = fx.certs.proxy().unwrap();
    let token = sign(&fx.bound_claims());
    let client = header_of(&fx.certs.client.cert_der());
    let from_proxy = |value: &str| {
        let value = value.to_owned();
        let (fx, proxy, token) = (&fx, &proxy, &token);
        async move {
            fx.request_as(
                "/api/users",
                Some(token),
                Some(proxy),
                &[("client-cert", &value)],
            )
            .await
        }
    };
    assert_eq!(from_proxy(&client).await.0, 200);
    // Another certificate in the header: the token is bound to the client's.
    let other = header_of(&fx.certs.resource_server.cert_der());
    assert_invalid_token(from_proxy(&other).await);
    // No header from the proxy: the proxy's own certificate is never taken for the client's.
    let (status, challenge) = fx
        .request_as("/api/users", Some(&token), Some(&proxy), &[])
        .await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("no client certificate was presented"),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_header_from_anyone_but_the_proxy_is_refused_with_401() {
    let fx = by_certificate().await;
    let token = sign(&fx.bound_claims());
    let client = header_of(&fx.certs.client.cert_der());
    // The client itself, with its own certificate (it chains to the CA), sets the header.
    let (status, challenge) = fx
        .request_as(
            "/api/users",
            Some(&token),
            Some(&fx.certs.client),
            &[("client-cert", &client)],
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("not from the trusted proxy"),
        "{challenge}"
    );
}

#[tokio::test]
async fn trusting_the_proxy_by_certificate_requires_a_certificate_of_every_peer() {
    let fx = by_certificate().await;
    let http = playbook_https::https_client(&fx.certs.ca_pem).unwrap();
    let refused = http
        .get(fx.server.base_url().join("/healthz").unwrap())
        .send()
        .await;
    assert!(refused.is_err(), "a peer without a certificate was served");
}

#[tokio::test]
async fn malformed_forwarded_values_are_refused_with_400_never_5xx() {
    let fx = by_certificate().await;
    let proxy = fx.certs.proxy().unwrap();
    let token = sign(&fx.bound_claims());
    let client = fx.certs.client.cert_der();
    let chain = [client.clone(), fx.certs.resource_server.cert_der()].concat();
    let foreign = Authority::generate()
        .unwrap()
        .issue(&LeafSpec::client(playbook_certs::CLIENT_CN))
        .unwrap()
        .cert_der();
    let values = [
        "not a byte sequence".to_owned(),
        ":!!not base64!!:".to_owned(),
        "::".to_owned(),
        format!(
            ":{}",
            base64::engine::general_purpose::STANDARD.encode(&client)
        ),
        fx.certs.client.cert_pem().replace('\n', " "),
        header_of(b"garbage, not DER"),
        header_of(&chain),
        header_of(&foreign),
    ];
    for value in &values {
        let (status, challenge) = fx
            .request_as(
                "/api/users",
                Some(&token),
                Some(&proxy),
                &[("client-cert", value)],
            )
            .await;
        assert_eq!(status, 400, "{value}: {challenge}");
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{challenge}"
        );
    }
    let good = header_of(&client);
    let (status, _) = fx
        .request_as(
            "/api/users",
            Some(&token),
            Some(&proxy),
            &[("client-cert", &good), ("client-cert", &good)],
        )
        .await;
    assert_eq!(status, 400, "two headers");
}

#[tokio::test]
async fn trusting_the_proxy_by_address_believes_that_address_only() {
    let trusted =
        Fixture::behind_proxy(|_| ProxyTrust::Addresses(vec!["127.0.0.1".parse().unwrap()])).await;
    let token = sign(&trusted.bound_claims());
    let client = header_of(&trusted.certs.client.cert_der());
    let headers = [("client-cert", client.as_str())];
    // Any peer at the address is believed: here one without a certificate at all.
    let (status, _) = trusted
        .request_as("/api/users", Some(&token), None, &headers)
        .await;
    assert_eq!(status, 200);
    let elsewhere =
        Fixture::behind_proxy(|_| ProxyTrust::Addresses(vec!["127.0.0.2".parse().unwrap()])).await;
    let token = sign(&elsewhere.bound_claims());
    let client = header_of(&elsewhere.certs.client.cert_der());
    let (status, challenge) = elsewhere
        .request_as(
            "/api/users",
            Some(&token),
            None,
            &[("client-cert", &client)],
        )
        .await;
    assert_eq!(status, 401, "{challenge}");
}
