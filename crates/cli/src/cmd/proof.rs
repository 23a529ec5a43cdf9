//! `playbook proof`: one DPoP proof (RFC 9449) made with the client's DPoP key, for a request a
//! learner sends by hand with curl: the proof is what a `--bind dpop` client sends on every
//! request, and a shell cannot sign one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use playbook_certs::{CertSet, Files};
use playbook_dpop::ProofKey;
use url::Url;

#[derive(clap::Args)]
pub struct Args {
    /// The request's method (POST for a token request, GET for the API).
    #[arg(required_unless_present = "jkt")]
    method: Option<String>,

    /// The request's URL (its query and fragment are not part of the proof).
    #[arg(required_unless_present = "jkt")]
    url: Option<Url>,

    /// The access token the request carries, read from this file ("-" for stdin): the proof
    /// then holds its hash (ath), as the API requires.
    #[arg(long)]
    token_file: Option<PathBuf>,

    /// The nonce the server asked for in its DPoP-Nonce header.
    #[arg(long)]
    nonce: Option<String>,

    /// Print only the key's RFC 7638 thumbprint: what a token bound to it carries as cnf.jkt.
    #[arg(long, conflicts_with_all = ["method", "url", "token_file", "nonce"])]
    jkt: bool,
}

pub fn run(dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let certs = CertSet::load(Files::new(dir))?;
    let key = ProofKey::from_pem(&certs.dpop_key()?)?;
    if args.jkt {
        println!("{}", key.thumbprint());
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(method), Some(url)) = (args.method, args.url) else {
        anyhow::bail!("give the request's METHOD and URL, or --jkt");
    };
    let token = match &args.token_file {
        None => None,
        Some(path) if path.as_os_str() == "-" => Some(std::io::read_to_string(std::io::stdin())?),
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        ),
    };
    let token = token.as_deref().map(str::trim);
    let proof = key.proof(
        &method.to_ascii_uppercase(),
        &url,
        token,
        args.nonce.as_deref(),
    )?;
    println!("{proof}");
    Ok(ExitCode::SUCCESS)
}
