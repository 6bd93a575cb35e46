//! Issue 10 items 1 and 6 over the real app: the send API's `raw` obeys the rules SMTP
//! submission does (one allowed `From`, `Sender` matched, `Bcc` removed and reaching
//! nobody), and a control character in an address field is a 422 naming the field, with
//! nothing queued. The same raw messages over SMTP submission are refused as before.

use serde_json::{Value, json};

use postern::outbound::NewCredentialSpec;
use postern::outbound::dkim::Algorithm;

use crate::support::{TestApp, config_with};

/// A serve-mode app with a submission listener, `send.test` as a sending domain and a
/// credential `alerts` that may send as `alerts@send.test` only (its token returned).
async fn limited_app() -> (TestApp, String) {
    let extra = "[smtp]\ntls_self_signed = true\n[submission]\nlisten = [\"127.0.0.1:0\"]\n";
    let app = TestApp::start(&config_with(&[], extra)).await;
    let token = app
        .credential(NewCredentialSpec {
            username: "alerts".into(),
            allowed_senders: vec!["alerts@send.test".into()],
            ..NewCredentialSpec::default()
        })
        .await;
    app.outbound
        .add_sending_domain("send.test", Algorithm::Ed25519, None, "mx.postern.test")
        .await
        .expect("send.test is added as a sending domain");
    (app, token)
}

/// A `raw` request from `alerts@send.test` to `b@sink.test`.
fn raw_request(raw: &str) -> Value {
    json!({"from": "alerts@send.test", "to": "b@sink.test", "raw": raw})
}

async fn queued_count(app: &TestApp) -> usize {
    let listed = app.get_json("/api/outbound").await;
    listed["messages"].as_array().unwrap().len()
}

#[tokio::test]
async fn raw_with_a_second_from_or_a_foreign_sender_is_refused_and_nothing_queued() {
    let (app, token) = limited_app().await;
    for (raw, status, expected) in [
        (
            "From: alerts@send.test\r\nFrom: ceo@send.test\r\nTo: b@sink.test\r\n\r\nx\r\n",
            422,
            "raw: the From header must hold exactly one address",
        ),
        (
            "From: ceo@send.test, alerts@send.test\r\nTo: b@sink.test\r\n\r\nx\r\n",
            422,
            "raw: the From header must hold exactly one address",
        ),
        (
            "From: alerts@send.test\r\nSender: ceo@send.test\r\nTo: b@sink.test\r\n\r\nx\r\n",
            403,
            "credential alerts may not send as ceo@send.test (the Sender header)",
        ),
        (
            "From: alerts@send.test\r\nTo: b@sink.test\r\nX-A: b\rBcc: spy@sink.test\r\n\r\nx\r\n",
            422,
            "raw: header line 3 holds a NUL or a CR",
        ),
    ] {
        let (got, body) = app.post_message("alerts", &token, raw_request(raw)).await;
        assert_eq!(got, status, "{raw:?}: {body}");
        assert_eq!(body["status"], status);
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(expected),
            "{error:?} should say {expected:?}"
        );
    }
    assert_eq!(queued_count(&app).await, 0, "nothing refused is queued");

    // Reply-To is free; Sender may name the credential's own address.
    let raw = "From: alerts@send.test\r\nSender: alerts@send.test\r\nReply-To: ceo@send.test\r\nTo: b@sink.test\r\n\r\nx\r\n";
    let (got, body) = app.post_message("alerts", &token, raw_request(raw)).await;
    assert_eq!(got, 202, "{body}");
}

#[tokio::test]
async fn a_bcc_header_in_raw_is_removed_and_reaches_nobody() {
    let (app, token) = limited_app().await;
    let raw = "From: alerts@send.test\r\nTo: b@sink.test\r\nBcc: spy@sink.test,\r\n\tother-spy@sink.test\r\nSubject: hi\r\n\r\nbody\r\n";
    let (status, body) = app.post_message("alerts", &token, raw_request(raw)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["to"], json!(["b@sink.test"]));
    assert_eq!(body["cc"], json!([]));
    let id = body["id"].as_str().unwrap();

    let content = String::from_utf8(app.queued_content(id).await).unwrap();
    assert_eq!(
        content,
        "From: alerts@send.test\r\nTo: b@sink.test\r\nSubject: hi\r\n\r\nbody\r\n"
    );
    let detail = app.get_json(&format!("/api/outbound/{id}")).await;
    let recipients: Vec<&str> = detail["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(recipients, ["b@sink.test"], "the echo is what is delivered");
}

#[tokio::test]
async fn a_control_character_in_an_address_field_is_a_422_naming_it() {
    let (app, token) = limited_app().await;
    let base = json!({"from": "alerts@send.test", "to": "b@sink.test", "plain": "x"});
    for (key, value, expected) in [
        (
            "to",
            json!("x@sink.test\r\nBcc: spy@sink.test"),
            "to contains a control character",
        ),
        (
            "to",
            json!(["b@sink.test", "x@sink.test\nBcc: spy@sink.test"]),
            "to contains a control character",
        ),
        (
            "cc",
            json!("c@sink.test\r\nBcc: spy@sink.test"),
            "cc contains a control character",
        ),
        (
            "from",
            json!("alerts@send.test\r\nSender: ceo@send.test"),
            "from contains a control character",
        ),
        (
            "headers",
            json!({"Reply-To": "r@sink.test\u{0}"}),
            "header \"Reply-To\"",
        ),
    ] {
        let mut request = base.clone();
        request[key] = value;
        let (status, body) = app.post_message("alerts", &token, request).await;
        assert_eq!(status, 422, "{key}: {body}");
        assert_eq!(body["status"], 422);
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(expected),
            "{error:?} should say {expected:?}"
        );
    }
    assert_eq!(queued_count(&app).await, 0, "nothing refused is queued");
}

#[tokio::test]
async fn the_same_raw_over_smtp_submission_is_refused_as_before() {
    let (app, token) = limited_app().await;
    let script = r#"
import smtplib, ssl, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the certificate is self-signed
s = smtplib.SMTP(host, port, local_hostname="python.test", timeout=20)
s.starttls(context=ctx)
s.login(user, password)

def data(msg):
    s.mail("alerts@send.test")
    s.rcpt("b@sink.test")
    return s.data(msg)

def expect(reply, code, text):
    assert reply[0] == code and text in reply[1].decode(), (reply, code, text)

expect(data("From: alerts@send.test\r\nFrom: ceo@send.test\r\nTo: b@sink.test\r\n\r\nx\r\n"),
       554, "5.6.0 the From header must hold exactly one address")
expect(data("From: ceo@send.test, alerts@send.test\r\nTo: b@sink.test\r\n\r\nx\r\n"),
       554, "5.6.0 the From header must hold exactly one address")
expect(data("From: alerts@send.test\r\nSender: ceo@send.test\r\n\r\nx\r\n"),
       550, "5.7.1 credential alerts may not send as ceo@send.test (the Sender header)")
reply = data("From: alerts@send.test\r\nTo: b@sink.test\r\nBcc: spy@sink.test\r\n\r\nx\r\n")
assert reply[0] == 250, reply
s.quit()
print("ok", reply[1].decode().rsplit(" ", 1)[1])
"#;
    let output = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(["127.0.0.1", &app.submission[0].port().to_string(), "alerts"])
        .arg(&token)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success() && stdout.starts_with("ok "),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = stdout.trim().rsplit(' ').next().unwrap();
    let content = String::from_utf8(app.queued_content(id).await).unwrap();
    assert!(!content.contains("spy@sink.test"), "{content}");
    assert_eq!(
        queued_count(&app).await,
        1,
        "only the last message is queued"
    );
}
