//! `playbook`: every step of the OAuth 2.0 client-credentials flow with mutual TLS, for real.

mod args;
mod cmd;
mod flow;
mod presenter;
mod progress;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The resource server allocates for every token it has not seen (its claims, its cache entry)
/// and frees the entry it evicts: glibc's `malloc` and `free` were ~6.6 % of such a request's
/// samples (docs/benchmarks.md, "Where a new token's time goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "playbook", version, about, long_about = None)]
struct Cli {
    /// Where the CA and the certificates live.
    #[arg(
        long,
        global = true,
        env = "PLAYBOOK_CERTS_DIR",
        default_value = "certs"
    )]
    certs_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

/// In the order of the tutorial: the seed's four scripts, then the whole run at once, then the
/// tools for when it breaks or to break it on purpose.
#[derive(Subcommand)]
enum Command {
    /// Create (or check and reuse) the local CA and the server and client certificates.
    Certs(cmd::certs::Args),
    /// Start Keycloak with the oauth2-playbook realm and keep it running until Ctrl-C.
    Provider(cmd::provider::Args),
    /// Run the protected API (HTTPS, JWT validation against the realm's JWKS).
    ResourceServer(cmd::resource_server::Args),
    /// The seed's client/start.sh: admin token, role assignment, mTLS token, API call.
    Client(cmd::client::Args),
    /// Everything in one go: certificates, Keycloak, the resource server, the four steps, two lessons.
    Demo(cmd::demo::Args),
    /// Check the whole setup in order, one line each, with what to do about each failure.
    Doctor(cmd::doctor::Args),
    /// The attack lab: classic attacks and mistakes run for real, each with the defence's answer.
    Lab(cmd::lab::Args),
    /// One DPoP proof (RFC 9449) signed with the client's DPoP key, for a request sent by hand.
    Proof(cmd::proof::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log every decision; the guided commands keep stdout for the diagram and log only
    // Keycloak's progress.
    let default_filter = match cli.command {
        Command::Demo(_) | Command::Client(_) | Command::Doctor(_) | Command::Lab(_) => {
            "warn,playbook_provider=info"
        }
        _ => "warn,playbook=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLAYBOOK_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => cmd::demo::run(&cli.certs_dir, args).await,
            Command::Client(args) => cmd::client::run(&cli.certs_dir, args).await,
            Command::Doctor(args) => cmd::doctor::run(&cli.certs_dir, args).await,
            Command::Lab(args) => cmd::lab::run(&cli.certs_dir, args).await,
            Command::Certs(args) => cmd::certs::run(&cli.certs_dir, args),
            Command::Proof(args) => cmd::proof::run(&cli.certs_dir, args),
            Command::Provider(args) => cmd::provider::run(&cli.certs_dir, args).await,
            Command::ResourceServer(args) => cmd::resource_server::run(&cli.certs_dir, args).await,
        }
    });
    // Dropping the runtime waits for blocking work an interrupted start left running (a
    // Keycloak build, or the stop of a Keycloak writing its class archive), so it ends cleanly.
    drop(runtime);
    match result {
        Ok(code) => code,
        Err(error) => {
            // One readable line (plus whatever context the error carries), never a backtrace;
            // a refusal or an unreachable party is what doctor explains.
            let code = cmd::exit_code(&error);
            let hint = match code {
                cmd::EXIT_REFUSED | cmd::EXIT_UNREACHABLE => {
                    "; `cargo playbook doctor` checks the whole setup"
                }
                _ => "",
            };
            eprintln!("error: {}{hint}", playbook_https::describe(error.as_ref()));
            ExitCode::from(code)
        }
    }
}
