//! The checks that need no Keycloak: the certificates, what can run Keycloak here, the ports.

use std::path::Path;

use playbook_certs::{CLIENT_CN, CertSet, Files};
use playbook_provider::Backend;
use playbook_resource_server::api::HEALTH;
use url::Url;

use super::verdict::{Misconfigured, Verdict, fail};

/// Present, chained to the CA, keys matching, none expiring within 7 days, the client's CN the
/// one the realm matches.
pub fn check_certificates(dir: &Path) -> Result<(CertSet, Verdict), Verdict> {
    let certs = CertSet::load(Files::new(dir)).map_err(|e| {
        fail(
            Misconfigured,
            e.to_string(),
            "run `cargo playbook certs --force`, then restart Keycloak so it serves the new ones",
        )
    })?;
    let subject = certs.client.subject();
    if subject != format!("CN={CLIENT_CN}") {
        return Err(fail(
            Misconfigured,
            format!("the client certificate is {subject}; the realm expects CN={CLIENT_CN}"),
            "run `cargo playbook certs --force` to issue the client certificate the realm knows",
        ));
    }
    let said = format!(
        "{} chain to its CA, keys match, none expires within 7 days, client {subject}",
        dir.display()
    );
    Ok((certs, Verdict::Pass(said)))
}

pub fn backends(report: &playbook_provider::BackendReport) -> Verdict {
    let java = match &report.java {
        Ok(java) => java.clone(),
        Err(_) => "no Java 17+".to_owned(),
    };
    let docker = if report.docker {
        "Docker answers"
    } else {
        "no Docker engine"
    };
    let cached = if report.distribution_cached {
        "distribution cached"
    } else {
        "distribution not downloaded yet"
    };
    let picks = match report.picks {
        Backend::Native => "native",
        Backend::Container => "container",
        Backend::External => "external (a URL is set)",
    };
    if report.java.is_err() && !report.docker && report.picks != Backend::External {
        return fail(
            Misconfigured,
            format!("{java}, {docker}: no backend can start Keycloak"),
            "install OpenJDK 17 or newer (21 or 25 preferred) and Maven, or start Docker",
        );
    }
    Verdict::Pass(format!("{java}, {docker}, {cached}; auto picks {picks}"))
}

/// Keycloak's and the API's ports: free, or held by the party meant to be there.
pub async fn ports(
    keycloak: &playbook_keycloak::KeycloakUrl,
    api: &Url,
    http: Option<&reqwest::Client>,
) -> Verdict {
    let mut said = Vec::new();
    let probes = [
        (
            "Keycloak",
            keycloak.as_url(),
            keycloak
                .realm(playbook_keycloak::MASTER_REALM)
                .issuer()
                .clone(),
        ),
        (
            "resource server",
            api,
            api.join(HEALTH).expect("a static path"),
        ),
    ];
    for (what, url, probe) in probes {
        let port = url.port_or_known_default().unwrap_or(443);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            said.push(format!("{port} free ({what} not running)"));
            continue;
        }
        let answered = match http {
            Some(http) => http
                .get(probe)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            None => false,
        };
        if !answered {
            return fail(
                Misconfigured,
                format!("port {port} is taken, and not by a {what} that speaks HTTPS with our CA"),
                format!(
                    "stop whatever holds it (`ss -ltnp 'sport = :{port}'` names it), or use another port"
                ),
            );
        }
        said.push(format!("{port} {what}"));
    }
    Verdict::Pass(said.join(", "))
}
