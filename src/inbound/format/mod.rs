//! CloudMailin-compatible POST payloads (contract §1). Each format is a pure function from a
//! [`ParsedMessage`] (or the raw message) and its [`PayloadEnvelope`] to a request body; no
//! I/O. The only input from outside is the random multipart boundary, drawn in [`build`];
//! [`build_with_boundary`] takes it as a parameter and is fully deterministic.

pub mod form_data;
pub mod headers;
pub mod idempotency;
pub mod json;
pub mod json_normalized;
pub mod multipart;
pub mod multipart_normalized;
pub mod original;
pub mod raw;

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{AddressOptions, Format};
use crate::mail::message::ParsedMessage;
use crate::mail::reply_text;
use crate::webhook::Payload;

/// The SMTP facts every format carries (contract §1.2); the inbound queue keeps it (sealed)
/// to build the same payload later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PayloadEnvelope {
    /// The first accepted recipient, the one that routed to this address.
    pub to: String,
    pub recipients: Vec<String>,
    /// MAIL FROM, bare; empty for the null reverse-path.
    pub from: String,
    pub helo_domain: String,
    pub remote_ip: String,
    /// The TLS protocol (`TLSv1.3`), or `None` for a plaintext session.
    pub tls_version: Option<String>,
    /// Lower-case hex MD5 of the message as the client sent it.
    pub md5: String,
    pub spf: Spf,
    /// Present only when the address enables DKIM verification (contract §5.2).
    pub dkim: Option<Dkim>,
    /// Present only when the address enables DMARC verification (contract §5.3).
    pub dmarc: Option<Dmarc>,
    /// Where the whole message was stored: only with full-message storage (contract §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
}

/// `envelope.spf` (contract §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Spf {
    /// `none`, `neutral`, `pass`, `fail`, `softfail`, `temperror` or `permerror`.
    pub result: String,
    pub domain: String,
}

/// `envelope.dkim` (contract §5.2). `success` says the check ran; it is not the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Dkim {
    pub success: bool,
    pub result: Vec<DkimSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DkimSignature {
    /// `pass`, `fail`, `neutral`, `temperror` or `permerror`.
    pub result: String,
    pub domain: String,
    pub selector: String,
}

/// `envelope.dmarc` (contract §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Dmarc {
    pub success: bool,
    /// `pass`, `fail`, `none`, `temperror` or `permerror`.
    pub result: String,
    pub details: DmarcDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DmarcDetails {
    pub domain: String,
    /// `none`, `quarantine` or `reject`.
    pub policy: String,
    pub spf_result: String,
    pub dmarc_spf_result: String,
    pub dmarc_dkim_result: String,
    pub dkim_results: Vec<DkimSignature>,
}

impl PayloadEnvelope {
    /// The envelope as every format carries it, in the contract's key order (contract §1.2).
    /// Multipart formats flatten this same value into bracket notation.
    pub fn to_json(&self) -> Value {
        let mut envelope = json!({
            "to": self.to,
            "recipients": self.recipients,
            "from": self.from,
            "helo_domain": self.helo_domain,
            "remote_ip": self.remote_ip,
            "tls": self.tls_version.is_some(),
            // Despite the name, CloudMailin sends the TLS protocol version here (contract §1.2).
            "tls_cipher": self.tls_version.as_deref().unwrap_or(""),
            "md5": self.md5,
            "spf": self.spf,
        });
        if let Some(url) = &self.store_url {
            envelope["store_url"] = json!(url);
        }
        if let Some(dkim) = &self.dkim {
            envelope["dkim"] = json!(dkim);
        }
        if let Some(dmarc) = &self.dmarc {
            envelope["dmarc"] = json!(dmarc);
        }
        envelope
    }

    /// What the message's row keeps of the checks: `{"spf": …, "dkim": …, "dmarc": …}` in
    /// the payload's shapes, `null` for a check the address does not ask for.
    pub fn authentication(&self) -> Value {
        json!({ "spf": self.spf, "dkim": self.dkim, "dmarc": self.dmarc })
    }
}

/// Per-address switches that change a payload's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// JSON formats: attachment `size` as a number (what the docs show) instead of a string
    /// (what production sends and cloudmailin-go requires); contract §1.5, §9.1.
    pub size_as_number: bool,
    /// Original: the address's secret, which signs the request (contract §2.9); no
    /// `signature` field without one.
    pub signature_secret: Option<String>,
    /// Every format with bodies: a message with an HTML body and no plain one gets the HTML's
    /// text as `plain` (and the `reply_plain` of that); contract §1.4.
    pub html_to_plain: bool,
    /// With an attachment store: the URL of each attachment, in the message's order; the
    /// payload carries `url` instead of the content (contract §1.5, §3.1).
    pub attachment_urls: Option<Vec<String>>,
}

impl FormatOptions {
    /// The URL of attachment `index`, when the attachments were stored.
    pub(super) fn attachment_url(&self, index: usize) -> Option<&str> {
        (self.attachment_urls.as_ref())
            .and_then(|urls| urls.get(index))
            .map(String::as_str)
    }

    /// The switches an address sets (the Original format's secret comes from elsewhere:
    /// `webhook::signing`).
    pub fn of(options: &AddressOptions) -> FormatOptions {
        FormatOptions {
            size_as_number: options.size_as_number,
            html_to_plain: options.html_to_plain,
            signature_secret: None,
            attachment_urls: None,
        }
    }
}

/// The three bodies a payload carries (contract §1.4): the message's own, or, with
/// [`FormatOptions::html_to_plain`] and a message that has HTML but no plain body, the HTML's
/// text (without surrounding whitespace) as `plain` and the new text of that as
/// `reply_plain`. HTML whose text is blank gives no `plain`, as before.
pub(super) struct Bodies<'a> {
    pub plain: Option<Cow<'a, str>>,
    pub html: Option<&'a str>,
    pub reply_plain: Option<Cow<'a, str>>,
}

impl<'a> Bodies<'a> {
    pub fn of(message: &'a ParsedMessage, options: &FormatOptions) -> Bodies<'a> {
        let from_html = match (&message.plain, options.html_to_plain) {
            (None, true) => message
                .html_text()
                .map(|text| text.trim().to_string())
                .filter(|text| !text.is_empty()),
            _ => None,
        };
        let html = message.html.as_deref();
        match from_html {
            Some(plain) => Bodies {
                reply_plain: reply_text::extract(&plain).map(Cow::Owned),
                plain: Some(Cow::Owned(plain)),
                html,
            },
            None => Bodies {
                plain: message.plain.as_deref().map(Cow::Borrowed),
                html,
                reply_plain: message.reply_plain.as_deref().map(Cow::Borrowed),
            },
        }
    }
}

/// The body `format` sends for this message. `raw` is the message as received (with our
/// `Received:` line), which only the Raw format uses. Multipart formats get a fresh random
/// boundary that occurs nowhere in the parts.
pub fn build(
    format: Format,
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    raw: &[u8],
    options: &FormatOptions,
) -> Payload {
    assemble(format, envelope, message, raw, options, |form| {
        form.unused_boundary(&form_data::random_boundary())
    })
}

/// [`build`] with a fixed multipart boundary, for reproducible bodies (golden files). JSON
/// formats ignore `boundary`.
///
/// # Panics
/// If `boundary` occurs in the form's content, which would corrupt the body.
pub fn build_with_boundary(
    format: Format,
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    raw: &[u8],
    options: &FormatOptions,
    boundary: &str,
) -> Payload {
    assemble(format, envelope, message, raw, options, |form| {
        assert!(
            !form.contains(boundary.as_bytes()),
            "the boundary {boundary:?} occurs in the form"
        );
        boundary.to_string()
    })
}

fn assemble(
    format: Format,
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    raw: &[u8],
    options: &FormatOptions,
    boundary_for: impl FnOnce(&form_data::FormData<'_>) -> String,
) -> Payload {
    let form = match format {
        Format::JsonNormalized => {
            return json_payload(json_normalized::build(envelope, message, options));
        }
        Format::Json => return json_payload(json::build(envelope, message, options)),
        Format::MultipartNormalized => multipart_normalized::form(envelope, message, options),
        Format::Multipart => multipart::form(envelope, message, options),
        Format::Raw => raw::form(envelope, raw),
        Format::Original => original::form(envelope, message, raw, options),
    };
    let boundary = boundary_for(&form);
    Payload {
        content_type: form_data::content_type(&boundary),
        body: form.encode(&boundary),
    }
}

fn json_payload(body: Vec<u8>) -> Payload {
    Payload {
        // No charset parameter: the official demo receiver compares for equality (contract §1.1).
        content_type: "application/json".to_string(),
        body,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mail::message::{Attachment, Disposition, HeaderField};

    /// A small envelope shared by the format tests.
    pub fn envelope() -> PayloadEnvelope {
        PayloadEnvelope {
            to: "to@example.com".into(),
            recipients: vec!["to@example.com".into(), "another@example.com".into()],
            from: "sender@example.com".into(),
            helo_domain: "mail.example.com".into(),
            remote_ip: "192.0.2.10".into(),
            tls_version: Some("TLSv1.3".into()),
            md5: "27f29e85c8fa61f513a9309c2e4e1ed8".into(),
            spf: Spf {
                result: "pass".into(),
                domain: "example.com".into(),
            },
            dkim: None,
            dmarc: None,
            store_url: None,
        }
    }

    /// A message with a repeated header, two spellings of one normalized key, a header the
    /// mail gem respells, no HTML and two attachments.
    pub fn message() -> ParsedMessage {
        let header = |name: &str, value: &str| HeaderField {
            name: name.into(),
            value: value.into(),
        };
        ParsedMessage {
            headers: vec![
                header("Received", "r1"),
                header("MIME-Version", "1.0"),
                header("Subject", "Hi"),
                header("Received", "r2"),
                header("X-Tag", "1"),
                header("X_Tag", "2"),
            ],
            plain: Some("Hi there".into()),
            html: None,
            reply_plain: None,
            attachments: vec![
                Attachment {
                    file_name: "a.txt".into(),
                    content_type: "text/plain".into(),
                    disposition: Disposition::Attachment,
                    content_id: None,
                    content: b"abc".to_vec(),
                },
                Attachment {
                    file_name: "b.bin".into(),
                    content_type: "application/octet-stream".into(),
                    disposition: Disposition::Inline,
                    content_id: Some("<b1>".into()),
                    content: vec![0, 1],
                },
            ],
        }
    }

    #[test]
    fn content_types() {
        let options = FormatOptions::default();
        for (_, format) in Format::ALL {
            let payload = build(*format, &envelope(), &message(), b"raw", &options);
            match format {
                Format::JsonNormalized | Format::Json => {
                    assert_eq!(payload.content_type, "application/json");
                }
                _ => {
                    let boundary = payload
                        .content_type
                        .strip_prefix("multipart/form-data; boundary=")
                        .unwrap();
                    assert!(
                        payload
                            .body
                            .starts_with(format!("--{boundary}\r\n").as_bytes())
                    );
                    assert!(
                        payload
                            .body
                            .ends_with(format!("--{boundary}--\r\n").as_bytes())
                    );
                }
            }
        }
    }

    #[test]
    fn dkim_and_dmarc_flatten_like_everything_else() {
        let mut envelope = envelope();
        let signature = DkimSignature {
            result: "pass".into(),
            domain: "example.com".into(),
            selector: "s1".into(),
        };
        envelope.dkim = Some(Dkim {
            success: true,
            result: vec![signature.clone()],
        });
        envelope.dmarc = Some(Dmarc {
            success: false,
            result: "none".into(),
            details: DmarcDetails {
                domain: "example.com".into(),
                policy: "none".into(),
                spf_result: "pass".into(),
                dmarc_spf_result: "fail".into(),
                dmarc_dkim_result: "pass".into(),
                dkim_results: vec![signature],
            },
        });
        let payload = build_with_boundary(
            Format::MultipartNormalized,
            &envelope,
            &message(),
            b"",
            &FormatOptions::default(),
            "B",
        );
        let text = String::from_utf8_lossy(&payload.body);
        for (name, value) in [
            ("envelope[dkim][success]", "true"),
            ("envelope[dkim][result][0][selector]", "s1"),
            ("envelope[dmarc][success]", "false"),
            (
                "envelope[dmarc][details][dkim_results][0][domain]",
                "example.com",
            ),
            ("envelope[dmarc][details][dmarc_spf_result]", "fail"),
        ] {
            let field = format!("name=\"{name}\"\r\n\r\n{value}\r\n--B");
            assert!(text.contains(&field), "{field}");
        }
    }

    /// An HTML-only reply: new text above an attribution and a quote.
    fn html_only(html: &str) -> ParsedMessage {
        ParsedMessage {
            plain: None,
            html: Some(html.into()),
            reply_plain: None,
            ..message()
        }
    }

    const HTML_REPLY: &str = "<html><head><style>p { color: red }</style></head><body>\
        <p>Caf&eacute; &amp; <b>cr&egrave;me</b> &lt;ok&gt;</p>\
        On Mon, 1 Jan 2024 at 10:00, Ann wrote:<br>&gt; the old text</body></html>";

    /// `plain`, `html` and `reply_plain` as `format` carries them (`None`: JSON `null` or an
    /// empty form field), and the whole body.
    fn bodies_of(
        format: Format,
        message: &ParsedMessage,
        options: &FormatOptions,
    ) -> ([Option<String>; 3], Vec<u8>) {
        let payload = build_with_boundary(
            format,
            &envelope(),
            message,
            b"Subject: raw\r\n\r\nraw",
            options,
            "B",
        );
        let fields = ["plain", "html", "reply_plain"].map(|name| match format {
            Format::JsonNormalized | Format::Json => {
                let json: Value = serde_json::from_slice(&payload.body).unwrap();
                json[name].as_str().map(str::to_string)
            }
            Format::MultipartNormalized | Format::Multipart | Format::Original => {
                let text = String::from_utf8(payload.body.clone()).unwrap();
                let start = format!("name=\"{name}\"\r\n\r\n");
                let value = text.split_once(&start).unwrap().1;
                let value = value.split_once("\r\n--B").unwrap().0;
                (!value.is_empty()).then(|| value.to_string())
            }
            Format::Raw => None,
        });
        (fields, payload.body)
    }

    #[test]
    fn html_to_plain_gives_html_only_mail_the_html_text_in_every_format_with_bodies() {
        let message = html_only(HTML_REPLY);
        let on = FormatOptions {
            html_to_plain: true,
            ..FormatOptions::default()
        };
        let text =
            "Caf\u{e9} & cr\u{e8}me <ok>\nOn Mon, 1 Jan 2024 at 10:00, Ann wrote:\n> the old text";
        for (name, format) in Format::ALL {
            let (with, with_body) = bodies_of(*format, &message, &on);
            let (without, without_body) = bodies_of(*format, &message, &FormatOptions::default());
            if *format == Format::Raw {
                assert_eq!(with_body, without_body, "{name}: raw carries no bodies");
                continue;
            }
            let [plain, html, reply_plain] = with;
            assert_eq!(plain.as_deref(), Some(text), "{name}");
            assert_eq!(html.as_deref(), Some(HTML_REPLY), "{name}");
            // The reply's new text, from the plain made (contract §1.4).
            assert_eq!(
                reply_plain.as_deref(),
                Some("Caf\u{e9} & cr\u{e8}me <ok>"),
                "{name}"
            );
            // Without the option, no plain and no reply_plain, as before.
            assert_eq!(without, [None, Some(HTML_REPLY.into()), None], "{name}");
        }
    }

    #[test]
    fn html_to_plain_leaves_mail_with_a_plain_part_or_blank_html_as_it_was() {
        let on = FormatOptions {
            html_to_plain: true,
            ..FormatOptions::default()
        };
        let mut with_both = message();
        with_both.html = Some("<p>other</p>".into());
        let blank = html_only(
            "<html><head><title>t</title></head><body> <img src=\"cid:x\"> &#32;</body></html>",
        );
        for (name, format) in Format::ALL {
            for message in [&message(), &with_both, &blank] {
                assert_eq!(
                    bodies_of(*format, message, &on),
                    bodies_of(*format, message, &FormatOptions::default()),
                    "{name}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "occurs in the form")]
    fn a_fixed_boundary_that_occurs_in_the_content_is_refused() {
        let options = FormatOptions::default();
        build_with_boundary(Format::Raw, &envelope(), &message(), b"--B", &options, "B");
    }
}
