//! Attachment and message stores (`objects`), one row per named store: an S3-compatible
//! bucket (endpoint, bucket, prefix, region, canned ACL, access key id and the secret access
//! key, sealed like every other secret) or the data directory's `files/` (the expiry of its
//! signed URLs). The secret is opened only to build the store's client, never listed.

use std::sync::Arc;

use rusqlite::{ErrorCode, OptionalExtension, Row, params};

use super::{Store, StoreError};
use crate::crypto::Keyring;

/// A store as kept. `secret_access_key` is `None` when listed (never read back for a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreRow {
    pub name: String,
    /// `s3` or `local`.
    pub kind: String,
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub acl: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Local stores: how long a signed URL is valid.
    pub expiry_secs: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str = "name, kind, endpoint, bucket, prefix, region, acl, access_key_id";

fn from_row(row: &Row<'_>, secret: Option<String>) -> rusqlite::Result<ObjectStoreRow> {
    Ok(ObjectStoreRow {
        name: row.get(0)?,
        kind: row.get(1)?,
        endpoint: row.get(2)?,
        bucket: row.get(3)?,
        prefix: row.get(4)?,
        region: row.get(5)?,
        acl: row.get(6)?,
        access_key_id: row.get(7)?,
        expiry_secs: row.get(8)?,
        created_at: row.get(9)?,
        secret_access_key: secret,
    })
}

impl Store {
    /// Adds a store; `false` when one of that name exists already.
    pub async fn insert_object_store(&self, row: ObjectStoreRow) -> Result<bool, StoreError> {
        let inserted = self
            .write(move |connection| {
                let result = connection.execute(
                    &format!(
                        "INSERT INTO stores ({COLUMNS}, secret_access_key, expiry_secs, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, seal(?9), ?10, ?11)"
                    ),
                    params![
                        row.name,
                        row.kind,
                        row.endpoint,
                        row.bucket,
                        row.prefix,
                        row.region,
                        row.acl,
                        row.access_key_id,
                        row.secret_access_key,
                        row.expiry_secs,
                        row.created_at,
                    ],
                );
                match result {
                    Ok(_) => Ok(true),
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == ErrorCode::ConstraintViolation =>
                    {
                        Ok(false)
                    }
                    Err(other) => Err(other),
                }
            })
            .await?;
        Ok(inserted)
    }

    /// Every store by name, without the secrets.
    pub async fn object_stores(&self) -> Result<Vec<ObjectStoreRow>, StoreError> {
        self.read(|connection| {
            connection
                .prepare(&format!(
                    "SELECT {COLUMNS}, expiry_secs, created_at FROM stores ORDER BY name"
                ))?
                .query_map([], |row| from_row(row, None))?
                .collect()
        })
        .await
    }

    /// One store with its secret opened.
    pub async fn object_store(&self, name: &str) -> Result<Option<ObjectStoreRow>, StoreError> {
        let name = name.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {COLUMNS}, expiry_secs, created_at, open_text(secret_access_key)
                     FROM stores WHERE name = ?1"
                ))?
                .query_row([name], |row| from_row(row, row.get(10)?))
                .optional()
        })
        .await
    }

    /// Removes a store; `false` when there was none of that name.
    pub async fn remove_object_store(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        let removed = self
            .execute("DELETE FROM stores WHERE name = ?1", [name])
            .await?;
        Ok(removed > 0)
    }

    /// The managed addresses that put attachments or messages into the store `name`.
    pub async fn addresses_using_store(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let name = name.to_string();
        self.read(move |connection| {
            connection
                .prepare(
                    "SELECT address FROM managed_addresses
                     WHERE attachment_store = ?1 OR message_store = ?1 ORDER BY address",
                )?
                .query_map([name], |row| row.get(0))?
                .collect()
        })
        .await
    }

    /// The keyring this store seals with (`None`: encryption off), for what is sealed
    /// outside the database with the same keys (`objects::local`'s files).
    pub fn keyring(&self) -> Option<Arc<Keyring>> {
        self.keyring.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keyring;

    fn row(name: &str) -> ObjectStoreRow {
        ObjectStoreRow {
            name: name.into(),
            kind: "s3".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            bucket: Some("b".into()),
            prefix: None,
            region: Some("us-east-1".into()),
            acl: None,
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("very-secret-key".into()),
            expiry_secs: None,
            created_at: 5,
        }
    }

    #[tokio::test]
    async fn the_secret_is_sealed_opened_for_use_and_never_listed() {
        let dir = crate::datadir::test_dir();
        let store = Store::open_sealed(dir.path(), Arc::new(Keyring::generate())).unwrap();
        assert!(store.insert_object_store(row("s")).await.unwrap());
        assert!(!store.insert_object_store(row("s")).await.unwrap());
        let listed = store.object_stores().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].secret_access_key, None);
        let used = store.object_store("s").await.unwrap().unwrap();
        assert_eq!(used, row("s"));
        let file = std::fs::read(dir.path().join("postern.db")).unwrap();
        let wal = std::fs::read(dir.path().join("postern.db-wal")).unwrap_or_default();
        for bytes in [file, wal] {
            assert!(!bytes.windows(15).any(|w| w == b"very-secret-key"));
        }
        assert!(store.remove_object_store("s").await.unwrap());
        assert!(!store.remove_object_store("s").await.unwrap());
        assert_eq!(store.object_store("s").await.unwrap(), None);
    }
}
