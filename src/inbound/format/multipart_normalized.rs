//! Multipart Normalized (`multipart+n`, contract §1.7): `multipart/form-data` with the bodies
//! (empty strings when absent), `headers[<normalized name>]` (`[i]` for repeats), the
//! envelope in bracket notation and one `attachments[]` file part per attachment.
//!
//! The deprecated Multipart format (`multipart`, contract §1.9.2) differs only in header names and
//! attachment field names, so [`form`] serves both.

use super::form_data::FormData;
use super::headers::{self, Naming};
use super::{Bodies, FormatOptions, PayloadEnvelope};
use crate::mail::message::ParsedMessage;

/// How embedded attachments are named. The docs contradict themselves (`attachments[]`,
/// `attachments` and `attachments[0]` each appear once); we follow contract §9.2's
/// recommendation: `attachments[]` for Multipart Normalized, `attachments[i]` for the
/// deprecated Multipart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttachmentNames {
    /// `attachments[]` for every file: Rails and Rack make an array, PHP
    /// `$_FILES['attachments']['name'][i]`.
    Array,
    /// `attachments[0]`, `attachments[1]`, …: the deprecated format, which Griddler's
    /// `params[:attachments].values` depends on (contract §1.10).
    Indexed,
}

pub fn form<'a>(
    envelope: &PayloadEnvelope,
    message: &'a ParsedMessage,
    options: &FormatOptions,
) -> FormData<'a> {
    form_with(
        envelope,
        message,
        options,
        Naming::Normalized,
        AttachmentNames::Array,
    )
}

pub(super) fn form_with<'a>(
    envelope: &PayloadEnvelope,
    message: &'a ParsedMessage,
    options: &FormatOptions,
    naming: Naming,
    attachment_names: AttachmentNames,
) -> FormData<'a> {
    let mut form = FormData::new();
    let bodies = Bodies::of(message, options);
    // JSON says `null` for an absent body; multipart sends an empty field (contract §1.4, §9.7).
    form.text("plain", bodies.plain.unwrap_or_default());
    form.text("html", bodies.html.unwrap_or_default());
    form.text("reply_plain", bodies.reply_plain.unwrap_or_default());
    // `headers[mime_version]`: the docs' `headers[mime-version]` is a typo (contract §9.13).
    for group in headers::grouped(message, naming) {
        match group.values.as_slice() {
            [one] => form.text(format!("headers[{}]", group.key), *one),
            many => {
                for (i, value) in many.iter().enumerate() {
                    form.text(format!("headers[{}][{i}]", group.key), *value);
                }
            }
        }
    }
    form.flattened("envelope", &envelope.to_json());
    // No attachments: no field at all, not an empty one (contract §1.5).
    for (i, attachment) in message.attachments.iter().enumerate() {
        if let Some(url) = options.attachment_url(i) {
            stored_attachment(&mut form, attachment_names, i, attachment, url);
            continue;
        }
        let name = match attachment_names {
            AttachmentNames::Array => "attachments[]".to_string(),
            AttachmentNames::Indexed => format!("attachments[{i}]"),
        };
        // Rack (and so Rails) drops a file part whose filename is empty, which would lose
        // unnamed inline images and forwarded messages; give those the traditional name.
        let file_name = match attachment.file_name.as_str() {
            "" => UNNAMED_ATTACHMENT,
            named => named,
        };
        form.file(
            name,
            file_name,
            &attachment.content_type,
            &attachment.content,
        );
    }
    form
}

/// A stored attachment's text fields, always in this order and starting with the same key
/// (Rack starts a new array element when a key repeats; contract §1.5).
fn stored_attachment(
    form: &mut FormData<'_>,
    names: AttachmentNames,
    index: usize,
    attachment: &crate::mail::message::Attachment,
    url: &str,
) {
    let field = |key: &str| match names {
        AttachmentNames::Array => format!("attachments[][{key}]"),
        AttachmentNames::Indexed => format!("attachments[{index}][{key}]"),
    };
    form.text(field("file_name"), attachment.file_name.clone());
    form.text(field("content_type"), attachment.content_type.clone());
    form.text(field("size"), attachment.content.len().to_string());
    form.text(field("disposition"), attachment.disposition.as_str());
    form.text(field("url"), url.to_string());
    if let Some(id) = &attachment.content_id {
        form.text(field("content_id"), id.clone());
    }
}

/// The filename sent for an attachment that has none (`noname`, as mail clients show it).
pub const UNNAMED_ATTACHMENT: &str = "noname";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::format::tests::{envelope, message};

    #[test]
    fn field_names_in_order() {
        let message = message();
        let form = form(&envelope(), &message, &FormatOptions::default());
        let names: Vec<&str> = form.names().collect();
        assert_eq!(
            names,
            [
                "plain",
                "html",
                "reply_plain",
                "headers[received][0]",
                "headers[received][1]",
                "headers[mime_version]",
                "headers[subject]",
                "headers[x_tag][0]",
                "headers[x_tag][1]",
                "envelope[to]",
                "envelope[recipients][0]",
                "envelope[recipients][1]",
                "envelope[from]",
                "envelope[helo_domain]",
                "envelope[remote_ip]",
                "envelope[tls]",
                "envelope[tls_cipher]",
                "envelope[md5]",
                "envelope[spf][result]",
                "envelope[spf][domain]",
                "attachments[]",
                "attachments[]",
            ]
        );
    }

    #[test]
    fn absent_bodies_are_empty_fields() {
        let message = message();
        let body = form(&envelope(), &message, &FormatOptions::default()).encode("B");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"html\"\r\n\r\n\r\n--B\r\n"), "{text}");
        assert!(text.contains("name=\"envelope[tls]\"\r\n\r\ntrue\r\n"));
    }

    #[test]
    fn no_attachments_no_field() {
        let mut message = message();
        message.attachments.clear();
        let form = form(&envelope(), &message, &FormatOptions::default());
        assert!(form.names().all(|n| !n.starts_with("attachments")));
        assert!(!form.contains(b"attachments"));
    }

    #[test]
    fn stored_attachments_are_text_fields_in_a_fixed_order() {
        let message = message();
        let options = FormatOptions {
            attachment_urls: Some(vec!["https://s/a".into(), "https://s/b".into()]),
            ..FormatOptions::default()
        };
        let form = form(&envelope(), &message, &options);
        let names: Vec<&str> = form
            .names()
            .filter(|n| n.starts_with("attachments"))
            .collect();
        assert_eq!(
            names,
            [
                "attachments[][file_name]",
                "attachments[][content_type]",
                "attachments[][size]",
                "attachments[][disposition]",
                "attachments[][url]",
                "attachments[][file_name]",
                "attachments[][content_type]",
                "attachments[][size]",
                "attachments[][disposition]",
                "attachments[][url]",
                "attachments[][content_id]",
            ]
        );
        let body = String::from_utf8_lossy(&form.encode("B")).into_owned();
        assert!(body.contains("name=\"attachments[][url]\"\r\n\r\nhttps://s/b\r\n"));
        assert!(!body.contains("abc"), "no content: {body}");
        let deprecated = super::super::multipart::form(&envelope(), &message, &options);
        let names: Vec<&str> = deprecated
            .names()
            .filter(|n| n.starts_with("attachments"))
            .collect();
        assert_eq!(names[4], "attachments[0][url]");
        assert_eq!(names[9], "attachments[1][url]");
    }

    #[test]
    fn unnamed_attachments_get_a_filename() {
        let mut message = message();
        message.attachments[0].file_name.clear();
        let body = form(&envelope(), &message, &FormatOptions::default()).encode("BOUNDARY");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("name=\"attachments[]\"; filename=\"noname\""),
            "{text}"
        );
    }
}
