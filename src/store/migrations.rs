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
    // 5: outbound: SMTP credentials (the CloudMailin "SMTP username" + token), sending
    // domains with their DKIM keys, the durable queue (one message row, its content, one row
    // per recipient with its state), every delivery attempt, events (with their webhook
    // state), the suppression list and instance secrets (e.g. the tracking key).
    "CREATE TABLE smtp_credentials (
        id              INTEGER PRIMARY KEY,
        username        TEXT    NOT NULL UNIQUE,
        secret_hash     TEXT    NOT NULL,
        prefix          TEXT    NOT NULL,
        mode            TEXT    NOT NULL CHECK (mode IN ('live', 'test')),
        allowed_senders TEXT    NOT NULL,
        events_url      TEXT,
        track_opens     INTEGER NOT NULL,
        track_clicks    INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        last_used_at    INTEGER,
        revoked_at      INTEGER
    );
    CREATE TABLE sending_domains (
        id                  INTEGER PRIMARY KEY,
        domain              TEXT    NOT NULL UNIQUE COLLATE NOCASE,
        return_path_domain  TEXT    NOT NULL,
        dkim_selector       TEXT    NOT NULL,
        dkim_algorithm      TEXT    NOT NULL CHECK (dkim_algorithm IN ('rsa-sha256', 'ed25519-sha256')),
        dkim_private_key    TEXT    NOT NULL,
        dkim_public_key     TEXT    NOT NULL,
        created_at          INTEGER NOT NULL
    );
    CREATE TABLE outbound_messages (
        id              INTEGER PRIMARY KEY,
        uuid            TEXT    NOT NULL UNIQUE,
        credential_id   INTEGER REFERENCES smtp_credentials (id) ON DELETE SET NULL,
        username        TEXT    NOT NULL,
        source          TEXT    NOT NULL CHECK (source IN ('api', 'smtp')),
        header_from     TEXT    NOT NULL,
        envelope_from   TEXT    NOT NULL,
        subject         TEXT,
        tags            TEXT    NOT NULL,
        priority        TEXT    NOT NULL CHECK (priority IN ('priority', 'standard', 'digest')),
        test_mode       INTEGER NOT NULL,
        track_opens     INTEGER NOT NULL,
        track_clicks    INTEGER NOT NULL,
        size            INTEGER NOT NULL,
        remote_ip       TEXT,
        created_at      INTEGER NOT NULL
    );
    CREATE INDEX outbound_messages_created ON outbound_messages (created_at);
    CREATE TABLE outbound_content (
        message_id  INTEGER PRIMARY KEY REFERENCES outbound_messages (id) ON DELETE CASCADE,
        raw         BLOB    NOT NULL
    );
    CREATE TABLE outbound_recipients (
        id              INTEGER PRIMARY KEY,
        message_id      INTEGER NOT NULL REFERENCES outbound_messages (id) ON DELETE CASCADE,
        address         TEXT    NOT NULL,
        domain          TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('queued', 'sending', 'delivered',
                            'deferred', 'bounced', 'suppressed', 'expired', 'captured', 'test')),
        queue_rank      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        last_code       INTEGER,
        last_response   TEXT,
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX outbound_recipients_message ON outbound_recipients (message_id);
    CREATE INDEX outbound_recipients_due ON outbound_recipients (queue_rank, next_attempt_at)
        WHERE state IN ('queued', 'deferred');
    CREATE TABLE outbound_attempts (
        id              INTEGER PRIMARY KEY,
        recipient_id    INTEGER NOT NULL REFERENCES outbound_recipients (id) ON DELETE CASCADE,
        started_at      INTEGER NOT NULL,
        host            TEXT,
        outcome         TEXT    NOT NULL CHECK (outcome IN ('started', 'delivered', 'deferred',
                            'bounced', 'interrupted')),
        code            INTEGER,
        response        TEXT,
        tls             TEXT,
        duration_ms     INTEGER
    );
    CREATE INDEX outbound_attempts_recipient ON outbound_attempts (recipient_id);
    CREATE TABLE outbound_events (
        id                  INTEGER PRIMARY KEY,
        message_id          INTEGER NOT NULL REFERENCES outbound_messages (id) ON DELETE CASCADE,
        recipient           TEXT    NOT NULL,
        kind                TEXT    NOT NULL,
        details             TEXT    NOT NULL,
        created_at          INTEGER NOT NULL,
        webhook             TEXT    NOT NULL CHECK (webhook IN ('none', 'pending', 'sent', 'failed')),
        webhook_attempts    INTEGER NOT NULL,
        webhook_next_at     INTEGER
    );
    CREATE INDEX outbound_events_message ON outbound_events (message_id);
    CREATE INDEX outbound_events_pending ON outbound_events (webhook_next_at)
        WHERE webhook = 'pending';
    CREATE TABLE suppressions (
        address         TEXT    PRIMARY KEY COLLATE NOCASE,
        reason          TEXT    NOT NULL,
        message_uuid    TEXT,
        created_at      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE instance_secrets (
        name    TEXT    PRIMARY KEY,
        value   BLOB    NOT NULL
    ) WITHOUT ROWID;",
    // 6: where each account signed in successfully: those addresses keep a small allowance
    // when the account as a whole is throttled (`accounts::throttle`).
    "CREATE TABLE signin_known_addresses (
        account         TEXT    NOT NULL,
        ip              TEXT    NOT NULL,
        last_success_at INTEGER NOT NULL,
        PRIMARY KEY (account, ip)
    ) WITHOUT ROWID;
    CREATE INDEX signin_failures_pair ON signin_failures (account, ip, at);",
    // 7: redaction (`config::privacy`): which metadata fields a message row left out (a JSON
    // array of field names; the columns hold NULL, or '' where the column is NOT NULL), and
    // the `redact` list of runtime-managed addresses and domains.
    "ALTER TABLE inbound_messages ADD COLUMN redacted TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE outbound_messages ADD COLUMN redacted TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE managed_addresses ADD COLUMN redact TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE managed_domains ADD COLUMN redact TEXT NOT NULL DEFAULT '[]';",
    // 8: outbound TLS policy: a message that must only leave over verified TLS
    // (`require_tls`), and the MTA-STS policies of recipient domains (RFC 8461: the policy
    // file as fetched, the TXT id it was fetched for, when), kept across restarts (§5).
    "ALTER TABLE outbound_messages ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE mta_sts_policies (
        domain      TEXT    PRIMARY KEY,
        id          TEXT    NOT NULL,
        policy      TEXT    NOT NULL,
        fetched_at  INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 9: ACME (`tls::acme`): the account key and the certificate with its key, sealed like
    // the other secrets (`store::certificates`), and the last certificate events.
    "CREATE TABLE acme_cache (
        name    TEXT    PRIMARY KEY,
        value   BLOB    NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE certificate_events (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        kind    TEXT    NOT NULL CHECK (kind IN ('issued', 'renewed', 'cached', 'failed')),
        detail  TEXT    NOT NULL
    );",
    // 10: the SPF, DKIM and DMARC results each message was checked with (JSON, the shapes
    // of the payload's `envelope.spf/dkim/dmarc`), for the API and the detail page; NULL for
    // rows written before, and where the sender is redacted.
    "ALTER TABLE inbound_messages ADD COLUMN authentication TEXT;",
    // 11: the inbox (`store::messages`, `store::search`): the header From/To/Cc and the
    // attachment count of each message; a text preview beside the kept content (sealed like
    // it, gone with it); an FTS5 index (trigram: substrings of 3+ characters) over the
    // metadata that is already in the row, kept by triggers, and one over the plain body,
    // filled only by stores that do not seal (an index is plaintext); read state per reader.
    "ALTER TABLE inbound_messages ADD COLUMN header_from TEXT;
    ALTER TABLE inbound_messages ADD COLUMN header_to TEXT;
    ALTER TABLE inbound_messages ADD COLUMN header_cc TEXT;
    ALTER TABLE inbound_messages ADD COLUMN attachments INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE inbound_raw ADD COLUMN preview BLOB;
    CREATE VIRTUAL TABLE inbound_search USING fts5(
        subject, header_from, header_to, header_cc, mail_from, recipients,
        content = 'inbound_messages', content_rowid = 'id', tokenize = 'trigram'
    );
    INSERT INTO inbound_search (inbound_search) VALUES ('rebuild');
    CREATE TRIGGER inbound_search_insert AFTER INSERT ON inbound_messages BEGIN
        INSERT INTO inbound_search (rowid, subject, header_from, header_to, header_cc,
            mail_from, recipients)
        VALUES (new.id, new.subject, new.header_from, new.header_to, new.header_cc,
            new.mail_from, new.recipients);
    END;
    CREATE TRIGGER inbound_search_delete AFTER DELETE ON inbound_messages BEGIN
        INSERT INTO inbound_search (inbound_search, rowid, subject, header_from, header_to,
            header_cc, mail_from, recipients)
        VALUES ('delete', old.id, old.subject, old.header_from, old.header_to, old.header_cc,
            old.mail_from, old.recipients);
    END;
    CREATE TRIGGER inbound_search_update AFTER UPDATE OF subject, header_from, header_to,
        header_cc, mail_from, recipients ON inbound_messages BEGIN
        INSERT INTO inbound_search (inbound_search, rowid, subject, header_from, header_to,
            header_cc, mail_from, recipients)
        VALUES ('delete', old.id, old.subject, old.header_from, old.header_to, old.header_cc,
            old.mail_from, old.recipients);
        INSERT INTO inbound_search (rowid, subject, header_from, header_to, header_cc,
            mail_from, recipients)
        VALUES (new.id, new.subject, new.header_from, new.header_to, new.header_cc,
            new.mail_from, new.recipients);
    END;
    CREATE VIRTUAL TABLE inbound_body_search USING fts5(body, tokenize = 'trigram');
    CREATE TRIGGER inbound_body_search_delete AFTER DELETE ON inbound_raw BEGIN
        DELETE FROM inbound_body_search WHERE rowid = old.message_id;
    END;
    CREATE TABLE inbound_reads (
        reader      TEXT    NOT NULL,
        message_id  INTEGER NOT NULL REFERENCES inbound_messages (id) ON DELETE CASCADE,
        PRIMARY KEY (reader, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX inbound_reads_message ON inbound_reads (message_id);
    CREATE INDEX inbound_messages_outcome ON inbound_messages (outcome, id);
    CREATE INDEX inbound_messages_with_attachments ON inbound_messages (id) WHERE attachments > 0;",
    // 12: `html_to_plain` of runtime-managed addresses (a `plain` made from the HTML when the
    // mail has no text part, contract §1.4); off for the addresses stored before.
    "ALTER TABLE managed_addresses ADD COLUMN html_to_plain INTEGER NOT NULL DEFAULT 0;",
    // 13: webhook signing secrets (Standard Webhooks, `webhook::signing`): per address
    // pattern or SMTP credential, sealed; while a rotation overlaps, the replaced secret
    // signs too, until `previous_until`. `generation` is new at each rotation (random), so a
    // process that opened the secrets sees a rotation made by another without opening them.
    "CREATE TABLE signing_secrets (
        owner           TEXT    PRIMARY KEY,
        secret          BLOB    NOT NULL,
        generation      INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        previous        BLOB,
        previous_until  INTEGER
    ) WITHOUT ROWID;",
    // 14: store-and-forward (`inbound::queue`): the delivery mode of managed addresses and
    // domains, and the queue of messages answered 250 at once and POSTed afterwards (their
    // content is in `inbound_raw` until then): retried with backoff until `expires_at`,
    // then `failed`. `leased` marks a row a worker is POSTing now; `envelope` (sealed) is the
    // payload's envelope as checked on arrival, whatever the row's redaction left out.
    "ALTER TABLE managed_addresses ADD COLUMN delivery TEXT;
    ALTER TABLE managed_domains ADD COLUMN delivery TEXT;
    CREATE TABLE inbound_queue (
        message_id  INTEGER PRIMARY KEY REFERENCES inbound_messages (id) ON DELETE CASCADE,
        state       TEXT    NOT NULL CHECK (state IN ('queued', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        leased      INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        envelope    BLOB    NOT NULL
    );
    CREATE INDEX inbound_queue_due ON inbound_queue (state, next_at);",
    // 15: attachment and message stores (`objects`): named places where attachments and
    // whole messages are put before the POST, an S3-compatible bucket (its secret key
    // sealed) or the data directory's `files/`; and the addresses that use them.
    "CREATE TABLE stores (
        name                TEXT    PRIMARY KEY,
        kind                TEXT    NOT NULL CHECK (kind IN ('s3', 'local')),
        endpoint            TEXT,
        bucket              TEXT,
        prefix              TEXT,
        region              TEXT,
        acl                 TEXT,
        access_key_id       TEXT,
        secret_access_key   BLOB,
        expiry_secs         INTEGER,
        created_at          INTEGER NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE managed_addresses ADD COLUMN attachment_store TEXT;
    ALTER TABLE managed_addresses ADD COLUMN message_store TEXT;
    ALTER TABLE managed_addresses ADD COLUMN message_store_format TEXT;",
    // 16: a kept message's content last in its row. Content goes in as `zeroblob(n)` and
    // is filled in a chunk at a time (`store::sealing::insert_blob`); SQLite keeps a
    // zeroblob unexpanded only when nothing follows it in the record, and the preview
    // (migration 11) came after it, so a 25 MB message cost 25 MB of zeros in memory.
    "CREATE TABLE inbound_raw_by_size (
        message_id  INTEGER PRIMARY KEY REFERENCES inbound_messages (id) ON DELETE CASCADE,
        preview     BLOB,
        raw         BLOB    NOT NULL
    );
    INSERT INTO inbound_raw_by_size (message_id, preview, raw)
        SELECT message_id, preview, raw FROM inbound_raw;
    DROP TABLE inbound_raw;
    ALTER TABLE inbound_raw_by_size RENAME TO inbound_raw;
    CREATE TRIGGER inbound_body_search_delete AFTER DELETE ON inbound_raw BEGIN
        DELETE FROM inbound_body_search WHERE rowid = old.message_id;
    END;",
];

/// The schema version this postern migrates to.
pub(super) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

pub(super) fn run(connection: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let supported = latest();
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
