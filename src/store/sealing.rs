//! Encryption at rest inside the store (design §4.6): content and secrets are sealed on
//! write and opened on read by SQL functions each connection carries, so the rest of the
//! code handles plaintext and no plaintext copy ever reaches a file (not even a temporary
//! one: the sealing happens inside the statement that writes the row).
//!
//! The functions, registered on every connection by [`register`]:
//! - `seal(x)`: `x` sealed with the keyring's current key; NULL and empty values as they
//!   are; without a keyring (encryption off), `x` itself.
//! - `open_text(x)`, `open_blob(x)`: the plaintext of a sealed value as TEXT or BLOB; a value
//!   written before encryption was on reads as it is.
//! - `key_of(x)`: the id of the key that sealed `x` (NULL for plaintext).
//! - `reseal(x)`: `x` opened and sealed again with the current key.
//!
//! A kept message's content, which may be tens of megabytes, goes in and out a chunk at a
//! time instead ([`insert_blob`], [`read_blob`]): sealed by a writer straight into SQLite's
//! incremental blob I/O, so it is never bound, sealed and copied into a record whole.
//!
//! [`SEALED_COLUMNS`] lists what is sealed; [`Store::reencrypt`] seals what is left in
//! batches, [`Store::seal_status`] counts values per key.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use rusqlite::blob::ZeroBlob;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, MAIN_DB, OptionalExtension, ToSql};

use super::{Store, StoreError};
use crate::crypto::{self, CryptoError, KeyId, Keyring};

/// A sealed column: table, the column that names a row, the sealed column.
pub struct SealedColumn {
    pub table: &'static str,
    pub key: &'static str,
    pub column: &'static str,
}

const fn sealed(table: &'static str, key: &'static str, column: &'static str) -> SealedColumn {
    SealedColumn { table, key, column }
}

/// Every sealed column: message content, then the secrets (TOTP, DKIM, instance keys) and
/// the URLs that may carry credentials, then the ACME account and certificate keys.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    sealed("inbound_raw", "message_id", "raw"),
    sealed("inbound_raw", "message_id", "preview"),
    sealed("outbound_content", "message_id", "raw"),
    sealed("users", "id", "totp_secret"),
    sealed("sending_domains", "id", "dkim_private_key"),
    sealed("instance_secrets", "name", "value"),
    sealed("smtp_credentials", "id", "events_url"),
    sealed("managed_addresses", "id", "target"),
    sealed("managed_addresses", "id", "auth_callback"),
    sealed("managed_addresses", "id", "error_callback"),
    sealed("managed_domains", "id", "target"),
    sealed("acme_cache", "name", "value"),
    sealed("signing_secrets", "owner", "secret"),
    sealed("signing_secrets", "owner", "previous"),
    sealed("inbound_queue", "message_id", "envelope"),
    sealed("stores", "name", "secret_access_key"),
];

/// The URL columns of managed addresses and domains that are sealed (`store::managed`).
pub const SEALED_MANAGED_COLUMNS: &[&str] = &["target", "auth_callback", "error_callback"];

/// Values per sealing key, and values still in plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealStatus {
    pub by_key: BTreeMap<String, u64>,
    pub plaintext: u64,
}

/// Values re-sealed in one statement: small enough that the writer is never held long.
const REENCRYPT_BATCH: i64 = 100;

/// Registers the sealing functions on `connection`; `keyring` is `None` with encryption off.
pub fn register(connection: &Connection, keyring: Option<Arc<Keyring>>) -> rusqlite::Result<()> {
    let pure = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let sealing = keyring.clone();
    connection.create_scalar_function("seal", 1, FunctionFlags::SQLITE_UTF8, move |context| {
        Ok(seal(sealing.as_deref(), context.get_raw(0)))
    })?;
    let opening = keyring.clone();
    connection.create_scalar_function("open_text", 1, pure, move |context| {
        open(opening.as_deref(), context, true)
    })?;
    let opening = keyring.clone();
    connection.create_scalar_function("open_blob", 1, pure, move |context| {
        open(opening.as_deref(), context, false)
    })?;
    connection.create_scalar_function("key_of", 1, pure, |context| {
        Ok(bytes(context.get_raw(0))
            .and_then(crypto::sealed_with)
            .map(|id| id.to_string()))
    })?;
    connection.create_scalar_function("reseal", 1, FunctionFlags::SQLITE_UTF8, move |context| {
        let plain = open(keyring.as_deref(), context, false)?;
        Ok(seal(keyring.as_deref(), ValueRef::from(&plain)))
    })
}

/// Whether `seal(x)` seals `plain` (see [`seal`]).
fn seals(keyring: Option<&Keyring>, plain: &[u8]) -> bool {
    keyring.is_some() && !plain.is_empty() && !crypto::is_sealed(plain)
}

/// Values up to this size are bound whole by [`insert_blob`]: one more small copy costs
/// less than opening a blob handle.
const IN_PLACE_ABOVE: usize = 64 * 1024;

/// Inserts a row whose `column` holds `plain` as `seal(x)` would store it. `insert` runs the
/// INSERT with the value it is given bound to the column and returns the row's rowid. A
/// large value is bound as `zeroblob(length)` and then written in place a chunk at a time
/// through SQLite's incremental blob I/O, sealed on the way: a large message is not held
/// three more times over (bound, sealed, made into a record). The column must be the
/// table's last (SQLite writes a zeroblob out in memory when other values follow it).
pub(super) fn insert_blob(
    connection: &Connection,
    keyring: Option<&Keyring>,
    (table, column): (&str, &str),
    plain: &[u8],
    insert: impl FnOnce(&dyn ToSql) -> rusqlite::Result<i64>,
) -> rusqlite::Result<()> {
    use std::io::Write;
    let io = |error: std::io::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(error));
    let sealing = keyring.filter(|_| seals(keyring, plain));
    if plain.len() <= IN_PLACE_ABOVE {
        match sealing {
            Some(keyring) => insert(&keyring.seal(plain))?,
            None => insert(&plain)?,
        };
        return Ok(());
    }
    let Some(keyring) = sealing else {
        let rowid = insert(&ZeroBlob(plain.len() as u64))?;
        let mut blob = connection.blob_open(MAIN_DB, table, column, rowid, false)?;
        return blob.write_all(plain).map_err(io);
    };
    // The sealed header (its length varies) is made first, then the row of the right size.
    let sink = BlobSink::default();
    let mut writer = keyring.seal_writer(sink.clone()).map_err(io)?;
    let header = std::mem::take(&mut *sink.head.borrow_mut());
    let length = header.len() + crypto::sealed_payload_len(plain.len());
    let rowid = insert(&ZeroBlob(length as u64))?;
    let mut blob = connection.blob_open(MAIN_DB, table, column, rowid, false)?;
    blob.write_all(&header).map_err(io)?;
    *sink.blob.borrow_mut() = Some(blob);
    writer.write_all(plain).map_err(io)?;
    writer.finish().map_err(io)?;
    Ok(())
}

/// Where [`insert_blob`]'s sealing writer writes: into `head` until the blob is open.
#[derive(Clone, Default)]
struct BlobSink<'conn> {
    head: Rc<RefCell<Vec<u8>>>,
    blob: Rc<RefCell<Option<rusqlite::blob::Blob<'conn>>>>,
}

impl std::io::Write for BlobSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *self.blob.borrow_mut() {
            // Past the end of the blob: `Ok(0)`, which `write_all` reports as an error.
            Some(blob) => blob.write(buf),
            None => self.head.borrow_mut().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `open_blob(column)` of row `rowid` (`None` without the row), read and opened a chunk at
/// a time through SQLite's incremental blob I/O: one copy of the plaintext in memory.
pub(super) fn read_blob(
    connection: &Connection,
    keyring: Option<&Keyring>,
    (table, column): (&str, &str),
    rowid: i64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    use std::io::{BufReader, Read, Seek};
    let length: Option<i64> = connection
        .query_row(
            &format!("SELECT length({column}) FROM {table} WHERE rowid = ?1"),
            [rowid],
            |row| row.get(0),
        )
        .optional()?;
    let Some(length) = length.map(|length| length as usize) else {
        return Ok(None);
    };
    if length == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut blob = connection.blob_open(MAIN_DB, table, column, rowid, true)?;
    let io = |error: std::io::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(error));
    let mut head = [0u8; 16];
    let head_len = blob.read(&mut head).map_err(io)?;
    blob.rewind().map_err(io)?;
    if !crypto::is_sealed(&head[..head_len]) {
        let mut plain = Vec::with_capacity(length);
        blob.read_to_end(&mut plain).map_err(io)?;
        return Ok(Some(plain));
    }
    let Some(keyring) = keyring else {
        let id = crypto::sealed_with(&head[..head_len]).expect("a sealed value names its key");
        return Err(failed(CryptoError::UnknownKey(id)));
    };
    let mut plain = Vec::with_capacity(length);
    keyring
        .open_reader(BufReader::with_capacity(64 * 1024, blob))
        .map_err(failed)?
        .read_to_end(&mut plain)
        .map_err(|error| failed(CryptoError::Damaged(error.to_string())))?;
    Ok(Some(plain))
}

fn bytes(value: ValueRef<'_>) -> Option<&[u8]> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(bytes),
        _ => None,
    }
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(blob) => Value::Blob(blob.to_vec()),
    }
}

fn seal(keyring: Option<&Keyring>, value: ValueRef<'_>) -> Value {
    match (keyring, bytes(value)) {
        (Some(keyring), Some(plain)) if !plain.is_empty() && !crypto::is_sealed(plain) => {
            Value::Blob(keyring.seal(plain))
        }
        _ => owned(value),
    }
}

fn open(keyring: Option<&Keyring>, context: &Context<'_>, text: bool) -> rusqlite::Result<Value> {
    let value = context.get_raw(0);
    let Some(sealed) = bytes(value).filter(|bytes| crypto::is_sealed(bytes)) else {
        return Ok(owned(value));
    };
    let plain = match keyring {
        Some(keyring) => keyring.open(sealed),
        None => Err(CryptoError::UnknownKey(
            crypto::sealed_with(sealed).expect("a sealed value names its key"),
        )),
    }
    .map_err(failed)?;
    if !text {
        return Ok(Value::Blob(plain));
    }
    String::from_utf8(plain).map(Value::Text).map_err(|_| {
        failed(CryptoError::Damaged(
            "a sealed text value is not UTF-8".into(),
        ))
    })
}

thread_local! {
    /// The sealing failure of the statement running on this thread: SQLite passes on only
    /// the text of a function's error, [`store_error`] gives back the error itself.
    static FAILURE: RefCell<Option<CryptoError>> = const { RefCell::new(None) };
}

fn failed(error: CryptoError) -> rusqlite::Error {
    let text = error.to_string();
    FAILURE.with(|failure| *failure.borrow_mut() = Some(error));
    rusqlite::Error::UserFunctionError(text.into())
}

/// The store error for a failed statement, on the thread that ran it: a sealing failure
/// is [`StoreError::Sealed`], naming the key it needed.
pub fn store_error(error: rusqlite::Error) -> StoreError {
    match FAILURE.with(|failure| failure.borrow_mut().take()) {
        Some(crypto) => StoreError::Sealed(crypto),
        None => StoreError::Sql(error),
    }
}

impl Store {
    /// Every key the store can open values with (none with encryption off).
    pub fn opening_keys(&self) -> Vec<KeyId> {
        self.keyring.as_ref().map(|k| k.ids()).unwrap_or_default()
    }

    /// The key new values are sealed with; `None` with encryption off.
    pub fn sealing_key(&self) -> Option<KeyId> {
        self.keyring.as_ref().map(|keyring| keyring.current())
    }

    /// How many stored values each key seals, and how many are still plaintext.
    pub async fn seal_status(&self) -> Result<SealStatus, StoreError> {
        self.read(|connection| {
            let mut status = SealStatus::default();
            for sealed in SEALED_COLUMNS {
                let sql = format!(
                    "SELECT key_of({c}), count(*) FROM {t} WHERE length({c}) > 0 GROUP BY 1",
                    c = sealed.column,
                    t = sealed.table
                );
                let mut statement = connection.prepare_cached(&sql)?;
                let rows = statement.query_map([], |row| {
                    Ok((row.get::<_, Option<String>>(0)?, row.get::<_, i64>(1)?))
                })?;
                for row in rows {
                    match row? {
                        (Some(key), count) => {
                            *status.by_key.entry(key).or_default() += count as u64
                        }
                        (None, count) => status.plaintext += count as u64,
                    }
                }
            }
            Ok(status)
        })
        .await
    }

    /// Seals every value not sealed with the current key (plaintext from before encryption,
    /// or an older key), `REENCRYPT_BATCH` rows a statement; the number of values sealed.
    /// With encryption off there is nothing to do.
    pub async fn reencrypt(&self) -> Result<u64, StoreError> {
        let Some(current) = self.sealing_key() else {
            return Ok(0);
        };
        // The body index is plaintext: a store that seals keeps none unless told to
        // (`[privacy] index_bodies`, migration 11).
        let mut total = 0;
        if !self.index_bodies {
            total += self
                .write(|connection| connection.execute("DELETE FROM inbound_body_search", []))
                .await? as u64;
        }
        for sealed in SEALED_COLUMNS {
            let sql = format!(
                "UPDATE {t} SET {c} = reseal({c}) WHERE {k} IN (
                    SELECT {k} FROM {t} WHERE length({c}) > 0 AND key_of({c}) IS NOT ?1
                    LIMIT {REENCRYPT_BATCH})",
                t = sealed.table,
                c = sealed.column,
                k = sealed.key
            );
            loop {
                let sql = sql.clone();
                let key = current.to_string();
                let changed = self
                    .write(move |connection| connection.execute(&sql, [key]))
                    .await?;
                total += changed as u64;
                if changed == 0 {
                    break;
                }
            }
        }
        if total > 0 {
            // The new pages replace the old in the database file now, not at some later
            // checkpoint; `secure_delete` has zeroed what the plaintext left free.
            self.write(|connection| {
                connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            })
            .await?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sealed_store(keyring: &Arc<Keyring>) -> (tempfile::TempDir, Store) {
        let dir = crate::datadir::test_dir();
        let store = Store::open_sealed(dir.path(), keyring.clone()).unwrap();
        (dir, store)
    }

    fn raw_values(store: &Store, sql: &str) -> Vec<Vec<u8>> {
        let connection = store.reader.lock().unwrap();
        let mut statement = connection.prepare(sql).unwrap();
        statement
            .query_map([], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.to_vec(),
                    _ => Vec::new(),
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[tokio::test]
    async fn secrets_are_sealed_on_disk_and_plain_through_the_store() {
        let keyring = Arc::new(Keyring::generate());
        let (_dir, store) = sealed_store(&keyring).await;
        let value = store
            .instance_secret("tracking", b"instance-key-bytes".to_vec())
            .await
            .unwrap();
        assert_eq!(value, b"instance-key-bytes");
        let stored = raw_values(&store, "SELECT value FROM instance_secrets");
        assert_eq!(stored.len(), 1);
        assert_eq!(crypto::sealed_with(&stored[0]), Some(keyring.current()));
        // Read again: still the plaintext, not a second seal.
        assert_eq!(
            store
                .instance_secret("tracking", b"other".to_vec())
                .await
                .unwrap(),
            b"instance-key-bytes"
        );
    }

    #[tokio::test]
    async fn plaintext_from_before_reads_as_is_and_reencrypt_seals_it() {
        let dir = crate::datadir::test_dir();
        let plain = Store::open(dir.path()).unwrap();
        plain
            .instance_secret("tracking", b"old-plaintext".to_vec())
            .await
            .unwrap();
        // The stores stay open: a closing store's WAL may vanish while the next one checks
        // the directory.
        let mut keyring = Keyring::generate();
        let first = keyring.current();
        let store = Store::open_sealed(dir.path(), Arc::new(clone_of(&keyring))).unwrap();
        assert_eq!(store.seal_status().await.unwrap().plaintext, 1);
        assert_eq!(
            store.instance_secret("tracking", vec![]).await.unwrap(),
            b"old-plaintext"
        );
        assert_eq!(store.reencrypt().await.unwrap(), 1);
        assert_eq!(store.reencrypt().await.unwrap(), 0);
        let status = store.seal_status().await.unwrap();
        assert_eq!(status.plaintext, 0);
        assert_eq!(status.by_key.get(&first.to_string()), Some(&1));

        // Rotation: the old key still opens, reencrypt moves everything to the new one.
        let second = keyring.rotate();
        let rotated = Store::open_sealed(dir.path(), Arc::new(clone_of(&keyring))).unwrap();
        assert_eq!(
            rotated.instance_secret("tracking", vec![]).await.unwrap(),
            b"old-plaintext"
        );
        assert_eq!(rotated.reencrypt().await.unwrap(), 1);
        let status = rotated.seal_status().await.unwrap();
        assert_eq!(
            status.by_key.keys().collect::<Vec<_>>(),
            [&second.to_string()]
        );

        // A store without the key says which key it needs.
        let keyless = Store::open(dir.path()).unwrap();
        match keyless.instance_secret("tracking", vec![]).await {
            Err(StoreError::Sealed(CryptoError::UnknownKey(id))) => assert_eq!(id, second),
            other => panic!("expected a sealing error, got {other:?}"),
        }
    }

    /// The same identities in a second keyring (through a key file, as the app loads them).
    fn clone_of(keyring: &Keyring) -> Keyring {
        let dir = crate::datadir::test_dir();
        let path = dir.path().join("keyring");
        keyring.save(&path, None).unwrap();
        Keyring::load(&path, None).unwrap()
    }
}
