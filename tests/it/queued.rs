//! Store-and-forward (`delivery = "queued"`): 250 at once, the same payload POSTed by the
//! inbound queue, retries with backoff on the app's clock, a 4xx as final, `failed` past the
//! expiry with the error callback told, "retry now" and "discard". The `kill -9` test is in
//! `crash.rs`.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::support::{Receiver, TestApp, eventually};

fn config(receiver: &Receiver, target: &str, extra: &str) -> String {
    format!(
        concat!(
            "[server]\nhostname = \"mx.postern.test\"\n",
            "[[address]]\naddress = \"queued@example.com\"\ntarget = \"{target}\"\n",
            "delivery = \"queued\"\nerror_callback = \"{callback}\"\n",
            "[[address]]\naddress = \"sync@example.com\"\ntarget = \"{sync}\"\n",
            "{extra}"
        ),
        target = receiver.url(target),
        callback = receiver.url("/status/200"),
        sync = receiver.url("/status/200"),
        extra = extra,
    )
}

const MESSAGE: &str = "From: Ann <ann@example.net>\r\nTo: team@example.com\r\nSubject: Queued\r\nMessage-ID: <q1@example.net>\r\n\r\nHello there.";

async fn send(app: &TestApp, to: &str) -> String {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.send_mail("ann@example.net", &[to], MESSAGE).await
}

/// The one message's row, as the API shows it.
async fn only_message(app: &TestApp) -> Value {
    let list = app.messages().await;
    assert_eq!(list.len(), 1, "{list:?}");
    app.get_json(&format!("/api/messages/{}", list[0]["id"]))
        .await
}

fn posts_to(receiver: &Receiver, path: &str) -> Vec<crate::support::receiver::Captured> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

#[tokio::test]
async fn the_sender_gets_250_at_once_and_the_app_the_payload_sync_mode_sends() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(&receiver, "/fail-first/1", "")).await;

    let reply = send(&app, "queued@example.com").await;
    assert!(reply.starts_with("250 2.0.0 Message queued"), "{reply}");
    // The worker tries at once; the app's 500 makes it wait a minute.
    eventually("the first try", async || {
        only_message(&app).await["queue"]["attempts"] == 1
    })
    .await;
    let message = only_message(&app).await;
    assert_eq!(message["outcome"], "queued");
    assert_eq!(message["queue"]["state"], "queued");
    assert!(
        message["queue"]["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{message}"
    );
    assert_eq!(message["has_raw"], true, "kept until it is posted");
    assert_eq!(
        app.run_inbound_queue_once().await,
        0,
        "not due before the minute"
    );

    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.run_inbound_queue_once().await, 1);
    let message = only_message(&app).await;
    assert_eq!(message["outcome"], "successful", "{message}");
    assert_eq!(message["http_status"], 200);
    assert!(message.get("queue").is_none(), "{message}");
    assert_eq!(message["has_raw"], false, "the content goes once posted");
    assert_eq!(
        message["smtp_reply"],
        "250 2.0.0 Message queued for delivery to the target"
    );
    let kinds: Vec<&str> = message["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["queued", "queued"]);

    // Both tries carried the same body and key, and that body is what sync mode sends for
    // the same message (but for the recipient).
    let tries = posts_to(&receiver, "/fail-first/1");
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0].body, tries[1].body);
    assert_eq!(
        tries[0].header("idempotency-key"),
        tries[1].header("idempotency-key")
    );
    assert!(send(&app, "sync@example.com").await.starts_with("250"));
    let sync = posts_to(&receiver, "/status/200").pop().unwrap();
    let mut queued = tries[0].json();
    let mut synced = sync.json();
    for json in [&mut queued, &mut synced] {
        json["envelope"]["to"] = Value::Null;
        json["envelope"]["recipients"] = Value::Null;
    }
    assert_eq!(queued, synced);
}

#[tokio::test]
async fn a_4xx_is_final_and_the_error_callback_hears_of_it() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(&receiver, "/status/422", "")).await;
    let reply = send(&app, "queued@example.com").await;
    assert!(
        reply.starts_with("250"),
        "the sender is gone before the app answers: {reply}"
    );
    eventually("the answer recorded", async || {
        only_message(&app).await["outcome"] == "rejected"
    })
    .await;
    let message = only_message(&app).await;
    assert_eq!(message["http_status"], 422);
    assert_eq!(message["response_body"], "target says 422");
    assert!(message.get("queue").is_none());
    eventually("the error callback", async || {
        !posts_to(&receiver, "/status/200").is_empty()
    })
    .await;
    let callback: Value = serde_urlencoded_form(&posts_to(&receiver, "/status/200")[0].body);
    assert_eq!(callback["status"], "422");
    app.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(app.run_inbound_queue_once().await, 0, "never tried again");
    assert_eq!(posts_to(&receiver, "/status/422").len(), 1);
}

/// The form fields of a callback body (`application/x-www-form-urlencoded`) as JSON.
fn serde_urlencoded_form(body: &[u8]) -> Value {
    let map: serde_json::Map<String, Value> = url::form_urlencoded::parse(body)
        .into_owned()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(map)
}

#[tokio::test]
async fn past_its_expiry_a_message_fails_then_can_be_retried_or_discarded() {
    let receiver = Receiver::start().await;
    let extra = "[delivery]\nqueue_expiry_hours = 1\n";
    let app = TestApp::start(&config(&receiver, "/status/503", extra)).await;
    assert!(send(&app, "queued@example.com").await.starts_with("250"));
    eventually("the first try", async || {
        only_message(&app).await["queue"]["attempts"] == 1
    })
    .await;
    // Backoff 1, 2, 4, 8, 16, 32 min: the try whose next wait ends past the hour fails it.
    let mut tries = 1;
    while only_message(&app).await["outcome"] == "queued" {
        app.clock.advance(Duration::from_secs(40 * 60));
        app.run_inbound_queue_once().await;
        tries += 1;
        assert!(tries < 10, "never failed");
    }
    let message = only_message(&app).await;
    assert_eq!(message["outcome"], "failed", "{message}");
    assert_eq!(message["queue"]["state"], "failed");
    assert!(
        message["queue"]["last_error"]
            .as_str()
            .unwrap()
            .contains("503")
    );
    assert_eq!(message["has_raw"], true, "kept for a retry");
    eventually("the error callback", async || {
        !posts_to(&receiver, "/status/200").is_empty()
    })
    .await;
    app.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        app.run_inbound_queue_once().await,
        0,
        "failed: not tried again by itself"
    );

    // The detail page offers both actions; "retry now" queues it again.
    let page = app
        .admin_browser()
        .await
        .get(&format!("/messages/{}", message["id"]))
        .await
        .body;
    assert!(
        page.contains("Retry now") && page.contains("Discard"),
        "{page}"
    );
    let id = message["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            &app.api_key,
            Method::POST,
            &format!("/api/messages/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually("the retry", async || {
        only_message(&app).await["queue"]["attempts"].as_i64() > Some(tries)
    })
    .await;
    let message = only_message(&app).await;
    assert_eq!(message["outcome"], "queued", "503 again: back in the queue");

    let (status, _) = app
        .call(
            &app.api_key,
            Method::POST,
            &format!("/api/messages/{id}/discard"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let message = only_message(&app).await;
    assert_eq!(message["outcome"], "discarded");
    assert_eq!(message["has_raw"], false, "its content is deleted");
    assert!(message.get("queue").is_none());
    let (status, _) = app
        .call(
            &app.api_key,
            Method::POST,
            &format!("/api/messages/{id}/discard"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let found = app.get_json("/api/messages?status=discarded").await;
    assert_eq!(found["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_delivery_mode_is_checked_once_at_startup_and_managed_addresses_take_it() {
    let receiver = Receiver::start().await;
    let bad = format!(
        "[[address]]\naddress = \"a@example.com\"\ntarget = \"{}\"\ndelivery = \"later\"\n",
        receiver.url("/status/200")
    );
    let error = postern::config::Config::from_toml(&bad, Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("delivery") && error.contains("sync") && error.contains("queued"),
        "{error}"
    );

    let app = TestApp::start(&config(&receiver, "/status/200", "")).await;
    let body = serde_json::json!({
        "address": "managed@example.com",
        "target": receiver.url("/status/201"),
        "delivery": "queued",
    });
    let (status, made) = app
        .call(&app.api_key, Method::POST, "/api/addresses", Some(body))
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["delivery"], "queued", "{made}");
    let reply = send(&app, "managed@example.com").await;
    assert!(reply.contains("queued"), "{reply}");
    eventually("posted", async || {
        !posts_to(&receiver, "/status/201").is_empty()
    })
    .await;
}
