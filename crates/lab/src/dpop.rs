//! DPoP's lessons (RFC 9449): a token bound to a key is worth nothing without a fresh proof by
//! that key, made for the very request it goes with. Each scenario first shows the client's own
//! request served, then bends one thing.

use playbook_client::{ClientError, Presenting, ResourceApi};
use playbook_dpop::{ProofClaims, ProofKey, unix_now};
use playbook_keycloak::AuthMethod;
use playbook_resource_server::BindingMode;
use playbook_resource_server::api::LIST_USERS;
use playbook_trace::Party;

use crate::Expect;
use crate::arena::Arena;
use crate::scenarios::Attempts;

/// A key made for the occasion: the thief's own.
fn thief_key() -> Result<ProofKey, ClientError> {
    Ok(ProofKey::generate()?)
}

pub(crate) async fn stolen_token(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let unbound = arena
        .another_resource_server(Party::UnboundResourceServer, |config| {
            config.binding = BindingMode::Off;
        })
        .await?;
    let (client, _) = arena.dpop_client().await?;
    let token = client.token().await?;
    let thief = arena.intruder()?;
    let thieving = ResourceApi::new(server.base_url(), thief.clone())
        .drawn_as(server.party())
        .with_dpop_key(Some(thief_key()?));
    Ok(vec![
        arena
            .call(
                &server,
                &client,
                token.expose(),
                "the client: its token with a fresh proof by its own key",
                Expect::Status(200),
            )
            .await?,
        arena
            .call_api(
                thieving,
                token.expose(),
                "a thief replays the token with a valid proof by a key of its own",
                Expect::Status(401),
            )
            .await?,
        arena
            .call_presenting(
                &unbound,
                &thief,
                token.expose(),
                Presenting::Bearer,
                "the same stolen token as a bearer token at a resource server run with --binding off",
                Expect::Status(200),
            )
            .await?,
    ])
}

pub(crate) async fn replayed_proof(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let (client, key) = arena.dpop_client().await?;
    let token = client.token().await?;
    let url = server
        .base_url()
        .join(LIST_USERS.path)
        .expect("a route path");
    let captured = key
        .proof("GET", &url, Some(token.expose()), None)
        .map_err(ClientError::from)?;
    let thief = arena.intruder()?;
    Ok(vec![
        arena
            .call_presenting(
                &server,
                &client,
                token.expose(),
                Presenting::Dpop(vec![captured.clone()]),
                "the client's request: its token and a proof, used once",
                Expect::Status(200),
            )
            .await?,
        arena
            .call_presenting(
                &server,
                &thief,
                token.expose(),
                Presenting::Dpop(vec![captured]),
                "a thief who captured that request sends the token and the same proof again, within seconds",
                Expect::Status(401),
            )
            .await?,
        arena
            .call(
                &server,
                &client,
                token.expose(),
                "the client's next request, with a proof of its own",
                Expect::Status(200),
            )
            .await?,
    ])
}

pub(crate) async fn proof_for_another_request(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let (client, key) = arena.dpop_client().await?;
    let token = client.token().await?;
    let url = server
        .base_url()
        .join(LIST_USERS.path)
        .expect("a route path");
    let other = server
        .base_url()
        .join("/api/user/00000000-0000-0000-0000-000000000000")
        .expect("a route path");
    let fresh = || ProofClaims::new("GET", &url, Some(token.expose()), None);
    let sign = |claims: ProofClaims| key.sign(&claims).map_err(ClientError::from);
    let bent = [
        (
            "a proof of the client's key made for POST /api/users, sent with GET",
            sign(ProofClaims {
                htm: "POST".into(),
                ..fresh()
            })?,
        ),
        (
            "a proof of the client's key made for GET /api/user/{id}, sent to /api/users",
            sign(ProofClaims::new("GET", &other, Some(token.expose()), None))?,
        ),
        (
            "the proof the client sent to Keycloak's token endpoint, replayed at the API",
            sign(ProofClaims::new("POST", &arena.urls.token(), None, None))?,
        ),
    ];
    let mut attempts = vec![
        arena
            .call(
                &server,
                &client,
                token.expose(),
                "the client: a proof for GET /api/users, sent with GET /api/users",
                Expect::Status(200),
            )
            .await?,
    ];
    for (tried, proof) in bent {
        attempts.push(
            arena
                .call_presenting(
                    &server,
                    &client,
                    token.expose(),
                    Presenting::Dpop(vec![proof]),
                    tried,
                    Expect::Status(401),
                )
                .await?,
        );
    }
    Ok(attempts)
}

pub(crate) async fn downgrade(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let strict = arena
        .another_resource_server(Party::DpopOnlyResourceServer, |config| {
            config.binding = BindingMode::RequiredDpop;
        })
        .await?;
    let (client, key) = arena.dpop_client().await?;
    let token = client.token().await?;
    let (bearer_client, _) = arena.method_client(AuthMethod::Secret).await?;
    let bearer = bearer_client.token().await?;
    let url = server
        .base_url()
        .join(LIST_USERS.path)
        .expect("a route path");
    let keyed = key
        .proof("GET", &url, Some(bearer.expose()), None)
        .map_err(ClientError::from)?;
    Ok(vec![
        arena
            .call_presenting(
                &server,
                &client,
                token.expose(),
                Presenting::Bearer,
                "the DPoP-bound token sent as a bearer token, without a proof",
                Expect::Status(401),
            )
            .await?,
        arena
            .call_presenting(
                &server,
                &bearer_client,
                bearer.expose(),
                Presenting::Bearer,
                "a bearer token (client_secret_basic, --bind none) as Bearer: accepted under when-present",
                Expect::Status(200),
            )
            .await?,
        arena
            .call_presenting(
                &server,
                &bearer_client,
                bearer.expose(),
                Presenting::Dpop(vec![keyed]),
                "the bearer token under the DPoP scheme, with a valid proof of some key",
                Expect::Status(401),
            )
            .await?,
        arena
            .call_presenting(
                &strict,
                &bearer_client,
                bearer.expose(),
                Presenting::Bearer,
                "the bearer token at a resource server run with --binding required-dpop",
                Expect::Status(401),
            )
            .await?,
        arena
            .call(
                &strict,
                &client,
                token.expose(),
                "the DPoP-bound token with its proof at the same resource server",
                Expect::Status(200),
            )
            .await?,
    ])
}

pub(crate) async fn stale_proof(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let (client, key) = arena.dpop_client().await?;
    let token = client.token().await?;
    let url = server
        .base_url()
        .join(LIST_USERS.path)
        .expect("a route path");
    let at = |iat: i64| {
        key.sign(&ProofClaims {
            iat,
            ..ProofClaims::new("GET", &url, Some(token.expose()), None)
        })
        .map_err(ClientError::from)
    };
    let now = unix_now();
    let mut attempts = Vec::new();
    for (tried, proof, expected) in [
        (
            "a proof made 10 minutes ago (pre-generated, or captured and held back)",
            at(now - 600)?,
            401,
        ),
        (
            "a proof dated 2 minutes ahead (made in advance for later use)",
            at(now + 120)?,
            401,
        ),
        ("a proof made just now", at(now)?, 200),
    ] {
        attempts.push(
            arena
                .call_presenting(
                    &server,
                    &client,
                    token.expose(),
                    Presenting::Dpop(vec![proof]),
                    tried,
                    Expect::Status(expected),
                )
                .await?,
        );
    }
    Ok(attempts)
}
