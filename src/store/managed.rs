//! Addresses and domains managed through the API (`managed_addresses`, `managed_domains`):
//! the fields of `[[address]]` and `[[domain]]` as given, target URLs included (they may
//! hold credentials, like the config file does). The pattern column is unique; callers store
//! it normalised (lower case) so that the constraint means "the same pattern".

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};

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

const ADDRESS_COLUMNS: &str = "id, address, target, format, timeout_secs, max_message_size,
    size_exceeded_message, size_as_number, auth_callback, error_callback, dkim, dmarc";
const DOMAIN_COLUMNS: &str = "id, domain, auth_regex, target, format";

fn address_row(row: &Row<'_>) -> rusqlite::Result<(i64, AddressSpec)> {
    Ok((
        row.get(0)?,
        AddressSpec {
            address: row.get(1)?,
            target: row.get(2)?,
            format: row.get(3)?,
            timeout_secs: row.get::<_, Option<i64>>(4)?.map(|n| n as u64),
            max_message_size: row.get::<_, Option<i64>>(5)?.map(|n| n as u64),
            size_exceeded_message: row.get(6)?,
            size_as_number: row.get(7)?,
            auth_callback: row.get(8)?,
            error_callback: row.get(9)?,
            dkim: row.get(10)?,
            dmarc: row.get(11)?,
        },
    ))
}

fn domain_row(row: &Row<'_>) -> rusqlite::Result<(i64, DomainSpec)> {
    Ok((
        row.get(0)?,
        DomainSpec {
            domain: row.get(1)?,
            auth_regex: row.get(2)?,
            target: row.get(3)?,
            format: row.get(4)?,
        },
    ))
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

/// Inserts (`id: None`) or updates; the column order is `ADDRESS_COLUMNS`' without `id`.
fn put_address(
    connection: &Connection,
    id: Option<i64>,
    spec: &AddressSpec,
) -> rusqlite::Result<ManagedWrite> {
    let sql = match id {
        None => {
            "INSERT INTO managed_addresses (address, target, format, timeout_secs,
                max_message_size, size_exceeded_message, size_as_number, auth_callback,
                error_callback, dkim, dmarc, id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        }
        Some(_) => {
            "UPDATE managed_addresses SET address = ?1, target = ?2, format = ?3,
                timeout_secs = ?4, max_message_size = ?5, size_exceeded_message = ?6,
                size_as_number = ?7, auth_callback = ?8, error_callback = ?9, dkim = ?10,
                dmarc = ?11
             WHERE id = ?12"
        }
    };
    let result = connection.execute(
        sql,
        params![
            spec.address,
            spec.target,
            spec.format,
            spec.timeout_secs.map(|n| n as i64),
            spec.max_message_size.map(|n| n as i64),
            spec.size_exceeded_message,
            spec.size_as_number,
            spec.auth_callback,
            spec.error_callback,
            spec.dkim,
            spec.dmarc,
            id,
        ],
    );
    written(id.unwrap_or_else(|| connection.last_insert_rowid()), result)
}

impl Store {
    /// Every managed address, oldest first.
    pub async fn managed_addresses(&self) -> Result<Vec<(i64, AddressSpec)>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {ADDRESS_COLUMNS} FROM managed_addresses ORDER BY id"
            ))?;
            statement.query_map([], address_row)?.collect()
        })
        .await
    }

    pub async fn managed_address(&self, id: i64) -> Result<Option<AddressSpec>, StoreError> {
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {ADDRESS_COLUMNS} FROM managed_addresses WHERE id = ?1"),
                    [id],
                    address_row,
                )
                .optional()
                .map(|row| row.map(|(_, spec)| spec))
        })
        .await
    }

    /// Adds an address (`id: None`) or replaces the one with this id.
    pub async fn put_managed_address(
        &self,
        id: Option<i64>,
        spec: AddressSpec,
    ) -> Result<ManagedWrite, StoreError> {
        self.write(move |connection| put_address(connection, id, &spec))
            .await
    }

    /// Whether there was such a row.
    pub async fn delete_managed_address(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |connection| {
            Ok(connection.execute("DELETE FROM managed_addresses WHERE id = ?1", [id])? > 0)
        })
        .await
    }

    /// Every managed domain, oldest first.
    pub async fn managed_domains(&self) -> Result<Vec<(i64, DomainSpec)>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {DOMAIN_COLUMNS} FROM managed_domains ORDER BY id"
            ))?;
            statement.query_map([], domain_row)?.collect()
        })
        .await
    }

    pub async fn managed_domain(&self, id: i64) -> Result<Option<DomainSpec>, StoreError> {
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {DOMAIN_COLUMNS} FROM managed_domains WHERE id = ?1"),
                    [id],
                    domain_row,
                )
                .optional()
                .map(|row| row.map(|(_, spec)| spec))
        })
        .await
    }

    /// Adds a domain (`id: None`) or replaces the one with this id.
    pub async fn put_managed_domain(
        &self,
        id: Option<i64>,
        spec: DomainSpec,
    ) -> Result<ManagedWrite, StoreError> {
        self.write(move |connection| match id {
            None => {
                let result = connection.execute(
                    "INSERT INTO managed_domains (domain, auth_regex, target, format)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![spec.domain, spec.auth_regex, spec.target, spec.format],
                );
                written(connection.last_insert_rowid(), result)
            }
            Some(id) => {
                let result = connection.execute(
                    "UPDATE managed_domains SET domain = ?1, auth_regex = ?2, target = ?3,
                        format = ?4
                     WHERE id = ?5",
                    params![spec.domain, spec.auth_regex, spec.target, spec.format, id],
                );
                written(id, result)
            }
        })
        .await
    }

    /// Whether there was such a row.
    pub async fn delete_managed_domain(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |connection| {
            Ok(connection.execute("DELETE FROM managed_domains WHERE id = ?1", [id])? > 0)
        })
        .await
    }
}
