//! The `Idempotency-Key` header on every inbound POST (issue 10 item 10): the sender's
//! retry of the same message carries the same key, any other message another one, in every
//! payload format and on every leg of a redirect chain; the resend button repeats the
//! arrival's key; callbacks carry none.

use crate::support::receiver::Captured;
use crate::support::{Receiver, TestApp, config_with_format, eventually_ok};

const MESSAGE: &str = "Subject: hello\r\nMessage-ID: <idem@client.test>\r\n\r\nonce only";
const FORMATS: [&str; 5] = ["json+n", "multipart+n", "raw", "json", "multipart"];

/// One SMTP transaction on a new connection; returns the reply to the final dot.
async fn send(app: &TestApp, from: &str, to: &[&str], data: &str) -> String {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.send_mail(from, to, data).await
}

/// The key the app got, checked for the draft's sf-string shape: `"` + 32 hex digits + `"`.
fn key_of(request: &Captured) -> String {
    let value = request
        .header("idempotency-key")
        .unwrap_or_else(|| panic!("no Idempotency-Key in {:?}", request.headers));
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a structured-field string: {value}"));
    assert_eq!(inner.len(), 32, "{value}");
    assert!(inner.bytes().all(|b| b.is_ascii_hexdigit()), "{value}");
    value.to_string()
}

#[tokio::test]
async fn a_retry_carries_the_same_key_and_other_messages_do_not_in_every_format() {
    for format in FORMATS {
        let receiver = Receiver::start().await;
        let app = TestApp::start(&config_with_format(
            &[("*@example.com", receiver.url("/status/200"))],
            format,
            "",
        ))
        .await;
        let to = ["to@example.com", "another@example.com"];
        let from = "sender@client.test";
        for (from, to, data) in [
            (from, &to[..], MESSAGE),
            // The sender's retry: a second transaction, recipients in another order.
            (
                from,
                &["another@example.com", "to@example.com"][..],
                MESSAGE,
            ),
            (from, &to[..], "Subject: hello\r\n\r\nanother message"),
            (from, &to[..1], MESSAGE),
            ("other@client.test", &to[..], MESSAGE),
        ] {
            let reply = send(&app, from, to, data).await;
            assert!(reply.starts_with("250"), "{format}: {reply}");
        }
        let keys: Vec<String> = receiver.requests().iter().map(key_of).collect();
        assert_eq!(keys.len(), 5, "{format}");
        assert_eq!(keys[0], keys[1], "{format}: the retry of the same message");
        for (i, what) in [
            (2, "another body"),
            (3, "another recipient list"),
            (4, "another sender"),
        ] {
            assert_ne!(keys[0], keys[i], "{format}: {what}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_key_does_not_depend_on_the_connection() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with_format(
        &[("*@example.com", receiver.url("/status/200"))],
        "json+n",
        "",
    ))
    .await;
    // Another HELO name: a retry may come from another host of the sender's cluster.
    for helo in ["mx1.client.test", "mx2.client.test"] {
        let mut smtp = app.smtp().await;
        smtp.cmd(&format!("EHLO {helo}"), "250").await;
        let reply = smtp
            .send_mail("sender@client.test", &["to@example.com"], MESSAGE)
            .await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0].json()["envelope"]["helo_domain"],
        requests[1].json()["envelope"]["helo_domain"]
    );
    assert_eq!(key_of(&requests[0]), key_of(&requests[1]));
}

#[tokio::test]
async fn the_resend_repeats_the_arrivals_key() {
    let receiver = Receiver::start().await;
    let app = TestApp::dev(Some(&receiver.url("/status/200"))).await;
    let reply = send(&app, "a@client.test", &["b@example.com"], MESSAGE).await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = app.messages().await[0]["id"].as_i64().unwrap();
    let mut browser = app.browser();
    let detail = browser.get(&format!("/messages/{id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let resent = browser
        .post_form(
            &format!("/messages/{id}/resend"),
            &[("csrf_token", &detail.csrf_token())],
        )
        .await;
    assert_eq!(resent.status, 303, "{}", resent.body);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        key_of(&requests[0]),
        key_of(&requests[1]),
        "the resend is the same message"
    );
}

#[tokio::test]
async fn every_redirect_leg_repeats_the_key_and_callbacks_carry_none() {
    let receiver = Receiver::start().await;
    let toml = format!(
        "[server]\nhostname = \"mx.postern.test\"\n[[address]]\naddress = \"*@example.com\"\ntarget = \"{}\"\nauth_callback = \"{}\"\nerror_callback = \"{}\"\n",
        receiver.url("/redirect/2/503"),
        receiver.url("/status/200"),
        receiver.url("/errors.json"),
    );
    let app = TestApp::start(&toml).await;
    let reply = send(&app, "a@client.test", &["to@example.com"], MESSAGE).await;
    assert!(reply.starts_with("450"), "{reply}");
    // The error callback runs after the reply; wait for it.
    let requests = eventually_ok("the error callback", async || {
        let requests = receiver.requests();
        match requests.iter().any(|r| r.path == "/errors.json") {
            true => Ok(requests),
            false => Err("not called yet".to_string()),
        }
    })
    .await;
    let (legs, callbacks): (Vec<&Captured>, Vec<&Captured>) = requests
        .iter()
        .partition(|r| r.path.starts_with("/redirect/"));
    assert_eq!(legs.len(), 3, "the POST and two redirects");
    assert!(legs.iter().all(|leg| key_of(leg) == key_of(legs[0])));
    let paths: Vec<&str> = callbacks.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/status/200", "/errors.json"]);
    for callback in callbacks {
        assert_eq!(
            callback.header("idempotency-key"),
            None,
            "{}",
            callback.path
        );
    }
}
