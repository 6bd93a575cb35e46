//! Open and click tracking (contract §6.12): the rewriting of a recipient's copy before it is
//! signed, and the signed tokens the tracking routes (`/t/o/{token}`, `/t/c/{token}`) read.
//!
//! [`instrument`] is a pure function over the message bytes. Only `text/html` leaf parts
//! that are not attachments change; every other byte of the message stays as it was. Such
//! a part is decoded (transfer encoding and charset), gets the open pixel before its last
//! `</body>` and its `http(s)` links (`href` of `<a>` and `<area>`) pointed at the click
//! route, and is written back as UTF-8 in quoted-printable (base64 if it was base64), its
//! `Content-Type` and `Content-Transfer-Encoding` fields replaced. `mailto:`, `cid:`,
//! anchors and relative links stay as they are.
//!
//! A token is `base64url(data).base64url(mac)`: the data (kind, message UUID, recipient,
//! and the link for clicks) travels in the URL, so no table of links is kept, and the mac
//! (HMAC-SHA256 with the instance's `tracking_key`, first 128 bits) makes any other token
//! a 404 — the click route never redirects to a URL it did not sign. The recipient's
//! address is readable in the token (it is theirs).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use mail_builder::encoders::{Base64Encoder, QuotedPrintableEncoder};
use sha2::Sha256;

use super::Outbound;
use crate::mail::message::{TransferEncoding, mime_leaves};
use crate::store::{Engagement, StoreError};

/// The same open, or click on the same link, by the same recipient within this many
/// seconds is recorded once (image proxies and double clicks would repeat it).
pub const REPEAT_WINDOW_SECS: i64 = 60;

/// Bytes of the HMAC kept in a token.
const MAC_LEN: usize = 16;

/// What a tracking URL records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackKind {
    Open,
    /// A click on this link (as the HTML had it, entities decoded).
    Click(String),
}

impl TrackKind {
    /// The event kind (contract §6.8).
    pub fn event(&self) -> &'static str {
        match self {
            TrackKind::Open => "open",
            TrackKind::Click(_) => "click",
        }
    }

    /// The letter of the route: `/t/o/…` or `/t/c/…`.
    pub fn letter(&self) -> char {
        match self {
            TrackKind::Open => 'o',
            TrackKind::Click(_) => 'c',
        }
    }
}

/// The data a valid token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub message_uuid: String,
    pub recipient: String,
    pub kind: TrackKind,
}

/// The token for `tracked`, signed with `key`.
pub fn sign(key: &[u8], tracked: &Tracked) -> String {
    let mut data = format!(
        "{}\n{}\n{}",
        tracked.kind.letter(),
        tracked.message_uuid,
        tracked.recipient
    );
    if let TrackKind::Click(url) = &tracked.kind {
        data.push('\n');
        data.push_str(url);
    }
    let tag = mac(key, data.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(data),
        URL_SAFE_NO_PAD.encode(&tag[..MAC_LEN])
    )
}

/// The data of `token` when `key` signed it; `None` for anything else.
pub fn verify(key: &[u8], token: &str) -> Option<Tracked> {
    let (data, tag) = token.split_once('.')?;
    let data = URL_SAFE_NO_PAD.decode(data).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if tag.len() != MAC_LEN {
        return None;
    }
    let mut check = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    check.update(&data);
    check.verify_truncated_left(&tag).ok()?;
    let data = String::from_utf8(data).ok()?;
    let mut fields = data.splitn(4, '\n');
    let letter = fields.next()?;
    let message_uuid = fields.next()?.to_string();
    let recipient = fields.next()?.to_string();
    let kind = match (letter, fields.next()) {
        ("o", None) => TrackKind::Open,
        ("c", Some(url)) => TrackKind::Click(url.to_string()),
        _ => return None,
    };
    Some(Tracked {
        message_uuid,
        recipient,
        kind,
    })
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The message with its HTML parts instrumented (see the module comment). `base_url` is
/// the public base of the tracking routes, without a trailing `/`; `token` makes the token
/// of each open pixel and link.
pub fn instrument(
    raw: &[u8],
    opens: bool,
    clicks: bool,
    base_url: &str,
    token: impl Fn(&TrackKind) -> String,
) -> Vec<u8> {
    if !opens && !clicks {
        return raw.to_vec();
    }
    let base_url = base_url.trim_end_matches('/');
    // (range to replace, replacement), applied from the end so earlier ranges stay valid.
    let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    for leaf in mime_leaves(raw) {
        if leaf.content_type != "text/html" || leaf.attachment {
            continue;
        }
        let Some(html) = leaf.text.as_deref() else {
            continue;
        };
        let mut changed = html.to_string();
        if clicks {
            changed = rewrite_links(&changed, |url| {
                let lower = url.trim_start().to_ascii_lowercase();
                (lower.starts_with("http://") || lower.starts_with("https://")).then(|| {
                    format!(
                        "{base_url}/t/c/{}",
                        token(&TrackKind::Click(url.trim().to_string()))
                    )
                })
            });
        }
        if opens {
            let pixel = format!(
                "<img src=\"{base_url}/t/o/{}\" width=\"1\" height=\"1\" alt=\"\">",
                token(&TrackKind::Open)
            );
            match rfind_ignore_case(&changed, "</body>") {
                Some(at) => changed.insert_str(at, &pixel),
                None => changed.push_str(&pixel),
            }
        }
        if changed == html {
            continue;
        }
        let (encoding, body) = match leaf.encoding {
            TransferEncoding::Base64 => (
                "base64",
                Base64Encoder::new()
                    .wrap_lines()
                    .encode(changed.as_bytes())
                    .expect("encoding into memory does not fail"),
            ),
            _ => (
                "quoted-printable",
                QuotedPrintableEncoder::new()
                    .preserve_line_breaks()
                    .encode(changed.as_bytes())
                    .expect("encoding into memory does not fail"),
            ),
        };
        for field in &leaf.content_fields {
            edits.push((field.clone(), Vec::new()));
        }
        let fields = format!(
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n"
        );
        edits.push((leaf.header.end..leaf.header.end, fields.into_bytes()));
        edits.push((leaf.body.clone(), body));
    }
    edits.sort_by_key(|edit| std::cmp::Reverse((edit.0.start, edit.0.end)));
    let mut out = raw.to_vec();
    for (range, replacement) in edits {
        out.splice(range, replacement);
    }
    out
}

impl Outbound {
    /// The instance's tracking key, made (256 random bits) and stored on first use.
    async fn tracking_key(&self) -> Result<&[u8], StoreError> {
        self.tracking_key
            .get_or_try_init(|| async {
                let mut fresh = vec![0u8; 32];
                getrandom::fill(&mut fresh).expect("the operating system provides random bytes");
                self.store.instance_secret("tracking_key", fresh).await
            })
            .await
            .map(Vec::as_slice)
    }

    /// One recipient's copy of a message, instrumented for tracking (see [`instrument`];
    /// `opens`/`clicks` are the message's `track_opens`/`track_clicks`). The delivery worker
    /// calls it just before DKIM signing. Should the key not be readable, the copy goes out
    /// untracked (logged): tracking never stops a delivery.
    pub async fn instrument_for(
        &self,
        message_uuid: &str,
        recipient: &str,
        raw: &[u8],
        opens: bool,
        clicks: bool,
    ) -> Vec<u8> {
        if !opens && !clicks {
            return raw.to_vec();
        }
        let key = match self.tracking_key().await {
            Ok(key) => key.to_vec(),
            Err(error) => {
                tracing::error!(%error, message_uuid, "no tracking key; sending without tracking");
                return raw.to_vec();
            }
        };
        let (uuid, recipient) = (message_uuid.to_string(), recipient.to_string());
        let (raw, base) = (raw.to_vec(), self.tracking_url.clone());
        let fallback = raw.clone();
        tokio::task::spawn_blocking(move || {
            instrument(&raw, opens, clicks, &base, |kind| {
                sign(
                    &key,
                    &Tracked {
                        message_uuid: uuid.clone(),
                        recipient: recipient.clone(),
                        kind: kind.clone(),
                    },
                )
            })
        })
        .await
        .unwrap_or_else(|error| {
            tracing::error!(%error, "instrumenting a message failed; sending it untracked");
            fallback
        })
    }

    /// A request to `/t/{letter}/{token}`: `None` when the token is not one this instance
    /// signed for that route; else the open or click, recorded (once per
    /// [`REPEAT_WINDOW_SECS`]) with the client's address and user agent.
    pub async fn track(
        &self,
        letter: char,
        token: &str,
        ip: Option<String>,
        user_agent: Option<String>,
    ) -> Result<Option<TrackKind>, StoreError> {
        let key = self.tracking_key().await?;
        let Some(tracked) = verify(key, token).filter(|t| t.kind.letter() == letter) else {
            return Ok(None);
        };
        let url = match &tracked.kind {
            TrackKind::Click(url) => Some(url.clone()),
            TrackKind::Open => None,
        };
        let mut details = serde_json::Map::new();
        if let Some(url) = &url {
            details.insert("url".into(), url.clone().into());
        }
        details.insert("ip".into(), ip.into());
        details.insert("user_agent".into(), user_agent.into());
        let recorded = self
            .store
            .record_engagement(
                Engagement {
                    uuid: tracked.message_uuid.clone(),
                    recipient: tracked.recipient.clone(),
                    kind: tracked.kind.event(),
                    url,
                    details: serde_json::Value::Object(details).to_string(),
                    at: self.clock.unix(),
                },
                REPEAT_WINDOW_SECS,
            )
            .await?;
        if recorded {
            self.events_written();
        }
        Ok(Some(tracked.kind))
    }
}

/// The byte index of the last `needle` (ASCII) in `text`, ignoring ASCII case.
fn rfind_ignore_case(text: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (text.as_bytes(), needle.as_bytes());
    (0..=hay.len().checked_sub(needle.len())?)
        .rev()
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Replaces the `href` value of every `<a>` and `<area>` tag for which `tracked` (given
/// the URL, entities decoded) returns a new URL. Comments are skipped; the rest of the
/// text is copied as it is.
fn rewrite_links(html: &str, mut tracked: impl FnMut(&str) -> Option<String>) -> String {
    let len = html.len();
    let mut out = String::with_capacity(len + len / 4);
    let mut copied = 0;
    let mut i = 0;
    while let Some(rel) = html[i..].find('<') {
        let start = i + rel;
        if html[start..].starts_with("<!--") {
            i = html[start + 4..]
                .find("-->")
                .map_or(len, |end| start + 4 + end + 3);
            continue;
        }
        let Some(mut j) = link_tag_name_end(html, start) else {
            i = start + 1;
            continue;
        };
        while let Some(attribute) = next_attribute(html, j) {
            j = attribute.next;
            if let Some((value, span)) = attribute.value
                && attribute.name.eq_ignore_ascii_case("href")
                && let Some(new) = tracked(&decode_entities(value))
            {
                out.push_str(&html[copied..span.start]);
                out.push('"');
                out.push_str(&new);
                out.push('"');
                copied = span.end;
            }
        }
        i = j.min(len);
    }
    out.push_str(&html[copied..]);
    out
}

/// With `<` at `start`: where the tag name ends, when the tag is an `<a>` or an `<area>`.
fn link_tag_name_end(html: &str, start: usize) -> Option<usize> {
    let name_end = skip_while(html.as_bytes(), start + 1, |b| b.is_ascii_alphanumeric());
    let name = &html[start + 1..name_end];
    (name.eq_ignore_ascii_case("a") || name.eq_ignore_ascii_case("area")).then_some(name_end)
}

/// One attribute of a tag, as [`next_attribute`] finds it.
struct TagAttribute<'a> {
    name: &'a str,
    /// The value as written (without its quotes) and the bytes it takes (with them).
    value: Option<(&'a str, std::ops::Range<usize>)>,
    /// Where to look for the next attribute.
    next: usize,
}

/// The attribute at or after `at` inside a tag; `None` at the tag's end.
fn next_attribute(html: &str, at: usize) -> Option<TagAttribute<'_>> {
    let bytes = html.as_bytes();
    let name_start = skip_while(bytes, at, |b| b.is_ascii_whitespace() || b == b'/');
    if bytes.get(name_start).is_none_or(|&b| b == b'>') {
        return None;
    }
    let name_end = skip_while(bytes, name_start, |b| {
        !b.is_ascii_whitespace() && !matches!(b, b'=' | b'>' | b'/')
    });
    let name = &html[name_start..name_end];
    let equals = skip_while(bytes, name_end, |b| b.is_ascii_whitespace());
    if bytes.get(equals) != Some(&b'=') {
        // A stray character that starts no name is stepped over, so the scan moves on.
        let next = if equals == name_start {
            equals + 1
        } else {
            equals
        };
        return Some(TagAttribute {
            name,
            value: None,
            next,
        });
    }
    let value_start = skip_while(bytes, equals + 1, |b| b.is_ascii_whitespace());
    let (value, value_end) = attribute_value(html, value_start);
    Some(TagAttribute {
        name,
        value: Some((value, value_start..value_end)),
        next: value_end,
    })
}

/// The attribute value starting at `at`, quoted or not, and the index just past it.
fn attribute_value(html: &str, at: usize) -> (&str, usize) {
    let len = html.len();
    match html.as_bytes().get(at) {
        Some(&quote @ (b'"' | b'\'')) => {
            let end = html[at + 1..]
                .find(quote as char)
                .map_or(len, |p| at + 1 + p);
            (&html[at + 1..end], (end + 1).min(len))
        }
        _ => {
            let end = skip_while(html.as_bytes(), at, |b| {
                !b.is_ascii_whitespace() && b != b'>'
            });
            (&html[at..end], end)
        }
    }
}

/// The first index from `from` whose byte does not satisfy `keep` (the length if none).
fn skip_while(bytes: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    let from = from.min(bytes.len());
    bytes[from..]
        .iter()
        .position(|&b| !keep(b))
        .map_or(bytes.len(), |p| from + p)
}

/// The character references an `href` value may hold (`&amp;`, `&#38;`, `&#x26;`, …).
fn decode_entities(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest[1..].find(';').map(|e| e + 1).filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let decoded = match name {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::message::ParsedMessage;

    const BASE: &str = "https://track.example.com";

    fn token(kind: &TrackKind) -> String {
        match kind {
            TrackKind::Open => "OPEN".into(),
            TrackKind::Click(url) => format!("CLICK[{url}]"),
        }
    }

    fn html_of(raw: &[u8]) -> String {
        ParsedMessage::parse(raw).html.expect("an HTML body")
    }

    #[test]
    fn quoted_printable_html_gets_pixel_and_links() {
        let raw = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee https://example.com/plain\r\n--b\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body><p>Caf=E9 <a href=3D\"https://example.com/a?x=3D1&amp;y=3D2\">a</a>\r\n<a class=3Dx HREF=3D'http://example.org/b'>b</a> <a href=3D\"mailto:x@example.com\">m</a>\r\n<a href=3D\"#top\">t</a> <img src=3D\"cid:logo\"> <a href=3D\"/relative\">r</a></p></BODY></html>\r\n--b--\r\n";
        let out = instrument(raw, true, true, BASE, token);
        let html = html_of(&out);
        assert!(html.contains("Café"), "{html}");
        assert!(
            html.contains(
                "<a href=\"https://track.example.com/t/c/CLICK[https://example.com/a?x=1&y=2]\">a</a>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<a class=x HREF=\"https://track.example.com/t/c/CLICK[http://example.org/b]\">b</a>"),
            "{html}"
        );
        for kept in [
            "href=\"mailto:x@example.com\"",
            "href=\"#top\"",
            "src=\"cid:logo\"",
            "href=\"/relative\"",
        ] {
            assert!(html.contains(kept), "{kept} in {html}");
        }
        assert!(
            html.ends_with(
                "<img src=\"https://track.example.com/t/o/OPEN\" width=\"1\" height=\"1\" alt=\"\"></BODY></html>"
            ),
            "{html}"
        );
        assert!(
            html.contains("</a>\r\n<a class"),
            "line breaks are kept: {html:?}"
        );
        // The plain part and the headers are untouched, byte for byte.
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n"));
        assert!(text.contains("--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee https://example.com/plain\r\n--b\r\n"));
        assert!(text.contains("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"));
        assert!(!text.contains("iso-8859-1"));
        assert!(text.ends_with("\r\n--b--\r\n"), "{text}");
        assert!(text.lines().all(|line| line.len() <= 78), "{text}");
    }

    #[test]
    fn base64_html_stays_base64() {
        let html = "<html><body><a href=\"https://example.com/x\">x</a></body></html>";
        let encoded = base64::engine::general_purpose::STANDARD.encode(html);
        let raw = format!(
            "Subject: b\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--z\r\nContent-Type: text/html; name=\"page.html\"\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n<a href=\"https://example.com/attached\">x</a>\r\n--z--\r\n"
        );
        let out = instrument(raw.as_bytes(), true, true, BASE, token);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n\r\n"),
            "{text}"
        );
        assert_eq!(
            html_of(&out),
            "<html><body><a href=\"https://track.example.com/t/c/CLICK[https://example.com/x]\">x</a><img src=\"https://track.example.com/t/o/OPEN\" width=\"1\" height=\"1\" alt=\"\"></body></html>"
        );
        // An HTML attachment is not a body: untouched.
        assert!(text.contains("<a href=\"https://example.com/attached\">x</a>"));
    }

    #[test]
    fn switches_and_non_html_messages() {
        let html = b"Subject: s\r\nContent-Type: text/html\r\n\r\n<p><a href=\"https://example.com/\">x</a></p>\r\n";
        assert_eq!(instrument(html, false, false, BASE, token), html);
        let opens_only = html_of(&instrument(html, true, false, BASE, token));
        assert!(opens_only.contains("href=\"https://example.com/\""));
        assert!(opens_only.ends_with(
            "<img src=\"https://track.example.com/t/o/OPEN\" width=\"1\" height=\"1\" alt=\"\">"
        ));
        let clicks_only = html_of(&instrument(html, false, true, BASE, token));
        assert!(!clicks_only.contains("/t/o/"));
        assert!(clicks_only.contains("/t/c/CLICK[https://example.com/]"));
        let plain = b"Subject: s\r\nContent-Type: text/plain\r\n\r\n<a href=\"https://example.com/\">x</a>\r\n";
        assert_eq!(instrument(plain, true, true, BASE, token), plain);
        assert_eq!(instrument(b"", true, true, BASE, token), b"");
    }

    #[test]
    fn tokens_verify_only_with_their_key_and_carry_their_data() {
        let key = b"0123456789abcdef0123456789abcdef";
        let click = Tracked {
            message_uuid: "f78b876d-dd97-4e10-9a61-067f98044cc7".into(),
            recipient: "user@example.net".into(),
            kind: TrackKind::Click("https://example.com/a?b=c\nd".into()),
        };
        let token = sign(key, &click);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        assert_eq!(verify(key, &token), Some(click.clone()));
        assert_eq!(verify(b"another key", &token), None);
        let (data, tag) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode("c\nx\nuser@example.net\nhttps://evil.test/");
        assert_eq!(verify(key, &format!("{forged}.{tag}")), None);
        assert_eq!(verify(key, data), None);
        assert_eq!(verify(key, ""), None);
        assert_eq!(verify(key, "!!.!!"), None);
        let open = Tracked {
            kind: TrackKind::Open,
            ..click
        };
        assert_eq!(verify(key, &sign(key, &open)), Some(open));
    }

    #[test]
    fn entities_in_links() {
        assert_eq!(
            decode_entities("a&amp;b&#38;c&#x26;d&bogus;e&"),
            "a&b&c&d&bogus;e&"
        );
    }
}
