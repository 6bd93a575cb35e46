//! The one check for a message given as bytes — SMTP submission's DATA and the send API's
//! `raw` field — so that neither entry point sends what the other refuses (issue 10).
//!
//! [`check`] reads the header and applies these rules, in this order:
//!
//! 1. **Header syntax.** Every header line is at most 998 bytes (RFC 5322 §2.1.1), holds no
//!    NUL and no CR other than the one before its LF, and is either a continuation (starts
//!    with space or tab, and is not the first line) or `name:value` with a name of printable
//!    ASCII other than `:` (RFC 5322 §2.2). A message without a blank line is all header.
//! 2. **`From`.** Exactly one `From` field holding exactly one mailbox with an address an
//!    envelope can carry; the address must match the credential's sender patterns.
//! 3. **`Sender`.** Optional; when present, exactly one field with exactly one mailbox, and
//!    it must match the credential's sender patterns too (it names who sent the message).
//! 4. **`Reply-To`** (and every other field) is free: it names where answers go, not who
//!    sent the message, so it is not held to the sender patterns.
//! 5. **`Bcc`** fields are removed, folds included, so no recipient sees them. They never
//!    add recipients: the envelope is RCPT TO for SMTP and `to` + `cc` for the API.

use crate::mail::address::{Mailbox, parse_mailboxes, valid_address};
use crate::mail::fields::{find_header_end, unfolded_fields, without_fields};

use super::Credential;

/// The longest header line allowed, without its line break (RFC 5322 §2.1.1).
pub const MAX_LINE: usize = 998;

/// Why a raw message is refused. [`RawError::Forbidden`] is the credential's refusal (403,
/// SMTP 550 5.7.1); every other is the message's (422, SMTP 554 5.6.0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("the message has no From header")]
    NoFrom,
    #[error("the From header must hold exactly one address, like \"Name <user@example.com>\"")]
    BadFrom,
    #[error("the Sender header must hold exactly one address, like \"Name <user@example.com>\"")]
    BadSender,
    #[error("header line {0} is not a field (a name of printable ASCII, then \":\")")]
    BadFieldName(usize),
    #[error("header line {0} holds a NUL or a CR that does not end the line")]
    BadFieldValue(usize),
    #[error("header line {0} is longer than {MAX_LINE} bytes")]
    LineTooLong(usize),
    #[error("credential {username} may not send as {address} (the {field} header)")]
    Forbidden {
        username: String,
        field: &'static str,
        address: String,
    },
}

/// A raw message that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRaw {
    /// The one `From` mailbox.
    pub from: Mailbox,
    /// The header's fields, unfolded and trimmed (`Bcc` included: it is only read).
    pub fields: Vec<(String, String)>,
    /// The header bytes without the `Bcc` fields.
    pub header: Vec<u8>,
    /// Where the header ends in the checked bytes: the blank line and body follow.
    pub header_end: usize,
}

impl CheckedRaw {
    /// The values of the fields called `name` (case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Checks `raw` for `credential` by the rules in the module header.
pub fn check(raw: &[u8], credential: &Credential) -> Result<CheckedRaw, RawError> {
    // A message may be all header (RFC 5322 §3.5: the body is optional).
    let header_end = find_header_end(raw).unwrap_or(raw.len());
    let header = &raw[..header_end];
    check_header_lines(header)?;
    let fields = unfolded_fields(&String::from_utf8_lossy(header));
    let named = |name: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let from = match named("from").as_slice() {
        [] => return Err(RawError::NoFrom),
        [one] => one_mailbox(one).ok_or(RawError::BadFrom)?,
        _ => return Err(RawError::BadFrom),
    };
    allowed(credential, "From", &from)?;
    match named("sender").as_slice() {
        [] => {}
        [one] => allowed(
            credential,
            "Sender",
            &one_mailbox(one).ok_or(RawError::BadSender)?,
        )?,
        _ => return Err(RawError::BadSender),
    }
    Ok(CheckedRaw {
        from,
        header: without_fields(header, |name| name == "bcc"),
        fields,
        header_end,
    })
}

/// The header syntax rule (rule 1): line numbers in errors count from 1.
fn check_header_lines(header: &[u8]) -> Result<(), RawError> {
    for (index, line) in header.split_inclusive(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            return Err(RawError::LineTooLong(number));
        }
        if line.contains(&b'\0') || line.contains(&b'\r') {
            return Err(RawError::BadFieldValue(number));
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation && number > 1 {
            continue;
        }
        let name_ok = line.iter().position(|&b| b == b':').is_some_and(|colon| {
            colon > 0
                && line[..colon]
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && b != b':')
        });
        if !name_ok {
            return Err(RawError::BadFieldName(number));
        }
    }
    Ok(())
}

/// The one mailbox of a `From` or `Sender` value, if it holds exactly one usable address.
fn one_mailbox(value: &str) -> Option<Mailbox> {
    let mut boxes = parse_mailboxes(value);
    (boxes.len() == 1 && valid_address(&boxes[0].address)).then(|| boxes.remove(0))
}

fn allowed(
    credential: &Credential,
    field: &'static str,
    mailbox: &Mailbox,
) -> Result<(), RawError> {
    match credential.may_send_as(&mailbox.address) {
        true => Ok(()),
        false => Err(RawError::Forbidden {
            username: credential.username.clone(),
            field,
            address: mailbox.address.clone(),
        }),
    }
}

/// A live credential limited to `patterns`, for unit tests here and in `submission`.
#[cfg(test)]
pub(crate) fn credential_for_tests(patterns: &[&str]) -> Credential {
    Credential {
        id: 1,
        username: "app".into(),
        prefix: String::new(),
        mode: crate::store::CredentialMode::Live,
        allowed_senders: patterns.iter().map(|p| p.to_string()).collect(),
        events_url: None,
        track_opens: true,
        track_clicks: true,
        created_at: 0,
        last_used_at: None,
        revoked_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(raw: &str) -> Result<CheckedRaw, RawError> {
        check(raw.as_bytes(), &credential_for_tests(&["alerts@send.test"]))
    }

    #[test]
    fn one_allowed_from_passes_and_bcc_is_removed_with_its_folds() {
        let raw = "From: Alerts <alerts@send.test>\r\nBcc: spy@sink.test,\r\n\tother@sink.test\r\nReply-To: ceo@send.test\r\nSubject: x\r\n\r\nBcc: body@sink.test\r\n";
        let checked = checked(raw).unwrap();
        assert_eq!(checked.from.address, "alerts@send.test");
        assert_eq!(
            checked.header,
            b"From: Alerts <alerts@send.test>\r\nReply-To: ceo@send.test\r\nSubject: x\r\n"
        );
        assert_eq!(
            &raw.as_bytes()[checked.header_end..],
            b"\r\nBcc: body@sink.test\r\n"
        );
        // All header, LF line ends.
        assert!(
            super::check(
                b"From: alerts@send.test\nSubject: x\n",
                &credential_for_tests(&[])
            )
            .is_ok()
        );
    }

    #[test]
    fn from_and_sender_must_be_one_allowed_mailbox() {
        assert_eq!(checked("Subject: x\r\n\r\nx"), Err(RawError::NoFrom));
        for from in [
            "From: alerts@send.test\r\nFrom: ceo@send.test\r\n",
            "From: ceo@send.test, alerts@send.test\r\n",
            "From: alerts@send.test, ceo@send.test\r\n",
            "From: nobody\r\n",
        ] {
            assert_eq!(
                checked(&format!("{from}\r\nx")),
                Err(RawError::BadFrom),
                "{from}"
            );
        }
        let forbidden = checked("From: ceo@send.test\r\n\r\nx").unwrap_err();
        assert!(matches!(
            forbidden,
            RawError::Forbidden { field: "From", .. }
        ));
        let sender = checked("From: alerts@send.test\r\nSender: ceo@send.test\r\n\r\nx");
        assert!(matches!(
            sender,
            Err(RawError::Forbidden {
                field: "Sender",
                ..
            })
        ));
        for sender in [
            "Sender: alerts@send.test, ceo@send.test\r\n",
            "Sender: alerts@send.test\r\nSender: alerts@send.test\r\n",
        ] {
            let raw = format!("From: alerts@send.test\r\n{sender}\r\nx");
            assert_eq!(checked(&raw), Err(RawError::BadSender), "{sender}");
        }
        assert!(checked("From: alerts@send.test\r\nSender: alerts@send.test\r\n\r\nx").is_ok());
    }

    #[test]
    fn header_lines_must_be_fields() {
        let long = format!(
            "From: alerts@send.test\r\nX-Long: {}\r\n\r\nx",
            "a".repeat(MAX_LINE)
        );
        assert_eq!(checked(&long), Err(RawError::LineTooLong(2)));
        for (raw, error) in [
            (
                " From: alerts@send.test\r\n\r\nx",
                RawError::BadFieldName(1),
            ),
            (
                "From: alerts@send.test\r\nno colon here\r\n\r\nx",
                RawError::BadFieldName(2),
            ),
            (
                "From: alerts@send.test\r\nX A: b\r\n\r\nx",
                RawError::BadFieldName(2),
            ),
            (
                "From: alerts@send.test\r\n: b\r\n\r\nx",
                RawError::BadFieldName(2),
            ),
            (
                "From: alerts@send.test\r\nX-A: b\rBcc: c@d.test\r\n\r\nx",
                RawError::BadFieldValue(2),
            ),
            (
                "From: alerts@send.test\r\nX-A: b\0\r\n\r\nx",
                RawError::BadFieldValue(2),
            ),
        ] {
            assert_eq!(checked(raw), Err(error), "{raw:?}");
        }
    }
}
