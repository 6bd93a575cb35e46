//! JSON Normalized (`json+n`, spec §1.2–1.6): header names lower-cased with `-` → `_`,
//! repeated headers as arrays in message order, `null` for absent bodies, attachments
//! embedded as one-line base64 with `size` as a string.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::PayloadEnvelope;
use crate::inbound::message::ParsedMessage;

pub fn build(envelope: &PayloadEnvelope, message: &ParsedMessage) -> Vec<u8> {
    let payload = json!({
        "headers": headers(message),
        "envelope": envelope.to_json(),
        "plain": message.plain,
        "html": message.html,
        "reply_plain": message.reply_plain,
        "attachments": attachments(message),
    });
    serde_json::to_vec(&payload).expect("JSON values always serialise")
}

/// `Message-ID` → `message_id`.
pub fn normalize_header_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

fn headers(message: &ParsedMessage) -> Map<String, Value> {
    let mut map = Map::new();
    for field in &message.headers {
        let key = normalize_header_name(&field.name);
        let value = Value::String(field.value.clone());
        match map.get_mut(&key) {
            None => {
                map.insert(key, value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(first) => {
                let first = first.take();
                map.insert(key, Value::Array(vec![first, value]));
            }
        }
    }
    map
}

fn attachments(message: &ParsedMessage) -> Vec<Value> {
    message
        .attachments
        .iter()
        .map(|a| {
            let mut object = Map::new();
            object.insert(
                "content".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(&a.content)
                    .into(),
            );
            object.insert("file_name".into(), a.file_name.clone().into());
            object.insert("content_type".into(), a.content_type.clone().into());
            // A string, as production sends it and cloudmailin-go requires (§1.5, §9.1).
            object.insert("size".into(), a.content.len().to_string().into());
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

    #[test]
    fn header_names() {
        assert_eq!(normalize_header_name("Message-ID"), "message_id");
        assert_eq!(
            normalize_header_name("X-Google-DKIM-Signature"),
            "x_google_dkim_signature"
        );
    }
}
