//! JSON Normalized (`json+n`, contract §1.2–1.6): header names lower-cased with `-` → `_`,
//! repeated headers as arrays in message order, `null` for absent bodies, attachments
//! embedded as one-line base64 with `size` as a string.
//!
//! The deprecated JSON format (`json`, contract §1.9.1) is this payload with other header keys, so
//! [`payload`] serves both.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use super::headers::{self, Naming};
use super::{Bodies, FormatOptions, PayloadEnvelope};
use crate::mail::message::{Attachment, ParsedMessage};

pub fn build(
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    options: &FormatOptions,
) -> Vec<u8> {
    payload(envelope, message, Naming::Normalized, options)
}

/// The JSON body with header keys named by `naming`. Written straight into the body: each
/// attachment's base64 is encoded as it is written, never held as a string of its own.
pub(super) fn payload(
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    naming: Naming,
    options: &FormatOptions,
) -> Vec<u8> {
    let bodies = Bodies::of(message, options);
    let document = Document {
        headers: header_object(message, naming),
        envelope: envelope.to_json(),
        plain: bodies.plain.as_deref(),
        html: bodies.html,
        reply_plain: bodies.reply_plain.as_deref(),
        attachments: Attachments { message, options },
    };
    // Sized for the attachments' base64 (4/3) and the rest, so the body is not copied as it
    // grows.
    let estimate: usize = message
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| match options.attachment_url(i) {
            Some(url) => url.len() + 256,
            None => a.content.len() / 3 * 4 + 256,
        })
        .sum::<usize>()
        + 16 * 1024;
    let mut body = Vec::with_capacity(estimate);
    serde_json::to_writer(&mut body, &document).expect("JSON documents always serialise");
    body
}

/// The payload's keys in the contract's order (contract §1.6).
#[derive(Serialize)]
struct Document<'a> {
    headers: Map<String, Value>,
    envelope: Value,
    plain: Option<&'a str>,
    html: Option<&'a str>,
    reply_plain: Option<&'a str>,
    attachments: Attachments<'a>,
}

struct Attachments<'a> {
    message: &'a ParsedMessage,
    options: &'a FormatOptions,
}

impl Serialize for Attachments<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut list = serializer.serialize_seq(Some(self.message.attachments.len()))?;
        for (index, attachment) in self.message.attachments.iter().enumerate() {
            list.serialize_element(&AttachmentEntry {
                attachment,
                url: self.options.attachment_url(index),
                size_as_number: self.options.size_as_number,
            })?;
        }
        list.end()
    }
}

struct AttachmentEntry<'a> {
    attachment: &'a Attachment,
    /// With a store, where it was put: sent instead of the bytes (contract §1.5, §3.1).
    url: Option<&'a str>,
    size_as_number: bool,
}

impl Serialize for AttachmentEntry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let a = self.attachment;
        let mut entry = serializer.serialize_map(None)?;
        match self.url {
            Some(url) => entry.serialize_entry("url", url)?,
            None => entry.serialize_entry("content", &Base64(&a.content))?,
        }
        entry.serialize_entry("file_name", &a.file_name)?;
        entry.serialize_entry("content_type", &a.content_type)?;
        // A string, as production sends it and cloudmailin-go requires; a number only for an
        // address that asks for the documented type (contract §1.5, §9.1).
        let size = a.content.len();
        match self.size_as_number {
            true => entry.serialize_entry("size", &size)?,
            false => entry.serialize_entry("size", &size.to_string())?,
        }
        entry.serialize_entry("disposition", a.disposition.as_str())?;
        if let Some(id) = &a.content_id {
            entry.serialize_entry("content_id", id)?;
        }
        entry.end()
    }
}

/// Bytes as one-line standard base64, encoded while the JSON is written.
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&base64::display::Base64Display::new(
            self.0,
            &base64::engine::general_purpose::STANDARD,
        ))
    }
}

/// A string for a header written once, an array of strings in message order for a repeated
/// one (contract §1.3 item 3).
fn header_object(message: &ParsedMessage, naming: Naming) -> Map<String, Value> {
    headers::grouped(message, naming)
        .into_iter()
        .map(|group| {
            let value = match group.values.as_slice() {
                [one] => Value::String(one.to_string()),
                many => many.iter().map(|v| Value::String(v.to_string())).collect(),
            };
            (group.key, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::format::tests::{envelope, message};
    use serde_json::json;

    fn built(options: &FormatOptions) -> Value {
        serde_json::from_slice(&build(&envelope(), &message(), options)).unwrap()
    }

    #[test]
    fn size_is_a_string_unless_asked_for_a_number() {
        let json = built(&FormatOptions::default());
        assert_eq!(json["attachments"][0]["size"], "3");
        let json = built(&FormatOptions {
            size_as_number: true,
            ..FormatOptions::default()
        });
        assert_eq!(json["attachments"][0]["size"], 3);
    }

    #[test]
    fn stored_attachments_carry_their_url_instead_of_the_content() {
        let json = built(&FormatOptions {
            attachment_urls: Some(vec!["https://s/a.txt".into(), "https://s/b.bin".into()]),
            ..FormatOptions::default()
        });
        let first = json["attachments"][0].as_object().unwrap();
        let keys: Vec<&String> = first.keys().collect();
        assert_eq!(
            keys,
            ["url", "file_name", "content_type", "size", "disposition"]
        );
        assert_eq!(first["url"], "https://s/a.txt");
        assert_eq!(json["attachments"][1]["url"], "https://s/b.bin");
        assert_eq!(json["attachments"][1]["content_id"], "<b1>");
        assert_eq!(json["attachments"][1]["size"], "2");
    }

    #[test]
    fn normalized_keys_and_nulls() {
        let json = built(&FormatOptions::default());
        let keys: Vec<&String> = json["headers"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["received", "mime_version", "subject", "x_tag"]);
        assert_eq!(json["headers"]["received"], json!(["r1", "r2"]));
        assert_eq!(json["headers"]["x_tag"], json!(["1", "2"]));
        assert_eq!(json["html"], Value::Null);
        assert_eq!(json["reply_plain"], Value::Null);
    }
}
