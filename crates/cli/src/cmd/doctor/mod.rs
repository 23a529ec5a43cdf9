//! `playbook doctor`: the questions people ask most about a setup like this one, answered in
//! order, one line each: ✓, or ✗ with one line saying what to do. A check that needs an earlier
//! one that failed says "skipped". Exit 0 when all pass, 3 when something is misconfigured, 4
//! when a party cannot be reached (the first failure decides), like `playbook client`.
//!
//! One file per kind of check: [`local`] (certificates, backends, ports), [`keycloak`]
//! (discovery, the client's subject, a token), [`method`] (another `--auth` method's setup),
//! [`token`] (what the token says) and [`api`] (the resource server), all reporting through [`verdict`] and calling the parties through the same
//! clients ([`Parties`]) the flow uses.

mod api;
mod keycloak;
mod local;
mod method;
mod preflight;
mod token;
mod verdict;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use playbook_certs::{CertSet, Files};
use playbook_client::{Credential, TokenClient, TokenClientConfig};
use playbook_keycloak::{AuthMethod, RealmUrl, TokenBinding};
use url::Url;

use crate::args::{AuthArgs, IssuerArgs, RealmArgs, StartArgs};
use api::resource_server;
use keycloak::{discovery, subject_dn, token, token_failure};
use local::{backends, check_certificates, ports};
use token::{audience, binding as token_binding, clock, issuer, role};
use verdict::{Misconfigured, Report, Verdict, fail, finish};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    start: StartArgs,

    #[command(flatten)]
    realm: RealmArgs,

    #[command(flatten)]
    issuer: IssuerArgs,

    #[command(flatten)]
    auth: AuthArgs,

    /// A running resource server to check [default: https://localhost:8443/ when something
    /// answers there].
    #[arg(long = "api-url", env = "PLAYBOOK_API_URL")]
    api_url: Option<Url>,

    /// Print one JSON document instead of lines.
    #[arg(long)]
    json: bool,

    /// The night-before check of a room's machine, starting nothing: Keycloak's backend and
    /// its cached build, the ports a class uses, the audience page's address (with
    /// --stage-listen), a browser for the stage, the terminal's size and colour, disk space.
    #[arg(long)]
    preflight: bool,

    #[command(flatten)]
    stage: crate::presenter::StageListenArgs,
}

/// The clients every check that talks to a party shares: one that trusts our CA, and the
/// token client (the tutorial's over mutual TLS, or `--auth`'s), which the resource server check
/// reuses.
pub struct Parties {
    http: reqwest::Client,
    tokens: Arc<TokenClient>,
}

impl Parties {
    fn new(realm: &RealmUrl, certs: &CertSet) -> anyhow::Result<Self> {
        let config = TokenClientConfig::playbook(realm.token(), &certs.ca_pem, &certs.client);
        Ok(Self {
            http: playbook_https::https_client(&certs.ca_pem)?,
            tokens: Arc::new(TokenClient::new(config)?),
        })
    }

    /// Tokens from now on as `--auth`'s client gets them.
    fn authenticate_with(
        &mut self,
        credential: Credential,
        binding: TokenBinding,
        realm: &RealmUrl,
        certs: &CertSet,
    ) -> anyhow::Result<()> {
        let config = self
            .tokens
            .config()
            .clone()
            .with_credential(credential, realm);
        let config = crate::cmd::client::bound(config, binding, certs)?;
        self.tokens = Arc::new(TokenClient::new(config)?);
        Ok(())
    }
}

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let (method, binding) = (args.auth.method, args.auth.binding()?);
    if args.auth.platform == crate::args::Platform::Spiffe {
        anyhow::bail!(
            "doctor checks the OpenID Connect platform's trust; SPIRE runs only while `cargo playbook client --auth federated --platform spiffe` does, which checks it end to end"
        );
    }
    // The certificate client's own check is its subject; another method's is its setup.
    let client_check = match method {
        AuthMethod::Mtls => "client subject",
        _ => method::NAME,
    };
    let mut report = Report::new(args.json);
    let keycloak = args.start.keycloak.url();
    let realm = keycloak.realm(&args.realm.realm);
    let api_url = args
        .api_url
        .clone()
        .unwrap_or_else(crate::args::local_api_url);

    if args.preflight {
        let backend = playbook_provider::backend_report(&args.start.config(certs_dir)).await;
        report.record("Keycloak backends", backends(&backend));
        report.record("Keycloak build", preflight::keycloak_ready(&backend));
        // A port held by our own Keycloak or API is fine: they answer with our CA's certificate.
        let http = CertSet::load(Files::new(certs_dir))
            .ok()
            .and_then(|certs| playbook_https::https_client(&certs.ca_pem).ok());
        report.record("ports", ports(&keycloak, &api_url, http.as_ref()).await);
        report.record("stage port", preflight::stage_port(args.stage.stage_port));
        let stage = &args.stage;
        report.record(
            "audience page",
            preflight::audience(stage.audience, stage.stage_port),
        );
        report.record(
            "browser",
            preflight::browser(std::env::var_os("PATH").as_deref()),
        );
        report.record(
            "reverse proxy",
            preflight::proxy(playbook_provider::proxy::which(
                playbook_provider::proxy::PROGRAM,
            )),
        );
        report.record(
            "cluster database",
            preflight::database(playbook_provider::postgres::installed()),
        );
        // The terminal the class sees, even with stdout piped (`--json | jq`).
        let size = terminal_size::terminal_size()
            .or_else(|| terminal_size::terminal_size_of(std::io::stderr()))
            .map(|(w, h)| (w.0, h.0));
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        report.record("terminal", preflight::terminal(size, no_color));
        let cache = args.start.config(certs_dir).resolved_cache_dir();
        report.record("disk", preflight::disk(&cache));
        return finish(report);
    }
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
    let http = certs
        .as_ref()
        .and_then(|c| playbook_https::https_client(&c.ca_pem).ok());
    report.record("ports", ports(&keycloak, &api_url, http.as_ref()).await);

    let Some(certs) = certs else {
        for name in ["Keycloak", client_check, "token"]
            .iter()
            .chain(&NEED_TOKEN)
        {
            report.record(name, Verdict::Skipped("certificates"));
        }
        return finish(report);
    };
    let mut parties = Parties::new(&realm, &certs)?;
    let discovery = discovery(&parties, &realm).await;
    let reachable = report.record("Keycloak", discovery.0);
    let discovered_issuer = discovery.1;

    let admin = reachable.then(|| {
        args.start
            .keycloak
            .admin(certs_dir, keycloak.clone(), &certs.ca_pem)
    });
    // Whether the client has what its method needs to ask for a token.
    let mut can_ask = reachable;
    match &admin {
        Some(Ok(admin)) if method == AuthMethod::Mtls => {
            let verdict = subject_dn(admin, &args.realm.realm, &certs).await;
            report.record(client_check, verdict);
        }
        Some(Ok(admin)) => {
            let (verdict, credential) =
                method::client_method(admin, &args.realm.realm, method, binding, &certs).await;
            report.record(client_check, verdict);
            match credential {
                Some(credential) => {
                    parties.authenticate_with(credential, binding, &realm, &certs)?
                }
                None => can_ask = false,
            }
        }
        Some(Err(error)) => {
            report.record(
                client_check,
                fail(
                    Misconfigured,
                    error.to_string(),
                    "pass --keycloak-admin-password",
                ),
            );
            can_ask &= method == AuthMethod::Mtls;
        }
        None => {
            report.record(client_check, Verdict::Skipped("Keycloak"));
        }
    }

    let token = if can_ask {
        let token = token(&parties).await;
        let verdict = match &token {
            Ok(token) if method == AuthMethod::Mtls => {
                Verdict::Pass(format!("issued over mTLS ({})", token.fingerprint()))
            }
            Ok(token) => Verdict::Pass(format!(
                "issued to {} authenticated by {} ({})",
                method.client_id(),
                method.oauth_name(),
                token.fingerprint()
            )),
            Err(error) => token_failure(error, method),
        };
        report.record("token", verdict);
        token.ok()
    } else {
        let needed = if reachable { client_check } else { "Keycloak" };
        report.record("token", Verdict::Skipped(needed));
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
    report.record("token binding", token_binding(&token, binding, &certs));
    report.record("role", role(&token));
    report.record("clock", clock(&token));
    let verdict = resource_server(&parties, &api_url, args.api_url.is_some(), &token).await;
    report.record("resource server", verdict);
    finish(report)
}

/// The checks that read a token, skipped without one.
const NEED_TOKEN: [&str; 6] = [
    "issuer",
    "audience",
    "token binding",
    "role",
    "clock",
    "resource server",
];
