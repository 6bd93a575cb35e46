//! Addresses and domains managed through the API (`managed_addresses`, `managed_domains`):
//! the fields of `[[address]]` and `[[domain]]` as given, target URLs included (they may
//! hold credentials, like the config file does). The pattern column is unique; callers store
//! it normalised (lower case) so that the constraint means "the same pattern".
//!
//! Both tables have the same shape (an `id`, then the contract's fields, the pattern first), so
//! one set of queries serves both: [`ManagedSpec`] says which table and columns a spec type
//! has and how it maps to a row, and the `Store` methods are generic over it.

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params_from_iter};

use super::sealing::SEALED_MANAGED_COLUMNS;
use super::{Store, StoreError};
use crate::config::{AddressSpec, DomainSpec};

/// The result of an insert or update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedWrite {
    /// The row's id.
    Written(i64),
    /// Update of an id that does not exist.
    NotFound,
    /// Another row has this pattern already.
    Duplicate,
}

/// A spec type with a table of its own: implemented here for [`AddressSpec`] and
/// [`DomainSpec`], the only two (the row mapping is the store's business).
pub trait ManagedSpec: Clone + Send + 'static {
    /// The table, with an `INTEGER PRIMARY KEY` `id` and a unique pattern column.
    const TABLE: &'static str;
    /// The columns after `id`, the pattern first, in the order of [`ManagedSpec::values`].
    const COLUMNS: &'static [&'static str];
    /// The spec from a row selected as `id, COLUMNS…` (so its fields start at index 1).
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self>;
    /// The values for `COLUMNS`, in order.
    fn values(&self) -> Vec<Value>;
}

/// SQLite integers are signed; sizes and timeouts in a spec are far below `i64::MAX`.
fn integer(n: Option<u64>) -> Value {
    n.map(|n| n as i64).into()
}

fn unsigned(n: Option<i64>) -> Option<u64> {
    n.map(|n| n as u64)
}

/// A `redact` list, stored as a JSON array of field names.
fn field_list(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

fn field_list_text(names: &[String]) -> Value {
    serde_json::to_string(names)
        .expect("strings serialise")
        .into()
}

impl ManagedSpec for AddressSpec {
    const TABLE: &'static str = "managed_addresses";
    const COLUMNS: &'static [&'static str] = &[
        "address",
        "target",
        "format",
        "timeout_secs",
        "max_message_size",
        "size_exceeded_message",
        "size_as_number",
        "auth_callback",
        "error_callback",
        "dkim",
        "dmarc",
        "redact",
        "html_to_plain",
        "delivery",
        "attachment_store",
        "message_store",
        "message_store_format",
    ];

    fn from_row(row: &Row<'_>) -> rusqlite::Result<AddressSpec> {
        Ok(AddressSpec {
            address: row.get(1)?,
            target: row.get(2)?,
            format: row.get(3)?,
            timeout_secs: unsigned(row.get(4)?),
            max_message_size: unsigned(row.get(5)?),
            size_exceeded_message: row.get(6)?,
            size_as_number: row.get(7)?,
            auth_callback: row.get(8)?,
            error_callback: row.get(9)?,
            dkim: row.get(10)?,
            dmarc: row.get(11)?,
            redact: field_list(row.get(12)?),
            html_to_plain: row.get(13)?,
            delivery: row.get(14)?,
            attachment_store: row.get(15)?,
            message_store: row.get(16)?,
            message_store_format: row.get(17)?,
        })
    }

    fn values(&self) -> Vec<Value> {
        vec![
            self.address.clone().into(),
            self.target.clone().into(),
            self.format.clone().into(),
            integer(self.timeout_secs),
            integer(self.max_message_size),
            self.size_exceeded_message.clone().into(),
            self.size_as_number.into(),
            self.auth_callback.clone().into(),
            self.error_callback.clone().into(),
            self.dkim.into(),
            self.dmarc.into(),
            field_list_text(&self.redact),
            self.html_to_plain.into(),
            self.delivery.clone().into(),
            self.attachment_store.clone().into(),
            self.message_store.clone().into(),
            self.message_store_format.clone().into(),
        ]
    }
}

impl ManagedSpec for DomainSpec {
    const TABLE: &'static str = "managed_domains";
    const COLUMNS: &'static [&'static str] = &[
        "domain",
        "auth_regex",
        "target",
        "format",
        "redact",
        "delivery",
    ];

    fn from_row(row: &Row<'_>) -> rusqlite::Result<DomainSpec> {
        Ok(DomainSpec {
            domain: row.get(1)?,
            auth_regex: row.get(2)?,
            target: row.get(3)?,
            format: row.get(4)?,
            redact: field_list(row.get(5)?),
            delivery: row.get(6)?,
        })
    }

    fn values(&self) -> Vec<Value> {
        vec![
            self.domain.clone().into(),
            self.auth_regex.clone().into(),
            self.target.clone().into(),
            self.format.clone().into(),
            field_list_text(&self.redact),
            self.delivery.clone().into(),
        ]
    }
}

fn select<S: ManagedSpec>(filter: &str) -> String {
    let columns: Vec<String> = S::COLUMNS
        .iter()
        .map(|column| match SEALED_MANAGED_COLUMNS.contains(column) {
            true => format!("open_text({column})"),
            false => column.to_string(),
        })
        .collect();
    format!(
        "SELECT id, {} FROM {} {filter}",
        columns.join(", "),
        S::TABLE
    )
}

/// The SQL for parameter `n` of `column`: sealed URLs go through `seal` (`store::sealing`).
fn placeholder(column: &str, n: usize) -> String {
    match SEALED_MANAGED_COLUMNS.contains(&column) {
        true => format!("seal(?{n})"),
        false => format!("?{n}"),
    }
}

/// Inserts (`id: None`) or updates. The id is the last parameter either way: an insert
/// with a NULL `INTEGER PRIMARY KEY` lets SQLite choose it.
fn put<S: ManagedSpec>(
    connection: &Connection,
    id: Option<i64>,
    spec: &S,
) -> rusqlite::Result<ManagedWrite> {
    let columns = S::COLUMNS;
    let sql = match id {
        None => format!(
            "INSERT INTO {} ({}, id) VALUES ({})",
            S::TABLE,
            columns.join(", "),
            columns
                .iter()
                .chain(&["id"])
                .enumerate()
                .map(|(n, column)| placeholder(column, n + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(_) => format!(
            "UPDATE {} SET {} WHERE id = ?{}",
            S::TABLE,
            columns
                .iter()
                .enumerate()
                .map(|(n, column)| format!("{column} = {}", placeholder(column, n + 1)))
                .collect::<Vec<_>>()
                .join(", "),
            columns.len() + 1
        ),
    };
    let mut values = spec.values();
    values.push(id.into());
    let result = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.execute(params_from_iter(values)));
    written(id.unwrap_or_else(|| connection.last_insert_rowid()), result)
}

/// Maps a unique-constraint failure to `Duplicate` and "no row changed" to `NotFound`.
fn written(id: i64, result: rusqlite::Result<usize>) -> rusqlite::Result<ManagedWrite> {
    match result {
        Ok(0) => Ok(ManagedWrite::NotFound),
        Ok(_) => Ok(ManagedWrite::Written(id)),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            Ok(ManagedWrite::Duplicate)
        }
        Err(e) => Err(e),
    }
}

impl Store {
    /// Every managed entry of one kind, oldest first.
    pub async fn managed_entries<S: ManagedSpec>(&self) -> Result<Vec<(i64, S)>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&select::<S>("ORDER BY id"))?;
            statement
                .query_map([], |row| Ok((row.get(0)?, S::from_row(row)?)))?
                .collect()
        })
        .await
    }

    /// Every managed address, oldest first (what `App::build` looks at for DNS checks).
    pub async fn managed_addresses(&self) -> Result<Vec<(i64, AddressSpec)>, StoreError> {
        self.managed_entries().await
    }

    pub async fn managed_entry<S: ManagedSpec>(&self, id: i64) -> Result<Option<S>, StoreError> {
        self.read(move |connection| {
            connection
                .query_row(&select::<S>("WHERE id = ?1"), [id], S::from_row)
                .optional()
        })
        .await
    }

    /// Adds an entry (`id: None`) or replaces the one with this id.
    pub async fn put_managed<S: ManagedSpec>(
        &self,
        id: Option<i64>,
        spec: S,
    ) -> Result<ManagedWrite, StoreError> {
        self.write(move |connection| put(connection, id, &spec))
            .await
    }

    /// Whether there was such a row.
    pub async fn delete_managed<S: ManagedSpec>(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let sql = format!("DELETE FROM {} WHERE id = ?1", S::TABLE);
            Ok(connection.execute(&sql, [id])? > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(pattern: &str) -> AddressSpec {
        AddressSpec {
            address: pattern.into(),
            target: Some("http://user:pw@example.com/in".into()),
            format: Some("json".into()),
            timeout_secs: Some(7),
            max_message_size: Some(1000),
            size_exceeded_message: Some("too big".into()),
            size_as_number: true,
            html_to_plain: true,
            auth_callback: None,
            error_callback: Some("http://example.com/err".into()),
            dkim: true,
            dmarc: false,
            redact: vec!["subject".into()],
            delivery: None,
            attachment_store: Some("files".into()),
            message_store: Some("bucket".into()),
            message_store_format: Some("json".into()),
        }
    }

    fn domain(pattern: &str) -> DomainSpec {
        DomainSpec {
            domain: pattern.into(),
            auth_regex: Some("t-\\d+".into()),
            target: None,
            format: None,
            redact: Vec::new(),
            delivery: None,
        }
    }

    /// The same calls for both kinds: insert, read back, update, duplicate, delete.
    async fn round_trip<S: ManagedSpec + PartialEq + std::fmt::Debug>(
        store: &Store,
        first: S,
        second: S,
    ) {
        let ManagedWrite::Written(id) = store.put_managed(None, first.clone()).await.unwrap()
        else {
            panic!("not written")
        };
        assert_eq!(store.managed_entry::<S>(id).await.unwrap(), Some(first));
        let ManagedWrite::Written(other) = store.put_managed(None, second.clone()).await.unwrap()
        else {
            panic!("not written")
        };
        assert_eq!(
            store.put_managed(Some(id), second.clone()).await.unwrap(),
            ManagedWrite::Duplicate
        );
        assert_eq!(
            store.put_managed(Some(9999), second.clone()).await.unwrap(),
            ManagedWrite::NotFound
        );
        assert!(store.delete_managed::<S>(other).await.unwrap());
        assert_eq!(
            store.put_managed(Some(id), second.clone()).await.unwrap(),
            ManagedWrite::Written(id)
        );
        assert_eq!(
            store.managed_entries::<S>().await.unwrap(),
            vec![(id, second)]
        );
        assert!(store.delete_managed::<S>(id).await.unwrap());
        assert!(!store.delete_managed::<S>(id).await.unwrap());
        assert_eq!(store.managed_entry::<S>(id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn addresses_and_domains_round_trip_through_the_same_queries() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        round_trip(&store, address("a@example.com"), address("b@example.com")).await;
        round_trip(&store, domain("a.example.com"), domain("b.example.com")).await;
    }
}
