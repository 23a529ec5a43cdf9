//! The target of `scripts/load-test.sh`: the real resource server, with a preloaded test key in
//! place of Keycloak, serving the same handler twice:
//!
//! - `GET /api/users`: token validation + policy, as in production;
//! - `GET /bench/users-noauth`: the same handler without authentication, the baseline.
//!
//! It writes a valid token to `--token-file` (mode 0600) and serves until SIGINT/SIGTERM.
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
use playbook_resource_server::{Algorithm, JwksCache, api, server};
use url::Url;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "certs")]
    certs_dir: PathBuf,
    #[arg(long, default_value_t = 8444)]
    port: u16,
    #[arg(long)]
    token_file: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (certs, _) = playbook_certs::CertSet::ensure(&args.certs_dir, false)?;
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
    let config =
        server::ServerConfig::new(issuer.clone(), ([127, 0, 0, 1], args.port).into(), &certs);
    let running = server::serve(config, Arc::new(keys), |state| {
        let baseline = state.clone();
        api::router(state).route(
            "/bench/users-noauth",
            get(move || {
                let state = baseline.clone();
                async move { Json(api::all_users(&state)) }
            }),
        )
    })?;
    let mut claims = keycloak_like_claims(issuer.as_str().trim_end_matches('/'));
    claims["exp"] = serde_json::json!(claims["exp"].as_i64().unwrap_or(0) + 3600);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&args.token_file)?;
    file.write_all(key.sign(&claims).as_bytes())?;
    println!("load target ready on {}", running.base_url());
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
