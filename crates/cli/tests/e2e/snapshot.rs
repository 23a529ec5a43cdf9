//! The run's native Keycloak: where CRIU can run (as root), restored from a snapshot of an
//! exercised Keycloak, not started (the tests ask for a snapshot from the first run on); either
//! way on a copy of the database kept with the tests' extras, so holding spare realms that the
//! tests' realms are renamed from, and an admin that holds only the realms it makes (cheaper
//! permission checks). Every other test of this binary runs against that Keycloak; this one
//! asserts what tells a restore from a start, and those extras.

use playbook_keycloak::RealmOrigin;
use playbook_testkit::{TestRealm, extras, keycloak, run};

/// The native backend's, whose kept databases and snapshots these are; `None` (said) otherwise.
async fn native() -> Option<&'static playbook_provider::Keycloak> {
    let keycloak = keycloak().await;
    if keycloak.backend_name() != "native" {
        eprintln!(
            "[snapshot] the {} backend starts Keycloak without a kept database or snapshots",
            keycloak.backend_name()
        );
        return None;
    }
    Some(keycloak)
}

#[test]
fn the_runs_keycloak_is_restored_from_its_snapshot() {
    let test = "snapshot::the_runs_keycloak_is_restored_from_its_snapshot";
    run(async {
        let Some(keycloak) = native().await else {
            return;
        };
        if !extras::CRIU.available(test) {
            return;
        }
        assert!(
            keycloak.restored_from_snapshot(),
            "CRIU is usable here, yet the run's Keycloak was started, not restored: see the provider's warning and its marker in <build>/.playbook-snapshots/"
        );
    })
}

#[test]
fn the_runs_keycloak_holds_spare_realms_and_an_admin_narrowed_to_them() {
    run(async {
        if native().await.is_none() {
            return;
        }
        // A spare, renamed: its issuer is the new name's, and it issues tokens as imported
        // realms do. A run that claims every spare before this test gets its realms imported,
        // slowly: the tests' Keycloak needs more of them.
        let left = playbook_testkit::admin()
            .await
            .realm_names()
            .await
            .expect("the realms")
            .into_iter()
            .filter(|realm| playbook_keycloak::is_bundled_spare(realm))
            .count();
        assert!(
            left > 0,
            "no spare realm is left (or none was made: see the provider's warning): raise SPARE_REALMS in crates/testkit/src/lib.rs"
        );
        let realm = TestRealm::new().await;
        assert_eq!(realm.origin, RealmOrigin::Spare, "{}", realm.name);
        realm.grant_readonly_role().await;
        let token = realm.token_client().request().await.expect("a token");
        let claims = playbook_client::Claims::peek(token.expose()).expect("claims");
        assert_eq!(claims.iss.as_deref(), Some(realm.issuer().as_str()));
        // The run's admin was narrowed to the realms it makes (`narrow_admin`): it manages
        // this one's users and may not read the master realm's.
        let admin = playbook_testkit::admin().await;
        let users = |realm: &str| {
            let path = format!("{realm}/users?max=1");
            async move { admin.get::<serde_json::Value>(&path).await }
        };
        assert!(users(&realm.name).await.is_ok());
        match users(playbook_keycloak::MASTER_REALM).await {
            Err(playbook_keycloak::KeycloakError::AdminApi { status: 403, .. }) => {}
            other => panic!("the run's admin reads the master realm's users: {other:?}"),
        }
    })
}
