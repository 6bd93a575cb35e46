//! Parsing mail into Postern's own [`ParsedMessage`] and its MIME leaves (mail-parser types stay
//! inside `mail`).
//!
//! Header values are unfolded by deleting the line breaks only (whitespace is kept, contract
//! §1.3) and RFC 2047 encoded-words are decoded to UTF-8. Bodies come out as UTF-8 whatever
//! their charset. Anything mail-parser cannot make sense of still yields a message: at worst
//! the raw bytes, decoded lossily, as the plain body.

use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use tracing::warn;

use super::reply_text;

/// A received message, reduced to what payload builders need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMessage {
    /// Top-level header fields in message order, names as written.
    pub headers: Vec<HeaderField>,
    pub plain: Option<String>,
    pub html: Option<String>,
    /// The new text of a reply, without quoted history (contract §1.4, [`reply_text::extract`]).
    pub reply_plain: Option<String>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: String,
    /// Unfolded, encoded-words decoded, surrounding whitespace trimmed.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: String,
    pub disposition: Disposition,
    /// With angle brackets, as in the message (contract §1.5).
    pub content_id: Option<String>,
    /// Decoded content.
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Attachment,
    Inline,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Attachment => "attachment",
            Disposition::Inline => "inline",
        }
    }
}

impl ParsedMessage {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The body as text: the plain part, or else the HTML part's text (tags dropped,
    /// entities decoded) — for previews and search, never for payloads.
    pub fn text(&self) -> Option<String> {
        self.plain.clone().or_else(|| self.html_text())
    }

    /// [`ParsedMessage::text`], moved out of the parse instead of copied.
    pub fn into_text(self) -> Option<String> {
        match self.plain {
            Some(plain) => Some(plain),
            None => self.html_text(),
        }
    }

    /// The HTML body's text: tags, comments, `<head>`, `<style>` and `<script>` dropped,
    /// entities decoded, `<br>` and `</p>` as line breaks. One pass over the HTML, whatever
    /// its nesting. `None` without an HTML body.
    pub fn html_text(&self) -> Option<String> {
        (self.html.as_deref()).map(mail_parser::decoders::html::html_to_text)
    }

    pub fn parse(raw: &[u8]) -> ParsedMessage {
        // mail-parser 0.11 panics on some malformed MIME (one is tested below).
        // The message is still delivered, as unparsed text, rather than refused with a 451
        // that the sender would retry until it gives up.
        std::panic::catch_unwind(|| ParsedMessage::parse_mime(raw)).unwrap_or_else(|_| {
            warn!("mail-parser panicked; the message is passed on unparsed as its plain body");
            ParsedMessage::unparsed(raw)
        })
    }

    /// The raw bytes, decoded lossily, as the plain body.
    fn unparsed(raw: &[u8]) -> ParsedMessage {
        ParsedMessage {
            plain: Some(String::from_utf8_lossy(raw).into_owned()),
            ..ParsedMessage::default()
        }
    }

    fn parse_mime(raw: &[u8]) -> ParsedMessage {
        let Some(mut message) = MessageParser::default().parse(raw) else {
            return ParsedMessage::unparsed(raw);
        };
        let Some(root) = message.parts.first() else {
            return ParsedMessage::default();
        };
        let headers = header_fields(root, raw);
        let bodies = BodyParts::of(&message);
        let text_of = |id: Option<u32>| {
            id.and_then(|id| message.parts[id as usize].text_contents())
                .map(str::to_string)
        };
        let plain = text_of(bodies.plain);
        let html = text_of(bodies.html);
        ParsedMessage {
            headers,
            reply_plain: plain.as_deref().and_then(reply_text::extract),
            plain,
            html,
            attachments: bodies.attachments(&mut message, raw),
        }
    }
}

/// A part's header fields in order, names as written and values unfolded and decoded.
fn header_fields(part: &MessagePart<'_>, raw: &[u8]) -> Vec<HeaderField> {
    part.headers
        .iter()
        .filter_map(|h| {
            let name = raw.get(h.offset_field as usize..h.offset_start as usize)?;
            let value = raw.get(h.offset_start as usize..h.offset_end as usize)?;
            let name = String::from_utf8_lossy(name);
            let name = name.trim_end_matches(':').trim();
            Some(HeaderField {
                name: name.to_string(),
                value: header_value(value),
            })
        })
        .collect()
}

/// Which parts of a message are its plain and HTML bodies, by part id.
///
/// The first text/plain and text/html parts that are not attachments are the bodies
/// (contract §1.4); every other leaf part is an attachment (contract §1.5).
struct BodyParts {
    plain: Option<u32>,
    html: Option<u32>,
}

impl BodyParts {
    /// mail-parser's body lists come first; when it filed every text part as an
    /// attachment (e.g. an unterminated multipart), the first unnamed inline one counts.
    fn of(message: &Message<'_>) -> BodyParts {
        let is_plain = |id: &u32| is_plain_part(&message.parts[*id as usize]);
        let is_html = |id: &u32| is_html_part(&message.parts[*id as usize]);
        let is_body_like = |id: &u32| is_body_like_part(&message.parts[*id as usize]);
        let all_ids = || 0..message.parts.len() as u32;
        let plain = message
            .text_body
            .iter()
            .copied()
            .find(is_plain)
            .or_else(|| all_ids().filter(is_plain).find(is_body_like));
        let html = message
            .html_body
            .iter()
            .copied()
            .find(is_html)
            .or_else(|| all_ids().filter(is_html).find(is_body_like));
        BodyParts { plain, html }
    }

    /// Every leaf part that is not one of the bodies.
    /// Every leaf part that is not one of the bodies; decoded content is moved out of
    /// `message`, not copied (a large attachment is held once).
    fn attachments(&self, message: &mut Message<'_>, raw: &[u8]) -> Vec<Attachment> {
        message
            .parts
            .iter_mut()
            .enumerate()
            .filter(|(id, part)| {
                let id = Some(*id as u32);
                !matches!(part.body, PartType::Multipart(_)) && id != self.plain && id != self.html
            })
            .map(|(_, part)| attachment(part, raw))
            .collect()
    }
}

// By declared type as well as by mail-parser's part type: 0.11 sometimes types an HTML part
// as text (an unterminated multipart/alternative), and that is still HTML.
fn declared_text(part: &MessagePart<'_>, subtype: &str) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.c_type.eq_ignore_ascii_case("text")
            && ct
                .c_subtype
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

fn is_plain_part(part: &MessagePart<'_>) -> bool {
    matches!(part.body, PartType::Text(_)) && !declared_text(part, "html")
}

fn is_html_part(part: &MessagePart<'_>) -> bool {
    match part.body {
        PartType::Html(_) => true,
        PartType::Text(_) => declared_text(part, "html"),
        _ => false,
    }
}

/// Neither named nor marked `Content-Disposition: attachment`.
fn is_body_like_part(part: &MessagePart<'_>) -> bool {
    part.attachment_name().is_none()
        && !part
            .content_disposition()
            .is_some_and(|cd| cd.c_type.eq_ignore_ascii_case("attachment"))
}

fn attachment(part: &mut MessagePart<'_>, raw: &[u8]) -> Attachment {
    let content_type = part
        .content_type()
        .map(|ct| match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub),
            None => ct.c_type.to_string(),
        })
        .unwrap_or_else(|| match part.body {
            PartType::Text(_) => "text/plain".into(),
            PartType::Html(_) => "text/html".into(),
            PartType::Message(_) => "message/rfc822".into(),
            _ => "application/octet-stream".into(),
        })
        .to_ascii_lowercase();
    let disposition = match part.content_disposition() {
        Some(cd) if cd.c_type.eq_ignore_ascii_case("inline") => Disposition::Inline,
        _ => Disposition::Attachment,
    };
    let file_name = part.attachment_name().unwrap_or_default().to_string();
    let content_id = part.content_id().map(|id| format!("<{id}>"));
    let content = match &mut part.body {
        // A forwarded message is passed on as it arrived, unless a transfer encoding has to
        // be undone (the content is decoded, contract §1.5).
        PartType::Message(_) if part.encoding == Encoding::None => raw
            .get(part.offset_body as usize..part.offset_end as usize)
            .unwrap_or_default()
            .to_vec(),
        // Decoded binary content is moved, not copied: a large attachment is held once.
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
            std::mem::take(bytes).into_owned()
        }
        _ => part.contents().to_vec(),
    };
    Attachment {
        file_name,
        content_type,
        disposition,
        content_id,
        content,
    }
}

/// How a leaf part's body is encoded for transport (RFC 2045 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    Base64,
    QuotedPrintable,
    /// `7bit`, `8bit`, `binary` or none declared: the bytes are the content.
    Identity,
}

/// A leaf part of a message's own MIME tree (not of messages attached to it), located in
/// the raw bytes, for code that reads parts (bounces) or rewrites one (tracking) without
/// touching the rest of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimeLeaf {
    /// `type/subtype`, lower case; `text/plain` when undeclared (RFC 2045 §5.2).
    pub content_type: String,
    /// Marked `Content-Disposition: attachment` or has a file name.
    pub attachment: bool,
    /// The part's header block (its header fields with their line ends).
    pub header: std::ops::Range<usize>,
    /// The `Content-Type` and `Content-Transfer-Encoding` fields, each with its line end.
    pub content_fields: Vec<std::ops::Range<usize>>,
    /// The encoded body, up to (not including) the line break before the next boundary.
    pub body: std::ops::Range<usize>,
    pub encoding: TransferEncoding,
    /// Text parts: the content decoded to UTF-8 (charset and transfer encoding undone).
    pub text: Option<String>,
    /// The decoded content.
    pub content: Vec<u8>,
}

/// The MIME tree of `raw` for tests to compare, one line per part in order, indented two
/// spaces a level: the type with its `type` and `name` parameters, the disposition with its
/// `filename`, the `Content-ID`, e.g. `  image/png; name=a.png | inline; filename=a.png | <a>`.
#[cfg(test)]
pub(crate) fn mime_outline(raw: &[u8]) -> Vec<String> {
    let message = MessageParser::default()
        .parse(raw)
        .expect("mail-parser reads it");
    let mut lines = Vec::new();
    let mut stack = vec![(0u32, 0usize)];
    while let Some((id, depth)) = stack.pop() {
        let part = &message.parts[id as usize];
        let mut line = "  ".repeat(depth);
        if let Some(ct) = part.content_type() {
            line.push_str(&format!(
                "{}/{}",
                ct.ctype(),
                ct.subtype().unwrap_or_default()
            ));
            for name in ["type", "name"] {
                if let Some(value) = ct.attribute(name) {
                    line.push_str(&format!("; {name}={value}"));
                }
            }
        }
        if let Some(cd) = part.content_disposition() {
            line.push_str(&format!(" | {}", cd.ctype()));
            if let Some(file_name) = cd.attribute("filename") {
                line.push_str(&format!("; filename={file_name}"));
            }
        }
        if let Some(id) = part.content_id() {
            line.push_str(&format!(" | <{id}>"));
        }
        lines.push(line);
        if let PartType::Multipart(children) = &part.body {
            stack.extend(children.iter().rev().map(|child| (*child, depth + 1)));
        }
    }
    lines
}

/// The leaf parts of `raw`, in order; empty when mail-parser cannot read it (or panics).
pub fn mime_leaves(raw: &[u8]) -> Vec<MimeLeaf> {
    std::panic::catch_unwind(|| leaves_of(raw)).unwrap_or_else(|_| {
        warn!("mail-parser panicked while listing MIME parts");
        Vec::new()
    })
}

fn leaves_of(raw: &[u8]) -> Vec<MimeLeaf> {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    message
        .parts
        .iter()
        .filter(|part| !matches!(part.body, PartType::Multipart(_)))
        .filter_map(|part| {
            let content_type = part
                .content_type()
                .map(|ct| match &ct.c_subtype {
                    Some(sub) => format!("{}/{}", ct.c_type, sub),
                    None => ct.c_type.to_string(),
                })
                .unwrap_or_else(|| "text/plain".into())
                .to_ascii_lowercase();
            let content_fields = part
                .headers
                .iter()
                .filter(|h| {
                    matches!(
                        h.name,
                        mail_parser::HeaderName::ContentType
                            | mail_parser::HeaderName::ContentTransferEncoding
                    )
                })
                .map(|h| h.offset_field as usize..h.offset_end as usize)
                .collect();
            let header_start = part
                .headers
                .first()
                .map_or(part.offset_header as usize, |h| h.offset_field as usize);
            let header_end = part
                .headers
                .last()
                .map_or(part.offset_header as usize, |h| h.offset_end as usize);
            let body = part.offset_body as usize..part.offset_end as usize;
            raw.get(body.clone())?;
            let encoding = match part.encoding {
                Encoding::Base64 => TransferEncoding::Base64,
                Encoding::QuotedPrintable => TransferEncoding::QuotedPrintable,
                Encoding::None => TransferEncoding::Identity,
            };
            let text = match &part.body {
                PartType::Text(text) | PartType::Html(text) => Some(text.to_string()),
                _ => None,
            };
            Some(MimeLeaf {
                content_type,
                attachment: part.attachment_name().is_some()
                    || part
                        .content_disposition()
                        .is_some_and(|cd| cd.c_type.eq_ignore_ascii_case("attachment")),
                header: header_start..header_end,
                content_fields,
                body,
                encoding,
                text,
                content: match &part.body {
                    PartType::Message(_) => raw
                        .get(part.offset_body as usize..part.offset_end as usize)
                        .unwrap_or_default()
                        .to_vec(),
                    _ => part.contents().to_vec(),
                },
            })
        })
        .collect()
}

/// Unfolds a raw header value (RFC 5322 §2.2.3: delete the CRLF, keep the whitespace),
/// decodes RFC 2047 encoded-words and trims the ends.
fn header_value(raw: &[u8]) -> String {
    let unfolded: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let text = String::from_utf8_lossy(&unfolded);
    let text = text.trim();
    if text.contains("=?") {
        decode_encoded_words(text)
    } else {
        text.to_string()
    }
}

/// RFC 2047: replaces each `=?charset?enc?text?=` by its UTF-8 text; whitespace between two
/// adjacent encoded-words is dropped (§6.2). Malformed words stay as they are.
fn decode_encoded_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        let mut stream = MessageStream::new(&candidate.as_bytes()[1..]);
        match stream.decode_rfc2047() {
            Some(decoded) => {
                let between_words = last_was_word && before.chars().all(char::is_whitespace);
                if !between_words {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                last_was_word = true;
                rest = &candidate[1 + stream.offset()..];
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                last_was_word = false;
                rest = &candidate[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn unfolds_without_collapsing_whitespace() {
        assert_eq!(
            header_value(b" v=1;\r\n\t d=example.com;\r\n"),
            "v=1;\t d=example.com;"
        );
    }

    #[test]
    fn decodes_encoded_words() {
        assert_eq!(header_value(b" =?UTF-8?B?w6l0w6k=?=\r\n"), "été");
        assert_eq!(
            header_value(b" Re: =?ISO-8859-1?Q?caf=E9?= =?UTF-8?Q?_ol=C3=A9?= ok\r\n"),
            "Re: café olé ok"
        );
        assert_eq!(header_value(b" a =?bogus b\r\n"), "a =?bogus b");
    }

    #[test]
    fn bodies_and_attachments() {
        let raw = b"From: a@example.com\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--b\r\nContent-Type: application/octet-stream; name=\"f.bin\"\r\nContent-Disposition: attachment; filename=\"f.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";
        let parsed = ParsedMessage::parse(raw);
        assert_eq!(parsed.plain.as_deref(), Some("hello"));
        assert_eq!(parsed.html.as_deref(), Some("<p>hello</p>"));
        assert_eq!(parsed.attachments.len(), 1);
        assert_eq!(parsed.attachments[0].file_name, "f.bin");
        assert_eq!(parsed.attachments[0].content, vec![0, 1, 2]);
        assert_eq!(parsed.header("subject"), Some("hi"));
    }

    #[test]
    fn forwarded_message_is_decoded() {
        let forwarded = b"Subject: inner\r\n\r\nhello\r\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(forwarded);
        let raw = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: as sent\r\n\r\nhi\r\n--b--\r\n"
        );
        let parsed = ParsedMessage::parse(raw.as_bytes());
        assert_eq!(parsed.attachments.len(), 2);
        assert_eq!(parsed.attachments[0].content, forwarded);
        assert_eq!(parsed.attachments[1].content, b"Subject: as sent\r\n\r\nhi");
    }

    #[test]
    fn html_only_has_no_plain() {
        let parsed = ParsedMessage::parse(b"Content-Type: text/html\r\n\r\n<b>x</b>\r\n");
        assert_eq!(parsed.plain, None);
        assert_eq!(parsed.html.as_deref(), Some("<b>x</b>\r\n"));
        assert!(parsed.attachments.is_empty());
    }

    #[test]
    fn html_text_drops_markup_and_decodes_entities() {
        let parsed = ParsedMessage::parse(
            b"Content-Type: text/html\r\n\r\n<html><head><title>t</title><style>p{}</style></head><body><p>Caf&eacute; &amp; <b>bar</b></p><!-- note --><script>x()</script>Line<br>two &#x2713;</body></html>\r\n",
        );
        assert_eq!(
            parsed.html_text().as_deref(),
            Some("Caf\u{e9} & bar\nLine\ntwo \u{2713}")
        );
        assert_eq!(parsed.text(), parsed.html_text());
        assert_eq!(ParsedMessage::default().html_text(), None);
    }

    #[test]
    fn html_text_of_hostile_html_is_one_pass() {
        // 200,000 levels of nesting, unclosed tags, an unterminated comment and entity: each
        // is a linear scan, not a stack or a backtrack.
        let nested = format!(
            "{}deep{}",
            "<div>".repeat(200_000),
            "</div>".repeat(200_000)
        );
        let message = |html: String| ParsedMessage {
            html: Some(html),
            ..ParsedMessage::default()
        };
        assert_eq!(message(nested).html_text().as_deref(), Some("deep"));
        for hostile in [
            "<".repeat(300_000),
            "<b ".repeat(100_000),
            format!("text<!--{}", "-".repeat(100_000)),
            format!("x &{}", "a".repeat(100_000)),
            "&#xFFFFFFFFFF; &#0; &#55296; \u{e9}&\u{e9};".to_string(),
        ] {
            let _ = message(hostile).html_text();
        }
    }

    #[test]
    fn a_mail_parser_panic_leaves_the_message_unparsed() {
        // mail-parser 1.0.1's corpus, malformed/023.eml: 0.11.9 panics ("Invalid part ID").
        let raw = b"d\nContent-Type:multipart;boundary=b5\n\n--b5Content-Type:message/rfc822\n\n5\nContent-Type:message/rfc822\n\n\n--b5--";
        let parsed = ParsedMessage::parse(raw);
        assert_eq!(
            parsed.plain.as_deref(),
            Some(std::str::from_utf8(raw).unwrap())
        );
        assert!(parsed.headers.is_empty() && parsed.attachments.is_empty());
    }

    #[test]
    fn leaves_are_located_in_the_raw_message() {
        let raw = b"Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=E9</p>\r\n--b--\r\n";
        let leaves = mime_leaves(raw);
        assert_eq!(leaves.len(), 2);
        let html = &leaves[1];
        assert_eq!(html.content_type, "text/html");
        assert_eq!(html.encoding, TransferEncoding::QuotedPrintable);
        assert_eq!(html.text.as_deref(), Some("<p>café</p>"));
        assert_eq!(&raw[html.body.clone()], b"<p>caf=E9</p>");
        assert_eq!(
            &raw[html.header.clone()],
            &b"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n"[..]
        );
        assert_eq!(html.content_fields.len(), 2);
        assert_eq!(&raw[leaves[0].body.clone()], b"plain");
        let single = b"Subject: y\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n";
        let leaves = mime_leaves(single);
        assert_eq!(leaves.len(), 1);
        assert_eq!(
            &single[leaves[0].content_fields[0].clone()],
            b"Content-Type: text/html\r\n"
        );
        assert_eq!(&single[leaves[0].body.clone()], b"<b>x</b>\r\n");
    }

    #[test]
    fn garbage_still_parses() {
        for input in [
            &b""[..],
            b"\xff\xfe\x00",
            b"no headers at all",
            b"A: b\r\n\r\n--x",
        ] {
            let _ = ParsedMessage::parse(input);
        }
    }
}
