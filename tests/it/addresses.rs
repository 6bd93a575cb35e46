//! Addresses and domains managed through the API: CRUD, validation, the config file's
//! precedence, roles, masking, audit, and hot reload proved over SMTP (no restart).

use base64::Engine;
use postern::accounts::{Actor, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_EMAIL, Receiver, TestApp};

const CONFIG: &str = r#"
[server]
hostname = "mx.postern.test"

[smtp]
max_message_size = 1048576

[[domain]]
domain = "config.example.net"
target = "RECEIVER/status/200"

[[address]]
address = "support@example.com"
target = "RECEIVER/status/201"
"#;

const SECRET: &str = "s3cret-pass";

async fn app(receiver: &Receiver) -> TestApp {
    TestApp::start(&CONFIG.replace("RECEIVER", &format!("http://{}", receiver.addr))).await
}

/// [`TestApp::call`], checking that the answer shows no credential.
async fn call(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, value) = app.call(key, method, path, body).await;
    assert!(
        !value.to_string().contains(SECRET),
        "{path} showed a credential: {value}"
    );
    (status, value)
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(app, &app.api_key.clone(), method, path, body).await
}

#[tokio::test]
async fn addresses_are_added_changed_and_removed_without_a_restart() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;

    // The config file's entry is listed, read-only, without an id.
    let (status, list) = admin(&app, Method::GET, "/api/addresses", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["addresses"],
        json!([{
            "id": null, "source": "config", "active": true,
            "address": "support@example.com",
            "target": receiver.url("/status/201"), "format": "json+n",
            "timeout_secs": null, "max_message_size": null, "size_exceeded_message": null,
            "size_as_number": false, "html_to_plain": false,
            "auth_callback": null, "error_callback": null,
            "dkim": false, "dmarc": false,
        }])
    );
    assert!(
        app.rcpt_reply("new@example.com")
            .await
            .starts_with("550 5.1.1")
    );

    // Added: mail goes to it at once, with the credentials of its URL.
    let target = format!("http://user:{SECRET}@{}/status/200", receiver.addr);
    let (status, created) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "New@Example.com", "target": target, "format": "json" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["source"], "api");
    assert_eq!(created["active"], true);
    assert_eq!(created["address"], "new@example.com");
    assert_eq!(
        created["target"],
        format!("http://***@{}/status/200", receiver.addr)
    );
    let reply = app.mail_to("new@example.com").await;
    assert!(reply.starts_with("250 "), "{reply}");
    let post = receiver.single();
    assert_eq!(post.path, "/status/200");
    // The stored URL kept its credentials; only the answers mask them.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{SECRET}"));
    assert_eq!(
        post.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );

    let (status, got) = admin(&app, Method::GET, &format!("/api/addresses/{id}"), None).await;
    assert_eq!((status, &got), (200, &created));
    let (_, list) = admin(&app, Method::GET, "/api/addresses", None).await;
    assert_eq!(list["addresses"][1], created);

    // Changed: the next mail goes to the new target.
    let (status, updated) = admin(
        &app,
        Method::PUT,
        &format!("/api/addresses/{id}"),
        Some(json!({ "address": "new@example.com", "target": receiver.url("/status/202") })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], id);
    assert_eq!(updated["format"], Value::Null);
    assert!(app.mail_to("new@example.com").await.starts_with("250 "));
    let paths: Vec<_> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/status/200", "/status/202"]);

    // Removed: refused again.
    let (status, _) = admin(&app, Method::DELETE, &format!("/api/addresses/{id}"), None).await;
    assert_eq!(status, 204);
    assert!(
        app.rcpt_reply("new@example.com")
            .await
            .starts_with("550 5.1.1")
    );
    let (status, _) = admin(&app, Method::GET, &format!("/api/addresses/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = admin(&app, Method::DELETE, &format!("/api/addresses/{id}"), None).await;
    assert_eq!(status, 404);
    // The config file's address was never affected.
    assert!(app.mail_to("support@example.com").await.starts_with("250 "));

    // Every change is audited, without the credentials (`call` checks the whole answer).
    let (_, audit) = admin(&app, Method::GET, "/api/audit", None).await;
    let changes: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "config_changed")
        .map(|e| {
            (
                e["actor"].clone(),
                e["subject"].clone(),
                e["detail"].clone(),
            )
        })
        .collect();
    let subject = json!("address new@example.com");
    assert_eq!(
        changes,
        [
            (
                json!("api key tests"),
                subject.clone(),
                json!(format!("address deleted (id {id})"))
            ),
            (
                json!("api key tests"),
                subject.clone(),
                json!(format!("address updated (id {id})"))
            ),
            (
                json!("api key tests"),
                subject,
                json!(format!("address created (id {id})"))
            ),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn config_entries_win_and_cannot_be_changed() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let target = receiver.url("/status/200");

    for pattern in ["support@example.com", "SUPPORT@example.COM"] {
        let (status, answer) = admin(
            &app,
            Method::POST,
            "/api/addresses",
            Some(json!({ "address": pattern, "target": target })),
        )
        .await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(
            answer["error"],
            "support@example.com is defined in the config file, which wins; change it there"
        );
    }
    // Nor can a managed entry be renamed onto one.
    let (_, created) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "other@example.com", "target": target })),
    )
    .await;
    let path = format!("/api/addresses/{}", created["id"]);
    let (status, _) = admin(
        &app,
        Method::PUT,
        &path,
        Some(json!({ "address": "support@example.com", "target": target })),
    )
    .await;
    assert_eq!(status, 409);
    // Nor made twice.
    let (status, answer) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "other@example.com", "target": target })),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        answer["error"],
        format!("other@example.com exists already (id {})", created["id"])
    );

    // The same for domains.
    let (_, list) = admin(&app, Method::GET, "/api/domains", None).await;
    assert_eq!(list["domains"][0]["source"], "config");
    assert_eq!(list["domains"][0]["domain"], "config.example.net");
    let (status, _) = admin(
        &app,
        Method::POST,
        "/api/domains",
        Some(json!({ "domain": "Config.Example.NET", "target": target })),
    )
    .await;
    assert_eq!(status, 409);
    // The config's routes are untouched: support@ still goes to its own target.
    assert!(app.mail_to("support@example.com").await.starts_with("250 "));
    assert_eq!(receiver.single().path, "/status/201");
    app.stop().await;
}

#[tokio::test]
async fn invalid_fields_are_named() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let target = receiver.url("/status/200");
    let cases = [
        (
            json!({ "address": "a@example.com", "target": format!("ftp://u:{SECRET}@host/x") }),
            "target",
            "expected an http:// or https:// URL with a host",
        ),
        (
            json!({ "address": "a@*.com", "target": target }),
            "address",
            "expected user@example.com, *@example.com, or either at *.example.com",
        ),
        (
            json!({ "address": "a@example.com", "target": target, "format": "xml" }),
            "format",
            "supported formats: json+n, multipart+n, raw, json, multipart, original",
        ),
        (
            json!({ "address": "a@example.com", "target": target, "max_message_size": 1048577 }),
            "max_message_size",
            "must be between 1024 and 1048576",
        ),
        (
            json!({ "address": "a@nowhere.example" }),
            "target",
            "set a target URL, or a target in a [[domain]] for nowhere.example",
        ),
    ];
    for (body, field, message) in cases {
        let (status, answer) = admin(&app, Method::POST, "/api/addresses", Some(body)).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["status"], 422);
        assert_eq!(answer["field"], field, "{answer}");
        assert_eq!(answer["message"], message, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("address.{field} = ")),
            "{answer}"
        );
    }
    let (status, answer) = admin(
        &app,
        Method::POST,
        "/api/domains",
        Some(json!({ "domain": "x.example", "auth_regex": "(unclosed" })),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(answer["field"], "auth_regex");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("not a valid regular expression"),
        "{answer}"
    );
    // Unknown fields are refused as in the config file.
    let (status, _) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "a@example.com", "target": target, "tagret": target })),
    )
    .await;
    assert!(status == 400 || status == 422, "{status}");
    // Nothing was stored.
    let (_, list) = admin(&app, Method::GET, "/api/addresses", None).await;
    assert_eq!(list["addresses"].as_array().unwrap().len(), 1);
    let (_, list) = admin(&app, Method::GET, "/api/domains", None).await;
    assert_eq!(list["domains"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn viewers_read_and_admins_write() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let (_, viewer) = app
        .accounts
        .create_api_key("viewer", Role::Viewer, &Actor::Cli)
        .await
        .unwrap();
    let target = receiver.url("/status/200");
    let (_, created) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "a@example.com", "target": target })),
    )
    .await;
    let one = format!("/api/addresses/{}", created["id"]);
    for path in ["/api/addresses", one.as_str(), "/api/domains"] {
        let (status, _) = call(&app, &viewer, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}");
    }
    let body = json!({ "address": "b@example.com", "target": target });
    for (method, path) in [
        (Method::POST, "/api/addresses"),
        (Method::PUT, one.as_str()),
        (Method::DELETE, one.as_str()),
        (Method::POST, "/api/domains"),
    ] {
        let (status, _) = call(&app, &viewer, method.clone(), path, Some(body.clone())).await;
        assert_eq!(status, 403, "{method} {path}");
    }
    // Nobody at all: 401.
    let status = reqwest::get(app.url("/api/addresses"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let (_, list) = admin(&app, Method::GET, "/api/addresses", None).await;
    assert_eq!(list["addresses"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn domains_are_managed_and_their_regexp_applies_at_once() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    assert!(
        app.rcpt_reply("ticket-1@tickets.example.org")
            .await
            .starts_with("550 5.1.1")
    );

    let (status, created) = admin(
        &app,
        Method::POST,
        "/api/domains",
        Some(json!({
            "domain": "Tickets.Example.org",
            "auth_regex": r"ticket-\d+@tickets\.example\.org",
            "target": format!("http://u:{SECRET}@{}/status/200", receiver.addr),
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["domain"], "tickets.example.org");
    assert_eq!(
        created["target"],
        format!("http://***@{}/status/200", receiver.addr)
    );
    let id = created["id"].as_i64().unwrap();
    let refused = app.rcpt_reply("someone@tickets.example.org").await;
    assert!(refused.starts_with("550 5.7.1"), "{refused}");
    assert!(
        app.mail_to("ticket-7@tickets.example.org")
            .await
            .starts_with("250 ")
    );
    assert_eq!(receiver.single().path, "/status/200");

    // An address of that domain inherits its target.
    let (status, address) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "ticket-1@tickets.example.org", "format": "raw" })),
    )
    .await;
    assert_eq!(status, 201, "{address}");

    let (status, updated) = admin(
        &app,
        Method::PUT,
        &format!("/api/domains/{id}"),
        Some(json!({ "domain": "tickets.example.org", "target": receiver.url("/status/202") })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert!(
        app.mail_to("anyone@tickets.example.org")
            .await
            .starts_with("250 ")
    );
    assert_eq!(receiver.requests().last().unwrap().path, "/status/202");

    let (status, _) = admin(&app, Method::DELETE, &format!("/api/domains/{id}"), None).await;
    assert_eq!(status, 204);
    assert!(
        app.rcpt_reply("anyone@tickets.example.org")
            .await
            .starts_with("550 5.1.1")
    );
    // The address that took its target from the domain is kept, but no longer routes.
    let (_, list) = admin(&app, Method::GET, "/api/addresses", None).await;
    assert_eq!(list["addresses"][1]["active"], false);
    assert!(
        app.rcpt_reply("ticket-1@tickets.example.org")
            .await
            .starts_with("550 5.1.1")
    );
    app.stop().await;
}

#[tokio::test]
async fn managed_entries_survive_a_restart() {
    let receiver = Receiver::start().await;
    let config = CONFIG.replace("RECEIVER", &format!("http://{}", receiver.addr));
    let app = TestApp::start(&config).await;
    let every_field = json!({
        "address": "kept@example.com",
        "target": format!("http://u:{SECRET}@{}/status/202", receiver.addr),
        "format": "multipart+n",
        "timeout_secs": 7,
        "max_message_size": 4096,
        "size_exceeded_message": "Too big for kept@",
        "size_as_number": true,
        "html_to_plain": true,
        "auth_callback": format!("http://u:{SECRET}@{}/status/200", receiver.addr),
        "error_callback": receiver.url("/errors"),
        "dkim": false,
        "dmarc": false,
    });
    let (status, before) = admin(&app, Method::POST, "/api/addresses", Some(every_field)).await;
    assert_eq!(status, 201, "{before}");
    assert_eq!(before["timeout_secs"], 7);
    assert_eq!(
        before["auth_callback"],
        format!("http://***@{}/status/200", receiver.addr)
    );
    let data_dir = app.stop().await;

    let app = TestApp::start_in(&config, data_dir).await;
    assert!(app.mail_to("kept@example.com").await.starts_with("250 "));
    let paths: Vec<_> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/status/200", "/status/202"],
        "authorization callback, then the target"
    );
    let (_, list) = admin(&app, Method::GET, "/api/addresses", None).await;
    assert_eq!(list["addresses"][1], before);
    app.stop().await;
}

#[tokio::test]
async fn html_to_plain_is_switched_through_the_api() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let target = receiver.url("/status/200");
    let (status, created) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "html@example.com", "target": target, "html_to_plain": true })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["html_to_plain"], true);
    let path = format!("/api/addresses/{}", created["id"]);
    let (_, got) = admin(&app, Method::GET, &path, None).await;
    assert_eq!(got["html_to_plain"], true);

    let html_only =
        "Subject: html\r\nContent-Type: text/html\r\n\r\n<p>Hello &amp; <i>welcome</i></p>";
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let plain_posted = async |smtp: &mut crate::support::smtp::Smtp| {
        receiver.clear();
        let reply = smtp
            .send_mail("a@example.net", &["html@example.com"], html_only)
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
        receiver.single().json()["plain"].clone()
    };
    assert_eq!(plain_posted(&mut smtp).await, "Hello & welcome");

    // A body without the field switches it off (the default), at once.
    let (status, updated) = admin(
        &app,
        Method::PUT,
        &path,
        Some(json!({ "address": "html@example.com", "target": target })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["html_to_plain"], false);
    assert_eq!(plain_posted(&mut smtp).await, Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_signed_in_admin_writes_with_the_csrf_token() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut browser = app.admin_browser().await;
    let csrf = browser.session_csrf().await;
    let body = json!({ "address": "web@example.com", "target": receiver.url("/status/200") });
    let json_headers = [("content-type", "application/json")];

    let refused = browser
        .request(
            Method::POST,
            "/api/addresses",
            &json_headers,
            Some(body.to_string()),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        app.rcpt_reply("web@example.com")
            .await
            .starts_with("550 5.1.1")
    );

    let headers = [json_headers[0], ("x-csrf-token", csrf.as_str())];
    let created = browser
        .request(
            Method::POST,
            "/api/addresses",
            &headers,
            Some(body.to_string()),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(app.mail_to("web@example.com").await.starts_with("250 "));
    let (_, audit) = admin(&app, Method::GET, "/api/audit", None).await;
    assert_eq!(audit["entries"][0]["action"], "config_changed");
    assert_eq!(audit["entries"][0]["actor"], ADMIN_EMAIL);
    app.stop().await;
}

#[tokio::test]
async fn a_transaction_uses_the_routes_in_use_at_data_time() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let (_, created) = admin(
        &app,
        Method::POST,
        "/api/addresses",
        Some(json!({ "address": "brief@example.com", "target": receiver.url("/status/200") })),
    )
    .await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<sender@example.org>", "250").await;
    smtp.cmd("RCPT TO:<brief@example.com>", "250").await;

    // Deleted between RCPT and DATA: the sender is told to try again (and then gets 550).
    let path = format!("/api/addresses/{}", created["id"]);
    assert_eq!(admin(&app, Method::DELETE, &path, None).await.0, 204);
    smtp.cmd("DATA", "354").await;
    smtp.send(b"Subject: late\r\n\r\nx\r\n.\r\n").await;
    let reply = smtp.reply().await;
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
    assert!(receiver.requests().is_empty());
    assert!(
        app.rcpt_reply("brief@example.com")
            .await
            .starts_with("550 5.1.1")
    );
    app.stop().await;
}
