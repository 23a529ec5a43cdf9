//! The run's Keycloak, where CRIU can run (as root): restored from a snapshot of an exercised
//! Keycloak, not started (the tests ask for a snapshot from the first run on). Every other test
//! of this binary then runs against that restored Keycloak; this one asserts only what tells a
//! restore from a start.

use playbook_testkit::{extras, keycloak, run};

#[test]
fn the_runs_keycloak_is_restored_from_its_snapshot() {
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
            "CRIU is usable here, yet the run's Keycloak was started, not restored: see the provider's warning and its marker in <build>/.playbook-snapshots/"
        );
    })
}
