//! Authorization callbacks at RCPT time, error callbacks after non-2xx answers (contract §7),
//! and the built-in test targets (contract §2.10).

use crate::support::{Receiver, TestApp, config_with, eventually, eventually_ok};

fn config(
    receiver: &Receiver,
    auth_path: &str,
    target_path: &str,
    error_path: Option<&str>,
) -> String {
    let mut toml = format!(
        "[server]\nhostname = \"mx.postern.test\"\n[[address]]\naddress = \"*@example.com\"\ntarget = \"{}\"\nauth_callback = \"{}\"\n",
        receiver.url(target_path),
        receiver.url(auth_path),
    );
    if let Some(path) = error_path {
        toml.push_str(&format!("error_callback = \"{}\"\n", receiver.url(path)));
    }
    toml
}

#[tokio::test]
async fn authorization_callback_decides_at_rcpt() {
    for (path, expected) in [
        ("/status/200", "250 2.1.5"),
        ("/status/403", "550 5.7.1"),
        ("/status/503", "450 4.7.1"),
        ("/redirect/2/204", "250 2.1.5"),
        ("/slow/5000", "450 4.7.1"),
    ] {
        let receiver = Receiver::start().await;
        let toml = config(&receiver, path, "/status/200", None) + "[delivery]\ntimeout_secs = 1\n";
        let app = TestApp::start(&toml).await;
        let mut smtp = app.smtp().await;
        smtp.cmd("EHLO client.test", "250").await;
        smtp.cmd("MAIL FROM:<from+test@example.net> SIZE=1234", "250")
            .await;
        smtp.cmd("RCPT TO:<to@example.com>", expected).await;
        let request = &receiver.requests()[0];
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded"),
            "{path}"
        );
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(field("to"), Some("to@example.com"));
        assert_eq!(field("from"), Some("from+test@example.net"));
        assert_eq!(field("size"), Some("1234"));
        assert_eq!(field("helo_domain"), Some("client.test"));
        assert_eq!(field("remote_ip"), Some("127.0.0.1"));
        assert_eq!(field("spf[domain]"), Some("example.net"));
    }
}

#[tokio::test]
async fn authorization_callback_json_and_xml() {
    for (path, content_type) in [
        ("/status/200.json", "application/json"),
        ("/status/200.xml", "application/xml"),
    ] {
        let receiver = Receiver::start().await;
        let app = TestApp::start(&config(&receiver, path, "/status/200", None)).await;
        let mut smtp = app.smtp().await;
        smtp.ehlo().await;
        smtp.cmd("MAIL FROM:<a@example.net>", "250").await;
        smtp.cmd("RCPT TO:<to@example.com>", "250").await;
        let request = &receiver.requests()[0];
        assert_eq!(request.header("content-type"), Some(content_type));
        let body = String::from_utf8(request.body.to_vec()).unwrap();
        if content_type == "application/json" {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["to"], "to@example.com");
            assert_eq!(json["spf"]["domain"], "example.net");
            assert!(json.get("size").is_none(), "no SIZE= was sent");
        } else {
            assert!(
                body.contains("<parameters>")
                    && body.contains("<helo-domain>client.test</helo-domain>"),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn error_callback_after_a_non_2xx_answer() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(
        &receiver,
        "/status/200",
        "/status/422",
        Some("/errors.json"),
    ))
    .await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail("a@example.net", &["to@example.com"], "Subject: e\r\n\r\nx")
        .await;
    assert!(reply.starts_with("554 "), "{reply}");
    // The callback runs after the reply; wait for it.
    let report = eventually_ok("the error callback", async || {
        let mut requests = receiver.requests().into_iter();
        let report = requests.find(|r| r.path == "/errors.json");
        report.ok_or("not called yet".to_string())
    })
    .await
    .json();
    assert_eq!(
        report,
        serde_json::json!({"status": 422, "to": "to@example.com", "from": "a@example.net", "response": "target says 422"})
    );
    // A 2xx answer fires no error callback.
    let reply = smtp
        .send_mail("a@example.net", &["to@example.com"], "Subject: ok\r\n\r\nx")
        .await;
    assert!(reply.starts_with("554 "));
    // The message detail lists the target POST and, once done, the callback.
    let id = app.messages().await.last().unwrap()["id"].as_i64().unwrap();
    let detail = eventually_ok("the callback in the message detail", async || {
        let detail = app.get_json(&format!("/api/messages/{id}")).await;
        let attempts = detail["attempts"].as_array().unwrap().len();
        match attempts >= 2 {
            true => Ok(detail),
            false => Err(format!("{attempts} attempts")),
        }
    })
    .await;
    let kinds: Vec<&str> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["target", "error_callback"]);
    assert_eq!(detail["attempts"][0]["http_status"], 422);
    assert_eq!(detail["attempts"][0]["format"], "json+n");
}

#[tokio::test]
async fn unreachable_target_reports_status_0() {
    let receiver = Receiver::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        "[[address]]\naddress = \"*@example.com\"\ntarget = \"http://127.0.0.1:{port}/\"\nerror_callback = \"{}\"\n",
        receiver.url("/errors")
    );
    let app = TestApp::start(&toml).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail("a@example.net", &["to@example.com"], "Subject: e\r\n\r\nx")
        .await;
    assert!(reply.starts_with("450 "), "{reply}");
    eventually("the error callback", async || {
        !receiver.requests().is_empty()
    })
    .await;
    let request = receiver.single();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert_eq!(form[0], ("status".to_string(), "0".to_string()));
}

/// `/target/{code}` on Postern's own web listener: a setup can be tried without an app.
#[tokio::test]
async fn built_in_test_targets() {
    let targets = TestApp::dev(None).await;
    for (path, expected) in [
        ("/target/200", "250 2.0.0"),
        ("/target/404", "554 5.0.0 Postern test target answered 404"),
        ("/target/500", "450 4.3.0"),
        ("/target/delay/50", "250 2.0.0"),
    ] {
        let target = format!("http://{}{path}", targets.web);
        let app = TestApp::start(&config_with(&[("*@example.com", target)], "")).await;
        let mut smtp = app.smtp().await;
        smtp.ehlo().await;
        let reply = smtp
            .send_mail("a@example.net", &["to@example.com"], "Subject: t\r\n\r\nx")
            .await;
        assert!(reply.starts_with(expected), "{path}: {reply}");
    }
    let response = reqwest::get(format!("http://{}/target/99", targets.web))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn api_filters() {
    let receiver = Receiver::start().await;
    let toml = config_with(
        &[
            ("ok@example.com", receiver.url("/status/200")),
            ("no@example.com", receiver.url("/status/422")),
        ],
        "",
    );
    let app = TestApp::start(&toml).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.send_mail(
        "alice@example.net",
        &["ok@example.com"],
        "Subject: 1\r\n\r\nx",
    )
    .await;
    smtp.send_mail(
        "bob@example.net",
        &["no@example.com"],
        "Subject: 2\r\n\r\nx",
    )
    .await;
    let subjects = |query: &str| {
        let query = query.to_string();
        let app = &app;
        async move {
            app.get_json(&format!("/api/messages?{query}")).await["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["subject"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(subjects("status=rejected").await, ["2"]);
    assert_eq!(subjects("status=successful").await, ["1"]);
    assert_eq!(subjects("sender=ALICE@example.net").await, ["1"]);
    assert_eq!(subjects("recipient=no@example.com").await, ["2"]);
    assert_eq!(subjects("address=ok@example.com").await, ["1"]);
    assert_eq!(subjects("since=2000-01-01").await, ["2", "1"]);
    assert_eq!(subjects("until=2000-01-01").await, Vec::<String>::new());
    assert_eq!(
        subjects("since=2000-01-01T00:00:00%2B02:00").await,
        ["2", "1"]
    );
    let bad = app.get("/api/messages?status=nope").await;
    assert_eq!(bad.status(), 400);
    let bad = app.get("/api/messages?since=yesterday").await;
    assert_eq!(bad.status(), 400);
}
