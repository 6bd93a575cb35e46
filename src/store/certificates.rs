//! What ACME (`tls::acme`) keeps: the account key and the certificate with its private key
//! (`acme_cache`, sealed like every other secret: `seal()` inside the INSERT, `open_blob()`
//! in the SELECT, so neither key reaches a file in plaintext), and the last certificate
//! events (issued, renewed, failed with the CA's error) that `/settings` shows.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::unix_time;
use super::{Store, StoreError};

/// Events kept: the newest, enough to see a failing renewal's history at a glance.
pub const CERTIFICATE_EVENTS_KEPT: i64 = 50;

/// One certificate event, newest first from [`Store::certificate_events`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateEvent {
    #[serde(serialize_with = "unix_time::rfc3339")]
    pub at: i64,
    /// `issued`, `renewed`, `cached` (deployed from the store at start) or `failed`.
    pub kind: String,
    pub detail: String,
}

impl Store {
    /// The cached ACME value `name` (account key or certificate PEM), opened.
    pub async fn acme_cache(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT open_blob(value) FROM acme_cache WHERE name = ?1",
                    [name],
                    |row| row.get(0),
                )
                .optional()
        })
        .await
    }

    /// Keeps `value` as the ACME value `name`, sealed, replacing what was there.
    pub async fn store_acme_cache(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let name = name.to_string();
        self.execute(
            "INSERT INTO acme_cache (name, value) VALUES (?1, seal(?2))
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
        .await
        .map(|_| ())
    }

    /// Records a certificate event and forgets all but the newest
    /// [`CERTIFICATE_EVENTS_KEPT`].
    pub async fn record_certificate_event(
        &self,
        at: i64,
        kind: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let (kind, detail) = (kind.to_string(), detail.to_string());
        self.write(move |connection| {
            let tx = connection.transaction()?;
            tx.execute(
                "INSERT INTO certificate_events (at, kind, detail) VALUES (?1, ?2, ?3)",
                params![at, kind, detail],
            )?;
            tx.execute(
                "DELETE FROM certificate_events WHERE id NOT IN
                    (SELECT id FROM certificate_events ORDER BY id DESC LIMIT ?1)",
                [CERTIFICATE_EVENTS_KEPT],
            )?;
            tx.commit()
        })
        .await
    }

    /// The newest `limit` certificate events, newest first.
    pub async fn certificate_events(
        &self,
        limit: i64,
    ) -> Result<Vec<CertificateEvent>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT at, kind, detail FROM certificate_events ORDER BY id DESC LIMIT ?1",
            )?;
            statement
                .query_map([limit], |row| {
                    Ok(CertificateEvent {
                        at: row.get(0)?,
                        kind: row.get(1)?,
                        detail: row.get(2)?,
                    })
                })?
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crypto::{self, Keyring};

    #[tokio::test]
    async fn cached_keys_are_sealed_in_the_file_and_plain_through_the_store() {
        let dir = crate::datadir::test_dir();
        let keyring = Arc::new(Keyring::generate());
        let store = Store::open_sealed(dir.path(), keyring.clone()).unwrap();
        assert_eq!(store.acme_cache("account").await.unwrap(), None);
        store
            .store_acme_cache("account", b"account-key-der".to_vec())
            .await
            .unwrap();
        store
            .store_acme_cache("account", b"second-account-key".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.acme_cache("account").await.unwrap().unwrap(),
            b"second-account-key"
        );
        let stored: Vec<u8> = store
            .reader
            .lock()
            .unwrap()
            .query_row("SELECT value FROM acme_cache", [], |row| row.get(0))
            .unwrap();
        assert_eq!(crypto::sealed_with(&stored), Some(keyring.current()));
        let seal_status = store.seal_status().await.unwrap();
        assert_eq!(seal_status.by_key[&keyring.current().to_string()], 1);
    }

    #[tokio::test]
    async fn only_the_newest_events_are_kept_newest_first() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        for at in 0..CERTIFICATE_EVENTS_KEPT + 5 {
            store
                .record_certificate_event(at, "failed", &format!("attempt {at}"))
                .await
                .unwrap();
        }
        let events = store.certificate_events(1000).await.unwrap();
        assert_eq!(events.len() as i64, CERTIFICATE_EVENTS_KEPT);
        assert_eq!(events[0].at, CERTIFICATE_EVENTS_KEPT + 4);
        assert_eq!(events.last().unwrap().at, 5);
        assert_eq!(store.certificate_events(2).await.unwrap().len(), 2);
    }
}
