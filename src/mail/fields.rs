//! Header fields as bytes: where a header ends, its fields unfolded, a header with some
//! fields removed (folded lines included), and the `Received:` trace field every SMTP
//! server adds. Byte-level on purpose: the rest of the message must stay as it was sent,
//! which a parse-and-rewrite would not guarantee.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// The byte offset of the blank line ending the header (the index of its first CR or LF).
pub fn find_header_end(raw: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < raw.len() {
        let line_end = raw[at..].iter().position(|&b| b == b'\n').map(|i| at + i)?;
        let line = &raw[at..line_end];
        if line.is_empty() || line == b"\r" {
            return Some(at);
        }
        at = line_end + 1;
    }
    None
}

/// The `(name, value)` pairs of a header block, folded lines joined with one space and
/// both sides trimmed (how DSN groups and submitted headers are read).
pub fn unfolded_fields(header: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in header.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

/// `header` without the fields whose lower-case name `drop` picks, folded lines included.
pub fn without_fields(header: &[u8], drop: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 128);
    let mut skipping = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            skipping = line.iter().position(|&b| b == b':').is_some_and(|colon| {
                drop(
                    String::from_utf8_lossy(&line[..colon])
                        .trim()
                        .to_ascii_lowercase()
                        .as_str(),
                )
            });
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out
}

/// What the `Received:` line says about one SMTP transaction.
#[derive(Debug, Clone, Copy)]
pub struct Trace<'a> {
    /// The client's HELO/EHLO name, as it gave it.
    pub helo: &'a str,
    pub remote_ip: IpAddr,
    /// Our own host name.
    pub by: &'a str,
    /// Whether the session ran under TLS (`ESMTPS`).
    pub tls: bool,
    pub at: OffsetDateTime,
}

/// `body` with the `Received:` trace field (RFC 5321 §4.4) in front of it.
pub fn with_received(body: &[u8], trace: &Trace<'_>) -> Vec<u8> {
    let header = received_field(trace);
    let mut raw = Vec::with_capacity(header.len() + body.len());
    raw.extend_from_slice(header.as_bytes());
    raw.extend_from_slice(body);
    raw
}

/// [`with_received`] in place: the field goes in front of `body` without a second copy of
/// a large message.
pub fn prepend_received(body: &mut Vec<u8>, trace: &Trace<'_>) {
    let header = received_field(trace);
    body.splice(0..0, header.bytes());
}

/// The `Received:` field with its CRLF.
fn received_field(trace: &Trace<'_>) -> String {
    let protocol = match trace.tls {
        true => "ESMTPS",
        false => "ESMTP",
    };
    let date = trace
        .at
        .format(&Rfc2822)
        .expect("UTC timestamps format as RFC 2822");
    // The HELO name is the client's text: printable ASCII only, so it cannot fold or
    // inject a field, and bounded.
    let helo: String = trace
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    format!(
        "Received: from {helo} ([{ip}])\r\n\tby {by} (Postern) with {protocol};\r\n\t{date}\r\n",
        ip = trace.remote_ip,
        by = trace.by,
    )
}

/// [`without_own_received`] in place: a large kept message is not copied to drop its first
/// line.
pub fn strip_own_received(kept: &mut Vec<u8>) {
    let trace_line = kept.len() - without_own_received(kept).len();
    kept.drain(..trace_line);
}

/// `kept` without the `Received:` field [`with_received`] put in front of it: the message as
/// the client sent it, for payloads rebuilt from a kept copy (contract §1.8: `message` is
/// unaltered, the receiving server's trace line stays in the stored copy). A message that
/// does not start with such a field is returned as it is.
pub fn without_own_received(kept: &[u8]) -> &[u8] {
    if !kept.starts_with(b"Received: from ") {
        return kept;
    }
    // The field: its first line and every continuation line (starting with a tab or space).
    let mut end = 0;
    loop {
        let Some(newline) = kept[end..].iter().position(|&b| b == b'\n') else {
            return kept;
        };
        end += newline + 1;
        if !matches!(kept.get(end), Some(b'\t' | b' ')) {
            break;
        }
    }
    match kept[..end].windows(16).any(|w| w == b" (Postern) with ") {
        true => &kept[end..],
        false => kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepending_in_place_makes_the_same_bytes() {
        let trace = Trace {
            helo: "client.test",
            remote_ip: "192.0.2.1".parse().unwrap(),
            by: "mx.postern.test",
            tls: true,
            at: time::macros::datetime!(2026-12-06 03:00 UTC),
        };
        let body = b"Subject: x\r\n\r\nhello\r\n".to_vec();
        let mut in_place = body.clone();
        prepend_received(&mut in_place, &trace);
        assert_eq!(in_place, with_received(&body, &trace));
        assert_eq!(without_own_received(&in_place), &body[..]);
        strip_own_received(&mut in_place);
        assert_eq!(in_place, body);
    }

    #[test]
    fn our_own_received_field_comes_off_and_nothing_else() {
        let trace = Trace {
            helo: "client.test",
            remote_ip: "192.0.2.1".parse().unwrap(),
            by: "mx.postern.test",
            tls: true,
            at: OffsetDateTime::UNIX_EPOCH,
        };
        // The sender's own trace line (even another Postern's) stays: one field comes off.
        let body = b"Received: from a by b (Postern) with SMTP\r\n\tx\r\nSubject: hi\r\n\r\nx";
        let kept = with_received(body, &trace);
        assert_eq!(without_own_received(&kept), body);
        for other in [
            b"Received: from a by b with SMTP\r\nSubject: x\r\n\r\n".as_slice(),
            b"Subject: x\r\n\r\n",
            b"Received: from unterminated (Postern) with",
            b"",
        ] {
            assert_eq!(without_own_received(other), other);
        }
    }

    #[test]
    fn fields_are_unfolded_and_removed_with_their_folds() {
        let raw = b"Subject: a\r\n b\r\nBcc: x@example.com,\r\n\ty@example.com\r\nTo: z@example.com\r\n\r\nbody";
        let end = find_header_end(raw).unwrap();
        assert_eq!(&raw[end..end + 2], b"\r\n");
        let header = &raw[..end];
        assert_eq!(
            unfolded_fields(&String::from_utf8_lossy(header)),
            [
                ("Subject".to_string(), "a b".to_string()),
                (
                    "Bcc".to_string(),
                    "x@example.com, y@example.com".to_string()
                ),
                ("To".to_string(), "z@example.com".to_string()),
            ]
        );
        assert_eq!(
            without_fields(header, |name| name == "bcc"),
            b"Subject: a\r\n b\r\nTo: z@example.com\r\n"
        );
        assert_eq!(find_header_end(b"Subject: no blank line"), None);
    }

    #[test]
    fn the_received_line_names_both_ends_and_keeps_the_helo_printable() {
        let trace = Trace {
            helo: "mx.example.com\r\nX-Evil: 1",
            remote_ip: "192.0.2.1".parse().unwrap(),
            by: "postern.test",
            tls: true,
            at: time::macros::datetime!(2026-11-28 09:00 UTC),
        };
        let raw = String::from_utf8(with_received(b"Subject: x\r\n\r\n", &trace)).unwrap();
        assert_eq!(
            raw,
            "Received: from mx.example.comX-Evil:1 ([192.0.2.1])\r\n\tby postern.test (Postern) with ESMTPS;\r\n\tSat, 28 Nov 2026 09:00:00 +0000\r\nSubject: x\r\n\r\n"
        );
    }
}
