//! Hostile MIME: whatever the structure, the app gets a payload with what could be
//! recovered, in bounded time, and the server keeps serving.
//!
//! Bounds: every message is at most `smtp.max_message_size` octets (25 MiB by default), read
//! into memory once; parsing and building are linear in its size (mail-parser stops nesting
//! at its own depth limit). The times asserted below are for a debug build on a loaded
//! 2-core machine, with headroom; release builds are several times faster.

use std::time::{Duration, Instant};

use crate::support::{Receiver, TestApp, config_with};

/// Sends `message` through the real server to a 200 target; returns the JSON and the time
/// from end of DATA to the reply.
async fn deliver(message: &str) -> (serde_json::Value, Duration) {
    let receiver = Receiver::start().await;
    let extra = "[smtp]\nmax_message_size = 33554432\n";
    let app = TestApp::start(&config_with(
        &[("*@example.com", receiver.url("/status/200"))],
        extra,
    ))
    .await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@example.net>", "250").await;
    smtp.cmd("RCPT TO:<to@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(message.as_bytes()).await;
    let started = Instant::now();
    smtp.send(b"\r\n.\r\n").await;
    let reply = smtp.reply().await;
    let took = started.elapsed();
    assert!(reply.starts_with("250 "), "{reply}");
    (receiver.single().json(), took)
}

#[tokio::test]
async fn absurd_nesting_depth() {
    let depth = 5000;
    let mut message = String::from("Subject: deep\r\n");
    for i in 0..depth {
        message.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    message.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for i in (0..depth).rev() {
        message.push_str(&format!("--b{i}--\r\n"));
    }
    let (json, took) = deliver(&message).await;
    assert_eq!(json["headers"]["subject"], "deep");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn ten_thousand_parts() {
    let mut message =
        String::from("Subject: many\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
    message.push_str("--b\r\nContent-Type: text/plain\r\n\r\nthe body\r\n");
    for i in 0..10_000 {
        message.push_str(&format!(
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f{i}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n"
        ));
    }
    message.push_str("--b--\r\n");
    let (json, took) = deliver(&message).await;
    assert_eq!(json["plain"], "the body");
    let attachments = json["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 10_000);
    assert_eq!(attachments[9999]["file_name"], "f9999.bin");
    assert_eq!(attachments[9999]["size"], "3");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn huge_headers() {
    // 100,000 header fields, and one field folded over 20,000 lines.
    let mut message = String::new();
    for i in 0..100_000 {
        message.push_str(&format!("X-Junk: {i}\r\n"));
    }
    message.push_str("X-Folded: start");
    for _ in 0..20_000 {
        message.push_str("\r\n\tmore");
    }
    message.push_str("\r\nSubject: still here\r\n\r\nbody");
    let (json, took) = deliver(&message).await;
    assert_eq!(json["headers"]["subject"], "still here");
    assert_eq!(json["headers"]["x_junk"].as_array().unwrap().len(), 100_000);
    assert_eq!(
        json["headers"]["x_folded"]
            .as_str()
            .unwrap()
            .matches("\tmore")
            .count(),
        20_000
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn broken_encodings() {
    let message = "Subject: =?UTF-8?B?broken?= =?x-unknown?Q?a?=\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbad =ZZ qp =\r\n\
--b\r\nContent-Type: text/html; charset=x-made-up\r\n\r\n<p>\u{00e9}</p>\r\n\
--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@###\r\n";
    let (json, _) = deliver(message).await;
    assert!(json["plain"].as_str().unwrap().starts_with("bad "));
    assert!(json["html"].is_string());
    assert!(json["attachments"].is_array());
}
