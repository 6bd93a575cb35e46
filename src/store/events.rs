//! Outbound events after enqueueing, and the tables around them: the events webhook's
//! queue (`outbound_events.webhook`), bounces recorded against a message, open and click
//! events, the suppression list and the instance's own secrets.
//!
//! Plain rows and SQL; the rules (backoff, classification, tokens) live in
//! `crate::outbound::{events, bounce, tracking}`.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::outbound::{insert_event, redaction};
use super::{Store, StoreError};
use crate::config::{Field, Redaction};

/// Event kinds that end a recipient's story: the webhook carries at most one of them per
/// recipient (contract §6.8, "one terminal event per recipient, not one per retry").
pub const TERMINAL_KINDS: &[&str] = &["delivery", "bounce", "retries_exhausted", "suppressed"];

/// An event waiting for the events webhook, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: i64,
    /// The message's UUID (the webhook's `message_id`).
    pub message_uuid: String,
    pub recipient: String,
    pub kind: String,
    /// JSON object text.
    pub details: String,
    /// The credential's events URL now; `None` when it was removed or the credential is gone.
    pub events_url: Option<String>,
    /// The credential's username (whose signing secret signs the webhook).
    pub credential: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
}

/// One row of the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressionRow {
    pub address: String,
    /// `bounce`, `manual`, …, with the bounce's status when there is one.
    pub reason: String,
    /// The message whose bounce put the address here.
    pub message_id: Option<String>,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub created_at: i64,
}

/// What a bounce (or a reply to the return path) does to one recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceRecord {
    pub recipient: String,
    /// `bounce`, `soft_bounce`, `auto_reply`, `bounce_reply` or `complaint`.
    pub kind: String,
    /// JSON object text.
    pub details: String,
    /// A hard bounce: the recipient becomes `bounced`.
    pub hard: bool,
    pub code: Option<i64>,
    pub response: Option<String>,
    /// Puts the address on the suppression list with this reason (hard bounces and
    /// complaints).
    pub suppression_reason: Option<String>,
}

/// An open or a click, as the tracking routes saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engagement {
    pub uuid: String,
    pub recipient: String,
    /// `open` or `click`.
    pub kind: &'static str,
    /// The link, for clicks.
    pub url: Option<String>,
    /// JSON object text.
    pub details: String,
    pub at: i64,
}

/// A message as the return path and the tracking routes need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub id: i64,
    pub uuid: String,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    /// Whether this message's copies get the open pixel / tracked links.
    pub track_opens: bool,
    pub track_clicks: bool,
    /// What the message's row left out (`privacy.redact_outbound`).
    pub redact: Redaction,
}

/// `pending` when the message's credential has an events URL, else `none` (SQL). A sealed
/// URL is non-empty exactly when its plaintext is (`seal` leaves '' alone): nothing to open.
const WEBHOOK_FOR_MESSAGE: &str = "SELECT CASE WHEN c.events_url IS NOT NULL AND c.events_url <> ''
        THEN 'pending' ELSE 'none' END
     FROM outbound_messages m LEFT JOIN smtp_credentials c ON c.id = m.credential_id
     WHERE m.id = ?1";

fn webhook_for(connection: &Connection, message_id: i64) -> rusqlite::Result<String> {
    connection
        .query_row(WEBHOOK_FOR_MESSAGE, [message_id], |row| row.get(0))
        .optional()
        .map(|value| value.unwrap_or_else(|| "none".into()))
}

/// An open's or click's details without the client's `ip` and `user_agent` (the message's
/// row redacts `tracking`).
fn without_client(details: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(details).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("ip");
        object.remove("user_agent");
    }
    value.to_string()
}

fn message_ref(connection: &Connection, uuid: &str) -> rusqlite::Result<Option<MessageRef>> {
    let Some((id, uuid, envelope_from, track_opens, track_clicks, redacted)) = connection
        .query_row(
            "SELECT id, uuid, envelope_from, track_opens, track_clicks, redacted
             FROM outbound_messages WHERE uuid = ?1",
            [uuid],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut statement = connection.prepare_cached(
        "SELECT address FROM outbound_recipients WHERE message_id = ?1 ORDER BY id",
    )?;
    let recipients = statement
        .query_map([id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(MessageRef {
        id,
        uuid,
        envelope_from,
        recipients,
        track_opens,
        track_clicks,
        redact: redaction(redacted),
    }))
}

impl Store {
    /// Due events for the webhook (`webhook_next_at <= now`), oldest first, at most
    /// `limit`. A terminal event for a recipient that already has one on its way or sent
    /// is taken off the webhook (`none`) first, so each recipient gets one.
    pub async fn due_events(&self, now: i64, limit: u32) -> Result<Vec<PendingEvent>, StoreError> {
        self.write(move |connection| {
            let kinds = TERMINAL_KINDS
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ");
            connection.execute(
                &format!(
                    "UPDATE outbound_events SET webhook = 'none', webhook_next_at = NULL
                     WHERE webhook = 'pending' AND kind IN ({kinds}) AND EXISTS (
                        SELECT 1 FROM outbound_events p
                        WHERE p.message_id = outbound_events.message_id
                          AND p.recipient = outbound_events.recipient COLLATE NOCASE
                          AND p.kind IN ({kinds}) AND p.id < outbound_events.id
                          AND p.webhook IN ('pending', 'sent', 'failed'))"
                ),
                [],
            )?;
            let mut statement = connection.prepare_cached(
                "SELECT e.id, m.uuid, e.recipient, e.kind, e.details, open_text(c.events_url),
                    e.webhook_attempts, e.created_at, c.username
                 FROM outbound_events e
                 JOIN outbound_messages m ON m.id = e.message_id
                 LEFT JOIN smtp_credentials c ON c.id = m.credential_id
                 WHERE e.webhook = 'pending' AND e.webhook_next_at <= ?1
                 ORDER BY e.webhook_next_at, e.id LIMIT ?2",
            )?;
            statement
                .query_map(params![now, limit], |row| {
                    Ok(PendingEvent {
                        id: row.get(0)?,
                        message_uuid: row.get(1)?,
                        recipient: row.get(2)?,
                        kind: row.get(3)?,
                        details: row.get(4)?,
                        events_url: row
                            .get::<_, Option<String>>(5)?
                            .filter(|url| !url.is_empty()),
                        attempts: row.get(6)?,
                        created_at: row.get(7)?,
                        credential: row.get(8)?,
                    })
                })?
                .collect()
        })
        .await
    }

    /// When the next pending event is due; `None` when none is pending.
    pub async fn next_event_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(|connection| {
            connection.query_row(
                "SELECT MIN(webhook_next_at) FROM outbound_events WHERE webhook = 'pending'",
                [],
                |row| row.get(0),
            )
        })
        .await
    }

    /// Marks events after a webhook POST: `sent`, `failed` (given up), `none` (nowhere to
    /// send them) or, with `retry_at`, still `pending` for later. Each counts one attempt
    /// (`none` counts none).
    pub async fn mark_events(
        &self,
        ids: Vec<i64>,
        state: &'static str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "UPDATE outbound_events SET webhook = ?2, webhook_next_at = ?3,
                        webhook_attempts = webhook_attempts + (?2 <> 'none')
                     WHERE id = ?1",
                )?;
                for id in ids {
                    statement.execute(params![id, state, retry_at])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// The message whose envelope sender is `address` (`bounces+<uuid>@<return path
    /// domain>`, compared without case); `None` for any other address.
    pub async fn message_by_return_path(
        &self,
        address: &str,
    ) -> Result<Option<MessageRef>, StoreError> {
        let address = address.to_string();
        self.read(move |connection| {
            let Some(uuid) = address.split_once('@').and_then(|(local, _)| {
                local
                    .get(..8)
                    .filter(|p| p.eq_ignore_ascii_case("bounces+"))
                    .map(|_| &local[8..])
            }) else {
                return Ok(None);
            };
            let uuid = uuid.to_ascii_lowercase();
            Ok(message_ref(connection, &uuid)?
                .filter(|m| m.envelope_from.eq_ignore_ascii_case(&address)))
        })
        .await
    }

    /// A message by UUID, with its recipients' addresses.
    pub async fn message_ref(&self, uuid: &str) -> Result<Option<MessageRef>, StoreError> {
        let uuid = uuid.to_string();
        self.read(move |connection| message_ref(connection, &uuid))
            .await
    }

    /// Records what a bounce (or a reply) to message `message_id` says, in one
    /// transaction: an event per record; for a hard bounce the recipient becomes `bounced`
    /// (whatever its state but `suppressed`, `captured`, `test`: a bounce can come after the
    /// receiving server accepted); with a suppression reason (hard bounces, complaints) the
    /// address goes on the suppression list.
    pub async fn record_bounce(
        &self,
        message: MessageRef,
        records: Vec<BounceRecord>,
        at: i64,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let webhook = webhook_for(&tx, message.id)?;
            for record in &records {
                insert_event(
                    &tx,
                    message.id,
                    &record.recipient,
                    &record.kind,
                    &record.details,
                    at,
                    &webhook,
                )?;
                if record.hard {
                    tx.execute(
                        "UPDATE outbound_recipients SET state = 'bounced', last_code = ?3,
                            last_response = ?4, updated_at = ?5
                         WHERE message_id = ?1 AND address = ?2 COLLATE NOCASE
                           AND state NOT IN ('suppressed', 'captured', 'test')",
                        params![
                            message.id,
                            record.recipient,
                            record.code,
                            record.response,
                            at
                        ],
                    )?;
                }
                if let Some(reason) = &record.suppression_reason {
                    tx.execute(
                        "INSERT INTO suppressions (address, reason, message_uuid, created_at)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (address) DO UPDATE SET reason = excluded.reason,
                            message_uuid = excluded.message_uuid, created_at = excluded.created_at",
                        params![record.recipient, reason, message.uuid, at],
                    )?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Records an open or a click unless the same one (message, recipient, kind, and
    /// `url` for clicks) was recorded within `window` seconds. True when recorded.
    pub async fn record_engagement(
        &self,
        engagement: Engagement,
        window: i64,
    ) -> Result<bool, StoreError> {
        let Engagement {
            uuid,
            recipient,
            kind,
            url,
            details,
            at,
        } = engagement;
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let Some(message) = message_ref(&tx, &uuid)? else {
                return Ok(false);
            };
            let recent: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM outbound_events
                    WHERE message_id = ?1 AND recipient = ?2 COLLATE NOCASE AND kind = ?3
                      AND created_at > ?4
                      AND (?5 IS NULL OR json_extract(details, '$.url') = ?5))",
                params![message.id, recipient, kind, at - window, url],
                |row| row.get(0),
            )?;
            if recent {
                return Ok(false);
            }
            let webhook = webhook_for(&tx, message.id)?;
            let details = match message.redact.contains(Field::Tracking) {
                true => without_client(&details),
                false => details,
            };
            insert_event(&tx, message.id, &recipient, kind, &details, at, &webhook)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// The suppression list, newest first.
    pub async fn suppressions(&self) -> Result<Vec<SuppressionRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT address, reason, message_uuid, created_at FROM suppressions
                 ORDER BY created_at DESC, address",
            )?;
            statement
                .query_map([], |row| {
                    Ok(SuppressionRow {
                        address: row.get(0)?,
                        reason: row.get(1)?,
                        message_id: row.get(2)?,
                        created_at: row.get(3)?,
                    })
                })?
                .collect()
        })
        .await
    }

    /// Adds an address; false (and nothing changed) when it is listed already.
    pub async fn add_suppression(
        &self,
        address: &str,
        reason: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let (address, reason) = (address.to_string(), reason.to_string());
        self.write(move |connection| {
            let added = connection.execute(
                "INSERT OR IGNORE INTO suppressions (address, reason, message_uuid, created_at)
                 VALUES (?1, ?2, NULL, ?3)",
                params![address, reason, at],
            )?;
            Ok(added == 1)
        })
        .await
    }

    /// Removes an address; false when it was not listed.
    pub async fn remove_suppression(&self, address: &str) -> Result<bool, StoreError> {
        let address = address.to_string();
        self.write(move |connection| {
            Ok(connection.execute("DELETE FROM suppressions WHERE address = ?1", [address])? == 1)
        })
        .await
    }

    /// The instance secret `name`, made from `fresh` on first use (and kept from then on).
    pub async fn instance_secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let name = name.to_string();
        self.write(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO instance_secrets (name, value) VALUES (?1, seal(?2))",
                params![name, fresh],
            )?;
            connection.query_row(
                "SELECT open_blob(value) FROM instance_secrets WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
        })
        .await
    }
}
