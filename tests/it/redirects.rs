//! Mail never follows a redirect where it was not sent (issue 12 §5): same origin or an
//! `http` → `https` upgrade on the same host only, another origin with
//! `follow_cross_origin_redirects`, never `https` → `http`; a refused redirect is a 450
//! recorded on the attempt. `require_https` refuses plain `http://` off loopback; an
//! `extra_ca_file` makes a private CA's target verifiable, and nothing else does.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::binary::run;
use crate::support::tls_front::TlsFront;
use crate::support::{Receiver, TestApp, config_with};

const MESSAGE: &str = "From: Sender <sender@example.com>\r\nTo: support@example.com\r\nSubject: Hello\r\nMessage-ID: <r1@example.com>\r\n\r\nHi there.";

const CROSS_ORIGIN: &str = "refused: leaves the target's origin \
     (set [delivery] follow_cross_origin_redirects = true to allow)";
const DOWNGRADE: &str = "refused: it leaves https for plain http (never followed)";

/// Sends one message to `to` and returns the DATA reply.
async fn deliver(app: &TestApp, to: &str) -> String {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.send_mail("sender@example.com", &[to], MESSAGE).await
}

/// The attempts of the newest message.
async fn last_attempts(app: &TestApp) -> Vec<Value> {
    let id = app.messages().await[0]["id"].as_i64().unwrap();
    let detail = app.get_json(&format!("/api/messages/{id}")).await;
    detail["attempts"].as_array().unwrap().clone()
}

fn paths(receiver: &Receiver) -> Vec<String> {
    receiver.requests().into_iter().map(|r| r.path).collect()
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_unless_allowed() {
    let app_side = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    // Another port of the same host is another origin.
    let away = format!("http://127.0.0.1:{}/status/200", elsewhere.addr.port());
    let addresses = [
        (
            "away@example.com",
            app_side.url(&format!("/goto?to={away}")),
        ),
        ("same@example.com", app_side.url("/goto?to=/status/201")),
    ];
    let app = TestApp::start(&config_with(&addresses, "")).await;

    let reply = deliver(&app, "away@example.com").await;
    let expected = format!("redirect to {away} {CROSS_ORIGIN}");
    assert!(
        reply.starts_with("450 4.3.0 ") && reply.contains(&expected),
        "{reply}"
    );
    assert!(elsewhere.requests().is_empty(), "the mail left for {away}");
    let attempts = last_attempts(&app).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["http_status"], 307);
    assert_eq!(attempts[0]["error"], expected);
    assert_eq!(app.messages().await[0]["outcome"], "delayed");

    // The same origin is still followed, with the same body.
    assert!(deliver(&app, "same@example.com").await.starts_with("250 "));
    let requests = app_side.requests();
    assert_eq!(paths(&app_side)[1..], ["/goto", "/status/201"]);
    assert_eq!(requests[1].body, requests[2].body);
    app.stop().await;

    // Allowed by the setting, the redirect to the other origin is followed.
    let allowed = "[delivery]\nfollow_cross_origin_redirects = true\n";
    let app = TestApp::start(&config_with(&addresses, allowed)).await;
    assert!(deliver(&app, "away@example.com").await.starts_with("250 "));
    assert_eq!(paths(&elsewhere), ["/status/200"]);
    app.stop().await;
}

#[tokio::test]
async fn an_upgrade_to_https_is_followed_and_https_never_goes_back_to_http() {
    let plain = Receiver::start().await;
    let tls = Receiver::start().await;
    let front = TlsFront::start(plain.addr, tls.addr).await;
    let files = tempfile::tempdir().unwrap();
    let ca = front.write_ca(files.path());
    let upgrade = front.https_url("/status/200");
    let downgrade = front.http_url("/status/200");
    let addresses = [
        (
            "up@example.com",
            front.http_url(&format!("/goto?to={upgrade}")),
        ),
        (
            "down@example.com",
            front.https_url(&format!("/goto?to={downgrade}")),
        ),
    ];
    for cross_origin in [false, true] {
        let delivery = format!(
            "[delivery]\nextra_ca_file = {:?}\nfollow_cross_origin_redirects = {cross_origin}\n",
            ca.display()
        );
        let app = TestApp::start(&config_with(&addresses, &delivery)).await;

        // http://host:P → https://host:P: the same host, now encrypted and verified.
        let reply = deliver(&app, "up@example.com").await;
        assert!(reply.starts_with("250 "), "{reply}");
        assert_eq!(paths(&plain), ["/goto"]);
        assert_eq!(paths(&tls), ["/status/200"]);

        // https → http, even to the same host and port, even when other origins are allowed.
        let reply = deliver(&app, "down@example.com").await;
        let expected = format!("redirect to {downgrade} {DOWNGRADE}");
        assert!(
            reply.starts_with("450 ") && reply.contains(&expected),
            "{reply}"
        );
        assert_eq!(
            paths(&plain),
            ["/goto"],
            "nothing more went over plain http"
        );
        assert_eq!(paths(&tls), ["/status/200", "/goto"]);
        assert_eq!(last_attempts(&app).await[0]["error"], expected);
        app.stop().await;
        plain.clear();
        tls.clear();
    }
}

#[tokio::test]
async fn a_private_ca_is_trusted_only_through_extra_ca_file() {
    let plain = Receiver::start().await;
    let tls = Receiver::start().await;
    let front = TlsFront::start(plain.addr, tls.addr).await;
    let addresses = [("support@example.com", front.https_url("/status/200"))];
    let app = TestApp::start(&config_with(&addresses, "")).await;
    let reply = deliver(&app, "support@example.com").await;
    assert!(reply.starts_with("450 "), "{reply}");
    assert!(
        tls.requests().is_empty(),
        "an unverified target got the mail"
    );
    let error = last_attempts(&app).await[0]["error"].clone();
    assert!(error.as_str().unwrap().contains("certificate"), "{error}");
    app.stop().await;

    let files = tempfile::tempdir().unwrap();
    let ca = front.write_ca(files.path());
    let delivery = format!("[delivery]\nextra_ca_file = {:?}\n", ca.display());
    let app = TestApp::start(&config_with(&addresses, &delivery)).await;
    assert!(
        deliver(&app, "support@example.com")
            .await
            .starts_with("250 ")
    );
    assert_eq!(paths(&tls), ["/status/200"]);
    app.stop().await;
}

fn check(toml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    let toml = format!(
        "{toml}\n[server]\nhostname = \"mx.postern.test\"\ndata_dir = {:?}\n",
        dir.path().join("data").display()
    );
    std::fs::write(&path, toml).unwrap();
    run(&["check", "--config", path.to_str().unwrap()], &[])
}

#[test]
fn check_refuses_plain_http_targets_and_a_bad_ca_file_when_told() {
    let address = |target: &str| {
        format!(
            "[delivery]\nrequire_https = true\n\n[[address]]\naddress = \"support@example.com\"\n\
             target = \"https://app.example.com/in\"\nerror_callback = \"{target}\"\n"
        )
    };
    let (code, _, err) = check(&address("http://user:s3cret@app.example.com/errors"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("address[0].error_callback = \"http://***@app.example.com/errors\"")
            && err.contains("require_https = true: use an https:// URL"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    // Loopback stays allowed.
    let (code, out, err) = check(&address("http://127.0.0.1:3000/errors"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("plain http://: refused off loopback (require_https)"),
        "{out}"
    );

    let (code, _, err) = check("[delivery]\nextra_ca_file = \"/nonexistent/ca.pem\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("delivery.extra_ca_file = \"/nonexistent/ca.pem\""),
        "{err}"
    );
}

#[tokio::test]
async fn require_https_refuses_plain_http_in_the_api() {
    let receiver = Receiver::start().await;
    let config = config_with(&[], "[delivery]\nrequire_https = true\n");
    let app = TestApp::start(&config).await;
    let key = app.api_key.clone();
    let address = |target: String| json!({ "address": "new@example.com", "target": target });

    let remote = address("http://app.example.com/in".into());
    let (status, body) = app
        .call(&key, Method::POST, "/api/addresses", Some(remote))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("require_https = true"), "{body}");
    let domain = json!({ "domain": "example.org", "target": "http://app.example.com/in" });
    let (status, body) = app
        .call(&key, Method::POST, "/api/domains", Some(domain))
        .await;
    assert_eq!(status, 422, "{body}");
    let credential = json!({ "username": "app", "events_url": "http://hooks.example.net/x" });
    let (status, body) = app
        .call(&key, Method::POST, "/api/credentials", Some(credential))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "events_url");

    // Loopback is allowed, and mail goes there.
    let local = address(receiver.url("/status/200"));
    let (status, body) = app
        .call(&key, Method::POST, "/api/addresses", Some(local))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(app.mail_to("new@example.com").await.starts_with("250 "));
    assert_eq!(paths(&receiver), ["/status/200"]);
}

#[tokio::test]
async fn require_https_stops_plain_http_legs_and_stored_entries() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(&[], "")).await;
    let key = app.api_key.clone();
    let stored = json!({ "address": "old@example.com", "target": "http://app.example.com/in" });
    let (status, body) = app
        .call(&key, Method::POST, "/api/addresses", Some(stored))
        .await;
    assert_eq!(status, 201, "{body}");
    let data_dir = app.stop().await;

    // 0.0.0.0 is not a loopback address, though a connection to it would stay on this machine.
    let away = format!("http://0.0.0.0:{}/status/200", receiver.addr.port());
    let target = receiver.url(&format!("/goto?to={away}"));
    let delivery = "[delivery]\nrequire_https = true\nfollow_cross_origin_redirects = true\n";
    let config = config_with(&[("leg@example.com", target)], delivery);
    let app = TestApp::start_in(&config, data_dir).await;

    // The entry stored before require_https is left out of the routes.
    let (_, list) = app.call(&key, Method::GET, "/api/addresses", None).await;
    let old = &list["addresses"].as_array().unwrap()[1];
    assert_eq!(
        (&old["address"], &old["active"]),
        (&json!("old@example.com"), &json!(false))
    );
    assert!(
        app.rcpt_reply("old@example.com")
            .await
            .starts_with("550 5.1.1")
    );

    // A redirect leg over plain http off loopback is not made, and says why.
    let reply = deliver(&app, "leg@example.com").await;
    let expected =
        format!("{away} refused: plain http:// is refused because [delivery] require_https = true");
    assert!(
        reply.starts_with("450 ") && reply.contains(&expected),
        "{reply}"
    );
    assert_eq!(paths(&receiver), ["/goto"]);
    let attempts = last_attempts(&app).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[1]["error"]
            .as_str()
            .unwrap()
            .starts_with(&expected)
    );
}
