//! The metadata store: SQLite in WAL mode under the data directory. The only module that
//! imports rusqlite (design §4.8).
//!
//! Tables: `inbound_messages` + `inbound_raw` and `delivery_attempts` (`messages`,
//! `attempts`); `users`, `recovery_codes`, `sessions`, `signin_failures`, `api_keys` and
//! `audit_log` (`accounts`); `managed_addresses`, `managed_domains` (`managed`);
//! `smtp_credentials`, `sending_domains`, `outbound_messages` + `outbound_content`,
//! `outbound_recipients`, `outbound_attempts`, `outbound_events`, `suppressions` and
//! `instance_secrets` (`outbound`; after enqueueing — the events webhook's queue, bounces,
//! opens and clicks, the suppression list, instance secrets — `events`); everything about
//! one data subject, counted, dumped or purged (`subject`); the delivery worker's claims,
//! attempts and state transitions on those tables (`queue`); the ACME account and
//! certificate (`acme_cache`, sealed) and `certificate_events` (`certificates`); the attachment
//! and message stores (`stores`, the secret key sealed: `object_stores`).
//!
//! Retention (`retention`): the sweep's deletes, `secure_delete` on every connection and
//! incremental auto-vacuum, so deleted data neither lingers in free pages nor keeps the
//! file large.
//!
//! Content and secrets are sealed at rest when the store is opened with a keyring
//! (`sealing`: SQL functions seal on write and open on read, so callers see plaintext).
//!
//! On disk: `<data_dir>/postern.db`. Migrations are embedded and run at open. Writes go
//! through one connection, reads through another; both run on tokio's blocking pool so the
//! SMTP sessions never wait on disk inside the async runtime.

mod accounts;
mod attempts;
mod certificates;
mod events;
mod inbound_queue;
mod live;
mod managed;
mod messages;
mod migrations;
mod mta_sts;
mod object_stores;
mod operations;
mod outbound;
mod queue;
mod retention;
mod sealing;
pub mod search;
mod signing;
mod subject;
pub mod unix_time;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::crypto::{CryptoError, Keyring};
use crate::datadir::DataDirError;

pub use accounts::{
    ApiKeyRow, AuditEntry, AuditRow, NewApiKey, NewUser, RecentFailures, Role, RoleChange,
    SessionCutoffs, SessionRow, UserDeletion, UserRow,
};
pub use attempts::AttemptRecord;
pub use certificates::{CERTIFICATE_EVENTS_KEPT, CertificateEvent};
pub use events::{
    BounceRecord, Engagement, MessageRef, PendingEvent, SuppressionRow, TERMINAL_KINDS,
};
pub use inbound_queue::{Finished, LeasedInbound, QueueEntry};
pub use live::Scope;
pub use managed::{ManagedSpec, ManagedWrite};
pub use messages::{InboundMessage, InboundMeta, Kept, MessageFilter, Outcome};
pub use mta_sts::StoredPolicy;
pub use object_stores::ObjectStoreRow;
pub use operations::{BEFORE_RESTORE, Copied, CopyError, backup, restore};
pub use outbound::{
    CredentialMode, CredentialRow, Disposition, Enqueued, EventRow, NewCredential, NewOutbound,
    OutboundFilter, OutboundSummary, Priority, RecipientRow, RecipientState, SendingDomainRow,
    Source,
};
pub use queue::{AttemptEnd, AttemptReport, Claimed, OutboundAttemptRow, Recovered};
pub use retention::Swept;
pub use sealing::{SEALED_COLUMNS, SealStatus};
pub use search::{Search, SearchError, time_bound};
pub use signing::{SigningStamp, StoredSigning};
pub use subject::{Counts, PurgeScope, Subject, SubjectDump, SubjectKind, TableDump};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database schema version {found} is newer than this postern ({supported}); upgrade postern"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("database error: {0}")]
    Sql(rusqlite::Error),
    /// A sealed value could not be opened: the key it names is not in the keyring (or
    /// encryption is off), or the value is damaged.
    #[error(
        "stored value: {0}; set [encryption] key_file to the keyring that sealed it (values sealed with a lost key cannot be read)"
    )]
    Sealed(CryptoError),
    #[error("queue commit failed: {0}")]
    Commit(String),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        sealing::store_error(error)
    }
}

/// Creates the database file 0600 before SQLite opens it, whatever the umask of the process
/// that embeds the store: SQLite gives the `-wal` and `-shm` files the database's mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::DataDir(DataDirError::Create {
            path: path.to_owned(),
            source,
        })),
    }
}

#[derive(Clone)]
pub struct Store {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    /// To the group-commit thread of the outbound queue (`outbound::start_commit_thread`).
    enqueuer: outbound::EnqueueSender,
    path: PathBuf,
    /// The keyring that seals content and secrets; `None` with encryption off.
    keyring: Option<Arc<Keyring>>,
    /// Bumped after every committed write (`live`).
    changes: live::Changes,
    /// Whether kept message text goes into the (plaintext) search index: always without a
    /// keyring, else as `[privacy] index_bodies` says ([`Store::with_body_index`]).
    index_bodies: bool,
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/postern.db` and migrates it; nothing is
    /// sealed, and a sealed value is an error when read.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, None)
    }

    /// [`Store::open`], sealing content and secrets with `keyring` (design §4.6).
    pub fn open_sealed(data_dir: &Path, keyring: Arc<Keyring>) -> Result<Store, StoreError> {
        Store::open_with(data_dir, Some(keyring))
    }

    fn open_with(data_dir: &Path, keyring: Option<Arc<Keyring>>) -> Result<Store, StoreError> {
        crate::datadir::ensure(data_dir)?;
        let path = data_dir.join("postern.db");
        create_private(&path)?;
        let open = |path: &Path| -> Result<Connection, StoreError> {
            let connection = Connection::open(path).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
            connection
                .execute_batch(
                    "PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA busy_timeout = 5000;
                     PRAGMA temp_store = MEMORY;",
                )
                .and_then(|()| sealing::register(&connection, keyring.clone()))
                // Freed pages are zeroed: swept rows and plaintext re-sealed by `reencrypt`
                // do not linger in the file.
                .and_then(|()| connection.execute_batch(retention::SECURE_DELETE))
                .map_err(|source| StoreError::Open {
                    path: path.to_owned(),
                    source,
                })?;
            Ok(connection)
        };
        let mut writer = open(&path)?;
        retention::incremental_auto_vacuum(&writer).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        migrations::run(&mut writer)?;
        let reader = open(&path)?;
        let writer = Arc::new(Mutex::new(writer));
        let changes = live::Changes::default();
        Ok(Store {
            enqueuer: outbound::start_commit_thread(
                writer.clone(),
                changes.clone(),
                keyring.clone(),
            ),
            changes,
            writer,
            reader: Arc::new(Mutex::new(reader)),
            path,
            index_bodies: keyring.is_none(),
            keyring,
        })
    }

    /// Indexes kept message text for search although the store seals content (the index
    /// itself cannot be sealed): `[privacy] index_bodies`, and dev mode.
    pub fn with_body_index(mut self, on: bool) -> Store {
        self.index_bodies = self.keyring.is_none() || on;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut connection = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut connection).map_err(sealing::store_error)
        })
        .await??;
        self.changes.bump();
        Ok(result)
    }

    /// One statement on the writer connection; the number of rows it changed.
    async fn execute<P: rusqlite::Params + Send + 'static>(
        &self,
        sql: &'static str,
        params: P,
    ) -> Result<usize, StoreError> {
        self.write(move |connection| connection.execute(sql, params))
            .await
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        let result = tokio::task::spawn_blocking(move || {
            let connection = reader
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&connection).map_err(sealing::store_error)
        })
        .await??;
        Ok(result)
    }
}
