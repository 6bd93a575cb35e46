//! After a message is queued (contract §6.8, §6.11, §6.12): the events webhook (batches,
//! retries on the app's clock, Basic auth, the exact body), mail to the return path
//! (DSNs, plain-text bounces, replies) and the suppression list it feeds, and the open and
//! click tracking routes.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use postern::accounts::{Actor, Role};
use postern::outbound::NewCredentialSpec;
use postern::store::{Engagement, SendingDomainRow};

use crate::support::{Receiver, TestApp, config_with, eventually};

/// A serve-mode app with credential `app` (its token returned) and `example.com` as a
/// sending domain whose return path is `mta.example.com`.
async fn serve_app(events_url: Option<String>) -> (TestApp, String) {
    let app = TestApp::start(&config_with(&[], "")).await;
    let token = app
        .credential(NewCredentialSpec {
            username: "app".into(),
            events_url,
            ..NewCredentialSpec::default()
        })
        .await;
    app.outbound
        .store()
        .insert_sending_domain(SendingDomainRow {
            id: 0,
            domain: "example.com".into(),
            return_path_domain: "mta.example.com".into(),
            dkim_selector: "s1".into(),
            dkim_algorithm: "ed25519-sha256".into(),
            dkim_private_key: String::new(),
            dkim_public_key: String::new(),
            created_at: 0,
        })
        .await
        .unwrap()
        .unwrap();
    (app, token)
}

/// Sends through the API; the message's UUID.
async fn send(app: &TestApp, token: &str, body: Value) -> String {
    let (status, answer) = app.post_message("app", token, body).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// Waits until the webhook task has dealt with every event due now (sent it, set it aside
/// for a retry, or found it is not to be sent), so that a round run by the test competes
/// with no round of the task's.
async fn settled(app: &TestApp) {
    eventually("the due events dealt with", async || {
        let next = app.outbound.store().next_event_due().await.unwrap();
        next.is_none_or(|at| at > app.clock.unix())
    })
    .await
}

fn state_of(message: &Value, address: &str) -> String {
    message["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("no recipient {address} in {message}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The events of `kind` of an outbound message (as the API shows it).
pub(crate) fn events_of<'a>(message: &'a Value, kind: &str) -> Vec<&'a Value> {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn events_go_out_in_a_batch_with_basic_auth_and_are_retried_on_the_clock() {
    let receiver = Receiver::start().await;
    let url = format!("http://hook:s3cret@{}/fail-first/1", receiver.addr);
    let (app, token) = serve_app(Some(url)).await;
    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": ["One <one@example.net>", "two@example.net"],
               "cc": "three@example.org", "subject": "hi", "plain": "hello"}),
    )
    .await;
    eventually("the first POST", async || receiver.requests().len() == 1).await;
    let first = receiver.single();
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/fail-first/1");
    let basic = base64::engine::general_purpose::STANDARD.encode("hook:s3cret");
    assert_eq!(
        first.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    let expected = json!({"events": [
        {"kind": "registration", "recipient": "one@example.net", "message_id": uuid, "details": {}},
        {"kind": "registration", "recipient": "two@example.net", "message_id": uuid, "details": {}},
        {"kind": "registration", "recipient": "three@example.org", "message_id": uuid, "details": {}},
    ]});
    assert_eq!(first.json(), expected);
    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert!(
        message["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["webhook"] == "pending"),
        "{message}"
    );

    // Not before the first backoff step (30 s) on the app's clock: a round finds nothing due.
    settled(&app).await;
    app.clock.advance(Duration::from_secs(29));
    assert_eq!(app.run_events_once().await, 0, "nothing is due at 29 s");
    assert_eq!(receiver.requests().len(), 1);
    app.clock.advance(Duration::from_secs(1));
    app.outbound.events_written();
    eventually("the retry", async || receiver.requests().len() == 2).await;
    assert_eq!(receiver.requests()[1].json(), expected);
    eventually("the events marked sent", async || {
        let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
        message["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["webhook"] == "sent")
    })
    .await;
    // Sent events are not sent again.
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(app.run_events_once().await, 0, "nothing is due once sent");
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn more_than_a_hundred_due_events_are_split_into_batches() {
    let receiver = Receiver::start().await;
    let (app, token) = serve_app(Some(receiver.url("/events"))).await;
    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": "r@example.net", "plain": "x"}),
    )
    .await;
    eventually("the registration event", async || {
        receiver.requests().len() == 1
    })
    .await;
    settled(&app).await;
    // 120 events written without waking the webhook (as a backlog after a restart would be).
    for i in 0..120 {
        let recorded = app
            .outbound
            .store()
            .record_engagement(
                Engagement {
                    uuid: uuid.clone(),
                    recipient: format!("r{i}@example.net"),
                    kind: "open",
                    url: None,
                    details: "{}".into(),
                    at: app.clock.unix(),
                },
                60,
            )
            .await
            .unwrap();
        assert!(recorded);
    }
    assert_eq!(
        receiver.requests().len(),
        1,
        "nothing is sent before the webhook wakes"
    );
    // One round, as the task runs when woken: all 120 in two POSTs.
    assert_eq!(app.run_events_once().await, 120);
    assert_eq!(receiver.requests().len(), 3);
    let sizes: Vec<usize> = receiver.requests()[1..]
        .iter()
        .map(|r| r.json()["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 20]);
    let recipients: Vec<String> = receiver.requests()[1..]
        .iter()
        .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
        .map(|e| e["recipient"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..120).map(|i| format!("r{i}@example.net")).collect();
    assert_eq!(recipients, expected, "in the order they were written");
}

/// An RFC 3464 report for `recipient` of message `uuid`.
fn dsn(uuid: &str, recipient: &str, action: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n\
         To: bounces+{uuid}@mta.example.com\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <dsn-{status}@mx.example.net>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RPT\"\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.example.net. Your message could not be delivered.\r\n\
         --RPT\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         X-Postfix-Queue-ID: 4F2C1\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx1.example.net\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: a@example.com\r\n\
         Subject: hi\r\n\
         --RPT--"
    )
}

#[tokio::test]
async fn dsns_and_plain_bounces_to_the_return_path_become_events_states_and_suppressions() {
    let (app, token) = serve_app(None).await;
    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": ["gone@example.net", "full@example.net", "old@example.org"],
               "subject": "hi", "plain": "hello"}),
    )
    .await;
    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    let return_path = message["envelope_from"].as_str().unwrap().to_string();
    assert_eq!(return_path, format!("bounces+{uuid}@mta.example.com"));

    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let return_mail = [
        // A hard DSN: accepted although no [[address]] routes mta.example.com.
        (
            "",
            dsn(
                &uuid,
                "gone@example.net",
                "failed",
                "5.1.1",
                "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
            ),
        ),
        // A soft one.
        (
            "",
            dsn(&uuid, "full@example.net", "failed", "4.2.2", "452 4.2.2 Mailbox full"),
        ),
        // A plain-text bounce naming its recipient.
        (
            "",
            "From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program at mx.example.org.\r\nI'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n<old@example.org>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n".to_string(),
        ),
        // A DSN naming someone who is not a recipient of the message: an event, nothing more.
        (
            "",
            dsn(&uuid, "stranger@example.com", "failed", "5.1.1", "550 5.1.1 unknown"),
        ),
        // A person answering the return path.
        (
            "full@example.net",
            "From: Full <full@example.net>\r\nSubject: Re: hi\r\n\r\nWho is this?\r\n".to_string(),
        ),
    ];
    for (from, mail) in &return_mail {
        let reply = smtp.send_mail(from, &[&return_path], mail).await;
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }

    // Unknown message, or a known UUID at another domain: the usual 550.
    smtp.cmd("MAIL FROM:<>", "250").await;
    smtp.cmd(
        "RCPT TO:<bounces+00000000-0000-4000-8000-000000000000@mta.example.com>",
        "550 5.1.1",
    )
    .await;
    smtp.cmd(
        &format!("RCPT TO:<bounces+{uuid}@other.example.com>"),
        "550 5.1.1",
    )
    .await;
    smtp.cmd("RSET", "250").await;

    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(state_of(&message, "gone@example.net"), "bounced");
    assert_eq!(state_of(&message, "full@example.net"), "queued");
    assert_eq!(state_of(&message, "old@example.org"), "bounced");
    let bounces = events_of(&message, "bounce");
    assert_eq!(bounces.len(), 3, "{message}");
    assert_eq!(bounces[2]["recipient"], "stranger@example.com");
    assert_eq!(bounces[0]["recipient"], "gone@example.net");
    assert_eq!(
        bounces[0]["details"],
        json!({"smtp_code": 550, "smtp_response": "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
               "status": "5.1.1", "mx": "mx1.example.net"})
    );
    assert_eq!(bounces[1]["recipient"], "old@example.org");
    assert_eq!(bounces[1]["details"]["status"], "5.1.1");
    let soft = events_of(&message, "soft_bounce");
    assert_eq!(soft.len(), 1);
    assert_eq!(soft[0]["recipient"], "full@example.net");
    assert_eq!(soft[0]["details"]["smtp_code"], 452);
    let replies = events_of(&message, "bounce_reply");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["recipient"], "full@example.net");

    // The hard bounces are on the suppression list, with the message that bounced.
    let list = app.get_json("/api/suppressions").await;
    let mut listed: Vec<(String, String)> = list["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["address"].as_str().unwrap().into(),
                s["message_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("gone@example.net".to_string(), uuid.clone()),
            ("old@example.org".to_string(), uuid.clone())
        ]
    );
    // The operators see the return mail in the message list.
    let inbound = app.messages().await;
    assert_eq!(inbound.len(), 5);
    assert!(
        inbound.iter().all(|m| m["outcome"] == "bounce"),
        "{inbound:?}"
    );

    // A later message to a bounced address: accepted, that recipient suppressed.
    let later = send(&app, &token, json!({"from": "a@example.com", "to": ["GONE@example.net", "new@example.net"], "plain": "again"})).await;
    let message = app.get_json(&format!("/api/outbound/{later}")).await;
    assert_eq!(state_of(&message, "GONE@example.net"), "suppressed");
    assert_eq!(state_of(&message, "new@example.net"), "queued");
    assert_eq!(events_of(&message, "suppressed").len(), 1);
}

#[tokio::test]
async fn the_suppression_api_is_for_admins_to_change() {
    let (app, token) = serve_app(None).await;
    let (_, viewer) = app
        .accounts
        .create_api_key("viewer", Role::Viewer, &Actor::Cli)
        .await
        .unwrap();
    let key = app.api_key.clone();
    let (status, body) = app
        .call(
            &key,
            Method::POST,
            "/api/suppressions",
            Some(json!({"address": "Someone@Example.NET"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["address"], "Someone@example.net");
    assert_eq!(body["reason"], "manual");
    let (status, _) = app
        .call(
            &key,
            Method::POST,
            "/api/suppressions",
            Some(json!({"address": "someone@example.net", "reason": "asked"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .call(
            &key,
            Method::POST,
            "/api/suppressions",
            Some(json!({"address": "not an address"})),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("address")));
    let (status, _) = app
        .call(
            &viewer,
            Method::POST,
            "/api/suppressions",
            Some(json!({"address": "x@example.net"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call(
            &viewer,
            Method::DELETE,
            "/api/suppressions/someone@example.net",
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(&viewer, Method::GET, "/api/suppressions", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["suppressions"].as_array().unwrap().len(), 1);

    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": "someone@example.net", "plain": "x"}),
    )
    .await;
    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(state_of(&message, "someone@example.net"), "suppressed");
    assert_eq!(
        events_of(&message, "suppressed")[0]["details"],
        json!({"reason": "suppression list"})
    );

    let (status, _) = app
        .call(
            &key,
            Method::DELETE,
            "/api/suppressions/SOMEONE@example.net",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .call(
            &key,
            Method::DELETE,
            "/api/suppressions/someone@example.net",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": "someone@example.net", "plain": "x"}),
    )
    .await;
    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(state_of(&message, "someone@example.net"), "queued");
    let audit = app.get_json("/api/audit").await;
    assert!(audit.to_string().contains("suppression removed"), "{audit}");
}

#[tokio::test]
async fn open_pixel_and_click_redirect_record_events_and_forged_tokens_are_404() {
    let receiver = Receiver::start().await;
    let (app, token) = serve_app(Some(receiver.url("/events"))).await;
    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": "reader@example.net", "subject": "news",
               "html": "<html><body><p><a href=\"https://example.com/offer?a=1&amp;b=2\">offer</a> <a href=\"mailto:a@example.com\">mail us</a></p></body></html>"}),
    )
    .await;
    let store = app.outbound.store();
    let queued = store.message_ref(&uuid).await.unwrap().unwrap();
    assert!(queued.track_opens && queued.track_clicks, "on by default");
    let raw = store.outbound_content(queued.id).await.unwrap().unwrap();
    // What the delivery worker sends: this recipient's copy, instrumented.
    let copy = app
        .outbound
        .instrument_for(&uuid, "reader@example.net", &raw, true, true)
        .await;
    let copy = String::from_utf8(copy).unwrap();
    let base = app.url("/t/");
    let decoded = quoted_printable_decode(&copy);
    let pixel = find_url(&decoded, &format!("{base}o/")).expect("an open pixel");
    let link = find_url(&decoded, &format!("{base}c/")).expect("a tracked link");
    assert!(decoded.contains("href=\"mailto:a@example.com\""));

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(&pixel)
        .header("user-agent", "MailReader/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/gif");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.bytes().await.unwrap().len(), 43);
    // Again within the minute: counted once.
    assert_eq!(client.get(&pixel).send().await.unwrap().status(), 200);

    let response = client
        .get(&link)
        .header("user-agent", "MailReader/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "https://example.com/offer?a=1&b=2"
    );

    // Forged, truncated, swapped: 404, never a redirect.
    let token_of = |url: &str| url.rsplit('/').next().unwrap().to_string();
    let (data, mac) = token_of(&link)
        .split_once('.')
        .map(|(d, m)| (d.to_string(), m.to_string()))
        .unwrap();
    let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "c\n{uuid}\nreader@example.net\nhttps://evil.example/"
    ));
    for bad in [
        format!("{base}c/{evil}.{mac}"),
        format!("{base}c/{data}"),
        format!("{base}c/{data}.AAAA"),
        format!("{base}o/{}", token_of(&link)),
        format!("{base}c/{}", token_of(&pixel)),
    ] {
        let response = client.get(&bad).send().await.unwrap();
        assert_eq!(response.status(), 404, "{bad}");
        assert!(response.headers().get("location").is_none());
    }

    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    let opens = events_of(&message, "open");
    assert_eq!(opens.len(), 1, "{message}");
    assert_eq!(opens[0]["recipient"], "reader@example.net");
    assert_eq!(
        opens[0]["details"],
        json!({"ip": "127.0.0.1", "user_agent": "MailReader/1.0"})
    );
    let clicks = events_of(&message, "click");
    assert_eq!(clicks.len(), 1);
    assert_eq!(
        clicks[0]["details"],
        json!({"url": "https://example.com/offer?a=1&b=2", "ip": "127.0.0.1", "user_agent": "MailReader/1.0"})
    );
    // The webhook carries them.
    eventually("the open and click on the webhook", async || {
        let kinds: Vec<String> = receiver
            .requests()
            .iter()
            .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.contains(&"open".to_string()) && kinds.contains(&"click".to_string())
    })
    .await;

    // Switched off per message: the copy is the queued message.
    let untracked = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": "reader@example.net", "html": "<p>x</p>",
               "track_opens": false, "track_clicks": false}),
    )
    .await;
    let queued = store.message_ref(&untracked).await.unwrap().unwrap();
    assert!(!queued.track_opens && !queued.track_clicks);
    let raw = store.outbound_content(queued.id).await.unwrap().unwrap();
    let copy = app
        .outbound
        .instrument_for(
            &untracked,
            "reader@example.net",
            &raw,
            queued.track_opens,
            queued.track_clicks,
        )
        .await;
    assert_eq!(copy, raw);
}

fn quoted_printable_decode(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn find_url(text: &str, prefix: &str) -> Option<String> {
    let start = text.find(prefix)?;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}

/// "One terminal event per recipient, not one per retry" (contract §6.8): a bounce after the
/// recipient's `suppressed` stays in the history but not on the webhook; soft bounces go.
#[tokio::test]
async fn the_webhook_carries_one_terminal_event_per_recipient() {
    let receiver = Receiver::start().await;
    let (app, token) = serve_app(Some(receiver.url("/events"))).await;
    app.outbound
        .suppress("held@example.net", None)
        .await
        .unwrap();
    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": ["held@example.net", "ok@example.net"], "plain": "x"}),
    )
    .await;
    let sent = || {
        receiver
            .requests()
            .iter()
            .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
            .map(|e| {
                (
                    e["recipient"].as_str().unwrap().to_string(),
                    e["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    eventually("the first events", async || sent().len() == 2).await;
    let return_path = format!("bounces+{uuid}@mta.example.com");
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let hard = dsn(
        &uuid,
        "held@example.net",
        "failed",
        "5.1.1",
        "550 5.1.1 unknown",
    );
    assert!(
        smtp.send_mail("", &[&return_path], &hard)
            .await
            .starts_with("250")
    );
    let soft = dsn(
        &uuid,
        "ok@example.net",
        "delayed",
        "4.4.1",
        "421 4.4.1 later",
    );
    assert!(
        smtp.send_mail("", &[&return_path], &soft)
            .await
            .starts_with("250")
    );
    eventually("the soft bounce", async || sent().len() == 3).await;
    // The bounce after `suppressed` was never sent: nothing is left to send either.
    settled(&app).await;
    assert_eq!(app.run_events_once().await, 0);
    let mut sent = sent();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("held@example.net".to_string(), "suppressed".to_string()),
            ("ok@example.net".to_string(), "registration".to_string()),
            ("ok@example.net".to_string(), "soft_bounce".to_string()),
        ]
    );
    let message = app.get_json(&format!("/api/outbound/{uuid}")).await;
    let bounce = events_of(&message, "bounce");
    assert_eq!(bounce.len(), 1);
    assert_eq!(bounce[0]["webhook"], "none");
    assert_eq!(state_of(&message, "held@example.net"), "suppressed");
}

/// `postern suppression list|add|remove` and `postern check`'s tracking warning, run as
/// the real binary on a config file.
#[test]
fn suppression_commands_and_the_tracking_warning_of_the_real_binary() {
    let data_dir = tempfile::tempdir().unwrap();
    crate::support::private(data_dir.path());
    // The config beside, not inside, the data directory, which must hold only private files.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("postern.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\nhostname = \"mx.postern.test\"\ndata_dir = \"{}\"\n{extra}",
                data_dir.path().display()
            ),
        )
        .unwrap()
    };
    write_config("");
    let postern = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
            .env(
                "CREDENTIALS_DIRECTORY",
                crate::support::binary::credentials_directory(),
            )
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = postern(&[
        "suppression",
        "add",
        "User@Example.NET",
        "--reason",
        "asked",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "suppressed User@example.net\n");
    let (code, out, _) = postern(&["suppression", "add", "user@example.net"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "user@example.net was suppressed already\n")
    );
    let (code, _, err) = postern(&["suppression", "add", "nobody"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not an email address"), "{err}");
    let (code, out, _) = postern(&["suppression", "list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].starts_with("User@example.net") && lines[1].contains("asked"),
        "{out}"
    );
    let (code, out, _) = postern(&["suppression", "remove", "user@example.net"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "removed user@example.net from the suppression list\n")
    );
    let (code, _, err) = postern(&["suppression", "remove", "user@example.net"]);
    assert_eq!(code, 1);
    assert!(err.contains("not on the suppression list"), "{err}");

    let (code, out, err) = postern(&["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Tracking  http://127.0.0.1:8025/t/"), "{out}");
    assert!(out.contains("which recipients cannot reach"), "{out}");
    write_config(
        "[outbound]\ntracking_url = \"https://track.example.com\"\n\
         [tls]\nmode = \"self-signed\"\n",
    );
    let (code, out, err) = postern(&["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Tracking  https://track.example.com/t/"),
        "{out}"
    );
    // The one warning left is the keyring's backup reminder, which `check` always prints.
    let warnings: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("back up the key file"), "{out}");
}

#[tokio::test]
async fn a_return_path_is_alone_in_its_transaction() {
    let (app, token) = serve_app(None).await;
    let receiver = Receiver::start().await;
    let (status, created) = app
        .call(
            &app.api_key,
            Method::POST,
            "/api/addresses",
            Some(json!({ "address": "user@example.net", "target": receiver.url("/status/200") })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let uuid = send(
        &app,
        &token,
        json!({"from": "a@example.com", "to": ["gone@example.net"], "plain": "hello"}),
    )
    .await;
    let return_path = format!("bounces+{uuid}@mta.example.com");

    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    // The return path first: any other recipient waits for a transaction of its own.
    smtp.cmd("MAIL FROM:<>", "250").await;
    smtp.cmd(&format!("RCPT TO:<{return_path}>"), "250").await;
    smtp.cmd("RCPT TO:<user@example.net>", "452 4.5.3").await;
    smtp.cmd("RSET", "250").await;
    // A routed recipient first: the return path waits.
    smtp.cmd("MAIL FROM:<>", "250").await;
    smtp.cmd("RCPT TO:<user@example.net>", "250").await;
    smtp.cmd(&format!("RCPT TO:<{return_path}>"), "452 4.5.3")
        .await;
    smtp.cmd("RSET", "250").await;
    assert!(app.messages().await.is_empty());
    assert!(receiver.requests().is_empty());
}
