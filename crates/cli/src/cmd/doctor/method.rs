//! `doctor --auth METHOD`'s own check for the methods other than the certificate: the realm's
//! client of that method is set up for it and binds as asked, and the client keeps what the
//! method needs (a secret Keycloak still accepts is then proven by the token check). Nothing is
//! changed: doctor reads what `playbook client --auth METHOD` set up, and says to run it.

use playbook_certs::CertSet;
use playbook_client::Credential;
use playbook_keycloak::{Admin, AuthMethod, Provisioner, Secret, TokenBinding, platform};
use serde_json::Value;

use super::keycloak::ADMIN_PASSWORD;
use super::verdict::{Misconfigured, Verdict, fail};

/// The check's name, in place of the certificate client's `client subject`.
pub const NAME: &str = "client authentication";

/// The verdict, and the credential the token check then uses when there is one.
pub async fn client_method(
    admin: &Admin,
    realm: &str,
    method: AuthMethod,
    binding: TokenBinding,
    certs: &CertSet,
) -> (Verdict, Option<Credential>) {
    let client_id = method.client_id();
    let set_up = format!(
        "`cargo playbook client --auth {}` sets it up",
        method.name()
    );
    let path = format!("{realm}/clients?clientId={client_id}");
    let client = match admin.get::<Vec<Value>>(&path).await {
        Ok(clients) => clients.and_then(|c| c.into_iter().next()),
        Err(error) => {
            let said = playbook_https::describe(&error);
            return (fail(Misconfigured, said, ADMIN_PASSWORD), None);
        }
    };
    let Some(client) = client else {
        let said = format!("realm {realm} has no client {client_id}");
        let fix = "import oauth2-provider/realm.json (`cargo playbook provider` does)";
        return (fail(Misconfigured, said, fix), None);
    };
    let authenticator = client["clientAuthenticatorType"].as_str().unwrap_or("?");
    if authenticator != method.keycloak_authenticator() {
        let said = format!(
            "{client_id} authenticates with Keycloak's {authenticator}, not {} ({})",
            method.keycloak_authenticator(),
            method.oauth_name()
        );
        let fix = "re-import oauth2-provider/realm.json, which sets each client's authenticator";
        return (fail(Misconfigured, said, fix), None);
    }
    let set = |attribute: &str| client["attributes"][attribute] == "true";
    let binds = match (
        set(TokenBinding::CERTIFICATE_ATTRIBUTE),
        set(TokenBinding::DPOP_ATTRIBUTE),
    ) {
        (true, _) => TokenBinding::Certificate,
        (false, true) => TokenBinding::Dpop,
        (false, false) => TokenBinding::None,
    };
    if binds != binding {
        let said = match binds {
            TokenBinding::Certificate => format!(
                "Keycloak binds the tokens of {client_id} to the certificate, so it refuses token requests without one (--bind certificate)"
            ),
            TokenBinding::Dpop => format!(
                "Keycloak binds the tokens of {client_id} to a DPoP key, so it refuses token requests without a DPoP proof (--bind dpop)"
            ),
            TokenBinding::None => format!(
                "Keycloak issues bearer tokens to {client_id}, not bound ones (--bind none)"
            ),
        };
        let fix = format!(
            "`cargo playbook client --auth {} --bind {}` sets it",
            method.name(),
            binding.name()
        );
        return (fail(Misconfigured, said, fix), None);
    }
    let files = &certs.files;
    if method.uses_secret() {
        let kept = files.client_secret(method.name());
        let Ok(secret) = std::fs::read_to_string(&kept) else {
            let said = format!("no secret of {client_id} kept in {}", kept.display());
            return (fail(Misconfigured, said, set_up), None);
        };
        let credential = Credential::with_secret(method, Secret::new(secret.trim()));
        let said = format!(
            "{client_id} uses {} (Keycloak's {authenticator}); its secret is kept in {}",
            method.oauth_name(),
            kept.display()
        );
        return (Verdict::Pass(said), credential);
    }
    if method == AuthMethod::Federated {
        return federated(admin, realm, &client, &set_up).await;
    }
    let key_file = files.assertion_key();
    let Ok(key_pem) = std::fs::read_to_string(&key_file) else {
        let said = format!("no assertion key in {}", key_file.display());
        return (fail(Misconfigured, said, set_up), None);
    };
    let (credential, kid) = match Credential::private_key_jwt(&key_pem) {
        Ok((credential, jwks)) => (credential, jwks["keys"][0]["kid"].clone()),
        Err(error) => {
            let fix = "remove it; `cargo playbook certs` makes a new one";
            return (fail(Misconfigured, error.to_string(), fix), None);
        }
    };
    let kid = kid.as_str().unwrap_or_default();
    let held: Value = (client["attributes"]["jwks.string"].as_str())
        .and_then(|jwks| serde_json::from_str(jwks).ok())
        .unwrap_or_default();
    let kids: Vec<&str> = (held["keys"].as_array().into_iter().flatten())
        .filter_map(|key| key["kid"].as_str())
        .collect();
    if !kids.contains(&kid) {
        let said = format!(
            "Keycloak does not hold the public key of {} (kid {kid}) for {client_id}",
            key_file.display()
        );
        return (fail(Misconfigured, said, set_up), None);
    }
    let said = format!(
        "{client_id} uses {} (Keycloak's {authenticator}) and holds the public key of {} (kid {kid})",
        method.oauth_name(),
        key_file.display()
    );
    (Verdict::Pass(said), Some(credential))
}

/// The federated client names the platform's identity provider and workload, and the realm
/// trusts that platform for client assertions, at the issuer its tokens carry.
async fn federated(
    admin: &Admin,
    realm: &str,
    client: &Value,
    set_up: &str,
) -> (Verdict, Option<Credential>) {
    let client_id = AuthMethod::Federated.client_id();
    let names = (
        client["attributes"]["jwt.credential.issuer"].as_str(),
        client["attributes"]["jwt.credential.sub"].as_str(),
    );
    if names != (Some(platform::IDENTITY_PROVIDER), Some(platform::WORKLOAD)) {
        let said = format!(
            "{client_id} expects assertions from {:?} about {:?}, not from {} about {}",
            names.0,
            names.1,
            platform::IDENTITY_PROVIDER,
            platform::WORKLOAD
        );
        let fix = "re-import oauth2-provider/realm.json, which names them";
        return (fail(Misconfigured, said, fix), None);
    }
    let provisioner = Provisioner::new(admin, realm);
    let platform_name = platform::realm(realm);
    let platform = admin.keycloak().realm(&platform_name);
    // Every answer doctor needs, read at once: the trust and the platform's current key.
    let (trust, key) = match (
        provisioner.platform_trust().await,
        provisioner.signing_key(&platform_name).await,
    ) {
        (Ok(trust), key) => (trust, key.ok()),
        (Err(error), _) => {
            return (
                fail(
                    Misconfigured,
                    playbook_https::describe(&error),
                    ADMIN_PASSWORD,
                ),
                None,
            );
        }
    };
    let Some(trust) = trust else {
        let said = format!(
            "realm {realm} has no identity provider {}: it trusts no workload platform",
            platform::IDENTITY_PROVIDER
        );
        return (fail(Misconfigured, said, set_up), None);
    };
    let Some((kid, public_key)) = key else {
        let said = format!(
            "the workload platform, realm {platform_name}, is missing or has no signing key"
        );
        return (fail(Misconfigured, said, set_up), None);
    };
    let config = &trust["config"];
    let problem = if config["supportsClientAssertions"] != "true" {
        Some("does not accept client assertions".to_owned())
    } else if config["issuer"] != platform.issuer().as_str() {
        Some(format!(
            "trusts the issuer {}, but the platform's tokens say {}",
            config["issuer"],
            platform.issuer()
        ))
    } else if config["publicKeySignatureVerifier"] != public_key.as_str() {
        Some(format!(
            "holds another key than the platform signs with now (kid {kid}): a rotated platform key"
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        let said = format!(
            "identity provider {} {problem}",
            platform::IDENTITY_PROVIDER
        );
        return (fail(Misconfigured, said, set_up), None);
    }
    let said = format!(
        "{client_id} uses federated-jwt: realm {realm} trusts {} (identity provider {}, its current key {kid}) for tokens about {}",
        platform.issuer(),
        platform::IDENTITY_PROVIDER,
        platform::WORKLOAD
    );
    (Verdict::Pass(said), Some(Credential::federated(&platform)))
}
