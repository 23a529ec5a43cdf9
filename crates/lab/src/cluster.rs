//! The cluster topology's scenarios: what survives a node or a replica going down, and what the
//! nodes and replicas share (or need not share). They run only with `--topology cluster`:
//! PostgreSQL, two Keycloak nodes, two resource-server replicas, a load balancer in front of
//! each tier (docs/production.md).
//!
//! A request can be pinned to one node or replica through the load balancer with the
//! [`PIN_HEADER`] the lab's HAProxy configuration routes on; that is how "revoke on node 1, ask
//! node 2" is made certain rather than left to round robin.

use std::time::{Duration, Instant};

use playbook_certs::LeafSpec;
use playbook_client::ResourceApi;
use playbook_keycloak::{CLIENT_ID, RESOURCE_SERVER_CLIENT_ID};
use playbook_proxy::PIN_HEADER;
use playbook_trace::{Exchange, Party};

use crate::arena::{Arena, Server};
use crate::scenarios::{Attempts, kid};
use crate::{Answer, Attempt, Expect, LabError};

/// How many requests the failure scenarios make after the load balancer has taken the dead part
/// out: the lesson is that requests are served after that as well as before. Ending there rather
/// than after a fixed span keeps the lab (and its tests) from waiting on the clock.
const AFTER_NOTICED: u32 = 10;
/// How long the load waits for the load balancer to notice: the health check (a check a second,
/// two failures to take a part out) notices within ~2 s, so a part still in rotation by then is a
/// failed verdict.
const UNDER_LOAD: Duration = Duration::from_secs(5);
/// The pause between two requests of that load.
const PACE: Duration = Duration::from_millis(100);
/// The Keycloak node `keycloak-node-down` kills (0-based): the second.
const KILLED: usize = 1;

pub(crate) async fn keycloak_node_down(arena: &Arena<'_>) -> Attempts {
    let control = arena.cluster("keycloak-node-down")?;
    let server = arena.resource_server(|_| {}).await?;
    let mut attempts = vec![
        arena
            .token_and_call(
                &server,
                &arena.victim,
                "a token through the load balancer while both nodes run, spent at the API",
                Expect::Status(200),
            )
            .await?,
    ];
    // Node 2, not the first node: Keycloak 26.7's readiness check reports a survivor not ready
    // when the node that died was the cluster's coordinator (its row stays in the database's
    // discovery table), and docs/production.md tells that story; this scenario tells this one.
    // Timed from the kill's start: killing waits until the node's processes are gone, and the
    // load balancer may notice meanwhile.
    let killed = Instant::now();
    tokio::task::block_in_place(|| (control.kill_keycloak_node)(KILLED));
    let answer = load(
        arena,
        killed,
        || (control.keycloak_nodes_up)().get(KILLED) == Some(&false),
        || async { arena.victim.request().await.is_ok() },
    )
    .await;
    attempts.push(Attempt {
        tried: format!(
            "node 2 killed; token requests through the load balancer until it took the node out, \
             and {AFTER_NOTICED} more"
        ),
        expected: Expect::Survived,
        answer,
    });
    attempts.push(
        arena
            .token_and_call(
                &server,
                &arena.victim,
                "a new token from the surviving node, spent at the API",
                Expect::Status(200),
            )
            .await?,
    );
    Ok(attempts)
}

pub(crate) async fn replica_down(arena: &Arena<'_>) -> Attempts {
    let server = arena.resource_server(|_| {}).await?;
    let token = arena.victim.token().await?;
    let mut attempts = Vec::new();
    for replica in 1..=server.replicas() {
        attempts.push(
            call_pinned(
                arena,
                &server,
                replica,
                token.expose(),
                format!("the token at replica {replica}, pinned through the load balancer"),
                Expect::Status(200),
            )
            .await?,
        );
    }
    server.halt_first_replica();
    let halted = Instant::now();
    let api = ResourceApi::new(server.base_url(), arena.victim.clone());
    let answer = load(
        arena,
        halted,
        || server.replicas_up().first() == Some(&false),
        || async {
            api.get_with(
                playbook_resource_server::api::LIST_USERS.path,
                token.expose(),
            )
            .await
            .is_ok_and(|answer| answer.status == 200)
        },
    )
    .await;
    attempts.push(Attempt {
        tried: format!(
            "replica 1 killed; API calls through the load balancer until it took the replica \
             out, and {AFTER_NOTICED} more"
        ),
        expected: Expect::Survived,
        answer,
    });
    Ok(attempts)
}

/// Requests one after the other from the moment a part was killed (`since`) until the load
/// balancer has taken it out (`noticed`) and [`AFTER_NOTICED`] more, or for [`UNDER_LOAD`] if it
/// never does; `request` says whether one was served.
async fn load<F: Future<Output = bool>>(
    arena: &Arena<'_>,
    since: Instant,
    noticed: impl Fn() -> bool,
    request: impl Fn() -> F,
) -> Answer {
    let (mut served, mut failed) = (0u32, 0u32);
    let mut noticed_after = None;
    let mut since_noticed = 0;
    // Fifty arrows would hide the lesson: the load is counted, not drawn.
    let _quiet = arena.trace().quiet();
    while since_noticed < AFTER_NOTICED && (noticed_after.is_some() || since.elapsed() < UNDER_LOAD)
    {
        if noticed_after.is_none() && noticed() {
            noticed_after = Some(since.elapsed());
        }
        match request().await {
            true => served += 1,
            false => failed += 1,
        }
        if noticed_after.is_some() {
            since_noticed += 1;
        }
        tokio::time::sleep(PACE).await;
    }
    Answer::Survived {
        served,
        failed,
        noticed_after_ms: noticed_after.map(|after| after.as_millis() as u64),
    }
}

pub(crate) async fn revocation_across_nodes(arena: &Arena<'_>) -> Attempts {
    let token = arena.victim.token().await?;
    let ca = &arena.certs().ca_pem;
    let setup = |e: playbook_https::TlsMaterialError| LabError::Setup(e.to_string());
    let client =
        playbook_https::https_client_with_identity(ca, &arena.certs().client.identity_pem())
            .map_err(setup)?;
    // The resource server's own identity, as the revocation scenario makes it.
    let resource_server =
        arena.issue(&LeafSpec::server(playbook_certs::RESOURCE_SERVER_CN).also_client())?;
    let introspector =
        playbook_https::https_client_with_identity(ca, &resource_server.identity_pem())
            .map_err(setup)?;
    let introspect = |tried: &'static str, expected| {
        let (introspector, token) = (&introspector, token.expose());
        async move {
            let form = [("token", token), ("client_id", RESOURCE_SERVER_CLIENT_ID)];
            let answer = pinned_post(
                arena,
                introspector,
                Party::ResourceServer,
                arena.urls.introspection(),
                2,
                &form,
                "introspection as the resource server's client",
            )
            .await?;
            let active = answer.json::<serde_json::Value>().unwrap_or_default()["active"] == true;
            Ok::<_, LabError>(Attempt {
                tried: tried.into(),
                expected,
                answer: Answer::Active { active },
            })
        }
    };
    let mut attempts =
        vec![introspect("node 2 asked about the live token", Expect::Active(true)).await?];
    let form = [
        ("token", token.expose()),
        ("token_type_hint", "access_token"),
        ("client_id", CLIENT_ID),
    ];
    let revoked = pinned_post(
        arena,
        &client,
        Party::Client,
        arena.urls.revocation(),
        1,
        &form,
        "revocation, authenticated by the client certificate",
    )
    .await?;
    if !revoked.is_success() {
        return Err(LabError::Setup(format!(
            "node 1 refused the revocation: {} {}",
            revoked.status,
            revoked.text()
        )));
    }
    attempts.push(
        introspect(
            "node 2 asked about the token the client revoked at node 1",
            Expect::Active(false),
        )
        .await?,
    );
    Ok(attempts)
}

pub(crate) async fn key_rotation_across_replicas(arena: &Arena<'_>) -> Attempts {
    let server = arena
        .resource_server(|config| config.min_refresh_interval = Duration::from_secs(1))
        .await?;
    let replicas = server.replicas();
    let old = arena.victim.token().await?;
    let mut attempts = Vec::new();
    arena.add_signing_key().await?;
    arena.victim.forget().await;
    let new = arena.victim.token().await?;
    for replica in 1..=replicas {
        attempts.push(
            call_pinned(
                arena,
                &server,
                replica,
                new.expose(),
                format!(
                    "a token signed by the new key {} at replica {replica}, which fetches the JWKS itself",
                    kid(&new)
                ),
                Expect::Status(200),
            )
            .await?,
        );
    }
    arena.remove_signing_key(&kid(&old)).await?;
    // Each replica's periodic refresh would notice within five minutes; the lab asks now.
    server
        .refresh_keys("again: asked to, after the old key was removed")
        .await;
    for replica in 1..=replicas {
        attempts.push(
            call_pinned(
                arena,
                &server,
                replica,
                old.expose(),
                format!("the old key's token at replica {replica}, once the key is removed"),
                Expect::Status(401),
            )
            .await?,
        );
    }
    Ok(attempts)
}

/// `GET /api/users` with `token` at replica `replica` (1-based) of `server`, through its load
/// balancer, as the victim.
async fn call_pinned(
    arena: &Arena<'_>,
    server: &Server,
    replica: usize,
    token: &str,
    tried: String,
    expected: Expect,
) -> Result<Attempt, LabError> {
    let party = match replica {
        1 => Party::ResourceServer,
        _ => Party::ResourceServerReplica,
    };
    let api = ResourceApi::new(server.base_url(), arena.victim.clone())
        .drawn_as(party)
        .with_header(PIN_HEADER, &replica.to_string());
    arena.call_api(api, token, tried, expected).await
}

/// A form POST to `url` through the load balancer, pinned to Keycloak node `node`, recorded as
/// `from`'s. Written by hand: no client of the playbook pins a node.
async fn pinned_post(
    arena: &Arena<'_>,
    http: &reqwest::Client,
    from: Party,
    url: url::Url,
    node: usize,
    form: &[(&str, &str)],
    purpose: &str,
) -> Result<playbook_https::Answer, LabError> {
    let mut exchange = Exchange::new(from, Party::Keycloak, "POST", url.as_str());
    exchange.purpose = format!("{purpose}, pinned to node {node}");
    let request = http
        .post(url.clone())
        .header(PIN_HEADER, node.to_string())
        .form(form);
    playbook_https::send_recorded(arena.trace(), exchange, request, |answer, exchange| {
        let body: serde_json::Value = answer.json().unwrap_or_default();
        exchange.answer = match (&body["active"], body["error"].as_str()) {
            (serde_json::Value::Bool(active), _) => format!("active: {active}"),
            (_, Some(error)) => error.to_owned(),
            _ => answer.reason().to_owned(),
        };
    })
    .await
    .map_err(|e| LabError::Setup(format!("{url}: {}", playbook_https::describe(&e))))
}
