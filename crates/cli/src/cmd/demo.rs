//! `playbook demo`: the whole sequence diagram, live, from nothing to a 200 and back to a clean
//! machine.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use playbook_certs::{CertSet, Ensured};
use playbook_client::{ResourceApi, TokenClient, TokenClientConfig};
use playbook_provider::Keycloak;
use playbook_realm::{CLIENT_ID, REALM, RealmTemplate};
use playbook_resource_server::server::{self, RunningServer, ServerConfig};
use serde_json::json;

use crate::args::StartArgs;
use crate::cmd::client::{OutputArgs, four_steps};
use crate::flow::{Flow, report_answer};
use crate::report::{Actor, Report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    start: StartArgs,

    /// HTTPS port of the resource server; 0 picks a free one.
    #[arg(long = "api-port", env = "PLAYBOOK_API_PORT", default_value_t = 8443)]
    api_port: u16,

    /// Leave Keycloak and the resource server running, and print commands to explore them.
    #[arg(long)]
    keep: bool,

    #[command(flatten)]
    output: OutputArgs,
}

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let mut report = Report::new(args.output.json);
    let (certs, how) = CertSet::ensure(certs_dir, false)?;
    report.heading(&format!(
        "0. Setup: certificates {} in {}",
        if how == Ensured::Generated {
            "generated"
        } else {
            "reused"
        },
        certs.files.dir().display()
    ));
    // Checked before Keycloak starts, so a taken port costs a second, not a Keycloak start.
    if args.api_port != 0 && std::net::TcpListener::bind(("127.0.0.1", args.api_port)).is_err() {
        anyhow::bail!(
            "port {} is already in use (another resource server?); stop it, or pass --api-port 0 / \
             PLAYBOOK_API_PORT=0 to pick a free port",
            args.api_port
        );
    }
    let keycloak =
        playbook_provider::start(&args.start.config(), &certs, crate::progress::for_stderr())
            .await?;
    let outcome = tokio::select! {
        outcome = demo(&keycloak, &certs, certs_dir, &args, &mut report) => outcome,
        _ = crate::cmd::shutdown_signal() => Err(anyhow::anyhow!("interrupted; Keycloak and the resource server were stopped")),
    };
    if outcome.is_ok() && !args.keep {
        report.heading(
            "Done: stopping the resource server and Keycloak (--keep leaves them running to explore).",
        );
    }
    report.finish(json!({ "ok": outcome.is_ok() }));
    let result = match outcome {
        Ok(server) => {
            if args.keep {
                // Ctrl-C is how a kept demo ends: a success, not an interruption.
                keep_running(&keycloak, &server, &certs).await;
            }
            server.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(error),
    };
    keycloak.stop().await;
    result
}

async fn demo(
    keycloak: &Keycloak,
    certs: &CertSet,
    certs_dir: &Path,
    args: &Args,
    report: &mut Report,
) -> anyhow::Result<RunningServer> {
    let admin = keycloak.admin()?;
    if !admin.realm_exists(REALM).await? {
        admin
            .create_realm(&RealmTemplate::bundled().named(REALM))
            .await?;
    }
    crate::cmd::save_admin_password(certs_dir, &keycloak.admin_credentials().password)?;
    let listen = format!("127.0.0.1:{}", args.api_port).parse()?;
    let server = server::start(ServerConfig::new(
        keycloak.realm(REALM).issuer().clone(),
        listen,
        certs,
    ))
    .await?;
    report.note(&format!(
        "Keycloak ({}) at {} with realm {REALM}",
        keycloak.backend_name(),
        keycloak.base_url()
    ));
    report.note(&format!("resource server at {}", server.base_url()));

    let tokens = Arc::new(TokenClient::new(TokenClientConfig::playbook(
        keycloak.realm(REALM).token(),
        &certs.ca_pem,
        &certs.client,
    ))?);
    let flow = Flow {
        admin: &admin,
        realm: REALM,
        api: ResourceApi::new(server.base_url(), tokens.clone()),
        tokens: tokens.clone(),
        show_token: args.output.show_token,
    };
    // A rerun against a kept Keycloak starts from the same place as a fresh one.
    flow.revoke_role().await?;

    report.heading("Lesson 1: before the role is assigned, the token carries no users:read");
    flow.token(report).await?;
    let early = flow.call_api(report).await?;
    anyhow::ensure!(
        early.status == 403,
        "expected 403 before the role assignment, got {}",
        early.status
    );
    report.note(
        "=> 403 insufficient_scope: authenticated, but not allowed. Now the four steps of the seed (the original playbook):",
    );

    let answer = four_steps(&flow, report, args.output).await?;
    anyhow::ensure!(
        answer.status == 200,
        "expected 200 after the role assignment, got {}",
        answer.status
    );

    report.heading("Lesson 2: the same token replayed without the client certificate");
    let token = tokens.token().await?;
    let stolen = playbook_https::https_client(&certs.ca_pem)?;
    report.arrow(
        Actor::Client,
        Actor::ResourceServer,
        "GET /api/users (same Bearer token, no client certificate)",
        json!({}),
    );
    let response = stolen
        .get(server.base_url().join("/api/users")?)
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "calling the resource server: {}",
                playbook_https::describe(&e)
            )
        })?;
    let replay = playbook_client::ApiResponse {
        status: response.status().as_u16(),
        www_authenticate: response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body: serde_json::Value::Null,
    };
    report_answer(report, &replay);
    anyhow::ensure!(
        replay.status == 401,
        "expected 401 for a replay without the certificate, got {}",
        replay.status
    );
    report.note("=> 401 invalid_token: the token is bound to the certificate (cnf.x5t#S256); a stolen token is useless.");
    Ok(server)
}

async fn keep_running(keycloak: &Keycloak, server: &RunningServer, certs: &CertSet) {
    let f = &certs.files;
    let (ca, cert, key) = (f.ca_cert(), f.client_cert(), f.client_key());
    println!("\nEverything keeps running. Try (every command trusts only the local CA):");
    println!(
        "  TOKEN=$(curl -s --cacert {ca} --cert {cert} --key {key} -d grant_type=client_credentials -d client_id={} -d scope=users:read {} | jq -r .access_token)",
        CLIENT_ID,
        keycloak.realm(REALM).token(),
        ca = ca.display(),
        cert = cert.display(),
        key = key.display()
    );
    println!(
        "  curl -s --cacert {ca} --cert {cert} --key {key} -H \"Authorization: Bearer $TOKEN\" {}api/users",
        server.base_url(),
        ca = ca.display(),
        cert = cert.display(),
        key = key.display()
    );
    println!(
        "  curl -i --cacert {} -H \"Authorization: Bearer $TOKEN\" {}api/users   # no certificate: 401",
        ca.display(),
        server.base_url()
    );
    println!(
        "  admin console: {}admin/ (user {}, password in {})",
        keycloak.base_url(),
        keycloak.admin_credentials().username,
        crate::cmd::admin_password_file(f.dir()).display()
    );
    println!("Press Ctrl-C to stop.");
    crate::cmd::shutdown_signal().await;
}
