//! Routing rules end to end: plus addressing, wildcard domains, auth_regex, per-address
//! overrides (contract §4, §2.3).

use crate::support::{Receiver, TestApp};

const CONFIG: &str = r#"
[server]
hostname = "mx.postern.test"

[[domain]]
domain = "tickets.example.com"
auth_regex = 'ticket-\d+@tickets\.example\.com'
target = "RECEIVER/status/200"

[[address]]
address = "support@example.com"
target = "RECEIVER/status/201"

[[address]]
address = "*@*.example.org"
target = "RECEIVER/status/202"

[[address]]
address = "small@example.com"
target = "RECEIVER/status/200"
max_message_size = 2048
size_exceeded_message = "Attachments go to files.example.com"

[[address]]
address = "slow@example.com"
target = "RECEIVER/slow/3000"
timeout_secs = 1
"#;

async fn app(receiver: &Receiver) -> TestApp {
    TestApp::start(&CONFIG.replace("RECEIVER", &format!("http://{}", receiver.addr))).await
}

#[tokio::test]
async fn plus_addressing_keeps_the_tag_in_the_envelope() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail(
            "a@example.net",
            &["Support+Order-42@example.com"],
            "Subject: tag\r\n\r\nx",
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let post = receiver.single();
    assert_eq!(post.path, "/status/201");
    assert_eq!(
        post.json()["envelope"]["to"],
        "Support+Order-42@example.com"
    );
    assert_eq!(app.messages().await[0]["address"], "support@example.com");
}

#[tokio::test]
async fn wildcard_domains_and_unknown_recipients() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@example.net>", "250").await;
    smtp.cmd("RCPT TO:<anyone@eu.example.org>", "250").await;
    smtp.cmd("RCPT TO:<x@a.b.example.org>", "550 5.1.1").await;
    smtp.cmd("RCPT TO:<x@example.org>", "550 5.1.1").await;
    smtp.cmd("RCPT TO:<other@example.com>", "550 5.1.1").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(b"Subject: w\r\n\r\nx\r\n.\r\n").await;
    assert!(smtp.reply().await.starts_with("250 "));
    assert_eq!(receiver.single().path, "/status/202");
}

#[tokio::test]
async fn auth_regex_refuses_at_rcpt() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@example.net>", "250").await;
    let reply = smtp
        .cmd("RCPT TO:<sales@tickets.example.com>", "550 5.7.1")
        .await;
    assert!(reply.contains("regexp"), "{reply}");
    smtp.cmd("RCPT TO:<ticket-7@tickets.example.com>", "250")
        .await;
    smtp.cmd("DATA", "354").await;
    smtp.send(b"Subject: t\r\n\r\nx\r\n.\r\n").await;
    assert!(smtp.reply().await.starts_with("250 "));
    assert_eq!(receiver.single().path, "/status/200");
}

#[tokio::test]
async fn per_address_size_limit_and_text() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    // Declared too big for this address: refused at RCPT.
    smtp.cmd("MAIL FROM:<a@example.net> SIZE=4096", "250").await;
    smtp.cmd(
        "RCPT TO:<small@example.com>",
        "552 5.3.4 Attachments go to files.example.com",
    )
    .await;
    smtp.cmd("RSET", "250").await;
    // Not declared: refused while reading, with the address's text.
    smtp.cmd("MAIL FROM:<a@example.net>", "250").await;
    smtp.cmd("RCPT TO:<small@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    let line = format!("{}\r\n", "z".repeat(900));
    smtp.send(format!("Subject: big\r\n\r\n{}.\r\n", line.repeat(3)).as_bytes())
        .await;
    assert_eq!(
        smtp.reply().await,
        "552 5.3.4 Attachments go to files.example.com"
    );
    // Other addresses keep the server-wide limit.
    let reply = smtp
        .send_mail(
            "a@example.net",
            &["support@example.com"],
            &format!("Subject: fine\r\n\r\n{}", "y\r\n".repeat(2000)),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(receiver.single().path, "/status/201");
}

#[tokio::test]
async fn per_address_timeout() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let started = std::time::Instant::now();
    let reply = smtp
        .send_mail(
            "a@example.net",
            &["slow@example.com"],
            "Subject: s\r\n\r\nx",
        )
        .await;
    assert!(
        reply.starts_with("450 ") && reply.contains("no answer within 1s"),
        "{reply}"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
}

#[tokio::test]
async fn config_errors_for_the_new_options() {
    let bad = [
        (
            "[[domain]]\ndomain = \"example.com\"\nauth_regex = \"(\"\n",
            "domain[0].auth_regex",
        ),
        ("[[domain]]\ndomain = \"*.com\"\n", "domain[0].domain"),
        (
            "[[address]]\naddress = \"a@example.com\"\n",
            "address[0].target = (missing)",
        ),
        (
            "[[address]]\naddress = \"a@example.com\"\ntarget = \"http://127.0.0.1/\"\nmax_message_size = 999999999999\n",
            "address[0].max_message_size",
        ),
    ];
    for (toml, key) in bad {
        let err = postern::config::Config::from_toml(toml, [])
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{toml}: {err}");
    }
}

#[tokio::test]
async fn size_as_number_per_address() {
    let receiver = Receiver::start().await;
    let toml = format!(
        "[[address]]\naddress = \"n@example.com\"\ntarget = \"{}\"\nsize_as_number = true\n[[address]]\naddress = \"s@example.com\"\ntarget = \"{}\"\n",
        receiver.url("/status/200"),
        receiver.url("/status/200")
    );
    let app = TestApp::start(&toml).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let message = "Subject: a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream; name=f.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--";
    for rcpt in ["n@example.com", "s@example.com"] {
        assert!(
            smtp.send_mail("a@example.net", &[rcpt], message)
                .await
                .starts_with("250")
        );
    }
    let posts = receiver.requests();
    assert_eq!(posts[0].json()["attachments"][0]["size"], 3);
    assert_eq!(posts[1].json()["attachments"][0]["size"], "3");
}
