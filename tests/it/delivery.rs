//! The target's HTTP answer becomes the SMTP answer (design §4.1, contract §2).

use std::time::{Duration, Instant};

use crate::support::{Receiver, TestApp, config_with};

const MESSAGE: &str = "From: Sender <sender@example.com>\r\nTo: support@example.com\r\nSubject: Hello\r\nMessage-ID: <m1@example.com>\r\n\r\nHi there.";

async fn app_for(receiver: &Receiver, path: &str, extra: &str) -> TestApp {
    TestApp::start(&config_with(
        &[("support@example.com", receiver.url(path))],
        extra,
    ))
    .await
}

/// Sends one message and returns the DATA reply.
async fn deliver(app: &TestApp) -> String {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.send_mail("sender@example.com", &["support@example.com"], MESSAGE)
        .await
}

#[tokio::test]
async fn success_statuses_give_250() {
    for code in [200, 201, 204] {
        let receiver = Receiver::start().await;
        let app = app_for(&receiver, &format!("/status/{code}"), "").await;
        let reply = deliver(&app).await;
        assert!(reply.starts_with("250 2.0.0 "), "HTTP {code}: {reply}");
        let post = receiver.single();
        assert_eq!(post.method, "POST");
        assert_eq!(post.header("content-type"), Some("application/json"));
        assert!(post.header("user-agent").unwrap().starts_with("Postern/"));
        // The row exists by the time the reply arrived.
        let messages = app.messages().await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["http_status"], code);
        assert_eq!(messages[0]["outcome"], "successful");
        app.stop().await;
    }
}

#[tokio::test]
async fn client_errors_give_554_with_the_targets_text() {
    let receiver = Receiver::start().await;
    let app = app_for(&receiver, "/status/422", "").await;
    assert_eq!(deliver(&app).await, "554 5.0.0 target says 422");

    let receiver = Receiver::start().await;
    let app = app_for(&receiver, "/html/404", "").await;
    assert_eq!(
        deliver(&app).await,
        "554 5.0.0 Message rejected by the target (HTTP 404)"
    );
    let stored = &app.messages().await[0];
    assert_eq!(stored["outcome"], "rejected");
    assert!(
        stored["response_body"]
            .as_str()
            .unwrap()
            .contains("<h1>Nope</h1>")
    );
    assert_eq!(
        stored["smtp_reply"],
        "554 5.0.0 Message rejected by the target (HTTP 404)"
    );
}

#[tokio::test]
async fn server_errors_give_450() {
    for code in [500, 502, 503] {
        let receiver = Receiver::start().await;
        let app = app_for(&receiver, &format!("/status/{code}"), "").await;
        let reply = deliver(&app).await;
        assert!(reply.starts_with("450 4.3.0 "), "HTTP {code}: {reply}");
        assert!(reply.contains(&format!("HTTP {code}")), "{reply}");
        assert_eq!(app.messages().await[0]["outcome"], "delayed");
    }
}

#[tokio::test]
async fn unreachable_target_gives_450() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config_with(
        &[("support@example.com", format!("http://127.0.0.1:{port}/in"))],
        "",
    );
    let app = TestApp::start(&config).await;
    let reply = deliver(&app).await;
    assert!(reply.starts_with("450 4.3.0 "), "{reply}");
    let stored = &app.messages().await[0];
    assert_eq!(stored["http_status"], serde_json::Value::Null);
    assert!(
        stored["error"].as_str().unwrap().contains("cannot connect"),
        "{stored}"
    );
}

#[tokio::test]
async fn slow_target_gives_450_within_the_timeout() {
    let receiver = Receiver::start().await;
    let app = app_for(&receiver, "/slow/5000", "[delivery]\ntimeout_secs = 1\n").await;
    let started = Instant::now();
    let reply = deliver(&app).await;
    let took = started.elapsed();
    assert!(reply.starts_with("450 4.3.0 "), "{reply}");
    assert!(reply.contains("no answer within 1s"), "{reply}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[tokio::test]
async fn redirects_are_followed_three_times_with_the_same_body() {
    let receiver = Receiver::start().await;
    let app = app_for(&receiver, "/redirect/3/200", "").await;
    assert!(deliver(&app).await.starts_with("250 "));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.body == requests[0].body)
    );

    let receiver = Receiver::start().await;
    let app = app_for(&receiver, "/redirect/4/200", "").await;
    let reply = deliver(&app).await;
    assert!(
        reply.starts_with("450 ") && reply.contains("more than 3 redirects"),
        "{reply}"
    );
    assert_eq!(receiver.requests().len(), 4);
}

#[tokio::test]
async fn basic_auth_from_the_url_and_not_to_another_origin() {
    let other = Receiver::start().await;
    let receiver = Receiver::start().await;
    let target = format!("http://us%40er:p%3Ass@{}/auth", receiver.addr);
    let app = TestApp::start(&config_with(&[("support@example.com", target)], "")).await;
    assert!(deliver(&app).await.starts_with("250 "));
    let post = receiver.single();
    // base64("us@er:p:ss")
    assert_eq!(post.header("authorization"), Some("Basic dXNAZXI6cDpzcw=="));
    // The password never reaches the store or the API.
    let stored = &app.messages().await[0];
    assert_eq!(
        stored["target"],
        format!("http://***@{}/auth", receiver.addr)
    );

    let target = format!(
        "http://user:pw@{}/redirect-abs/{}",
        receiver.addr,
        other.addr.port()
    );
    // Even where another origin may be followed (tests/it/redirects.rs: by default it is not).
    let allowed = "[delivery]\nfollow_cross_origin_redirects = true\n";
    let app = TestApp::start(&config_with(&[("support@example.com", target)], allowed)).await;
    assert!(deliver(&app).await.starts_with("250 "));
    assert_eq!(other.single().header("authorization"), None);
}

#[tokio::test]
async fn several_recipients_make_one_post() {
    let receiver = Receiver::start().await;
    let config = config_with(
        &[
            ("*@example.com", receiver.url("/status/200")),
            ("other@example.org", receiver.url("/status/201")),
        ],
        "",
    );
    let app = TestApp::start(&config).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<sender@example.com>", "250").await;
    smtp.cmd("RCPT TO:<a@example.com>", "250").await;
    smtp.cmd("RCPT TO:<B@Example.com>", "250").await;
    smtp.cmd("RCPT TO:<a@example.com>", "250").await;
    // Another address (another target) must come in its own transaction.
    smtp.cmd("RCPT TO:<other@example.org>", "452 4.5.3").await;
    smtp.cmd("RCPT TO:<nobody@example.net>", "550 5.1.1").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(format!("{MESSAGE}\r\n.\r\n").as_bytes()).await;
    assert!(smtp.reply().await.starts_with("250 "));
    let json = receiver.single().json();
    assert_eq!(json["envelope"]["to"], "a@example.com");
    assert_eq!(
        json["envelope"]["recipients"],
        serde_json::json!(["a@example.com", "B@Example.com"])
    );
}

#[tokio::test]
async fn http_connections_are_reused_across_messages() {
    let receiver = Receiver::start().await;
    let app = app_for(&receiver, "/status/200", "").await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    for _ in 0..3 {
        let reply = smtp
            .send_mail("sender@example.com", &["support@example.com"], MESSAGE)
            .await;
        assert!(reply.starts_with("250 "));
    }
    let peers: std::collections::HashSet<_> = receiver.requests().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 1, "three POSTs over one connection");
}

#[tokio::test]
async fn dev_mode_forward_applies_the_mapping() {
    let receiver = Receiver::start().await;
    let app = TestApp::dev(Some(&receiver.url("/status/422"))).await;
    let reply = deliver(&app).await;
    assert_eq!(reply, "554 5.0.0 target says 422");
    // Dev mode keeps the raw message even when it was forwarded.
    let id = app.messages().await[0]["id"].as_i64().unwrap();
    let raw = reqwest::get(format!("http://{}/api/messages/{id}/raw", app.web))
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    assert!(raw.text().await.unwrap().contains("Hi there."));
}

#[tokio::test]
async fn only_the_first_2_kb_of_the_response_are_kept() {
    let receiver = Receiver::start().await;
    let app = app_for(&receiver, "/big/422", "").await;
    let reply = deliver(&app).await;
    // The SMTP text is one line of at most 512 characters.
    let text = reply.strip_prefix("554 5.0.0 ").unwrap();
    assert_eq!(text.chars().count(), 512);
    let stored = &app.messages().await[0];
    let body = stored["response_body"].as_str().unwrap();
    // 2048 octets of two-octet characters: 1024 of them, none cut in half.
    assert_eq!(body.len(), 2048);
    assert!(body.chars().all(|c| c == 'é'));
}

#[tokio::test]
async fn tls_failure_to_the_target_gives_450() {
    // An https:// target whose server speaks plain HTTP: the handshake fails.
    let receiver = Receiver::start().await;
    let target = format!("https://{}/status/200", receiver.addr);
    let app = TestApp::start(&config_with(&[("support@example.com", target)], "")).await;
    let reply = deliver(&app).await;
    assert!(reply.starts_with("450 4.3.0 "), "{reply}");
    assert_eq!(app.messages().await[0]["outcome"], "delayed");
}
