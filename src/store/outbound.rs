//! Outbound: SMTP credentials, sending domains, the durable queue (messages, their content,
//! one row per recipient), events and the suppression list.
//!
//! Plain rows and the SQL that reads and writes them; the rules live in `crate::outbound`.
//! Times are Unix seconds, UTC. Credential secrets arrive here already hashed.
//!
//! Enqueueing is the one durable write (design §4.2): [`Store::enqueue`] returns
//! only after the message, its content and every recipient row are committed with
//! `synchronous = FULL`. Concurrent enqueues are group-committed by one thread
//! (`commit_loop`): it takes every request waiting, writes them in one transaction and
//! answers them all after the single fsync.

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, sealing};
use crate::config::{Field, Redaction};
use crate::crypto::Keyring;

/// How many waiting enqueues one transaction takes at most.
const GROUP_COMMIT_MAX: usize = 256;

/// A live credential delivers; a test credential validates and records but never delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialMode {
    Live,
    Test,
}

impl CredentialMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialMode::Live => "live",
            CredentialMode::Test => "test",
        }
    }

    pub fn from_name(text: &str) -> Option<CredentialMode> {
        match text {
            "live" => Some(CredentialMode::Live),
            "test" => Some(CredentialMode::Test),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub id: i64,
    pub username: String,
    /// SHA-256 of the token, lower-case hex.
    pub secret_hash: String,
    /// The first characters of the token, to recognise it in a list.
    pub prefix: String,
    pub mode: CredentialMode,
    /// Sender patterns (`user@example.com`, `@example.com`); empty: any sending domain.
    pub allowed_senders: Vec<String>,
    pub events_url: Option<String>,
    pub track_opens: bool,
    pub track_clicks: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewCredential {
    pub username: String,
    pub secret_hash: String,
    pub prefix: String,
    pub mode: CredentialMode,
    pub allowed_senders: Vec<String>,
    pub events_url: Option<String>,
    pub track_opens: bool,
    pub track_clicks: bool,
    pub created_at: i64,
}

const CREDENTIAL_COLUMNS: &str = "id, username, secret_hash, prefix, mode, allowed_senders,
    open_text(events_url), track_opens, track_clicks, created_at, last_used_at, revoked_at";

fn credential_from_row(row: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    let mode: String = row.get(4)?;
    let allowed: String = row.get(5)?;
    Ok(CredentialRow {
        id: row.get(0)?,
        username: row.get(1)?,
        secret_hash: row.get(2)?,
        prefix: row.get(3)?,
        mode: CredentialMode::from_name(&mode).ok_or_else(|| bad_text(4, "mode", &mode))?,
        allowed_senders: split_list(&allowed),
        events_url: row.get(6)?,
        track_opens: row.get(7)?,
        track_clicks: row.get(8)?,
        created_at: row.get(9)?,
        last_used_at: row.get(10)?,
        revoked_at: row.get(11)?,
    })
}

/// A domain Postern sends for, with its DKIM key (PEM, PKCS#8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendingDomainRow {
    pub id: i64,
    pub domain: String,
    /// Where bounces go: the envelope sender is `bounces+<id>@<return_path_domain>`.
    pub return_path_domain: String,
    pub dkim_selector: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub dkim_algorithm: String,
    pub dkim_private_key: String,
    /// Base64 of the public key, as the DNS TXT record's `p=` carries it.
    pub dkim_public_key: String,
    pub created_at: i64,
}

const DOMAIN_COLUMNS: &str = "id, domain, return_path_domain, dkim_selector, dkim_algorithm,
    open_text(dkim_private_key), dkim_public_key, created_at";

fn domain_from_row(row: &Row<'_>) -> rusqlite::Result<SendingDomainRow> {
    Ok(SendingDomainRow {
        id: row.get(0)?,
        domain: row.get(1)?,
        return_path_domain: row.get(2)?,
        dkim_selector: row.get(3)?,
        dkim_algorithm: row.get(4)?,
        dkim_private_key: row.get(5)?,
        dkim_public_key: row.get(6)?,
        created_at: row.get(7)?,
    })
}

/// The queue a message waits in. `priority` jumps the queue, `digest` waits behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Priority,
    #[default]
    Standard,
    Digest,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Priority => "priority",
            Priority::Standard => "standard",
            Priority::Digest => "digest",
        }
    }

    pub fn from_name(text: &str) -> Option<Priority> {
        match text {
            "priority" => Some(Priority::Priority),
            "standard" => Some(Priority::Standard),
            "digest" => Some(Priority::Digest),
            _ => None,
        }
    }

    /// The queue order: smaller first.
    fn rank(self) -> i64 {
        self as i64
    }
}

/// Where a message came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Api,
    Smtp,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Smtp => "smtp",
        }
    }
}

/// A recipient's place in the delivery state machine:
/// `queued → sending → delivered | deferred → (sending …) | bounced | expired`; `suppressed`
/// recipients are never attempted; `captured` (dev mode) and `test` (test mode) are kept
/// for the dashboard and never delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientState {
    Queued,
    Sending,
    Delivered,
    Deferred,
    Bounced,
    Suppressed,
    Expired,
    Captured,
    Test,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Queued => "queued",
            RecipientState::Sending => "sending",
            RecipientState::Delivered => "delivered",
            RecipientState::Deferred => "deferred",
            RecipientState::Bounced => "bounced",
            RecipientState::Suppressed => "suppressed",
            RecipientState::Expired => "expired",
            RecipientState::Captured => "captured",
            RecipientState::Test => "test",
        }
    }

    pub fn from_name(text: &str) -> Option<RecipientState> {
        Some(match text {
            "queued" => RecipientState::Queued,
            "sending" => RecipientState::Sending,
            "delivered" => RecipientState::Delivered,
            "deferred" => RecipientState::Deferred,
            "bounced" => RecipientState::Bounced,
            "suppressed" => RecipientState::Suppressed,
            "expired" => RecipientState::Expired,
            "captured" => RecipientState::Captured,
            "test" => RecipientState::Test,
            _ => return None,
        })
    }
}

/// What happens to the recipients of a new message that are not suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Into the queue for the delivery worker.
    Deliver,
    /// Dev mode: kept for the dashboard.
    Capture,
    /// Test mode: validated and recorded only.
    Test,
}

/// A message to enqueue: metadata, the bytes to send and the envelope recipients.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub uuid: String,
    pub credential_id: Option<i64>,
    pub username: String,
    pub source: Source,
    pub header_from: String,
    pub envelope_from: String,
    pub subject: Option<String>,
    pub tags: Vec<String>,
    pub priority: Priority,
    pub test_mode: bool,
    pub track_opens: bool,
    pub track_clicks: bool,
    /// Deliver only over STARTTLS with a verified certificate (`require_tls` of the request
    /// or `x-cloudmta-require-tls` of a submitted message).
    pub require_tls: bool,
    pub raw: Vec<u8>,
    pub remote_ip: Option<String>,
    /// Envelope recipients, lower-case domain, no duplicates.
    pub recipients: Vec<String>,
    pub disposition: Disposition,
    /// Whether events go to a webhook (the credential has an events URL).
    pub webhook: bool,
    pub created_at: i64,
    pub expires_at: i64,
    /// The fields left out of the row (`config::privacy` names; see [`NewOutbound::redact`]).
    pub redacted: Vec<String>,
}

impl NewOutbound {
    /// Leaves out what `fields` (`privacy.redact_outbound`) names, before the row is written:
    /// the API caller's address, the subject, and the From address (the row keeps its domain,
    /// which the worker needs to pick the DKIM key). The content is kept (sealed) because it
    /// is what gets delivered; what the receiving servers answer and the TLS version are left
    /// out when the attempts are recorded (`Store::finish_attempt`, from the row's list).
    pub fn redact(mut self, fields: &Redaction) -> NewOutbound {
        if fields.contains(Field::SenderIp) {
            self.remote_ip = None;
        }
        if fields.contains(Field::Subject) {
            self.subject = None;
        }
        if fields.contains(Field::Sender) {
            self.header_from = crate::mail::address::header_domain(&self.header_from);
        }
        self.redacted = fields.names();
        self
    }
}

/// A row's `redacted` column (a JSON list of field names) as a [`Redaction`].
pub(super) fn redaction(column: String) -> Redaction {
    let names: Vec<String> = serde_json::from_str(&column).unwrap_or_default();
    Redaction::of_row(&names)
}

/// A committed message: its row id and each recipient's first state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: i64,
    pub recipients: Vec<(String, RecipientState)>,
}

/// One enqueue waiting for the commit thread.
pub(super) struct EnqueueRequest {
    message: NewOutbound,
    reply: oneshot::Sender<Result<Enqueued, StoreError>>,
}

pub(super) type EnqueueSender = mpsc::Sender<EnqueueRequest>;

/// Starts the group-commit thread; it ends when every `Store` clone is dropped.
pub(super) fn start_commit_thread(
    writer: std::sync::Arc<std::sync::Mutex<Connection>>,
    changes: super::live::Changes,
    keyring: Option<std::sync::Arc<Keyring>>,
) -> EnqueueSender {
    let (sender, receiver) = mpsc::channel(4 * GROUP_COMMIT_MAX);
    std::thread::Builder::new()
        .name("postern-queue-commit".into())
        .spawn(move || commit_loop(writer, receiver, changes, keyring))
        .expect("the operating system starts a thread");
    sender
}

fn commit_loop(
    writer: std::sync::Arc<std::sync::Mutex<Connection>>,
    mut receiver: mpsc::Receiver<EnqueueRequest>,
    changes: super::live::Changes,
    keyring: Option<std::sync::Arc<Keyring>>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut connection = writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match commit_batch(&mut connection, &batch, keyring.as_deref()) {
            Ok(results) => {
                changes.bump();
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(Ok(result));
                }
            }
            Err(error) => {
                // The whole transaction rolled back: nothing of the batch is promised.
                tracing::error!(%error, messages = batch.len(), "queue commit failed");
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Commit(error.to_string())));
                }
            }
        }
    }
}

fn commit_batch(
    connection: &mut Connection,
    batch: &[EnqueueRequest],
    keyring: Option<&Keyring>,
) -> rusqlite::Result<Vec<Enqueued>> {
    connection.pragma_update(None, "synchronous", "FULL")?;
    let result = (|| {
        let tx = connection.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        for request in batch {
            results.push(insert_message(&tx, &request.message, keyring)?);
        }
        tx.commit()?;
        Ok(results)
    })();
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    result
}

fn insert_message(
    tx: &Connection,
    message: &NewOutbound,
    keyring: Option<&Keyring>,
) -> rusqlite::Result<Enqueued> {
    tx.execute(
        "INSERT INTO outbound_messages (uuid, credential_id, username, source, header_from,
            envelope_from, subject, tags, priority, test_mode, track_opens, track_clicks, size,
            remote_ip, created_at, redacted, require_tls)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            message.uuid,
            message.credential_id,
            message.username,
            message.source.as_str(),
            message.header_from,
            message.envelope_from,
            message.subject,
            serde_json::to_string(&message.tags).expect("strings serialise"),
            message.priority.as_str(),
            message.test_mode,
            message.track_opens,
            message.track_clicks,
            message.raw.len() as i64,
            message.remote_ip,
            message.created_at,
            serde_json::to_string(&message.redacted).expect("strings serialise"),
            message.require_tls,
        ],
    )?;
    let id = tx.last_insert_rowid();
    // The content goes in place, a chunk at a time (`raw` is the row's last column).
    sealing::insert_blob(
        tx,
        keyring,
        ("outbound_content", "raw"),
        &message.raw,
        |raw| {
            tx.execute(
                "INSERT INTO outbound_content (message_id, raw) VALUES (?1, ?2)",
                params![id, raw],
            )?;
            Ok(id)
        },
    )?;
    let webhook = if message.webhook { "pending" } else { "none" };
    let mut recipients = Vec::with_capacity(message.recipients.len());
    for address in &message.recipients {
        let suppressed: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM suppressions WHERE address = ?1)",
            [address],
            |row| row.get(0),
        )?;
        let state = match (suppressed, message.disposition) {
            (true, _) => RecipientState::Suppressed,
            (false, Disposition::Deliver) => RecipientState::Queued,
            (false, Disposition::Capture) => RecipientState::Captured,
            (false, Disposition::Test) => RecipientState::Test,
        };
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        tx.execute(
            "INSERT INTO outbound_recipients (message_id, address, domain, state, queue_rank,
                attempts, next_attempt_at, expires_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?6)",
            params![
                id,
                address,
                domain,
                state.as_str(),
                message.priority.rank(),
                message.created_at,
                message.expires_at,
            ],
        )?;
        let (kind, details) = if suppressed {
            ("suppressed", r#"{"reason":"suppression list"}"#)
        } else {
            ("registration", "{}")
        };
        insert_event(tx, id, address, kind, details, message.created_at, webhook)?;
        recipients.push((address.clone(), state));
    }
    Ok(Enqueued { id, recipients })
}

/// Adds an event; `webhook` is `pending` (to send) or `none`.
pub(super) fn insert_event(
    connection: &Connection,
    message_id: i64,
    recipient: &str,
    kind: &str,
    details: &str,
    at: i64,
    webhook: &str,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO outbound_events (message_id, recipient, kind, details, created_at, webhook,
            webhook_attempts, webhook_next_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, CASE WHEN ?6 = 'pending' THEN ?5 END)",
        params![message_id, recipient, kind, details, at, webhook],
    )?;
    Ok(())
}

/// An outbound message as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundSummary {
    /// The store's row id (the dashboard's URLs use it).
    #[serde(skip)]
    pub row_id: i64,
    /// The UUID the API and the SMTP reply gave out.
    pub id: String,
    pub username: String,
    pub source: Source,
    pub from: String,
    pub envelope_from: String,
    pub subject: Option<String>,
    pub tags: Vec<String>,
    pub priority: Priority,
    pub test_mode: bool,
    pub size: i64,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub created_at: i64,
    pub recipients: Vec<RecipientRow>,
    /// The fields left out of the row (`privacy.redact_outbound` names).
    pub redacted: Vec<String>,
    /// Delivered only over verified TLS.
    pub require_tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientRow {
    #[serde(skip)]
    pub id: i64,
    pub address: String,
    pub state: RecipientState,
    pub attempts: i64,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub next_attempt_at: i64,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub expires_at: i64,
    pub last_code: Option<i64>,
    pub last_response: Option<String>,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub updated_at: i64,
}

/// Which outbound messages to list: newest first, `limit` per page.
#[derive(Debug, Clone, Default)]
pub struct OutboundFilter {
    /// Only messages with a smaller row id (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
    pub recipient: Option<String>,
    pub tag: Option<String>,
    pub state: Option<RecipientState>,
}

const MESSAGE_COLUMNS: &str = "m.id, m.uuid, m.username, m.source, m.header_from,
    m.envelope_from, m.subject, m.tags, m.priority, m.test_mode, m.size, m.created_at,
    m.redacted, m.require_tls";

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<OutboundSummary> {
    let source: String = row.get(3)?;
    let tags: String = row.get(7)?;
    let priority: String = row.get(8)?;
    Ok(OutboundSummary {
        row_id: row.get(0)?,
        id: row.get(1)?,
        username: row.get(2)?,
        source: match source.as_str() {
            "smtp" => Source::Smtp,
            _ => Source::Api,
        },
        from: row.get(4)?,
        envelope_from: row.get(5)?,
        subject: row.get(6)?,
        tags: serde_json::from_str(&tags).map_err(|e| bad_text(7, "tags", &e.to_string()))?,
        priority: Priority::from_name(&priority)
            .ok_or_else(|| bad_text(8, "priority", &priority))?,
        test_mode: row.get(9)?,
        size: row.get(10)?,
        created_at: row.get(11)?,
        recipients: Vec::new(),
        redacted: serde_json::from_str(&row.get::<_, String>(12)?).unwrap_or_default(),
        require_tls: row.get(13)?,
    })
}

const RECIPIENT_COLUMNS: &str = "id, address, state, attempts, next_attempt_at, expires_at,
    last_code, last_response, updated_at";

fn recipient_from_row(row: &Row<'_>) -> rusqlite::Result<RecipientRow> {
    let state: String = row.get(2)?;
    Ok(RecipientRow {
        id: row.get(0)?,
        address: row.get(1)?,
        state: RecipientState::from_name(&state).ok_or_else(|| bad_text(2, "state", &state))?,
        attempts: row.get(3)?,
        next_attempt_at: row.get(4)?,
        expires_at: row.get(5)?,
        last_code: row.get(6)?,
        last_response: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

fn recipients_of(connection: &Connection, message_id: i64) -> rusqlite::Result<Vec<RecipientRow>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {RECIPIENT_COLUMNS} FROM outbound_recipients WHERE message_id = ?1 ORDER BY id"
    ))?;
    statement
        .query_map([message_id], recipient_from_row)?
        .collect()
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub recipient: String,
    pub kind: String,
    /// JSON object text.
    pub details: String,
    pub created_at: i64,
    pub webhook: String,
}

impl Store {
    /// Durably enqueues a message (see the module comment); the answer comes after the
    /// commit, so a 202 or 250 sent on `Ok` is a promise kept across a crash.
    pub async fn enqueue(&self, message: NewOutbound) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueuer
            .send(EnqueueRequest { message, reply })
            .await
            .map_err(|_| StoreError::Commit("the queue commit thread stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Commit("the queue commit thread stopped".into()))?
    }

    /// Adds a credential; `None` when the username is taken.
    pub async fn insert_credential(
        &self,
        credential: NewCredential,
    ) -> Result<Option<CredentialRow>, StoreError> {
        self.write(move |connection| {
            let inserted = connection.execute(
                "INSERT INTO smtp_credentials (username, secret_hash, prefix, mode,
                    allowed_senders, events_url, track_opens, track_clicks, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, seal(?6), ?7, ?8, ?9)",
                params![
                    credential.username,
                    credential.secret_hash,
                    credential.prefix,
                    credential.mode.as_str(),
                    credential.allowed_senders.join(","),
                    credential.events_url,
                    credential.track_opens,
                    credential.track_clicks,
                    credential.created_at,
                ],
            );
            let select = format!("SELECT {CREDENTIAL_COLUMNS} FROM smtp_credentials WHERE id = ?1");
            read_back_unless_taken(connection, inserted, &select, credential_from_row)
        })
        .await
    }

    /// The credential with this username, revoked or not.
    pub async fn credential_by_username(
        &self,
        username: &str,
    ) -> Result<Option<CredentialRow>, StoreError> {
        let username = username.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM smtp_credentials WHERE username = ?1"
                    ),
                    [username],
                    credential_from_row,
                )
                .optional()
        })
        .await
    }

    pub async fn credentials(&self) -> Result<Vec<CredentialRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM smtp_credentials ORDER BY username"
            ))?;
            statement.query_map([], credential_from_row)?.collect()
        })
        .await
    }

    /// Revokes a credential; false when there is none with this id or it was revoked.
    pub async fn revoke_credential(&self, id: i64, at: i64) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = connection.execute(
                "UPDATE smtp_credentials SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Records a credential's use, at most once per `interval` seconds (fewer writes).
    pub async fn touch_credential(
        &self,
        id: i64,
        at: i64,
        interval: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE smtp_credentials SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?2 - ?3)",
            (id, at, interval),
        )
        .await
        .map(drop)
    }

    /// Adds a sending domain; `None` when it exists.
    pub async fn insert_sending_domain(
        &self,
        domain: SendingDomainRow,
    ) -> Result<Option<SendingDomainRow>, StoreError> {
        self.write(move |connection| {
            let inserted = connection.execute(
                "INSERT INTO sending_domains (domain, return_path_domain, dkim_selector,
                    dkim_algorithm, dkim_private_key, dkim_public_key, created_at)
                 VALUES (?1, ?2, ?3, ?4, seal(?5), ?6, ?7)",
                params![
                    domain.domain,
                    domain.return_path_domain,
                    domain.dkim_selector,
                    domain.dkim_algorithm,
                    domain.dkim_private_key,
                    domain.dkim_public_key,
                    domain.created_at,
                ],
            );
            let select = format!("SELECT {DOMAIN_COLUMNS} FROM sending_domains WHERE id = ?1");
            read_back_unless_taken(connection, inserted, &select, domain_from_row)
        })
        .await
    }

    /// The return-path domain of a sending domain: what a send needs, without opening
    /// the sealed DKIM key (the worker reads that, per connection, not per message).
    pub async fn return_path_domain(&self, domain: &str) -> Result<Option<String>, StoreError> {
        let domain = domain.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT return_path_domain FROM sending_domains WHERE domain = ?1",
                    [domain],
                    |row| row.get(0),
                )
                .optional()
        })
        .await
    }

    pub async fn sending_domain(
        &self,
        domain: &str,
    ) -> Result<Option<SendingDomainRow>, StoreError> {
        let domain = domain.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {DOMAIN_COLUMNS} FROM sending_domains WHERE domain = ?1"),
                    [domain],
                    domain_from_row,
                )
                .optional()
        })
        .await
    }

    pub async fn sending_domains(&self) -> Result<Vec<SendingDomainRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {DOMAIN_COLUMNS} FROM sending_domains ORDER BY domain"
            ))?;
            statement.query_map([], domain_from_row)?.collect()
        })
        .await
    }

    /// Removes a sending domain; false when there was none.
    pub async fn delete_sending_domain(&self, domain: &str) -> Result<bool, StoreError> {
        let domain = domain.to_string();
        self.write(move |connection| {
            Ok(connection.execute("DELETE FROM sending_domains WHERE domain = ?1", [domain])? == 1)
        })
        .await
    }

    /// Outbound messages, newest first, with their recipients.
    pub async fn list_outbound(
        &self,
        filter: OutboundFilter,
    ) -> Result<Vec<OutboundSummary>, StoreError> {
        self.read(move |connection| {
            let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM outbound_messages m WHERE 1");
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            let mut clause = |text: &str, value: rusqlite::types::Value| {
                values.push(value);
                sql.push_str(" AND ");
                sql.push_str(&text.replace('?', &format!("?{}", values.len())));
            };
            if let Some(before) = filter.before {
                clause("m.id < ?", before.into());
            }
            if let Some(recipient) = filter.recipient {
                clause(
                    "EXISTS (SELECT 1 FROM outbound_recipients r WHERE r.message_id = m.id
                        AND r.address = ? COLLATE NOCASE)",
                    recipient.into(),
                );
            }
            if let Some(tag) = filter.tag {
                clause(
                    "EXISTS (SELECT 1 FROM json_each(m.tags) t WHERE t.value = ?)",
                    tag.into(),
                );
            }
            if let Some(state) = filter.state {
                clause(
                    "EXISTS (SELECT 1 FROM outbound_recipients r WHERE r.message_id = m.id
                        AND r.state = ?)",
                    state.as_str().to_string().into(),
                );
            }
            values.push(i64::from(filter.limit.clamp(1, 500)).into());
            sql.push_str(&format!(" ORDER BY m.id DESC LIMIT ?{}", values.len()));
            let mut statement = connection.prepare(&sql)?;
            let mut messages: Vec<OutboundSummary> = statement
                .query_map(rusqlite::params_from_iter(values), summary_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            for message in &mut messages {
                message.recipients = recipients_of(connection, message.row_id)?;
            }
            Ok(messages)
        })
        .await
    }

    /// One outbound message by its UUID, with its recipients.
    pub async fn outbound_message(
        &self,
        uuid: &str,
    ) -> Result<Option<OutboundSummary>, StoreError> {
        let uuid = uuid.to_string();
        self.read(move |connection| {
            let message = connection
                .query_row(
                    &format!("SELECT {MESSAGE_COLUMNS} FROM outbound_messages m WHERE m.uuid = ?1"),
                    [uuid],
                    summary_from_row,
                )
                .optional()?;
            let Some(mut message) = message else {
                return Ok(None);
            };
            message.recipients = recipients_of(connection, message.row_id)?;
            Ok(Some(message))
        })
        .await
    }

    /// The bytes queued for a message (by row id).
    pub async fn outbound_content(&self, message_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let keyring = self.keyring.clone();
        self.read(move |connection| {
            let column = ("outbound_content", "raw");
            sealing::read_blob(connection, keyring.as_deref(), column, message_id)
        })
        .await
    }

    /// A message's events, oldest first.
    pub async fn outbound_events(&self, message_id: i64) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare(
                "SELECT id, recipient, kind, details, created_at, webhook FROM outbound_events
                 WHERE message_id = ?1 ORDER BY id",
            )?;
            statement
                .query_map([message_id], |row| {
                    Ok(EventRow {
                        id: row.get(0)?,
                        recipient: row.get(1)?,
                        kind: row.get(2)?,
                        details: row.get(3)?,
                        created_at: row.get(4)?,
                        webhook: row.get(5)?,
                    })
                })?
                .collect()
        })
        .await
    }

    /// Whether this address is on the suppression list.
    pub async fn is_suppressed(&self, address: &str) -> Result<bool, StoreError> {
        let address = address.to_string();
        self.read(move |connection| {
            connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM suppressions WHERE address = ?1)",
                [address],
                |row| row.get(0),
            )
        })
        .await
    }
}

/// After an INSERT into a table with a unique column: the new row read back with `select`
/// (by `?1` = its rowid), or `None` when the unique constraint refused it.
fn read_back_unless_taken<T>(
    connection: &Connection,
    inserted: rusqlite::Result<usize>,
    select: &str,
    from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    match inserted {
        Ok(_) => connection
            .query_row(select, [connection.last_insert_rowid()], from_row)
            .map(Some),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

fn bad_text(index: usize, what: &str, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("unknown {what} {text:?}").into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(redacted: &[&str]) -> NewOutbound {
        let names: Vec<String> = redacted.iter().map(|name| name.to_string()).collect();
        NewOutbound {
            uuid: "0f5e".into(),
            credential_id: None,
            username: "shop".into(),
            source: Source::Api,
            header_from: "Shop <shop@Example.com>".into(),
            envelope_from: "bounces+0f5e@mta.example.com".into(),
            subject: Some("secret subject".into()),
            tags: Vec::new(),
            priority: Priority::Standard,
            test_mode: false,
            track_opens: false,
            require_tls: false,
            track_clicks: false,
            raw: b"Subject: secret subject\r\n\r\nhi\r\n".to_vec(),
            remote_ip: Some("192.0.2.7".into()),
            recipients: vec!["user@dest.test".into()],
            disposition: Disposition::Deliver,
            webhook: false,
            created_at: 0,
            expires_at: 60,
            redacted: Vec::new(),
        }
        .redact(&Redaction::parse_outbound("privacy.redact_outbound", &names).unwrap())
    }

    #[tokio::test]
    async fn redacted_fields_are_left_out_of_the_outbound_row() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        store
            .enqueue(message(&["sender_ip", "sender", "subject"]))
            .await
            .unwrap();
        let row = store
            .read(|connection| {
                connection.query_row(
                    "SELECT remote_ip, header_from, subject, redacted FROM outbound_messages",
                    [],
                    |row| {
                        Ok((
                            row.get::<_, Option<String>>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, Option<String>>(2)?,
                            row.get::<_, String>(3)?,
                        ))
                    },
                )
            })
            .await
            .unwrap();
        let expected = (
            None,
            "example.com".into(),
            None,
            r#"["sender_ip","sender","subject"]"#.into(),
        );
        assert_eq!(row, expected);
        // Without a list, everything is kept.
        let kept = message(&[]);
        assert_eq!(kept.remote_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(kept.header_from, "Shop <shop@Example.com>");
        assert!(kept.redacted.is_empty());
    }
}
