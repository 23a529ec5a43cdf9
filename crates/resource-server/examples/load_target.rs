//! The target of the load scripts: the real resource server serving the same handler twice,
//!
//! - `GET /api/users`: token validation + policy, as in production;
//! - `GET /bench/users-noauth`: the same handler without authentication, the baseline,
//! - `GET /bench/cache`: the verified-token (and introspection) cache's hits and misses,
//!
//! with its keys from one of two places:
//!
//! - `--token-file F` (`scripts/load-test.sh`): a preloaded test key instead of Keycloak; one
//!   valid token signed with it is written to F (mode 0600);
//! - `--issuer URL` (`scripts/uncached-load.sh`): a real Keycloak realm's keys, by discovery, as
//!   `playbook resource-server` finds them, so the tokens are Keycloak's own; `--introspection`
//!   adds introspection mode.
//!
//! It prints `load target ready on <url>` and serves until SIGINT/SIGTERM.
//!
//! ```sh
//! cargo run --release -p playbook-resource-server --example load_target -- --certs-dir certs --port 8444 --token-file /tmp/token
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use clap::Parser;
use playbook_forge::{SigningKey as TestKey, keycloak_like_claims};
use playbook_resource_server::{Algorithm, AppState, IntrospectionConfig, JwksCache, api, server};
use tokio::signal::unix::{SignalKind, signal};
use url::Url;

/// The allocator of the `playbook` binary, so that the figures are the resource server's own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(group = clap::ArgGroup::new("keys").required(true).args(["token_file", "issuer"]))]
struct Args {
    #[arg(long, default_value = "certs")]
    certs_dir: PathBuf,
    /// 0 picks a free port (the ready line names it).
    #[arg(long, default_value_t = 8444)]
    port: u16,
    /// Sign with a test key, and write one valid token here.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Trust this Keycloak realm's keys instead.
    #[arg(long)]
    issuer: Option<Url>,
    /// With `--issuer`: also ask Keycloak whether each token is active (RFC 7662), answers
    /// cached for the default TTL, as `playbook resource-server --introspection` does.
    #[arg(long, requires = "issuer")]
    introspection: bool,
    /// How many verified tokens are remembered, as `playbook resource-server
    /// --verified-cache-capacity` sets it.
    #[arg(long, default_value_t = playbook_resource_server::VERIFIED_CACHE_CAPACITY)]
    verified_cache_capacity: usize,
}

/// The production router plus the unauthenticated twin of its list handler, and the caches'
/// hit counts (a load of new tokens must not be answered from the cache).
fn with_baseline(state: AppState) -> axum::Router {
    let baseline = state.clone();
    let auth = state.auth.clone();
    api::router(state)
        .route(
            "/bench/users-noauth",
            get(move || {
                let state = baseline.clone();
                async move { Json(api::all_users(&state)) }
            }),
        )
        .route(
            "/bench/cache",
            get(move || {
                let auth = auth.clone();
                async move {
                    Json(serde_json::json!({
                        "verified": auth.validator.cache_stats(),
                        "introspection": auth.introspector.as_ref().map(|i| i.cache_stats()),
                    }))
                }
            }),
        )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (certs, _) = playbook_certs::CertSet::ensure(&args.certs_dir, false)?;
    let listen = ([127, 0, 0, 1], args.port).into();
    let running = match (&args.issuer, &args.token_file) {
        (Some(issuer), _) => {
            let mut config = server::ServerConfig::new(issuer.clone(), listen, &certs);
            config.verified_cache_capacity = args.verified_cache_capacity;
            if args.introspection {
                config.introspection = Some(IntrospectionConfig::default());
            }
            server::start_with(config, with_baseline).await?
        }
        (None, Some(token_file)) => {
            let issuer = Url::parse("https://localhost/realms/load-test")?;
            let key = TestKey::generate("load-test");
            let keys = JwksCache::new(
                reqwest::Client::new(),
                issuer.join("jwks")?,
                vec![Algorithm::RS256],
                Duration::from_secs(30),
            );
            keys.preload(
                serde_json::json!({ "keys": [key.jwk("sig")] })
                    .to_string()
                    .as_bytes(),
            )
            .map_err(anyhow::Error::msg)?;
            let mut config = server::ServerConfig::new(issuer.clone(), listen, &certs);
            config.verified_cache_capacity = args.verified_cache_capacity;
            let running = server::serve(config, Arc::new(keys), with_baseline)?;
            let mut claims = keycloak_like_claims(issuer.as_str().trim_end_matches('/'));
            claims["exp"] = serde_json::json!(claims["exp"].as_i64().unwrap_or(0) + 3600);
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(token_file)?
                .write_all(key.sign(&claims).as_bytes())?;
            running
        }
        (None, None) => unreachable!("clap requires --issuer or --token-file"),
    };
    println!("load target ready on {}", running.base_url());
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    running.shutdown().await;
    Ok(())
}
