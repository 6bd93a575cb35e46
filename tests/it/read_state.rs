//! Read state (issue 14, the inbox): each user and each API key has their own; opening a
//! message reads it, `/messages/{id}/unread` and `PUT`/`DELETE /api/messages/{id}/read`
//! change it, viewers keep theirs too, and `is:unread` searches by it. Dev mode has one
//! reader and no account pages.

use reqwest::Method;
use serde_json::Value;

use crate::support::{Receiver, TestApp};

async fn send(app: &TestApp, subject: &str) {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail(
            "sender@example.org",
            &["a@in.test"],
            &format!("From: Sender <sender@example.org>\r\nSubject: {subject}\r\n\r\nbody\r\n"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
}

/// `(subject, read)` of each message `key` lists with `query`, newest first.
async fn listed(app: &TestApp, key: &str, query: &str) -> Vec<(String, bool)> {
    let (status, page) = app
        .call(key, Method::GET, &format!("/api/messages{query}"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m: &Value| {
            (
                m["subject"].as_str().unwrap().to_string(),
                m["read"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_reader_has_their_own_read_state() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&format!(
        "[server]\nhostname = \"mx.postern.test\"\n[[address]]\naddress = \"*@in.test\"\ntarget = \"{}\"\n",
        receiver.url("/status/200")
    ))
    .await;
    send(&app, "first").await;
    send(&app, "second").await;
    let messages = app.messages().await;
    let (second, first) = (
        messages[0]["id"].as_i64().unwrap(),
        messages[1]["id"].as_i64().unwrap(),
    );
    assert_eq!(messages[0]["header_from"], "Sender <sender@example.org>");
    let viewer_key = app
        .accounts
        .create_api_key(
            "reader",
            postern::accounts::Role::Viewer,
            &postern::accounts::Actor::Cli,
        )
        .await
        .unwrap()
        .1;
    let unread = [("second".to_string(), false), ("first".to_string(), false)];
    assert_eq!(listed(&app, &app.api_key, "").await, unread);

    // The admin opens "first" in the dashboard: read for them, for nobody else.
    let mut admin = app.admin_browser().await;
    let list = admin.get("/").await;
    assert_eq!(list.body.matches("<tr data-id=\"").count(), 2);
    assert_eq!(list.body.matches(" class=\"unread\"").count(), 2);
    assert_eq!(admin.get(&format!("/messages/{first}")).await.status, 200);
    let list = admin.get("/").await;
    assert_eq!(list.body.matches(" class=\"unread\"").count(), 1);
    let only_unread = admin.get("/?q=is%3Aunread").await;
    assert!(only_unread.body.contains("second") && !only_unread.body.contains(">first<"));
    assert_eq!(listed(&app, &viewer_key, "").await, unread);
    assert_eq!(listed(&app, &app.api_key, "").await, unread);

    // A viewer key keeps its own (a write viewers may make), and searches by it.
    let read = format!("/api/messages/{second}/read");
    let (status, _) = app.call(&viewer_key, Method::PUT, &read, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        listed(&app, &viewer_key, "").await,
        [("second".to_string(), true), ("first".to_string(), false)]
    );
    assert_eq!(
        listed(&app, &viewer_key, "?q=is%3Aunread").await,
        [("first".to_string(), false)]
    );
    let (status, _) = app.call(&viewer_key, Method::DELETE, &read, None).await;
    assert_eq!(status, 204);
    assert_eq!(listed(&app, &viewer_key, "").await, unread);
    // Viewers still delete nothing.
    let (status, _) = app
        .call(
            &viewer_key,
            Method::DELETE,
            &format!("/api/messages/{second}"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(&viewer_key, Method::PUT, "/api/messages/99999/read", None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no such message"))
    );

    // "Mark unread" on the detail page (a viewer session may, with its CSRF token).
    let csrf = admin.session_csrf().await;
    let back = admin
        .post_form(
            &format!("/messages/{first}/unread"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!((back.status, back.location()), (303, Some("/")));
    let list = admin.get("/").await;
    assert_eq!(list.body.matches(" class=\"unread\"").count(), 2);
    let mut viewer = app.viewer_browser().await;
    let csrf = viewer.session_csrf().await;
    let back = viewer
        .post_form(&format!("/messages/{first}/read"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(back.status, 303);
    let refused = viewer
        .post_form(
            &format!("/messages/{first}/read"),
            &[("csrf_token", "forged")],
        )
        .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn dev_mode_has_one_reader_and_no_account_pages() {
    let app = TestApp::dev(None).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail(
            "a@example.com",
            &["b@example.com"],
            "Subject: hi\r\n\r\nx\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = app.messages().await[0]["id"].as_i64().unwrap();
    let mut browser = app.browser();
    let detail = browser.get(&format!("/messages/{id}")).await;
    assert!(detail.body.contains("Mark unread"), "{}", detail.body);
    let csrf = detail.csrf_token();
    let back = browser
        .post_form(&format!("/messages/{id}/unread"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!((back.status, back.location()), (303, Some("/")));
    let list = browser.get("/").await;
    assert_eq!(list.body.matches(" class=\"unread\"").count(), 1);
    for path in ["/account", "/account/password"] {
        let page = browser.get(path).await;
        assert_eq!((page.status, page.location()), (303, Some("/")), "{path}");
    }
}
