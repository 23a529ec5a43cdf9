//! `playbook certs`: the local CA and the leaves, reused while valid.

use std::path::Path;
use std::process::ExitCode;

use playbook_certs::{CertSet, Ensured};

#[derive(clap::Args)]
pub struct Args {
    /// Regenerate everything, even a valid set (anything trusting the old CA must be updated).
    #[arg(long)]
    force: bool,
}

pub fn run(dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let (set, how) = CertSet::ensure(dir, args.force)?;
    let verb = match how {
        Ensured::Generated => "generated",
        Ensured::Reused => "reusing valid",
    };
    let f = &set.files;
    println!("{verb} certificates in {}", f.dir().display());
    println!(
        "  CA                {} (truststore: {})",
        f.ca_cert().display(),
        f.ca_truststore().display()
    );
    println!("  Keycloak          {}", f.keycloak_cert().display());
    println!("  resource server   {}", f.resource_server_cert().display());
    println!(
        "  client            {} (CN={}, x5t#S256={})",
        f.client_cert().display(),
        playbook_certs::CLIENT_CN,
        set.client.thumbprint_s256()
    );
    Ok(ExitCode::SUCCESS)
}
