//! The scenarios of workload identity (`--auth federated`): the client keeps nothing, and its
//! assertion is the token its platform issued to it, so what the lab attacks is that token: a
//! copy replayed, one made for another service, another workload's, and a genuine token from an
//! issuer the realm does not trust. Keycloak refuses each before any client is authenticated.

use playbook_client::Credential;
use playbook_keycloak::{AuthMethod, Secret, platform};
use playbook_trace::Party;

use crate::arena::Arena;
use crate::scenarios::Attempts;
use crate::{Expect, LabError};

/// A platform token sent as the federated client's assertion by `party`, spent at `server`.
async fn assertion_attempt(
    arena: &Arena<'_>,
    server: &crate::arena::Server,
    party: Party,
    assertion: &str,
    tried: &str,
    expected: Expect,
) -> Result<crate::Attempt, LabError> {
    let sent = Credential::Assertion {
        method: AuthMethod::Federated,
        assertion: Secret::new(assertion),
    };
    let client = arena.authenticating(party, sent, &arena.certs().client)?;
    arena.token_and_call(server, &client, tried, expected).await
}

/// A fresh token of the platform's client `workload`, asked by `party`.
async fn platform_token(
    arena: &Arena<'_>,
    party: Party,
    workload: &str,
) -> Result<String, LabError> {
    let token = arena.platform_client(party, workload)?.request().await?;
    Ok(token.expose().to_owned())
}

pub(crate) async fn stolen_platform_token(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    arena.method_client(AuthMethod::Federated).await?;
    let token = platform_token(arena, Party::Client, platform::WORKLOAD_CLIENT_ID).await?;
    Ok(vec![
        assertion_attempt(
            arena,
            &server,
            Party::Client,
            &token,
            "the workload sends its platform token as the federated client's assertion",
            Expect::Status(200),
        )
        .await?,
        assertion_attempt(
            arena,
            &server,
            Party::Intruder,
            &token,
            "the same platform token, copied from the workload's traffic or logs, sent again",
            Expect::NoToken,
        )
        .await?,
    ])
}

pub(crate) async fn token_for_another_audience(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    arena.method_client(AuthMethod::Federated).await?;
    let elsewhere = platform_token(arena, Party::Intruder, platform::ELSEWHERE_CLIENT_ID).await?;
    let tried = format!(
        "the workload's genuine platform token for another service (aud {}), replayed here by that service",
        platform::ELSEWHERE_AUDIENCE
    );
    Ok(vec![
        assertion_attempt(
            arena,
            &server,
            Party::Intruder,
            &elsewhere,
            &tried,
            Expect::NoToken,
        )
        .await?,
    ])
}

pub(crate) async fn wrong_workload(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    arena.method_client(AuthMethod::Federated).await?;
    let other = platform_token(arena, Party::Intruder, platform::OTHER_WORKLOAD_CLIENT_ID).await?;
    let tried = "another workload of the same platform sends its own valid token (its sub is not the client's workload)";
    Ok(vec![
        assertion_attempt(
            arena,
            &server,
            Party::Intruder,
            &other,
            tried,
            Expect::NoToken,
        )
        .await?,
    ])
}

pub(crate) async fn untrusted_issuer(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    arena.method_client(AuthMethod::Federated).await?;
    // A genuine, well-formed token of an issuer the realm has no trust relationship with: the
    // realm's own access token, which it issues but does not accept as a client assertion.
    let stranger = arena.victim.request().await?;
    let tried = "a genuine token from an issuer the realm does not trust for client assertions (the realm's own access token)";
    Ok(vec![
        assertion_attempt(
            arena,
            &server,
            Party::Intruder,
            stranger.expose(),
            tried,
            Expect::NoToken,
        )
        .await?,
    ])
}
