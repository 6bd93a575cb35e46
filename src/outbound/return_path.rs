//! Mail to the return path on the MX listener: [`WithReturnPath`] wraps the inbound
//! [`MailHandler`] and takes the recipients `bounces+<uuid>@…` of outbound messages
//! (contract §6.10, §6.11) before the wrapped handler routes anything.
//!
//! A return path is alone in its transaction: it is accepted only as the first recipient,
//! and nothing is accepted after it (452 4.5.3, the sender sends it again separately), so
//! one message is either return mail or routed mail, never both. Return mail is read by
//! [`Outbound::record_return_mail`] and also recorded as a received message with outcome
//! `bounce`, so the dashboard lists it beside the routed mail. Every other recipient and
//! message goes to the wrapped handler unchanged.
//!
//! The wrapper lives here, not in `inbound`, so that the MX side needs nothing from the
//! outbound side: `app` composes the two.

use std::sync::Arc;
use std::time::Instant;

use md5::{Digest, Md5};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{error, info};

use super::Outbound;
use super::bounce::{Finding, FindingKind, is_return_path_form};
use crate::config::Redaction;
use crate::mail::fields::{Trace, with_received};
use crate::mail::message::ParsedMessage;
use crate::smtp::Reply;
use crate::smtp::server::{ConnectionInfo, MailHandler};
use crate::smtp::session::{Credentials, Envelope, SizeLimit, TransactionInfo};
use crate::smtp::spool::Content;
use crate::store::{InboundMeta, Kept, MessageRef, Outcome};

/// What return mail's message row needs from the config.
#[derive(Debug, Clone)]
pub struct ReturnMailSettings {
    /// For the `Received:` line.
    pub hostname: String,
    /// Keep the raw message in the store (dev mode), as for routed mail.
    pub keep_raw: bool,
    /// `privacy.redact`: fields of the message row never stored (the raw is then not kept).
    pub redact: Redaction,
}

/// A [`MailHandler`] that takes mail to outbound messages' return paths and passes
/// everything else to `H`.
pub struct WithReturnPath<H> {
    outbound: Outbound,
    inner: Arc<H>,
    settings: ReturnMailSettings,
}

impl<H: MailHandler> WithReturnPath<H> {
    pub fn new(outbound: Outbound, inner: Arc<H>, settings: ReturnMailSettings) -> Self {
        WithReturnPath {
            outbound,
            inner,
            settings,
        }
    }

    /// The outbound message `address` is the return path of, if it is one.
    async fn return_path(&self, address: &str) -> Result<Option<MessageRef>, Reply> {
        if !is_return_path_form(address) {
            return Ok(None);
        }
        self.outbound.return_path(address).await.map_err(|e| {
            error!(error = %e, "cannot look up a return path");
            Reply::new(451, "4.3.0", "Local error in processing, try again later")
        })
    }

    /// Mail to a return path: read it (`outbound::bounce`), record it as a message with
    /// outcome `bounce`, answer 250 once both are written.
    async fn handle_return_mail(
        &self,
        conn: &ConnectionInfo,
        envelope: Envelope,
        body: Vec<u8>,
        message: MessageRef,
    ) -> Reply {
        let started = Instant::now();
        let received_at = OffsetDateTime::now_utc();
        let trace = Trace {
            helo: &envelope.helo,
            remote_ip: conn.remote.ip(),
            by: &self.settings.hostname,
            tls: conn.tls_version.is_some(),
            at: received_at,
        };
        let raw = with_received(&body, &trace);
        let uuid = message.uuid.clone();
        let findings = match self
            .outbound
            .record_return_mail(message, &envelope.mail_from, raw.clone())
            .await
        {
            Ok(findings) => findings,
            Err(e) => {
                error!(error = %e, uuid, "cannot record mail to a return path");
                return Reply::new(451, "4.3.0", "Local storage error, try again later");
            }
        };
        for finding in &findings {
            if matches!(finding.kind, FindingKind::Hard | FindingKind::Soft) {
                self.outbound.metrics().bounce(finding.kind.event());
            }
        }
        let reply = Reply::owned(
            250,
            "2.0.0",
            format!("Return mail for {uuid} recorded ({})", findings.len()),
        );
        let summary = summary(&findings);
        let received = Received {
            conn,
            envelope: &envelope,
            body: &body,
            at: received_at,
        };
        let redact = &self.settings.redact;
        let parsed = ParsedMessage::parse(&raw);
        let meta = received
            .meta(&parsed, summary.clone(), &reply, started)
            .redact(redact);
        let keep = (self.settings.keep_raw && redact.is_empty())
            .then(|| Kept::new(raw, parsed.into_text()));
        match self
            .outbound
            .store
            .insert_inbound(meta, keep, Vec::new())
            .await
        {
            Ok(id) => info!(id, uuid, findings = %summary, "return mail recorded"),
            // The findings are recorded; only the listing row is missing.
            Err(e) => error!(error = %e, uuid, "cannot record the return mail's message row"),
        }
        reply
    }
}

/// `bounce a@example.com, bounce_reply b@example.com`: the row's response body.
fn summary(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("{} {}", f.kind.event(), f.recipient))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One piece of return mail as it arrived, for its message row.
struct Received<'a> {
    conn: &'a ConnectionInfo,
    envelope: &'a Envelope,
    /// As the client sent it.
    body: &'a [u8],
    at: OffsetDateTime,
}

impl Received<'_> {
    /// The message row: no address, target or format (no route took it), outcome
    /// `bounce`, the findings as the response body.
    fn meta(
        &self,
        parsed: &ParsedMessage,
        summary: String,
        reply: &Reply,
        started: Instant,
    ) -> InboundMeta {
        InboundMeta {
            received_at: self
                .at
                .format(&Rfc3339)
                .expect("UTC timestamps format as RFC 3339"),
            remote_ip: self.conn.remote.ip().to_string(),
            helo: self.envelope.helo.clone(),
            mail_from: self.envelope.mail_from.clone(),
            recipients: self.envelope.recipients.clone(),
            address: None,
            message_id: parsed.header("message-id").map(str::to_string),
            subject: parsed.header("subject").map(str::to_string),
            size: self.body.len() as u64,
            md5: format!("{:x}", Md5::digest(self.body)),
            tls_version: self.conn.tls_version.map(str::to_string),
            target: None,
            format: None,
            http_status: None,
            outcome: Outcome::Bounce,
            response_body: Some(summary),
            error: None,
            smtp_reply: reply.to_string(),
            processing_ms: started.elapsed().as_millis() as u64,
            redacted: Vec::new(),
            authentication: None,
            header_from: parsed.header("from").map(str::to_string),
            header_to: parsed.header("to").map(str::to_string),
            header_cc: parsed.header("cc").map(str::to_string),
            attachments: parsed.attachments.len() as u32,
        }
    }
}

impl<H: MailHandler> MailHandler for WithReturnPath<H> {
    type Identity = H::Identity;

    async fn authenticate(
        &self,
        conn: &ConnectionInfo,
        credentials: &Credentials,
    ) -> Result<Self::Identity, Reply> {
        self.inner.authenticate(conn, credentials).await
    }

    async fn check_sender(
        &self,
        conn: &ConnectionInfo,
        identity: &Self::Identity,
        address: &str,
    ) -> Result<(), Reply> {
        self.inner.check_sender(conn, identity, address).await
    }

    async fn check_recipient(
        &self,
        conn: &ConnectionInfo,
        transaction: TransactionInfo<'_>,
        address: &str,
    ) -> Result<Option<SizeLimit>, Reply> {
        // A return path is alone in its transaction (one message, one handling).
        if self.return_path(address).await?.is_some() {
            return match transaction.recipients.is_empty() {
                true => Ok(None),
                false => Err(Reply::SEPARATE_TRANSACTION),
            };
        }
        if let Some(first) = transaction.recipients.first()
            && self.return_path(first).await?.is_some()
        {
            return Err(Reply::SEPARATE_TRANSACTION);
        }
        self.inner.check_recipient(conn, transaction, address).await
    }

    async fn recipient_refused(
        &self,
        conn: &ConnectionInfo,
        transaction: TransactionInfo<'_>,
        address: &str,
        reply: &Reply,
    ) {
        self.inner
            .recipient_refused(conn, transaction, address, reply)
            .await
    }

    async fn handle_message(
        &self,
        conn: &ConnectionInfo,
        identity: Option<&Self::Identity>,
        envelope: Envelope,
        content: Content,
    ) -> Reply {
        if let Some(first) = envelope.recipients.first() {
            match self.return_path(first).await {
                Ok(Some(message)) => {
                    let body = match content.into_bytes().await {
                        Ok(body) => body,
                        Err(error) => {
                            error!(%error, "cannot read a spooled message back");
                            return Reply::SPOOL_ERROR;
                        }
                    };
                    return self.handle_return_mail(conn, envelope, body, message).await;
                }
                Ok(None) => {}
                Err(reply) => return reply,
            }
        }
        self.inner
            .handle_message(conn, identity, envelope, content)
            .await
    }
}
