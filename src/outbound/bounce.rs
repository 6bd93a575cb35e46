//! Mail to the return path, `bounces+<uuid>@<return path domain>` (contract §6.10, §6.11):
//! what it says about the recipients of message `<uuid>`.
//!
//! [`classify`] is a pure function over the raw message and the message's recipients:
//!
//! - an ARF feedback report (RFC 5965, read by [`super::complaint`]): `Feedback-Type:
//!   abuse` → `complaint` for the recipient who complained; other types are logged only;
//! - a DSN (RFC 3464, `multipart/report; report-type=delivery-status`): one finding per
//!   recipient group of the `message/delivery-status` part — `Action: failed` with a
//!   `5.x.x` status is a hard bounce, with a `4.x.x` status (or `Action: delayed`) a soft
//!   one; `delivered`, `relayed`, `expanded` say nothing;
//! - an auto-reply (`Auto-Submitted: auto-replied`, `X-Autoreply`, `Precedence:
//!   auto_reply`, "Out of office"/"Automatic reply" subjects) → `auto_reply`;
//! - a plain-text bounce (from `MAILER-DAEMON`/`postmaster`, the null sender or a
//!   "Undeliverable"/"Delivery Status Notification"-style subject): the first `5.x.x`/
//!   `4.x.x` status or `5xx`/`4xx` code in the text, or a "user unknown"-style phrase (hard)
//!   or "mailbox full"-style phrase (soft); the recipients are those of the message named
//!   in the text (the only one when the message had one);
//! - anything else is a person answering → `bounce_reply`.
//!
//! Effects ([`Outbound::record_return_mail`]): every finding is an event (`bounce`,
//! `soft_bounce`, `auto_reply`, `bounce_reply`, `complaint`; details per contract §9.16:
//! `smtp_code`, `smtp_response`, `status`, `mx`, and for complaints `feedback_type`,
//! `user_agent`, `arrival_date`, `from`); a hard bounce also makes the recipient `bounced`
//! (from any state: a bounce often comes after the receiving server accepted) and puts the
//! address on the suppression list (reason `bounce <status>`); a complaint puts it there
//! (reason `complaint`) and leaves its state alone — only for the message's own recipients
//! (a report naming another address is an event only). A soft bounce changes no state: the delivery worker
//! owns retries. The return path is as secret as the message's UUID: whoever saw the mail's
//! `Return-Path` can send a bounce for its recipients.

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::Outbound;
use super::complaint::{self, FeedbackReport};
use crate::config::{Field, Redaction};
use crate::mail::address::parse_mailboxes;
use crate::mail::fields::unfolded_fields;
use crate::mail::message::{ParsedMessage, mime_leaves};
use crate::store::{BounceRecord, MessageRef, StoreError};

/// Whether `address` has the return path's form, `bounces+<something>@<domain>` (the
/// cheap test before the store is asked which message it belongs to).
pub fn is_return_path_form(address: &str) -> bool {
    address.split_once('@').is_some_and(|(local, domain)| {
        !domain.is_empty()
            && local.len() > 8
            && local
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("bounces+"))
    })
}

/// What a message to the return path says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub recipient: String,
    pub kind: FindingKind,
    /// Enhanced status (`5.1.1`), when given.
    pub status: Option<String>,
    /// The SMTP reply code (`550`), when given.
    pub smtp_code: Option<u16>,
    /// The remote server's words (`Diagnostic-Code` or the bounce text's line).
    pub smtp_response: Option<String>,
    /// The server that answered (`Remote-MTA`).
    pub mx: Option<String>,
    /// A complaint's feedback report.
    pub report: Option<FeedbackReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    Hard,
    Soft,
    AutoReply,
    Reply,
    Complaint,
}

impl FindingKind {
    /// The event kind (contract §6.8).
    pub fn event(self) -> &'static str {
        match self {
            FindingKind::Hard => "bounce",
            FindingKind::Soft => "soft_bounce",
            FindingKind::AutoReply => "auto_reply",
            FindingKind::Reply => "bounce_reply",
            FindingKind::Complaint => "complaint",
        }
    }
}

/// Phrases of a permanent failure in plain-text bounces (lower case).
const HARD_PHRASES: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such recipient",
    "no such mailbox",
    "mailbox unavailable",
    "mailbox not found",
    "mailbox does not exist",
    "does not exist",
    "recipient address rejected",
    "address rejected",
    "invalid recipient",
    "recipient not found",
    "account has been disabled",
    "unrouteable address",
    "permanent error",
    "permanently",
];

/// Phrases of a temporary failure in plain-text bounces (lower case).
const SOFT_PHRASES: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "insufficient system storage",
    "temporarily",
    "try again later",
    "delivery delayed",
    "will retry",
];

const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliverable",
    "undelivered mail",
    "delivery status notification",
    "mail delivery failed",
    "delivery failure",
    "failure notice",
    "returned mail",
    "delivery has failed",
    "could not be delivered",
    "mail system error",
];

const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto:",
    "abwesenheitsnotiz",
    "absence",
    "vacation",
];

/// What the message says (see the module comment). `recipients` are the message's own;
/// `mail_from` the envelope sender of the bounce (empty for the null sender).
pub fn classify(raw: &[u8], mail_from: &str, recipients: &[String]) -> Vec<Finding> {
    let leaves = mime_leaves(raw);
    let parsed = ParsedMessage::parse(raw);
    let content_type = parsed.header("content-type").unwrap_or("");
    if let Some(report) = complaint::read(&leaves, content_type, recipients) {
        return complaint_findings(report);
    }
    let reports: Vec<&[u8]> = leaves
        .iter()
        .filter(|leaf| {
            matches!(
                leaf.content_type.as_str(),
                "message/delivery-status" | "message/global-delivery-status"
            )
        })
        .map(|leaf| leaf.content.as_slice())
        .collect();
    if !reports.is_empty() {
        return reports
            .into_iter()
            .flat_map(|report| dsn_findings(report, recipients))
            .collect();
    }
    let header = |name: &str| parsed.header(name).unwrap_or("").to_ascii_lowercase();
    let subject = header("subject");
    let from = parsed
        .header("from")
        .map(parse_mailboxes)
        .and_then(|boxes| boxes.into_iter().next())
        .map(|b| b.address)
        .unwrap_or_default();
    let from_lower = from.to_ascii_lowercase();
    let text = parsed
        .plain
        .clone()
        .or_else(|| parsed.html.clone())
        .unwrap_or_default();

    let from_daemon = mail_from.is_empty()
        || ["mailer-daemon@", "postmaster@", "mail-daemon@"]
            .iter()
            .any(|p| from_lower.starts_with(p));
    let bounce_subject = BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s));
    let auto = header("auto-submitted");
    let auto_reply = (!auto.is_empty() && !auto.starts_with("no") && !from_daemon)
        || parsed.header("x-autoreply").is_some()
        || parsed.header("x-autorespond").is_some()
        || header("precedence") == "auto_reply"
        || AUTO_REPLY_SUBJECTS
            .iter()
            .any(|s| subject.starts_with(s) || subject.contains(&format!(" {s}")));
    // A daemon's message is read as a bounce even when it says it is automatic.
    let looks_like_bounce = from_daemon || (bounce_subject && !auto_reply);
    if looks_like_bounce && let Some(findings) = text_bounce(&text, recipients) {
        return findings;
    }
    let kind = if auto_reply {
        FindingKind::AutoReply
    } else {
        FindingKind::Reply
    };
    // A reply comes from the recipient; else the message's only recipient, else the sender.
    let recipient = recipients
        .iter()
        .find(|r| r.eq_ignore_ascii_case(&from))
        .or(match recipients {
            [only] => Some(only),
            _ => None,
        })
        .cloned()
        .unwrap_or(from);
    vec![Finding {
        recipient,
        kind,
        status: None,
        smtp_code: None,
        smtp_response: None,
        mx: None,
        report: None,
    }]
}

/// A complaint for its recipient; any other feedback report, or a complaint that names no
/// one, only logged.
fn complaint_findings(report: FeedbackReport) -> Vec<Finding> {
    let FeedbackReport {
        feedback_type,
        user_agent,
        ..
    } = &report;
    if !report.is_complaint() {
        info!(
            feedback_type,
            user_agent,
            "a feedback report that is not a complaint: logged only, nothing suppressed"
        );
        return Vec::new();
    }
    let Some(recipient) = report.recipient.clone() else {
        warn!(
            user_agent,
            "a complaint that names none of the message's several recipients: logged only, nothing suppressed"
        );
        return Vec::new();
    };
    vec![Finding {
        recipient,
        kind: FindingKind::Complaint,
        status: None,
        smtp_code: None,
        smtp_response: None,
        mx: None,
        report: Some(report),
    }]
}

/// The recipient groups of a `message/delivery-status` body (RFC 3464 §2.1: the
/// per-message fields, a blank line, then one field group per recipient).
fn dsn_findings(report: &[u8], recipients: &[String]) -> Vec<Finding> {
    let text = String::from_utf8_lossy(report).replace("\r\n", "\n");
    let mut findings = Vec::new();
    for group in text.split("\n\n").skip(1) {
        let fields = unfolded_fields(group);
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let Some(final_recipient) = field("final-recipient").map(typed_address) else {
            continue;
        };
        let action = field("action").unwrap_or("").to_ascii_lowercase();
        let status = field("status").map(|s| s.split_whitespace().next().unwrap_or("").to_string());
        let kind = match (
            action.as_str(),
            status.as_deref().and_then(|s| s.chars().next()),
        ) {
            ("failed", Some('4')) => FindingKind::Soft,
            ("failed", _) => FindingKind::Hard,
            ("delayed", _) => FindingKind::Soft,
            _ => continue,
        };
        let original = field("original-recipient").map(typed_address);
        let known = [Some(&final_recipient), original.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|a| recipients.iter().find(|r| r.eq_ignore_ascii_case(a)))
            .or(match recipients {
                [only] => Some(only),
                _ => None,
            })
            .cloned();
        let recipient = known.unwrap_or(final_recipient);
        let diagnostic = field("diagnostic-code").map(|d| {
            d.split_once(';')
                .map_or(d, |(_, text)| text)
                .trim()
                .to_string()
        });
        let smtp_code = diagnostic.as_deref().and_then(reply_code);
        findings.push(Finding {
            recipient,
            kind,
            status: status.filter(|s| !s.is_empty()),
            smtp_code,
            smtp_response: diagnostic,
            mx: field("remote-mta")
                .map(|m| m.split_once(';').map_or(m, |(_, h)| h).trim().to_string()),
            report: None,
        });
    }
    findings
}

/// The address of a report's address field: `rfc822; <user@example.net>` →
/// `user@example.net` (the type is optional in practice).
pub(super) fn typed_address(value: &str) -> String {
    value
        .split_once(';')
        .map_or(value, |(_, a)| a)
        .trim()
        .trim_matches(['<', '>'])
        .to_string()
}

/// A leading three-digit SMTP reply code (`550 5.1.1 …`).
fn reply_code(text: &str) -> Option<u16> {
    let code = text.trim_start().get(..3)?;
    let valid =
        code.bytes().all(|b| b.is_ascii_digit()) && matches!(code.as_bytes()[0], b'4' | b'5');
    valid.then(|| code.parse().ok()).flatten()
}

/// The first enhanced status code (`5.1.1`) in `text`.
fn enhanced_status(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|i| {
        if !matches!(bytes[i], b'4' | b'5')
            || (i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.'))
        {
            return None;
        }
        let rest = &text[i..];
        let mut parts = rest.splitn(3, '.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let ok = class.len() == 1
            && (1..=3).contains(&subject.len())
            && subject.bytes().all(|b| b.is_ascii_digit())
            && (1..=3).contains(&detail.len());
        ok.then(|| format!("{class}.{subject}.{detail}"))
    })
}

/// A plain-text bounce: `None` when the text shows no failure at all.
fn text_bounce(text: &str, recipients: &[String]) -> Option<Vec<Finding>> {
    let lower = text.to_ascii_lowercase();
    let status = enhanced_status(text);
    let (line, code) = text
        .lines()
        .find_map(|line| {
            let trimmed = line.trim_start();
            let at = trimmed
                .char_indices()
                .find(|(i, _)| {
                    reply_code(&trimmed[*i..]).is_some()
                        && (*i == 0 || !trimmed.as_bytes()[i - 1].is_ascii_alphanumeric())
                        && trimmed[*i + 3..].starts_with([' ', '-'])
                })
                .map(|(i, _)| i)?;
            Some((trimmed.trim().to_string(), reply_code(&trimmed[at..])?))
        })
        .map_or((None, None), |(line, code)| (Some(line), Some(code)));
    let hard_phrase = HARD_PHRASES.iter().any(|p| lower.contains(p));
    let soft_phrase = SOFT_PHRASES.iter().any(|p| lower.contains(p));
    let class = status
        .as_deref()
        .and_then(|s| s.chars().next())
        .or_else(|| code.map(|c| if c >= 500 { '5' } else { '4' }));
    let kind = match class {
        Some('5') => FindingKind::Hard,
        Some(_) => FindingKind::Soft,
        None if hard_phrase => FindingKind::Hard,
        None if soft_phrase => FindingKind::Soft,
        None => return None,
    };
    let named: Vec<&String> = recipients
        .iter()
        .filter(|r| lower.contains(&r.to_ascii_lowercase()))
        .collect();
    let named = match (named.is_empty(), recipients) {
        (false, _) => named,
        (true, [only]) => vec![only],
        (true, _) => return None,
    };
    Some(
        named
            .into_iter()
            .map(|recipient| Finding {
                recipient: recipient.clone(),
                kind,
                status: status.clone(),
                smtp_code: code,
                smtp_response: line.clone(),
                mx: None,
                report: None,
            })
            .collect(),
    )
}

/// What a finding becomes in the store.
fn record_of(
    finding: &Finding,
    from: &str,
    subject: Option<&str>,
    redact: &Redaction,
) -> BounceRecord {
    // The remote server's text is left out when the message redacts `server_response`.
    let response = finding
        .smtp_response
        .clone()
        .filter(|_| !redact.contains(Field::ServerResponse));
    let mut details = Map::new();
    if let Some(code) = finding.smtp_code {
        details.insert("smtp_code".into(), json!(code));
    }
    if let Some(response) = &response {
        details.insert("smtp_response".into(), json!(response));
    }
    if let Some(status) = &finding.status {
        details.insert("status".into(), json!(status));
    }
    if let Some(mx) = &finding.mx {
        details.insert("mx".into(), json!(mx));
    }
    if matches!(finding.kind, FindingKind::AutoReply | FindingKind::Reply) {
        details.insert("from".into(), json!(from));
        details.insert("subject".into(), json!(subject));
    }
    if let Some(report) = &finding.report {
        details.insert("feedback_type".into(), json!(report.feedback_type));
        details.insert("user_agent".into(), json!(report.user_agent));
        details.insert("arrival_date".into(), json!(report.arrival_date));
        details.insert("from".into(), json!(from));
    }
    BounceRecord {
        recipient: finding.recipient.clone(),
        kind: finding.kind.event().to_string(),
        details: Value::Object(details).to_string(),
        hard: finding.kind == FindingKind::Hard,
        code: finding.smtp_code.map(i64::from),
        response,
        suppression_reason: match (finding.kind, &finding.status) {
            (FindingKind::Hard, Some(status)) => Some(format!("bounce {status}")),
            (FindingKind::Hard, None) => Some("bounce".into()),
            (FindingKind::Complaint, _) => Some("complaint".into()),
            _ => None,
        },
    }
}

impl Outbound {
    /// The message whose return path is `address`; `None` for any other address (the
    /// inbound side then routes it as usual).
    pub async fn return_path(&self, address: &str) -> Result<Option<MessageRef>, StoreError> {
        self.store.message_by_return_path(address).await
    }

    /// Reads mail that came to `message`'s return path and records what it says (see the
    /// module comment). Returns the findings.
    pub async fn record_return_mail(
        &self,
        message: MessageRef,
        mail_from: &str,
        raw: Vec<u8>,
    ) -> Result<Vec<Finding>, StoreError> {
        let recipients = message.recipients.clone();
        let mail_from = mail_from.to_string();
        // What `classify` logs (feedback reports that change nothing) names the message.
        let span = tracing::info_span!("return_mail", uuid = %message.uuid);
        let (findings, from, subject) = tokio::task::spawn_blocking(move || {
            let findings = span.in_scope(|| classify(&raw, &mail_from, &recipients));
            let parsed = ParsedMessage::parse(&raw);
            let from = parsed.header("from").unwrap_or("").to_string();
            let subject = parsed.header("subject").map(str::to_string);
            (findings, from, subject)
        })
        .await?;
        // Only the message's own recipients change state or get suppressed: a report naming
        // anyone else (a forwarded address, or a forgery by someone who saw the return
        // path) is an event only.
        let records = findings
            .iter()
            .map(|f| {
                let mut record = record_of(f, &from, subject.as_deref(), &message.redact);
                let own = message
                    .recipients
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&f.recipient));
                if !own {
                    record.hard = false;
                    record.suppression_reason = None;
                }
                record
            })
            .collect();
        self.store
            .record_bounce(message, records, self.clock.unix())
            .await?;
        self.events_written();
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_server_response_is_left_out_of_the_bounce_record() {
        let finding = Finding {
            recipient: "user@example.net".into(),
            kind: FindingKind::Hard,
            status: Some("5.1.1".into()),
            smtp_code: Some(550),
            smtp_response: Some("no such user u-7d1".into()),
            mx: Some("mx.example.net".into()),
            report: None,
        };
        let kept = record_of(&finding, "", None, &Redaction::default());
        assert_eq!(kept.response.as_deref(), Some("no such user u-7d1"));
        assert!(kept.details.contains("u-7d1"), "{}", kept.details);
        let names = ["server_response".to_string()];
        let redact = Redaction::parse_outbound("privacy.redact_outbound", &names).unwrap();
        let record = record_of(&finding, "", None, &redact);
        assert_eq!(record.response, None);
        assert!(!record.details.contains("u-7d1"), "{}", record.details);
        assert_eq!(record.suppression_reason.as_deref(), Some("bounce 5.1.1"));
    }

    fn recipients() -> Vec<String> {
        vec!["user@example.net".into(), "other@example.org".into()]
    }

    fn dsn(action: &str, status: &str, diagnostic: &str) -> String {
        format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: bounces+u@mta.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n--R\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\nArrival-Date: Sat, 28 Nov 2026 04:00:00 +0000\r\n\r\nFinal-Recipient: rfc822; User@example.net\r\nOriginal-Recipient: rfc822;user@example.net\r\nAction: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx1.example.net\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n--R\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n--R--\r\n"
        )
    }

    #[test]
    fn a_dsn_hard_bounce() {
        let raw = dsn(
            "failed",
            "5.1.1",
            "550 5.1.1 <user@example.net>: Recipient address\r\n    rejected: User unknown",
        );
        let findings = classify(raw.as_bytes(), "", &recipients());
        assert_eq!(
            findings,
            [Finding {
                recipient: "user@example.net".into(),
                kind: FindingKind::Hard,
                status: Some("5.1.1".into()),
                smtp_code: Some(550),
                smtp_response: Some(
                    "550 5.1.1 <user@example.net>: Recipient address rejected: User unknown".into()
                ),
                mx: Some("mx1.example.net".into()),
                report: None,
            }]
        );
    }

    #[test]
    fn a_dsn_soft_bounce_and_delays() {
        let raw = dsn("failed", "4.2.2", "452 4.2.2 Mailbox full");
        let findings = classify(raw.as_bytes(), "", &recipients());
        assert_eq!(findings[0].kind, FindingKind::Soft);
        assert_eq!(findings[0].smtp_code, Some(452));
        let raw = dsn("delayed", "4.4.7", "421 try later");
        assert_eq!(
            classify(raw.as_bytes(), "", &recipients())[0].kind,
            FindingKind::Soft
        );
        let raw = dsn("delivered", "2.0.0", "250 ok");
        assert!(classify(raw.as_bytes(), "", &recipients()).is_empty());
    }

    #[test]
    fn a_plain_text_bounce() {
        let raw = "From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program.\r\nI'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n<other@example.org>:\r\n192.0.2.1 does not like recipient.\r\nRemote host said: 550 5.1.1 No such user here\r\nGiving up on 192.0.2.1.\r\n";
        let findings = classify(raw.as_bytes(), "", &recipients());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].recipient, "other@example.org");
        assert_eq!(findings[0].kind, FindingKind::Hard);
        assert_eq!(findings[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(findings[0].smtp_code, Some(550));
        assert_eq!(
            findings[0].smtp_response.as_deref(),
            Some("Remote host said: 550 5.1.1 No such user here")
        );
        let soft = "From: postmaster@example.org\r\nSubject: Undeliverable: hi\r\n\r\nother@example.org: mailbox full, will retry\r\n";
        let findings = classify(soft.as_bytes(), "postmaster@example.org", &recipients());
        assert_eq!(
            (findings[0].kind, findings[0].smtp_code),
            (FindingKind::Soft, None)
        );
    }

    #[test]
    fn replies_and_auto_replies() {
        let auto = "From: User <user@example.net>\r\nSubject: Out of office: hello\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n";
        let findings = classify(auto.as_bytes(), "user@example.net", &recipients());
        assert_eq!(findings[0].kind, FindingKind::AutoReply);
        assert_eq!(findings[0].recipient, "user@example.net");
        let human = "From: Other <other@example.org>\r\nSubject: Re: hello\r\n\r\nThanks, 550 of them please.\r\n";
        let findings = classify(human.as_bytes(), "other@example.org", &recipients());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::Reply);
        assert_eq!(findings[0].recipient, "other@example.org");
    }

    #[test]
    fn status_codes_in_text() {
        assert_eq!(enhanced_status("said: 550 5.1.1 no"), Some("5.1.1".into()));
        assert_eq!(
            enhanced_status("version 15.4.2 and 4.7.10."),
            Some("4.7.10".into())
        );
        assert_eq!(enhanced_status("ip 192.5.4.3"), None);
        assert_eq!(reply_code("550 x"), Some(550));
        assert_eq!(reply_code("250 ok"), None);
    }
}
