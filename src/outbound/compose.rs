//! The send API's request (contract §6.2) and its composition into the RFC 5322 bytes that go
//! into the queue: pure functions, no I/O.
//!
//! A JSON message is built with mail-builder (`from`, `to`, `cc`, `subject`, `plain`,
//! `html`, `markdown` rendered with pulldown-cmark, `headers`, `attachments`); the MIME tree
//! is ours (`body_tree`): an attachment with a `content_id` is an inline part, named like
//! any attachment, in a `multipart/related` with the HTML it is shown in. A `raw` message
//! goes through `raw_message::check` (the rules SMTP submission applies: one `From` mailbox
//! and any `Sender` allowed for the credential, header syntax, `Bcc` removed), its `To` and
//! `From` must name the request's, and its `Subject` is replaced when the request has one;
//! otherwise it is kept as given.
//! `from`, `to`, `cc` and `headers` values with control characters are refused, so the 202
//! echo is always what is delivered; so is a `content_id` that is not one word, which would
//! otherwise add fields to its part.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use serde::Deserialize;

use super::Credential;
use super::raw_message::{self, RawError};
use crate::mail::address::{Mailbox, domain_of, normalise_address, parse_mailboxes, valid_address};
use crate::mail::fields::{find_header_end, without_fields};
use crate::store::Priority;

/// At most this many recipients (`to` + `cc`) per message (contract §6.1).
pub const MAX_RECIPIENTS: usize = 20;
/// At most this many bytes per message, encoding included (contract §6.1).
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// Attachment extensions refused (contract §6.1).
pub const BLOCKED_EXTENSIONS: &[&str] = &[
    "vbs", "exe", "bin", "bat", "chm", "com", "hta", "pif", "reg", "vbe", "vba", "msc", "msi",
];

/// Header fields the request's `headers` may not set: the message's structure and the
/// fields the other request fields own.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "return-path",
    "dkim-signature",
];

/// `"a"` or `["a", "b"]`: both clients' forms of a list (contract §6.2, §6.4).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(text) => vec![text],
            OneOrMany::Many(items) => items,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AttachmentRequest {
    pub file_name: Option<String>,
    /// Base64.
    pub content: Option<String>,
    pub content_type: Option<String>,
    /// Marks the part inline, referenced from the HTML as `cid:<content_id>`.
    pub content_id: Option<String>,
}

/// `POST /api/v0.1/{username}/messages`: the union of `Message` and `RawMessage`.
/// Unknown fields are ignored, as upstream does; `bcc` is refused (contract §6.1).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct SendRequest {
    pub from: Option<String>,
    pub to: Option<OneOrMany>,
    pub cc: Option<OneOrMany>,
    pub bcc: Option<serde_json::Value>,
    pub subject: Option<String>,
    pub plain: Option<String>,
    pub html: Option<String>,
    pub markdown: Option<String>,
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    pub priority: Option<String>,
    pub tags: Option<OneOrMany>,
    pub test_mode: Option<bool>,
    pub attachments: Option<Vec<AttachmentRequest>>,
    pub raw: Option<String>,
    /// Postern's own: open tracking for this message (default: the credential's).
    pub track_opens: Option<bool>,
    /// Postern's own: click tracking for this message (default: the credential's).
    pub track_clicks: Option<bool>,
    /// Postern's own: deliver only over STARTTLS with a verified certificate, else defer
    /// and finally give up (never in clear).
    pub require_tls: Option<bool>,
}

/// Why a request cannot become a message: each is a 422 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("from is required")]
    MissingFrom,
    #[error("from must be one address, like \"Name <user@example.com>\"")]
    BadFrom,
    #[error("to is required")]
    MissingTo,
    #[error("{field} contains something that is not an address: {value:?}")]
    BadRecipient { field: &'static str, value: String },
    #[error("at most {MAX_RECIPIENTS} recipients (to + cc) per message")]
    TooManyRecipients,
    #[error("bcc is not supported")]
    Bcc,
    #[error("body not found: give plain, html, markdown or raw")]
    NoBody,
    #[error("priority must be standard, priority or digest")]
    BadPriority,
    #[error("header {0:?} cannot be set through headers")]
    ReservedHeader(String),
    #[error(
        "header {0:?} is not a valid header name, or its value is not a string or array of strings"
    )]
    BadHeader(String),
    #[error("attachment {index}: {problem}")]
    BadAttachment { index: usize, problem: String },
    #[error("attachments with the extension .{0} are not allowed")]
    BlockedAttachment(String),
    #[error("{field} contains a control character (a line break, tab or NUL): give addresses only")]
    ControlCharacter { field: &'static str },
    #[error("raw: {0}")]
    BadRaw(&'static str),
    #[error("raw: {0}")]
    Raw(#[from] RawError),
    #[error("the message is larger than {} MB", MAX_MESSAGE_SIZE / 1024 / 1024)]
    TooLarge,
}

/// A request made into a message, ready to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub from: Mailbox,
    /// `to` as given, one entry per address (the echo's `to`).
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Envelope recipients: the addresses of `to` and `cc`, duplicates removed.
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub tags: Vec<String>,
    pub priority: Priority,
    pub test_mode: bool,
    pub raw: Vec<u8>,
    /// `None`: the credential's setting.
    pub track_opens: Option<bool>,
    pub track_clicks: Option<bool>,
    /// Only over verified TLS.
    pub require_tls: bool,
}

/// Splits `tags` as given (a comma-separated string or an array) into trimmed tags.
pub fn split_tags(tags: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        for part in tag.split(',') {
            let part = part.trim();
            if !part.is_empty() && !out.iter().any(|seen| seen == part) {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// The request's addresses: `from`, `to` and `cc` as echoed, their mailboxes, and the
/// envelope recipients they make.
struct Parties {
    from: Mailbox,
    to: Vec<String>,
    to_boxes: Vec<Mailbox>,
    cc: Vec<String>,
    cc_boxes: Vec<Mailbox>,
    envelope: Vec<String>,
}

/// Validates the request and builds the message. A built message's `Message-ID` is
/// `<uuid@the From domain>` (a raw message keeps its own); `date` is its `Date` (Unix
/// seconds). A `raw` message must pass [`raw_message::check`] for `credential`, the check
/// SMTP submission applies.
pub fn compose(
    mut request: SendRequest,
    credential: &Credential,
    uuid: &str,
    date: i64,
) -> Result<Composed, ComposeError> {
    let parties = parties(&mut request)?;
    let priority = match request.priority.as_deref() {
        None | Some("") => Priority::Standard,
        Some(name) => Priority::from_name(name).ok_or(ComposeError::BadPriority)?,
    };
    let tags = split_tags(
        request
            .tags
            .take()
            .map(OneOrMany::into_vec)
            .unwrap_or_default(),
    );
    let subject = request.subject.take().filter(|s| !s.is_empty());
    let raw = match request.raw.take() {
        Some(raw) => compose_raw(raw, credential, &parties, subject.as_deref())?,
        None => build(&mut request, &parties, subject.as_deref(), uuid, date)?,
    };
    if raw.len() > MAX_MESSAGE_SIZE {
        return Err(ComposeError::TooLarge);
    }
    Ok(Composed {
        from: parties.from,
        to: parties.to,
        cc: parties.cc,
        recipients: parties.envelope,
        subject,
        tags,
        priority,
        test_mode: request.test_mode.unwrap_or(false),
        raw,
        track_opens: request.track_opens,
        track_clicks: request.track_clicks,
        require_tls: request.require_tls.unwrap_or(false),
    })
}

/// `from`, `to` and `cc` checked (no control characters: a line break would let the text
/// say one recipient and the message name another), `bcc` refused, at most
/// [`MAX_RECIPIENTS`].
fn parties(request: &mut SendRequest) -> Result<Parties, ComposeError> {
    if request.bcc.is_some() {
        return Err(ComposeError::Bcc);
    }
    let from_text = request.from.take().ok_or(ComposeError::MissingFrom)?;
    if has_control(&from_text) {
        return Err(ComposeError::ControlCharacter { field: "from" });
    }
    let from = single_mailbox(&from_text).ok_or(ComposeError::BadFrom)?;
    let (to, to_boxes) = recipients("to", request.to.take())?;
    if to.is_empty() {
        return Err(ComposeError::MissingTo);
    }
    let (cc, cc_boxes) = recipients("cc", request.cc.take())?;
    let mut envelope: Vec<String> = Vec::new();
    for mailbox in to_boxes.iter().chain(&cc_boxes) {
        let address = normalise_address(&mailbox.address);
        if !envelope.contains(&address) {
            envelope.push(address);
        }
    }
    if envelope.len() > MAX_RECIPIENTS {
        return Err(ComposeError::TooManyRecipients);
    }
    Ok(Parties {
        from,
        to,
        to_boxes,
        cc,
        cc_boxes,
        envelope,
    })
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// A JSON message made into MIME by mail-builder.
fn build(
    request: &mut SendRequest,
    parties: &Parties,
    subject: Option<&str>,
    uuid: &str,
    date: i64,
) -> Result<Vec<u8>, ComposeError> {
    if request.plain.is_none() && request.html.is_none() && request.markdown.is_none() {
        return Err(ComposeError::NoBody);
    }
    let mut builder = MessageBuilder::new()
        .from(address_of(&parties.from))
        .to(Address::new_list(
            parties.to_boxes.iter().map(address_of).collect(),
        ))
        .message_id(format!("{uuid}@{}", domain_of(&parties.from.address)))
        .date(date);
    if !parties.cc_boxes.is_empty() {
        builder = builder.cc(Address::new_list(
            parties.cc_boxes.iter().map(address_of).collect(),
        ));
    }
    if let Some(subject) = subject {
        builder = builder.subject(subject.to_string());
    }
    for (name, values) in headers(request.headers.take())? {
        for value in values {
            builder = builder.header(name.clone(), HeaderType::Raw(Raw::new(value)));
        }
    }
    let html = match (request.html.take(), &request.markdown) {
        (Some(html), _) => Some(html),
        (None, Some(markdown)) => Some(render_markdown(markdown)),
        (None, None) => None,
    };
    // Markdown is readable as it is: it is the plain part when there is no other.
    let plain = request.plain.take().or(request.markdown.take());
    let (mut inline, mut attached) = (Vec::new(), Vec::new());
    let attachments = request.attachments.take().unwrap_or_default();
    for (index, attachment) in attachments.into_iter().enumerate() {
        let part = attachment_part(index, attachment)?;
        match part.content_id.is_some() {
            true => inline.push(part.into_mime()),
            false => attached.push(part.into_mime()),
        }
    }
    Ok(builder
        .body(body_tree(plain, html, inline, attached))
        .write_to_vec()
        .expect("writing to a Vec cannot fail"))
}

/// The MIME tree of a composed message (RFC 2046, RFC 2387): the bodies, as
/// `multipart/alternative` when there are both; with the inline parts beside them in a
/// `multipart/related` when there is HTML to show them (else they go with the attachments);
/// then the attachments, all in a `multipart/mixed`. A lone part is the whole body.
fn body_tree(
    plain: Option<String>,
    html: Option<String>,
    inline: Vec<MimePart<'static>>,
    attached: Vec<MimePart<'static>>,
) -> MimePart<'static> {
    let has_html = html.is_some();
    let bodies = match (plain, html) {
        (Some(plain), Some(html)) => Some(MimePart::new(
            "multipart/alternative",
            vec![
                MimePart::new("text/plain", plain),
                MimePart::new("text/html", html),
            ],
        )),
        (plain, html) => (plain.map(|text| MimePart::new("text/plain", text)))
            .or(html.map(|html| MimePart::new("text/html", html))),
    };
    let (related, loose) = match has_html {
        true => (inline, Vec::new()),
        false => (Vec::new(), inline),
    };
    let bodies = match bodies {
        Some(root) if !related.is_empty() => {
            // RFC 2387 §3.1: `type` names the root, the part the others are resources of.
            let root_type = match &root.contents {
                BodyPart::Multipart(_) => "multipart/alternative",
                _ => "text/html",
            };
            let related_type = ContentType::new("multipart/related").attribute("type", root_type);
            let parts = std::iter::once(root).chain(related).collect::<Vec<_>>();
            Some(MimePart::new(related_type, parts))
        }
        bodies => bodies,
    };
    let mut parts: Vec<MimePart<'static>> =
        bodies.into_iter().chain(loose).chain(attached).collect();
    match parts.len() {
        1 => parts.remove(0),
        _ => MimePart::new("multipart/mixed", parts),
    }
}

fn single_mailbox(text: &str) -> Option<Mailbox> {
    let mut boxes = parse_mailboxes(text);
    (boxes.len() == 1 && valid_address(&boxes[0].address)).then(|| boxes.remove(0))
}

/// The entries of `to` or `cc` (each entry may itself be a comma-separated list) as echoed,
/// and their mailboxes.
fn recipients(
    field: &'static str,
    value: Option<OneOrMany>,
) -> Result<(Vec<String>, Vec<Mailbox>), ComposeError> {
    let mut shown = Vec::new();
    let mut boxes = Vec::new();
    for entry in value.map(OneOrMany::into_vec).unwrap_or_default() {
        if entry.trim().is_empty() {
            continue;
        }
        if has_control(&entry) {
            return Err(ComposeError::ControlCharacter { field });
        }
        let parsed = parse_mailboxes(&entry);
        if parsed.is_empty() || parsed.iter().any(|m| !valid_address(&m.address)) {
            return Err(ComposeError::BadRecipient {
                field,
                value: entry,
            });
        }
        if parsed.len() == 1 {
            shown.push(entry.trim().to_string());
        } else {
            shown.extend(parsed.iter().map(ToString::to_string));
        }
        boxes.extend(parsed);
    }
    Ok((shown, boxes))
}

fn address_of(mailbox: &Mailbox) -> Address<'static> {
    Address::new_address(mailbox.name.clone(), mailbox.address.clone())
}

/// The request's `headers`: names checked, values a string or an array of strings.
fn headers(
    map: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<Vec<(String, Vec<String>)>, ComposeError> {
    let mut out = Vec::new();
    for (name, value) in map.unwrap_or_default() {
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !valid_name {
            return Err(ComposeError::BadHeader(name));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ComposeError::ReservedHeader(name));
        }
        let values = match value {
            serde_json::Value::String(text) => vec![text],
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(text) => Ok(text),
                    _ => Err(ComposeError::BadHeader(name.clone())),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(ComposeError::BadHeader(name)),
        };
        // A line break in a value would start a header of the sender's choosing; a NUL or
        // another control character has no place in a header either (tab may fold).
        if values
            .iter()
            .any(|v| v.chars().any(|c| c.is_control() && c != '\t'))
        {
            return Err(ComposeError::BadHeader(name));
        }
        out.push((name, values));
    }
    Ok(out)
}

/// One attachment of the request, checked.
struct AttachmentPart {
    content_type: String,
    file_name: String,
    bytes: Vec<u8>,
    /// Without angle brackets; makes the part inline.
    content_id: Option<String>,
}

impl AttachmentPart {
    /// An attachment names its file in `Content-Disposition`; an inline part is named in
    /// `Content-Type` (`name`) too, as mail clients read either, and has its `Content-ID`.
    fn into_mime(self) -> MimePart<'static> {
        let AttachmentPart {
            content_type,
            file_name,
            bytes,
            content_id,
        } = self;
        match content_id {
            None => MimePart::new(content_type, bytes).attachment(file_name),
            Some(id) => {
                let content_type =
                    ContentType::new(content_type).attribute("name", file_name.clone());
                let disposition = ContentType::new("inline").attribute("filename", file_name);
                MimePart::new(content_type, bytes)
                    .header("Content-Disposition", disposition)
                    .cid(id)
            }
        }
    }
}

fn attachment_part(
    index: usize,
    attachment: AttachmentRequest,
) -> Result<AttachmentPart, ComposeError> {
    let problem = |problem: &str| ComposeError::BadAttachment {
        index,
        problem: problem.to_string(),
    };
    let file_name = attachment
        .file_name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| problem("file_name is required"))?;
    let content = attachment
        .content
        .ok_or_else(|| problem("content is required"))?;
    let content_type = attachment
        .content_type
        .filter(|t| t.contains('/') && !t.contains(['\r', '\n']))
        .ok_or_else(|| problem("content_type is required (like \"image/png\")"))?;
    if let Some((_, extension)) = file_name.rsplit_once('.') {
        let extension = extension.to_ascii_lowercase();
        if BLOCKED_EXTENSIONS.contains(&extension.as_str()) {
            return Err(ComposeError::BlockedAttachment(extension));
        }
    }
    let bytes = STANDARD
        .decode(content.trim())
        .map_err(|_| problem("content is not valid base64"))?;
    let content_id = attachment
        .content_id
        .map(|id| {
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|id| !id.is_empty());
    // mail-builder writes the Content-ID as given: nothing that would end or split it.
    if content_id.as_deref().is_some_and(|id| {
        id.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    }) {
        return Err(problem(
            "content_id must be one word, like \"logo\" (no spaces, angle brackets inside or \
             control characters)",
        ));
    }
    Ok(AttachmentPart {
        content_type,
        file_name,
        bytes,
        content_id,
    })
}

fn render_markdown(markdown: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(markdown, pulldown_cmark::Options::all());
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

/// A raw message: [`raw_message::check`] for the credential (one allowed `From`, `Sender`,
/// header syntax, `Bcc` removed), its `From` and `To` must name the request's addresses,
/// and `Subject` is replaced when the request gives one. The API's envelope is `to` + `cc`:
/// a `Bcc` in `raw` reaches nobody, as `bcc` itself is refused.
fn compose_raw(
    raw: String,
    credential: &Credential,
    parties: &Parties,
    subject: Option<&str>,
) -> Result<Vec<u8>, ComposeError> {
    let raw = raw.into_bytes();
    if find_header_end(&raw).is_none() {
        return Err(ComposeError::BadRaw(
            "no blank line between the header and the body",
        ));
    }
    let checked = raw_message::check(&raw, credential)?;
    if !checked
        .from
        .address
        .eq_ignore_ascii_case(&parties.from.address)
    {
        return Err(ComposeError::BadRaw("its From header must match from"));
    }
    let raw_to = parse_mailboxes(&checked.values("To").join(", "));
    let same_to = parties.to_boxes.len() == raw_to.len()
        && parties.to_boxes.iter().all(|want| {
            raw_to
                .iter()
                .any(|have| have.address.eq_ignore_ascii_case(&want.address))
        });
    if !same_to {
        return Err(ComposeError::BadRaw(
            "its To header must name the addresses of to",
        ));
    }
    let mut out = match subject {
        None => checked.header,
        Some(subject) => with_subject(&checked.header, subject),
    };
    out.extend_from_slice(&raw[checked.header_end..]);
    Ok(out)
}

/// `header` with its `Subject` replaced by `subject` (encoded by mail-builder), first.
fn with_subject(header: &[u8], subject: &str) -> Vec<u8> {
    let subject_header = MessageBuilder::new()
        .subject(subject.to_string())
        .write_to_vec()
        .expect("writing to a Vec cannot fail");
    let mut out = subject_line(&subject_header).to_vec();
    out.extend_from_slice(&without_fields(header, |name| name == "subject"));
    out
}

/// The `Subject:` line (with its folds) of a header mail-builder wrote.
fn subject_line(header: &[u8]) -> &[u8] {
    let text = header;
    let start = find_field(text, "subject").unwrap_or(0);
    let mut end = start;
    loop {
        match text[end..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                end += i + 1;
                if !matches!(text.get(end), Some(b' ' | b'\t')) {
                    return &text[start..end];
                }
            }
            None => return &text[start..],
        }
    }
}

fn find_field(header: &[u8], lower_name: &str) -> Option<usize> {
    let mut at = 0;
    while at < header.len() {
        let rest = &header[at..];
        if rest.len() > lower_name.len()
            && rest[..lower_name.len()].eq_ignore_ascii_case(lower_name.as_bytes())
            && rest[lower_name.len()] == b':'
        {
            return Some(at);
        }
        at += rest.iter().position(|&b| b == b'\n')? + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `compose` for a credential with no sender patterns.
    fn compose(request: SendRequest, uuid: &str, date: i64) -> Result<Composed, ComposeError> {
        super::compose(request, &raw_message::credential_for_tests(&[]), uuid, date)
    }

    fn request(json: serde_json::Value) -> SendRequest {
        serde_json::from_value(json).unwrap()
    }

    fn text(composed: &Composed) -> String {
        String::from_utf8(composed.raw.clone()).unwrap()
    }

    #[test]
    fn a_json_message_becomes_mime_with_every_field() {
        let composed = compose(
            request(serde_json::json!({
                "from": "Sender <sender@example.com>",
                "to": "Recipient <r@example.net>, other@EXAMPLE.org",
                "cc": ["cc@example.net"],
                "subject": "Hello",
                "plain": "plain text",
                "html": "<p>html <img src=\"cid:logo\"></p>",
                "headers": {"X-Agent": ["one", "two"], "Reply-To": "reply@example.com"},
                "tags": "a, b,a",
                "priority": "priority",
                "attachments": [
                    {"file_name": "logo.png", "content": "iVBORw0K", "content_type": "image/png", "content_id": "logo"},
                    {"file_name": "a.txt", "content": "aGVsbG8=", "content_type": "text/plain"}
                ]
            })),
            "1234",
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(
            composed.to,
            ["Recipient <r@example.net>", "other@EXAMPLE.org"]
        );
        assert_eq!(composed.cc, ["cc@example.net"]);
        assert_eq!(
            composed.recipients,
            ["r@example.net", "other@example.org", "cc@example.net"]
        );
        assert_eq!(composed.tags, ["a", "b"]);
        assert_eq!(composed.priority, Priority::Priority);
        let mime = text(&composed);
        for expected in [
            "From: \"Sender\" <sender@example.com>",
            "Subject: Hello",
            "Message-ID: <1234@example.com>",
            "X-Agent: one",
            "X-Agent: two",
            "Reply-To: reply@example.com",
            "Content-ID: <logo>",
            "filename=\"a.txt\"",
            "plain text",
        ] {
            assert!(mime.contains(expected), "missing {expected:?} in\n{mime}");
        }
        // The envelope recipients are read back by a real MIME parser.
        let parsed = crate::mail::message::ParsedMessage::parse(&composed.raw);
        assert_eq!(parsed.plain.as_deref(), Some("plain text"));
        assert_eq!(parsed.attachments.len(), 2);
    }

    /// The MIME tree (`mail::message::mime_outline`) of a message from `from`, to `to`, with
    /// `fields` (bodies and attachments).
    fn outline(fields: serde_json::Value) -> Vec<String> {
        let mut json = serde_json::json!({"from": "a@example.com", "to": "b@example.net"});
        json.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let composed = compose(request(json), "1", 1_700_000_000).unwrap();
        crate::mail::message::mime_outline(&composed.raw)
    }

    const LOGO: &str = "image/png; name=logo.png | inline; filename=logo.png | <logo>";

    fn logo() -> serde_json::Value {
        serde_json::json!({"file_name": "logo.png", "content": "iVBORw0K", "content_type": "image/png", "content_id": "<logo>"})
    }

    fn text_file() -> serde_json::Value {
        serde_json::json!({"file_name": "a.txt", "content": "aGVsbG8=", "content_type": "text/plain"})
    }

    #[test]
    fn inline_parts_go_with_the_html_in_multipart_related_named_like_attachments() {
        let html = "<p><img src=\"cid:logo\"></p>";
        assert_eq!(
            outline(serde_json::json!({
                "plain": "p", "html": html, "attachments": [text_file(), logo()]
            })),
            [
                "multipart/mixed",
                "  multipart/related; type=multipart/alternative",
                "    multipart/alternative",
                "      text/plain",
                "      text/html",
                &format!("    {LOGO}"),
                "  text/plain | attachment; filename=a.txt",
            ]
        );
        // No attachments: no multipart/mixed.
        assert_eq!(
            outline(serde_json::json!({"html": html, "attachments": [logo(), logo()]})),
            [
                "multipart/related; type=text/html",
                "  text/html",
                &format!("  {LOGO}"),
                &format!("  {LOGO}"),
            ]
        );
        // Markdown gives both bodies.
        assert_eq!(
            outline(serde_json::json!({"markdown": "![logo](cid:logo)", "attachments": [logo()]})),
            [
                "multipart/related; type=multipart/alternative",
                "  multipart/alternative",
                "    text/plain",
                "    text/html",
                &format!("  {LOGO}"),
            ]
        );
        // Without HTML nothing shows them: they stay inline parts after the text.
        assert_eq!(
            outline(serde_json::json!({"plain": "p", "attachments": [logo(), text_file()]})),
            [
                "multipart/mixed",
                "  text/plain",
                &format!("  {LOGO}"),
                "  text/plain | attachment; filename=a.txt",
            ]
        );
    }

    #[test]
    fn without_inline_parts_the_tree_is_the_usual_one() {
        for (fields, expected) in [
            (serde_json::json!({"plain": "p"}), &["text/plain"][..]),
            (serde_json::json!({"html": "<p>h</p>"}), &["text/html"][..]),
            (
                serde_json::json!({"plain": "p", "html": "<p>h</p>"}),
                &["multipart/alternative", "  text/plain", "  text/html"][..],
            ),
            (
                serde_json::json!({"plain": "p", "html": "<p>h</p>", "attachments": [text_file()]}),
                &[
                    "multipart/mixed",
                    "  multipart/alternative",
                    "    text/plain",
                    "    text/html",
                    "  text/plain | attachment; filename=a.txt",
                ][..],
            ),
            (
                serde_json::json!({"html": "<p>h</p>", "attachments": [text_file()]}),
                &[
                    "multipart/mixed",
                    "  text/html",
                    "  text/plain | attachment; filename=a.txt",
                ][..],
            ),
        ] {
            assert_eq!(outline(fields.clone()), expected, "{fields}");
        }
    }

    #[test]
    fn an_inline_part_keeps_its_name_and_content_however_it_is_spelt() {
        let composed = compose(
            request(serde_json::json!({
                "from": "a@example.com", "to": "b@example.net", "html": "<img src=\"cid:x\">",
                "attachments": [{"file_name": "caf\u{e9} \"logo\".png", "content": "AAEC",
                                 "content_type": "image/png", "content_id": "x"}]
            })),
            "1",
            1_700_000_000,
        )
        .unwrap();
        let outline = crate::mail::message::mime_outline(&composed.raw);
        let name = "caf\u{e9} \"logo\".png";
        assert_eq!(
            outline[2],
            format!("  image/png; name={name} | inline; filename={name} | <x>")
        );
        let parsed = crate::mail::message::ParsedMessage::parse(&composed.raw);
        let inline = &parsed.attachments[0];
        assert_eq!(
            (inline.file_name.as_str(), inline.content_id.as_deref()),
            (name, Some("<x>"))
        );
        assert_eq!(inline.content, [0, 1, 2]);
        assert_eq!(inline.disposition.as_str(), "inline");
    }

    #[test]
    fn markdown_gives_html_and_plain() {
        let composed = compose(
            request(serde_json::json!({
                "from": "a@example.com", "to": ["b@example.net"], "markdown": "# Title\n\n*hi*"
            })),
            "uuid",
            0,
        )
        .unwrap();
        let parsed = crate::mail::message::ParsedMessage::parse(&composed.raw);
        assert!(parsed.html.unwrap().contains("<h1>Title</h1>"));
        assert_eq!(
            parsed.plain.unwrap().replace("\r\n", "\n"),
            "# Title\n\n*hi*"
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let base =
            serde_json::json!({"from": "a@example.com", "to": "b@example.net", "plain": "x"});
        let with = |key: &str, value: serde_json::Value| {
            let mut json = base.clone();
            json[key] = value;
            compose(request(json), "uuid", 0).unwrap_err()
        };
        assert_eq!(
            compose(
                request(serde_json::json!({"from": "a@example.com", "to": "b@example.net"})),
                "uuid",
                0
            )
            .unwrap_err()
            .to_string(),
            "body not found: give plain, html, markdown or raw"
        );
        assert_eq!(
            with("from", serde_json::json!("nobody")),
            ComposeError::BadFrom
        );
        assert_eq!(with("to", serde_json::json!([])), ComposeError::MissingTo);
        assert!(matches!(
            with("to", serde_json::json!("not an address")),
            ComposeError::BadRecipient { .. }
        ));
        assert_eq!(
            with("bcc", serde_json::json!("c@example.net")),
            ComposeError::Bcc
        );
        assert_eq!(
            with("priority", serde_json::json!("urgent")),
            ComposeError::BadPriority
        );
        let many: Vec<String> = (0..21).map(|i| format!("r{i}@example.net")).collect();
        assert_eq!(
            with("to", serde_json::json!(many)),
            ComposeError::TooManyRecipients
        );
        assert_eq!(
            with("headers", serde_json::json!({"From": "x@y.z"})),
            ComposeError::ReservedHeader("From".into())
        );
        assert_eq!(
            with(
                "headers",
                serde_json::json!({"X-A": "one\r\nBcc: evil@x.y"})
            ),
            ComposeError::BadHeader("X-A".into())
        );
        assert_eq!(
            with(
                "attachments",
                serde_json::json!([{"file_name": "run.EXE", "content": "", "content_type": "application/octet-stream"}])
            ),
            ComposeError::BlockedAttachment("exe".into())
        );
        assert!(matches!(
            with(
                "attachments",
                serde_json::json!([{"file_name": "a.txt", "content": "!!", "content_type": "text/plain"}])
            ),
            ComposeError::BadAttachment { index: 0, .. }
        ));
        // A Content-ID is written as given: a line break would add fields to the part.
        for content_id in ["x>\r\nContent-Type: text/html\r\n<y", "two words", "a<b"] {
            let attachment = serde_json::json!([{"file_name": "a.png", "content": "",
                "content_type": "image/png", "content_id": content_id}]);
            assert_eq!(
                with("attachments", attachment).to_string(),
                "attachment 0: content_id must be one word, like \"logo\" (no spaces, \
                 angle brackets inside or control characters)",
                "{content_id:?}"
            );
        }
    }

    #[test]
    fn control_characters_in_address_fields_are_refused_naming_the_field() {
        let base =
            serde_json::json!({"from": "a@example.com", "to": "b@example.net", "plain": "x"});
        for (key, value, field) in [
            (
                "to",
                serde_json::json!("x@sink.test\r\nBcc: spy@sink.test"),
                "to",
            ),
            (
                "to",
                serde_json::json!(["ok@sink.test", "x@sink.test\n"]),
                "to",
            ),
            ("cc", serde_json::json!("c@sink.test\u{0}"), "cc"),
            (
                "from",
                serde_json::json!("a@example.com\r\nSender: b@example.com"),
                "from",
            ),
        ] {
            let mut json = base.clone();
            json[key] = value;
            assert_eq!(
                compose(request(json), "uuid", 0).unwrap_err(),
                ComposeError::ControlCharacter { field },
                "{key}"
            );
        }
        let mut json = base.clone();
        json["headers"] = serde_json::json!({"Reply-To": "r@example.com\u{0}"});
        assert_eq!(
            compose(request(json), "uuid", 0).unwrap_err(),
            ComposeError::BadHeader("Reply-To".into())
        );
    }

    #[test]
    fn raw_goes_through_the_submission_check() {
        let limited = raw_message::credential_for_tests(&["alerts@send.test"]);
        let send = |raw: &str| {
            let json =
                serde_json::json!({"from": "alerts@send.test", "to": "b@example.net", "raw": raw});
            super::compose(request(json), &limited, "uuid", 0)
        };
        assert_eq!(
            send("From: alerts@send.test\r\nFrom: ceo@send.test\r\nTo: b@example.net\r\n\r\nx"),
            Err(ComposeError::Raw(RawError::BadFrom))
        );
        assert_eq!(
            send("From: ceo@send.test, alerts@send.test\r\nTo: b@example.net\r\n\r\nx"),
            Err(ComposeError::Raw(RawError::BadFrom))
        );
        let composed =
            send("From: alerts@send.test\r\nTo: b@example.net\r\nBcc: spy@sink.test\r\n\r\nx")
                .unwrap();
        assert_eq!(
            text(&composed),
            "From: alerts@send.test\r\nTo: b@example.net\r\n\r\nx"
        );
        assert_eq!(composed.recipients, ["b@example.net"]);
    }

    #[test]
    fn raw_messages_are_checked_and_their_subject_replaced() {
        let raw = "From: A <a@example.com>\r\nTo: b@example.net\r\nSubject: old\r\n \tfolded\r\n\r\nbody\r\n";
        let composed = compose(
            request(serde_json::json!({
                "from": "a@example.com", "to": "b@example.net", "raw": raw, "subject": "new"
            })),
            "uuid",
            0,
        )
        .unwrap();
        let out = text(&composed);
        assert!(
            out.starts_with(
                "Subject: new\r\nFrom: A <a@example.com>\r\nTo: b@example.net\r\n\r\nbody"
            ),
            "{out}"
        );
        let unchanged = compose(
            request(
                serde_json::json!({"from": "a@example.com", "to": "b@example.net", "raw": raw}),
            ),
            "uuid",
            0,
        )
        .unwrap();
        assert_eq!(unchanged.raw, raw.as_bytes());
        let mismatch = compose(
            request(
                serde_json::json!({"from": "a@example.com", "to": "c@example.net", "raw": raw}),
            ),
            "uuid",
            0,
        )
        .unwrap_err();
        assert!(matches!(mismatch, ComposeError::BadRaw(_)));
    }
}
