//! `playbook resource-server`: the protected API, until Ctrl-C or SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use playbook_certs::CertSet;
use playbook_lab::ServedApi;
use playbook_provider::Topology;
use playbook_resource_server::server::ServerConfig;

use crate::args::{ServerArgs, TopologyArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// With proxy, HAProxy serves --listen and the server a free port behind it, reading the
    /// client certificate from the proxy's header (set up for you: no --client-cert-header).
    #[command(flatten)]
    topology: TopologyArgs,
}

/// Builds the server configuration: explicit paths win, the certificate set fills the rest.
pub fn config(certs: &CertSet, args: ServerArgs) -> anyhow::Result<ServerConfig> {
    let read = |path: Option<&Path>, default: &str| -> anyhow::Result<String> {
        match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display())),
            None => Ok(default.to_owned()),
        }
    };
    args.check()?;
    let mut config = ServerConfig::new(args.issuer(), args.listen, certs);
    config.ca_pem = read(args.ca.as_deref(), &certs.ca_pem)?;
    config.cert_pem = read(args.cert.as_deref(), certs.resource_server.cert_pem())?;
    config.key_pem = read(args.key.as_deref(), certs.resource_server.key_pem())?;
    args.apply(&mut config);
    config.client_cert = args.client_cert(&config.ca_pem)?;
    Ok(config)
}

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let topology = args.topology.topology;
    if topology != Topology::Direct && args.server.client_cert_header.is_some() {
        anyhow::bail!(
            "--topology {} sets up the header itself; --client-cert-header is for a proxy of your own",
            topology.name()
        );
    }
    // HAProxy listens on loopback only: an address beyond it would be silently ignored.
    if topology != Topology::Direct && !args.server.listen.ip().is_loopback() {
        anyhow::bail!(
            "--topology {} listens on 127.0.0.1 only (its proxy is for this machine's playbook); --listen {} asks for more",
            topology.name(),
            args.server.listen
        );
    }
    let (certs, _) = CertSet::ensure(certs_dir, false)?;
    let config = config(&certs, args.server)?;
    let issuer = config.issuer.issuer().clone();
    let api = ServedApi::start(config, topology, &certs).await?;
    println!(
        "resource server listening on {} (issuer {issuer})",
        api.url()
    );
    if let Some(proxy) = &api.proxy {
        println!(
            "  behind {} (TLS ends there; configuration: {}); the server itself at {} reads the client certificate only from the proxy's header",
            playbook_provider::proxy::PROGRAM,
            proxy.config_path().display(),
            api.server.base_url()
        );
    }
    for route in playbook_resource_server::api::ROUTES {
        let endpoint = format!("{} {}", route.method, route.path);
        println!("  {endpoint:<20}{}", route.requirement());
    }
    println!(
        "  GET {}  (no token)",
        playbook_resource_server::api::OPEN_ROUTES.join(", ")
    );
    println!("Press Ctrl-C to stop.");
    crate::cmd::shutdown_signal().await;
    api.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
