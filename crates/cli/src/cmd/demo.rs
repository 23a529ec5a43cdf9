//! `playbook demo`: the whole sequence diagram, live, from nothing to a 200 and back to a clean
//! machine; with `--stage`, drawn in the browser from the real traffic for a room to watch.

use std::path::Path;
use std::process::ExitCode;

use playbook_certs::{CertSet, Ensured};
use std::sync::Arc;

use playbook_client::{AccessToken, ClientError, ResourceApi, TokenClient, TokenClientConfig};
use playbook_keycloak::{
    Admin, AuthMethod, CLIENT_ID, Provisioner, TokenBinding, USERS_READ, fapi2,
};
use playbook_lab::ServedApi;
use playbook_provider::Keycloak;
use playbook_resource_server::api::LIST_USERS;
use playbook_resource_server::server::ServerConfig;
use playbook_trace::Trace;
use serde_json::json;

use crate::args::{ApiPortArgs, AuthArgs, ProfileArgs, RealmArgs, StartArgs, TopologyArgs};
use crate::cmd::client::{OutputArgs, four_steps, token_client};
use crate::flow::Flow;
use crate::presenter::{ExportArgs, StageArgs};
use crate::report::Report;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    start: StartArgs,

    #[command(flatten)]
    api: ApiPortArgs,

    #[command(flatten)]
    realm: RealmArgs,

    #[command(flatten)]
    auth: AuthArgs,

    #[command(flatten)]
    topology: TopologyArgs,

    #[command(flatten)]
    profile: ProfileArgs,

    /// Leave Keycloak and the resource server running, and print commands to explore them.
    #[arg(long)]
    keep: bool,

    /// Before each lesson's answer, ask the room what the resource server will answer, and
    /// reveal it on Next (Enter here, or the stage's Next); paces the run like --step.
    #[arg(long, conflicts_with = "auto")]
    predict: bool,

    #[command(flatten)]
    stage: StageArgs,

    #[command(flatten)]
    export: ExportArgs,

    #[command(flatten)]
    output: OutputArgs,
}

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    // A combination that cannot work is said before anything starts.
    args.auth.binding()?;
    args.profile.check(&args.auth)?;
    let trace = Trace::new();
    let output = &args.output;
    let pace = crate::presenter::terminal_pace(output.step, args.predict, output.json);
    let (pace, stage) = args.stage.open(&trace, pace).await?;
    let mut report = Report::new(args.output.json, trace.clone()).paced(pace);
    let (certs, how) = CertSet::ensure(certs_dir, false)?;
    report.step_now(&format!(
        "0. Setup: certificates {} in {}",
        if how == Ensured::Generated {
            "generated"
        } else {
            "reused"
        },
        certs.files.dir().display()
    ));
    let api_port = args.api.resolve()?;
    let topology = args.topology.topology;
    let keycloak = args
        .start
        .attach_or_start(certs_dir, &certs, topology)
        .await?;
    crate::presenter::note_keycloak(&trace, &keycloak, topology);
    let outcome = tokio::select! {
        outcome = demo(&keycloak, &certs, certs_dir, api_port, &args, &trace, &mut report) => outcome,
        _ = crate::cmd::shutdown_signal() => Err(anyhow::anyhow!(interrupted(&keycloak))),
    };
    trace.finish(outcome.is_ok());
    let run = trace.snapshot();
    let exported = args
        .export
        .write(&run, &[("run", run.clone())], &mut report);
    if outcome.is_ok() && !args.keep {
        report.heading(if keycloak.is_owned() {
            "Done: stopping the resource server and Keycloak (--keep leaves them running to explore)."
        } else {
            "Done: stopping the resource server; Keycloak was running before and stays (--keep leaves both running)."
        });
    }
    // The token itself only when asked for (`--show-token`): it is a bearer credential.
    let shown = match (&outcome, args.output.show_token) {
        (Ok((_, token)), true) => Some(token.expose().to_owned()),
        _ => None,
    };
    report.finish(json!({ "ok": outcome.is_ok(), "access_token": shown }));
    let result = match outcome {
        Ok((server, _)) => {
            if args.keep {
                // Ctrl-C is how a kept demo ends: a success, not an interruption.
                keep_running(&keycloak, &args.realm.realm, &server, &certs).await;
            }
            server.shutdown().await;
            exported.map(|()| ExitCode::SUCCESS)
        }
        Err(error) => Err(error),
    };
    keycloak.stop().await;
    if !args.keep {
        // The room may still be looking, and the hand-outs are downloaded from the page.
        crate::presenter::linger(stage).await;
    }
    result
}

/// What Ctrl-C says it stopped: Keycloak only when this run started it.
pub fn interrupted(keycloak: &Keycloak) -> &'static str {
    if keycloak.is_owned() {
        "interrupted; Keycloak and the resource servers were stopped"
    } else {
        "interrupted; the resource servers were stopped, and Keycloak, running before, still runs"
    }
}

/// What the room may predict at each lesson: the answers a resource server can give.
const PREDICTED_ANSWERS: [&str; 4] = [
    "200 OK",
    "401 invalid_token",
    "403 insufficient_scope",
    "no answer: the TLS handshake is refused",
];

async fn demo(
    keycloak: &Keycloak,
    certs: &CertSet,
    certs_dir: &Path,
    api_port: u16,
    args: &Args,
    trace: &Trace,
    report: &mut Report,
) -> anyhow::Result<(ServedApi, AccessToken)> {
    let realm = args.realm.realm.as_str();
    let admin = keycloak.admin()?;
    if !admin.realm_exists(realm).await? {
        admin.create_bundled_realm(realm, || None).await?;
    }
    crate::cmd::save_admin_password(certs_dir, &keycloak.admin_credentials().password)?;
    // A rerun against a kept Keycloak starts from the same place as a fresh one.
    let method = args.auth.method;
    crate::flow::reset(&admin, realm, method.client_id()).await?;
    // FAPI 2.0 left on by an earlier run is undone: this run sets it up again if it asks.
    Provisioner::new(&admin, realm).relax_fapi2().await?;
    // From here on, every exchange is part of the story the stage tells.
    let admin = admin.traced(trace.clone());
    let listen = format!("127.0.0.1:{api_port}").parse()?;
    let mut config = ServerConfig::new(keycloak.realm(realm).issuer().clone(), listen, certs);
    config.trace = trace.clone();
    if args.profile.fapi2() {
        config.fapi2();
        // Its PS256 key exists before the resource server first fetches the realm's keys.
        Provisioner::new(&admin, realm).sign_for_fapi2(None).await?;
    }
    let server = ServedApi::start(config, args.topology.topology, certs).await?;
    report.note(&format!(
        "Keycloak ({}) at {} with realm {realm}",
        keycloak.backend_name(),
        keycloak.base_url()
    ));
    crate::presenter::note_proxy(report, "Keycloak", keycloak.nodes().len(), keycloak.proxy());
    report.note(&format!("resource server at {}", server.url()));
    crate::presenter::note_proxy(
        report,
        "the resource server",
        1 + server.replicas.len(),
        server.proxy.as_ref(),
    );

    if args.profile.fapi2() {
        fapi2_lessons(
            &admin,
            realm,
            args.auth.binding()?,
            &server,
            certs,
            trace,
            report,
        )
        .await?;
    }
    let spire = args.auth.spire(certs).await?;
    let tokens = token_client(
        &admin,
        realm,
        &args.auth,
        certs,
        spire.as_ref(),
        trace,
        report,
    )
    .await?;
    trace.context("realm", realm);
    trace.context("client", method.oauth_name());
    let binding = tokens.config().binding;
    trace.context("token binding", binding.name());
    trace.title(&match (method, binding) {
        (AuthMethod::Mtls, _) => "Client credentials over mutual TLS".to_owned(),
        (_, TokenBinding::Certificate) => format!(
            "Client credentials, {}, bound to the certificate",
            method.oauth_name()
        ),
        (_, TokenBinding::Dpop) => {
            format!("Client credentials, {}, DPoP-bound", method.oauth_name())
        }
        (_, TokenBinding::None) => format!("Client credentials, {}", method.oauth_name()),
    });
    let flow = Flow {
        admin: &admin,
        realm,
        api: ResourceApi::new(server.url(), tokens.clone()),
        tokens: tokens.clone(),
        show_token: args.output.show_token,
    };

    report
        .step(&format!(
            "Lesson 1: before the role is assigned, the token carries no {USERS_READ}"
        ))
        .await;
    flow.token(report).await?;
    if args.predict {
        report
            .predict(
                "The token was issued before the role was assigned: what will the resource server answer?",
                &PREDICTED_ANSWERS,
            )
            .await;
    }
    let early = flow.call_api().await?;
    anyhow::ensure!(
        early.status == 403,
        "expected 403 before the role assignment, got {}",
        early.status
    );
    report.lesson(&format!(
        "403 insufficient_scope: authenticated, but not allowed. The token is genuine, yet it carries neither the role nor the {USERS_READ} scope."
    ));
    report.note("Now the four steps of the seed (the original playbook):");

    let answer = four_steps(&flow, report).await?;
    anyhow::ensure!(
        answer.status == 200,
        "expected 200 after the role assignment, got {}",
        answer.status
    );

    // The thief holds the token and nothing else: not the certificate, not the DPoP key (it
    // signs its proofs with a key of its own).
    let (without, thief_key) = match binding {
        TokenBinding::Dpop => ("the DPoP key", Some(playbook_dpop::ProofKey::generate()?)),
        _ => ("the client certificate", None),
    };
    report
        .step(&format!(
            "Lesson 2: the same token replayed without {without}"
        ))
        .await;
    let token = tokens.token().await?;
    if args.predict {
        report
            .predict(
                &format!("The same token, sent by someone without {without}: what will the resource server answer?"),
                &PREDICTED_ANSWERS,
            )
            .await;
    }
    let thief =
        ResourceApi::without_certificate(server.url(), tokens.clone())?.with_dpop_key(thief_key);
    let replay = thief.get_with(LIST_USERS.path, token.expose()).await?;
    // Only a token bound to the certificate is refused without it; the others are bearer tokens.
    let (expected, lesson) = match tokens.config().binding {
        TokenBinding::Certificate => (
            401,
            "401 invalid_token: the token is bound to the client certificate (cnf.x5t#S256, RFC 8705), so a stolen token is useless without the certificate's private key.".to_owned(),
        ),
        TokenBinding::Dpop => (
            401,
            "401 invalid_dpop_proof: the token is bound to the client's DPoP key (cnf.jkt, RFC 9449), and the thief's proof is signed by a key of its own, whose thumbprint is not the token's cnf.jkt. Without the private key no valid proof can be made; a captured proof is single-use and names one request, so it cannot be reused either.".to_owned(),
        ),
        TokenBinding::None => (
            200,
            format!(
                "200: the {} client presented no certificate, so its token is a bearer token: whoever holds it is served. How a client authenticates and whether its token is bound are separate choices; --bind certificate binds it (RFC 8705), and a resource server with --binding required refuses it.",
                method.oauth_name()
            ),
        ),
    };
    anyhow::ensure!(
        replay.status == expected,
        "expected {expected} for a replay without the certificate, got {}",
        replay.status
    );
    report.lesson(&lesson);
    Ok((server, token))
}

/// FAPI 2.0 turned on for the realm, and the two things it refuses that the default setup
/// accepts: a client that authenticates with a shared secret (at Keycloak), and a bearer token
/// (at the resource server), shown with a secret client and a token it got just before.
async fn fapi2_lessons(
    admin: &Admin,
    realm: &str,
    binding: TokenBinding,
    server: &ServedApi,
    certs: &CertSet,
    trace: &Trace,
    report: &mut Report,
) -> anyhow::Result<()> {
    report
        .step("FAPI 2.0: the realm's profile, and what it refuses")
        .await;
    let provisioner = Provisioner::new(admin, realm);
    let realm_url = admin.keycloak().realm(realm);
    let method = AuthMethod::Secret;
    let credential = playbook_client::enrol(&provisioner, method, TokenBinding::None).await?;
    let mut config = TokenClientConfig::playbook(realm_url.token(), &certs.ca_pem, &certs.client)
        .with_credential(credential, &realm_url);
    config.trace = trace.clone();
    let secret_client = Arc::new(TokenClient::new(config)?);
    let bearer = secret_client.request().await?;
    provisioner.enforce_fapi2(binding).await?;
    report.note(&format!(
        "realm {realm}: tokens signed {}; client policy {} applies Keycloak's {} to every client",
        fapi2::SIGNATURE_ALGORITHM,
        fapi2::POLICY,
        fapi2::client_profile(binding)
    ));
    let refused = secret_client.request().await;
    anyhow::ensure!(
        matches!(&refused, Err(ClientError::TokenRefused { .. })),
        "expected Keycloak to refuse {} under FAPI 2.0, got {refused:?}",
        method.client_id()
    );
    report.lesson(&format!(
        "Keycloak refuses {}: under FAPI 2.0 a client authenticates with mTLS or private_key_jwt only, never a shared secret (FAPI 2.0 Security Profile §5.3.2).",
        method.oauth_name()
    ));
    let api = ResourceApi::new(server.url(), secret_client);
    let answer = api.get_with(LIST_USERS.path, bearer.expose()).await?;
    let unbound =
        (answer.www_authenticate.as_deref()).is_some_and(|c| c.contains("not sender-constrained"));
    anyhow::ensure!(
        answer.status == 401 && unbound,
        "expected 401 (not sender-constrained) for a bearer token at the FAPI 2.0 resource server, got {} {:?}",
        answer.status,
        answer.www_authenticate
    );
    report.lesson(
        "401 invalid_token: a bearer token issued a moment before is refused by the FAPI 2.0 resource server, which accepts sender-constrained tokens only (FAPI 2.0 Security Profile §5.3.4): a token bound to a certificate or a DPoP key, presented with it.",
    );
    Ok(())
}

async fn keep_running(keycloak: &Keycloak, realm: &str, server: &ServedApi, certs: &CertSet) {
    let f = &certs.files;
    let (ca, cert, key) = (f.ca_cert(), f.client_cert(), f.client_key());
    println!("\nEverything keeps running. Try (every command trusts only the local CA):");
    println!(
        "  TOKEN=$(curl -s --cacert {ca} --cert {cert} --key {key} -d grant_type=client_credentials -d client_id={} -d scope={} {} | jq -r .access_token)",
        CLIENT_ID,
        USERS_READ,
        keycloak.realm(realm).token(),
        ca = ca.display(),
        cert = cert.display(),
        key = key.display()
    );
    println!(
        "  curl -s --cacert {ca} --cert {cert} --key {key} -H \"Authorization: Bearer $TOKEN\" {}",
        server.url().join(LIST_USERS.path).expect("a route path"),
        ca = ca.display(),
        cert = cert.display(),
        key = key.display()
    );
    println!(
        "  curl -i --cacert {} -H \"Authorization: Bearer $TOKEN\" {}   # no certificate: 401",
        ca.display(),
        server.url().join(LIST_USERS.path).expect("a route path")
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
