//! What the run's Keycloak is put through once before its snapshot is taken: every scenario of
//! the attack lab in the direct topology, then those FAPI 2.0 allows under it. The tests, the
//! executed pages and the commands they run make the same requests (the lab's scenarios are the
//! playbook's flows and its attacks), so a Keycloak restored from that snapshot serves them with
//! code its JIT compiled then, instead of compiling it again in every run (see
//! `playbook_provider::Training`).

use std::sync::Arc;

use playbook_keycloak::{Admin, KeycloakUrl};
use playbook_lab::{Lab, Needs, SCENARIOS};
use playbook_provider::Training;
use playbook_trace::Trace;

/// The lab, as [`Training`] for the run's Keycloak snapshot.
pub(crate) fn lab() -> Training {
    Training {
        name: "the lab's direct scenarios, plain and under FAPI 2.0, their realms imported",
        run: Arc::new(|base_url, admin, certs| {
            Box::pin(async move {
                // Its realms are deleted after it: the spares stay for the runs.
                let admin = Admin::new(KeycloakUrl::new(base_url), admin, &certs.ca_pem)
                    .map_err(|e| e.to_string())?
                    .importing();
                let direct = SCENARIOS.iter().filter(|s| s.needs == Needs::Nothing);
                for fapi2 in [false, true] {
                    let lab = Lab::new(&admin, &certs, Trace::off());
                    let lab = if fapi2 { lab.under_fapi2() } else { lab };
                    // Those FAPI 2.0 forbids are refused before they ask Keycloak anything.
                    let allowed = direct
                        .clone()
                        .filter(|s| !fapi2 || s.fapi2.binding().is_some());
                    for scenario in allowed {
                        // One that fails still leaves the rest to train.
                        if let Err(error) = lab.run(scenario).await {
                            eprintln!("[testkit] training: {} ({error})", scenario.name);
                        }
                    }
                }
                Ok(())
            })
        }),
    }
}
