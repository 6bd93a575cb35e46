//! Original (`original`, deprecated; contract §1.9.3): flat `multipart/form-data` fields, as
//! the first CloudMailin sent them, and the signed request of contract §2.9: `signature` is
//! the lower-case hex MD5 of every other field's value, in the order of the field names,
//! followed by the address's secret (its signing secret, `webhook::signing`). Without a
//! secret there is no `signature` field.
//!
//! [INF] `x_sender` and `x_forwarded_for` are sent only when the message has those headers;
//! `to` carries angle brackets, as older consumers show it. Attachments are sent only with
//! an attachment store (§1.5): `attachments[i][file_name|content_type|url|size]`, and
//! `[disposition]` when it is not `attachment`; they are signed like the other fields.

use md5::{Digest, Md5};

use super::form_data::FormData;
use super::{Bodies, FormatOptions, PayloadEnvelope};
use crate::mail::address::parse_mailboxes;
use crate::mail::message::ParsedMessage;

/// The fields, in the order they are sent; `secret` signs them.
pub fn form<'a>(
    envelope: &PayloadEnvelope,
    message: &ParsedMessage,
    raw: &'a [u8],
    options: &FormatOptions,
) -> FormData<'a> {
    let secret = options.signature_secret.as_deref();
    let bodies = Bodies::of(message, options);
    let text_of =
        |body: &Option<std::borrow::Cow<'_, str>>| body.as_deref().unwrap_or_default().to_string();
    let addresses = |name: &str| -> Vec<String> {
        message
            .header(name)
            .map(parse_mailboxes)
            .unwrap_or_default()
            .into_iter()
            .map(|mailbox| mailbox.address)
            .collect()
    };
    let json_list = |list: &[String]| serde_json::to_string(list).expect("strings serialise");
    let mut text: Vec<(String, String)> = vec![
        ("plain".into(), text_of(&bodies.plain)),
        ("html".into(), bodies.html.unwrap_or_default().to_string()),
        ("to".into(), format!("<{}>", envelope.to)),
        ("recipients".into(), json_list(&envelope.recipients)),
        ("disposable".into(), disposable(&envelope.to).to_string()),
        ("x_to_header".into(), addresses("to").join(", ")),
        ("x_cc_header".into(), addresses("cc").join(", ")),
        ("from".into(), envelope.from.clone()),
        ("x_from_header".into(), json_list(&addresses("from"))),
    ];
    for (field, header) in [
        ("x_sender", "x-sender"),
        ("x_forwarded_for", "x-forwarded-for"),
    ] {
        if let Some(value) = message.header(header) {
            text.push((field.into(), value.to_string()));
        }
    }
    text.extend([
        (
            "subject".into(),
            message.header("subject").unwrap_or_default().to_string(),
        ),
        ("reply_plain".into(), text_of(&bodies.reply_plain)),
        ("spf[result]".into(), envelope.spf.result.clone()),
        ("spf[domain]".into(), envelope.spf.domain.clone()),
    ]);
    for (i, attachment) in message.attachments.iter().enumerate() {
        let Some(url) = options.attachment_url(i) else {
            continue;
        };
        let field = |key: &str| format!("attachments[{i}][{key}]");
        text.extend([
            (field("file_name"), attachment.file_name.clone()),
            (field("content_type"), attachment.content_type.clone()),
            (field("url"), url.to_string()),
            (field("size"), attachment.content.len().to_string()),
        ]);
        if attachment.disposition.as_str() != "attachment" {
            text.push((field("disposition"), attachment.disposition.as_str().into()));
        }
    }
    let signature = secret.map(|secret| {
        let mut fields: Vec<(&str, &[u8])> = text
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .chain([("message", raw)])
            .collect();
        sign(&mut fields, secret)
    });
    let mut form = FormData::new();
    form.bytes("message", raw);
    for (name, value) in text {
        form.text(name, value);
    }
    if let Some(signature) = signature {
        form.text("signature", signature);
    }
    form
}

/// The part of the recipient's local part after the first `+`, or nothing (contract §4.2).
fn disposable(to: &str) -> &str {
    let local = to.rsplit_once('@').map_or(to, |(local, _)| local);
    local.split_once('+').map_or("", |(_, tag)| tag)
}

/// Contract §2.9: the fields sorted by name, their values concatenated, the secret appended,
/// MD5 in lower-case hex.
pub fn sign(fields: &mut [(&str, &[u8])], secret: &str) -> String {
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut md5 = Md5::new();
    for (_, value) in fields.iter() {
        md5.update(value);
    }
    md5.update(secret.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::format::tests::envelope;

    #[test]
    fn stored_attachments_are_sent_and_signed_and_embedded_ones_are_not() {
        let message = crate::inbound::format::tests::message();
        let plain = FormatOptions::default();
        let embedded = form(&envelope(), &message, b"raw", &plain);
        assert!(embedded.names().all(|n| !n.starts_with("attachments")));
        let options = FormatOptions {
            attachment_urls: Some(vec!["https://s/a".into(), "https://s/b".into()]),
            signature_secret: Some("whsec_x".into()),
            ..FormatOptions::default()
        };
        let stored = form(&envelope(), &message, b"raw", &options);
        let names: Vec<&str> = (stored.names())
            .filter(|n| n.starts_with("attachments"))
            .collect();
        assert_eq!(
            names,
            [
                "attachments[0][file_name]",
                "attachments[0][content_type]",
                "attachments[0][url]",
                "attachments[0][size]",
                "attachments[1][file_name]",
                "attachments[1][content_type]",
                "attachments[1][url]",
                "attachments[1][size]",
                "attachments[1][disposition]",
            ]
        );
        let fields = fields_of(&stored, "B");
        let mut signed: Vec<(&str, &[u8])> = fields
            .iter()
            .filter(|(name, _)| name != "signature")
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();
        let signature = &fields.iter().find(|(n, _)| n == "signature").unwrap().1;
        assert_eq!(
            sign(&mut signed, "whsec_x").as_bytes(),
            signature.as_slice()
        );
    }

    fn fields_of(form: &FormData<'_>, boundary: &str) -> Vec<(String, Vec<u8>)> {
        let body = form.encode(boundary);
        let delimiter = format!("--{boundary}");
        let text = String::from_utf8_lossy(&body).into_owned();
        text.split(&delimiter)
            .filter_map(|part| {
                let (head, value) = part.split_once("\r\n\r\n")?;
                let name = head.split("name=\"").nth(1)?.split('"').next()?;
                let value = value.strip_suffix("\r\n").unwrap_or(value);
                Some((name.to_string(), value.as_bytes().to_vec()))
            })
            .collect()
    }

    #[test]
    fn flat_fields_and_a_signature_anyone_can_recompute() {
        let raw = b"From: Ann <ann@example.net>\r\nTo: to+tag@example.com, b@example.org\r\nCc: c@example.org\r\nX-Sender: relay@example.net\r\nSubject: Hi\r\n\r\nHello\r\n> quoted\r\n";
        let message = ParsedMessage::parse(raw);
        let mut envelope = envelope();
        envelope.to = "to+tag@example.com".into();
        let signed = |secret: Option<&str>| FormatOptions {
            signature_secret: secret.map(str::to_string),
            ..FormatOptions::default()
        };
        let form = form(&envelope, &message, raw, &signed(Some("s3cret")));
        let fields = fields_of(&form, "BOUNDARY");
        let field = |name: &str| {
            let value = &fields.iter().find(|(n, _)| n == name).unwrap().1;
            String::from_utf8(value.clone()).unwrap()
        };
        assert_eq!(field("to"), "<to+tag@example.com>");
        assert_eq!(field("disposable"), "tag");
        assert_eq!(
            field("recipients"),
            r#"["to@example.com","another@example.com"]"#
        );
        assert_eq!(field("x_to_header"), "to+tag@example.com, b@example.org");
        assert_eq!(field("x_cc_header"), "c@example.org");
        assert_eq!(field("x_from_header"), r#"["ann@example.net"]"#);
        assert_eq!(field("x_sender"), "relay@example.net");
        assert!(!fields.iter().any(|(n, _)| n == "x_forwarded_for"));
        assert_eq!(field("from"), "sender@example.com");
        assert_eq!(field("subject"), "Hi");
        assert_eq!(field("html"), "");
        assert_eq!(field("spf[result]"), "pass");
        assert_eq!(field("message").as_bytes(), raw);

        // The signature, recomputed from the fields as received: sorted by name, values
        // joined, the secret appended.
        let mut others: Vec<&(String, Vec<u8>)> =
            fields.iter().filter(|(n, _)| n != "signature").collect();
        others.sort_by(|a, b| a.0.cmp(&b.0));
        let mut joined: Vec<u8> = others.iter().flat_map(|(_, v)| v.clone()).collect();
        joined.extend_from_slice(b"s3cret");
        let expected: String = Md5::digest(&joined)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(field("signature"), expected);

        let unsigned = super::form(&envelope, &message, raw, &signed(None));
        assert!(!unsigned.names().any(|n| n == "signature"));
        let other = super::form(&envelope, &message, raw, &signed(Some("other")));
        assert_ne!(
            fields_of(&other, "BOUNDARY").last(),
            fields.last(),
            "another secret, another signature"
        );
    }

    #[test]
    fn the_contracts_recipe_on_a_small_example() {
        // md5("b-value" "a-value"… sorted by name: a, b) + secret.
        let mut fields = [("b", b"2".as_slice()), ("a", b"1".as_slice())];
        let expected: String = Md5::digest(b"12secret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sign(&mut fields, "secret"), expected);
        assert_eq!(disposable("a+b+c@x"), "b+c");
        assert_eq!(disposable("plain@x"), "");
    }
}
