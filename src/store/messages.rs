//! Inbound message metadata: one row per received message, written before the SMTP reply.

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};
use serde::Serialize;

use super::attempts::{self, AttemptRecord};
use super::search::{self, Search};
use super::{Store, StoreError, sealing};
use crate::config::{Field, Redaction};
use crate::crypto::Keyring;

/// How a message ended, in CloudMailin's delivery-status words (contract §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target answered 2xx; the sender got 250.
    Successful,
    /// The target answered 4xx; the sender got 554.
    Rejected,
    /// 5xx, timeout, unreachable; the sender got 450 and will retry.
    Delayed,
    /// Dev mode: kept in the store, not posted anywhere; the sender got 250.
    Captured,
    /// A bounce or reply to an outbound message's return path (`bounces+<uuid>@…`): read
    /// by `outbound::bounce`, posted nowhere; the sender got 250.
    Bounce,
    /// Refused at RCPT (no such address, the domain's regexp, the authorization callback):
    /// never received, recorded so the refusal can be seen; the sender got the 5xx or 4xx.
    /// Listed only when asked for (`status=refused`).
    Refused,
    /// A `queued` address's message: the sender got 250 at once; the inbound queue POSTs it
    /// (then `successful` or `rejected`, or `failed` past its expiry).
    Queued,
    /// A queued message no try delivered before its expiry; kept for "retry now".
    Failed,
    /// A queued or failed message an operator discarded; its content is gone.
    Discarded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Successful => "successful",
            Outcome::Rejected => "rejected",
            Outcome::Delayed => "delayed",
            Outcome::Captured => "captured",
            Outcome::Bounce => "bounce",
            Outcome::Refused => "refused",
            Outcome::Queued => "queued",
            Outcome::Failed => "failed",
            Outcome::Discarded => "discarded",
        }
    }

    /// The name as stored and as the API filters by it.
    pub fn from_name(text: &str) -> Option<Outcome> {
        match text {
            "successful" => Some(Outcome::Successful),
            "rejected" => Some(Outcome::Rejected),
            "delayed" => Some(Outcome::Delayed),
            "captured" => Some(Outcome::Captured),
            "bounce" => Some(Outcome::Bounce),
            "refused" => Some(Outcome::Refused),
            "queued" => Some(Outcome::Queued),
            "failed" => Some(Outcome::Failed),
            "discarded" => Some(Outcome::Discarded),
            _ => None,
        }
    }
}

/// Everything recorded about one received message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundMeta {
    /// RFC 3339, UTC.
    pub received_at: String,
    pub remote_ip: String,
    pub helo: String,
    pub mail_from: String,
    pub recipients: Vec<String>,
    /// The configured address the message was routed by.
    pub address: Option<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub size: u64,
    pub md5: String,
    pub tls_version: Option<String>,
    /// The target URL with credentials masked; `None` when captured.
    pub target: Option<String>,
    pub format: Option<String>,
    pub http_status: Option<u16>,
    pub outcome: Outcome,
    /// The first 2 KB of the target's response body.
    pub response_body: Option<String>,
    /// Why delivery failed, when it did without an HTTP answer (timeout, refused, …).
    pub error: Option<String>,
    pub smtp_reply: String,
    pub processing_ms: u64,
    /// The fields left out of the row (`config::privacy` names): their columns hold NULL
    /// (`""` and `[]` where the column is required).
    pub redacted: Vec<String>,
    /// The SPF, DKIM and DMARC results the message was checked with: `{"spf": …, "dkim": …,
    /// "dmarc": …}` in the payload's shapes (`dkim`/`dmarc` null where the address does not
    /// ask for them). `None` for mail that was not checked (return mail, rows from before
    /// migration 10) and when the sender is redacted: the results name its domains.
    pub authentication: Option<serde_json::Value>,
    /// The header From, To and Cc as written (decoded): what a mail client shows, beside the
    /// envelope's `mail_from` and `recipients`.
    pub header_from: Option<String>,
    pub header_to: Option<String>,
    pub header_cc: Option<String>,
    /// How many attachments the message has (inline parts included).
    pub attachments: u32,
}

impl InboundMeta {
    /// Leaves out what `fields` names, before the row is written: a redacted value never
    /// reaches the database.
    pub fn redact(mut self, fields: &Redaction) -> InboundMeta {
        let has = |field| fields.contains(field);
        if has(Field::SenderIp) {
            self.remote_ip.clear();
        }
        if has(Field::Helo) {
            self.helo.clear();
        }
        if has(Field::Sender) {
            self.mail_from.clear();
            self.header_from = None;
            self.authentication = None;
        }
        if has(Field::Recipient) {
            self.recipients.clear();
            self.header_to = None;
            self.header_cc = None;
        }
        if has(Field::Subject) {
            self.subject = None;
        }
        if has(Field::MessageId) {
            self.message_id = None;
        }
        if has(Field::ServerResponse) {
            self.response_body = None;
        }
        if has(Field::Tls) {
            self.tls_version = None;
        }
        self.redacted = fields.names();
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundMessage {
    pub id: i64,
    #[serde(flatten)]
    pub meta: InboundMeta,
    /// Whether the raw message is kept (`GET /api/messages/{id}/raw`).
    pub has_raw: bool,
    /// The start of the text body, where the content is kept.
    pub preview: Option<String>,
    /// Whether the reader the list was asked for has opened it; `None` when nobody asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<bool>,
    /// Every HTTP request made for this message; filled for single-message reads only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptRecord>>,
    /// Its place in the inbound queue (`queued` and `failed` messages); single reads only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<super::QueueEntry>,
}

/// Which messages to list, newest first. Text matches ignore ASCII case.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only messages with a smaller id (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
    /// The configured address, as shown (`*@example.com`).
    pub address: Option<String>,
    /// One of the envelope recipients.
    pub recipient: Option<String>,
    /// The envelope sender.
    pub sender: Option<String>,
    /// Text the subject contains (`%` and `_` match themselves).
    pub subject: Option<String>,
    pub outcome: Option<Outcome>,
    /// RFC 3339 (or a date, `2026-11-28`): received at or after.
    pub since: Option<String>,
    /// RFC 3339 (or a date): received before.
    pub until: Option<String>,
    /// The search box's query (`store::search`).
    pub search: Search,
    /// Whose read state `is:read` asks about and each listed message carries (`read`).
    pub reader: Option<String>,
}

/// The content kept with a message: the raw message as received and the start of its text
/// body (the plain part, or the HTML's text), from which the preview and the body index are
/// made.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub raw: Vec<u8>,
    pub text: Option<String>,
}

impl Kept {
    /// `raw` with the part of `text` the preview and the index read: a message's text body
    /// can be as large as the message, and is not held beside it while it is written.
    pub fn new(raw: Vec<u8>, text: Option<String>) -> Kept {
        let text = text.map(|mut text| {
            if text.len() > INDEXED_BYTES {
                text.truncate(head(&text, INDEXED_BYTES).len());
                text.shrink_to_fit();
            }
            text
        });
        Kept { raw, text }
    }
}

/// How much of the text body the preview keeps (characters) and the body index reads.
const PREVIEW_CHARS: usize = 200;
const INDEXED_BYTES: usize = 64 * 1024;

/// At most `limit` bytes of `text`, cut at a character boundary.
fn head(text: &str, limit: usize) -> &str {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first [`PREVIEW_CHARS`] characters of `text`, whitespace collapsed.
fn preview(text: &str) -> String {
    let mut out = String::new();
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= PREVIEW_CHARS {
            return out.chars().take(PREVIEW_CHARS).collect();
        }
    }
    out
}

const COLUMNS: &str = "m.id, m.received_at, m.remote_ip, m.helo, m.mail_from, m.recipients,
    m.address, m.message_id, m.subject, m.size, m.md5, m.tls_version, m.target, m.format,
    m.http_status, m.outcome, m.response_body, m.error, m.smtp_reply, m.processing_ms,
    m.redacted, m.authentication, m.header_from, m.header_to, m.header_cc, m.attachments,
    r.message_id IS NOT NULL, open_text(r.preview)";

/// The rows [`COLUMNS`] reads from.
const FROM_MESSAGES: &str = "inbound_messages m LEFT JOIN inbound_raw r ON r.message_id = m.id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<InboundMessage> {
    let recipients: String = row.get(5)?;
    let outcome: String = row.get(15)?;
    Ok(InboundMessage {
        id: row.get(0)?,
        meta: InboundMeta {
            received_at: row.get(1)?,
            remote_ip: row.get(2)?,
            helo: row.get(3)?,
            mail_from: row.get(4)?,
            recipients: serde_json::from_str(&recipients).unwrap_or_default(),
            address: row.get(6)?,
            message_id: row.get(7)?,
            subject: row.get(8)?,
            size: row.get::<_, i64>(9)? as u64,
            md5: row.get(10)?,
            tls_version: row.get(11)?,
            target: row.get(12)?,
            format: row.get(13)?,
            http_status: row.get(14)?,
            outcome: Outcome::from_name(&outcome).unwrap_or(Outcome::Delayed),
            response_body: row.get(16)?,
            error: row.get(17)?,
            smtp_reply: row.get(18)?,
            processing_ms: row.get::<_, i64>(19)? as u64,
            redacted: serde_json::from_str(&row.get::<_, String>(20)?).unwrap_or_default(),
            authentication: row
                .get::<_, Option<String>>(21)?
                .and_then(|text| serde_json::from_str(&text).ok()),
            header_from: row.get(22)?,
            header_to: row.get(23)?,
            header_cc: row.get(24)?,
            attachments: row.get(25)?,
        },
        has_raw: row.get(26)?,
        preview: row.get(27)?,
        read: None,
        attempts: None,
        queue: None,
    })
}

/// Every id: the window of a query that is not searched a window at a time.
const ALL_IDS: (i64, i64) = (i64::MIN, i64::MAX);

/// The `WHERE …` of `filter` (without its limit) over `inbound_messages m`, and its values,
/// for the ids in `window` (`lo..hi`: `?1` and `?2`, which the search's index lookups use too).
fn filter_sql(filter: &MessageFilter, window: (i64, i64)) -> (String, Vec<SqlValue>) {
    let mut clauses: Vec<String> = vec!["m.id >= ?1 AND m.id < ?2".into()];
    let mut values: Vec<SqlValue> = vec![window.0.into(), window.1.into()];
    // Each clause's `?`s are numbered after the values before it.
    let mut clause = |sql: String, more: Vec<SqlValue>| {
        let mut numbered = String::with_capacity(sql.len() + 8);
        for part in sql.split_inclusive('?') {
            match part.strip_suffix('?') {
                Some(before) => {
                    values.push(SqlValue::Null);
                    numbered.push_str(before);
                    numbered.push_str(&format!("?{}", values.len()));
                }
                None => numbered.push_str(part),
            }
        }
        let first = values.len() - more.len();
        for (slot, value) in values[first..].iter_mut().zip(more) {
            *slot = value;
        }
        clauses.push(numbered);
    };
    let one = |value: SqlValue| vec![value];
    if let Some(before) = filter.before {
        clause("m.id < ?".into(), one(before.into()));
    }
    if let Some(address) = filter.address.clone() {
        clause("m.address = ? COLLATE NOCASE".into(), one(address.into()));
    }
    if let Some(sender) = filter.sender.clone() {
        clause("m.mail_from = ? COLLATE NOCASE".into(), one(sender.into()));
    }
    if let Some(recipient) = filter.recipient.clone() {
        clause(
            "EXISTS (SELECT 1 FROM json_each(m.recipients) j WHERE j.value = ? COLLATE NOCASE)"
                .into(),
            one(recipient.into()),
        );
    }
    if let Some(subject) = &filter.subject {
        clause(
            "m.subject LIKE ? ESCAPE '\\'".into(),
            one(format!("%{}%", search::like_escape(subject)).into()),
        );
    }
    match filter.outcome {
        Some(outcome) => clause(
            "m.outcome = ?".into(),
            one(outcome.as_str().to_string().into()),
        ),
        // Refusals are not mail: only the filter that asks for them lists them.
        None if !filter.search.names_status() => clause(
            "m.outcome <> ?".into(),
            one(Outcome::Refused.as_str().to_string().into()),
        ),
        None => {}
    }
    if let Some(since) = filter.since.clone() {
        clause("m.received_at >= ?".into(), one(since.into()));
    }
    if let Some(until) = filter.until.clone() {
        clause("m.received_at < ?".into(), one(until.into()));
    }
    search::push_sql(&filter.search, filter.reader.as_deref(), &mut clause);
    let filters = format!("WHERE {}", clauses.join(" AND "))
        .replace("{lo}", "?1")
        .replace("{hi}", "?2");
    (filters, values)
}

/// The first window a search looks at (ids), and the largest: each next window is twice the
/// last, so a common word fills a page from the newest ids and a rare one is found in a few
/// index lookups (`bench/search.sh`).
const FIRST_WINDOW: i64 = 4_096;
const LARGEST_WINDOW: i64 = 1 << 20;

impl Store {
    /// Records a message, its kept content (if any) and its delivery attempts in one
    /// transaction; returns its id. The preview is sealed with the content; the body is
    /// indexed for search only when the store does not seal (an index is plaintext).
    pub async fn insert_inbound(
        &self,
        meta: InboundMeta,
        kept: Option<Kept>,
        attempts: Vec<AttemptRecord>,
    ) -> Result<i64, StoreError> {
        let index_bodies = self.index_bodies;
        let keyring = self.keyring.clone();
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let id = insert_message(&tx, meta, kept, index_bodies, keyring.as_deref())?;
            attempts::insert(&tx, id, &attempts)?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Newest first; with `filter.reader`, each message says whether that reader opened it.
    pub async fn list_inbound(
        &self,
        filter: MessageFilter,
    ) -> Result<Vec<InboundMessage>, StoreError> {
        self.read(move |connection| {
            // The ids first (a search's candidates are sorted by id alone), then the rows.
            let page = |window: (i64, i64), limit: u32| -> rusqlite::Result<Vec<i64>> {
                let (filters, mut values) = filter_sql(&filter, window);
                values.push(limit.into());
                let sql = format!(
                    "SELECT m.id FROM inbound_messages m {filters} ORDER BY m.id DESC LIMIT ?{}",
                    values.len()
                );
                let mut statement = connection.prepare_cached(&sql)?;
                let ids = statement.query_map(params_from_iter(values), |row| row.get(0))?;
                ids.collect()
            };
            let messages = match filter.search.is_empty() {
                true => page(ALL_IDS, filter.limit)?,
                // Searched newest first, a growing window of ids at a time, until the page
                // is full or the oldest id is passed.
                false => {
                    let newest: i64 = connection.query_row(
                        "SELECT COALESCE(MAX(id), 0) FROM inbound_messages",
                        [],
                        |row| row.get(0),
                    )?;
                    let mut hi = filter.before.unwrap_or(i64::MAX).min(newest + 1);
                    let mut width = FIRST_WINDOW;
                    let mut found = Vec::new();
                    while hi > 1 && found.len() < filter.limit as usize {
                        let lo = (hi - width).max(1);
                        let wanted = filter.limit - found.len() as u32;
                        found.extend(page((lo, hi), wanted)?);
                        hi = lo;
                        width = (width * 2).min(LARGEST_WINDOW);
                    }
                    found
                }
            };
            let mut row = connection.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM {FROM_MESSAGES} WHERE m.id = ?1"
            ))?;
            let mut messages = messages
                .into_iter()
                .map(|id| row.query_row([id], from_row))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if let Some(reader) = &filter.reader {
                let mut read = connection.prepare_cached(
                    "SELECT 1 FROM inbound_reads WHERE reader = ?1 AND message_id = ?2",
                )?;
                for message in &mut messages {
                    message.read = Some(read.exists(params![reader, message.id])?);
                }
            }
            Ok(messages)
        })
        .await
    }

    /// Marks a message read (or unread) for `reader`; whether the message exists.
    pub async fn mark_read(&self, reader: String, id: i64, read: bool) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let exists = connection
                .prepare_cached("SELECT 1 FROM inbound_messages WHERE id = ?1")?
                .exists([id])?;
            if exists {
                let sql = match read {
                    true => {
                        "INSERT OR IGNORE INTO inbound_reads (reader, message_id) VALUES (?1, ?2)"
                    }
                    false => "DELETE FROM inbound_reads WHERE reader = ?1 AND message_id = ?2",
                };
                connection.execute(sql, params![reader, id])?;
            }
            Ok(exists)
        })
        .await
    }

    /// How many messages `filter` matches (its `limit` and `before` aside).
    pub async fn count_inbound(&self, filter: MessageFilter) -> Result<u64, StoreError> {
        self.read(move |connection| {
            let (filters, values) = filter_sql(
                &MessageFilter {
                    before: None,
                    ..filter
                },
                ALL_IDS,
            );
            let sql = format!("SELECT COUNT(*) FROM inbound_messages m {filters}");
            let count: i64 =
                connection.query_row(&sql, params_from_iter(values), |row| row.get(0))?;
            Ok(count as u64)
        })
        .await
    }

    /// Deletes one message with its content and attempts; whether it was there.
    pub async fn delete_inbound(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |connection| {
            connection
                .execute("DELETE FROM inbound_messages WHERE id = ?1", [id])
                .map(|deleted| deleted > 0)
        })
        .await
    }

    /// Deletes every message `filter` matches (its `limit` and `before` aside), with their
    /// content and attempts, a batch per transaction so arriving mail is never held up long;
    /// how many.
    pub async fn delete_inbound_matching(&self, filter: MessageFilter) -> Result<u64, StoreError> {
        const BATCH: u32 = 500;
        let filter = MessageFilter {
            before: None,
            ..filter
        };
        let mut deleted = 0;
        loop {
            let filter = filter.clone();
            let batch = self
                .write(move |connection| {
                    let (filters, mut values) = filter_sql(&filter, ALL_IDS);
                    values.push(BATCH.into());
                    let sql = format!(
                        "DELETE FROM inbound_messages WHERE id IN (
                            SELECT m.id FROM inbound_messages m {filters} LIMIT ?{})",
                        values.len()
                    );
                    connection.execute(&sql, params_from_iter(values))
                })
                .await?;
            deleted += batch as u64;
            if batch < BATCH as usize {
                return Ok(deleted);
            }
        }
    }

    /// How many recipients were refused at RCPT since `since` (RFC 3339).
    pub async fn count_refused_since(&self, since: String) -> Result<u64, StoreError> {
        self.read(move |connection| {
            let count: i64 = connection.query_row(
                "SELECT COUNT(*) FROM inbound_messages WHERE outcome = 'refused' AND received_at >= ?1",
                [since],
                |row| row.get(0),
            )?;
            Ok(count as u64)
        })
        .await
    }

    /// One message with its delivery attempts.
    pub async fn get_inbound(&self, id: i64) -> Result<Option<InboundMessage>, StoreError> {
        self.read(move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM {FROM_MESSAGES} WHERE m.id = ?1");
            let Some(mut message) = connection.query_row(&sql, [id], from_row).optional()? else {
                return Ok(None);
            };
            message.attempts = Some(attempts::of_message(connection, id)?);
            message.queue = super::inbound_queue::entry(connection, id)?;
            Ok(Some(message))
        })
        .await
    }

    pub async fn get_inbound_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let keyring = self.keyring.clone();
        self.read(move |connection| {
            sealing::read_blob(connection, keyring.as_deref(), ("inbound_raw", "raw"), id)
        })
        .await
    }
}

/// The row of a message and its kept content (sealed; its text indexed when the store may
/// hold plaintext), inside the caller's transaction; its id.
pub(super) fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    meta: InboundMeta,
    kept: Option<Kept>,
    index_bodies: bool,
    keyring: Option<&Keyring>,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO inbound_messages (received_at, remote_ip, helo, mail_from,
            recipients, address, message_id, subject, size, md5, tls_version, target,
            format, http_status, outcome, response_body, error, smtp_reply, processing_ms,
            redacted, authentication, header_from, header_to, header_cc, attachments)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
            ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
        params![
            meta.received_at,
            meta.remote_ip,
            meta.helo,
            meta.mail_from,
            serde_json::to_string(&meta.recipients).expect("strings serialise"),
            meta.address,
            meta.message_id,
            meta.subject,
            meta.size as i64,
            meta.md5,
            meta.tls_version,
            meta.target,
            meta.format,
            meta.http_status,
            meta.outcome.as_str(),
            meta.response_body,
            meta.error,
            meta.smtp_reply,
            meta.processing_ms as i64,
            serde_json::to_string(&meta.redacted).expect("strings serialise"),
            meta.authentication.as_ref().map(|value| value.to_string()),
            meta.header_from,
            meta.header_to,
            meta.header_cc,
            meta.attachments,
        ],
    )?;
    let id = tx.last_insert_rowid();
    if let Some(Kept { raw, text }) = kept {
        let text = text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        // The content goes in place, a chunk at a time (it may be tens of megabytes).
        sealing::insert_blob(tx, keyring, ("inbound_raw", "raw"), &raw, |raw| {
            tx.execute(
                "INSERT INTO inbound_raw (message_id, preview, raw) VALUES (?1, seal(?2), ?3)",
                params![id, text.map(preview), raw],
            )?;
            Ok(id)
        })?;
        if let Some(text) = text.filter(|_| index_bodies) {
            tx.execute(
                "INSERT INTO inbound_body_search (rowid, body) VALUES (?1, ?2)",
                params![id, head(text, INDEXED_BYTES)],
            )?;
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_text_is_cut_to_what_the_index_reads_at_a_character_boundary() {
        // 'é' is two bytes: the limit falls inside one.
        let long = format!("a{}", "é".repeat(INDEXED_BYTES));
        let kept = Kept::new(b"raw".to_vec(), Some(long.clone()));
        let text = kept.text.unwrap();
        assert_eq!(text.len(), INDEXED_BYTES - 1);
        assert!(long.starts_with(&text));
        assert!(
            text.capacity() < 2 * INDEXED_BYTES,
            "the rest is given back"
        );
        let short = Kept::new(Vec::new(), Some("Hello there".into()));
        assert_eq!(short.text.as_deref(), Some("Hello there"));
        assert_eq!(Kept::new(Vec::new(), None).text, None);
    }

    fn meta(subject: &str) -> InboundMeta {
        InboundMeta {
            received_at: "2026-11-28T00:00:00.000Z".into(),
            remote_ip: "127.0.0.1".into(),
            helo: "client.test".into(),
            mail_from: "a@example.com".into(),
            recipients: vec!["b@example.com".into(), "c@example.com".into()],
            address: Some("*@example.com".into()),
            message_id: Some("<1@example.com>".into()),
            subject: Some(subject.into()),
            size: 42,
            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
            tls_version: Some("TLSv1.3".into()),
            target: Some("http://***@127.0.0.1/".into()),
            format: Some("json+n".into()),
            http_status: Some(200),
            outcome: Outcome::Successful,
            response_body: Some("ok".into()),
            error: None,
            smtp_reply: "250 2.0.0 OK".into(),
            processing_ms: 7,
            redacted: Vec::new(),
            authentication: None,
            header_from: Some("Alice <a@example.com>".into()),
            header_to: Some("b@example.com".into()),
            header_cc: None,
            attachments: 0,
        }
    }

    #[tokio::test]
    async fn redacted_fields_are_left_out_of_the_row() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let names = ["sender_ip", "subject", "server_response"].map(String::from);
        let fields = Redaction::parse("privacy.redact", &names).unwrap();
        let id = store
            .insert_inbound(meta("secret").redact(&fields), None, Vec::new())
            .await
            .unwrap();
        let row = store.get_inbound(id).await.unwrap().unwrap().meta;
        assert_eq!(row.redacted, names);
        assert_eq!((row.remote_ip.as_str(), row.subject), ("", None));
        assert_eq!(row.response_body, None);
        // The rest is kept and searchable.
        assert_eq!(row.mail_from, "a@example.com");
        let found = store
            .list_inbound(MessageFilter {
                sender: Some("a@example.com".into()),
                limit: 10,
                ..MessageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
    }

    #[tokio::test]
    async fn round_trip_paging_and_raw() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let first = store
            .insert_inbound(meta("one"), None, Vec::new())
            .await
            .unwrap();
        let second = store
            .insert_inbound(
                meta("two"),
                Some(Kept {
                    raw: b"raw".to_vec(),
                    text: Some("  Hello\n\n  there ".into()),
                }),
                Vec::new(),
            )
            .await
            .unwrap();
        let page = store
            .list_inbound(MessageFilter {
                limit: 1,
                ..MessageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, second);
        assert!(page[0].has_raw);
        let next = store
            .list_inbound(MessageFilter {
                before: Some(second),
                limit: 10,
                ..MessageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(next.iter().map(|m| m.id).collect::<Vec<_>>(), vec![first]);
        assert_eq!(next[0].meta, meta("one"));
        assert_eq!(
            store.get_inbound_raw(second).await.unwrap(),
            Some(b"raw".to_vec())
        );
        assert_eq!(store.get_inbound_raw(first).await.unwrap(), None);
        // Reopening runs no migration twice.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.get_inbound(first).await.unwrap().is_some());
    }

    /// A store with two messages: "ok" as [`meta`] makes it, and "rejected", from
    /// Other@Example.org a day later, with one webhook attempt.
    struct TwoMessages {
        _dir: tempfile::TempDir,
        store: Store,
        ok: i64,
        bad: i64,
        attempt: AttemptRecord,
    }

    impl TwoMessages {
        async fn new() -> TwoMessages {
            let dir = crate::datadir::test_dir();
            let store = Store::open(dir.path()).unwrap();
            let mut rejected = meta("rejected");
            rejected.outcome = Outcome::Rejected;
            rejected.mail_from = "Other@Example.org".into();
            rejected.received_at = "2026-11-29T10:00:00Z".into();
            let attempt = AttemptRecord {
                kind: "target".into(),
                url: "http://127.0.0.1/in".into(),
                format: Some("json+n".into()),
                http_status: Some(422),
                response_body: "no".into(),
                error: None,
                started_at: "2026-11-29T10:00:00Z".into(),
                duration_ms: 3,
            };
            let ok = store
                .insert_inbound(meta("ok"), None, Vec::new())
                .await
                .unwrap();
            let bad = store
                .insert_inbound(rejected, None, vec![attempt.clone()])
                .await
                .unwrap();
            TwoMessages {
                _dir: dir,
                store,
                ok,
                bad,
                attempt,
            }
        }

        /// The ids `filter` lists, newest first.
        async fn ids(&self, filter: MessageFilter) -> Vec<i64> {
            self.store
                .list_inbound(MessageFilter {
                    limit: 50,
                    ..filter
                })
                .await
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect()
        }
    }

    #[tokio::test]
    async fn filters_match_outcome_and_addresses_ignoring_case() {
        let two = TwoMessages::new().await;
        let (ok, bad) = (two.ok, two.bad);
        let by = MessageFilter::default;
        let cases = [
            (
                MessageFilter {
                    outcome: Some(Outcome::Rejected),
                    ..by()
                },
                vec![bad],
            ),
            (
                MessageFilter {
                    sender: Some("other@example.ORG".into()),
                    ..by()
                },
                vec![bad],
            ),
            (
                MessageFilter {
                    recipient: Some("C@example.com".into()),
                    ..by()
                },
                vec![bad, ok],
            ),
            (
                MessageFilter {
                    recipient: Some("x@example.com".into()),
                    ..by()
                },
                vec![],
            ),
            (
                MessageFilter {
                    address: Some("*@EXAMPLE.com".into()),
                    ..by()
                },
                vec![bad, ok],
            ),
        ];
        for (filter, expected) in cases {
            let shown = format!("{filter:?}");
            assert_eq!(two.ids(filter).await, expected, "{shown}");
        }
    }

    #[tokio::test]
    async fn filters_match_dates_and_subject_text() {
        let two = TwoMessages::new().await;
        let by = MessageFilter::default;
        let since = MessageFilter {
            since: Some("2026-11-29".into()),
            ..by()
        };
        assert_eq!(two.ids(since).await, [two.bad]);
        let until = MessageFilter {
            until: Some("2026-11-29".into()),
            ..by()
        };
        assert_eq!(two.ids(until).await, [two.ok]);
        let subject = MessageFilter {
            subject: Some("JECT".into()),
            ..by()
        };
        assert_eq!(two.ids(subject).await, [two.bad]);
    }

    #[tokio::test]
    async fn subject_filter_takes_percent_and_underscore_as_text() {
        let two = TwoMessages::new().await;
        let percent = two
            .store
            .insert_inbound(meta("100% off_now"), None, Vec::new())
            .await
            .unwrap();
        for (text, expected) in [
            ("0% o", vec![percent]),
            ("%", vec![percent]),
            ("f_n", vec![percent]),
            ("r_j", vec![]),
            ("1%f", vec![]),
        ] {
            let filter = MessageFilter {
                subject: Some(text.into()),
                ..MessageFilter::default()
            };
            assert_eq!(two.ids(filter).await, expected, "{text}");
        }
    }

    #[tokio::test]
    async fn searches_find_matches_across_windows_newest_first() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        // More messages than the first window holds; two mention a zeppelin, far apart.
        let total = FIRST_WINDOW + 1_000;
        let mut zeppelins = Vec::new();
        for n in 0..total {
            let mut row = meta(&format!("note {n}"));
            row.header_from = Some(format!("Sender {n} <s{n}@example.com>"));
            let text = match n == 5 || n == total - 3 {
                true => "about the zeppelin",
                false => "nothing here",
            };
            let kept = Kept {
                raw: b"raw".to_vec(),
                text: Some(text.into()),
            };
            let id = store
                .insert_inbound(row, Some(kept), Vec::new())
                .await
                .unwrap();
            if text.contains("zeppelin") {
                zeppelins.push(id);
            }
        }
        zeppelins.reverse();
        let search = |query: &str, before: Option<i64>, limit: u32| MessageFilter {
            search: Search::parse(query).unwrap(),
            before,
            limit,
            reader: Some("user:1".into()),
            ..MessageFilter::default()
        };
        let ids = |messages: Vec<InboundMessage>| messages.iter().map(|m| m.id).collect::<Vec<_>>();
        let found = store
            .list_inbound(search("zeppelin", None, 50))
            .await
            .unwrap();
        assert_eq!(ids(found), zeppelins);
        // Paged: the older one after the newer one.
        let first = store
            .list_inbound(search("zeppelin", None, 1))
            .await
            .unwrap();
        assert_eq!(ids(first), [zeppelins[0]]);
        let next = store
            .list_inbound(search("zeppelin", Some(zeppelins[0]), 1))
            .await
            .unwrap();
        assert_eq!(ids(next), [zeppelins[1]]);
        // A common word fills the page from the newest; negation and fields narrow it.
        let common = store
            .list_inbound(search("nothing", None, 3))
            .await
            .unwrap();
        assert_eq!(common.len(), 3);
        assert!(common[0].id > common[1].id && common[1].id > common[2].id);
        let one = store
            .list_inbound(search("from:\"Sender 7 <\" -zeppelin", None, 50))
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].meta.subject.as_deref(), Some("note 7"));
        // Nobody has read anything; opening one reads it for that reader only.
        assert_eq!(
            store
                .list_inbound(search("is:read", None, 50))
                .await
                .unwrap(),
            vec![]
        );
        assert!(
            store
                .mark_read("user:1".into(), zeppelins[1], true)
                .await
                .unwrap()
        );
        let read = store
            .list_inbound(search("is:read", None, 50))
            .await
            .unwrap();
        assert_eq!(ids(read), [zeppelins[1]]);
        let other = MessageFilter {
            reader: Some("user:2".into()),
            ..search("is:read", None, 50)
        };
        assert_eq!(
            store.list_inbound(other).await.unwrap(),
            vec![],
            "only for that reader"
        );
        // Deleting a message takes it out of both indexes.
        assert!(store.delete_inbound(zeppelins[0]).await.unwrap());
        let found = store
            .list_inbound(search("zeppelin", None, 50))
            .await
            .unwrap();
        assert_eq!(ids(found), [zeppelins[1]]);
    }

    #[tokio::test]
    async fn a_sealed_store_indexes_no_text_unless_told_and_keeps_the_preview_sealed() {
        let dir = crate::datadir::test_dir();
        let keyring = std::sync::Arc::new(crate::crypto::Keyring::generate());
        let store = Store::open_sealed(dir.path(), keyring.clone()).unwrap();
        let kept = || Kept {
            raw: b"Subject: x\r\n\r\nsecret words".to_vec(),
            text: Some("secret words".into()),
        };
        let id = store
            .insert_inbound(meta("plain"), Some(kept()), Vec::new())
            .await
            .unwrap();
        let search = MessageFilter {
            search: Search::parse("secret").unwrap(),
            limit: 10,
            ..MessageFilter::default()
        };
        assert!(store.list_inbound(search.clone()).await.unwrap().is_empty());
        // The preview reads back, but the file never holds it in plaintext.
        let message = store.get_inbound(id).await.unwrap().unwrap();
        assert_eq!(message.preview.as_deref(), Some("secret words"));
        drop(store);
        let file = std::fs::read(dir.path().join("postern.db")).unwrap();
        let wal = std::fs::read(dir.path().join("postern.db-wal")).unwrap_or_default();
        for bytes in [&file, &wal] {
            assert!(!bytes.windows(12).any(|w| w == b"secret words"));
        }
        // Told to (`[privacy] index_bodies`), it indexes the text.
        let store = Store::open_sealed(dir.path(), keyring)
            .unwrap()
            .with_body_index(true);
        let id = store
            .insert_inbound(meta("indexed"), Some(kept()), Vec::new())
            .await
            .unwrap();
        let found = store.list_inbound(search).await.unwrap();
        assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);
    }

    /// Small content is bound whole, large content written in place a chunk at a time:
    /// both read back as written, sealed or not, and a sealed store's file never holds
    /// the plaintext of either.
    #[tokio::test]
    async fn kept_content_of_any_size_reads_back_and_is_sealed_in_the_file() {
        for sealed in [false, true] {
            let dir = crate::datadir::test_dir();
            let store = match sealed {
                true => {
                    let keyring = std::sync::Arc::new(crate::crypto::Keyring::generate());
                    Store::open_sealed(dir.path(), keyring).unwrap()
                }
                false => Store::open(dir.path()).unwrap(),
            };
            for size in [0, 10, 64 * 1024, 64 * 1024 + 1, 300_000] {
                let raw: Vec<u8> = b"Subject: x\r\n\r\nPLAINTEXT-MARK "
                    .iter()
                    .copied()
                    .cycle()
                    .take(size)
                    .collect();
                let kept = Kept {
                    raw: raw.clone(),
                    text: Some("preview".into()),
                };
                let id = (store.insert_inbound(meta("x"), Some(kept), Vec::new()))
                    .await
                    .unwrap();
                let back = store.get_inbound_raw(id).await.unwrap().unwrap();
                assert!(back == raw, "{size} octets, sealed: {sealed}");
                let message = store.get_inbound(id).await.unwrap().unwrap();
                assert_eq!(message.preview.as_deref(), Some("preview"));
            }
            drop(store);
            let file = std::fs::read(dir.path().join("postern.db")).unwrap();
            let wal = std::fs::read(dir.path().join("postern.db-wal")).unwrap_or_default();
            let found = [&file, &wal]
                .iter()
                .any(|bytes| bytes.windows(14).any(|w| w == b"PLAINTEXT-MARK"));
            assert_eq!(found, !sealed, "sealed: {sealed}");
        }
    }

    #[tokio::test]
    async fn hostile_queries_never_break_the_sql() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let kept = Kept {
            raw: b"raw".to_vec(),
            text: Some("a \"quoted\" body with NEAR and OR".into()),
        };
        store
            .insert_inbound(meta("x"), Some(kept), Vec::new())
            .await
            .unwrap();
        let long = "x".repeat(10_000);
        for query in [
            "\"\"",
            "\"a\" OR \"b\"",
            "NEAR(a b)",
            "a*",
            "*",
            "^a",
            "{subject}:x",
            "subject:{x}",
            "a:b:c",
            "from:\"\"",
            "-",
            "--x",
            "\u{0}",
            "\u{0}abc",
            "%_\\",
            "ü🦀ẞ",
            ")(",
            "OR",
            "AND NOT",
            "col:\"a\"\"b\"",
            "subject:\"x AND y\"",
            "quoted",
            "\"quoted\"",
            &long,
            "to:'; DROP TABLE inbound_messages; --",
            "-from:x -to:y -subject:z -is:read -has:attachment",
        ] {
            let filter = MessageFilter {
                search: match Search::parse(query) {
                    Ok(search) => search,
                    Err(_) => continue,
                },
                reader: Some("user:1".into()),
                limit: 10,
                ..MessageFilter::default()
            };
            let listed = store.list_inbound(filter.clone()).await;
            assert!(listed.is_ok(), "{query:?}: {listed:?}");
            let counted = store.count_inbound(filter).await;
            assert!(counted.is_ok(), "{query:?}: {counted:?}");
        }
        let found = MessageFilter {
            search: Search::parse("NEAR \"quoted\" body").unwrap(),
            limit: 10,
            ..MessageFilter::default()
        };
        assert_eq!(
            store.list_inbound(found).await.unwrap().len(),
            1,
            "words, not operators"
        );
    }

    #[test]
    fn previews_collapse_whitespace_and_stop_at_200_characters() {
        assert_eq!(preview("  Hello\n\n  there\t you "), "Hello there you");
        let long = "ü ".repeat(300);
        assert_eq!(preview(&long).chars().count(), PREVIEW_CHARS);
    }

    #[tokio::test]
    async fn attempts_are_kept_with_their_message() {
        let two = TwoMessages::new().await;
        let message = two.store.get_inbound(two.bad).await.unwrap().unwrap();
        assert_eq!(message.attempts, Some(vec![two.attempt.clone()]));
        assert_eq!(
            two.store
                .get_inbound(two.ok)
                .await
                .unwrap()
                .unwrap()
                .attempts,
            Some(vec![])
        );
    }
}
