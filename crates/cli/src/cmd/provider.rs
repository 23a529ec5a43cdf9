//! `playbook provider`: Keycloak with the realm, until Ctrl-C (the seed's oauth2-provider/start.sh).

use std::path::Path;
use std::process::ExitCode;

use crate::args::{RealmArgs, StartArgs, TopologyArgs};
use playbook_certs::CertSet;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    start: StartArgs,

    #[command(flatten)]
    realm: RealmArgs,

    #[command(flatten)]
    topology: TopologyArgs,

    /// Only do the backend's one-time work (distribution build, or container image), then exit.
    #[arg(long, conflicts_with = "stop")]
    prepare: bool,

    /// Stop the Keycloak that tests keep running under PLAYBOOK_KEYCLOAK_REUSE=1, then exit.
    #[arg(long)]
    stop: bool,
}

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let provider = playbook_provider::ProviderConfig {
        topology: args.topology.topology,
        ..args.start.config(certs_dir)
    };
    let realm = args.realm.realm.as_str();
    if args.stop {
        let dir = playbook_provider::reuse_dir(&provider);
        let said =
            tokio::task::spawn_blocking(move || playbook_provider::stop_leased(&dir)).await?;
        println!(
            "{}",
            said.as_deref().unwrap_or("no kept Keycloak is running")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.prepare {
        let ready = crate::cmd::unless_interrupted(playbook_provider::prepare(
            &provider,
            crate::progress::for_stderr(),
        ))
        .await?;
        println!("{ready}");
        return Ok(ExitCode::SUCCESS);
    }
    let (certs, _) = CertSet::ensure(certs_dir, false)?;
    let keycloak = crate::cmd::unless_interrupted(playbook_provider::start(
        &provider,
        &certs,
        crate::progress::for_stderr(),
    ))
    .await?;
    keycloak
        .admin()?
        .create_bundled_realm(realm, || None)
        .await?;
    let admin = keycloak.admin_credentials();
    let password_file = crate::cmd::save_admin_password(certs_dir, &admin.password)?;
    println!(
        "Keycloak ({}) is ready with realm `{realm}`",
        keycloak.backend_name()
    );
    println!("  issuer        {}", keycloak.realm(realm).issuer());
    let nodes = keycloak.nodes();
    if !nodes.is_empty() {
        let nodes: Vec<String> = nodes.iter().map(|url| url.to_string()).collect();
        println!(
            "  nodes         {}, each past the load balancer",
            nodes.join(", ")
        );
    }
    if let Some(proxy) = keycloak.proxy() {
        println!(
            "  behind        {} at {}, in front of Keycloak's own {} (configuration: {})",
            playbook_provider::proxy::PROGRAM,
            proxy.url(),
            keycloak.direct_url(),
            proxy.config_path().display()
        );
    }
    println!(
        "  admin console {}admin/ (user `{}`, password in {})",
        keycloak.base_url(),
        admin.username,
        password_file.display()
    );
    println!(
        "  try           curl --cacert {} {}",
        certs.files.ca_cert().display(),
        keycloak.realm(realm).discovery()
    );
    println!("Press Ctrl-C to stop.");
    crate::cmd::shutdown_signal().await;
    keycloak.stop().await;
    Ok(ExitCode::SUCCESS)
}
