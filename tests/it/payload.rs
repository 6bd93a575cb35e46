//! The JSON Normalized payload, compared with golden files (spec §1.2–1.6).
//!
//! `UPDATE_GOLDEN=1 cargo test` rewrites the golden files; review the diff before committing.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{Receiver, TestApp, config_with};

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// Sends `message` (raw bytes, CRLF lines, no final dot) and returns the POSTed JSON.
async fn post_of(message: &[u8]) -> Value {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("*@example.com", receiver.url("/status/200"))],
        "",
    ))
    .await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<sender@example.com>", "250").await;
    smtp.cmd("RCPT TO:<to@example.com>", "250").await;
    smtp.cmd("RCPT TO:<another@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    // Dot-stuff like a real client.
    let mut stuffed = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    if !stuffed.ends_with(b"\r\n") {
        stuffed.extend_from_slice(b"\r\n");
    }
    smtp.send(&stuffed).await;
    smtp.send(b".\r\n").await;
    let reply = smtp.reply().await;
    assert!(reply.starts_with("250 "), "{reply}");
    receiver.single().json()
}

/// Replaces the one volatile value (Postern's own Received line, which carries the time).
fn normalise(mut json: Value) -> Value {
    let received = &mut json["headers"]["received"];
    let ours = match received {
        Value::Array(values) => &mut values[0],
        other => other,
    };
    let text = ours.as_str().unwrap();
    assert!(
        text.starts_with(
            "from client.test ([127.0.0.1])\tby mx.postern.test (Postern) with ESMTP;"
        ),
        "Postern's Received line: {text}"
    );
    *ours = Value::String("<Postern's Received line>".into());
    json
}

fn assert_golden(name: &str, actual: &Value) {
    let path = data(&format!("golden/{name}.json"));
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(pretty, expected, "payload differs from {}", path.display());
}

#[tokio::test]
async fn json_normalized_matches_the_golden_file() {
    let message = std::fs::read(data("messages/golden.eml")).unwrap();
    let json = normalise(post_of(&message).await);
    assert_golden("json_normalized", &json);

    // The properties the golden file encodes, stated once more so that a careless
    // UPDATE_GOLDEN cannot hide a regression.
    let headers = &json["headers"];
    assert_eq!(headers["subject"], "Café naïve ✓");
    assert_eq!(headers["x_tag"], serde_json::json!(["one", "two", "three"]));
    assert_eq!(headers["received"].as_array().unwrap().len(), 3);
    assert_eq!(
        headers["dkim_signature"],
        "v=1; a=rsa-sha256; c=relaxed/relaxed;        d=example.com; s=s1;\th=from:to:subject; bh=abc=; b=def="
    );
    let keys: Vec<&str> = headers
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(&keys[..3], ["received", "dkim_signature", "date"]);
    let envelope = &json["envelope"];
    assert_eq!(
        envelope["recipients"],
        serde_json::json!(["to@example.com", "another@example.com"])
    );
    assert_eq!(envelope["tls"], false);
    assert_eq!(
        envelope["spf"],
        serde_json::json!({"result": "none", "domain": "example.com"})
    );
    let md5 = format!(
        "{:x}",
        <md5::Md5 as md5::Digest>::digest(message_as_sent(&message))
    );
    assert_eq!(envelope["md5"], md5);
    assert_eq!(json["plain"], "Test with HTML. Café.");
    // Not a reply: the whole plain body is new text (spec §1.4).
    assert_eq!(json["reply_plain"], "Test with HTML. Café.");
    let attachments = json["attachments"].as_array().unwrap();
    assert_eq!(attachments[0]["content"], "dGVzdGZpbGU=");
    assert_eq!(attachments[0]["size"], "8");
    assert_eq!(attachments[1]["disposition"], "inline");
    assert_eq!(attachments[1]["content_id"], "<logo123>");
    assert_eq!(attachments[1]["size"], "64");
}

/// What the client transmits as message content: the file plus the final CRLF.
fn message_as_sent(message: &[u8]) -> Vec<u8> {
    let mut sent = message.to_vec();
    if !sent.ends_with(b"\r\n") {
        sent.extend_from_slice(b"\r\n");
    }
    sent
}

#[tokio::test]
async fn plain_message_without_mime() {
    let json =
        normalise(post_of(b"From: a@example.com\r\nSubject: plain\r\n\r\nJust text.\r\n").await);
    assert_golden("json_normalized_plain", &json);
    assert_eq!(json["plain"], "Just text.\r\n");
    assert_eq!(json["reply_plain"], "Just text.");
    assert_eq!(json["html"], Value::Null);
    assert_eq!(json["attachments"], serde_json::json!([]));
}

/// A Gmail-style top-posted reply: `reply_plain` is the new text, `plain` keeps everything.
#[tokio::test]
async fn reply_plain_is_the_new_text_of_a_reply() {
    let json = post_of(
        "From: Anna <anna@example.com>\r\n\
         To: Ben <ben@example.com>\r\n\
         Subject: Re: Q1 numbers\r\n\
         In-Reply-To: <q1@example.com>\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\
         \r\n\
         Sounds good, I'll bring the slides.\r\n\
         \r\n\
         Anna\r\n\
         \r\n\
         On Mon, Jan 16, 2012 at 5:00\u{202f}PM Ben <ben@example.com> wrote:\r\n\
         \r\n\
         > Can you present the Q1 numbers on Thursday?\r\n\
         >\r\n\
         > Ben\r\n"
            .as_bytes(),
    )
    .await;
    assert_eq!(
        json["reply_plain"],
        "Sounds good, I'll bring the slides.\r\n\r\nAnna"
    );
    let plain = json["plain"].as_str().unwrap();
    assert!(
        plain.contains("> Can you present the Q1 numbers on Thursday?"),
        "{plain}"
    );
}

/// Bad input: whatever the MIME, the app still gets a payload with what could be recovered.
#[tokio::test]
async fn malformed_mime_still_delivers() {
    let cases: [(&str, &[u8]); 5] = [
        ("missing closing boundary", b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nrecovered text\r\n"),
        ("bad base64", b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n"),
        ("unknown charset", b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nbytes \xe9\xff here\r\n"),
        ("no header/body separator", b"Subject: only headers"),
        ("binary junk", b"\x00\x01\x02\xff\xfe\xfd\r\n"),
    ];
    for (name, message) in cases {
        let json = post_of(message).await;
        assert!(json["headers"].is_object(), "{name}");
        assert!(json["attachments"].is_array(), "{name}");
    }
    let json = post_of(cases[0].1).await;
    assert!(json["plain"].as_str().unwrap().contains("recovered text"));
}
