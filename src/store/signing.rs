//! Webhook signing secrets (`webhook::signing`), one row per owner (`address:<pattern>`,
//! `credential:<username>`): the current secret and, while a rotation overlaps, the one it
//! replaced with the time it stops signing. Both sealed like every other secret.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// An owner's secrets as stored (the text forms, opened), with when they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigning {
    pub current: String,
    pub created_at: i64,
    /// The replaced secret and the Unix time it stops signing.
    pub previous: Option<(String, i64)>,
}

/// What is known of an owner's secrets without opening them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningStamp {
    /// New (random) at each rotation.
    pub generation: i64,
    pub created_at: i64,
    pub previous_until: Option<i64>,
}

impl Store {
    /// When the owner's secret was made and how long the replaced one still signs; `None`
    /// when the owner signs nothing. Opens no secret: cheap enough for every POST.
    pub async fn signing_stamp(&self, owner: &str) -> Result<Option<SigningStamp>, StoreError> {
        let owner = owner.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT generation, created_at, previous_until FROM signing_secrets
                     WHERE owner = ?1",
                )?
                .query_row([owner], |row| {
                    Ok(SigningStamp {
                        generation: row.get(0)?,
                        created_at: row.get(1)?,
                        previous_until: row.get(2)?,
                    })
                })
                .optional()
        })
        .await
    }

    /// The owner's secrets, opened.
    pub async fn signing_secrets(&self, owner: &str) -> Result<Option<StoredSigning>, StoreError> {
        let owner = owner.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT open_text(secret), created_at, open_text(previous), previous_until
                     FROM signing_secrets WHERE owner = ?1",
                    [owner],
                    |row| {
                        let previous: Option<String> = row.get(2)?;
                        let until: Option<i64> = row.get(3)?;
                        Ok(StoredSigning {
                            current: row.get(0)?,
                            created_at: row.get(1)?,
                            previous: previous.zip(until),
                        })
                    },
                )
                .optional()
        })
        .await
    }

    /// Makes `secret` the owner's current secret. The one it replaces (if any) keeps
    /// signing until `previous_until`; one replaced earlier is dropped.
    pub async fn rotate_signing_secret(
        &self,
        owner: &str,
        secret: String,
        now: i64,
        previous_until: i64,
    ) -> Result<(), StoreError> {
        let owner = owner.to_string();
        self.write(move |connection| {
            connection.execute(
                "INSERT INTO signing_secrets (owner, secret, generation, created_at)
                 VALUES (?1, seal(?2), random(), ?3)
                 ON CONFLICT (owner) DO UPDATE SET
                    previous = signing_secrets.secret, previous_until = ?4,
                    secret = excluded.secret, generation = excluded.generation,
                    created_at = excluded.created_at",
                params![owner, secret, now, previous_until],
            )?;
            Ok(())
        })
        .await
    }

    /// Stops the replaced secret signing now; false when there was none.
    pub async fn retire_previous_signing_secret(&self, owner: &str) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE signing_secrets SET previous = NULL, previous_until = NULL
                 WHERE owner = ?1 AND previous IS NOT NULL",
                [owner.to_string()],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The owner signs nothing from now on; false when it signed nothing already.
    pub async fn remove_signing_secret(&self, owner: &str) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "DELETE FROM signing_secrets WHERE owner = ?1",
                [owner.to_string()],
            )
            .await?;
        Ok(changed == 1)
    }

    /// Every owner with a secret and its stamp, by owner.
    pub async fn signing_owners(&self) -> Result<Vec<(String, SigningStamp)>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT owner, generation, created_at, previous_until FROM signing_secrets
                 ORDER BY owner",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get(0)?,
                    SigningStamp {
                        generation: row.get(1)?,
                        created_at: row.get(2)?,
                        previous_until: row.get(3)?,
                    },
                ))
            })?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[tokio::test]
    async fn a_rotation_keeps_one_previous_secret_until_retired() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.signing_stamp("address:a@x").await.unwrap(), None);
        store
            .rotate_signing_secret("address:a@x", "one".into(), 10, 99)
            .await
            .unwrap();
        let first = store.signing_secrets("address:a@x").await.unwrap().unwrap();
        assert_eq!(
            (first.current.as_str(), first.created_at, first.previous),
            ("one", 10, None)
        );

        store
            .rotate_signing_secret("address:a@x", "two".into(), 20, 120)
            .await
            .unwrap();
        store
            .rotate_signing_secret("address:a@x", "three".into(), 30, 130)
            .await
            .unwrap();
        let third = store.signing_secrets("address:a@x").await.unwrap().unwrap();
        assert_eq!(third.current, "three");
        assert_eq!(
            third.previous,
            Some(("two".to_string(), 130)),
            "only the last replaced one"
        );
        let stamp = store.signing_stamp("address:a@x").await.unwrap().unwrap();
        assert_eq!((stamp.created_at, stamp.previous_until), (30, Some(130)));
        store
            .rotate_signing_secret("address:a@x", "four".into(), 30, 130)
            .await
            .unwrap();
        let next = store.signing_stamp("address:a@x").await.unwrap().unwrap();
        assert_ne!(
            next.generation, stamp.generation,
            "a rotation in the same second shows"
        );

        assert!(
            store
                .retire_previous_signing_secret("address:a@x")
                .await
                .unwrap()
        );
        assert!(
            !store
                .retire_previous_signing_secret("address:a@x")
                .await
                .unwrap()
        );
        let retired = store.signing_secrets("address:a@x").await.unwrap().unwrap();
        assert_eq!(retired.previous, None);
        assert_eq!(store.signing_owners().await.unwrap().len(), 1);

        assert!(store.remove_signing_secret("address:a@x").await.unwrap());
        assert!(!store.remove_signing_secret("address:a@x").await.unwrap());
        assert_eq!(store.signing_secrets("address:a@x").await.unwrap(), None);
    }
}
