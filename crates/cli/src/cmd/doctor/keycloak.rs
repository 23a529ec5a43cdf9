//! The checks that ask Keycloak: the realm's discovery, the client's subject as the realm
//! matches it, and a token over mutual TLS.

use playbook_certs::{CLIENT_CN, CertSet};
use playbook_client::{AccessToken, ClientError};
use playbook_keycloak::{Admin, AuthMethod, CLIENT_ID, RealmUrl};
use serde_json::Value;

use super::Parties;
use super::verdict::{Misconfigured, Unreachable, Verdict, fail};

pub async fn discovery(parties: &Parties, realm: &RealmUrl) -> (Verdict, Option<String>) {
    let url = realm.discovery();
    match parties.http.get(url.clone()).send().await {
        Ok(response) if response.status().is_success() => {
            let issuer = response
                .json::<Value>()
                .await
                .ok()
                .and_then(|d| d["issuer"].as_str().map(String::from));
            let said = format!("{} answers, trusted by our CA", realm.issuer());
            (Verdict::Pass(said), issuer)
        }
        Ok(response) if response.status().as_u16() == 404 => (
            fail(
                Misconfigured,
                format!("Keycloak answers, but has no realm at {}", realm.issuer()),
                "`cargo playbook provider` imports it; or pass --realm",
            ),
            None,
        ),
        Ok(response) => (
            fail(
                Unreachable,
                format!("{url} answered {}", response.status()),
                "is Keycloak still starting? Wait for `ready`, then run doctor again",
            ),
            None,
        ),
        Err(error) => {
            let said = playbook_https::describe(&error);
            let untrusted = said.contains("certificate") || said.contains("UnknownIssuer");
            let verdict = if untrusted {
                fail(
                    Misconfigured,
                    format!("Keycloak's certificate is not signed by our CA: {said}"),
                    "restart Keycloak after `cargo playbook certs`, so it serves certs/keycloak.pem",
                )
            } else {
                fail(
                    Unreachable,
                    format!("cannot reach {url}: {said}"),
                    "start it with `cargo playbook provider`, or pass --keycloak-url",
                )
            };
            (verdict, None)
        }
    }
}

/// What to do when the Admin API refuses doctor's questions.
pub const ADMIN_PASSWORD: &str =
    "pass the admin password of this Keycloak (--keycloak-admin-password)";

/// The realm's client matches certificates by subject (`x509.subjectdn`, a regex by default).
pub async fn subject_dn(admin: &Admin, realm: &str, certs: &CertSet) -> Verdict {
    let path = format!("{realm}/clients?clientId={CLIENT_ID}");
    let clients: Option<Vec<Value>> = match admin.get(&path).await {
        Ok(clients) => clients,
        Err(error) => {
            return fail(
                Misconfigured,
                playbook_https::describe(&error),
                ADMIN_PASSWORD,
            );
        }
    };
    let Some(client) = clients.and_then(|c| c.into_iter().next()) else {
        return fail(
            Misconfigured,
            format!("realm {realm} has no client {CLIENT_ID}"),
            "import oauth2-provider/realm.json (`cargo playbook provider` does)",
        );
    };
    let pattern = client["attributes"]["x509.subjectdn"]
        .as_str()
        .unwrap_or_default();
    let subject = certs.client.subject();
    let regex = client["attributes"]["x509.allow.regex.pattern.comparison"] != "false";
    let matches = if regex {
        regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(&subject))
    } else {
        pattern == subject
    };
    if matches {
        Verdict::Pass(format!(
            "{subject} matches the client's x509.subjectdn `{pattern}`"
        ))
    } else {
        fail(
            Misconfigured,
            format!("{subject} does not match the client's x509.subjectdn `{pattern}`"),
            format!(
                "issue the client certificate for CN={CLIENT_CN} (`cargo playbook certs --force`)"
            ),
        )
    }
}

/// A token as the tutorial's client gets one: a fresh request, not the cache.
pub async fn token(parties: &Parties) -> Result<AccessToken, ClientError> {
    parties.tokens.request().await
}

pub fn token_failure(error: &ClientError, method: AuthMethod) -> Verdict {
    let said = playbook_https::describe(error);
    if error.is_unreachable() {
        fail(
            Unreachable,
            said,
            "is Keycloak running? `cargo playbook provider`",
        )
    } else if method == AuthMethod::Mtls {
        fail(
            Misconfigured,
            said,
            "Keycloak must trust our CA and know the client certificate's subject (see above)",
        )
    } else {
        let fix = format!(
            "`cargo playbook client --auth {}` sets the client up again",
            method.name()
        );
        fail(Misconfigured, said, fix)
    }
}
