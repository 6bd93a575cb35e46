//! Delivery attempts: every HTTP request made for a message (target POSTs and their
//! redirect hops, error callbacks), with status, the first 2 KB of the answer and timings.

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// `target`, `error_callback` or `resend` (the dashboard's "Resend to target").
    pub kind: String,
    /// Credentials masked.
    pub url: String,
    pub format: Option<String>,
    pub http_status: Option<u16>,
    pub response_body: String,
    /// Why there was no HTTP answer (timeout, refused, TLS).
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
}

pub(super) fn insert(
    tx: &Transaction<'_>,
    message_id: i64,
    attempts: &[AttemptRecord],
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO delivery_attempts (message_id, kind, url, format, http_status,
            response_body, error, started_at, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for a in attempts {
        statement.execute(params![
            message_id,
            a.kind,
            a.url,
            a.format,
            a.http_status,
            a.response_body,
            a.error,
            a.started_at,
            a.duration_ms as i64,
        ])?;
    }
    Ok(())
}

pub(super) fn of_message(
    connection: &Connection,
    message_id: i64,
) -> rusqlite::Result<Vec<AttemptRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT kind, url, format, http_status, response_body, error, started_at, duration_ms
         FROM delivery_attempts WHERE message_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([message_id], |row| {
        Ok(AttemptRecord {
            kind: row.get(0)?,
            url: row.get(1)?,
            format: row.get(2)?,
            http_status: row.get(3)?,
            response_body: row.get(4)?,
            error: row.get(5)?,
            started_at: row.get(6)?,
            duration_ms: row.get::<_, i64>(7)? as u64,
        })
    })?;
    rows.collect()
}

impl Store {
    /// Adds attempts made after the message was recorded (error callbacks).
    pub async fn insert_attempts(
        &self,
        message_id: i64,
        attempts: Vec<AttemptRecord>,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            insert(&tx, message_id, &attempts)?;
            tx.commit()
        })
        .await
    }
}
