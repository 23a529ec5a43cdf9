//! The run's Keycloak, where CRIU can run (as root): restored from a snapshot of an exercised
//! Keycloak, not started. Every other test of this binary then runs against that restored one,
//! so these assert only what tells a restore from a start.

use playbook_testkit::{admin, extras, keycloak, run};

#[test]
fn the_runs_keycloak_is_restored_from_its_snapshot_and_holds_none_of_its_warm_up() {
    let test = "snapshot::the_runs_keycloak_is_restored_from_its_snapshot";
    run(async {
        let keycloak = keycloak().await;
        if keycloak.backend_name() != "native" {
            eprintln!(
                "[snapshot] the {} backend starts Keycloak without snapshots",
                keycloak.backend_name()
            );
            return;
        }
        if !extras::CRIU.available(test) {
            return;
        }
        assert!(
            keycloak.restored_from_snapshot(),
            "CRIU is usable here, yet the run's Keycloak was started, not restored (see the warning the provider logged)"
        );
        // The warm-up's realms were deleted before the dump: the snapshot's database is the
        // template's, so a run sees what a fresh Keycloak has.
        let realms = admin().await.realm_names().await.expect("the realm list");
        assert!(
            !realms
                .iter()
                .any(|realm| realm.starts_with("playbook-warmup")),
            "{realms:?}"
        );
    })
}
