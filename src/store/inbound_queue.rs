//! The inbound queue (`inbound::queue`): messages of `queued` addresses, answered 250 once
//! their row, content and queue entry are committed with `synchronous = FULL`
//! ([`Store::enqueue_inbound`]), then POSTed by the queue worker: leased while a POST is
//! made, rescheduled after a temporary failure, finished (row updated, content dropped
//! unless kept) after a 2xx or a 4xx, `failed` past their expiry. Times are Unix seconds.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::attempts::{self, AttemptRecord};
use super::messages::insert_message;
use super::{InboundMeta, Kept, Outcome, Store, StoreError};

/// A queue entry the worker leased: the message and what it needs to POST it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedInbound {
    pub message_id: i64,
    /// Tries made so far.
    pub attempts: i64,
    pub expires_at: i64,
    /// The payload envelope as checked on arrival (JSON).
    pub envelope: String,
}

/// A message's place in the queue, as the API and the detail page show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueEntry {
    /// `queued` or `failed`.
    pub state: String,
    pub attempts: i64,
    #[serde(serialize_with = "super::unix_time::rfc3339")]
    pub next_attempt_at: i64,
    #[serde(serialize_with = "super::unix_time::rfc3339")]
    pub expires_at: i64,
    pub last_error: Option<String>,
}

/// How a POST of a queued message ended for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `successful` (2xx) or `rejected` (4xx).
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub response_body: Option<String>,
    /// Keep the content afterwards (dev mode keeps every message).
    pub keep_content: bool,
}

/// The message's queue entry, if it has one (read with the message: `Store::get_inbound`).
pub(super) fn entry(connection: &Connection, id: i64) -> rusqlite::Result<Option<QueueEntry>> {
    connection
        .prepare_cached(
            "SELECT state, attempts, next_at, expires_at, last_error FROM inbound_queue
             WHERE message_id = ?1",
        )?
        .query_row([id], |row| {
            Ok(QueueEntry {
                state: row.get(0)?,
                attempts: row.get(1)?,
                next_attempt_at: row.get(2)?,
                expires_at: row.get(3)?,
                last_error: row.get(4)?,
            })
        })
        .optional()
}

impl Store {
    /// Records a message of a `queued` address with its content and its queue entry, due
    /// now, in one transaction committed with `synchronous = FULL`: when this returns, the
    /// 250 is a promise a crash cannot break. Its id.
    pub async fn enqueue_inbound(
        &self,
        meta: InboundMeta,
        kept: Kept,
        envelope: String,
        now: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        let keyring = self.keyring.clone();
        self.write(move |connection| {
            connection.pragma_update(None, "synchronous", "FULL")?;
            let result = (|| {
                let tx = connection.transaction()?;
                // The content is here only until it is POSTed: its text is not put in the
                // body index (a trigram index costs as much as the rest of the message).
                let id = insert_message(&tx, meta, Some(kept), false, keyring.as_deref())?;
                tx.execute(
                    "INSERT INTO inbound_queue (message_id, state, next_at, expires_at, envelope)
                     VALUES (?1, 'queued', ?2, ?3, seal(?4))",
                    params![id, now, expires_at, envelope],
                )?;
                tx.commit()?;
                Ok(id)
            })();
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            result
        })
        .await
    }

    /// Takes up to `limit` entries due at `now` and marks them leased (the oldest first).
    pub async fn lease_due_inbound(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<LeasedInbound>, StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let leased = {
                let mut statement = tx.prepare_cached(
                    "UPDATE inbound_queue SET leased = 1
                     WHERE message_id IN (
                        SELECT message_id FROM inbound_queue
                        WHERE state = 'queued' AND leased = 0 AND next_at <= ?1
                        ORDER BY next_at, message_id LIMIT ?2)
                     RETURNING message_id, attempts, expires_at, open_text(envelope)",
                )?;
                let rows = statement.query_map(params![now, limit], |row| {
                    Ok(LeasedInbound {
                        message_id: row.get(0)?,
                        attempts: row.get(1)?,
                        expires_at: row.get(2)?,
                        envelope: row.get(3)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(leased)
        })
        .await
    }

    /// Frees every lease: the process that held them is gone (at the worker's start), so
    /// what it was POSTing is due again now.
    pub async fn release_inbound_leases(&self, now: i64) -> Result<usize, StoreError> {
        self.execute(
            "UPDATE inbound_queue SET leased = 0, next_at = min(next_at, ?1) WHERE leased = 1",
            [now],
        )
        .await
    }

    /// After a temporary failure: one more try counted, the next at `next_at`; or, with
    /// `failed`, the entry is `failed` and so is the message's row.
    pub async fn reschedule_inbound(
        &self,
        id: i64,
        next_at: i64,
        error: String,
        failed: bool,
        records: Vec<AttemptRecord>,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            tx.execute(
                "UPDATE inbound_queue SET attempts = attempts + 1, next_at = ?2, leased = 0,
                    last_error = ?3, state = CASE WHEN ?4 THEN 'failed' ELSE state END
                 WHERE message_id = ?1",
                params![id, next_at, error, failed],
            )?;
            let outcome = match failed {
                true => Outcome::Failed,
                false => Outcome::Queued,
            };
            tx.execute(
                "UPDATE inbound_messages SET outcome = ?2, error = ?3 WHERE id = ?1",
                params![id, outcome.as_str(), error],
            )?;
            attempts::insert(&tx, id, &records)?;
            tx.commit()
        })
        .await
    }

    /// After a 2xx or a 4xx: the entry goes, the row says what the app answered, the content
    /// goes unless kept.
    pub async fn finish_inbound(
        &self,
        id: i64,
        finished: Finished,
        records: Vec<AttemptRecord>,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            tx.execute("DELETE FROM inbound_queue WHERE message_id = ?1", [id])?;
            tx.execute(
                "UPDATE inbound_messages SET outcome = ?2, http_status = ?3, response_body = ?4,
                    error = NULL
                 WHERE id = ?1",
                params![
                    id,
                    finished.outcome.as_str(),
                    finished.http_status,
                    finished.response_body
                ],
            )?;
            if !finished.keep_content {
                tx.execute("DELETE FROM inbound_raw WHERE message_id = ?1", [id])?;
            }
            attempts::insert(&tx, id, &records)?;
            tx.commit()
        })
        .await
    }

    /// "Retry now": a queued or failed message is due at `now` and kept until at least
    /// `expires_at`; false when it is not in the queue.
    pub async fn retry_inbound_now(
        &self,
        id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let changed = tx.execute(
                "UPDATE inbound_queue SET state = 'queued', next_at = ?2,
                    expires_at = max(expires_at, ?3)
                 WHERE message_id = ?1",
                params![id, now, expires_at],
            )?;
            tx.execute(
                "UPDATE inbound_messages SET outcome = 'queued' WHERE id = ?1 AND ?2",
                params![id, changed == 1],
            )?;
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    /// "Discard": the entry and the content go, the row says `discarded`; false when the
    /// message is not in the queue (or a POST of it is being made right now).
    pub async fn discard_inbound(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let changed = tx.execute(
                "DELETE FROM inbound_queue WHERE message_id = ?1 AND leased = 0",
                [id],
            )?;
            if changed == 1 {
                tx.execute(
                    "UPDATE inbound_messages SET outcome = 'discarded' WHERE id = ?1",
                    [id],
                )?;
                tx.execute("DELETE FROM inbound_raw WHERE message_id = ?1", [id])?;
            }
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    /// When the next queued entry is due; `None` when none waits.
    pub async fn next_inbound_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(|connection| {
            connection.query_row(
                "SELECT min(next_at) FROM inbound_queue WHERE state = 'queued' AND leased = 0",
                [],
                |row| row.get(0),
            )
        })
        .await
    }

    /// Entries waiting and failed (the `/metrics` gauge, `/readyz` stays green either way).
    pub async fn inbound_queue_depth(&self) -> Result<(u64, u64), StoreError> {
        self.read(|connection| {
            connection.query_row(
                "SELECT count(*) FILTER (WHERE state = 'queued'),
                        count(*) FILTER (WHERE state = 'failed') FROM inbound_queue",
                [],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
            )
        })
        .await
    }
}
