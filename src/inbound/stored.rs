//! A message's attachments and the message itself put into its address's stores before
//! the POST (contract §3): each attachment under `<random>/<sanitised name>`
//! (`attachment_store`), then the whole message as `YYYY_MM_DD_HH_MM_SS_<md5>.eml` (as
//! received) or `.json` (the JSON Normalized document, with the attachments' URLs when they
//! were stored) (`message_store`). The URLs go into the payload; any failure fails the
//! whole delivery as a temporary one (the caller answers 450 or tries again later).

use time::OffsetDateTime;

use super::format::{self, FormatOptions, PayloadEnvelope};
use crate::config::{AddressOptions, MessageStoreFormat};
use crate::mail::message::ParsedMessage;
use crate::objects::{ObjectError, Objects, Put, naming};

/// The message as received and what its payload is made of.
pub(super) struct Message<'a> {
    /// As the client sent it (no trace line of ours).
    pub raw: &'a [u8],
    pub parsed: &'a ParsedMessage,
    pub envelope: &'a PayloadEnvelope,
    pub received_at: OffsetDateTime,
    pub options: &'a FormatOptions,
}

/// Where things went: the payload's `url`s and `envelope.store_url`.
#[derive(Debug, Default)]
pub(super) struct Stored {
    pub attachment_urls: Option<Vec<String>>,
    pub store_url: Option<String>,
}

/// Puts what the address asks for into its stores; nothing when it names none.
pub(super) async fn store(
    objects: Option<&Objects>,
    address: &AddressOptions,
    message: Message<'_>,
) -> Result<Stored, ObjectError> {
    let mut stored = Stored::default();
    let objects_for = |name: &String| objects.ok_or_else(|| ObjectError::NoSuchStore(name.clone()));
    if let Some(name) = &address.attachment_store {
        let objects = objects_for(name)?;
        let mut urls = Vec::with_capacity(message.parsed.attachments.len());
        for attachment in &message.parsed.attachments {
            let put = Put {
                name: naming::attachment(&attachment.file_name),
                content_type: content_type(&attachment.content_type),
                bytes: attachment.content.clone(),
            };
            urls.push(objects.put(name, put).await?);
        }
        stored.attachment_urls = Some(urls);
    }
    if let Some(name) = &address.message_store {
        let objects = objects_for(name)?;
        let format = address.message_store_format;
        let (content_type, bytes) = match format {
            MessageStoreFormat::Raw => ("message/rfc822", message.raw.to_vec()),
            MessageStoreFormat::Json => {
                let options = FormatOptions {
                    attachment_urls: stored.attachment_urls.clone(),
                    ..message.options.clone()
                };
                let document =
                    format::json_normalized::build(message.envelope, message.parsed, &options);
                ("application/json", document)
            }
        };
        let put = Put {
            name: naming::message(message.received_at, &message.envelope.md5, format),
            content_type,
            bytes,
        };
        stored.store_url = Some(objects.put(name, put).await?);
    }
    Ok(stored)
}

/// A part's MIME type as the object's `Content-Type`, when it is a plain `type/subtype`;
/// anything else (parameters, spaces, control characters) is `application/octet-stream`.
fn content_type(given: &str) -> &str {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match given.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => given,
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_mime_types_become_content_types() {
        assert_eq!(content_type("image/png"), "image/png");
        assert_eq!(
            content_type("application/vnd.ms-excel"),
            "application/vnd.ms-excel"
        );
        for hostile in [
            "text/html\r\nX-Evil: 1",
            "text/plain; charset=x",
            "",
            "x",
            "a/b/c",
        ] {
            assert_eq!(
                content_type(hostile),
                "application/octet-stream",
                "{hostile:?}"
            );
        }
    }
}
