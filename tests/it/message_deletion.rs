//! Deleting received messages (issue 14, actions): one message or every message a filter
//! finds, through the API (admins) and the dashboard (admins, asked to confirm); each goes
//! with its delivery attempts, refusals only when asked for, and the audit log says who did.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Receiver, TestApp};

fn config(receiver: &Receiver) -> String {
    format!(
        "[server]\nhostname = \"mx.postern.test\"\n\
         [[address]]\naddress = \"*@in.test\"\ntarget = \"{}\"\n",
        receiver.url("/status/200")
    )
}

async fn send(app: &TestApp, to: &str, subject: &str) {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail(
            "sender@example.org",
            &[to],
            &format!("Subject: {subject}\r\n\r\nbody\r\n"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
}

/// The messages' subjects, newest first.
async fn subjects(app: &TestApp) -> Vec<String> {
    app.messages()
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect()
}

/// Rows of `table` in the app's store, read beside the running app.
fn rows(app: &TestApp, table: &str) -> i64 {
    let db = rusqlite::Connection::open(app.data_dir.path().join("postern.db")).unwrap();
    db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[tokio::test]
async fn the_api_deletes_one_message_or_what_a_filter_finds_and_audits_it() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(&receiver)).await;
    for (to, subject) in [
        ("a@in.test", "one"),
        ("a@in.test", "two"),
        ("b@in.test", "three"),
    ] {
        send(&app, to, subject).await;
    }
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<prober@example.org>", "250").await;
    smtp.cmd("RCPT TO:<nobody@elsewhere.test>", "550").await;
    assert_eq!(rows(&app, "delivery_attempts"), 3);

    let newest = app.messages().await[0]["id"].as_i64().unwrap();
    let path = format!("/api/messages/{newest}");
    let (status, _) = app.call(&app.api_key, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = app.call(&app.api_key, Method::DELETE, &path, None).await;
    assert_eq!((status, &body["error"]), (404, &json!("no such message")));
    let (status, _) = app.call(&app.api_key, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    assert_eq!(subjects(&app).await, ["two", "one"]);
    assert_eq!(
        rows(&app, "delivery_attempts"),
        2,
        "its attempts went with it"
    );

    let (status, body) = app
        .call(
            &app.api_key,
            Method::DELETE,
            "/api/messages?subject=tw",
            None,
        )
        .await;
    assert_eq!((status, body), (200, json!({"deleted": 1})));
    assert_eq!(subjects(&app).await, ["one"]);
    let (status, body) = app
        .call(
            &app.api_key,
            Method::DELETE,
            "/api/messages?status=nonsense",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // No filter: every message, but not the refusals, which have a filter of their own.
    let (status, body) = app
        .call(&app.api_key, Method::DELETE, "/api/messages", None)
        .await;
    assert_eq!((status, body), (200, json!({"deleted": 1})));
    assert!(subjects(&app).await.is_empty());
    let refused = app.get_json("/api/messages?status=refused").await;
    assert_eq!(
        refused["messages"].as_array().unwrap().len(),
        1,
        "{refused}"
    );
    let (status, body) = app
        .call(
            &app.api_key,
            Method::DELETE,
            "/api/messages?status=refused",
            None,
        )
        .await;
    assert_eq!((status, body), (200, json!({"deleted": 1})));
    assert_eq!(rows(&app, "inbound_messages"), 0);
    assert_eq!(rows(&app, "delivery_attempts"), 0);

    let audit = app.get_json("/api/audit").await;
    let details: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .filter(|e| e["action"] == "messages_deleted")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "1 matching status=refused",
            "1 matching everything",
            "1 matching subject=tw",
            &format!("message {newest}"),
        ],
        "{audit}"
    );
}

#[tokio::test]
async fn the_dashboard_deletes_after_asking_and_only_for_admins() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(&receiver)).await;
    for (to, subject) in [
        ("a@in.test", "keep me"),
        ("b@in.test", "bye 1"),
        ("b@in.test", "bye 2"),
    ] {
        send(&app, to, subject).await;
    }
    let ids: Vec<i64> = app
        .messages()
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();

    let mut viewer = app.viewer_browser().await;
    let list = viewer.get("/").await;
    assert!(!list.body.contains("delete-matching"), "{}", list.body);
    let detail = viewer.get(&format!("/messages/{}", ids[0])).await;
    assert!(!detail.body.contains("/delete\""), "{}", detail.body);

    let mut admin = app.admin_browser().await;
    let detail = admin.get(&format!("/messages/{}", ids[0])).await;
    assert!(
        detail.body.contains(&format!(
            "<form method=\"post\" action=\"/messages/{}/delete\" data-confirm=\"Delete this message, its content and its delivery attempts?\">",
            ids[0]
        )),
        "{}",
        detail.body
    );
    let csrf = detail.csrf_token();
    let deleted = admin
        .post_form(
            &format!("/messages/{}/delete", ids[0]),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(
        (deleted.status, deleted.location()),
        (303, Some("/?deleted=1"))
    );
    let list = admin.get("/?deleted=1").await;
    assert!(list.body.contains("Deleted 1 message."), "{}", list.body);
    // A viewer's session cannot, whatever its page shows.
    let viewer_csrf = viewer.session_csrf().await;
    let refused = viewer
        .post_form(
            &format!("/messages/{}/delete", ids[1]),
            &[("csrf_token", &viewer_csrf)],
        )
        .await;
    assert_eq!(refused.status, 403);

    // Delete what a filter finds: counted first, then gone.
    let list = admin.get("/?recipient=b%40in.test").await;
    assert!(
        list.body
            .contains("<a href=\"/messages/delete?recipient=b%40in.test\" id=\"delete-matching\">Delete every message this search finds…</a>"),
        "{}",
        list.body
    );
    let confirm = admin.get("/messages/delete?recipient=b%40in.test").await;
    assert!(
        confirm
            .body
            .contains("Delete <strong>1 message</strong> (recipient=b@in.test)"),
        "{}",
        confirm.body
    );
    let csrf = confirm.csrf_token();
    let done = admin
        .post_form(
            "/messages/delete",
            &[("csrf_token", &csrf), ("recipient", "b@in.test")],
        )
        .await;
    assert_eq!((done.status, done.location()), (303, Some("/?deleted=1")));
    let left: Vec<Value> = app.messages().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["subject"], "keep me");
}
