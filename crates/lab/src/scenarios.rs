//! The scenarios themselves: each sets up what it needs in its realm, tries the attack or the
//! mistake, and returns every attempt with the answer it got.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use playbook_certs::{Authority, LeafSpec};
use playbook_client::AccessToken;
use playbook_forge::{SigningKey, hs256, unsigned};
use playbook_keycloak::{CLIENT_ID, USERS_READ};
use playbook_resource_server::{BindingMode, IntrospectionConfig};
use playbook_trace::{Party, TokenView};
use serde_json::{Value, json};

use crate::arena::Arena;
use crate::{Answer, Attempt, Expect, LabError};

pub(crate) type Attempts = Result<Vec<Attempt>, LabError>;

/// How a scenario runs: in its arena, to the list of what it tried and what came back.
pub(crate) type Run = for<'a> fn(&'a Arena<'a>) -> Pin<Box<dyn Future<Output = Attempts> + 'a>>;

fn claims(token: &AccessToken) -> Value {
    TokenView::decode(token.expose())
        .map(|view| view.claims)
        .unwrap_or_default()
}

pub(crate) fn kid(token: &AccessToken) -> String {
    TokenView::decode(token.expose())
        .and_then(|view| view.header["kid"].as_str().map(String::from))
        .unwrap_or_default()
}

pub(crate) async fn stolen_token(arena: &Arena<'_>) -> Attempts {
    let bound = arena.resource_server(|_| {}).await?;
    let unbound = arena
        .another_resource_server(Party::UnboundResourceServer, |config| {
            config.binding = BindingMode::Off;
        })
        .await?;
    let stolen = arena.victim.token().await?;
    let intruder = arena.intruder()?;
    let attempts = vec![
        arena
            .call(
                &bound,
                &intruder,
                stolen.expose(),
                "the intruder replays the client's token with its own certificate",
                Expect::Status(401),
            )
            .await?,
        arena
            .call(
                &unbound,
                &intruder,
                stolen.expose(),
                "the same replay at a resource server run with --binding off",
                Expect::Status(200),
            )
            .await?,
    ];
    Ok(attempts)
}

pub(crate) async fn forged_tokens(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let genuine = arena.victim.token().await?;
    let claims = claims(&genuine);
    let realm_kid = kid(&genuine);
    // What anyone can download: the realm's public signing key.
    let jwks: Value = playbook_https::https_client(&arena.certs().ca_pem)
        .map_err(|e| LabError::Setup(e.to_string()))?
        .get(arena.urls.jwks())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            LabError::Setup(format!(
                "fetching the realm's JWKS: {}",
                playbook_https::describe(&e)
            ))
        })?
        .json()
        .await
        .map_err(|e| LabError::Setup(e.to_string()))?;
    let modulus = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == realm_kid.as_str()))
        .and_then(|k| k["n"].as_str())
        .and_then(|n| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(n)
                .ok()
        })
        .ok_or_else(|| {
            LabError::Setup("the realm's JWKS has no key for its own token's kid".into())
        })?;
    let attacker = SigningKey::generate("attacker");
    let attacker_cert = Authority::generate()?.cert_pem();
    let x5c = playbook_certs::der::certificates(&attacker_cert)
        .map_err(LabError::Setup)?
        .first()
        .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
        .ok_or_else(|| LabError::Setup("the attacker's CA certificate is empty".into()))?;
    let forgeries = [
        ("alg none: the same claims, no signature at all", unsigned(&claims)),
        (
            "HS256 with the realm's public key (its modulus from the JWKS) as the HMAC secret",
            hs256(&modulus, &json!({ "alg": "HS256", "typ": "JWT", "kid": realm_kid }), &claims),
        ),
        (
            "signed by the attacker's key, claiming the realm's kid",
            attacker.sign_with_header(&json!({ "alg": "RS256", "typ": "JWT", "kid": realm_kid }), &claims),
        ),
        (
            "signed by the attacker's key, which the header carries as jwk",
            attacker.sign_with_header(&json!({ "alg": "RS256", "typ": "JWT", "kid": "attacker", "jwk": attacker.jwk("sig") }), &claims),
        ),
        (
            "signed by the attacker's key, which the header points at with jku",
            attacker.sign_with_header(&json!({ "alg": "RS256", "typ": "JWT", "kid": "attacker", "jku": "https://attacker.example/jwks.json" }), &claims),
        ),
        (
            "signed by the attacker's key, with the attacker's certificate as x5c",
            attacker.sign_with_header(&json!({ "alg": "RS256", "typ": "JWT", "kid": "attacker", "x5c": [x5c] }), &claims),
        ),
    ];
    let mut attempts = Vec::new();
    for (tried, token) in forgeries {
        attempts.push(
            arena
                .victim_call(&server, &token, tried, Expect::Status(401))
                .await?,
        );
    }
    Ok(attempts)
}

pub(crate) async fn wrong_audience(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let intruder = arena.intruder()?;
    let token = intruder.token().await?;
    let audience = claims(&token)["aud"].to_string();
    let attempt = arena
        .call(
            &server,
            &intruder,
            token.expose(),
            format!("the intruder's own genuine token (aud {audience}) with its own certificate"),
            Expect::Status(401),
        )
        .await?;
    Ok(vec![attempt])
}

pub(crate) async fn expiry(arena: &Arena<'_>) -> Attempts {
    // Two seconds: tokens count whole seconds, and one issued in the last moment of a second
    // has barely more than one to live.
    const LIFESPAN: Duration = Duration::from_secs(2);
    arena
        .provisioner()
        .set_access_token_lifespan(CLIENT_ID, LIFESPAN)
        .await?;
    // No leeway here, so the lesson does not wait 30 s for the default one.
    let server = arena
        .resource_server(|config| config.leeway = Duration::ZERO)
        .await?;
    let token = arena.victim.request().await?;
    let mut attempts = vec![
        arena
            .victim_call(
                &server,
                token.expose(),
                format!("a fresh token that lives {} s", LIFESPAN.as_secs()),
                Expect::Status(200),
            )
            .await?,
    ];
    // Then, while the first token ages, the client's own calls over one and a half lifespans:
    // its cache renews at half-life, so it asks for new tokens and none of its calls meets an
    // expiry. They fill the wait for the first token's expiry, which they outlast.
    const CALLS: u32 = 6;
    let span = LIFESPAN * 3 / 2;
    let client = arena.client(CLIENT_ID, &arena.certs().client, USERS_READ)?;
    let api = playbook_client::ResourceApi::new(server.base_url(), client.clone());
    let mut worst = 200;
    for _ in 0..CALLS {
        let answer = api
            .get(playbook_resource_server::api::LIST_USERS.path)
            .await?;
        worst = worst.max(answer.status);
        tokio::time::sleep(span / CALLS).await;
    }
    attempts.push(Attempt {
        tried: format!(
            "the client's own calls, {CALLS} over {:.0} s, through its token cache ({} token requests)",
            span.as_secs_f64(),
            client.requests_made()
        ),
        expected: Expect::Status(200),
        answer: Answer::Status {
            status: worst,
            www_authenticate: None,
        },
    });
    let exp = claims(&token)["exp"].as_i64().unwrap_or_default();
    // Expired from the first moment after second `exp` (at most a lifespan and a second after
    // it was issued, so the calls above have mostly waited for it): wait for the rest, if any.
    playbook_keycloak::sleep_until_unix(exp + 1).await;
    attempts.push(
        arena
            .victim_call(
                &server,
                token.expose(),
                "the first token again, now past its exp",
                Expect::Status(401),
            )
            .await?,
    );
    Ok(attempts)
}

pub(crate) async fn role_removed(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let before = arena.victim.token().await?;
    let mut attempts = vec![
        arena
            .victim_call(
                &server,
                before.expose(),
                "a token issued while the role is held",
                Expect::Status(200),
            )
            .await?,
    ];
    let provisioner = arena.provisioner();
    let (account, role) = provisioner
        .account_and_role(CLIENT_ID, playbook_keycloak::READONLY_ROLE)
        .await?;
    provisioner.revoke(&account, &role).await?;
    attempts.push(
        arena
            .victim_call(
                &server,
                before.expose(),
                "the same token after the role was revoked",
                Expect::Status(200),
            )
            .await?,
    );
    arena.victim.forget().await;
    let after = arena.victim.token().await?;
    attempts.push(
        arena
            .victim_call(
                &server,
                after.expose(),
                "a new token, issued after the revocation",
                Expect::Status(403),
            )
            .await?,
    );
    Ok(attempts)
}

pub(crate) async fn revocation(arena: &Arena<'_>) -> Attempts {
    // A short TTL, so the lesson need not wait: the longest a revocation goes unnoticed.
    const TTL: Duration = Duration::from_secs(1);
    let jwks_only = arena.resource_server(|_| {}).await?;
    // The lab's own resource-server identity, so a certificate set made before the resource
    // server became a client too still works.
    let identity =
        arena.issue(&LeafSpec::server(playbook_certs::RESOURCE_SERVER_CN).also_client())?;
    let introspecting = arena
        .another_resource_server(Party::IntrospectingResourceServer, |config| {
            config.cert_pem = identity.cert_pem().to_owned();
            config.key_pem = identity.key_pem().to_owned();
            config.introspection = Some(IntrospectionConfig {
                ttl: TTL,
                ..IntrospectionConfig::default()
            });
        })
        .await?;
    let token = arena.victim.token().await?;
    let mut attempts = vec![
        arena
            .victim_call(
                &introspecting,
                token.expose(),
                "a live token at the introspecting resource server",
                Expect::Status(200),
            )
            .await?,
    ];
    arena
        .victim
        .revoke(&arena.urls.revocation(), &token)
        .await?;
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    attempts.push(
        arena
            .victim_call(
                &jwks_only,
                token.expose(),
                "the revoked token at a JWKS-only resource server",
                Expect::Status(200),
            )
            .await?,
    );
    attempts.push(
        arena
            .victim_call(
                &introspecting,
                token.expose(),
                "the revoked token at the introspecting resource server",
                Expect::Status(401),
            )
            .await?,
    );
    Ok(attempts)
}

pub(crate) async fn key_rotation(arena: &Arena<'_>) -> Attempts {
    let server = arena
        .resource_server(|config| config.min_refresh_interval = Duration::from_secs(1))
        .await?;
    let old = arena.victim.token().await?;
    let mut attempts = vec![
        arena
            .victim_call(
                &server,
                old.expose(),
                format!("a token signed by the realm's key {}", kid(&old)),
                Expect::Status(200),
            )
            .await?,
    ];
    arena.add_signing_key().await?;
    arena.victim.forget().await;
    let new = arena.victim.token().await?;
    attempts.push(
        arena
            .victim_call(&server, new.expose(), format!("a token signed by the new key {} (kid unknown until the JWKS is fetched again)", kid(&new)), Expect::Status(200))
            .await?,
    );
    attempts.push(
        arena
            .victim_call(
                &server,
                old.expose(),
                "the old token, while both keys are in the realm",
                Expect::Status(200),
            )
            .await?,
    );
    arena.remove_signing_key(&kid(&old)).await?;
    // Its periodic refresh would notice within five minutes; the lab asks for it now.
    server
        .refresh_keys("again: asked to, after the old key was removed")
        .await;
    attempts.push(
        arena
            .victim_call(
                &server,
                old.expose(),
                "the old token, once the resource server fetched the JWKS without its key",
                Expect::Status(401),
            )
            .await?,
    );
    attempts.push(
        arena
            .victim_call(
                &server,
                new.expose(),
                "the new token, still",
                Expect::Status(200),
            )
            .await?,
    );
    Ok(attempts)
}

pub(crate) async fn foreign_ca(arena: &Arena<'_>) -> Attempts {
    let stranger = Authority::generate()?.issue(&LeafSpec::client(playbook_certs::CLIENT_CN))?;
    let client = arena.client(CLIENT_ID, &stranger, USERS_READ)?;
    let answer = match client.request().await {
        Ok(_) => Answer::Status {
            status: 200,
            www_authenticate: None,
        },
        Err(error) => Answer::NoToken {
            why: error.to_string(),
        },
    };
    Ok(vec![Attempt {
        tried: "the client's subject (CN) on a certificate from another CA asks for a token".into(),
        expected: Expect::NoToken,
        answer,
    }])
}
