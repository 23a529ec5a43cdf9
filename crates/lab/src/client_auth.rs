//! The scenarios of how a client authenticates (`--auth`): what a thief gets from what each
//! method leaves lying around, what Keycloak does with a captured or bent client assertion, and
//! what rotating a secret does to the old secret and to the tokens already issued.
//!
//! Each method's client is registered for the scenario through the Admin API with nothing kept
//! on disk, so the lab never touches the secrets and keys the tutorial keeps in its certificates
//! directory.

use playbook_client::{AssertionClaims, ClientError, Credential};
use playbook_keycloak::{AuthMethod, Secret, unix_now};
use playbook_trace::Party;

use crate::arena::Arena;
use crate::scenarios::Attempts;
use crate::{Answer, Attempt, Expect, LabError};

pub(crate) async fn stolen_secret(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let identity = &arena.certs().client;
    let (_, leaked) = arena.method_client(AuthMethod::Secret).await?;
    let thief = arena.authenticating(Party::Intruder, leaked, identity)?;
    let secret = arena
        .token_and_call(
            &server,
            &thief,
            "a thief with the client_secret_basic secret copied from a config file gets a token from its own machine and spends it",
            Expect::Status(200),
        )
        .await?;
    // What a private_key_jwt client's config reveals: the kid and the public key, which
    // Keycloak holds anyway. The thief signs with a key of its own under that kid.
    let (_, credential) = arena.method_client(AuthMethod::PrivateKeyJwt).await?;
    let Credential::PrivateKeyJwt { kid, .. } = credential else {
        return Err(LabError::Setup(
            "private_key_jwt made another credential".into(),
        ));
    };
    let own_key = Secret::new(playbook_certs::signing_key_pem()?);
    let forged = Credential::PrivateKeyJwt {
        key_pem: own_key,
        kid,
    };
    let thief = arena.authenticating(Party::Intruder, forged, identity)?;
    let key = arena
        .token_and_call(
            &server,
            &thief,
            "the same theft against private_key_jwt: the config holds only the public key, so the thief signs with its own key under the client's kid",
            Expect::NoToken,
        )
        .await?;
    // A TLS stack will not even pair a certificate with a key it does not name (the handshake
    // signs with that key), so the thief's request never leaves its machine: the refusal is
    // its own TLS library's, which is the lesson.
    let certificate_only = identity.with_stranger_key()?;
    let tried = "the same theft against tls_client_auth: the thief has the client certificate (public), not its private key, and its own TLS stack refuses to present one without the other";
    let certificate =
        match arena.authenticating(Party::Intruder, Credential::Certificate, &certificate_only) {
            Ok(thief) => (arena.token_and_call(&server, &thief, tried, Expect::NoToken)).await?,
            Err(LabError::Client(ClientError::Tls(error)))
                if error.to_string().contains("KeyMismatch") =>
            {
                Attempt {
                    tried: tried.into(),
                    expected: Expect::NoToken,
                    answer: Answer::NoToken {
                        why: format!(
                            "it cannot present the certificate without its private key ({error})"
                        ),
                    },
                }
            }
            Err(other) => return Err(other),
        };
    Ok(vec![secret, key, certificate])
}

pub(crate) async fn replayed_assertion(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let method = AuthMethod::PrivateKeyJwt;
    let (_, credential) = arena.method_client(method).await?;
    let fresh = || AssertionClaims::new(method.client_id(), arena.urls.issuer().as_str());
    let sent_by = |party, assertion: String| {
        let made = Credential::Assertion {
            method,
            assertion: Secret::new(assertion),
        };
        arena.authenticating(party, made, &arena.certs().client)
    };
    let captured = credential.sign_assertion(&fresh())?;
    let mut attempts = vec![
        arena
            .token_and_call(
                &server,
                &sent_by(Party::Client, captured.clone())?,
                "the client's private_key_jwt assertion, used once",
                Expect::Status(200),
            )
            .await?,
        arena
            .token_and_call(
                &server,
                &sent_by(Party::Intruder, captured)?,
                "the same assertion, captured on the wire and sent again",
                Expect::NoToken,
            )
            .await?,
    ];
    let another_server = arena.admin().keycloak().realm("another-realm");
    let elsewhere = AssertionClaims {
        aud: another_server.issuer().as_str().into(),
        ..fresh()
    };
    let now = unix_now();
    let stale = AssertionClaims {
        iat: now - 120,
        exp: now - 90,
        ..fresh()
    };
    let Credential::PrivateKeyJwt { kid, .. } = &credential else {
        return Err(LabError::Setup(
            "private_key_jwt made another credential".into(),
        ));
    };
    let another_key = Credential::PrivateKeyJwt {
        key_pem: Secret::new(playbook_certs::signing_key_pem()?),
        kid: kid.clone(),
    };
    let bent = [
        (
            credential.sign_assertion(&elsewhere)?,
            "an assertion the client made for another server (aud: another realm's issuer)",
        ),
        (
            credential.sign_assertion(&stale)?,
            "an assertion captured two minutes ago, past its exp",
        ),
        (
            another_key.sign_assertion(&fresh())?,
            "an assertion with the client's claims and kid, signed by another key",
        ),
    ];
    for (assertion, tried) in bent {
        let intruder = sent_by(Party::Intruder, assertion)?;
        attempts.push(
            arena
                .token_and_call(&server, &intruder, tried, Expect::NoToken)
                .await?,
        );
    }
    Ok(attempts)
}

pub(crate) async fn secret_rotation(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let method = AuthMethod::Secret;
    let identity = &arena.certs().client;
    let (client, old) = arena.method_client(method).await?;
    let before = client.request().await?;
    let rotated = arena
        .provisioner()
        .rotate_secret(method.client_id())
        .await?;
    let with_old = arena.authenticating(Party::Client, old, identity)?;
    let new = Credential::with_secret(method, rotated)
        .ok_or_else(|| LabError::Setup("client_secret_basic keeps no secret".into()))?;
    let with_new = arena.authenticating(Party::Client, new, identity)?;
    Ok(vec![
        arena
            .token_and_call(
                &server,
                &with_old,
                "the old secret, right after the rotation",
                Expect::NoToken,
            )
            .await?,
        arena
            .token_and_call(&server, &with_new, "the new secret", Expect::Status(200))
            .await?,
        arena
            .call(
                &server,
                &client,
                before.expose(),
                "a token issued with the old secret before the rotation",
                Expect::Status(200),
            )
            .await?,
    ])
}
