//! What an outside probe broke in the web listener (issue 10 items 2, 4 and 8), over the
//! real app: any `Host` was answered (DNS rebinding could read captured mail and create an
//! admin key), answers lacked `nosniff`, `/target/delay` held a connection for 10 minutes,
//! and the listener's limits could not be configured. Requests are written by hand so that
//! the `Host` header is exactly what a test says (empty, missing, twice).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestApp;
use crate::support::raw_tcp::{connect_from, read_until_closed};

/// `head` (request line and headers, without the final empty line) sent as is, with
/// `Connection: close`; the whole answer.
async fn send_raw(web: SocketAddr, head: &str) -> String {
    let mut stream = connect_from("127.0.0.1", web).await;
    let request = format!("{head}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // Past the delay target's 30 s cap: a held answer fails, a capped one arrives.
    read_until_closed(&mut stream, Duration::from_secs(45)).await
}

/// `GET path` with `Host: host`.
async fn get_with_host(web: SocketAddr, path: &str, host: &str) -> String {
    send_raw(web, &format!("GET {path} HTTP/1.1\r\nHost: {host}")).await
}

fn status(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or_default()
}

fn has_nosniff(answer: &str) -> bool {
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .any(|line| line.eq_ignore_ascii_case("x-content-type-options: nosniff"))
}

/// A dev-mode app with one captured message (id 1) whose body says `SECRET-BODY`.
async fn dev_with_a_message() -> TestApp {
    let app = TestApp::dev(None).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail(
            "a@example.net",
            &["to@example.com"],
            "Subject: private\r\n\r\nSECRET-BODY\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    app
}

#[tokio::test]
async fn a_foreign_host_cannot_read_captured_mail() {
    let app = dev_with_a_message().await;
    let web = app.web;
    let port = web.port();
    let raw = "/api/messages/1/raw";
    let refused = get_with_host(web, raw, &format!("evil.example:{port}")).await;
    assert_eq!(status(&refused), "421", "{refused}");
    assert!(!refused.contains("SECRET-BODY"), "{refused}");
    assert!(refused.contains("web.public_url"), "{refused}");
    assert!(refused.contains("localhost, 127.0.0.1, [::1]"), "{refused}");
    assert!(has_nosniff(&refused), "{refused}");
    // Public routes are behind the same check.
    let health = get_with_host(web, "/healthz", "evil.example").await;
    assert_eq!(status(&health), "421", "{health}");
    // Loopback names and addresses, with any port or none, are served.
    for host in [
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("127.0.0.1:{port}"),
        format!("127.0.0.2:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = get_with_host(web, raw, &host).await;
        assert_eq!(status(&answer), "200", "{host}: {answer}");
        assert!(answer.contains("SECRET-BODY"), "{host}: {answer}");
        assert!(has_nosniff(&answer), "{host}: /raw without nosniff");
    }
}

#[tokio::test]
async fn an_empty_missing_or_doubled_host_is_refused() {
    let app = dev_with_a_message().await;
    let web = app.web;
    let path = "/api/messages/1/raw";
    for head in [
        format!("GET {path} HTTP/1.1\r\nHost: "),
        format!("GET {path} HTTP/1.0"),
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nHost: evil.example"),
        // Absolute form: the URI's authority names the host, whatever Host says.
        format!("GET http://evil.example{path} HTTP/1.1\r\nHost: localhost"),
    ] {
        let answer = send_raw(web, &head).await;
        assert!(
            matches!(status(&answer), "421" | "400"),
            "{head:?}: {answer}"
        );
        assert!(!answer.contains("SECRET-BODY"), "{head:?}: {answer}");
    }
    // HTTP/1.0 with a loopback Host is fine.
    let answer = send_raw(web, &format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1")).await;
    assert_eq!(status(&answer), "200", "{answer}");
}

#[tokio::test]
async fn a_rebound_page_gets_no_csrf_token_and_cannot_create_a_key() {
    let app = TestApp::dev(None).await;
    let evil = format!("evil.example:{}", app.web.port());
    let mut browser = app.browser();
    let page = browser
        .request(Method::GET, "/keys", &[("host", &evil)], None)
        .await;
    assert_eq!(page.status, 421, "{}", page.body);
    assert!(!page.body.contains("csrf"), "{}", page.body);
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    // Even with a token taken from a loopback page, a foreign Host is refused.
    let token = browser.get("/keys").await.csrf_token();
    let post = browser
        .request(
            Method::POST,
            "/api/keys",
            &[
                ("host", &evil),
                ("content-type", "application/json"),
                ("x-csrf-token", &token),
            ],
            Some(r#"{"name":"rebound","role":"admin"}"#.into()),
        )
        .await;
    assert_eq!(post.status, 421, "{}", post.body);
    assert!(!post.body.contains("pst_"), "{}", post.body);
    let keys = app.get_json("/api/keys").await.to_string();
    assert!(!keys.contains("rebound"), "{keys}");
}

#[tokio::test]
async fn the_public_and_tracking_hosts_are_served() {
    let app = TestApp::start(concat!(
        "[web]\npublic_url = \"https://Postern.Example.com\"\n",
        "[outbound]\ntracking_url = \"https://track.example.com:8443\"\n",
    ))
    .await;
    let web = app.web;
    for host in [
        "postern.example.com",
        "postern.example.com:443",
        "track.example.com:8443",
        "localhost",
    ] {
        let answer = get_with_host(web, "/healthz", host).await;
        assert_eq!(status(&answer), "200", "{host}: {answer}");
    }
    let refused = get_with_host(web, "/healthz", "other.example.com").await;
    assert_eq!(status(&refused), "421", "{refused}");
    assert!(refused.contains("postern.example.com"), "{refused}");
}

#[tokio::test]
async fn every_answer_says_nosniff() {
    let app = dev_with_a_message().await;
    let host = format!("127.0.0.1:{}", app.web.port());
    for path in [
        "/api/messages",
        "/api/messages/1",
        "/api/openapi.json",
        "/target/404",
        "/healthz",
        "/no/such/endpoint",
    ] {
        let answer = get_with_host(app.web, path, &host).await;
        assert!(has_nosniff(&answer), "{path}: {answer}");
    }
}

#[tokio::test]
async fn the_delay_target_is_capped_at_30_seconds() {
    let app = TestApp::dev(None).await;
    let started = Instant::now();
    let answer = get_with_host(app.web, "/target/delay/600000", "localhost").await;
    assert_eq!(status(&answer), "200", "{answer}");
    assert!(
        answer.contains("after 30000 ms (the longest delay; 600000 ms asked)"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(50), "not capped");
}

#[tokio::test]
async fn outside_dev_mode_delayed_answers_in_flight_are_limited() {
    let app = TestApp::start("").await;
    let web = app.web;
    let mut waiting = Vec::new();
    for _ in 0..8 {
        waiting.push(tokio::spawn(get_with_host(
            web,
            "/target/delay/3000",
            "localhost",
        )));
    }
    // Let the eight reach their wait; the ninth is turned away at once.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let refused = get_with_host(web, "/target/delay/3000", "localhost").await;
    assert_eq!(status(&refused), "429", "{refused}");
    assert!(refused.contains("Retry-After") || refused.contains("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(2));
    for answer in waiting {
        let answer = answer.await.unwrap();
        assert_eq!(status(&answer), "200", "{answer}");
    }
    // The places are given back; /target/{code} is never limited.
    let again = get_with_host(web, "/target/delay/1", "localhost").await;
    assert_eq!(status(&again), "200", "{again}");
    assert_eq!(
        status(&get_with_host(web, "/target/202", "localhost").await),
        "202"
    );
}

#[tokio::test]
async fn the_connection_cap_per_address_is_configurable() {
    let app = TestApp::start("[web]\nmax_connections_per_ip = 2\n").await;
    let web = app.web;
    let _held = [
        connect_from("127.0.0.1", web).await,
        connect_from("127.0.0.1", web).await,
    ];
    let mut third = connect_from("127.0.0.1", web).await;
    let refused = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    // Another client address is served.
    let mut other = connect_from("127.0.0.2", web).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut other, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn the_header_deadline_is_configurable() {
    let app = TestApp::start("[web]\nheader_read_timeout_secs = 1\n").await;
    let mut slow = connect_from("127.0.0.3", app.web).await;
    slow.write_all(b"GET /heal").await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the deadline"
    );
}
