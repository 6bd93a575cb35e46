//! SMTP submission (contract §6.5, §6.6): the [`MailHandler`] of the `[submission]` listeners.
//!
//! The SMTP side (STARTTLS before AUTH, MAIL only after AUTH) is `smtp::session`'s; this
//! handler decides with the same [`Outbound`] service as the send API:
//!
//! | step | check | refusal |
//! |---|---|---|
//! | AUTH | the credential's username and token (in dev mode anything) | 535 5.7.8, or 454 4.7.0 when the store cannot answer |
//! | MAIL FROM | the credential's sender patterns (`may_send_as`) | 550 5.7.1 |
//! | RCPT TO | a deliverable address; at most 20 per transaction (the session's limit) | 553 5.1.3, 452 4.5.3 |
//! | DATA | `raw_message::check` (one `From` mailbox and any `Sender` allowed for the credential, header syntax, `Bcc` removed); a sending domain; `x-cloudmta-class`; ≤ 10 MB | 550 5.7.1, 554 5.6.0, 552 5.3.4 |
//! | queue | the message and its recipients committed | 451 4.3.0 (nothing was accepted) |
//!
//! Both the envelope sender and the `From` header must be allowed for the credential; they
//! need not be equal. The `From` header is what the sending-domain check (and DKIM) uses;
//! the envelope sender is replaced by the return path `bounces+<uuid>@…` in the queue, as
//! CloudMailin does (contract §6.10). Recipients are the RCPT TO addresses only: `To` and `Cc`
//! are left as written, and a `Bcc` header is removed so that it reaches nobody.
//!
//! `x-cloudmta-class` (`standard`, `priority`, `digest`; anything else is refused with 554
//! rather than queued in a class the sender did not ask for) and `x-cloudmta-tags` (a
//! comma-separated list) are read, and `x-cloudmta-require-tls: true` (the message leaves
//! only over STARTTLS with a verified certificate; `false` or nothing: as usual; anything else
//! is refused with 554), then every `x-cloudmta-*` header is removed before the message is
//! queued (`x-cloudmta-layout` included: layouts are not applied).
//! A message without `Message-ID` or `Date` gets one (RFC 6409 §8.2, §8.3).

use tracing::{error, info, warn};

use super::compose::{self, Composed, MAX_MESSAGE_SIZE, split_tags};
use super::raw_message::{self, CheckedRaw, RawError};
use super::{Credential, Outbound, SubmitError};
use crate::mail::address::{domain_of, normalise_address, valid_address};
use crate::mail::fields::without_fields;
use crate::mail::message::ParsedMessage;
use crate::smtp::Reply;
use crate::smtp::server::{ConnectionInfo, MailHandler};
use crate::smtp::session::{Credentials, Envelope, SizeLimit, TransactionInfo};
use crate::smtp::spool::Content;
use crate::store::{Priority, Source};

/// The submission [`MailHandler`]: every decision is [`Outbound`]'s.
pub struct Submission {
    outbound: Outbound,
}

impl Submission {
    pub fn new(outbound: Outbound) -> Submission {
        Submission { outbound }
    }
}

/// Why submitted content cannot be queued: each is a 554 5.6.0 (552 for the size, 550 5.7.1
/// for a sender the credential may not use) with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Raw(#[from] RawError),
    #[error("x-cloudmta-class must be standard, priority or digest (got {0:?})")]
    BadClass(String),
    #[error("x-cloudmta-require-tls must be true or false (got {0:?})")]
    BadRequireTls(String),
    #[error("the message is larger than {} MB", MAX_MESSAGE_SIZE / 1024 / 1024)]
    TooLarge,
}

impl MessageError {
    fn reply(&self) -> Reply {
        match self {
            MessageError::TooLarge => Reply::owned(552, "5.3.4", self.to_string()),
            MessageError::Raw(RawError::Forbidden { .. }) => {
                Reply::owned(550, "5.7.1", self.to_string())
            }
            _ => Reply::owned(554, "5.6.0", self.to_string()),
        }
    }
}

/// The DATA reply for a queued message (contract §6.5: `250 Thanks! Queued as: <uuid>`, with
/// the enhanced status code between, as on every reply of ours).
pub fn queued_reply(uuid: &str) -> Reply {
    Reply::owned(250, "2.0.0", format!("Thanks! Queued as: {uuid}"))
}

/// The DATA reply for a message [`Outbound::enqueue`] refused.
fn refusal(error: &SubmitError) -> Reply {
    let text = error.to_string();
    match error {
        SubmitError::Forbidden(_) | SubmitError::UnknownDomain(_) => {
            Reply::owned(550, "5.7.1", text)
        }
        SubmitError::Invalid(compose::ComposeError::TooLarge) => Reply::owned(552, "5.3.4", text),
        SubmitError::Invalid(_) => Reply::owned(554, "5.6.0", text),
        // The session was authenticated; the credential was revoked in between.
        SubmitError::Unauthorized => Reply::owned(554, "5.7.0", text),
        SubmitError::Store(_) => Reply::owned(451, "4.3.0", text),
    }
}

impl MailHandler for Submission {
    type Identity = Credential;

    async fn authenticate(
        &self,
        _conn: &ConnectionInfo,
        credentials: &Credentials,
    ) -> Result<Credential, Reply> {
        match self
            .outbound
            .authenticate(&credentials.authcid, &credentials.password)
            .await
        {
            Ok(credential) => Ok(credential),
            Err(error) if error.is_temporary() => {
                warn!(%error, "cannot check SMTP credentials");
                Err(Reply::AUTH_TEMPORARY_FAILURE)
            }
            Err(_) => Err(Reply::AUTH_FAILED),
        }
    }

    async fn check_sender(
        &self,
        _conn: &ConnectionInfo,
        identity: &Credential,
        address: &str,
    ) -> Result<(), Reply> {
        if identity.may_send_as(address) {
            return Ok(());
        }
        let sender = match address {
            "" => "the null sender <>".to_string(),
            address => address.to_string(),
        };
        Err(Reply::owned(
            550,
            "5.7.1",
            format!("credential {} may not send as {sender}", identity.username),
        ))
    }

    async fn check_recipient(
        &self,
        _conn: &ConnectionInfo,
        _transaction: TransactionInfo<'_>,
        address: &str,
    ) -> Result<Option<SizeLimit>, Reply> {
        // The count is the session's: `App` caps its `max_recipients` at 20 (contract §6.1).
        match valid_address(address) {
            true => Ok(None),
            false => Err(Reply::new(
                553,
                "5.1.3",
                "Recipient address is not valid for delivery",
            )),
        }
    }

    async fn handle_message(
        &self,
        conn: &ConnectionInfo,
        identity: Option<&Credential>,
        envelope: Envelope,
        content: Content,
    ) -> Reply {
        let Some(credential) = identity else {
            // The session takes MAIL only after AUTH; this is never reached.
            return Reply::AUTH_REQUIRED;
        };
        let body = match content.into_bytes().await {
            Ok(body) => body,
            Err(error) => {
                error!(%error, "cannot read a spooled message back");
                return Reply::SPOOL_ERROR;
            }
        };
        let uuid = uuid::Uuid::new_v4().to_string();
        let composed = match prepare(
            &body,
            credential,
            &envelope.recipients,
            &uuid,
            self.outbound.now(),
        ) {
            Ok(composed) => composed,
            Err(error) => return error.reply(),
        };
        drop(body);
        let recipients = composed.recipients.len();
        match self
            .outbound
            .enqueue(
                credential,
                uuid.clone(),
                composed,
                Source::Smtp,
                Some(conn.remote.ip().to_string()),
            )
            .await
        {
            Ok(accepted) => {
                info!(id = %accepted.id, username = %credential.username, recipients, "outbound message queued (SMTP)");
                queued_reply(&uuid)
            }
            Err(error) => {
                match error.is_temporary() {
                    true => warn!(%error, "cannot queue a submitted message"),
                    false => {
                        info!(%error, username = %credential.username, "submitted message refused")
                    }
                }
                refusal(&error)
            }
        }
    }
}

/// Submitted bytes → the message to queue: [`raw_message::check`] (the rules the send API's
/// `raw` obeys too: one allowed `From`, `Sender`, header syntax, `Bcc` removed), then the
/// control headers read and removed and a missing `Message-ID` and `Date` added.
/// `recipients` are the RCPT TO addresses; `date` is Unix seconds.
pub fn prepare(
    raw: &[u8],
    credential: &Credential,
    recipients: &[String],
    uuid: &str,
    date: i64,
) -> Result<Composed, MessageError> {
    if raw.len() > MAX_MESSAGE_SIZE {
        return Err(MessageError::TooLarge);
    }
    let checked = raw_message::check(raw, credential)?;
    let control = control_headers(&checked)?;
    let subject = decoded_subject(&raw[..checked.header_end]);
    let out = rewritten(&checked, &raw[checked.header_end..], uuid, date);
    if out.len() > MAX_MESSAGE_SIZE {
        return Err(MessageError::TooLarge);
    }
    let envelope = envelope(recipients);
    Ok(Composed {
        from: checked.from,
        to: envelope.clone(),
        cc: Vec::new(),
        recipients: envelope,
        subject,
        tags: control.tags,
        priority: control.priority,
        test_mode: false,
        // SMTP has no per-message switch: the credential's tracking settings apply.
        track_opens: None,
        track_clicks: None,
        require_tls: control.require_tls,
        raw: out,
    })
}

/// What the `x-cloudmta-*` headers ask for.
struct Control {
    priority: Priority,
    tags: Vec<String>,
    require_tls: bool,
}

/// `x-cloudmta-class` and `x-cloudmta-require-tls` (the first of each) and every
/// `x-cloudmta-tags`.
fn control_headers(checked: &CheckedRaw) -> Result<Control, MessageError> {
    let priority = match checked.values("x-cloudmta-class").first() {
        None => Priority::Standard,
        Some(class) => match class.trim().to_ascii_lowercase().as_str() {
            "" => Priority::Standard,
            name => {
                Priority::from_name(name).ok_or_else(|| MessageError::BadClass(name.to_string()))?
            }
        },
    };
    let tags = split_tags(
        checked
            .values("x-cloudmta-tags")
            .into_iter()
            .map(str::to_string),
    );
    let require_tls = match checked.values("x-cloudmta-require-tls").first() {
        None => false,
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" | "" => false,
            other => return Err(MessageError::BadRequireTls(other.to_string())),
        },
    };
    Ok(Control {
        priority,
        tags,
        require_tls,
    })
}

/// The decoded subject (RFC 2047), from the header alone.
fn decoded_subject(header: &[u8]) -> Option<String> {
    let mut header_only = header.to_vec();
    header_only.extend_from_slice(b"\r\n");
    ParsedMessage::parse(&header_only)
        .header("Subject")
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// The checked header (no `Bcc`) without `x-cloudmta-*`, with `Message-ID` and `Date` added
/// when missing, then `rest` (the blank line and body) untouched.
fn rewritten(checked: &CheckedRaw, rest: &[u8], uuid: &str, date: i64) -> Vec<u8> {
    let mut out = without_fields(&checked.header, |name| name.starts_with("x-cloudmta-"));
    if checked.values("message-id").is_empty() {
        let domain = domain_of(&checked.from.address);
        out.extend_from_slice(format!("Message-ID: <{uuid}@{domain}>\r\n").as_bytes());
    }
    if checked.values("date").is_empty() {
        let date = mail_builder::headers::date::Date::new(date).to_rfc822();
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    out.extend_from_slice(rest);
    out
}

/// The RCPT TO addresses, normalised, duplicates removed.
fn envelope(recipients: &[String]) -> Vec<String> {
    let mut envelope: Vec<String> = Vec::with_capacity(recipients.len());
    for address in recipients {
        let address = normalise_address(address);
        if !envelope.contains(&address) {
            envelope.push(address);
        }
    }
    envelope
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "724b9ef2-94ee-4fb0-b722-082204633911";

    fn prepared(raw: &str) -> Result<Composed, MessageError> {
        prepare(
            raw.as_bytes(),
            &raw_message::credential_for_tests(&[]),
            &[
                "b@Example.NET".into(),
                "b@example.net".into(),
                "c@example.org".into(),
            ],
            UUID,
            0,
        )
    }

    fn text(composed: &Composed) -> String {
        String::from_utf8(composed.raw.clone()).unwrap()
    }

    #[test]
    fn control_headers_are_read_and_removed_with_their_folds() {
        let raw = "From: App <app@example.com>\r\n\
                   X-CloudMTA-Class: Priority\r\n\
                   Subject: =?utf-8?q?caf=C3=A9?=\r\n\
                   x-cloudmta-tags: password-reset,\r\n\taccount\r\n\
                   X-CLOUDMTA-LAYOUT: plain\r\n\
                   Bcc: hidden@example.org\r\n\
                   Message-ID: <own@example.com>\r\n\
                   Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n\
                   \r\n\
                   x-cloudmta-class: digest\r\nbody\r\n";
        let composed = prepared(raw).unwrap();
        assert!(!composed.require_tls);
        assert_eq!(composed.priority, Priority::Priority);
        assert_eq!(composed.tags, ["password-reset", "account"]);
        assert_eq!(composed.subject.as_deref(), Some("café"));
        assert_eq!(composed.from.address, "app@example.com");
        assert_eq!(composed.recipients, ["b@example.net", "c@example.org"]);
        assert_eq!(composed.to, composed.recipients);
        assert!(composed.cc.is_empty());
        assert_eq!(
            text(&composed),
            "From: App <app@example.com>\r\n\
             Subject: =?utf-8?q?caf=C3=A9?=\r\n\
             Message-ID: <own@example.com>\r\n\
             Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n\
             \r\n\
             x-cloudmta-class: digest\r\nbody\r\n",
            "the body is never touched"
        );
    }

    #[test]
    fn require_tls_is_read_and_removed() {
        let raw = |value: &str| {
            format!("From: app@example.com\r\nX-CloudMTA-Require-TLS: {value}\r\n\r\nbody\r\n")
        };
        let composed = prepared(&raw(" TRUE ")).unwrap();
        assert!(composed.require_tls);
        assert!(!text(&composed).to_ascii_lowercase().contains("require-tls"));
        assert!(!prepared(&raw("false")).unwrap().require_tls);
        assert_eq!(
            prepared(&raw("yes")).unwrap_err().to_string(),
            "x-cloudmta-require-tls must be true or false (got \"yes\")"
        );
    }

    #[test]
    fn missing_message_id_and_date_are_added() {
        let composed = prepared("From: app@Example.COM\r\nSubject: x\r\n\r\nbody\r\n").unwrap();
        let written = text(&composed);
        assert_eq!(composed.priority, Priority::Standard);
        assert!(composed.tags.is_empty());
        assert!(
            written.starts_with(&format!(
                "From: app@Example.COM\r\nSubject: x\r\nMessage-ID: <{UUID}@example.com>\r\nDate: Thu, 1 Jan 1970 00:00:00 +0000\r\n\r\nbody\r\n"
            )),
            "{written}"
        );
        // All header, no body.
        let composed = prepared("From: app@example.com\r\nSubject: x\r\n").unwrap();
        assert!(text(&composed).contains("Message-ID: <"));
    }

    #[test]
    fn bad_content_is_refused_with_a_sentence() {
        assert_eq!(
            prepared("Subject: x\r\n\r\nbody\r\n"),
            Err(MessageError::Raw(RawError::NoFrom))
        );
        for from in [
            "From: a@example.com, b@example.com\r\n",
            "From: nobody\r\n",
            "From: a@example.com\r\nFrom: b@example.com\r\n",
        ] {
            assert_eq!(
                prepared(&format!("{from}\r\nbody\r\n")),
                Err(MessageError::Raw(RawError::BadFrom)),
                "{from}"
            );
        }
        assert_eq!(
            prepared("From: a@example.com\r\nX-CloudMTA-Class: bulk\r\n\r\nx\r\n"),
            Err(MessageError::BadClass("bulk".into()))
        );
        let error = MessageError::BadClass("bulk".into()).reply();
        assert_eq!(
            (error.code, error.enhanced, error.text.as_ref()),
            (
                554,
                "5.6.0",
                "x-cloudmta-class must be standard, priority or digest (got \"bulk\")"
            )
        );
        let mut big = b"From: a@example.com\r\n\r\n".to_vec();
        big.resize(MAX_MESSAGE_SIZE + 1, b'x');
        assert_eq!(
            prepare(&big, &raw_message::credential_for_tests(&[]), &[], UUID, 0),
            Err(MessageError::TooLarge)
        );
        assert_eq!(MessageError::TooLarge.reply().code, 552);
    }

    #[test]
    fn the_queued_reply_is_cloudmailins_text() {
        let mut wire = Vec::new();
        queued_reply(UUID).write_to(&mut wire);
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            format!("250 2.0.0 Thanks! Queued as: {UUID}\r\n")
        );
    }
}
