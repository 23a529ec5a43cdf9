//! Work a Keycloak through what every run asks of it before it is snapshotted, so that the
//! snapshot holds that work's code compiled.
//!
//! A JVM compiles a method to fast machine code only after it has run it thousands of times;
//! until then Keycloak interprets it and its compiler threads take CPU from the requests. A
//! snapshot taken at ready would give every run a Keycloak that has served nothing yet. Its
//! tests and lessons import realms, assign a role, ask for tokens (over mTLS, or as the proxy
//! forwards them) and delete realms
//! (measured with JFR over a whole `cargo test`: realm imports and deletions are ~75 % of
//! Keycloak's CPU, its compilers ~19 %), so that is what runs here, a few times, once per
//! snapshot. A test run's extras are made here too (its spare realms, see
//! `playbook_keycloak::RealmOrigin`: ~150 realms imported once instead of at every run), into a
//! database kept beside the build for every later start.
//! (JDK 25's AOT cache, which `class_archive.rs` keeps, stores profiles but no
//! compiled code: training it did not help, see docs/testing.md.)

use playbook_certs::CertSet;
use playbook_keycloak::{
    Admin, AdminCredentials, CLIENT_ID, KeycloakUrl, MASTER_REALM, Provisioner, READONLY_ROLE,
    RealmKey, RealmTemplate,
};
use serde_json::json;
use url::Url;

use crate::{SnapshotExtras, Training, proxy};

/// The master realm's password policy under [`SnapshotExtras::quick_admin_login`].
const QUICK_HASH_POLICY: &str = "hashAlgorithm(pbkdf2-sha256) and hashIterations(1)";

/// Realms imported, used and deleted.
const ROUNDS: usize = 4;
/// Tokens asked for in each.
const TOKENS: usize = 25;

/// How the warm-up's tokens reach Keycloak: as they will in the runs it is snapshotted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRoute {
    /// The client's certificate in Keycloak's own TLS handshake (the direct topology).
    Mtls,
    /// The client's certificate in the proxy's RFC 9440 header, sent from the proxy's address:
    /// behind a proxy (and in a cluster) Keycloak reads it from there and from nowhere else.
    Forwarded,
}

impl TokenRoute {
    /// An HTTP client for this route, and the header it adds to each token request.
    fn client(self, certs: &CertSet) -> Result<(reqwest::Client, Option<String>), String> {
        match self {
            TokenRoute::Mtls => {
                let identity = format!("{}{}", certs.client.cert_pem(), certs.client.key_pem());
                playbook_https::https_client_with_identity(&certs.ca_pem, identity.as_bytes())
                    .map(|http| (http, None))
            }
            TokenRoute::Forwarded => {
                playbook_https::https_client_from(&certs.ca_pem, proxy::UPSTREAM_SOURCE.into()).map(
                    |http| {
                        let header = playbook_certs::der::to_forwarded(&certs.client.cert_der());
                        (http, Some(header))
                    },
                )
            }
        }
        .map_err(|e| e.to_string())
    }
}

/// Runs the rounds against the Keycloak at `base_url`, its tokens asked for by `route`, then adds
/// `extras`; the first failure says what failed.
pub(crate) async fn exercise(
    base_url: &Url,
    admin: &AdminCredentials,
    certs: &CertSet,
    route: TokenRoute,
    extras: &SnapshotExtras,
    training: Option<&Training>,
) -> Result<(), String> {
    let keycloak = KeycloakUrl::new(base_url.clone());
    let (http, forwarded) = route.client(certs)?;
    let key = RealmKey::generate();
    for round in 0..ROUNDS {
        // A login per round: every `playbook` command logs in once.
        let admin = Admin::new(keycloak.clone(), admin.clone(), &certs.ca_pem)
            .map_err(|e| e.to_string())?;
        let name = format!("playbook-warmup-{round}");
        let template = RealmTemplate::bundled();
        let template = match round % 2 {
            0 => template.signed_with(&key),
            _ => template,
        };
        admin
            .create_realm(&template.named(&name))
            .await
            .map_err(|e| format!("importing {name}: {e}"))?;
        let provisioner = Provisioner::new(&admin, &name);
        let (account, role) = provisioner
            .account_and_role(CLIENT_ID, READONLY_ROLE)
            .await
            .map_err(|e| e.to_string())?;
        provisioner
            .assign(&account, &role)
            .await
            .map_err(|e| e.to_string())?;
        let realm = keycloak.realm(&name);
        for _ in 0..TOKENS {
            let mut request = http.post(realm.token());
            if let Some(certificate) = &forwarded {
                request = request.header(proxy::FORWARDED_CERT_HEADER, certificate);
            }
            let response = request
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", CLIENT_ID),
                ])
                .send()
                .await
                .map_err(|e| playbook_https::describe(&e))?;
            if !response.status().is_success() {
                return Err(format!("a token in {name}: {}", response.status()));
            }
        }
        for url in [realm.discovery(), realm.jwks()] {
            let _ = http.get(url).send().await;
        }
        admin
            .delete_realm(&name)
            .await
            .map_err(|e| format!("deleting {name}: {e}"))?;
    }
    add_extras(base_url, admin, certs, extras, training, &key).await?;
    // Listed once, every realm is in Keycloak's cache, and so in the snapshot: a claim of a
    // spare then finds it there instead of loading it from the database.
    Admin::new(keycloak, admin.clone(), &certs.ca_pem)
        .map_err(|e| e.to_string())?
        .realm_names()
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Adds `extras` to the Keycloak at `base_url`, in this order: the quick admin login (which needs
/// the master realm), the narrowed admin, the `training` (as the narrowed admin will work), the
/// spare realms signed with `key` (granted to the narrowed admin). Into a kept database (no
/// training: a JVM's compiled code is not kept there), or after the warm-up of a snapshot
/// (whose database holds the extras already, unless keeping them failed).
pub(crate) async fn add_extras(
    base_url: &Url,
    admin: &AdminCredentials,
    certs: &CertSet,
    extras: &SnapshotExtras,
    training: Option<&Training>,
    key: &RealmKey,
) -> Result<(), String> {
    let keycloak = KeycloakUrl::new(base_url.clone());
    let session = || Admin::new(keycloak.clone(), admin.clone(), &certs.ca_pem);
    let operator = session().map_err(|e| e.to_string())?;
    if extras.quick_admin_login {
        operator
            .put(
                MASTER_REALM,
                &json!({ "passwordPolicy": QUICK_HASH_POLICY }),
            )
            .await
            .map_err(|e| format!("setting the master realm's password policy: {e}"))?;
        // Keycloak hashes a password again, under the new policy, at its next good login.
        session()
            .map_err(|e| e.to_string())?
            .renew_token()
            .await
            .map_err(|e| format!("logging in again: {e}"))?;
    }
    if extras.narrow_admin {
        operator
            .narrow_to_realm_creation()
            .await
            .map_err(|e| format!("narrowing the admin to the realms it creates: {e}"))?;
    }
    if let Some(training) = training {
        train(training, base_url, admin, certs, &operator).await?;
    }
    if extras.spare_realms > 0 {
        operator
            .create_spare_realms(extras.spare_realms, key)
            .await
            .map_err(|e| format!("making spare realms: {e}"))?;
    }
    Ok(())
}

/// How long a [`Training`] may take before it is given up (the lab's took ~1 min here).
const TRAINING_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `training` against the Keycloak at `base_url`, then deletes what it left. A failed,
/// panicked or overlong training is a warning: the snapshot is made all the same, with less of
/// the run's code compiled in it.
async fn train(
    training: &Training,
    base_url: &Url,
    admin: &AdminCredentials,
    certs: &CertSet,
    operator: &Admin,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    // The spares may be there already (kept in the database): only what the work adds goes.
    let before = operator.realm_names().await.map_err(|e| e.to_string())?;
    let (run, args) = (
        training.run.clone(),
        (base_url.clone(), admin.clone(), certs.clone()),
    );
    let trained = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let outcome = runtime.block_on(tokio::time::timeout(
            TRAINING_LIMIT,
            run(args.0, args.1, args.2),
        ));
        // What it still had running stops here, before its realms are deleted.
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        outcome.unwrap_or_else(|_| Err(format!("not done after {TRAINING_LIMIT:?}")))
    })
    .await
    .unwrap_or_else(|panicked| Err(panicked.to_string()));
    if let Err(reason) = trained {
        tracing::warn!(training = training.name, %reason, "Keycloak's training before its snapshot failed; the snapshot is made all the same");
    }
    // What the work left (its realms) is not the run's. H2 fails a deletion now and then
    // ("Database operation failed"): three tries each, and a realm still left only costs the
    // snapshot one more realm.
    for realm in operator.realm_names().await.map_err(|e| e.to_string())? {
        if realm == MASTER_REALM || before.contains(&realm) {
            continue;
        }
        for tries in 1.. {
            match operator.delete_realm(&realm).await {
                Ok(()) => break,
                Err(_) if tries < 3 => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(error) => {
                    tracing::warn!(%realm, %error, "a realm the training left stays in the snapshot");
                    break;
                }
            }
        }
    }
    tracing::debug!(training = training.name, took = ?started.elapsed(), "trained Keycloak before its snapshot");
    Ok(())
}
