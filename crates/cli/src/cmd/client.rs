//! `playbook client`: the seed's four steps against a running Keycloak and resource server.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use playbook_certs::CertSet;
use playbook_client::{ResourceApi, TokenClient, TokenClientConfig};
use playbook_dpop::ProofKey;
use playbook_keycloak::{AuthMethod, TokenBinding, platform, spiffe};

use crate::args::{AuthArgs, KeycloakArgs, RealmArgs};
use playbook_trace::Trace;
use serde_json::json;
use url::Url;

use crate::flow::Flow;
use crate::report::{Pace, Report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    keycloak: KeycloakArgs,

    #[command(flatten)]
    realm: RealmArgs,

    #[command(flatten)]
    auth: AuthArgs,

    /// The resource server's base URL [default: https://localhost:8443/].
    #[arg(long = "api-url", env = "PLAYBOOK_API_URL")]
    api_url: Option<Url>,

    #[command(flatten)]
    output: OutputArgs,
}

/// Output options shared with `playbook demo`.
#[derive(clap::Args, Clone, Copy)]
pub struct OutputArgs {
    /// Pause for Enter before every step and lesson, like the seed's `read -p` (for presenting).
    #[arg(long)]
    pub step: bool,

    /// Print one JSON document instead of the diagram (for scripts).
    #[arg(long)]
    pub json: bool,

    /// Print the whole access token (it is a bearer credential: careful where you paste it).
    #[arg(long)]
    pub show_token: bool,
}

impl OutputArgs {
    /// Paced by Enter with `--step` (never with `--json`, which is for scripts).
    pub fn pace(self) -> Pace {
        crate::presenter::terminal_pace(self.step, false, self.json)
    }
}

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let certs = CertSet::load(playbook_certs::Files::new(certs_dir))?;
    let trace = Trace::new();
    let admin = args
        .keycloak
        .admin(certs_dir, args.keycloak.url(), &certs.ca_pem)?
        .traced(trace.clone());
    let mut report = Report::new(args.output.json, trace.clone()).paced(args.output.pace());
    let spire = args.auth.spire(&certs).await?;
    let tokens = token_client(
        &admin,
        &args.realm.realm,
        &args.auth,
        &certs,
        spire.as_ref(),
        &trace,
        &mut report,
    )
    .await?;
    let api_url = args.api_url.unwrap_or_else(crate::args::local_api_url);
    let flow = Flow {
        admin: &admin,
        realm: &args.realm.realm,
        api: ResourceApi::new(api_url, tokens.clone()),
        tokens: tokens.clone(),
        show_token: args.output.show_token,
    };
    let answer = four_steps(&flow, &mut report).await?;
    let shown = match args.output.show_token {
        true => Some(tokens.token().await?.expose().to_owned()),
        false => None,
    };
    report.finish(json!({ "status": answer.status, "users": answer.body, "access_token": shown }));
    Ok(ExitCode::SUCCESS)
}

/// The token client of `auth`'s method and binding: with the certificate (the seed's way,
/// nothing to set up), or for another method with what Keycloak and the client must share
/// first, set through the Admin API before the seed's four steps and said so.
pub async fn token_client(
    admin: &playbook_keycloak::Admin,
    realm: &str,
    auth: &AuthArgs,
    certs: &CertSet,
    spire: Option<&playbook_spire::Spire>,
    trace: &Trace,
    report: &mut Report,
) -> anyhow::Result<Arc<TokenClient>> {
    let (method, binding) = (auth.method, auth.binding()?);
    if method != AuthMethod::Mtls {
        report
            .step(&format!(
                "0. The {} client's credential",
                method.oauth_name()
            ))
            .await;
    }
    let provisioner = playbook_keycloak::Provisioner::new(admin, realm);
    let credential = match spire {
        Some(spire) => {
            let source = playbook_client::SpiffeSource {
                agent: spire.agent_program(),
                socket: spire.workload_socket(),
                bundle_endpoint: spire.bundle_endpoint().clone(),
            };
            playbook_client::register_spiffe(&provisioner, binding, source).await?
        }
        None => playbook_client::provision(&provisioner, method, binding, certs).await?,
    };
    if method.uses_secret() {
        report.note(&format!(
            "Keycloak generated a new secret for {} (the old one is refused from now on); kept 0600 in {}",
            method.client_id(),
            certs.files.client_secret(method.name()).display()
        ));
    } else if let Some(spire) = spire {
        report.note(&format!(
            "realm {realm} trusts SPIRE (trust domain {}) as identity provider {}, by its bundle endpoint {}; {} keeps nothing: each token request carries a fresh JWT-SVID of {}",
            spiffe::TRUST_DOMAIN,
            spiffe::IDENTITY_PROVIDER,
            spire.bundle_endpoint(),
            spiffe::CLIENT_ID,
            spiffe::workload_id()
        ));
    } else if method == AuthMethod::Federated {
        report.note(&format!(
            "realm {realm} trusts its workload platform, realm {}, as identity provider {} (its signing key); {} keeps nothing: each token request carries a fresh platform token of {}",
            platform::realm(realm),
            platform::IDENTITY_PROVIDER,
            method.client_id(),
            platform::WORKLOAD
        ));
    } else if method == AuthMethod::PrivateKeyJwt {
        report.note(&format!(
            "Keycloak was given the public key of {} (as a JWKS); its private key stays in {}",
            certs.files.assertion_key().display(),
            certs.files.dir().display()
        ));
    }
    if method != AuthMethod::Mtls {
        report.note(&match binding {
            TokenBinding::Certificate => format!(
                "{} binds its tokens: the token request presents the client certificate too (--bind certificate)",
                method.client_id()
            ),
            TokenBinding::Dpop => format!(
                "{} gets DPoP-bound tokens: every request carries a proof signed with the key in {} (--bind dpop), and Keycloak names that key in cnf.jkt",
                method.client_id(),
                certs.files.dpop_key().display()
            ),
            TokenBinding::None => format!(
                "{} gets bearer tokens: no certificate on the token request (--bind none)",
                method.client_id()
            ),
        });
    }
    let realm_url = admin.keycloak().realm(realm);
    let config = TokenClientConfig::playbook(realm_url.token(), &certs.ca_pem, &certs.client)
        .with_credential(credential, &realm_url);
    let mut config = bound(config, binding, certs)?;
    config.trace = trace.clone();
    Ok(Arc::new(TokenClient::new(config)?))
}

/// `config` with its tokens bound as `binding` says: DPoP proofs signed with the certificate
/// directory's DPoP key (made on first use, 0600).
pub fn bound(
    config: TokenClientConfig,
    binding: TokenBinding,
    certs: &CertSet,
) -> anyhow::Result<TokenClientConfig> {
    Ok(match binding {
        TokenBinding::Dpop => config.with_dpop_key(ProofKey::from_pem(&certs.dpop_key()?)?),
        other => config.with_binding(other),
    })
}

/// Steps 1–4; a refused API call is an error (exit code "refused").
pub async fn four_steps(
    flow: &Flow<'_>,
    report: &mut Report,
) -> anyhow::Result<playbook_client::ApiResponse> {
    flow.admin_token(report).await?;
    flow.assign_role(report).await?;
    let method = flow.tokens.config().credential.method();
    report
        .step(&match method {
            AuthMethod::Mtls => "3. Client credentials token over mutual TLS".to_owned(),
            _ => format!("3. Client credentials token, {}", method.oauth_name()),
        })
        .await;
    flow.token(report).await?;
    report.step("4. Call the resource server").await;
    let answer = flow.call_api().await?;
    Ok(answer.error_for_status()?)
}
