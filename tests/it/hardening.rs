//! What an outside probe broke in the SMTP listener (issue 10 items 4, 5, 7 and 9), over
//! the real binary: 452 replies that ended the session, invalid UTF-8 addresses converted
//! lossily, one client taking every slot or dripping data for minutes, and unbounded
//! memory for messages in flight. Every limit is set small in the config so that the tests
//! stay fast; clients connect from several loopback addresses (127.0.0.x) to be distinct.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw_tcp::{connect_from, read_until_closed};
use crate::support::{Receiver, Smtp, TestApp, config_with};

/// The first line the server writes.
async fn greeting(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
            .await
            .expect("a greeting")
            .unwrap();
        if read == 0 {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[tokio::test]
async fn recipients_of_other_addresses_get_452_and_never_421() {
    let receiver = Receiver::start().await;
    let addresses: Vec<(String, String)> = (0..11)
        .map(|i| {
            let target = receiver.url(&format!("/status/200?box={i}"));
            (format!("box{i}@example.com"), target)
        })
        .collect();
    let addresses: Vec<(&str, String)> = addresses
        .iter()
        .map(|(a, t)| (a.as_str(), t.clone()))
        .collect();
    let app = TestApp::start(&config_with(&addresses, "")).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@sender.test>", "250").await;
    smtp.cmd("RCPT TO:<box0@example.com>", "250 2.1.5").await;
    // A sending MTA that retries the same transaction gets the same answers each time.
    for _ in 0..3 {
        for i in 1..11 {
            smtp.cmd(&format!("RCPT TO:<box{i}@example.com>"), "452 4.5.3")
                .await;
        }
    }
    smtp.cmd("DATA", "354").await;
    smtp.send(b"Subject: first\r\n\r\nbody\r\n.\r\n").await;
    assert!(smtp.reply().await.starts_with("250"));
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_thousand_pipelined_recipients_are_not_cut_off() {
    let receiver = Receiver::start().await;
    let config = config_with(&[("*@example.com", receiver.url("/status/200"))], "");
    let app = TestApp::start(&config).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let mut batch = String::from("MAIL FROM:<a@sender.test>\r\n");
    for i in 0..1000 {
        batch.push_str(&format!("RCPT TO:<r{i}@example.com>\r\n"));
    }
    batch.push_str("DATA\r\n");
    smtp.send(batch.as_bytes()).await;
    assert!(smtp.reply().await.starts_with("250"));
    for i in 0..1000 {
        let reply = smtp.reply().await;
        let expected = if i < 100 { "250 2.1.5" } else { "452 4.5.3" };
        assert!(reply.starts_with(expected), "recipient {i}: {reply}");
    }
    assert!(smtp.reply().await.starts_with("354"));
    smtp.send(b"Subject: many\r\n\r\nbody\r\n.\r\n").await;
    assert!(smtp.reply().await.starts_with("250"));
    let request = receiver.single();
    assert_eq!(
        request.json()["envelope"]["recipients"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
}

#[tokio::test]
async fn addresses_that_are_not_utf8_get_553_5_6_7() {
    let receiver = Receiver::start().await;
    let config = config_with(&[("*@probe.test", receiver.url("/status/200"))], "");
    let app = TestApp::start(&config).await;
    let classes: [(&str, &[u8]); 4] = [
        ("lone continuation byte", b"\x80"),
        ("overlong encoding of '/'", b"\xc0\xaf"),
        ("UTF-16 surrogate in UTF-8", b"\xed\xa0\x80"),
        ("0xFF", b"\xff"),
    ];
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    for (class, bytes) in classes {
        let address = [b"<".as_slice(), bytes, b"x@probe.test>"].concat();
        for smtputf8 in [" SMTPUTF8", ""] {
            let mail = [
                b"MAIL FROM:".as_slice(),
                &address,
                smtputf8.as_bytes(),
                b"\r\n",
            ]
            .concat();
            smtp.send(&mail).await;
            let reply = smtp.reply().await;
            assert!(
                reply.starts_with("553 5.6.7"),
                "MAIL, {class}{smtputf8}: {reply}"
            );

            smtp.cmd(&format!("MAIL FROM:<a@sender.test>{smtputf8}"), "250")
                .await;
            smtp.send(&[b"RCPT TO:".as_slice(), &address, b"\r\n"].concat())
                .await;
            let reply = smtp.reply().await;
            assert!(
                reply.starts_with("553 5.6.7"),
                "RCPT, {class}{smtputf8}: {reply}"
            );
            smtp.cmd("RSET", "250").await;
        }
    }
    // Valid UTF-8 still works, and nothing lossy was ever delivered.
    smtp.cmd("MAIL FROM:<a@sender.test> SMTPUTF8", "250").await;
    smtp.cmd("RCPT TO:<élise@probe.test>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(b"Subject: s\r\n\r\nbody\r\n.\r\n").await;
    assert!(smtp.reply().await.starts_with("250"));
    let request = receiver.single();
    assert_eq!(request.json()["envelope"]["to"], "élise@probe.test");
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("rcpt@example.com", receiver.url("/status/200"))],
        "[smtp]\nmax_connections = 10\nmax_connections_per_ip = 3\n",
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from("127.0.0.1", app.smtp).await;
        assert!(greeting(&mut stream).await.starts_with("220 "));
        held.push(stream);
    }
    let mut fourth = connect_from("127.0.0.1", app.smtp).await;
    let reply = read_until_closed(&mut fourth, Duration::from_secs(10)).await;
    assert!(
        reply.starts_with("421 4.7.0 Too many connections from your address"),
        "{reply}"
    );
    // Another client still gets in; a freed slot is usable again.
    let mut other = connect_from("127.0.0.4", app.smtp).await;
    assert!(greeting(&mut other).await.starts_with("220 "));
    drop(held.pop());
    let mut again = connect_from("127.0.0.1", app.smtp).await;
    let reply = eventually_greeted(&mut again, &app).await;
    assert!(reply.starts_with("220 "), "{reply}");
}

/// Connects from 127.0.0.1 until the server greets (a dropped session is freed
/// asynchronously), returning the greeting.
async fn eventually_greeted(stream: &mut TcpStream, app: &TestApp) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = greeting(stream).await;
        if line.starts_with("220 ") || Instant::now() > deadline {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        *stream = connect_from("127.0.0.1", app.smtp).await;
    }
}

#[tokio::test]
async fn the_last_slots_are_kept_for_new_addresses() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("rcpt@example.com", receiver.url("/status/200"))],
        "[smtp]\nmax_connections = 10\nmax_connections_per_ip = 20\n",
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..9 {
        let mut stream = connect_from("127.0.0.2", app.smtp).await;
        assert!(greeting(&mut stream).await.starts_with("220 "));
        held.push(stream);
    }
    let mut greedy = connect_from("127.0.0.2", app.smtp).await;
    let reply = read_until_closed(&mut greedy, Duration::from_secs(10)).await;
    assert!(reply.starts_with("421 4.7.0 Server nearly full"), "{reply}");
    // A client without a session takes the kept slot and can send mail.
    let mut fresh = connect_from("127.0.0.3", app.smtp).await;
    assert!(greeting(&mut fresh).await.starts_with("220 "));
    fresh
        .write_all(b"EHLO fresh.test\r\nQUIT\r\n")
        .await
        .unwrap();
    let reply = read_until_closed(&mut fresh, Duration::from_secs(10)).await;
    assert!(reply.contains("221 2.0.0"), "{reply}");
}

#[tokio::test]
async fn a_drip_in_data_is_cut_within_the_rate_window() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("rcpt@example.com", receiver.url("/status/200"))],
        "[smtp]\nmin_data_rate = 100\nmin_data_rate_window_secs = 1\n",
    ))
    .await;
    let mut stream = connect_from("127.0.0.1", app.smtp).await;
    greeting(&mut stream).await;
    stream
        .write_all(
            b"EHLO c.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n",
        )
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let drip = tokio::spawn(async move {
        // One byte every 200 ms: 5 bytes/s, far below 100.
        for _ in 0..100 {
            if write.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut text = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut text))
        .await
        .expect("the drip is cut well before 10 s")
        .unwrap();
    drip.abort();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("354"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("421 4.4.2 Message data arriving too slowly, closing connection"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn a_session_ends_at_its_deadline() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("rcpt@example.com", receiver.url("/status/200"))],
        "[smtp]\nsession_deadline_secs = 2\n",
    ))
    .await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let started = Instant::now();
    // A busy client that is never idle: NOOP every 200 ms.
    let reply = loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never cut");
        smtp.send(b"NOOP\r\n").await;
        let reply = smtp.reply().await;
        if !reply.starts_with("250") {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        reply,
        "421 4.4.2 Session time limit reached, closing connection"
    );
    assert!(smtp.is_closed().await);
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn a_spent_memory_budget_defers_data_with_452() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("rcpt@example.com", receiver.url("/status/200"))],
        "[smtp]\nmax_message_size = 65536\nmessage_memory_budget = 100000\n",
    ))
    .await;
    let line = format!("{}\r\n", "x".repeat(78));
    let content = line.repeat(500); // 40,000 octets
    // The first client sends most of a message and holds it (64 KiB buffered).
    let mut first = app.smtp().await;
    first.ehlo().await;
    first.cmd("MAIL FROM:<a@sender.test>", "250").await;
    first.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    first.cmd("DATA", "354").await;
    first.send(content.as_bytes()).await;
    // The second cannot buffer its message beside it: 452 4.3.1, and it may try again.
    let mut second = app.smtp().await;
    second.ehlo().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = send_message(&mut second, &content).await;
        if !reply.starts_with("250") || Instant::now() > deadline {
            break reply;
        }
        // The first client's content was not read yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        reply.starts_with("452 4.3.1 Insufficient system storage"),
        "{reply}"
    );
    let before = receiver.requests().len();
    // Once the first message is handled its bytes come back, and the retry is taken.
    first.send(b".\r\n").await;
    assert!(first.reply().await.starts_with("250"));
    assert!(send_message(&mut second, &content).await.starts_with("250"));
    assert_eq!(receiver.requests().len(), before + 2);
}

/// One transaction to `rcpt@example.com` with `content`; the reply to its end of data
/// (or to DATA, if that is refused).
async fn send_message(smtp: &mut Smtp, content: &str) -> String {
    smtp.cmd("MAIL FROM:<a@sender.test>", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    smtp.send(b"DATA\r\n").await;
    let reply = smtp.reply().await;
    if !reply.starts_with("354") {
        smtp.cmd("RSET", "250").await;
        return reply;
    }
    smtp.send(content.as_bytes()).await;
    smtp.send(b".\r\n").await;
    smtp.reply().await
}
