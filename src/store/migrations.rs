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
    // 3: accounts: users (argon2id PHC hashes, TOTP), recovery codes, sessions, sign-in
    // failures for throttling, API keys, the audit log. Times are Unix seconds (UTC);
    // session ids, recovery codes and API keys are stored as SHA-256 hex digests only.
    "CREATE TABLE users (
        id                       INTEGER PRIMARY KEY,
        email                    TEXT    NOT NULL UNIQUE COLLATE NOCASE,
        password_hash            TEXT    NOT NULL,
        role                     TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
        password_change_required INTEGER NOT NULL DEFAULT 0,
        totp_secret              TEXT,
        totp_enabled_at          INTEGER,
        totp_last_step           INTEGER,
        created_at               INTEGER NOT NULL,
        last_sign_in_at          INTEGER
    );
    CREATE TABLE recovery_codes (
        user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        code_hash   TEXT    NOT NULL,
        PRIMARY KEY (user_id, code_hash)
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        id_hash                 TEXT    PRIMARY KEY,
        user_id                 INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        second_factor_pending   INTEGER NOT NULL,
        created_at              INTEGER NOT NULL,
        last_seen_at            INTEGER NOT NULL,
        ip                      TEXT    NOT NULL,
        user_agent              TEXT
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions (user_id);
    CREATE TABLE signin_failures (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        account     TEXT    NOT NULL,
        ip          TEXT    NOT NULL
    );
    CREATE INDEX signin_failures_account ON signin_failures (account, at);
    CREATE INDEX signin_failures_ip ON signin_failures (ip, at);
    CREATE TABLE api_keys (
        id              INTEGER PRIMARY KEY,
        name            TEXT    NOT NULL,
        key_hash        TEXT    NOT NULL UNIQUE,
        prefix          TEXT    NOT NULL,
        role            TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
        created_at      INTEGER NOT NULL,
        created_by      TEXT    NOT NULL,
        last_used_at    INTEGER,
        revoked_at      INTEGER
    );
    CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        actor       TEXT    NOT NULL,
        action      TEXT    NOT NULL,
        subject     TEXT,
        ip          TEXT,
        detail      TEXT
    );
    CREATE INDEX audit_log_at ON audit_log (at);",
    // 4: addresses and domains managed through the API, with the fields of `[[address]]`
    // and `[[domain]]` as given (target URLs may hold credentials, as in the config file).
    "CREATE TABLE managed_addresses (
        id                      INTEGER PRIMARY KEY,
        address                 TEXT    NOT NULL UNIQUE,
        target                  TEXT,
        format                  TEXT,
        timeout_secs            INTEGER,
        max_message_size        INTEGER,
        size_exceeded_message   TEXT,
        size_as_number          INTEGER NOT NULL,
        auth_callback           TEXT,
        error_callback          TEXT,
        dkim                    INTEGER NOT NULL,
        dmarc                   INTEGER NOT NULL
    );
    CREATE TABLE managed_domains (
        id          INTEGER PRIMARY KEY,
        domain      TEXT    NOT NULL UNIQUE,
        auth_regex  TEXT,
        target      TEXT,
        format      TEXT
    );",
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
