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
//! role in the spare: only one claimant can create it (a realm's role names are unique), and
//! Keycloak answers the others 409. A rename alone would not do: two renames of one realm can
//! both succeed, the second undoing the first.
//!
//! A claimant finds spares by name, from their number, which a realm of its own holds
//! ([`SPARES_REALM`]): one small read instead of listing every realm, which made Keycloak load
//! all ~150 of them (a test run's first claim took 12.6 s on a Keycloak just started) and check
//! its admin's rights on each, for each of the ~110 processes that claim.

use rand::seq::SliceRandom;
use serde_json::json;

use crate::{Admin, KeycloakError, RealmKey, RealmTemplate};

/// Every spare's name starts so; nothing else does.
const SPARE_PREFIX: &str = "playbook-spare-";

/// The realm whose attribute [`COUNT_ATTRIBUTE`] says how many spares were made; never claimed.
/// A kept Keycloak's clean-up leaves it alone.
pub const SPARES_REALM: &str = "playbook-spares";

const COUNT_ATTRIBUTE: &str = "playbook-spare-count";

/// The role whose creation claims a spare; removed once the spare is renamed.
const CLAIM_MARKER: &str = "playbook-claimed";

/// Where a realm made by [`Admin::create_bundled_realm`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealmOrigin {
    /// A spare, renamed. Only a Keycloak made for a test run holds spares, and it is thrown
    /// away with its realms: deleting one would cost Keycloak more than making it did.
    Spare,
    /// Imported now.
    Imported,
}

/// What a pool of spares is made from, for whatever keeps one (a snapshot, a database) to be tied
/// to: the bundled realm they are copies of, and the pool's layout (2: counted by
/// [`SPARES_REALM`]), so that a pool of an older realm.json or layout is never claimed from.
pub fn spares_made_from() -> String {
    format!("layout 2\n{}", RealmTemplate::bundled_source())
}

/// The name of spare number `index`.
fn spare_name(index: usize) -> String {
    format!("{SPARE_PREFIX}{index:03}")
}

/// Whether `realm` is an unclaimed spare: a kept Keycloak's clean-up leaves those alone.
pub fn is_spare(realm: &str) -> bool {
    realm.starts_with(SPARE_PREFIX)
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
        while let Some(spare) = self.next_spare().await? {
            if self.claim(&spare, name).await? {
                return Ok(RealmOrigin::Spare);
            }
        }
        let template = RealmTemplate::bundled();
        let template = match key() {
            Some(key) => template.signed_with(key),
            None => template,
        };
        self.create_realm(&template.named(name)).await?;
        Ok(RealmOrigin::Imported)
    }

    /// Imports spares `0..count`, signed with `key`, two at a time (Keycloak's CPU is the limit),
    /// then the realm that says how many there are; into a database that is kept.
    pub async fn create_spare_realms(
        &self,
        count: usize,
        key: &RealmKey,
    ) -> Result<(), KeycloakError> {
        let template = RealmTemplate::bundled().signed_with(key);
        let create = |index| self.create_realm_named(&template, index);
        for first in (0..count).step_by(2) {
            if first + 1 < count {
                let (one, other) = tokio::join!(create(first), create(first + 1));
                one.and(other)?;
            } else {
                create(first).await?;
            }
        }
        self.create_realm(&json!({
            "realm": SPARES_REALM,
            "enabled": false,
            "attributes": { COUNT_ATTRIBUTE: count.to_string() },
        }))
        .await
    }

    async fn create_realm_named(
        &self,
        template: &RealmTemplate,
        index: usize,
    ) -> Result<(), KeycloakError> {
        self.create_realm(&template.named(&spare_name(index))).await
    }

    /// A spare not tried yet by this session, in an order of its own (claimants that all took
    /// the same one first would all but one have to try again). It may have been claimed by
    /// another session already: the claim says so.
    async fn next_spare(&self) -> Result<Option<String>, KeycloakError> {
        let mut spares = self.spares.lock().await;
        if spares.is_none() {
            let mut names: Vec<String> = (0..self.spare_count().await?).map(spare_name).collect();
            names.shuffle(&mut rand::rng());
            *spares = Some(names);
        }
        Ok(spares.as_mut().and_then(Vec::pop))
    }

    /// How many spares this Keycloak was made with: none without [`SPARES_REALM`], or where
    /// this admin may not read it (a Keycloak not made by this admin for a test run).
    async fn spare_count(&self) -> Result<usize, KeycloakError> {
        let realm = match self.get::<serde_json::Value>(SPARES_REALM).await {
            Ok(realm) => realm,
            Err(KeycloakError::AdminApi { status: 403, .. }) => None,
            Err(error) => return Err(error),
        };
        Ok(realm
            .and_then(|realm| realm["attributes"][COUNT_ATTRIBUTE].as_str()?.parse().ok())
            .unwrap_or(0))
    }

    /// Renames `spare` to `name` if this session is the one that claims it; `false` when
    /// another claimant was first.
    async fn claim(&self, spare: &str, name: &str) -> Result<bool, KeycloakError> {
        match self
            .post(&format!("{spare}/roles"), &json!({ "name": CLAIM_MARKER }))
            .await
        {
            Ok(()) => {}
            // Another claimant created the marker (409) or renamed the spare (404) first. A 5xx,
            // such as a lock timeout between two claimants, leaves this spare to the other one:
            // another spare, or an import, still gives the caller its realm.
            Err(KeycloakError::AdminApi { status, .. })
                if status == 404 || status == 409 || status >= 500 =>
            {
                return Ok(false);
            }
            Err(error) => return Err(error),
        }
        let renamed = self.put(spare, &json!({ "realm": name })).await;
        let holder = if renamed.is_ok() { name } else { spare };
        // A marker left behind harms nothing; failing here would fail a realm that exists.
        if let Err(error) = self.remove(&format!("{holder}/roles/{CLAIM_MARKER}")).await {
            tracing::warn!(realm = holder, %error, "could not remove a spare realm's claim marker");
        }
        renamed.map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_are_told_from_other_realms_by_name() {
        assert!(is_spare(&spare_name(7)));
        assert_eq!(spare_name(7), "playbook-spare-007");
        assert!(!is_spare(crate::REALM));
        assert!(!is_spare(crate::MASTER_REALM));
        assert!(!is_spare(SPARES_REALM), "never claimed");
    }
}
