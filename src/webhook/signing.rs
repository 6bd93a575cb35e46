//! Who signs what: each address pattern and each SMTP credential may have a signing secret
//! (`store::signing`, sealed). Every POST made for it — an inbound payload and the address's
//! callbacks, or the credential's events webhook — is signed with it ([`Signing::keys`]).
//! A rotation makes a new secret and lets the replaced one sign too for
//! [`ROTATION_OVERLAP`], so the app can switch without losing a request; the new secret's
//! text is returned once and never shown again.
//!
//! The secrets are opened once per change: each POST reads only the owner's stamp (when its
//! secret was made), which a rotation from the dashboard, the API or the CLI (another
//! process) changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::signature::{SecretError, SigningKeys, SigningSecret};
use crate::clock::Clock;
use crate::store::{SigningStamp, Store, StoreError};

/// How long the replaced secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 60 * 60);

/// Whose secret: the POSTs for an address pattern (as configured or managed, e.g.
/// `*@example.com`), or for an SMTP credential (its username).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Address(String),
    Credential(String),
}

impl Owner {
    /// The store's name for the owner (`store::signing`).
    pub fn key(&self) -> String {
        match self {
            Owner::Address(pattern) => format!("address:{pattern}"),
            Owner::Credential(username) => format!("credential:{username}"),
        }
    }

    /// `address:<pattern>` / `credential:<username>` as stored, back to an owner.
    pub fn from_key(key: &str) -> Option<Owner> {
        match key.split_once(':')? {
            ("address", pattern) => Some(Owner::Address(pattern.to_string())),
            ("credential", username) => Some(Owner::Credential(username.to_string())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Address(pattern) => write!(f, "address {pattern}"),
            Owner::Credential(username) => write!(f, "credential {username}"),
        }
    }
}

/// A new secret, to be shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub secret: String,
    /// When the replaced secret stops signing (Unix seconds), if one was replaced.
    pub previous_until: Option<i64>,
}

/// An owner's signing, as the dashboard and the API show it (no secret in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SigningStatus {
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub created_at: i64,
    /// While a rotation overlaps: when the replaced secret stops signing.
    #[serde(serialize_with = "crate::store::unix_time::rfc3339_option")]
    pub previous_until: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored secret that does not read as one: the store was edited by hand.
    #[error("the stored signing secret of {owner} is not usable: {error}")]
    Corrupt { owner: String, error: SecretError },
}

/// The signing secrets of every owner, opened once per rotation.
#[derive(Clone)]
pub struct Signing {
    store: Store,
    clock: Clock,
    /// The keys as last opened, with the stamp they were opened at (`SigningSecret`'s
    /// `Debug` shows no secret).
    opened: Arc<Mutex<HashMap<Owner, (SigningStamp, SigningKeys)>>>,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing").finish_non_exhaustive()
    }
}

impl Signing {
    pub fn new(store: Store, clock: Clock) -> Signing {
        Signing {
            store,
            clock,
            opened: Arc::default(),
        }
    }

    /// The keys the owner's POSTs are signed with now; `None` when it signs nothing.
    pub async fn keys(&self, owner: &Owner) -> Result<Option<SigningKeys>, SigningError> {
        let Some(stamp) = self.store.signing_stamp(&owner.key()).await? else {
            return Ok(None);
        };
        let cached = self.opened().get(owner).cloned();
        let mut keys = match cached {
            Some((seen, keys)) if seen == stamp => keys,
            _ => {
                let Some(keys) = self.open(owner).await? else {
                    return Ok(None);
                };
                self.opened().insert(owner.clone(), (stamp, keys.clone()));
                keys
            }
        };
        if stamp
            .previous_until
            .is_none_or(|until| until <= self.clock.unix())
        {
            keys.previous = None;
        }
        Ok(Some(keys))
    }

    async fn open(&self, owner: &Owner) -> Result<Option<SigningKeys>, SigningError> {
        let Some(stored) = self.store.signing_secrets(&owner.key()).await? else {
            return Ok(None);
        };
        let parse = |text: &str| {
            SigningSecret::parse(text).map_err(|error| SigningError::Corrupt {
                owner: owner.to_string(),
                error,
            })
        };
        Ok(Some(SigningKeys {
            current: parse(&stored.current)?,
            previous: stored.previous.map(|(text, _)| parse(&text)).transpose()?,
        }))
    }

    /// A new secret for the owner; the one it replaces signs too for [`ROTATION_OVERLAP`].
    pub async fn rotate(&self, owner: &Owner) -> Result<Rotated, SigningError> {
        let had_one = self.store.signing_stamp(&owner.key()).await?.is_some();
        let secret = SigningSecret::generate().expose();
        let now = self.clock.unix();
        let until = now + ROTATION_OVERLAP.as_secs() as i64;
        (self.store)
            .rotate_signing_secret(&owner.key(), secret.clone(), now, until)
            .await?;
        Ok(Rotated {
            secret,
            previous_until: had_one.then_some(until),
        })
    }

    /// The replaced secret stops signing now; false when none was signing.
    pub async fn retire_previous(&self, owner: &Owner) -> Result<bool, SigningError> {
        let signing = self.status(owner).await?;
        if signing.is_none_or(|s| s.previous_until.is_none()) {
            return Ok(false);
        }
        Ok(self
            .store
            .retire_previous_signing_secret(&owner.key())
            .await?)
    }

    /// The owner's POSTs are not signed from now on; false when they were not.
    pub async fn remove(&self, owner: &Owner) -> Result<bool, SigningError> {
        self.opened().remove(owner);
        Ok(self.store.remove_signing_secret(&owner.key()).await?)
    }

    /// Whether and since when the owner signs; `None` when it does not.
    pub async fn status(&self, owner: &Owner) -> Result<Option<SigningStatus>, SigningError> {
        let stamp = self.store.signing_stamp(&owner.key()).await?;
        Ok(stamp.map(|stamp| self.shown(stamp)))
    }

    /// Every owner that signs, with its status.
    pub async fn all(&self) -> Result<Vec<(Owner, SigningStatus)>, SigningError> {
        let owners = self.store.signing_owners().await?;
        Ok(owners
            .into_iter()
            .filter_map(|(key, stamp)| Some((Owner::from_key(&key)?, self.shown(stamp))))
            .collect())
    }

    fn shown(&self, stamp: SigningStamp) -> SigningStatus {
        SigningStatus {
            created_at: stamp.created_at,
            previous_until: stamp
                .previous_until
                .filter(|until| *until > self.clock.unix()),
        }
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, HashMap<Owner, (SigningStamp, SigningKeys)>> {
        self.opened
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing() -> (tempfile::TempDir, Signing, Clock) {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let clock = Clock::manual(time::macros::datetime!(2026-12-06 00:00 UTC));
        (dir, Signing::new(store, clock.clone()), clock)
    }

    #[tokio::test]
    async fn a_rotation_overlaps_for_a_day_then_only_the_new_secret_signs() {
        let (_dir, signing, clock) = signing();
        let owner = Owner::Address("*@example.com".into());
        assert_eq!(signing.keys(&owner).await.unwrap(), None);

        let first = signing.rotate(&owner).await.unwrap();
        assert_eq!(first.previous_until, None);
        let keys = signing.keys(&owner).await.unwrap().unwrap();
        assert_eq!(keys.current.expose(), first.secret);
        assert_eq!(keys.previous, None);

        clock.advance(Duration::from_secs(60));
        let second = signing.rotate(&owner).await.unwrap();
        assert_ne!(second.secret, first.secret);
        assert_eq!(second.previous_until, Some(clock.unix() + 86_400));
        let keys = signing.keys(&owner).await.unwrap().unwrap();
        assert_eq!(keys.current.expose(), second.secret);
        assert_eq!(keys.previous.unwrap().expose(), first.secret);

        clock.advance(ROTATION_OVERLAP);
        let keys = signing.keys(&owner).await.unwrap().unwrap();
        assert_eq!(keys.current.expose(), second.secret);
        assert_eq!(keys.previous, None, "past the overlap");
        let status = signing.status(&owner).await.unwrap().unwrap();
        assert_eq!(status.previous_until, None);
        assert!(!signing.retire_previous(&owner).await.unwrap());
    }

    #[tokio::test]
    async fn retire_and_remove_take_effect_on_the_next_post() {
        let (_dir, signing, _clock) = signing();
        let owner = Owner::Credential("app".into());
        let other = Owner::Address("app".into());
        signing.rotate(&owner).await.unwrap();
        signing.rotate(&owner).await.unwrap();
        assert!(
            signing
                .keys(&owner)
                .await
                .unwrap()
                .unwrap()
                .previous
                .is_some()
        );
        assert_eq!(
            signing.keys(&other).await.unwrap(),
            None,
            "owners are kept apart"
        );

        assert!(signing.retire_previous(&owner).await.unwrap());
        assert_eq!(signing.keys(&owner).await.unwrap().unwrap().previous, None);
        assert_eq!(signing.all().await.unwrap().len(), 1);
        assert_eq!(signing.all().await.unwrap()[0].0, owner);

        assert!(signing.remove(&owner).await.unwrap());
        assert_eq!(signing.keys(&owner).await.unwrap(), None);
        assert!(!signing.remove(&owner).await.unwrap());
    }

    #[tokio::test]
    async fn a_rotation_by_another_process_is_seen_at_the_next_post() {
        let (dir, signing, clock) = signing();
        let owner = Owner::Address("a@x.test".into());
        signing.rotate(&owner).await.unwrap();
        let before = signing.keys(&owner).await.unwrap().unwrap();
        // `postern signing rotate` writes through a store of its own.
        let elsewhere = Signing::new(Store::open(dir.path()).unwrap(), clock.clone());
        clock.advance(Duration::from_secs(1));
        let rotated = elsewhere.rotate(&owner).await.unwrap();
        let after = signing.keys(&owner).await.unwrap().unwrap();
        assert_eq!(after.current.expose(), rotated.secret);
        assert_eq!(after.previous, Some(before.current));
    }

    #[test]
    fn owners_round_trip_through_their_stored_names() {
        for owner in [
            Owner::Address("*@x:y.test".into()),
            Owner::Credential("c".into()),
        ] {
            assert_eq!(Owner::from_key(&owner.key()), Some(owner));
        }
        assert_eq!(Owner::from_key("user:x"), None);
    }
}
