//! SMTP submission through the real App (contract §6.5, §6.6): `[submission]` listeners with
//! the self-signed certificate, the outbound queue behind them, driven by Python's smtplib
//! and swaks; what was accepted is read back through `GET /api/outbound`.

use std::net::SocketAddr;

use serde_json::Value;

use postern::outbound::NewCredentialSpec;

use crate::support::{Smtp, TestApp, config_with};

/// A serve-mode app with one submission listener, a credential `app` that may send as
/// `@example.com` and `@elsewhere.test` (its token returned), a test credential `sandbox`
/// (its token returned), and `example.com` as the only sending domain.
async fn serve_app() -> (TestApp, String, String) {
    let extra = "[smtp]\ntls_self_signed = true\n[submission]\nlisten = [\"127.0.0.1:0\"]\n";
    let app = TestApp::start(&config_with(&[], extra)).await;
    let token = app
        .credential(NewCredentialSpec {
            username: "app".into(),
            allowed_senders: vec!["@example.com".into(), "@elsewhere.test".into()],
            ..NewCredentialSpec::default()
        })
        .await;
    let test_token = app
        .credential(NewCredentialSpec {
            username: "sandbox".into(),
            test: true,
            ..NewCredentialSpec::default()
        })
        .await;
    app.add_example_sending_domain().await;
    (app, token, test_token)
}

/// Runs a Python smtplib script with `host`, `port`, `user`, `password`, an unverifying
/// TLS context `ctx`, `connect()` and `refused(action, code, text)` defined; returns its
/// standard output, whose last line must start with `ok`.
async fn python(addr: SocketAddr, user: &str, password: &str, script: &str) -> String {
    let prelude = r#"
import smtplib, ssl, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the certificate is self-signed

def connect():
    s = smtplib.SMTP(host, port, local_hostname="python.test", timeout=20)
    s.ehlo()
    return s

def refused(action, code, text=None):
    try:
        action()
    except smtplib.SMTPResponseException as e:
        assert e.smtp_code == code, (e, code)
        if text is not None:
            assert text in e.smtp_error.decode(), (e.smtp_error, text)
        return
    raise AssertionError(f"expected {code}")

def expect(reply, code, text):
    assert reply[0] == code and text in reply[1].decode(), (reply, code, text)

def queued(reply):
    code, text = reply
    text = text.decode()
    assert code == 250 and text.startswith("2.0.0 Thanks! Queued as: "), reply
    return text.rsplit(" ", 1)[1]
"#;
    let output = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{script}"))
        .args(["127.0.0.1", &addr.port().to_string(), user, password])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let last = stdout.trim_end().lines().last().unwrap_or("");
    assert!(
        output.status.success() && last.starts_with("ok"),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs swaks against `addr` with `args`; returns whether it succeeded and what it printed.
async fn swaks(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port"])
        .arg(addr.port().to_string())
        .args(["--helo", "swaks.test", "--timeout", "20"])
        .args(args)
        .output()
        .await
        .expect("swaks is installed (.ci/run installs it: apt-get install swaks)");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// The uuid of the `250 … Thanks! Queued as: <uuid>` line in a swaks transcript.
fn swaks_uuid(transcript: &str) -> String {
    let line = transcript
        .lines()
        .find(|l| l.contains("250 2.0.0 Thanks! Queued as: "))
        .unwrap_or_else(|| panic!("no Queued as line:\n{transcript}"));
    line.rsplit(' ').next().unwrap().trim().to_string()
}

/// The recipients of an outbound message (as the API shows it) with their states.
pub(crate) fn states(message: &Value) -> Vec<(String, String)> {
    message["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn stored_content(app: &TestApp, id: &str) -> String {
    String::from_utf8(app.queued_content(id).await).unwrap()
}

#[tokio::test]
async fn smtplib_submits_over_starttls_into_the_queue() {
    let (app, token, _) = serve_app().await;
    let submit = app.submission[0];
    let out = python(
        submit,
        "app",
        &token,
        r#"
msg = (
    "From: App <app@example.com>\r\n"
    "To: Someone <someone@example.net>\r\n"
    "Subject: Reset your password\r\n"
    "X-CloudMTA-Class: priority\r\n"
    "x-cloudmta-tags: password-reset,\r\n account\r\n"
    "X-CloudMTA-Require-TLS: true\r\n"
    "Bcc: hidden@example.org\r\n"
    "\r\n"
    "Click the link.\r\n"
)
s = connect()
# No AUTH before TLS, and no mail without AUTH: never an open relay.
assert not s.has_extn("auth"), s.esmtp_features
refused(lambda: s.sendmail("app@example.com", ["someone@example.net"], msg), 530, "Authentication required")
s.starttls(context=ctx)
s.ehlo()
assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}, s.esmtp_features
refused(lambda: s.login(user, "wrong-token"), 535, "Authentication credentials invalid")
s.login(user, password)

# A sender outside the credential's patterns: refused at MAIL.
expect(s.mail("boss@example.org"), 550, "5.7.1 credential app may not send as boss@example.org")
s.rset()

# At most 20 recipients per message.
s.mail("app@example.com")
for i in range(20):
    expect(s.rcpt(f"r{i}@example.net"), 250, "2.1.5")
expect(s.rcpt("r20@example.net"), 452, "4.5.3")
s.rset()

# A From header on a domain that is not a sending domain: refused after DATA.
s.mail("app@example.com")
s.rcpt("someone@example.net")
expect(s.data("From: app@elsewhere.test\r\nSubject: x\r\n\r\nx\r\n"), 550,
       "5.7.1 sending domain elsewhere.test is not set up: add it with `postern sending-domain add elsewhere.test`")
# A From header the credential may not use, and an unknown class.
s.mail("app@example.com")
s.rcpt("someone@example.net")
expect(s.data("From: boss@example.org\r\n\r\nx\r\n"), 550, "5.7.1 credential app may not send as boss@example.org")
s.mail("app@example.com")
s.rcpt("someone@example.net")
expect(s.data("From: app@example.com\r\nX-CloudMTA-Class: bulk\r\n\r\nx\r\n"), 554,
       "5.6.0 x-cloudmta-class must be standard, priority or digest")
s.mail("app@example.com")
s.rcpt("someone@example.net")
expect(s.data("From: app@example.com\r\nX-CloudMTA-Require-TLS: maybe\r\n\r\nx\r\n"), 554,
       "5.6.0 x-cloudmta-require-tls must be true or false")

# Accepted: the envelope recipients are the RCPT TO addresses.
s.mail("app@example.com")
s.rcpt("someone@example.net")
s.rcpt("copy@example.org")
uuid = queued(s.data(msg))
s.quit()
print("ok", uuid)
"#,
    )
    .await;
    let id = out.trim_end().rsplit(' ').next().unwrap();

    let listed = app.get_json("/api/outbound").await;
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        1,
        "only the accepted message is queued: {listed}"
    );
    let message = app.get_json(&format!("/api/outbound/{id}")).await;
    assert_eq!(message["id"], id);
    assert_eq!(message["source"], "smtp");
    assert_eq!(message["username"], "app");
    assert_eq!(message["priority"], "priority");
    assert_eq!(
        message["tags"],
        serde_json::json!(["password-reset", "account"])
    );
    assert_eq!(message["subject"], "Reset your password");
    assert_eq!(message["require_tls"], true);
    assert_eq!(
        message["envelope_from"],
        format!("bounces+{id}@mta.example.com")
    );
    assert_eq!(
        states(&message),
        [
            ("someone@example.net".into(), "queued".into()),
            ("copy@example.org".into(), "queued".into())
        ]
    );

    let content = stored_content(&app, id).await;
    assert!(
        !content.to_ascii_lowercase().contains("x-cloudmta"),
        "control headers are stripped:\n{content}"
    );
    assert!(!content.contains("hidden@example.org"), "{content}");
    assert!(content.starts_with("From: App <app@example.com>\r\nTo: Someone <someone@example.net>\r\nSubject: Reset your password\r\n"), "{content}");
    assert!(
        content.contains(&format!("Message-ID: <{id}@example.com>\r\n")),
        "{content}"
    );
    assert!(
        content.ends_with("\r\n\r\nClick the link.\r\n"),
        "{content}"
    );
}

#[tokio::test]
async fn swaks_submits_with_live_and_test_credentials_and_the_mx_stays_closed() {
    let (app, token, test_token) = serve_app().await;
    let submit = app.submission[0];
    let common = [
        "--from",
        "app@example.com",
        "--to",
        "someone@example.net",
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
    ];
    let (ok, out) = swaks(
        submit,
        &[&common[..], &["app", "--auth-password", &token]].concat(),
    )
    .await;
    assert!(ok, "{out}");
    let live = swaks_uuid(&out);
    let (ok, out) = swaks(
        submit,
        &[&common[..], &["sandbox", "--auth-password", &test_token]].concat(),
    )
    .await;
    assert!(ok, "{out}");
    let test = swaks_uuid(&out);
    // A token is tied to its username.
    let (ok, out) = swaks(
        submit,
        &[&common[..], &["sandbox", "--auth-password", &token]].concat(),
    )
    .await;
    assert!(!ok);
    assert!(out.contains("535 5.7.8"), "{out}");
    // Without TLS, AUTH is not on offer.
    let (ok, out) = swaks(
        submit,
        &[
            "--from",
            "app@example.com",
            "--to",
            "someone@example.net",
            "--auth",
            "PLAIN",
            "--auth-user",
            "app",
            "--auth-password",
            &token,
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains("Host did not advertise authentication"),
        "{out}"
    );

    let message = app.get_json(&format!("/api/outbound/{live}")).await;
    assert_eq!(message["source"], "smtp");
    assert_eq!(
        states(&message),
        [("someone@example.net".into(), "queued".into())]
    );
    let message = app.get_json(&format!("/api/outbound/{test}")).await;
    assert_eq!(message["test_mode"], true);
    assert_eq!(
        states(&message),
        [("someone@example.net".into(), "test".into())]
    );

    // The submission listener relays nothing without AUTH, even over TLS-less plaintext.
    let mut smtp = Smtp::connect(submit).await;
    let ehlo = smtp.ehlo().await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    smtp.cmd(
        "MAIL FROM:<app@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    smtp.cmd("RCPT TO:<someone@example.net>", "503 5.5.1").await;
    smtp.cmd("QUIT", "221").await;
    // The MX listener never offers AUTH and still refuses unrouted recipients.
    let mut mx = app.smtp().await;
    let ehlo = mx.ehlo().await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    mx.cmd("MAIL FROM:<app@example.com>", "250").await;
    mx.cmd("RCPT TO:<someone@example.net>", "550 5.1.1").await;
    mx.cmd("QUIT", "221").await;
    assert_eq!(
        app.get_json("/api/outbound").await["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn dev_mode_takes_any_credentials_without_tls_and_captures() {
    let app = TestApp::dev(None).await;
    let out = python(
        app.submission[0],
        "Me@MyApp.test",
        "anything",
        r#"
s = connect()
assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}, s.esmtp_features
s.login(user, password)
s.mail("me@myapp.test")
s.rcpt("someone@example.net")
uuid = queued(s.data("From: me@myapp.test\r\nSubject: dev\r\nx-cloudmta-tags: dev\r\n\r\nhello\r\n"))
s.quit()
print("ok", uuid)
"#,
    )
    .await;
    let id = out.trim_end().rsplit(' ').next().unwrap();
    let message = app.get_json(&format!("/api/outbound/{id}")).await;
    assert_eq!(message["source"], "smtp");
    // Any username works; it is kept in the credential alphabet.
    assert_eq!(message["username"], "me-myapp.test");
    assert_eq!(message["tags"], serde_json::json!(["dev"]));
    assert_eq!(
        states(&message),
        [("someone@example.net".into(), "captured".into())]
    );
}

/// A submitted message past `[smtp] spool_threshold` is spooled on its way in (the same
/// shell as the MX listener) and queued whole: its body, with lines smtplib dot-stuffs,
/// comes out of the queue byte for byte.
#[tokio::test]
async fn a_large_submission_is_spooled_and_queued_whole() {
    let extra = "[smtp]\ntls_self_signed = true\nspool_threshold = 65536\n\
                 [submission]\nlisten = [\"127.0.0.1:0\"]\n";
    let app = TestApp::start(&config_with(&[], extra)).await;
    let token = app
        .credential(NewCredentialSpec {
            username: "app".into(),
            allowed_senders: vec!["@example.com".into()],
            ..NewCredentialSpec::default()
        })
        .await;
    app.add_example_sending_domain().await;
    let out = python(
        app.submission[0],
        "app",
        &token,
        r#"
body = "".join(f".line {i} of a large message, {'x' * (i % 70)}\r\n" for i in range(8000))
assert len(body) > 300_000
msg = "From: App <app@example.com>\r\nTo: someone@example.net\r\nSubject: large\r\n\r\n" + body
s = connect()
s.starttls(context=ctx)
s.ehlo()
s.login(user, password)
s.mail("app@example.com")
s.rcpt("someone@example.net")
print("ok", queued(s.data(msg)))
s.quit()
"#,
    )
    .await;
    let id = out.trim_end().rsplit(' ').next().unwrap();
    let body: String = (0..8000)
        .map(|i| format!(".line {i} of a large message, {}\r\n", "x".repeat(i % 70)))
        .collect();
    let content = stored_content(&app, id).await;
    assert!(
        content.ends_with(&format!("\r\n\r\n{body}")),
        "the body changed"
    );
}
