//! Redaction (issue 11 §4) over the real app: fields named by `[privacy] redact` (plus an
//! address's, a domain's or a managed address's `redact`) and `redact_outbound` are never
//! written. Mail is still delivered with every field, the API and the dashboard say
//! "redacted", and no file of the data directory holds a redacted value while the fields
//! left alone are still there.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::binary::postern;
use crate::support::dns::{DnsServer, Zone};
use crate::support::scan::files_holding;
use crate::support::sink::Sink;
use crate::support::{Receiver, TestApp, eventually_ok};
use postern::outbound::NewCredentialSpec;
use postern::store::RecipientState;

/// Instance-wide: subject and Message-ID; `a@in.test` adds the sender, the domain
/// `clinic.test` the recipients.
fn inbound_toml(receiver: &Receiver) -> String {
    let target = receiver.url("/status/200");
    format!(
        r#"[server]
hostname = "mx.postern.test"

[privacy]
redact = ["subject", "message_id"]

[[address]]
address = "a@in.test"
target = "{target}"
redact = ["sender"]

[[address]]
address = "b@in.test"
target = "{target}"

[[domain]]
domain = "clinic.test"
target = "{target}"
redact = ["recipient"]
"#
    )
}

/// One message over SMTP; its subject, Message-ID and the EHLO name carry `tag`.
async fn send(app: &TestApp, from: &str, to: &str, tag: &str) {
    let mut smtp = app.smtp().await;
    smtp.cmd(&format!("EHLO helo-{tag}.test"), "250").await;
    let data = format!(
        "Subject: subject-{tag}\r\nMessage-ID: <mid-{tag}@example.org>\r\n\r\nbody {tag}\r\n"
    );
    let reply = smtp.send_mail(from, &[to], &data).await;
    assert!(reply.starts_with("250 "), "{to}: {reply}");
}

/// `GET /api/messages/{id}` of the message routed by the configured `address`.
async fn row_for(app: &TestApp, address: &str) -> Value {
    let messages = app.messages().await;
    let row = messages
        .iter()
        .find(|m| m["address"].as_str() == Some(address))
        .unwrap_or_else(|| panic!("no row for {address}: {messages:?}"));
    app.get_json(&format!("/api/messages/{}", row["id"])).await
}

/// The data directory's files holding `needle`, after the app stopped.
fn holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    files_holding(dir, needle.as_bytes())
}

#[tokio::test]
async fn redacted_inbound_fields_are_posted_but_never_stored() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&inbound_toml(&receiver)).await;
    // A managed address with its own list, through the addresses API.
    let (status, created) = app
        .call(
            &app.api_key,
            Method::POST,
            "/api/addresses",
            Some(
                json!({"address": "m@in.test", "target": receiver.url("/status/200"),
                        "format": "json+n", "redact": ["helo"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");

    send(&app, "sender-a9f1@example.org", "a@in.test", "a9f1").await;
    send(&app, "sender-b7c2@example.org", "b@in.test", "b7c2").await;
    send(
        &app,
        "sender-c3d4@example.org",
        "patient-c3d4@clinic.test",
        "c3d4",
    )
    .await;
    send(&app, "sender-m5e6@example.org", "m@in.test", "m5e6").await;

    // Delivery still works: the target got every field.
    let posts = receiver.requests();
    assert_eq!(posts.len(), 4);
    let first = posts[0].json();
    assert_eq!(first["envelope"]["from"], "sender-a9f1@example.org");
    assert_eq!(first["headers"]["subject"], "subject-a9f1");
    assert_eq!(first["envelope"]["helo_domain"], "helo-a9f1.test");
    assert_eq!(
        posts[2].json()["envelope"]["to"],
        "patient-c3d4@clinic.test"
    );

    // The rows: what the lists name is null / "" / [] and listed in `redacted`.
    let a = row_for(&app, "a@in.test").await;
    assert_eq!(
        (&a["mail_from"], &a["subject"], &a["message_id"]),
        (&json!(""), &Value::Null, &Value::Null),
        "{a}"
    );
    assert_eq!(a["redacted"], json!(["sender", "subject", "message_id"]));
    assert_eq!(
        a["authentication"],
        Value::Null,
        "the SPF result names the sender's domain"
    );
    assert_eq!(a["helo"], "helo-a9f1.test");
    assert_eq!(a["recipients"], json!(["a@in.test"]));
    assert_eq!(
        a["has_raw"], false,
        "the raw message holds the redacted fields"
    );

    let b = row_for(&app, "b@in.test").await;
    assert_eq!(
        b["mail_from"], "sender-b7c2@example.org",
        "a's list is a's only"
    );
    assert_eq!(b["redacted"], json!(["subject", "message_id"]));
    assert_eq!(b["authentication"]["spf"]["domain"], "example.org", "{b}");

    let messages = app.messages().await;
    let c = messages
        .iter()
        .find(|m| m["mail_from"] == "sender-c3d4@example.org")
        .expect("the clinic message is listed");
    assert_eq!(c["recipients"], json!([]), "{c}");
    assert_eq!(c["redacted"], json!(["recipient", "subject", "message_id"]));

    let m = row_for(&app, "m@in.test").await;
    assert_eq!(m["helo"], "", "{m}");
    assert_eq!(m["redacted"], json!(["helo", "subject", "message_id"]));
    assert_eq!(m["mail_from"], "sender-m5e6@example.org");

    // The dashboard says so, in the list and on the page.
    let mut browser = app.admin_browser().await;
    let list = browser.get("/").await;
    assert!(list.body.contains("redacted"), "{}", list.body);
    assert!(!list.body.contains("subject-a9f1"));
    let page = browser.get(&format!("/messages/{}", a["id"])).await;
    assert!(page.body.contains("<em class=\"redacted\">redacted</em>"));
    assert!(page.body.contains("helo-a9f1.test"));
    assert!(!page.body.contains("sender-a9f1"));

    // On disk: no redacted value in any file; what was not redacted is there.
    let data_dir = app.stop().await;
    let dir = data_dir.path();
    for tag in ["a9f1", "b7c2", "c3d4", "m5e6"] {
        assert_eq!(
            holding(dir, &format!("subject-{tag}")),
            Vec::<String>::new()
        );
        assert_eq!(holding(dir, &format!("mid-{tag}")), Vec::<String>::new());
    }
    assert_eq!(holding(dir, "sender-a9f1"), Vec::<String>::new());
    assert_eq!(holding(dir, "patient-c3d4"), Vec::<String>::new());
    assert_eq!(holding(dir, "helo-m5e6"), Vec::<String>::new());
    assert!(
        !holding(dir, "sender-b7c2").is_empty(),
        "b's sender is kept"
    );
    assert!(!holding(dir, "helo-a9f1").is_empty(), "a's HELO is kept");
    assert!(
        !holding(dir, "sender-m5e6").is_empty(),
        "m's sender is kept"
    );
}

#[test]
fn an_unknown_field_name_stops_check_with_the_valid_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    std::fs::write(
        &path,
        "[server]\nhostname = \"mx.postern.test\"\n[privacy]\nredact = [\"subject\", \"ip\"]\n",
    )
    .unwrap();
    let output = postern()
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("privacy.redact"), "{err}");
    assert!(err.contains("\"ip\""), "{err}");
    assert!(
        err.contains(
            "sender_ip, helo, sender, recipient, subject, message_id, server_response, tls"
        ),
        "{err}"
    );
}

/// `dest.test` → MX `mx.dest.test` → 127.0.0.1 (the sink).
fn dest_zone() -> Zone {
    Zone::new()
        .mx("dest.test", 10, "mx.dest.test")
        .a("mx.dest.test", std::net::Ipv4Addr::LOCALHOST)
}

#[tokio::test]
async fn redacted_outbound_fields_are_delivered_but_never_stored() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let toml = format!(
        "[server]\nhostname = \"mx.postern.test\"\n\
         [outbound]\ndns = [\"{}\"]\nport = {}\ntimeout_secs = 5\n\
         [privacy]\nredact_outbound = [\"sender_ip\", \"sender\", \"subject\", \"server_response\", \"tls\", \"tracking\"]\n",
        dns.addr(),
        sink.port()
    );
    let app = TestApp::launch(&toml).delivering().start().await;
    app.add_example_sending_domain().await;
    let token = app
        .credential(NewCredentialSpec {
            username: "shop".into(),
            ..NewCredentialSpec::default()
        })
        .await;
    let (status, answer) = app
        .post_message(
            "shop",
            &token,
            json!({"from": "Shop <shop-k8q2@example.com>", "to": "user@dest.test",
                   "subject": "subject-k8q2",
                   "html": "<html><body><p>body k8q2</p></body></html>"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let uuid = answer["id"].as_str().unwrap().to_string();

    // Delivered whole, DKIM-signed for the From domain the row kept.
    let dump = eventually_ok("the sink got the message", async || {
        let dumps = sink.messages();
        match dumps.first() {
            Some(dump) if dump.ends_with("\n\n") => Ok(dump.clone()),
            _ => Err(format!("{} dumps", dumps.len())),
        }
    })
    .await;
    assert!(dump.contains("subject-k8q2"), "{dump}");
    assert!(dump.contains("shop-k8q2@example.com"), "{dump}");
    assert!(dump.contains("d=example.com"), "DKIM still signs: {dump}");
    let store = app.outbound.store();
    eventually_ok("delivered", async || {
        let message = store.outbound_message(&uuid).await.unwrap().unwrap();
        match message.recipients[0].state {
            RecipientState::Delivered => Ok(()),
            state => Err(format!("{state:?}")),
        }
    })
    .await;

    // The API: null and listed; the attempt's and event's server text left out.
    let api = app.get_json(&format!("/api/outbound/{uuid}")).await;
    assert_eq!(api["subject"], Value::Null, "{api}");
    assert_eq!(api["from"], "example.com", "only the domain, for DKIM");
    assert_eq!(
        api["redacted"],
        json!([
            "sender_ip",
            "sender",
            "subject",
            "server_response",
            "tls",
            "tracking"
        ])
    );
    assert_eq!(api["recipients"][0]["last_response"], Value::Null);
    assert_eq!(api["recipients"][0]["last_code"], 250);
    let attempt = &api["attempts"][0];
    assert_eq!(
        (&attempt["outcome"], &attempt["response"]),
        (&json!("delivered"), &Value::Null)
    );
    let delivery = api["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "delivery")
        .expect("a delivery event");
    assert_eq!(delivery["details"]["response"], Value::Null, "{delivery}");
    assert_eq!(delivery["details"]["code"], 250);

    // An open: recorded, without the reader's address and user agent.
    let pixel = open_pixel(&app, &dump);
    let client = reqwest::Client::builder()
        .user_agent("ua-k8q2")
        .build()
        .unwrap();
    assert_eq!(client.get(&pixel).send().await.unwrap().status(), 200);
    let api = app.get_json(&format!("/api/outbound/{uuid}")).await;
    let events = api["events"].as_array().unwrap();
    let open = events
        .iter()
        .find(|e| e["kind"] == "open")
        .expect("an open");
    assert_eq!(open["details"], json!({}), "{open}");

    // The dashboard.
    let mut browser = app.admin_browser().await;
    let list = browser.get("/outbound").await;
    assert!(list.body.contains("redacted"), "{}", list.body);
    let page = browser.get(&format!("/outbound/{uuid}")).await;
    assert!(page.body.contains("<em class=\"redacted\">redacted</em>"));
    assert!(!page.body.contains("2.0.0 Ok"), "{}", page.body);

    // On disk: the content is kept until delivered (sealed), nothing else holds them.
    let data_dir = app.stop().await;
    let dir = data_dir.path();
    for needle in ["subject-k8q2", "shop-k8q2", "2.0.0 Ok", "ua-k8q2"] {
        assert_eq!(holding(dir, needle), Vec::<String>::new(), "{needle}");
    }
    assert!(
        !holding(dir, "user@dest.test").is_empty(),
        "recipients are kept"
    );
}

/// The open pixel's URL in a delivered copy (its HTML part is quoted-printable).
fn open_pixel(app: &TestApp, dump: &str) -> String {
    let decoded = dump.replace("=\n", "").replace("=3D", "=");
    let base = regex::escape(&app.url("/t/"));
    let pixel = regex::Regex::new(&format!(r#"{base}o/([A-Za-z0-9_.-]+)"#)).unwrap();
    let found = pixel.captures(&decoded);
    found.unwrap_or_else(|| panic!("an open pixel in\n{decoded}"))[0].to_string()
}
