//! What live pages wait for: every committed write bumps a counter ([`Changes`]) that
//! `Store::changed` hands out, and [`Store::version`] says what a page shows has become
//! (`web::live` sends an event when it differs from the last one sent).

use std::sync::Arc;

use rusqlite::OptionalExtension;
use tokio::sync::watch;

use super::{Store, StoreError};

/// The write counter; cheap to clone, shared by the writer and the queue's commit thread.
#[derive(Clone)]
pub(super) struct Changes(Arc<watch::Sender<u64>>);

impl Default for Changes {
    fn default() -> Changes {
        Changes(Arc::new(watch::Sender::new(0)))
    }
}

impl Changes {
    pub(super) fn bump(&self) {
        self.0.send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// What a live page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The received list: a new message, or one deleted.
    Inbound,
    /// One received message: its delivery attempts.
    Message(i64),
    /// The sent list: new messages, attempts, recipients still on their way.
    Outbound,
    /// One sent message (by UUID): its recipients' states and attempts.
    Sent(String),
}

impl Store {
    /// A receiver that sees every committed write from now on.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changes.0.subscribe()
    }

    /// What `scope` shows, as a string that changes whenever that does.
    pub async fn version(&self, scope: Scope) -> Result<String, StoreError> {
        self.read(move |connection| {
            let numbers: Option<(i64, i64, i64)> = match &scope {
                Scope::Inbound => connection
                    .query_row(
                        "SELECT (SELECT COALESCE(MAX(id), 0) FROM inbound_messages WHERE outcome <> 'refused'),
                            (SELECT COUNT(*) FROM inbound_messages), 0",
                        [],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()?,
                Scope::Message(id) => connection
                    .query_row(
                        "SELECT COUNT(*), COALESCE(MAX(id), 0), 0 FROM delivery_attempts WHERE message_id = ?1",
                        [id],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()?,
                Scope::Outbound => connection
                    .query_row(
                        "SELECT (SELECT COALESCE(MAX(id), 0) FROM outbound_messages),
                            (SELECT COALESCE(MAX(id), 0) FROM outbound_attempts),
                            (SELECT COUNT(*) FROM outbound_recipients
                                WHERE state IN ('queued', 'sending', 'deferred'))",
                        [],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()?,
                Scope::Sent(uuid) => connection
                    .query_row(
                        "SELECT COUNT(a.id), COALESCE(MAX(r.updated_at), 0),
                            COALESCE(SUM(r.state IN ('queued', 'sending', 'deferred')), 0)
                         FROM outbound_messages m JOIN outbound_recipients r ON r.message_id = m.id
                         LEFT JOIN outbound_attempts a ON a.recipient_id = r.id
                         WHERE m.uuid = ?1",
                        [uuid],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()?,
            };
            let (a, b, c) = numbers.unwrap_or_default();
            Ok(format!("{a}.{b}.{c}"))
        })
        .await
    }
}
