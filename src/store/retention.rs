//! Retention's SQL: deletes what is past the cutoffs of `crate::retention` — message rows
//! with their content, attempts and events (the foreign keys cascade), content alone, audit
//! entries — and nulls the IP address and user agent of old opens and clicks (the event
//! rows stay with their message). Then gives the space back to the file system.
//!
//! Each batch of at most [`BATCH`] rows is its own short transaction on the writer, so the
//! queue's commits interleave with a long sweep. Outbound mail the queue still needs (a
//! recipient queued, deferred or being sent, an event still to POST) is never deleted.

use rusqlite::Connection;
use rusqlite::types::Value;

use super::unix_time::to_rfc3339;
use super::{Store, StoreError};
use crate::retention::{ContentCutoff, Cutoffs};

/// Rows per transaction.
const BATCH: i64 = 500;

/// What one sweep deleted (message counts include those dev mode dropped as the oldest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub inbound_messages: usize,
    pub inbound_content: usize,
    pub outbound_messages: usize,
    pub outbound_content: usize,
    pub audit_entries: usize,
    /// Opens and clicks whose IP address and user agent were set to null.
    pub tracking_events: usize,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.inbound_messages
            + self.inbound_content
            + self.outbound_messages
            + self.outbound_content
            + self.audit_entries
            + self.tracking_events
    }
}

/// `m` (an `outbound_messages` row) is still needed by the delivery worker or the events
/// webhook.
const STILL_NEEDED: &str = "(EXISTS (SELECT 1 FROM outbound_recipients r
        WHERE r.message_id = m.id AND r.state IN ('queued', 'deferred', 'sending'))
    OR EXISTS (SELECT 1 FROM outbound_events e
        WHERE e.message_id = m.id AND e.webhook = 'pending'))";

const INBOUND_EXPIRED: &str = "DELETE FROM inbound_messages WHERE id IN (
    SELECT id FROM inbound_messages WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)";

const INBOUND_CONTENT_EXPIRED: &str = "DELETE FROM inbound_raw WHERE message_id IN (
    SELECT r.message_id FROM inbound_raw r JOIN inbound_messages m ON m.id = r.message_id
    WHERE m.received_at < ?1 LIMIT ?2)";

/// All but the newest ?1 messages.
const INBOUND_BEYOND_NEWEST: &str = "DELETE FROM inbound_messages WHERE id IN (
    SELECT id FROM inbound_messages
    WHERE id <= (SELECT id FROM inbound_messages ORDER BY id DESC LIMIT 1 OFFSET ?1)
    ORDER BY id LIMIT ?2)";

const AUDIT_EXPIRED: &str = "DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < ?1 ORDER BY at LIMIT ?2)";

/// Opens and clicks keep their place in the message's history; who opened is forgotten. An
/// event still to POST keeps its details until the app has them.
const TRACKING_EXPIRED: &str = "UPDATE outbound_events
    SET details = json_set(details, '$.ip', NULL, '$.user_agent', NULL)
    WHERE id IN (SELECT id FROM outbound_events
        WHERE kind IN ('open', 'click') AND created_at < ?1 AND webhook <> 'pending'
          AND (json_extract(details, '$.ip') IS NOT NULL
               OR json_extract(details, '$.user_agent') IS NOT NULL)
        LIMIT ?2)";

fn outbound_expired() -> String {
    format!(
        "DELETE FROM outbound_messages WHERE id IN (
            SELECT m.id FROM outbound_messages m WHERE m.created_at < ?1 AND NOT {STILL_NEEDED}
            ORDER BY m.created_at LIMIT ?2)"
    )
}

fn outbound_content_expired() -> String {
    format!(
        "DELETE FROM outbound_content WHERE message_id IN (
            SELECT c.message_id FROM outbound_content c
            JOIN outbound_messages m ON m.id = c.message_id
            WHERE m.created_at < ?1 AND NOT {STILL_NEEDED} LIMIT ?2)"
    )
}

fn outbound_beyond_newest() -> String {
    format!(
        "DELETE FROM outbound_messages WHERE id IN (
            SELECT m.id FROM outbound_messages m
            WHERE m.id <= (SELECT id FROM outbound_messages ORDER BY id DESC LIMIT 1 OFFSET ?1)
              AND NOT {STILL_NEEDED}
            ORDER BY m.id LIMIT ?2)"
    )
}

impl Store {
    /// Deletes everything past `cutoffs`, batch by batch, then shrinks the file (when
    /// anything went): what was deleted.
    pub async fn sweep(&self, cutoffs: Cutoffs) -> Result<Swept, StoreError> {
        let inbound_before = Value::Text(to_rfc3339(cutoffs.inbound_metadata));
        let mut swept = Swept {
            inbound_messages: self.in_batches(INBOUND_EXPIRED, inbound_before).await?,
            outbound_messages: self
                .in_batches(&outbound_expired(), cutoffs.outbound_metadata.into())
                .await?,
            audit_entries: self.in_batches(AUDIT_EXPIRED, cutoffs.audit.into()).await?,
            tracking_events: self
                .in_batches(TRACKING_EXPIRED, cutoffs.tracking.into())
                .await?,
            ..Swept::default()
        };
        match cutoffs.content {
            ContentCutoff::Before(at) => {
                let text = Value::Text(to_rfc3339(at));
                swept.inbound_content = self.in_batches(INBOUND_CONTENT_EXPIRED, text).await?;
                let sql = outbound_content_expired();
                swept.outbound_content = self.in_batches(&sql, at.into()).await?;
            }
            ContentCutoff::KeepNewest(count) => {
                let count = Value::Integer(count.into());
                let sql = outbound_beyond_newest();
                swept.inbound_messages += self
                    .in_batches(INBOUND_BEYOND_NEWEST, count.clone())
                    .await?;
                swept.outbound_messages += self.in_batches(&sql, count).await?;
            }
        }
        if swept.total() > 0 {
            self.write(compact).await?;
        }
        Ok(swept)
    }

    /// Runs `sql` (`?1` the cutoff, `?2` the batch size) until a batch changes fewer rows
    /// than it could: the rows changed in all.
    async fn in_batches(&self, sql: &str, cutoff: Value) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let (sql, cutoff) = (sql.to_string(), cutoff.clone());
            let changed = self
                .write(move |connection| connection.execute(&sql, (cutoff, BATCH)))
                .await?;
            total += changed;
            if changed < BATCH as usize {
                return Ok(total);
            }
        }
    }
}

/// Frees the pages the sweep emptied (auto_vacuum is incremental) and folds the WAL back
/// into the database, truncating both: the file shrinks, and no old copy of a deleted page
/// stays in the WAL.
fn compact(connection: &mut Connection) -> Result<(), rusqlite::Error> {
    let mut vacuum = connection.prepare("PRAGMA incremental_vacuum")?;
    let mut pages = vacuum.query([])?;
    while pages.next()?.is_some() {}
    drop(pages);
    drop(vacuum);
    let busy: i64 =
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    if busy != 0 {
        tracing::warn!("retention: the WAL could not be truncated (a reader was busy); next sweep");
    }
    Ok(())
}

/// Opens a connection's side of retention: deleted content is overwritten, not left in free
/// pages.
pub(super) const SECURE_DELETE: &str = "PRAGMA secure_delete = ON;";

/// Makes the database give back freed pages on `PRAGMA incremental_vacuum`. The mode is
/// written to the file by `VACUUM` (a new file is empty, and cheap; an existing one is
/// rewritten once, logged).
pub(super) fn incremental_auto_vacuum(connection: &Connection) -> Result<(), rusqlite::Error> {
    const INCREMENTAL: i64 = 2;
    let mode = || connection.query_row("PRAGMA auto_vacuum", [], |row| row.get::<_, i64>(0));
    if mode()? == INCREMENTAL {
        return Ok(());
    }
    let tables: i64 =
        connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
    if tables > 0 {
        tracing::info!("database: switching to incremental auto-vacuum (one VACUUM, once)");
    }
    connection.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    debug_assert_eq!(mode().ok(), Some(INCREMENTAL));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(store: &Store, name: &'static str) -> i64 {
        let connection = store.writer.lock().unwrap();
        connection
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn new_and_old_databases_get_incremental_auto_vacuum_and_secure_delete() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(pragma(&store, "auto_vacuum"), 2);
        assert_eq!(pragma(&store, "secure_delete"), 1);
        {
            let connection = store.reader.lock().unwrap();
            let secure: i64 = connection
                .query_row("PRAGMA secure_delete", [], |row| row.get(0))
                .unwrap();
            assert_eq!(secure, 1, "the reader too");
        }
        // A database from before retention: no auto-vacuum, tables and rows in it.
        {
            let connection = store.writer.lock().unwrap();
            connection
                .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
                .unwrap();
        }
        assert_eq!(pragma(&store, "auto_vacuum"), 0);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(pragma(&store, "auto_vacuum"), 2);
    }

    /// An outbound message created at Unix second 0 with content, one recipient in `state`
    /// and, when `pending`, an event still to POST.
    fn old_outbound(store: &Store, uuid: &str, state: &str, pending: bool) {
        let connection = store.writer.lock().unwrap();
        connection
            .execute(
                "INSERT INTO outbound_messages (uuid, username, source, header_from,
                    envelope_from, tags, priority, test_mode, track_opens, track_clicks, size,
                    created_at)
                 VALUES (?1, 'app', 'api', 'a@example.com', 'a@example.com', '[]', 'standard',
                    0, 0, 0, 5, 0)",
                [uuid],
            )
            .unwrap();
        let id = connection.last_insert_rowid();
        connection
            .execute_batch(&format!(
                "INSERT INTO outbound_content (message_id, raw) VALUES ({id}, x'68656c6c6f');
                 INSERT INTO outbound_recipients (message_id, address, domain, state, queue_rank,
                    attempts, next_attempt_at, expires_at, updated_at)
                 VALUES ({id}, 'b@example.net', 'example.net', '{state}', 1, 0, 0, 0, 0);
                 INSERT INTO outbound_events (message_id, recipient, kind, details, created_at,
                    webhook, webhook_attempts)
                 VALUES ({id}, 'b@example.net', 'delivered', '{{}}', 0,
                    '{webhook}', 0);",
                webhook = if pending { "pending" } else { "sent" },
            ))
            .unwrap();
    }

    #[tokio::test]
    async fn mail_the_queue_needs_is_never_swept() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        for (uuid, state, pending) in [
            ("queued", "queued", false),
            ("deferred", "deferred", false),
            ("sending", "sending", false),
            ("event-pending", "delivered", true),
            ("delivered", "delivered", false),
        ] {
            old_outbound(&store, uuid, state, pending);
        }
        let cutoffs = Cutoffs {
            inbound_metadata: 1_000,
            outbound_metadata: 1_000,
            content: ContentCutoff::Before(1_000),
            audit: 1_000,
            tracking: 1_000,
        };
        let swept = store.sweep(cutoffs).await.unwrap();
        assert_eq!((swept.outbound_messages, swept.outbound_content), (1, 0));
        for kept in ["queued", "deferred", "sending", "event-pending"] {
            let message = store.outbound_message(kept).await.unwrap();
            let message = message.unwrap_or_else(|| panic!("{kept} was swept"));
            let content = store.outbound_content(message.row_id).await.unwrap();
            assert!(content.is_some(), "{kept} keeps its content");
        }
        assert!(store.outbound_message("delivered").await.unwrap().is_none());
        let left: i64 = store
            .read(|c| c.query_row("SELECT count(*) FROM outbound_recipients", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(left, 4, "the swept message's recipient went with it");
        // Dev mode's rule keeps them too, however many are newer.
        let newest = Cutoffs {
            content: ContentCutoff::KeepNewest(1),
            ..cutoffs
        };
        assert_eq!(store.sweep(newest).await.unwrap(), Swept::default());
    }

    #[tokio::test]
    async fn dev_default_keeps_the_newest_thousand_and_long_sweeps_go_in_batches() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        {
            let mut connection = store.writer.lock().unwrap();
            let tx = connection.transaction().unwrap();
            for _ in 0..1_203 {
                tx.execute(
                    "INSERT INTO inbound_messages (received_at, remote_ip, helo, mail_from,
                        recipients, size, md5, outcome, smtp_reply, processing_ms)
                     VALUES ('2026-01-01T00:00:00Z', '127.0.0.1', 'h', 'a@example.com', '[]',
                        1, 'x', 'captured', '250', 0)",
                    [],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let newest = store.list_inbound(crate::store::MessageFilter {
            limit: 1,
            ..Default::default()
        });
        let newest = newest.await.unwrap()[0].id;
        // As dev mode's retention has it, nothing past its days.
        let at_start = Cutoffs {
            inbound_metadata: 0,
            outbound_metadata: 0,
            content: ContentCutoff::KeepNewest(crate::retention::DEV_NEWEST),
            audit: 0,
            tracking: 0,
        };
        let swept = store.sweep(at_start).await.unwrap();
        assert_eq!(swept.inbound_messages, 203);
        let kept = store.read(|c| {
            let sql = "SELECT count(*), min(id) FROM inbound_messages";
            c.query_row(sql, [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        });
        assert_eq!(kept.await.unwrap(), (1_000, newest - 999));
        // Three batches of at most 500, one sweep.
        let later = Cutoffs {
            // 3000-01-01: every row is past it.
            inbound_metadata: 32_503_680_000,
            ..at_start
        };
        assert_eq!(store.sweep(later).await.unwrap().inbound_messages, 1_000);
    }
}
