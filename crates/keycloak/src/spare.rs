//! Spare realms: the bundled realm imported ahead of time, then claimed by renaming one, so that
//! a test's realm costs Keycloak ~0.05 s of CPU instead of 0.4–1.5 s.
//!
//! Importing a realm is the dearest thing the tests ask of Keycloak. Beyond the realm's JSON,
//! Keycloak makes its default flows, clients, scopes and roles, and a client with its roles in
//! the master realm, which makes every later import dearer. Measured on a 2-core machine, one
//! import took ~0.4 s of CPU beside 10 realms and ~0.85 s beside 60. A run imports ~130 realms.
//!
//! A test run's Keycloak starts with them, imported once into a database kept for it (see
//! `playbook-provider`), or restored from a snapshot made from that database; a rename costs
//! ~0.03 s. Several processes claim from one
//! Keycloak (the tests, and the `playbook` commands they run), so a claim first creates a marker
//! role named after the spare in [`SPARES_REALM`]: only one claimant can create it (a realm's
//! role names are unique), and Keycloak answers the others 409. A rename alone would not do: two
//! renames of one realm can both succeed, the second undoing the first. The markers stay there:
//! they were first made in the spare itself and deleted after the rename, and deleting a role
//! (Keycloak looks for it in every composite and mapping) took 5 % of a run's Keycloak's CPU.
//!
//! A claimant finds spares by name, from their number, which a realm of its own holds
//! ([`SPARES_REALM`]): one small read instead of listing every realm, which made Keycloak load
//! all ~150 of them (a test run's first claim took 12.6 s on a Keycloak just started) and check
//! its admin's rights on each, for each of the ~110 processes that claim.
//!
//! The workload platforms the federated method trusts are realms too (~20 a run, each imported
//! at ~0.5 s of Keycloak's CPU: a sixth of what a run's Keycloak spent, profiled), so they have
//! a pool of their own. A platform is made for one realm (its workloads' tokens name that realm
//! as their audience): a spare platform is made for none, and aimed at its realm when claimed.

use rand::seq::SliceRandom;
use serde_json::json;

use crate::{Admin, KeycloakError, RealmKey, RealmTemplate, RealmUrl};

/// The realm whose attributes say how many spares of each [`Pool`] were made; never claimed.
/// A kept Keycloak's clean-up leaves it alone.
pub const SPARES_REALM: &str = "playbook-spares";

/// What [`Admin::retire_realm`] renames a realm to, before a random suffix.
const RETIRED_PREFIX: &str = "playbook-retired-";

/// A spare workload platform for every this many spares of the bundled realm: a run makes ~110
/// realms and ~20 platforms (2026-12-05).
const REALMS_PER_PLATFORM: usize = 5;

/// The kinds of spare realm, each a pool of its own.
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// Copies of the bundled realm (`oauth2-provider/realm.json`).
    Bundled,
    /// Workload platforms (`oauth2-provider/platform-realm.json`).
    Platform,
}

/// Every pool, in the order of [`SpareNames`] and of [`Admin::spare_counts`]' answer.
const POOLS: [Pool; 2] = [Pool::Bundled, Pool::Platform];

impl Pool {
    /// What this pool's spares are named, before their number; no other realm is named so.
    fn prefix(self) -> &'static str {
        match self {
            Pool::Bundled => "playbook-spare-",
            Pool::Platform => "playbook-spare-platform-",
        }
    }

    /// The name of this pool's spare number `index`.
    fn spare(self, index: usize) -> String {
        format!("{}{index:03}", self.prefix())
    }

    /// Whether `realm` is one of this pool's spares, unclaimed.
    fn holds(self, realm: &str) -> bool {
        realm
            .strip_prefix(self.prefix())
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The attribute of [`SPARES_REALM`] that says how many were made.
    fn count_attribute(self) -> &'static str {
        match self {
            Pool::Bundled => "playbook-spare-count",
            Pool::Platform => "playbook-spare-platform-count",
        }
    }

    /// Where this pool sits in [`POOLS`].
    fn index(self) -> usize {
        match self {
            Pool::Bundled => 0,
            Pool::Platform => 1,
        }
    }
}

/// The spares a session has not tried to claim yet, one list per pool of [`POOLS`].
pub(crate) type SpareNames = [Vec<String>; POOLS.len()];

/// What the role that claims a spare is named, before the spare's name (in [`SPARES_REALM`]).
const CLAIM_MARKER: &str = "claimed-";

/// Where a realm made by [`Admin::create_bundled_realm`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealmOrigin {
    /// A spare, renamed. Only a Keycloak made for a test run holds spares, and it is thrown
    /// away with its realms: deleting one would cost Keycloak more than making it did.
    Spare,
    /// Imported now.
    Imported,
}

/// What the spares are made from, for whatever keeps them (a snapshot, a database) to be tied
/// to: the realms they are copies of, and their layout (3: counted by [`SPARES_REALM`], with
/// platforms), so that spares of an older realm.json or layout are never claimed.
pub fn spares_made_from() -> String {
    format!(
        "layout 3\n{}\n{}",
        RealmTemplate::bundled_source(),
        RealmTemplate::platform_source()
    )
}

/// Whether `realm` is an unclaimed spare of any pool: a kept Keycloak's clean-up leaves those
/// alone.
pub fn is_spare(realm: &str) -> bool {
    POOLS.iter().any(|pool| pool.holds(realm))
}

/// Whether `realm` is an unclaimed spare of the bundled realm: a run claims ~110 of them, so
/// these say whether a kept Keycloak can serve another run.
pub fn is_bundled_spare(realm: &str) -> bool {
    Pool::Bundled.holds(realm)
}

impl Admin {
    /// Makes realm `name` the bundled realm, signed with `key()` (`None`: keys Keycloak
    /// generates). A spare is renamed to `name` if this Keycloak holds one; its key is then the
    /// one it was made with, and `key` is never called (a new RSA key costs ~0.1–0.2 s). A
    /// renamed spare differs from an import only in names Keycloak derived from the spare's at
    /// import: its default role (`default-roles-playbook-spare-NNN`), and its built-in clients'
    /// URLs.
    pub async fn create_bundled_realm<'k>(
        &self,
        name: &str,
        key: impl FnOnce() -> Option<&'k RealmKey>,
    ) -> Result<RealmOrigin, KeycloakError> {
        if self.claim_from(Pool::Bundled, name).await? {
            return Ok(RealmOrigin::Spare);
        }
        let template = RealmTemplate::bundled();
        let template = match key() {
            Some(key) => template.signed_with(key),
            None => template,
        };
        self.create_realm(&template.named(name)).await?;
        Ok(RealmOrigin::Imported)
    }

    /// Makes realm `name` a workload platform whose workloads' tokens name `audience` (the
    /// issuer of the realm that trusts it). A spare platform is renamed and aimed at `audience`
    /// if this Keycloak holds one; else one is imported, signed with a key of its own.
    pub async fn create_platform_realm(
        &self,
        name: &str,
        audience: &RealmUrl,
    ) -> Result<RealmOrigin, KeycloakError> {
        if self.claim_from(Pool::Platform, name).await? {
            self.aim_workloads_at(name, audience.issuer()).await?;
            return Ok(RealmOrigin::Spare);
        }
        self.create_realm(&RealmTemplate::platform(name, audience.issuer()))
            .await?;
        Ok(RealmOrigin::Imported)
    }

    /// Imports `count` spares of the bundled realm signed with `key`, and a spare workload
    /// platform for every [`REALMS_PER_PLATFORM`] of them (each signed with a key of its own),
    /// two at a time (Keycloak's CPU is the limit), then the realm that says how many there are; into a database that is kept.
    pub async fn create_spare_realms(
        &self,
        count: usize,
        key: &RealmKey,
    ) -> Result<(), KeycloakError> {
        let bundled = RealmTemplate::bundled().signed_with(key);
        // Aimed at the realm that counts them until a claim aims each at its realm.
        let nobody = self.keycloak().realm(SPARES_REALM);
        let platforms = count.div_ceil(REALMS_PER_PLATFORM);
        let spares = (0..count)
            .map(|index| bundled.named(&Pool::Bundled.spare(index)))
            .chain((0..platforms).map(|index| {
                RealmTemplate::platform(&Pool::Platform.spare(index), nobody.issuer())
            }))
            .collect::<Vec<_>>();
        for pair in spares.chunks(2) {
            match pair {
                [one, other] => {
                    let (one, other) =
                        tokio::join!(self.create_realm(one), self.create_realm(other));
                    one.and(other)?;
                }
                [one] => self.create_realm(one).await?,
                _ => unreachable!("chunks of two"),
            }
        }
        self.create_realm(&json!({
            "realm": SPARES_REALM,
            "enabled": false,
            "attributes": {
                Pool::Bundled.count_attribute(): count.to_string(),
                Pool::Platform.count_attribute(): platforms.to_string(),
            },
        }))
        .await
    }

    /// Takes realm `name` out of the way, as if deleted: its name is free again, and its issuer,
    /// discovery document and keys answer 404 at their URLs. Renamed where this Keycloak holds
    /// spares (a test run's, thrown away with its realms): a rename cost ~30 ms, a deletion
    /// 0.3–1 s of Keycloak's CPU beside ~150 realms (7 % of a run's Keycloak's, profiled).
    /// Deleted elsewhere.
    pub async fn retire_realm(&self, name: &str) -> Result<(), KeycloakError> {
        if self.spare_counts().await?.iter().all(|count| *count == 0) {
            return self.delete_realm(name).await;
        }
        let retired = format!("{RETIRED_PREFIX}{:08x}", rand::random::<u32>());
        match self.put(name, &json!({ "realm": retired })).await {
            Err(KeycloakError::AdminApi { status: 404, .. }) => Ok(()),
            renamed => renamed,
        }
    }

    /// Claims a spare of `pool` and renames it `name`; `false` when none is left to this
    /// session.
    async fn claim_from(&self, pool: Pool, name: &str) -> Result<bool, KeycloakError> {
        while let Some(spare) = self.next_spare(pool).await? {
            if self.claim(&spare, name).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A spare of `pool` not tried yet by this session, in an order of its own (claimants that
    /// all took the same one first would all but one have to try again). It may have been
    /// claimed by another session already: the claim says so.
    async fn next_spare(&self, pool: Pool) -> Result<Option<String>, KeycloakError> {
        let mut spares = self.spares.lock().await;
        if spares.is_none() {
            let counts = self.spare_counts().await?;
            *spares = Some(POOLS.map(|pool| {
                let mut names: Vec<String> = (0..counts[pool.index()])
                    .map(|index| pool.spare(index))
                    .collect();
                names.shuffle(&mut rand::rng());
                names
            }));
        }
        Ok(spares
            .as_mut()
            .and_then(|spares| spares[pool.index()].pop()))
    }

    /// How many spares of each [`Pool`] this Keycloak was made with: none without
    /// [`SPARES_REALM`], or where this admin may not read it (a Keycloak not made by this admin
    /// for a test run).
    async fn spare_counts(&self) -> Result<[usize; POOLS.len()], KeycloakError> {
        let realm = match self.get::<serde_json::Value>(SPARES_REALM).await {
            Ok(realm) => realm.unwrap_or_default(),
            Err(KeycloakError::AdminApi { status: 403, .. }) => serde_json::Value::Null,
            Err(error) => return Err(error),
        };
        Ok(POOLS.map(|pool| {
            realm["attributes"][pool.count_attribute()]
                .as_str()
                .and_then(|count| count.parse().ok())
                .unwrap_or(0)
        }))
    }

    /// Renames `spare` to `name` if this session is the one that claims it; `false` when
    /// another claimant was first.
    async fn claim(&self, spare: &str, name: &str) -> Result<bool, KeycloakError> {
        let marker = json!({ "name": format!("{CLAIM_MARKER}{spare}") });
        match self.post(&format!("{SPARES_REALM}/roles"), &marker).await {
            Ok(()) => {}
            // Another claimant created the marker first (409). A 5xx, such as a lock timeout
            // between two claimants, leaves this spare to the other one: another spare, or an
            // import, still gives the caller its realm.
            Err(KeycloakError::AdminApi { status, .. }) if status == 409 || status >= 500 => {
                return Ok(false);
            }
            Err(error) => return Err(error),
        }
        match self.put(spare, &json!({ "realm": name })).await {
            Ok(()) => Ok(true),
            // Renamed already: by a claimant that left no marker here (an older playbook's, on a
            // Keycloak kept between runs), or by an earlier rename of ours that Keycloak carried
            // out after our side had given up on its answer.
            Err(KeycloakError::AdminApi { status: 404, .. }) => Ok(false),
            Err(error) => {
                let server_side =
                    matches!(error, KeycloakError::AdminApi { status, .. } if status >= 500);
                // A 5xx (a lock timeout between two claimants under load) may come after the
                // rename was made: then the realm is there, and claimed.
                if server_side && self.realm_exists(name).await? {
                    return Ok(true);
                }
                // The spare is still there: whoever tries it next may have it. After a 5xx the
                // claim moves on, as at the marker.
                let marker = format!("{SPARES_REALM}/roles/{CLAIM_MARKER}{spare}");
                let _ = self.remove(&marker).await;
                match server_side {
                    true => Ok(false),
                    false => Err(error),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_are_told_from_other_realms_by_name() {
        assert!(is_spare(&Pool::Bundled.spare(7)));
        assert_eq!(Pool::Bundled.spare(7), "playbook-spare-007");
        assert!(is_spare(&Pool::Platform.spare(7)));
        assert!(!is_spare(crate::REALM));
        assert!(!is_spare(crate::MASTER_REALM));
        assert!(!is_spare(SPARES_REALM), "never claimed");
        assert!(!is_bundled_spare(&Pool::Platform.spare(7)));
        assert!(
            !is_spare("playbook-spare-platform-"),
            "a spare has a number"
        );
    }
}
