//! ARF feedback reports (RFC 5965) to the return path: a mailbox provider telling the
//! sender that one of its users marked the message as spam (contract §6.11).
//!
//! A report is `multipart/report; report-type=feedback-report` with a
//! `message/feedback-report` part (`Feedback-Type`, `User-Agent`, `Original-Rcpt-To`, …)
//! and the original message (`message/rfc822`) or its header (`text/rfc822-headers`).
//! [`read`] is a pure function over its MIME leaves; [`crate::outbound::bounce::classify`]
//! asks it first and turns what it finds into findings:
//!
//! - `Feedback-Type: abuse` is a **complaint**: a `complaint` event for the recipient who
//!   complained, and the address suppressed with reason `complaint`. The recipient's state
//!   does not change (the message was delivered; a complaint is not terminal).
//! - every other type (`not-spam`, `auth-failure`, `fraud`, `virus`, `other`) and a report
//!   whose type is missing or unreadable (`unknown`) is logged and changes nothing: none
//!   of them says that the recipient asked not to get the mail.
//!
//! The recipient is, in order: an `Original-Rcpt-To` that is one of the message's
//! recipients; else the address it names (a forward: an event only, as for a DSN naming
//! another address); the only one of them the attached original's `To`/`Cc` names; the
//! message's only recipient. Providers often redact the original's addresses, so a complaint about a
//! message with several recipients and nothing naming one of them is logged, not guessed.

use super::bounce::typed_address;
use crate::mail::address::parse_mailboxes;
use crate::mail::fields::unfolded_fields;
use crate::mail::message::{MimeLeaf, ParsedMessage};

/// The feedback type that is a complaint (RFC 5965 §7.3).
pub const ABUSE: &str = "abuse";

/// What a feedback report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackReport {
    /// `Feedback-Type`, lower case; `unknown` when missing or empty.
    pub feedback_type: String,
    /// The provider's reporting software (`User-Agent`).
    pub user_agent: Option<String>,
    /// When the provider received the original (`Arrival-Date`/`Received-Date`).
    pub arrival_date: Option<String>,
    /// Who complained: one of the message's recipients, or the address the report names
    /// when it names no recipient; `None` when nothing tells.
    pub recipient: Option<String>,
}

impl FeedbackReport {
    /// A complaint (`abuse`): the only type that suppresses.
    pub fn is_complaint(&self) -> bool {
        self.feedback_type == ABUSE
    }
}

/// The report in `leaves`, if the message is one: it has a `message/feedback-report` part,
/// or its top-level `content_type` says `report-type=feedback-report` (then, without the
/// part, the type is `unknown`). `recipients` are the message's own.
pub fn read(
    leaves: &[MimeLeaf],
    content_type: &str,
    recipients: &[String],
) -> Option<FeedbackReport> {
    let report = leaves
        .iter()
        .find(|leaf| leaf.content_type == "message/feedback-report");
    let declared = content_type
        .to_ascii_lowercase()
        .replace(['"', ' '], "")
        .contains("report-type=feedback-report");
    if report.is_none() && !declared {
        return None;
    }
    let fields = report
        .map(|leaf| unfolded_fields(&String::from_utf8_lossy(&leaf.content).replace("\r\n", "\n")))
        .unwrap_or_default();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let feedback_type = field("feedback-type")
        .and_then(|t| t.split_whitespace().next().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| "unknown".into());
    let named: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("original-rcpt-to"))
        .map(|(_, v)| typed_address(v))
        .filter(|a| a.contains('@'))
        .collect();
    Some(FeedbackReport {
        feedback_type,
        user_agent: field("user-agent"),
        arrival_date: field("arrival-date").or_else(|| field("received-date")),
        recipient: complainant(&named, &original_recipients(leaves), recipients),
    })
}

/// The `To` and `Cc` addresses of the attached original (or its header).
fn original_recipients(leaves: &[MimeLeaf]) -> Vec<String> {
    let Some(original) = leaves.iter().find(|leaf| {
        matches!(
            leaf.content_type.as_str(),
            "message/rfc822" | "text/rfc822-headers" | "message/rfc822-headers"
        )
    }) else {
        return Vec::new();
    };
    let parsed = ParsedMessage::parse(&original.content);
    ["to", "cc"]
        .iter()
        .filter_map(|name| parsed.header(name))
        .flat_map(parse_mailboxes)
        .map(|mailbox| mailbox.address)
        .collect()
}

/// Who complained (see the module comment): `named` are the report's `Original-Rcpt-To`
/// addresses, `original` the original's `To`/`Cc`.
fn complainant(named: &[String], original: &[String], recipients: &[String]) -> Option<String> {
    let own = |address: &String| {
        recipients
            .iter()
            .find(|r| r.eq_ignore_ascii_case(address))
            .cloned()
    };
    if let Some(recipient) = named.iter().find_map(own) {
        return Some(recipient);
    }
    // A report naming someone else is about them (a forward): an event, no suppression.
    if let Some(stranger) = named.first() {
        return Some(stranger.clone());
    }
    let mut in_original: Vec<String> = original.iter().filter_map(own).collect();
    in_original.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    match (in_original.as_slice(), recipients) {
        ([one], _) | ([], [one]) => Some(one.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::message::mime_leaves;
    use crate::outbound::bounce::{FindingKind, classify};

    const AOL: &[u8] = include_bytes!("../../tests/data/arf/aol.eml");
    const YAHOO: &[u8] = include_bytes!("../../tests/data/arf/yahoo.eml");
    const MICROSOFT: &[u8] = include_bytes!("../../tests/data/arf/microsoft.eml");
    const NOT_SPAM: &[u8] = include_bytes!("../../tests/data/arf/not-spam.eml");

    fn one() -> Vec<String> {
        vec!["user@example.net".into()]
    }

    fn two() -> Vec<String> {
        vec!["user@example.net".into(), "other@example.org".into()]
    }

    fn report(raw: &[u8], recipients: &[String]) -> Option<FeedbackReport> {
        let content_type = ParsedMessage::parse(raw)
            .header("content-type")
            .unwrap_or("")
            .to_string();
        read(&mime_leaves(raw), &content_type, recipients)
    }

    /// The complaints `classify` finds: (recipient, feedback type, user agent).
    fn complaints(raw: &[u8], recipients: &[String]) -> Vec<(String, String, Option<String>)> {
        classify(raw, "", recipients)
            .into_iter()
            .map(|f| {
                assert_eq!(f.kind, FindingKind::Complaint, "{f:?}");
                let report = f.report.expect("a complaint carries its report");
                (f.recipient, report.feedback_type, report.user_agent)
            })
            .collect()
    }

    #[test]
    fn an_aol_report_with_the_recipient_redacted_is_the_only_recipients_complaint() {
        assert_eq!(
            complaints(AOL, &one()),
            [(
                "user@example.net".to_string(),
                "abuse".to_string(),
                Some("AOL SComp".to_string())
            )]
        );
        let read = report(AOL, &one()).unwrap();
        assert_eq!(
            read.arrival_date.as_deref(),
            Some("Sat, 28 Nov 2026 10:02:11 EST")
        );
        // Redacted, and the message had two recipients: nobody to blame.
        assert_eq!(report(AOL, &two()).unwrap().recipient, None);
        assert!(classify(AOL, "", &two()).is_empty());
    }

    #[test]
    fn a_yahoo_report_names_the_recipient_in_original_rcpt_to() {
        assert_eq!(
            complaints(YAHOO, &two()),
            [(
                "other@example.org".to_string(),
                "abuse".to_string(),
                Some("Yahoo!-Mail-Feedback/2.0".to_string())
            )]
        );
    }

    #[test]
    fn a_microsoft_jmrp_report_names_the_recipient_in_the_attached_original() {
        assert_eq!(
            complaints(MICROSOFT, &two()),
            [(
                "user@example.net".to_string(),
                "abuse".to_string(),
                Some("Microsoft JMRP".to_string())
            )]
        );
    }

    #[test]
    fn other_feedback_types_are_not_complaints() {
        let not_spam = report(NOT_SPAM, &one()).unwrap();
        assert_eq!(not_spam.feedback_type, "not-spam");
        assert!(!not_spam.is_complaint());
        assert!(classify(NOT_SPAM, "", &one()).is_empty());
        let auth_failure = String::from_utf8_lossy(YAHOO).replace(
            "Feedback-Type: abuse",
            "Feedback-Type: auth-failure\nAuth-Failure: dkim",
        );
        assert_eq!(
            report(auth_failure.as_bytes(), &two())
                .unwrap()
                .feedback_type,
            "auth-failure"
        );
        assert!(classify(auth_failure.as_bytes(), "", &two()).is_empty());
    }

    #[test]
    fn a_report_naming_someone_else_is_about_them() {
        let forwarded =
            String::from_utf8_lossy(YAHOO).replace("Other@Example.org", "<someone@else.test>");
        assert_eq!(
            complaints(forwarded.as_bytes(), &two())[0].0,
            "someone@else.test"
        );
    }

    #[test]
    fn malformed_reports_are_unknown_and_change_nothing() {
        let declared_only = "From: fbl@example.net\nContent-Type: multipart/report; report-type=feedback-report; boundary=X\n\nno parts at all\n";
        let garbage_part = "Content-Type: multipart/report; report-type=feedback-report; boundary=X\n\n--X\nContent-Type: message/feedback-report\n\n\u{1}\u{2}: \u{ff}\n:::\nFeedback-Type:\n--X--\n";
        let unterminated = "Content-Type: multipart/report; report-type=feedback-report; boundary=X\n\n--X\nContent-Type: message/feedback-report\n\nFeedback-Type";
        for raw in [declared_only, garbage_part, unterminated] {
            let read = report(raw.as_bytes(), &one()).expect(raw);
            assert_eq!(read.feedback_type, "unknown", "{raw}");
            assert!(classify(raw.as_bytes(), "", &one()).is_empty(), "{raw}");
        }
        // Not a feedback report at all.
        assert_eq!(report(b"Subject: hi\n\nhello\n", &one()), None);
    }

    #[test]
    fn truncated_reports_never_panic_and_blame_only_addresses_they_name() {
        for sample in [AOL, YAHOO, MICROSOFT, NOT_SPAM] {
            for cut in (0..sample.len()).step_by(5) {
                let text = String::from_utf8_lossy(&sample[..cut]).to_ascii_lowercase();
                let findings = classify(&sample[..cut], "", &two());
                for finding in findings.iter().filter(|f| f.kind == FindingKind::Complaint) {
                    let named = finding.recipient.to_ascii_lowercase();
                    let ours = two().contains(&named);
                    assert!(
                        ours || (named.contains('@') && text.contains(&named)),
                        "{finding:?}"
                    );
                }
            }
        }
    }
}
