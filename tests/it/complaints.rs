//! Complaints (contract §6.11): an ARF feedback report (RFC 5965) sent over SMTP to the
//! return path of a message that was delivered (to Postfix's `smtp-sink` as the MX on
//! loopback, behind a DNS server on loopback) becomes a `complaint` event that reaches the
//! events webhook, the sent-message page and the suppression list; a later message to
//! that recipient is suppressed. Other feedback types change nothing.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use postern::outbound::NewCredentialSpec;

use crate::outbound_events::events_of;
use crate::submission_outbound::states;
use crate::support::dns::{DnsServer, Zone};
use crate::support::sink::Sink;
use crate::support::{Receiver, TestApp, config_with, eventually, eventually_ok};

/// An ARF report of type `feedback_type` about `recipient` of message `uuid`, shaped like
/// Yahoo's (the original attached as `message/rfc822`).
fn feedback_report(uuid: &str, feedback_type: &str, recipient: &str) -> String {
    format!(
        "From: feedback@arf.mail.example.net\r\n\
         To: bounces+{uuid}@mta.example.com\r\n\
         Subject: FW: Hello\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"ARF\"\r\n\
         \r\n\
         --ARF\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an email abuse report for a message received from 127.0.0.1.\r\n\
         --ARF\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: {feedback_type}\r\n\
         User-Agent: Example-FBL/2.0\r\n\
         Version: 1\r\n\
         Original-Mail-From: <bounces+{uuid}@mta.example.com>\r\n\
         Original-Rcpt-To: {recipient}\r\n\
         Arrival-Date: Sat, 05 Dec 2026 03:00:00 +0000\r\n\
         \r\n\
         --ARF\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         From: Shop <shop@example.com>\r\n\
         To: happy@dest.test, annoyed@dest.test\r\n\
         Subject: Hello\r\n\
         \r\n\
         Hello.\r\n\
         --ARF--\r\n"
    )
}

#[tokio::test]
async fn an_abuse_report_to_the_return_path_is_a_complaint_that_suppresses_the_recipient() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("dest.test", 10, "mx.dest.test")
            .a("mx.dest.test", Ipv4Addr::LOCALHOST),
    )
    .await;
    let webhook = Receiver::start().await;
    let toml = config_with(
        &[],
        &format!(
            "[outbound]\ndns = [\"{}\"]\nport = {}\ntimeout_secs = 5\n",
            dns.addr(),
            sink.port()
        ),
    );
    let app = TestApp::launch(&toml).delivering().start().await;
    let token = app
        .credential(NewCredentialSpec {
            username: "shop".into(),
            events_url: Some(webhook.url("/events")),
            ..NewCredentialSpec::default()
        })
        .await;
    app.add_example_sending_domain().await;
    let send = async |to: Value| {
        let body = json!({"from": "Shop <shop@example.com>", "to": to, "subject": "Hello", "plain": "Hello."});
        let (status, answer) = app.post_message("shop", &token, body).await;
        assert_eq!(status, 202, "{answer}");
        answer["id"].as_str().unwrap().to_string()
    };

    let uuid = send(json!(["happy@dest.test", "annoyed@dest.test"])).await;
    let delivered = [
        ("happy@dest.test".to_string(), "delivered".to_string()),
        ("annoyed@dest.test".to_string(), "delivered".to_string()),
    ];
    let message = eventually_ok("both recipients delivered", async || {
        let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
        match states(&message) == delivered {
            true => Ok(message),
            false => Err(format!("{message}")),
        }
    })
    .await;
    let return_path = message["envelope_from"].as_str().unwrap().to_string();
    assert_eq!(return_path, format!("bounces+{uuid}@mta.example.com"));

    // The provider's reports come to the return path on the MX listener.
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    for (feedback_type, recipient) in [
        ("not-spam", "happy@dest.test"),
        ("abuse", "<Annoyed@dest.test>"),
    ] {
        let report = feedback_report(&uuid, feedback_type, recipient);
        let reply = smtp.send_mail("", &[&return_path], &report).await;
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }

    // One complaint event, for the recipient the abuse report named; nobody's state changes
    // (the message was delivered), and `not-spam` left no trace.
    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(states(&message), delivered);
    let complaints = events_of(&message, "complaint");
    assert_eq!(complaints.len(), 1, "{message}");
    assert_eq!(complaints[0]["recipient"], "annoyed@dest.test");
    assert_eq!(
        complaints[0]["details"],
        json!({"feedback_type": "abuse", "user_agent": "Example-FBL/2.0",
               "arrival_date": "Sat, 05 Dec 2026 03:00:00 +0000",
               "from": "feedback@arf.mail.example.net"})
    );
    assert_eq!(
        message["events"].as_array().unwrap().len(),
        7,
        "registration, dispatch, delivery ×2, complaint: {message}"
    );

    // The complaint reaches the events webhook.
    let sent = eventually_ok("the complaint on the webhook", async || {
        let sent: Vec<Value> = webhook
            .requests()
            .iter()
            .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
            .filter(|e| e["kind"] == "complaint")
            .collect();
        match sent.is_empty() {
            false => Ok(sent),
            true => Err("no complaint yet".to_string()),
        }
    })
    .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["recipient"], "annoyed@dest.test");
    assert_eq!(sent[0]["message_id"], uuid.as_str());
    assert_eq!(sent[0]["details"]["feedback_type"], "abuse");

    // The suppression list holds the complainer, with reason `complaint`, and only them.
    let list = app.get_json("/api/suppressions").await;
    assert_eq!(
        list["suppressions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (
                s["address"].clone(),
                s["reason"].clone(),
                s["message_id"].clone()
            ))
            .collect::<Vec<_>>(),
        [(json!("annoyed@dest.test"), json!("complaint"), json!(uuid))]
    );

    // The dashboard shows both.
    let mut admin = app.admin_browser().await;
    let page = admin.get(&format!("/outbound/{uuid}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<td>complaint</td><td>annoyed@dest.test</td>"),
        "{}",
        page.body
    );
    let page = admin.get("/suppressions").await;
    assert!(
        page.body.contains("<tr><td>annoyed@dest.test</td>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("complaint"), "{}", page.body);

    // A later message to the complainer: accepted, that recipient suppressed, the other sent.
    let later = send(json!(["ANNOYED@dest.test", "happy@dest.test"])).await;
    eventually("the later message settled", async || {
        let message = app.get_json(&format!("/api/outbound/{later}")).await;
        states(&message)
            == [
                ("ANNOYED@dest.test".to_string(), "suppressed".to_string()),
                ("happy@dest.test".to_string(), "delivered".to_string()),
            ]
    })
    .await;
    app.stop().await;
}
