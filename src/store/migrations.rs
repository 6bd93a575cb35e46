//! Embedded schema migrations, numbered by `PRAGMA user_version`. Append only: a released
//! migration is never edited.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: inbound message metadata, and raw content where it is kept (dev mode).
    "CREATE TABLE inbound_messages (
        id              INTEGER PRIMARY KEY,
        received_at     TEXT    NOT NULL,
        remote_ip       TEXT    NOT NULL,
        helo            TEXT    NOT NULL,
        mail_from       TEXT    NOT NULL,
        recipients      TEXT    NOT NULL,
        address         TEXT,
        message_id      TEXT,
        subject         TEXT,
        size            INTEGER NOT NULL,
        md5             TEXT    NOT NULL,
        tls_version     TEXT,
        target          TEXT,
        format          TEXT,
        http_status     INTEGER,
        outcome         TEXT    NOT NULL,
        response_body   TEXT,
        error           TEXT,
        smtp_reply      TEXT    NOT NULL,
        processing_ms   INTEGER NOT NULL
    );
    CREATE INDEX inbound_messages_received_at ON inbound_messages (received_at);
    CREATE TABLE inbound_raw (
        message_id  INTEGER PRIMARY KEY REFERENCES inbound_messages (id) ON DELETE CASCADE,
        raw         BLOB    NOT NULL
    );",
    // 2: every HTTP request made for a message (target POSTs, redirect hops, callbacks).
    "CREATE TABLE delivery_attempts (
        id              INTEGER PRIMARY KEY,
        message_id      INTEGER NOT NULL REFERENCES inbound_messages (id) ON DELETE CASCADE,
        kind            TEXT    NOT NULL,
        url             TEXT    NOT NULL,
        format          TEXT,
        http_status     INTEGER,
        response_body   TEXT    NOT NULL,
        error           TEXT,
        started_at      TEXT    NOT NULL,
        duration_ms     INTEGER NOT NULL
    );
    CREATE INDEX delivery_attempts_message ON delivery_attempts (message_id);
    CREATE INDEX inbound_messages_address ON inbound_messages (address);
    CREATE INDEX inbound_messages_mail_from ON inbound_messages (mail_from COLLATE NOCASE);",
];

pub(super) fn run(connection: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}
