//! The proxy topology's scenarios: the forwarded certificate header forged at each place an
//! attacker can put it, and a stolen token behind the proxy. They run only behind the proxy
//! (`--topology proxy`), where the proxy and both upstreams are configured as docs/proxy.md
//! explains.

use playbook_certs::der::to_forwarded;
use playbook_client::ResourceApi;
use playbook_keycloak::{CLIENT_ID, USERS_READ};
use playbook_proxy::{FORWARDED_CERT_HEADER, UPSTREAM_SOURCE};
use playbook_trace::{Exchange, Party};

use crate::arena::Arena;
use crate::scenarios::Attempts;
use crate::{Answer, Attempt, Expect, LabError};

/// What an attacker puts in the header: the victim's certificate, which is public (it crossed
/// every handshake in the clear before TLS 1.3, and any server the victim talked to has it).
fn victims_certificate(arena: &Arena<'_>) -> String {
    to_forwarded(&arena.certs().client.cert_der())
}

pub(crate) async fn forged_header_to_api(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let stolen = arena.victim.token().await?;
    let intruder = arena.intruder()?;
    // Past the proxy: the intruder connects to the resource server's own port.
    let around = ResourceApi::new(server.own_url(), intruder.clone())
        .drawn_as(server.party())
        .with_header(FORWARDED_CERT_HEADER, &victims_certificate(arena));
    Ok(vec![
        arena
            .victim_call(
                &server,
                stolen.expose(),
                "the client through the proxy: the proxy forwards the certificate it verified",
                Expect::Status(200),
            )
            .await?,
        arena
            .call_api(
                around,
                stolen.expose(),
                "the intruder goes around the proxy to the resource server's own port, with the client's token and a Client-Cert header naming the client's certificate",
                Expect::Status(401),
            )
            .await?,
    ])
}

pub(crate) async fn forged_header_through_proxy(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let stolen = arena.victim.token().await?;
    let intruder = arena.intruder()?;
    let forged = victims_certificate(arena);
    let with_own_certificate = ResourceApi::new(server.base_url(), intruder.clone())
        .drawn_as(server.party())
        .with_header(FORWARDED_CERT_HEADER, &forged);
    let without_certificate =
        ResourceApi::without_certificate(server.base_url(), intruder.clone())?
            .drawn_as(server.party())
            .with_header(FORWARDED_CERT_HEADER, &forged);
    let mut attempts = vec![
        arena
            .call_api(
                with_own_certificate,
                stolen.expose(),
                "the intruder sends the client's token through the proxy with its own certificate and a Client-Cert header naming the client's: the proxy replaces the header with the intruder's certificate",
                Expect::Status(401),
            )
            .await?,
        arena
            .call_api(
                without_certificate,
                stolen.expose(),
                "the same without any certificate: the proxy strips the header and forwards none",
                Expect::Status(401),
            )
            .await?,
    ];
    // Keycloak behind its proxy: the intruder asks for a token as the client, presenting its
    // own certificate and a header naming the client's.
    let token_endpoint = arena.urls.token();
    let identity = arena.issue(&playbook_certs::LeafSpec::client(
        playbook_certs::INTRUDER_CN,
    ))?;
    let http =
        playbook_https::https_client_with_identity(&arena.certs().ca_pem, &identity.identity_pem())
            .map_err(|e| LabError::Setup(e.to_string()))?;
    attempts.push(
        forged_token_request(
            arena,
            &http,
            token_endpoint,
            &forged,
            "the intruder asks Keycloak, through the proxy, for the client's token with its own certificate and a Client-Cert header naming the client's: the proxy replaces the header",
        )
        .await?,
    );
    Ok(attempts)
}

pub(crate) async fn forged_header_to_keycloak(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let past_proxy = arena.keycloak_past_proxy().ok_or(LabError::NeedsTopology(
        "forged-header-to-keycloak",
        "--topology proxy",
    ))?;
    // The same realm's token endpoint at Keycloak's own address.
    let path = arena.urls.token().path().to_owned();
    let direct = past_proxy
        .join(path.trim_start_matches('/'))
        .map_err(|e| LabError::Setup(e.to_string()))?;
    let setup = |e: playbook_https::TlsMaterialError| LabError::Setup(e.to_string());
    let http = playbook_https::https_client(&arena.certs().ca_pem).map_err(setup)?;
    let on_proxy_host =
        playbook_https::https_client_from(&arena.certs().ca_pem, UPSTREAM_SOURCE.into())
            .map_err(setup)?;
    let forged = victims_certificate(arena);
    let mut on_the_proxys_address = forged_token_request(
        arena,
        &on_proxy_host,
        direct.clone(),
        &forged,
        "the same from the proxy's own address, as a process on the proxy's host could: Keycloak believes it, so an address allow-list is only as safe as every process behind that address",
    )
    .await?;
    on_the_proxys_address.expected = Expect::Status(200);
    Ok(vec![
        arena
            .token_and_call(
                &server,
                &arena.victim,
                "the client asks through the proxy with its certificate, then calls the API",
                Expect::Status(200),
            )
            .await?,
        forged_token_request(
            arena,
            &http,
            direct,
            &forged,
            "the intruder goes around the proxy to Keycloak's own port and asks for the client's token with a Client-Cert header naming the client's certificate (CVE-2024-10039)",
        )
        .await?,
        on_the_proxys_address,
    ])
}

pub(crate) async fn stolen_token_behind_proxy(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let stolen = arena.victim.token().await?;
    let intruder = arena.intruder()?;
    let thief = ResourceApi::without_certificate(server.base_url(), intruder.clone())?
        .drawn_as(server.party());
    Ok(vec![
        arena
            .victim_call(
                &server,
                stolen.expose(),
                "the client spends its token through the proxy",
                Expect::Status(200),
            )
            .await?,
        arena
            .call(
                &server,
                &intruder,
                stolen.expose(),
                "the intruder replays the client's token through the proxy with its own certificate",
                Expect::Status(401),
            )
            .await?,
        arena
            .call_api(
                thief,
                stolen.expose(),
                "a thief replays it through the proxy with no certificate at all",
                Expect::Status(401),
            )
            .await?,
    ])
}

/// A client-credentials request for the victim's client (`tls_client_auth`: its certificate is
/// its only credential) at `token_endpoint` over `http`, with a forged certificate header.
/// Written by hand rather than with the token client: no real client sends this header.
async fn forged_token_request(
    arena: &Arena<'_>,
    http: &reqwest::Client,
    token_endpoint: url::Url,
    forged: &str,
    tried: &str,
) -> Result<Attempt, LabError> {
    let mut exchange = Exchange::new(
        Party::Intruder,
        Party::Keycloak,
        "POST",
        token_endpoint.as_str(),
    );
    exchange.purpose = format!(
        "client_credentials as {CLIENT_ID}, with a {FORWARDED_CERT_HEADER} header of its own"
    );
    let request = http
        .post(token_endpoint.clone())
        .header(FORWARDED_CERT_HEADER, forged)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("scope", USERS_READ),
        ]);
    let answer =
        playbook_https::send_recorded(arena.trace(), exchange, request, |answer, exchange| {
            let body: serde_json::Value = answer.json().unwrap_or_default();
            exchange.answer = match body["error"].as_str() {
                Some(error) => error.to_owned(),
                None if answer.is_success() => "a token for the client".to_owned(),
                None => answer.reason().to_owned(),
            };
        })
        .await
        .map_err(|e| {
            LabError::Setup(format!(
                "{token_endpoint}: {}",
                playbook_https::describe(&e)
            ))
        })?;
    let body: serde_json::Value = answer.json().unwrap_or_default();
    let answer = match (answer.status.as_u16(), body["error"].as_str()) {
        (400 | 401, Some(error)) => Answer::NoToken {
            why: format!(
                "{} {error}: {}",
                answer.status.as_u16(),
                body["error_description"].as_str().unwrap_or_default()
            ),
        },
        (status, _) => Answer::Status {
            status,
            www_authenticate: answer.www_authenticate,
        },
    };
    Ok(Attempt {
        tried: tried.into(),
        expected: Expect::NoToken,
        answer,
    })
}
