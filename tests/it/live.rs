//! Live pages (issue 14): `GET /live?scope=…` is a Server-Sent Events stream whose first event
//! is the scope's version now and whose next ones come when a write changed it; a bad scope is
//! 400, nobody unsigned gets it, and the drain at shutdown ends every stream (an open tab
//! never holds a stopping server).

use std::time::{Duration, Instant};

use crate::support::{Receiver, TestApp};

/// The next `data:` of an event stream, within five seconds.
async fn next_data(stream: &mut reqwest::Response, buffer: &mut String) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                return Some(data.trim().to_string());
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn the_inbox_stream_says_when_mail_arrives_and_ends_with_the_drain() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&format!(
        "[server]\nhostname = \"mx.postern.test\"\n[[address]]\naddress = \"*@in.test\"\ntarget = \"{}\"\n",
        receiver.url("/status/200")
    ))
    .await;
    let client = reqwest::Client::new();
    let live = |scope: &str| {
        client
            .get(app.url(&format!("/live?scope={scope}")))
            .bearer_auth(&app.api_key)
    };
    let bad = live("everything").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let nobody = no_redirects
        .get(app.url("/live?scope=inbound"))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), 303, "to the sign-in page");

    let response = live("inbound").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut stream = response;
    let mut buffer = String::new();
    let first = next_data(&mut stream, &mut buffer)
        .await
        .expect("the version now");

    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail(
            "a@example.org",
            &["x@in.test"],
            "Subject: live\r\n\r\nhi\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let second = next_data(&mut stream, &mut buffer)
        .await
        .expect("news after the mail");
    assert_ne!(first, second);
    let id = app.messages().await[0]["id"].as_i64().unwrap();
    assert!(second.starts_with(&format!("{id}.")), "{second}");

    // A message's own stream follows its attempts.
    let response = live(&format!("message:{id}")).send().await.unwrap();
    let mut message_stream = response;
    let mut message_buffer = String::new();
    let attempts = next_data(&mut message_stream, &mut message_buffer)
        .await
        .unwrap();
    assert!(attempts.starts_with("1."), "one attempt so far: {attempts}");

    // Stopping drains: the streams end, and the app stops well within its grace.
    let started = Instant::now();
    let _ = app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        next_data(&mut stream, &mut buffer).await,
        None,
        "the stream ended"
    );
}
