//! The checks that read the token Keycloak issued: whom it is from and for, what it is bound
//! to, the role it carries, and the clocks that judge its lifetime.

use playbook_certs::CertSet;
use playbook_client::AccessToken;
use playbook_dpop::ProofKey;
use playbook_keycloak::{READONLY_ROLE, TokenBinding};
use url::Url;

use super::verdict::{Misconfigured, Verdict, fail};

pub fn issuer(token: &AccessToken, expected: &Url, discovered: Option<&str>) -> Verdict {
    let iss = token.claims.iss.clone().unwrap_or_default();
    if iss != expected.as_str() {
        return fail(
            Misconfigured,
            format!("tokens say iss={iss}, the resource server expects {expected}"),
            format!(
                "start the resource server with --issuer {iss} (host and port as clients reach Keycloak)"
            ),
        );
    }
    if discovered.is_some_and(|d| d.trim_end_matches('/') != iss) {
        return fail(
            Misconfigured,
            format!(
                "discovery names {} but tokens say {iss}",
                discovered.unwrap_or_default()
            ),
            "set Keycloak's hostname to the URL clients use",
        );
    }
    Verdict::Pass(format!("{iss}, as the resource server and discovery say"))
}

pub fn audience(token: &AccessToken) -> Verdict {
    let audiences = token.claims.audiences();
    if audiences
        .iter()
        .any(|a| a == playbook_resource_server::AUDIENCE)
    {
        Verdict::Pass(format!("aud holds {}", playbook_resource_server::AUDIENCE))
    } else {
        fail(
            Misconfigured,
            format!(
                "aud is {audiences:?}, without {}",
                playbook_resource_server::AUDIENCE
            ),
            "the realm needs the audience mapper of oauth2-provider/realm.json (`account` alone is not the API)",
        )
    }
}

/// The token is bound as asked: to our certificate, to our DPoP key, or (`--bind none`) not at
/// all.
pub fn binding(token: &AccessToken, asked: TokenBinding, certs: &CertSet) -> Verdict {
    let ours = certs.client.thumbprint_s256();
    let (x5t, jkt) = (token.claims.x5t_s256(), token.claims.jkt());
    let our_key = || {
        (certs.dpop_key().ok())
            .and_then(|pem| ProofKey::from_pem(&pem).ok())
            .map(|key| key.thumbprint().to_owned())
    };
    match (asked, x5t, jkt) {
        (TokenBinding::Certificate, Some(bound), _) if bound == ours => Verdict::Pass(format!(
            "cnf.x5t#S256 = {ours}, the client certificate's thumbprint"
        )),
        (TokenBinding::Certificate, Some(bound), _) => fail(
            Misconfigured,
            format!("the token is bound to {bound}, not to our certificate {ours}"),
            "request tokens with certs/client.pem",
        ),
        (TokenBinding::Certificate, None, _) => fail(
            Misconfigured,
            "the token carries no cnf.x5t#S256",
            format!(
                "turn on {} for the client (realm.json does for mtls; `cargo playbook client --bind certificate` for the others)",
                TokenBinding::CERTIFICATE_ATTRIBUTE
            ),
        ),
        (TokenBinding::Dpop, _, Some(bound)) if Some(&bound) == our_key().as_ref() => {
            Verdict::Pass(format!(
                "cnf.jkt = {bound}, the thumbprint of the DPoP key in {}",
                certs.files.dpop_key().display()
            ))
        }
        (TokenBinding::Dpop, _, Some(bound)) => fail(
            Misconfigured,
            format!("the token is bound to the DPoP key {bound}, not to ours"),
            format!("sign the proofs with {}", certs.files.dpop_key().display()),
        ),
        (TokenBinding::Dpop, _, None) => fail(
            Misconfigured,
            "the token carries no cnf.jkt",
            format!(
                "turn on {} for the client (`cargo playbook client --bind dpop` does)",
                TokenBinding::DPOP_ATTRIBUTE
            ),
        ),
        (TokenBinding::None, None, None) => Verdict::Pass(
            "none asked (--bind none): a bearer token, which a resource server with --binding required refuses".into(),
        ),
        (TokenBinding::None, _, _) => fail(
            Misconfigured,
            "the token is bound, though --bind none asked for a bearer token",
            format!(
                "turn off {} and {} for the client (`cargo playbook client --bind none` does)",
                TokenBinding::CERTIFICATE_ATTRIBUTE,
                TokenBinding::DPOP_ATTRIBUTE
            ),
        ),
    }
}

pub fn role(token: &AccessToken) -> Verdict {
    if token
        .claims
        .realm_roles()
        .iter()
        .any(|r| r == READONLY_ROLE)
    {
        Verdict::Pass(format!("the service account holds {READONLY_ROLE}"))
    } else {
        fail(
            Misconfigured,
            format!("the service account lacks {READONLY_ROLE}: the API will answer 403"),
            "run `cargo playbook client` (step 2 assigns it)",
        )
    }
}

/// Token lifetimes are checked against the resource server's clock: Keycloak's, as the `iat`
/// of a token just issued shows it, must agree within the leeway.
pub fn clock(token: &AccessToken) -> Verdict {
    let leeway = playbook_resource_server::DEFAULT_LEEWAY.as_secs() as i64;
    let Some(iat) = token.claims.iat else {
        return Verdict::Skipped("a token with iat");
    };
    let skew = (playbook_keycloak::unix_now() - iat).abs();
    if skew <= leeway {
        Verdict::Pass(format!("{skew} s apart from Keycloak (leeway {leeway} s)"))
    } else {
        fail(
            Misconfigured,
            format!("{skew} s apart from Keycloak, more than the {leeway} s leeway"),
            "synchronise the clocks (NTP)",
        )
    }
}
