//! `playbook doctor`: the questions people ask most about a setup like this one, answered in
//! order, one line each: ✓, or ✗ with one line saying what to do. A check that needs an earlier
//! one that failed says "skipped". Exit 0 when all pass, 3 when something is misconfigured, 4
//! when a party cannot be reached (the first failure decides), like `playbook client`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use playbook_certs::{CLIENT_CN, CertSet, Files};
use playbook_client::{AccessToken, ClientError, TokenClient, TokenClientConfig};
use playbook_keycloak::Admin;
use playbook_keycloak::{CLIENT_ID, READONLY_ROLE, REALM, RealmUrl};
use playbook_provider::Backend;
use serde_json::{Value, json};
use url::Url;

use crate::args::{IssuerArgs, StartArgs};
use crate::cmd::{EXIT_REFUSED, EXIT_UNREACHABLE};
use playbook_resource_server::api::{HEALTH, READY};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    start: StartArgs,

    /// The realm.
    #[arg(long, env = "PLAYBOOK_REALM", default_value = REALM)]
    realm: String,

    #[command(flatten)]
    issuer: IssuerArgs,

    /// A running resource server to check [default: https://localhost:8443/ when something
    /// answers there].
    #[arg(long = "api-url", env = "PLAYBOOK_API_URL")]
    api_url: Option<Url>,

    /// Print one JSON document instead of lines.
    #[arg(long)]
    json: bool,
}

/// Why a check failed: the user's setup, or a party that does not answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    Misconfigured,
    Unreachable,
}

enum Verdict {
    Pass(String),
    Fail {
        said: String,
        fix: String,
        kind: Failure,
    },
    Skipped(&'static str),
}

fn fail(kind: Failure, said: impl Into<String>, fix: impl Into<String>) -> Verdict {
    Verdict::Fail {
        said: said.into(),
        fix: fix.into(),
        kind,
    }
}

use Failure::{Misconfigured, Unreachable};

/// The checks run so far, printed as they come.
struct Report {
    json: bool,
    lines: Vec<Value>,
    first_failure: Option<Failure>,
}

impl Report {
    fn record(&mut self, name: &str, verdict: Verdict) -> bool {
        let passed = matches!(verdict, Verdict::Pass(_));
        let (mark, said, fix) = match verdict {
            Verdict::Pass(said) => ("✓", said, None),
            Verdict::Fail { said, fix, kind } => {
                self.first_failure.get_or_insert(kind);
                ("✗", said, Some(fix))
            }
            Verdict::Skipped(needs) => ("-", format!("skipped: needs {needs}"), None),
        };
        if !self.json {
            println!("{mark} {name}: {said}");
            if let Some(fix) = &fix {
                println!("    → {fix}");
            }
        }
        self.lines
            .push(json!({ "check": name, "mark": mark, "said": said, "fix": fix }));
        passed
    }
}

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let mut report = Report {
        json: args.json,
        lines: Vec::new(),
        first_failure: None,
    };
    let keycloak = args.start.keycloak.url();
    let realm = keycloak.realm(&args.realm);
    let api_url = args
        .api_url
        .clone()
        .unwrap_or_else(crate::args::local_api_url);

    let certs = match check_certificates(certs_dir) {
        Ok((certs, verdict)) => {
            report.record("certificates", verdict);
            Some(certs)
        }
        Err(verdict) => {
            report.record("certificates", verdict);
            // A usable set with a wrong client CN is still worth checking against Keycloak.
            CertSet::load(Files::new(certs_dir)).ok()
        }
    };
    let backend = playbook_provider::backend_report(&args.start.config(certs_dir)).await;
    report.record("Keycloak backends", backends(&backend));
    report.record("ports", ports(&keycloak, &api_url, certs.as_ref()).await);

    let Some(certs) = certs else {
        for name in NEED_CERTS.iter().chain(&NEED_TOKEN) {
            report.record(name, Verdict::Skipped("certificates"));
        }
        return finish(report);
    };
    let http = playbook_https::https_client(&certs.ca_pem)?;
    let discovery = discovery(&http, &realm).await;
    let reachable = report.record("Keycloak", discovery.0);
    let discovered_issuer = discovery.1;

    let admin = reachable.then(|| {
        args.start
            .keycloak
            .admin(certs_dir, keycloak.clone(), &certs.ca_pem)
    });
    match &admin {
        Some(Ok(admin)) => {
            let verdict = subject_dn(admin, &args.realm, &certs).await;
            report.record("client subject", verdict);
        }
        Some(Err(error)) => {
            report.record(
                "client subject",
                fail(
                    Misconfigured,
                    error.to_string(),
                    "pass --keycloak-admin-password",
                ),
            );
        }
        None => {
            report.record("client subject", Verdict::Skipped("Keycloak"));
        }
    }

    let token = if reachable {
        let token = token(&realm, &certs).await;
        let verdict = match &token {
            Ok(token) => Verdict::Pass(format!("issued over mTLS ({})", token.fingerprint())),
            Err(error) => token_failure(error),
        };
        report.record("token", verdict);
        token.ok()
    } else {
        report.record("token", Verdict::Skipped("Keycloak"));
        None
    };
    let Some(token) = token else {
        for name in NEED_TOKEN {
            report.record(name, Verdict::Skipped("a token"));
        }
        return finish(report);
    };
    let expected = args.issuer.realm();
    report.record(
        "issuer",
        issuer(&token, expected.issuer(), discovered_issuer.as_deref()),
    );
    report.record("audience", audience(&token));
    report.record("certificate binding", binding(&token, &certs));
    report.record("role", role(&token));
    report.record("clock", clock(&token));
    let verdict = resource_server(&api_url, args.api_url.is_some(), &token, &certs).await;
    report.record("resource server", verdict);
    finish(report)
}

/// The checks that read the certificates (and then those that read a token), skipped without
/// them.
const NEED_CERTS: [&str; 3] = ["Keycloak", "client subject", "token"];
/// The checks that read a token, skipped without one.
const NEED_TOKEN: [&str; 6] = [
    "issuer",
    "audience",
    "certificate binding",
    "role",
    "clock",
    "resource server",
];

fn finish(report: Report) -> anyhow::Result<ExitCode> {
    if report.json {
        let ok = report.first_failure.is_none();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "ok": ok, "checks": report.lines }))?
        );
    }
    Ok(match report.first_failure {
        None => ExitCode::SUCCESS,
        Some(Misconfigured) => ExitCode::from(EXIT_REFUSED),
        Some(Unreachable) => ExitCode::from(EXIT_UNREACHABLE),
    })
}

/// Present, chained to the CA, keys matching, none expiring within 7 days, the client's CN the
/// one the realm matches.
fn check_certificates(dir: &Path) -> Result<(CertSet, Verdict), Verdict> {
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

fn backends(report: &playbook_provider::BackendReport) -> Verdict {
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
async fn ports(
    keycloak: &playbook_keycloak::KeycloakUrl,
    api: &Url,
    certs: Option<&CertSet>,
) -> Verdict {
    let mut said = Vec::new();
    let http = certs.and_then(|c| playbook_https::https_client(&c.ca_pem).ok());
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
        let answered = match &http {
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

async fn discovery(http: &reqwest::Client, realm: &RealmUrl) -> (Verdict, Option<String>) {
    let url = realm.discovery();
    match http.get(url.clone()).send().await {
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

/// The realm's client matches certificates by subject (`x509.subjectdn`, a regex by default).
async fn subject_dn(admin: &Admin, realm: &str, certs: &CertSet) -> Verdict {
    let path = format!("{realm}/clients?clientId={CLIENT_ID}");
    let clients: Option<Vec<Value>> = match admin.get(&path).await {
        Ok(clients) => clients,
        Err(error) => {
            return fail(
                Misconfigured,
                playbook_https::describe(&error),
                "pass the admin password of this Keycloak (--keycloak-admin-password)",
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

async fn token(realm: &RealmUrl, certs: &CertSet) -> Result<AccessToken, ClientError> {
    let config = TokenClientConfig::playbook(realm.token(), &certs.ca_pem, &certs.client);
    Arc::new(TokenClient::new(config)?).request().await
}

fn token_failure(error: &ClientError) -> Verdict {
    let said = playbook_https::describe(error);
    if error.is_unreachable() {
        fail(
            Unreachable,
            said,
            "is Keycloak running? `cargo playbook provider`",
        )
    } else {
        fail(
            Misconfigured,
            said,
            "Keycloak must trust our CA and know the client certificate's subject (see above)",
        )
    }
}

fn issuer(token: &AccessToken, expected: &Url, discovered: Option<&str>) -> Verdict {
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

fn audience(token: &AccessToken) -> Verdict {
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

fn binding(token: &AccessToken, certs: &CertSet) -> Verdict {
    let ours = certs.client.thumbprint_s256();
    match token.claims.x5t_s256() {
        Some(bound) if bound == ours => Verdict::Pass(format!(
            "cnf.x5t#S256 = {ours}, the client certificate's thumbprint"
        )),
        Some(bound) => fail(
            Misconfigured,
            format!("the token is bound to {bound}, not to our certificate {ours}"),
            "request tokens with certs/client.pem",
        ),
        None => fail(
            Misconfigured,
            "the token carries no cnf.x5t#S256",
            "turn on tls.client.certificate.bound.access.tokens for the client (realm.json does)",
        ),
    }
}

fn role(token: &AccessToken) -> Verdict {
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
fn clock(token: &AccessToken) -> Verdict {
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

async fn resource_server(api: &Url, asked: bool, token: &AccessToken, certs: &CertSet) -> Verdict {
    let Ok(http) =
        playbook_https::https_client_with_identity(&certs.ca_pem, &certs.client.identity_pem())
    else {
        return Verdict::Skipped("a client identity");
    };
    let ready = match http
        .get(api.join(READY).expect("a static path"))
        .send()
        .await
    {
        Ok(response) => response.status(),
        Err(error) if !asked && error.is_connect() => {
            return Verdict::Skipped(
                "a running resource server (`cargo playbook resource-server`, or --api-url)",
            );
        }
        Err(error) => {
            return fail(
                Unreachable,
                format!("cannot reach {api}: {}", playbook_https::describe(&error)),
                "start it with `cargo playbook resource-server`",
            );
        }
    };
    if !ready.is_success() {
        return fail(
            Unreachable,
            format!(
                "{} answered {ready}: it has no signing keys yet",
                api.join(READY).expect("a static path")
            ),
            format!(
                "check its --issuer and that Keycloak runs; it retries every {} s",
                playbook_resource_server::RETRY_INTERVAL.as_secs()
            ),
        );
    }
    let answer = http
        .get(api.join("api/users").expect("a static path"))
        .bearer_auth(token.expose())
        .send()
        .await;
    match answer {
        Ok(response) if response.status().is_success() => Verdict::Pass(format!(
            "{api} is ready and accepts the token (GET /api/users: 200)"
        )),
        Ok(response) => {
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            fail(
                Misconfigured,
                format!("GET /api/users answered {}: {challenge}", response.status()),
                "the lines above say which part of the token it refuses",
            )
        }
        Err(error) => fail(
            Unreachable,
            playbook_https::describe(&error),
            "is it still running?",
        ),
    }
}
