//! What the people who run Postern ask of the database: is it writable (`/readyz`), how big
//! is it and how full is the queue (`/metrics`), and a consistent copy of it while `serve`
//! runs (`postern backup`) or put back (`postern restore`).
//!
//! The copy is SQLite's online backup API: it reads one snapshot of the database (WAL
//! readers never block the writer), so the file it writes is what a commit left, whatever
//! `serve` is doing meanwhile. Sealed values stay sealed in the copy: a backup is as useless
//! without the keyring as the data directory itself.

use std::path::{Path, PathBuf};

use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError, migrations};
use crate::datadir::DataDirError;

/// The file name of the database inside the data directory.
pub const DATABASE: &str = "postern.db";
/// What `restore` renames the database it replaces to.
pub const BEFORE_RESTORE: &str = "postern.db.before-restore";

/// What `backup` or `restore` copied.
#[derive(Debug, Clone)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
    /// `PRAGMA user_version`: the migrations the copy has.
    pub schema_version: i64,
    pub inbound_messages: i64,
    pub outbound_messages: i64,
}

/// Why a backup or restore was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "{path} already exists; choose another --output or move the old file away (a backup is never overwritten)"
    )]
    Exists { path: PathBuf },
    #[error("{path} is not a Postern database: {reason}")]
    NotADatabase { path: PathBuf, reason: String },
    #[error(
        "{path} has database schema version {found}, newer than this postern's {supported}; \
         restore it with the postern version that wrote it (or a newer one)"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "{path} exists from an earlier restore; move it away (it is the database that restore replaced) and run restore again"
    )]
    EarlierRestore { path: PathBuf },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

impl Store {
    /// Takes the write lock and changes the file header inside a transaction that is then
    /// rolled back: `Ok` when the database can be written (disk, permissions, locks).
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(|connection| {
            let tx =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            tx.pragma_update(None, "user_version", version)?;
            tx.rollback()
        })
        .await
    }

    /// Outbound recipients still to deliver (queued, deferred, sending), and when the
    /// message of the oldest of them was queued (seconds since the epoch).
    pub async fn queue_depth(&self) -> Result<(u64, Option<i64>), StoreError> {
        self.read(|connection| {
            connection.query_row(
                "SELECT COUNT(*), MIN(m.created_at) FROM outbound_recipients r
                 JOIN outbound_messages m ON m.id = r.message_id
                 WHERE r.state IN ('queued', 'deferred', 'sending')",
                [],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)),
            )
        })
        .await
    }

    /// The database file and its write-ahead log, in bytes.
    pub fn size_bytes(&self) -> u64 {
        let wal = self.path.with_extension("db-wal");
        [self.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum()
    }
}

/// Copies the database of `data_dir` to `output` (a new file, 0600) with the online backup
/// API: consistent while `serve` writes.
pub fn backup(data_dir: &Path, output: &Path) -> Result<Copied, CopyError> {
    let source_path = data_dir.join(DATABASE);
    let source = open_existing(&source_path)?;
    create_new_private(output)?;
    copy(&source, output)?;
    describe(output)
}

/// Puts the database in `input` (made by `backup`) in place of `data_dir`'s, which is kept
/// as [`BEFORE_RESTORE`]. The caller holds the data directory's serve lock; an older
/// schema is migrated by the next [`Store::open`].
pub fn restore(data_dir: &Path, input: &Path) -> Result<Copied, CopyError> {
    let source = open_existing(input)?;
    check_restorable(&source, input)?;
    crate::datadir::ensure(data_dir)?;
    let target = data_dir.join(DATABASE);
    let kept = data_dir.join(BEFORE_RESTORE);
    if target.exists() {
        if kept.exists() {
            return Err(CopyError::EarlierRestore { path: kept });
        }
        fold_wal(&target)?;
        std::fs::rename(&target, &kept).map_err(|source| CopyError::File {
            path: target.clone(),
            source,
        })?;
    }
    create_new_private(&target)?;
    copy(&source, &target)?;
    describe(&target)
}

/// Checkpoints the write-ahead log into the database file and removes it, so the file
/// alone is the whole database.
fn fold_wal(path: &Path) -> Result<(), CopyError> {
    let sql = |source| CopyError::Sql {
        path: path.to_owned(),
        source,
    };
    let connection = Connection::open(path).map_err(sql)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .map_err(sql)
}

/// A database made by a Postern no newer than this one, and intact.
fn check_restorable(source: &Connection, path: &Path) -> Result<(), CopyError> {
    let not_ours = |reason: String| CopyError::NotADatabase {
        path: path.to_owned(),
        reason,
    };
    let version: i64 = source
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    let supported = migrations::latest();
    if version > supported {
        return Err(CopyError::TooNew {
            path: path.to_owned(),
            found: version,
            supported,
        });
    }
    let check: String = source
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if check != "ok" {
        return Err(not_ours(format!("the integrity check says {check}")));
    }
    let has_messages: bool = source
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'inbound_messages')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| not_ours(e.to_string()))?;
    match (version, has_messages) {
        (1.., true) => Ok(()),
        _ => Err(not_ours("it has no Postern tables".into())),
    }
}

fn open_existing(path: &Path) -> Result<Connection, CopyError> {
    std::fs::metadata(path).map_err(|source| CopyError::File {
        path: path.to_owned(),
        source,
    })?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|source| CopyError::Sql {
        path: path.to_owned(),
        source,
    })?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|source| CopyError::Sql {
            path: path.to_owned(),
            source,
        })?;
    Ok(connection)
}

/// Creates `path` empty and 0600; an existing file is refused.
fn create_new_private(path: &Path) -> Result<(), CopyError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(CopyError::Exists {
            path: path.to_owned(),
        }),
        Err(source) => Err(CopyError::File {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Every page of `source` into the (empty) database at `path`, in one step: one snapshot.
/// The copy is left in rollback-journal mode, one self-contained file.
fn copy(source: &Connection, path: &Path) -> Result<(), CopyError> {
    let sql = |source| CopyError::Sql {
        path: path.to_owned(),
        source,
    };
    let mut target = Connection::open(path).map_err(sql)?;
    Backup::new(source, &mut target)
        .and_then(|backup| backup.step(-1).map(|_| ()))
        .map_err(sql)?;
    target
        .execute_batch("PRAGMA journal_mode = DELETE;")
        .map_err(sql)
}

/// What the copy at `path` holds.
fn describe(path: &Path) -> Result<Copied, CopyError> {
    let connection = open_existing(path)?;
    let sql = |source| CopyError::Sql {
        path: path.to_owned(),
        source,
    };
    let count = |table: &str| -> Result<i64, CopyError> {
        connection
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .map_err(sql)
    };
    Ok(Copied {
        path: path.to_owned(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        schema_version: connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(sql)?,
        inbound_messages: count("inbound_messages")?,
        outbound_messages: count("outbound_messages")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backup_is_a_private_copy_that_restores() {
        let data = crate::datadir::test_dir();
        let store = Store::open(data.path()).unwrap();
        store.check_writable().await.unwrap();
        let out = crate::datadir::test_dir();
        let file = out.path().join("backup.db");
        let copied = backup(data.path(), &file).unwrap();
        assert_eq!(copied.schema_version, migrations::latest());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            backup(data.path(), &file),
            Err(CopyError::Exists { .. })
        ));
        drop(store);
        let fresh = crate::datadir::test_dir();
        restore(fresh.path(), &file).unwrap();
        // The second restore keeps the first one's database aside, the third is refused.
        restore(fresh.path(), &file).unwrap();
        assert!(fresh.path().join(BEFORE_RESTORE).exists());
        assert!(matches!(
            restore(fresh.path(), &file),
            Err(CopyError::EarlierRestore { .. })
        ));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = crate::datadir::test_dir();
        let file = dir.path().join("newer.db");
        let connection = Connection::open(&file).unwrap();
        connection
            .execute_batch("CREATE TABLE inbound_messages (id INTEGER); PRAGMA user_version = 999;")
            .unwrap();
        drop(connection);
        let target = crate::datadir::test_dir();
        let refused = restore(target.path(), &file).unwrap_err();
        assert!(
            matches!(refused, CopyError::TooNew { found: 999, .. }),
            "{refused}"
        );
        assert!(!target.path().join(DATABASE).exists());
    }

    #[test]
    fn what_is_not_a_postern_database_is_refused() {
        let dir = crate::datadir::test_dir();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a database at all, just some text in a file").unwrap();
        let empty = dir.path().join("empty.db");
        Connection::open(&empty)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        for file in [text, empty] {
            let target = crate::datadir::test_dir();
            let refused = restore(target.path(), &file).unwrap_err();
            assert!(
                matches!(refused, CopyError::NotADatabase { .. }),
                "{refused}"
            );
            assert!(!target.path().join(DATABASE).exists());
        }
    }
}
