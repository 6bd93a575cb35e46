//! Real SMTP clients: lettre (the Rust ecosystem's client) and swaks (what sysadmins type).

use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncTransport, Tokio1Executor};

use crate::support::{Receiver, TestApp, config_with};

async fn tls_app(receiver: &Receiver) -> TestApp {
    let config = config_with(
        &[("*@example.com", receiver.url("/status/200"))],
        "[smtp]\ntls_self_signed = true\n",
    );
    TestApp::start(&config).await
}

fn message(subject: &str) -> Message {
    Message::builder()
        .from("Sender <sender@example.org>".parse::<Mailbox>().unwrap())
        .to("Support <support@example.com>".parse::<Mailbox>().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(String::from("Hello from lettre, ünïcode included."))
        .unwrap()
}

#[tokio::test]
async fn lettre_plain_and_starttls() {
    let receiver = Receiver::start().await;
    let app = tls_app(&receiver).await;

    let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.port())
        .tls(Tls::None)
        .build();
    let response = plain.send(message("plain")).await.unwrap();
    assert_eq!(response.code().to_string(), "250");

    let tls = TlsParameters::builder("mx.postern.test".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let secure = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.port())
        .tls(Tls::Required(tls))
        .build();
    secure.send(message("über TLS")).await.unwrap();

    let posts = receiver.requests();
    assert_eq!(posts.len(), 2);
    let (first, second) = (posts[0].json(), posts[1].json());
    assert_eq!(first["envelope"]["tls"], false);
    assert_eq!(first["envelope"]["tls_cipher"], "");
    assert_eq!(second["envelope"]["tls"], true);
    assert_eq!(second["envelope"]["tls_cipher"], "TLSv1.3");
    assert_eq!(second["headers"]["subject"], "über TLS");
    assert_eq!(second["plain"], "Hello from lettre, ünïcode included.\r\n");
    assert_eq!(app.messages().await[0]["tls_version"], "TLSv1.3");
}

async fn swaks(app: &TestApp, extra: &[&str]) -> std::process::Output {
    let output = tokio::process::Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &app.smtp.port().to_string(),
        ])
        .args([
            "--from",
            "sender@example.org",
            "--to",
            "support@example.com",
        ])
        .args(["--helo", "swaks.test"])
        .args(extra)
        .output()
        .await
        .expect("swaks is installed (.ci/run installs it: apt-get install swaks)");
    assert!(
        output.status.success(),
        "swaks {extra:?} failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

#[tokio::test]
async fn swaks_plain_tls_and_pipelining() {
    let receiver = Receiver::start().await;
    let app = tls_app(&receiver).await;
    swaks(&app, &[]).await;
    let out = swaks(&app, &["--tls"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("TLS started"));
    // With PIPELINING, swaks writes MAIL, RCPT and DATA before reading any reply.
    let pipelined =
        " -> MAIL FROM:<sender@example.org>\n -> RCPT TO:<support@example.com>\n -> DATA\n";
    let out = swaks(&app, &["--pipeline"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(pipelined));
    let out = swaks(&app, &["--tls", "--pipeline"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pipelined.replace("->", "~>")));
    let posts = receiver.requests();
    assert_eq!(posts.len(), 4);
    let tls: Vec<bool> = posts
        .iter()
        .map(|p| p.json()["envelope"]["tls"].as_bool().unwrap())
        .collect();
    assert_eq!(tls, [false, true, false, true]);
    for post in &posts {
        assert_eq!(post.json()["envelope"]["helo_domain"], "swaks.test");
    }
}

/// STARTTLS with a certificate and key from PEM files, as production configures it.
#[tokio::test]
async fn starttls_with_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["mx.postern.test".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();

    let receiver = Receiver::start().await;
    let extra = format!(
        "[smtp]\ntls_cert = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let app = TestApp::start(&config_with(
        &[("*@example.com", receiver.url("/status/200"))],
        &extra,
    ))
    .await;

    // Trust exactly this certificate: verification succeeds only if Postern serves it.
    let root =
        lettre::transport::smtp::client::Certificate::from_pem(certified.cert.pem().as_bytes())
            .unwrap();
    let tls = TlsParameters::builder("mx.postern.test".into())
        .add_root_certificate(root)
        .build_rustls()
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp.port())
        .tls(Tls::Required(tls))
        .build();
    transport.send(message("verified TLS")).await.unwrap();
    assert_eq!(receiver.single().json()["envelope"]["tls"], true);
}
