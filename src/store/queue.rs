//! The delivery side of the outbound queue: claiming due recipients, recording every attempt
//! before it is made, and moving each recipient through its state machine.
//!
//! ```text
//! queued ─claim─▶ sending ─finish─▶ delivered
//!   ▲               │  ├──────────▶ deferred ─(next_attempt_at)─▶ claim again
//!   └──recover──────┘  ├──────────▶ bounced (+ suppressions)
//!                      └──────────▶ expired (a temporary failure past expires_at)
//! ```
//!
//! Crash safety (design §4.2): [`Store::claim_due`] and [`Store::begin_attempt`]
//! commit before anything goes on the wire, so after a crash a recipient is found in
//! `sending` with a `started` attempt; [`Store::recover_queue`] (run at start) turns those
//! into `queued` and `interrupted`, and the recipient is sent again — a duplicate at worst,
//! never a loss. Every write here is one transaction.

use rusqlite::{Connection, params};

use super::outbound::{insert_event, redaction};
use super::{Store, StoreError};
use crate::config::{Field, Redaction};

/// A recipient taken off the queue (now `sending`) with what its delivery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub recipient_id: i64,
    pub message_id: i64,
    /// The message's UUID (events' `message_id`).
    pub uuid: String,
    pub address: String,
    /// The recipient's domain, lower case (the destination for concurrency limits).
    pub domain: String,
    /// MAIL FROM: `bounces+<uuid>@<return path domain>`.
    pub envelope_from: String,
    /// The From header as composed (`Name <user@example.com>`), or its domain alone when
    /// the row redacts `sender`.
    pub header_from: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub expires_at: i64,
    /// Whether the message's events go to a webhook (its credential has an events URL).
    pub webhook: bool,
    /// The message's tracking switches (the credential's, or the request's override).
    pub track_opens: bool,
    pub track_clicks: bool,
    /// The message must leave only over verified TLS (`require_tls`).
    pub require_tls: bool,
    /// What the message's row left out (`privacy.redact_outbound` when it was queued): the
    /// attempt's records follow it.
    pub redact: Redaction,
}

/// How an attempt ended, and so what becomes of the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Accepted by the recipient's server → `delivered`, event `delivery`.
    Delivered,
    /// Temporary failure → `deferred` until `next_attempt_at`, event `soft_bounce`.
    Deferred { next_attempt_at: i64 },
    /// Permanent failure → `bounced`, event `bounce`, the address suppressed.
    Bounced,
    /// Temporary failure with no time left → `expired`, event `retries_exhausted`.
    Expired,
}

impl AttemptEnd {
    fn attempt_outcome(self) -> &'static str {
        match self {
            AttemptEnd::Delivered => "delivered",
            AttemptEnd::Deferred { .. } | AttemptEnd::Expired => "deferred",
            AttemptEnd::Bounced => "bounced",
        }
    }

    fn recipient_state(self) -> &'static str {
        match self {
            AttemptEnd::Delivered => "delivered",
            AttemptEnd::Deferred { .. } => "deferred",
            AttemptEnd::Bounced => "bounced",
            AttemptEnd::Expired => "expired",
        }
    }

    fn event_kind(self) -> &'static str {
        match self {
            AttemptEnd::Delivered => "delivery",
            AttemptEnd::Deferred { .. } => "soft_bounce",
            AttemptEnd::Bounced => "bounce",
            AttemptEnd::Expired => "retries_exhausted",
        }
    }
}

/// What an attempt found out, recorded by [`Store::finish_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub end: AttemptEnd,
    /// The host that answered (or the last one tried); `None` when none was reached.
    pub host: Option<String>,
    /// The SMTP reply code, when there was a reply.
    pub code: Option<u16>,
    /// The reply text, or what went wrong before a reply.
    pub response: String,
    /// The TLS the transaction ran over (`TLSv1.3 TLS13_AES_256_GCM_SHA384 verified`); `None`
    /// in plain text. Older rows say `starttls`.
    pub tls: Option<String>,
    pub duration_ms: i64,
    pub at: i64,
}

/// What [`Store::recover_queue`] put back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// `sending` recipients made `queued` again.
    pub recipients: usize,
    /// `started` attempts marked `interrupted`.
    pub attempts: usize,
}

/// One row of `outbound_attempts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboundAttemptRow {
    pub id: i64,
    pub recipient_id: i64,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub started_at: i64,
    pub host: Option<String>,
    pub outcome: String,
    pub code: Option<i64>,
    pub response: Option<String>,
    pub tls: Option<String>,
    pub duration_ms: Option<i64>,
}

impl Store {
    /// Takes at most `limit` due recipients (`queued` or `deferred` with `next_attempt_at <=
    /// now`), priority queue first, then oldest due, and marks them `sending` — in one
    /// transaction, so two workers never take the same row.
    pub async fn claim_due(&self, now: i64, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let claimed = {
                let mut statement = tx.prepare_cached(
                    "SELECT r.id, r.message_id, m.uuid, r.address, r.domain, m.envelope_from,
                        m.header_from, r.attempts, r.expires_at,
                        EXISTS (SELECT 1 FROM smtp_credentials c
                                WHERE c.id = m.credential_id AND c.events_url IS NOT NULL),
                        m.track_opens, m.track_clicks, m.redacted, m.require_tls
                     FROM outbound_recipients r JOIN outbound_messages m ON m.id = r.message_id
                     WHERE r.state IN ('queued', 'deferred') AND r.next_attempt_at <= ?1
                     ORDER BY r.queue_rank, r.next_attempt_at, r.id
                     LIMIT ?2",
                )?;
                statement
                    .query_map(params![now, limit as i64], |row| {
                        Ok(Claimed {
                            recipient_id: row.get(0)?,
                            message_id: row.get(1)?,
                            uuid: row.get(2)?,
                            address: row.get(3)?,
                            domain: row.get::<_, String>(4)?.to_ascii_lowercase(),
                            envelope_from: row.get(5)?,
                            header_from: row.get(6)?,
                            attempts: row.get(7)?,
                            expires_at: row.get(8)?,
                            webhook: row.get(9)?,
                            track_opens: row.get(10)?,
                            track_clicks: row.get(11)?,
                            redact: redaction(row.get(12)?),
                            require_tls: row.get(13)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            for recipient in &claimed {
                tx.execute(
                    "UPDATE outbound_recipients SET state = 'sending', updated_at = ?2
                     WHERE id = ?1",
                    params![recipient.recipient_id, now],
                )?;
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    /// Records an attempt as `started` and commits it before the caller connects anywhere
    /// (design §4.2). The first attempt of a recipient also records its
    /// `dispatch` event. Returns the attempt's id for [`Store::finish_attempt`].
    pub async fn begin_attempt(&self, claimed: &Claimed, at: i64) -> Result<i64, StoreError> {
        let claimed = claimed.clone();
        self.write(move |connection| {
            let tx = connection.transaction()?;
            tx.execute(
                "INSERT INTO outbound_attempts (recipient_id, started_at, outcome)
                 VALUES (?1, ?2, 'started')",
                params![claimed.recipient_id, at],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE outbound_recipients SET attempts = attempts + 1, updated_at = ?2
                 WHERE id = ?1",
                params![claimed.recipient_id, at],
            )?;
            if claimed.attempts == 0 {
                insert_event(
                    &tx,
                    claimed.message_id,
                    &claimed.address,
                    "dispatch",
                    "{}",
                    at,
                    webhook(claimed.webhook),
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Ends an attempt: its row, the recipient's new state, the event, and for a hard
    /// bounce the suppression — all in one transaction.
    pub async fn finish_attempt(
        &self,
        claimed: &Claimed,
        attempt_id: i64,
        report: AttemptReport,
    ) -> Result<(), StoreError> {
        let claimed = claimed.clone();
        // What the message's row left out is never written, here either.
        let response = Some(report.response.clone())
            .filter(|_| !claimed.redact.contains(Field::ServerResponse));
        let tls = report
            .tls
            .clone()
            .filter(|_| !claimed.redact.contains(Field::Tls));
        self.write(move |connection| {
            let tx = connection.transaction()?;
            tx.execute(
                "UPDATE outbound_attempts SET host = ?2, outcome = ?3, code = ?4, response = ?5,
                    tls = ?6, duration_ms = ?7
                 WHERE id = ?1",
                params![
                    attempt_id,
                    report.host,
                    report.end.attempt_outcome(),
                    report.code,
                    response,
                    tls,
                    report.duration_ms,
                ],
            )?;
            let next_attempt_at = match report.end {
                AttemptEnd::Deferred { next_attempt_at } => next_attempt_at,
                _ => report.at,
            };
            tx.execute(
                "UPDATE outbound_recipients SET state = ?2, next_attempt_at = ?3, last_code = ?4,
                    last_response = ?5, updated_at = ?6
                 WHERE id = ?1",
                params![
                    claimed.recipient_id,
                    report.end.recipient_state(),
                    next_attempt_at,
                    report.code,
                    response,
                    report.at,
                ],
            )?;
            let mut details = serde_json::json!({
                "host": report.host,
                "code": report.code,
                "response": response,
                "tls": report.tls.is_some(),
                "attempts": claimed.attempts + 1,
            });
            if let AttemptEnd::Deferred { next_attempt_at } = report.end {
                details["next_attempt_at"] = next_attempt_at.into();
            }
            insert_event(
                &tx,
                claimed.message_id,
                &claimed.address,
                report.end.event_kind(),
                &details.to_string(),
                report.at,
                webhook(claimed.webhook),
            )?;
            if report.end == AttemptEnd::Bounced {
                tx.execute(
                    "INSERT INTO suppressions (address, reason, message_uuid, created_at)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (address) DO NOTHING",
                    params![
                        claimed.address,
                        match &response {
                            Some(response) => format!("bounce: {response}"),
                            None => "bounce".into(),
                        },
                        claimed.uuid,
                        report.at
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// At start, before the worker runs: `sending` recipients back to `queued` (due now)
    /// and `started` attempts to `interrupted` — what a crash or a cut shutdown left.
    pub async fn recover_queue(&self, now: i64) -> Result<Recovered, StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let attempts = tx.execute(
                "UPDATE outbound_attempts SET outcome = 'interrupted',
                    response = 'interrupted: postern stopped during the attempt'
                 WHERE outcome = 'started'",
                [],
            )?;
            let recipients = tx.execute(
                "UPDATE outbound_recipients SET state = 'queued', next_attempt_at = ?1,
                    updated_at = ?1
                 WHERE state = 'sending'",
                [now],
            )?;
            tx.commit()?;
            Ok(Recovered {
                recipients,
                attempts,
            })
        })
        .await
    }

    /// The earliest `next_attempt_at` of a recipient waiting in the queue.
    pub async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        self.read(|connection| {
            connection.query_row(
                "SELECT MIN(next_attempt_at) FROM outbound_recipients
                 WHERE state IN ('queued', 'deferred')",
                [],
                |row| row.get(0),
            )
        })
        .await
    }

    /// The attempts of one message's recipients, oldest first.
    pub async fn outbound_attempts(
        &self,
        message_id: i64,
    ) -> Result<Vec<OutboundAttemptRow>, StoreError> {
        self.read(move |connection| attempts_of(connection, message_id))
            .await
    }
}

fn attempts_of(
    connection: &Connection,
    message_id: i64,
) -> rusqlite::Result<Vec<OutboundAttemptRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT a.id, a.recipient_id, a.started_at, a.host, a.outcome, a.code, a.response, a.tls,
            a.duration_ms
         FROM outbound_attempts a JOIN outbound_recipients r ON r.id = a.recipient_id
         WHERE r.message_id = ?1 ORDER BY a.id",
    )?;
    statement
        .query_map([message_id], |row| {
            Ok(OutboundAttemptRow {
                id: row.get(0)?,
                recipient_id: row.get(1)?,
                started_at: row.get(2)?,
                host: row.get(3)?,
                outcome: row.get(4)?,
                code: row.get(5)?,
                response: row.get(6)?,
                tls: row.get(7)?,
                duration_ms: row.get(8)?,
            })
        })?
        .collect()
}

/// The `webhook` column of a new event.
fn webhook(pending: bool) -> &'static str {
    if pending { "pending" } else { "none" }
}
