//! SMTP protocol edge cases over raw TCP.

use std::time::Duration;

use crate::support::{Receiver, Smtp, TestApp, config_with, eventually_ok};

async fn app(receiver: &Receiver, extra: &str) -> TestApp {
    TestApp::start(&config_with(
        &[("rcpt@example.com", receiver.url("/status/200"))],
        extra,
    ))
    .await
}

#[tokio::test]
async fn ehlo_advertises_the_extensions() {
    let receiver = Receiver::start().await;
    let app = app(
        &receiver,
        "[smtp]\nmax_message_size = 123456\ntls_self_signed = true\n",
    )
    .await;
    let mut smtp = app.smtp().await;
    let ehlo = smtp.ehlo().await;
    for ext in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "SIZE 123456",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(
            ehlo.lines().any(|l| l[4..] == *ext),
            "{ext} missing from {ehlo}"
        );
    }
    assert!(ehlo.starts_with("250-mx.postern.test"));
    smtp.cmd("HELO client.test", "250 mx.postern.test").await;
    smtp.cmd("NOOP", "250 2.0.0").await;
    smtp.cmd("VRFY someone", "252 2.5.0").await;
    smtp.cmd("HELP", "214").await;
    smtp.cmd("EXPN list", "502 5.5.1").await;
    smtp.cmd("AUTH PLAIN AGFhAGI=", "502 5.5.1").await;
    smtp.cmd("FOO bar", "500 5.5.1").await;
    smtp.cmd("QUIT", "221 2.0.0").await;
    assert!(smtp.is_closed().await);
}

#[tokio::test]
async fn commands_out_of_order() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "").await;
    let mut smtp = app.smtp().await;
    smtp.cmd("MAIL FROM:<a@example.com>", "503 5.5.1").await;
    smtp.ehlo().await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "503 5.5.1").await;
    smtp.cmd("DATA", "503 5.5.1").await;
    smtp.cmd("MAIL FROM:<a@example.com>", "250").await;
    smtp.cmd("MAIL FROM:<a@example.com>", "503 5.5.1").await;
    smtp.cmd("DATA", "503 5.5.1").await;
    smtp.cmd("RCPT TO:<unknown@example.com>", "550 5.1.1").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    smtp.cmd("RSET", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "503 5.5.1").await;
    smtp.cmd("MAIL FROM:a@example.com", "501 5.5.4").await;
    smtp.cmd("MAIL FROM:<>", "250").await;
    // Routed like postmaster@<server.hostname>; nothing routes it here.
    smtp.cmd("RCPT TO:<postmaster>", "550 5.1.1").await;
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn rcpt_to_postmaster_without_a_domain_reaches_this_hosts_postmaster() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("postmaster@mx.postern.test", receiver.url("/status/200"))],
        "",
    ))
    .await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<>", "250").await;
    smtp.cmd("RCPT TO:<Postmaster>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.cmd("Subject: abuse report\r\n\r\nhello\r\n.", "250")
        .await;
    let posts = receiver.requests();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].json()["envelope"]["to"],
        "postmaster@mx.postern.test"
    );
}

#[tokio::test]
async fn pipelined_transaction_in_one_write() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "").await;
    let mut smtp = app.smtp().await;
    smtp.send(
        b"EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<rcpt@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n",
    )
    .await;
    assert!(smtp.reply().await.starts_with("250-"));
    assert!(smtp.reply().await.starts_with("250 2.1.0"));
    assert!(smtp.reply().await.starts_with("250 2.1.5"));
    assert!(smtp.reply().await.starts_with("550 5.1.1"));
    assert!(smtp.reply().await.starts_with("354"));
    smtp.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@example.com>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n").await;
    assert!(smtp.reply().await.starts_with("250 2.0.0"));
    assert!(smtp.reply().await.starts_with("250 2.1.0"));
    assert!(smtp.reply().await.starts_with("250 2.1.5"));
    assert!(smtp.reply().await.starts_with("354"));
    smtp.send(b"Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        .await;
    assert!(smtp.reply().await.starts_with("250 2.0.0"));
    assert!(smtp.reply().await.starts_with("221"));
    let posts = receiver.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].json()["headers"]["subject"], "pipelined");
    assert_eq!(posts[1].json()["headers"]["subject"], "second");
}

/// SMTP smuggling: only CRLF.CRLF ends the data; the rest is content of one message.
#[tokio::test]
async fn bare_lf_and_cr_never_end_a_message() {
    for ending in ["\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r.\r\n"] {
        let receiver = Receiver::start().await;
        let app = app(&receiver, "").await;
        let mut smtp = app.smtp().await;
        smtp.ehlo().await;
        smtp.cmd("MAIL FROM:<a@example.com>", "250").await;
        smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
        smtp.cmd("DATA", "354").await;
        let smuggle = format!(
            "Subject: outer\r\n\r\nhello{ending}MAIL FROM:<evil@example.com>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n"
        );
        smtp.send(smuggle.as_bytes()).await;
        assert!(
            smtp.is_silent(Duration::from_millis(300)).await,
            "{ending:?} ended the data"
        );
        smtp.send(b".\r\n").await;
        assert!(smtp.reply().await.starts_with("250 2.0.0"), "{ending:?}");
        assert!(
            smtp.is_silent(Duration::from_millis(200)).await,
            "{ending:?}: extra replies"
        );
        let post = receiver.single();
        let json = post.json();
        assert_eq!(json["headers"]["subject"], "outer");
        assert!(
            json["plain"]
                .as_str()
                .unwrap()
                .contains("MAIL FROM:<evil@example.com>"),
            "{ending:?}"
        );
    }
}

#[tokio::test]
async fn oversize_message_is_refused_while_reading() {
    let receiver = Receiver::start().await;
    let extra =
        "[smtp]\nmax_message_size = 2048\nsize_exceeded_message = \"Too big for this mailbox\"\n";
    let app = app(&receiver, extra).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd(
        "MAIL FROM:<a@example.com> SIZE=4096",
        "552 5.3.4 Too big for this mailbox",
    )
    .await;
    smtp.cmd("MAIL FROM:<a@example.com> SIZE=1000", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    let line = format!("{}\r\n", "x".repeat(70));
    for _ in 0..100 {
        smtp.send(line.as_bytes()).await;
    }
    smtp.send(b".\r\n").await;
    assert_eq!(smtp.reply().await, "552 5.3.4 Too big for this mailbox");
    // The session goes on; the transaction was reset.
    smtp.cmd("RCPT TO:<rcpt@example.com>", "503").await;
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn long_lines() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "").await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    // A command line over 1000 octets, sent in pieces.
    smtp.send(b"MAIL FROM:<").await;
    smtp.send("a".repeat(3000).as_bytes()).await;
    smtp.send(b"@example.com>\r\n").await;
    assert!(smtp.reply().await.starts_with("500 5.5.2"));
    // A data line over 1000 octets refuses the message.
    smtp.cmd("MAIL FROM:<a@example.com>", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(format!("Subject: x\r\n\r\n{}\r\n.\r\n", "y".repeat(1200)).as_bytes())
        .await;
    assert!(smtp.reply().await.starts_with("500 5.5.2 Line too long"));
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn too_many_recipients() {
    let receiver = Receiver::start().await;
    let config = config_with(
        &[("*@example.com", receiver.url("/status/200"))],
        "[smtp]\nmax_recipients = 3\n",
    );
    let app = TestApp::start(&config).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@example.com>", "250").await;
    for i in 0..3 {
        smtp.cmd(&format!("RCPT TO:<r{i}@example.com>"), "250")
            .await;
    }
    smtp.cmd("RCPT TO:<r3@example.com>", "452 4.5.3").await;
}

#[tokio::test]
async fn too_many_errors_close_the_connection() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "[smtp]\nmax_errors = 3\n").await;
    let mut smtp = app.smtp().await;
    smtp.cmd("BOGUS", "500").await;
    smtp.cmd("BOGUS", "500").await;
    smtp.cmd("BOGUS", "421 4.7.0").await;
    assert!(smtp.is_closed().await);
}

#[tokio::test]
async fn idle_client_times_out_with_421() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "[smtp]\ncommand_timeout_secs = 1\n").await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    assert!(smtp.reply().await.starts_with("421 4.4.2"));
    assert!(smtp.is_closed().await);
}

#[tokio::test]
async fn bdat_chunks() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "").await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    // Out of sequence: the chunk is read and discarded, then 503.
    smtp.send(b"BDAT 5\r\nhello").await;
    assert!(smtp.reply().await.starts_with("503"));
    smtp.cmd("MAIL FROM:<a@example.com>", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    let first = b"Subject: chunked\r\n\r\n";
    smtp.send(format!("BDAT {}\r\n", first.len()).as_bytes())
        .await;
    smtp.send(first).await;
    assert_eq!(
        smtp.reply().await,
        format!("250 2.0.0 {} octets received", first.len())
    );
    // Binary-safe: a dot line and a bare LF are just octets here.
    let second = b"line one\r\n.\r\nline\ntwo\r\n";
    smtp.send(format!("BDAT {} LAST\r\n", second.len()).as_bytes())
        .await;
    smtp.send(second).await;
    assert!(smtp.reply().await.starts_with("250 2.0.0"));
    let json = receiver.single().json();
    assert_eq!(json["headers"]["subject"], "chunked");
    assert_eq!(json["plain"], "line one\r\n.\r\nline\ntwo\r\n");
    // DATA after BDAT in one transaction is refused.
    smtp.cmd("MAIL FROM:<a@example.com>", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    smtp.send(b"BDAT 3\r\nabc").await;
    assert!(smtp.reply().await.starts_with("250"));
    smtp.cmd("DATA", "503").await;
    smtp.cmd("BDAT 0 LAST", "250 2.0.0").await;
}

#[tokio::test]
async fn non_ascii_addresses_need_smtputf8() {
    let receiver = Receiver::start().await;
    let config = config_with(&[("*@example.com", receiver.url("/status/200"))], "");
    let app = TestApp::start(&config).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<jösé@example.com>", "553 5.6.7").await;
    smtp.cmd("MAIL FROM:<jösé@example.com> SMTPUTF8", "250")
        .await;
    smtp.cmd("RCPT TO:<élise@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.send("Subject: ünïcode\r\n\r\nbody\r\n.\r\n".as_bytes())
        .await;
    assert!(smtp.reply().await.starts_with("250"));
    let json = receiver.single().json();
    assert_eq!(json["envelope"]["from"], "jösé@example.com");
    assert_eq!(json["envelope"]["to"], "élise@example.com");
    assert_eq!(json["headers"]["subject"], "ünïcode");
}

#[tokio::test]
async fn garbage_never_crashes_the_server() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "").await;
    let junk: [&[u8]; 6] = [
        b"\x00\x01\x02\xff\xfe\r\n",
        b"EHLO \xff\xfe\r\n",
        b"MAIL FROM:<\xff@x>\r\n",
        b"RCPT TO:<<<>>>\r\n",
        b"BDAT 99999999999999999999999\r\n",
        b"\r\n",
    ];
    for bytes in junk {
        let mut smtp = app.smtp().await;
        smtp.send(bytes).await;
        let reply = smtp.reply().await;
        assert!(reply.starts_with('5'), "{bytes:?}: {reply}");
    }
    // Still serving.
    let mut smtp = Smtp::connect(app.smtp).await;
    smtp.ehlo().await;
}

#[tokio::test]
async fn connections_over_the_limit_get_421() {
    let receiver = Receiver::start().await;
    let app = app(&receiver, "[smtp]\nmax_connections = 1\n").await;
    let mut first = app.smtp().await;
    first.ehlo().await;
    let mut second = tokio::net::TcpStream::connect(app.smtp).await.unwrap();
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut second, &mut reply)
        .await
        .unwrap();
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    // The first session is unaffected; once it ends, a new one is served. The server frees
    // the slot just after closing the socket, so a new connection may still find it taken.
    first.cmd("QUIT", "221").await;
    assert!(first.is_closed().await);
    let mut third =
        eventually_ok("the slot freed", async || Smtp::try_connect(app.smtp).await).await;
    third.ehlo().await;
}
