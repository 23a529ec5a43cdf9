//! The cluster topology against real parts: PostgreSQL, two Keycloak nodes clustered through
//! it, HAProxy balancing them and two resource-server replicas. The demo's steps and lessons
//! pass through the load balancers, and the cluster's four scenarios hold. Without HAProxy or
//! PostgreSQL each test prints one `skipped:` line (unless required).

use playbook_lab::{Answer, ClusterControl, Lab, Verdict, scenario};
use playbook_provider::Keycloak;
use playbook_trace::{Party, Trace};

/// Each attempt's answer in a few words: the status, or the introspection's verdict.
fn answers(verdict: &Verdict) -> Vec<String> {
    verdict
        .attempts
        .iter()
        .map(|a| match &a.answer {
            Answer::Status { status, .. } => status.to_string(),
            Answer::NoToken { why } => format!("no token: {why}"),
            Answer::Active { active } => format!("active {active}"),
            Answer::Survived { failed, .. } => format!("survived, {failed} failed"),
        })
        .collect()
}

/// Every request of the load served (at least the ten made after the load balancer noticed), and
/// the dead part taken out of rotation within the load.
fn assert_survived(answer: &Answer) {
    match answer {
        Answer::Survived {
            served,
            failed,
            noticed_after_ms: Some(noticed),
        } => {
            assert!(*served >= 10 && *failed == 0, "{answer:?}");
            assert!(*noticed < 5_000, "{answer:?}");
        }
        other => panic!("expected a survived load, got {other:?}"),
    }
}

#[test]
fn the_demo_runs_through_the_load_balancers_of_the_cluster() {
    const TEST: &str = "the_demo_runs_through_the_load_balancers_of_the_cluster";
    let Some(keycloak) = playbook_testkit::run(playbook_testkit::keycloak_in_cluster(TEST)) else {
        return;
    };
    let _shared = playbook_testkit::cluster_shared();
    let text = super::demo_through(keycloak, "cluster");
    assert!(
        text.contains("balancing 2 replicas of the resource server"),
        "{text}"
    );
}

/// Where CRIU runs, a test run's cluster is restored from one snapshot of PostgreSQL and both nodes
/// (their connections with them), not started: ~1 s instead of two nodes one after the other.
#[test]
fn the_cluster_is_restored_from_its_snapshot_where_criu_runs() {
    const TEST: &str = "cluster::the_cluster_is_restored_from_its_snapshot_where_criu_runs";
    let Some(keycloak) = playbook_testkit::run(playbook_testkit::keycloak_in_cluster(TEST)) else {
        return;
    };
    if !playbook_testkit::extras::CRIU.available(TEST) {
        return;
    }
    assert!(
        keycloak.restored_from_snapshot(),
        "CRIU is usable here, yet the cluster was started, not restored: see the provider's warning and its marker in <cluster build>/.playbook-snapshots/"
    );
}

/// The cluster's scenarios in one test, in the lab's order: `keycloak-node-down` kills a node,
/// so it comes last and nothing else needs both nodes after it.
#[test]
fn the_cluster_shares_revocations_keys_need_no_sharing_and_a_dead_node_or_replica_costs_nothing() {
    const TEST: &str = "the_cluster_scenarios";
    // It kills a node: no other test may have a request in flight on the cluster then.
    let _alone = playbook_testkit::cluster_exclusive();
    playbook_testkit::run(async {
        let Some(keycloak) = playbook_testkit::keycloak_in_cluster(TEST).await else {
            return;
        };
        assert_eq!(keycloak.nodes().len(), 2);
        let run = |name: &'static str| lab_run(keycloak, name);

        let (verdict, _) = run("revocation-across-nodes").await;
        assert_eq!(
            answers(&verdict),
            ["active true", "active false"],
            "{verdict:#?}"
        );

        let (verdict, trace) = run("key-rotation-across-replicas").await;
        assert_eq!(
            answers(&verdict),
            ["200", "200", "401", "401"],
            "{verdict:#?}"
        );
        // Each replica fetched the realm's keys itself: one JWKS cache per replica.
        let fetched_by = |party: Party| {
            trace
                .snapshot()
                .exchanges()
                .filter(|e| e.from == party && e.path().ends_with("/certs"))
                .count()
        };
        assert!(
            fetched_by(Party::ResourceServer) >= 2,
            "{:?}",
            trace.snapshot().parties()
        );
        assert!(fetched_by(Party::ResourceServerReplica) >= 2);

        let (verdict, _) = run("replica-down").await;
        assert_eq!(answers(&verdict)[..2], ["200", "200"], "{verdict:#?}");
        assert_survived(&verdict.attempts[2].answer);

        let (verdict, _) = run("keycloak-node-down").await;
        assert_eq!(answers(&verdict)[0], "200", "{verdict:#?}");
        assert_survived(&verdict.attempts[1].answer);
        assert_eq!(answers(&verdict)[2], "200", "{verdict:#?}");
    });
}

async fn lab_run(keycloak: &'static Keycloak, name: &'static str) -> (Verdict, Trace) {
    let admin = keycloak.admin().expect("an Admin API client");
    let trace = Trace::new();
    trace.through_proxy(keycloak.base_url().as_str());
    let kill = |node: usize| keycloak.kill_node(node);
    let nodes_up = || {
        keycloak
            .proxy()
            .map(|balancer| balancer.replicas_up())
            .unwrap_or_default()
    };
    let control = ClusterControl {
        kill_keycloak_node: &kill,
        keycloak_nodes_up: &nodes_up,
    };
    let verdict = Lab::new(&admin, playbook_testkit::certs(), trace.clone())
        .in_cluster(keycloak.direct_url().clone(), control)
        .run(scenario(name).expect("a scenario"))
        .await
        .unwrap_or_else(|e| panic!("scenario {name} could not run: {e}"));
    (verdict, trace)
}
