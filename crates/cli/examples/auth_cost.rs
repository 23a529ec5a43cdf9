//! What a token request costs with each client authentication method, against a real Keycloak
//! (the test kit starts one), in one run, as ratios to `secret` (client_secret_basic):
//!
//! ```sh
//! cargo run --release -p playbook-cli --example auth_cost            # 5 rounds × 200 requests
//! cargo run --release -p playbook-cli --example auth_cost -- 9 300   # rounds, requests
//! ```
//!
//! Each method's realm client gets its role and its credential as `playbook client --auth`
//! gives them, then each round sends every method's requests one at a time (the order rotating
//! from round to round), so a request's wall time is Keycloak's work for it plus one round trip
//! on a kept-alive connection. The client's own CPU (making and signing an assertion, say) is
//! this process's CPU time over those requests. The medians of the rounds are printed.

use std::collections::HashMap;
use std::time::Instant;

use playbook_client::{TokenClient, TokenClientConfig};
use playbook_keycloak::{AuthMethod, TokenBinding};
use playbook_testkit::{TestRealm, certs};

fn main() -> anyhow::Result<()> {
    let mut numbers = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let rounds = numbers.next().transpose()?.unwrap_or(5).max(1);
    let requests = numbers.next().transpose()?.unwrap_or(200).max(1);
    playbook_testkit::run(measure(rounds, requests))
}

async fn measure(rounds: usize, requests: usize) -> anyhow::Result<()> {
    let realm = TestRealm::new().await;
    let provisioner = realm.provisioner();
    let mut clients = Vec::new();
    for method in AuthMethod::ALL {
        let binding = TokenBinding::default_for(method);
        let credential = playbook_client::enrol(&provisioner, method, binding).await?;
        let config =
            TokenClientConfig::playbook(realm.token_endpoint(), &certs().ca_pem, &certs().client)
                .with_credential(credential, &realm.urls());
        let client = TokenClient::new(config)?;
        // Connections open, Keycloak's code for this method warm.
        for _ in 0..20 {
            client.request().await?;
        }
        clients.push((method, client));
    }
    let mut seen: HashMap<AuthMethod, Vec<(f64, f64)>> = HashMap::new();
    for round in 0..rounds {
        clients.rotate_left(if round == 0 { 0 } else { 1 });
        for (method, client) in &clients {
            let (wall, cpu) = (Instant::now(), playbook_testkit::cpu::process_seconds());
            for _ in 0..requests {
                client.request().await?;
            }
            let n = requests as f64;
            seen.entry(*method).or_default().push((
                wall.elapsed().as_secs_f64() * 1e3 / n,
                (playbook_testkit::cpu::process_seconds() - cpu) * 1e6 / n,
            ));
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let of = |method: AuthMethod| {
        let runs = &seen[&method];
        (
            median(runs.iter().map(|r| r.0).collect()),
            median(runs.iter().map(|r| r.1).collect()),
        )
    };
    let (secret_wall, secret_cpu) = of(AuthMethod::Secret);
    println!(
        "medians of {rounds} rounds × {requests} token requests, one at a time:\n\n\
         | --auth | method | ms per token request | / secret | client CPU µs per request | / secret |\n\
         |---|---|---|---|---|---|"
    );
    for method in AuthMethod::ALL {
        let (wall, cpu) = of(method);
        println!(
            "| {} | {} | {wall:.2} | {:.2} | {cpu:.0} | {:.2} |",
            method.name(),
            method.oauth_name(),
            wall / secret_wall,
            cpu / secret_cpu
        );
    }
    Ok(())
}
