//! JSON Normalized (`json+n`, contract §1.2–1.6): header names lower-cased with `-` → `_`,
//! repeated headers as arrays in message order, `null` for absent bodies, attachments
//! embedded as one-line base64 with `size` as a string.
//!
//! The deprecated JSON format (`json`, contract §1.9.1) is this payload with other header keys, so
//! [`payload`] serves both.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::headers::{self, Naming};
use super::{Bodies, FormatOptions, PayloadEnvelope};
use crate::mail::message::ParsedMessage;

pub fn build(
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    options: &FormatOptions,
) -> Vec<u8> {
    payload(envelope, message, Naming::Normalized, options)
}

/// The JSON body with header keys named by `naming`.
pub(super) fn payload(
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    naming: Naming,
    options: &FormatOptions,
) -> Vec<u8> {
    let bodies = Bodies::of(message, options);
    let payload = json!({
        "headers": header_object(message, naming),
        "envelope": envelope.to_json(),
        "plain": bodies.plain,
        "html": bodies.html,
        "reply_plain": bodies.reply_plain,
        "attachments": attachments(message, options),
    });
    serde_json::to_vec(&payload).expect("JSON values always serialise")
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

fn attachments(message: &ParsedMessage, options: &FormatOptions) -> Vec<Value> {
    message
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut object = Map::new();
            // With a store, where it was put instead of the bytes (contract §1.5).
            match options.attachment_url(i) {
                Some(url) => object.insert("url".into(), url.into()),
                None => object.insert(
                    "content".into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(&a.content)
                        .into(),
                ),
            };
            object.insert("file_name".into(), a.file_name.clone().into());
            object.insert("content_type".into(), a.content_type.clone().into());
            // A string, as production sends it and cloudmailin-go requires; a number only
            // for an address that asks for the documented type (contract §1.5, §9.1).
            let size = a.content.len();
            let size = if options.size_as_number {
                size.into()
            } else {
                size.to_string().into()
            };
            object.insert("size".into(), size);
            object.insert("disposition".into(), a.disposition.as_str().into());
            if let Some(id) = &a.content_id {
                object.insert("content_id".into(), id.clone().into());
            }
            Value::Object(object)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::format::tests::{envelope, message};

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
