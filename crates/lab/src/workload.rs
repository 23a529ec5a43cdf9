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

/// A fresh token of the client `workload` of the platform `realm`, asked by `party`.
async fn platform_token(
    arena: &Arena<'_>,
    party: Party,
    realm: &str,
    workload: &str,
) -> Result<String, LabError> {
    let token = arena
        .platform_client(party, realm, workload)?
        .request()
        .await?;
    Ok(token.expose().to_owned())
}

/// Sets up the trusted platform and shows it working first (the workload's own token gets a
/// 200), so that the refusal after it is the one check the scenario is about, not a broken
/// trust: returns the server, that first attempt and the platform's realm.
async fn trusted_and_working(
    arena: &Arena<'_>,
) -> Result<(std::sync::Arc<crate::arena::Server>, crate::Attempt, String), LabError> {
    let server = arena.resource_server(|_| {}).await?;
    arena.method_client(AuthMethod::Federated).await?;
    let realm = platform::realm(&arena.realm);
    let token = platform_token(arena, Party::Client, &realm, platform::WORKLOAD_CLIENT_ID).await?;
    let working = assertion_attempt(
        arena,
        &server,
        Party::Client,
        &token,
        "the workload sends its platform token as the federated client's assertion",
        Expect::Status(200),
    )
    .await?;
    Ok((server, working, realm))
}

pub(crate) async fn stolen_platform_token(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    arena.method_client(AuthMethod::Federated).await?;
    let realm = platform::realm(&arena.realm);
    let token = platform_token(arena, Party::Client, &realm, platform::WORKLOAD_CLIENT_ID).await?;
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
    let (server, working, realm) = trusted_and_working(arena).await?;
    let elsewhere = platform_token(
        arena,
        Party::Intruder,
        &realm,
        platform::ELSEWHERE_CLIENT_ID,
    )
    .await?;
    let tried = format!(
        "the workload's genuine platform token for another service (aud {}), replayed here by that service",
        platform::ELSEWHERE_AUDIENCE
    );
    let refused = assertion_attempt(
        arena,
        &server,
        Party::Intruder,
        &elsewhere,
        &tried,
        Expect::NoToken,
    )
    .await?;
    Ok(vec![working, refused])
}

pub(crate) async fn wrong_workload(arena: &Arena<'_>) -> Attempts {
    let (server, working, realm) = trusted_and_working(arena).await?;
    let other = platform_token(
        arena,
        Party::Intruder,
        &realm,
        platform::OTHER_WORKLOAD_CLIENT_ID,
    )
    .await?;
    let tried = "another workload of the same platform sends its own valid token (its sub is not the client's workload)";
    let refused = assertion_attempt(
        arena,
        &server,
        Party::Intruder,
        &other,
        tried,
        Expect::NoToken,
    )
    .await?;
    Ok(vec![working, refused])
}

pub(crate) async fn untrusted_issuer(arena: &Arena<'_>) -> Attempts {
    let (server, working, _) = trusted_and_working(arena).await?;
    // The same workload, the same audience, a platform of the same make: only the issuer is
    // one the realm has no trust relationship with.
    let untrusted = arena.untrusted_platform().await?;
    let stranger = platform_token(
        arena,
        Party::Intruder,
        &untrusted,
        platform::WORKLOAD_CLIENT_ID,
    )
    .await?;
    let tried = "a genuine token naming the same workload and audience, from a platform the realm does not trust";
    let refused = assertion_attempt(
        arena,
        &server,
        Party::Intruder,
        &stranger,
        tried,
        Expect::NoToken,
    )
    .await?;
    Ok(vec![working, refused])
}
