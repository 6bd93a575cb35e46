//! What happens to mail Postern receives: route each recipient, then parse the message,
//! build the address's payload, POST it, record the outcome, and turn the target's answer
//! into the SMTP reply (design.md invariant 1).

pub mod deliver;
pub mod format;
pub mod message;
pub mod reply;
pub mod route;

use std::time::Instant;

use md5::{Digest, Md5};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{error, info, warn};

use crate::smtp::Reply;
use crate::smtp::server::{ConnectionInfo, MailHandler};
use crate::smtp::session::Envelope;
use crate::store::{InboundMeta, Outcome, Store};
use deliver::Deliverer;
use format::{PayloadEnvelope, Spf};
use message::ParsedMessage;
use route::{Destination, Router};

/// Longest target text echoed in a 554 reply (design.md invariant 1).
const MAX_REPLY_TEXT: usize = 512;

/// The inbound [`MailHandler`].
pub struct Inbound {
    router: Router,
    deliverer: Deliverer,
    store: Store,
    hostname: String,
    /// Keep the raw message in the store (dev mode).
    keep_raw: bool,
}

impl Inbound {
    pub fn new(
        router: Router,
        deliverer: Deliverer,
        store: Store,
        hostname: String,
        keep_raw: bool,
    ) -> Inbound {
        Inbound {
            router,
            deliverer,
            store,
            hostname,
            keep_raw,
        }
    }
}

impl MailHandler for Inbound {
    async fn check_recipient(
        &self,
        _conn: &ConnectionInfo,
        accepted: &[String],
        address: &str,
    ) -> Result<(), Reply> {
        let Some(route) = self.router.lookup(address) else {
            return Err(Reply::NO_SUCH_USER);
        };
        // One POST per transaction: a recipient of another address waits for its own.
        if let Some(first) = accepted.first()
            && self.router.lookup(first) != Some(route)
        {
            return Err(Reply::SEPARATE_TRANSACTION);
        }
        Ok(())
    }

    async fn handle_message(
        &self,
        conn: &ConnectionInfo,
        envelope: Envelope,
        body: Vec<u8>,
    ) -> Reply {
        let started = Instant::now();
        let received_at = OffsetDateTime::now_utc();
        let Some(route) = envelope
            .recipients
            .first()
            .and_then(|r| self.router.lookup(r))
            .map(|id| self.router.route(id).clone())
        else {
            // check_recipient accepted every recipient, so this is a bug, not bad input.
            error!(recipients = ?envelope.recipients, "no route for an accepted recipient");
            return Reply::new(451, "4.3.0", "Local error in processing, try again later");
        };

        let md5 = format!("{:x}", Md5::digest(&body));
        let raw = with_received_header(&body, &envelope, conn, &self.hostname, received_at);
        let payload_envelope = PayloadEnvelope {
            to: envelope.recipients[0].clone(),
            recipients: envelope.recipients.clone(),
            from: envelope.mail_from.clone(),
            helo_domain: envelope.helo.clone(),
            remote_ip: conn.remote.ip().to_string(),
            tls_version: conn.tls_version.map(str::to_string),
            md5: md5.clone(),
            spf: Spf {
                result: "none".into(),
                domain: spf_domain(&envelope),
            },
            dkim: None,
            dmarc: None,
        };

        let destination = route.destination.clone();
        let parsed_and_payload = tokio::task::spawn_blocking(move || {
            let parsed = ParsedMessage::parse(&raw);
            let payload = match &destination {
                Destination::Target { format, .. } => {
                    Some(format::build(*format, &payload_envelope, &parsed))
                }
                Destination::Capture => None,
            };
            (raw, parsed, payload)
        })
        .await;
        let Ok((raw, parsed, payload)) = parsed_and_payload else {
            error!("building the payload panicked");
            return Reply::new(451, "4.3.0", "Local error in processing, try again later");
        };

        let (outcome, reply, target, format, http_status, response_body, failure) =
            match (&route.destination, payload) {
                (Destination::Target { url, format }, Some(payload)) => {
                    let result = self.deliverer.deliver(url, payload).await;
                    let reply = reply_for(&result);
                    let outcome = match &result {
                        deliver::Outcome::Accepted { .. } => Outcome::Successful,
                        deliver::Outcome::Rejected { .. } => Outcome::Rejected,
                        deliver::Outcome::Deferred { .. } => Outcome::Delayed,
                    };
                    let failure = match &result {
                        deliver::Outcome::Deferred { reason, .. } => Some(reason.clone()),
                        _ => None,
                    };
                    (
                        outcome,
                        reply,
                        Some(url.to_string()),
                        Some(format.as_str().to_string()),
                        result.status(),
                        Some(result.body().to_string()),
                        failure,
                    )
                }
                _ => (
                    Outcome::Captured,
                    Reply::new(250, "2.0.0", "Message captured"),
                    None,
                    None,
                    None,
                    None,
                    None,
                ),
            };

        let meta = InboundMeta {
            received_at: received_at
                .format(&Rfc3339)
                .expect("UTC timestamps format as RFC 3339"),
            remote_ip: conn.remote.ip().to_string(),
            helo: envelope.helo,
            mail_from: envelope.mail_from,
            recipients: envelope.recipients,
            address: Some(route.address),
            message_id: parsed.header("message-id").map(str::to_string),
            subject: parsed.header("subject").map(str::to_string),
            size: body.len() as u64,
            md5,
            tls_version: conn.tls_version.map(str::to_string),
            target,
            format,
            http_status,
            outcome,
            response_body,
            error: failure,
            smtp_reply: reply.to_string(),
            processing_ms: started.elapsed().as_millis() as u64,
        };
        let summary = (meta.outcome, meta.http_status, meta.processing_ms);
        let keep = (self.keep_raw || outcome == Outcome::Captured).then_some(raw);
        match self.store.insert_inbound(meta, keep).await {
            Ok(id) => {
                info!(id, outcome = ?summary.0, http_status = ?summary.1, ms = summary.2, reply = %reply, "message handled");
                reply
            }
            // A captured message exists only in the store: without the row it is not kept.
            Err(e) if outcome == Outcome::Captured => {
                error!(error = %e, "cannot store a captured message");
                Reply::new(451, "4.3.0", "Local storage error, try again later")
            }
            // The app has the message; losing its metadata row must not make the sender
            // deliver it twice.
            Err(e) => {
                error!(error = %e, "cannot record message metadata; replying as the target decided");
                reply
            }
        }
    }
}

/// The SMTP reply for a target's answer (spec §2.1, design.md invariant 1).
pub fn reply_for(outcome: &deliver::Outcome) -> Reply {
    match outcome {
        deliver::Outcome::Accepted { status, .. } => Reply::owned(
            250,
            "2.0.0",
            format!("Message accepted by the target (HTTP {status})"),
        ),
        deliver::Outcome::Rejected {
            status, reply_text, ..
        } => {
            let text = reply_text
                .as_deref()
                .map(sanitize_reply_text)
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("Message rejected by the target (HTTP {status})"));
            Reply::owned(554, "5.0.0", text)
        }
        deliver::Outcome::Deferred { reason, .. } => {
            warn!(
                reason,
                "target did not accept the message; sender will retry"
            );
            Reply::owned(
                450,
                "4.3.0",
                format!(
                    "Target temporarily unavailable ({}), try again later",
                    sanitize_reply_text(reason)
                ),
            )
        }
    }
}

/// One line of printable text, at most [`MAX_REPLY_TEXT`] characters.
fn sanitize_reply_text(text: &str) -> String {
    let mut line = String::with_capacity(text.len().min(MAX_REPLY_TEXT));
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if line.chars().count() >= MAX_REPLY_TEXT {
            break;
        }
        line.push(c);
    }
    line.trim_end().to_string()
}

/// `envelope.spf.domain`: the MAIL FROM domain, or the HELO name for the null sender.
fn spf_domain(envelope: &Envelope) -> String {
    envelope
        .mail_from
        .rsplit_once('@')
        .map(|(_, domain)| domain.to_ascii_lowercase())
        .unwrap_or_else(|| envelope.helo.to_ascii_lowercase())
}

/// Prepends the `Received:` trace field (RFC 5321 §4.4) that every SMTP server adds.
fn with_received_header(
    body: &[u8],
    envelope: &Envelope,
    conn: &ConnectionInfo,
    hostname: &str,
    at: OffsetDateTime,
) -> Vec<u8> {
    let protocol = match conn.tls_version {
        Some(_) => "ESMTPS",
        None => "ESMTP",
    };
    let date = at
        .format(&time::format_description::well_known::Rfc2822)
        .expect("UTC timestamps format as RFC 2822");
    let helo: String = envelope
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let header = format!(
        "Received: from {helo} ([{ip}])\r\n\tby {hostname} (Postern) with {protocol};\r\n\t{date}\r\n",
        ip = conn.remote.ip(),
    );
    let mut raw = Vec::with_capacity(header.len() + body.len());
    raw.extend_from_slice(header.as_bytes());
    raw.extend_from_slice(body);
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_mapping() {
        let accepted = deliver::Outcome::Accepted {
            status: 201,
            body: String::new(),
        };
        assert_eq!(reply_for(&accepted).code, 250);
        let rejected = deliver::Outcome::Rejected {
            status: 422,
            body: "no\r\nsuch user".into(),
            reply_text: Some("no\r\nsuch\tuser".into()),
        };
        let reply = reply_for(&rejected);
        assert_eq!((reply.code, reply.text.as_ref()), (554, "no such user"));
        let html = deliver::Outcome::Rejected {
            status: 404,
            body: "<h1>x</h1>".into(),
            reply_text: None,
        };
        assert_eq!(
            reply_for(&html).text,
            "Message rejected by the target (HTTP 404)"
        );
        let deferred = deliver::Outcome::Deferred {
            status: Some(503),
            body: String::new(),
            reason: "target answered HTTP 503".into(),
        };
        assert_eq!(reply_for(&deferred).code, 450);
    }

    #[test]
    fn reply_text_is_bounded() {
        let long = "x".repeat(5000);
        assert_eq!(sanitize_reply_text(&long).len(), MAX_REPLY_TEXT);
        assert_eq!(sanitize_reply_text("a\u{0}\u{7}b"), "a b");
    }
}
