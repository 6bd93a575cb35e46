//! Refusals are messages too (issue 14): a recipient refused at RCPT — no such address, the
//! domain's regexp, the authorization callback — is recorded with the sender, the recipient,
//! the client's address and the reply it got; the API and the dashboard list such rows only
//! under `status=refused`, and the message list counts them.

use serde_json::{Value, json};

use crate::support::{Receiver, TestApp};

fn config(receiver: &Receiver) -> String {
    format!(
        r#"
[server]
hostname = "mx.postern.test"

[[domain]]
domain = "tickets.test"
auth_regex = 'ticket-\d+@tickets\.test'
target = "{target}"

[[address]]
address = "known@in.test"
target = "{target}"

[[address]]
address = "gated@in.test"
target = "{target}"
auth_callback = "{refuse}"
"#,
        target = receiver.url("/status/200"),
        refuse = receiver.url("/status/403"),
    )
}

#[tokio::test]
async fn refused_recipients_are_recorded_and_listed_under_their_filter() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(&receiver)).await;
    let mut smtp = app.smtp().await;
    smtp.cmd("EHLO client.example.org", "250").await;
    smtp.cmd("MAIL FROM:<prober@example.org>", "250").await;
    smtp.cmd("RCPT TO:<nobody@in.test>", "550").await;
    smtp.cmd("RCPT TO:<sales@tickets.test>", "550").await;
    smtp.cmd("RCPT TO:<gated@in.test>", "550").await;
    smtp.cmd("RCPT TO:<known@in.test>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.cmd("Subject: the one let in\r\n\r\nhello\r\n.", "250")
        .await;

    // The inbox holds the mail, not the refusals.
    let messages = app.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["subject"], "the one let in");

    let refused = app.get_json("/api/messages?status=refused").await;
    let refused = refused["messages"].as_array().unwrap().clone();
    let by_recipient = |rcpt: &str| -> Value {
        refused
            .iter()
            .find(|m| m["recipients"] == json!([rcpt]))
            .unwrap_or_else(|| panic!("no refusal of {rcpt}: {refused:?}"))
            .clone()
    };
    assert_eq!(refused.len(), 3, "{refused:?}");
    let unknown = by_recipient("nobody@in.test");
    assert_eq!(unknown["outcome"], "refused");
    assert_eq!(unknown["mail_from"], "prober@example.org");
    assert_eq!(unknown["helo"], "client.example.org");
    assert_eq!(unknown["remote_ip"], "127.0.0.1");
    assert_eq!(unknown["address"], Value::Null);
    assert!(
        unknown["smtp_reply"].as_str().unwrap().starts_with("550 "),
        "{unknown}"
    );
    let regexp = by_recipient("sales@tickets.test");
    assert!(
        regexp["smtp_reply"]
            .as_str()
            .unwrap()
            .contains("rejected by the domain's regexp"),
        "{regexp}"
    );
    let gated = by_recipient("gated@in.test");
    assert_eq!(
        gated["address"], "gated@in.test",
        "the address that refused it"
    );
    assert!(
        gated["smtp_reply"]
            .as_str()
            .unwrap()
            .contains("authorization callback (HTTP 403)"),
        "{gated}"
    );
    // Only the accepted message was POSTed (the callback's request aside).
    let posts: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == "/status/200")
        .collect();
    assert_eq!(posts.len(), 1);

    // The dashboard counts them and lists them under the filter.
    let mut browser = app.admin_browser().await;
    let list = browser.get("/").await;
    assert!(
        list.body.contains(
            "<p id=\"refused\">3 recipients refused at RCPT in the last 24 hours: <a href=\"/?status=refused\">show them</a>.</p>"
        ),
        "{}",
        list.body
    );
    assert!(!list.body.contains("nobody@in.test"), "{}", list.body);
    let filtered = browser.get("/?status=refused").await;
    assert_eq!(filtered.status, 200);
    for rcpt in ["nobody@in.test", "sales@tickets.test", "gated@in.test"] {
        assert!(filtered.body.contains(rcpt), "{rcpt}: {}", filtered.body);
    }
    assert!(
        filtered
            .body
            .contains("<span class=\"badge refused\">refused</span>")
    );
}

#[tokio::test]
async fn a_redacted_sender_is_left_out_of_a_refusal_too() {
    let receiver = Receiver::start().await;
    let toml = format!(
        "{}\n[privacy]\nredact = [\"sender\", \"sender_ip\"]\n",
        config(&receiver)
    );
    let app = TestApp::start(&toml).await;
    let mut smtp = app.smtp().await;
    smtp.cmd("EHLO client.example.org", "250").await;
    smtp.cmd("MAIL FROM:<private-7f3a@example.org>", "250")
        .await;
    smtp.cmd("RCPT TO:<nobody@in.test>", "550").await;
    let refused = app.get_json("/api/messages?status=refused").await;
    let row = &refused["messages"][0];
    assert_eq!(row["recipients"], json!(["nobody@in.test"]), "{refused}");
    assert_eq!(
        (&row["mail_from"], &row["remote_ip"]),
        (&json!(""), &json!(""))
    );
    assert_eq!(row["redacted"], json!(["sender_ip", "sender"]), "{row}");
}

#[tokio::test]
async fn the_first_recipient_past_the_limit_is_recorded_once_per_transaction() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&format!(
        "[server]\nhostname = \"mx.postern.test\"\n[smtp]\nmax_recipients = 1\n\
         [[address]]\naddress = \"*@in.test\"\ntarget = \"{}\"\n",
        receiver.url("/status/200")
    ))
    .await;
    let mut smtp = app.smtp().await;
    smtp.cmd("EHLO client.example.org", "250").await;
    smtp.cmd("MAIL FROM:<bulk@example.org>", "250").await;
    smtp.cmd("RCPT TO:<one@in.test>", "250").await;
    for n in 0..20 {
        smtp.cmd(&format!("RCPT TO:<more{n}@in.test>"), "452").await;
    }
    smtp.cmd("RSET", "250").await;
    smtp.cmd("MAIL FROM:<bulk@example.org>", "250").await;
    smtp.cmd("RCPT TO:<two@in.test>", "250").await;
    smtp.cmd("RCPT TO:<again@in.test>", "452").await;
    let refused = app.get_json("/api/messages?status=refused").await;
    let rows: Vec<(&str, &str)> = refused["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["recipients"][0].as_str().unwrap(),
                m["smtp_reply"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("again@in.test", "452 4.5.3 Too many recipients"),
            ("more0@in.test", "452 4.5.3 Too many recipients"),
        ]
    );
    assert_eq!(refused["messages"][0]["mail_from"], "bulk@example.org");
}
