//! The CloudMailin send API (contract §6.2–§6.4): the official npm client unchanged, and the
//! rules over plain HTTP — credentials, sending domains, limits, raw messages, the 202 echo
//! and the queue rows behind it.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use postern::outbound::NewCredentialSpec;

use crate::support::{TestApp, config_with};

fn npm_client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/npm-client")
}

/// Installs the pinned `cloudmailin` package once (CI runs `npm ci` itself).
fn ensure_npm_client() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = npm_client_dir();
        if dir.join("node_modules/cloudmailin").exists() {
            return;
        }
        // nextest runs every test in its own process: a file lock keeps two from running
        // `npm ci` in the same directory at once (the second finds it done).
        let npm = std::process::Command::new("flock")
            .args([".npm-ci.lock", "sh", "-c"])
            .arg("[ -d node_modules/cloudmailin ] || npm ci --no-audit --no-fund")
            .current_dir(&dir)
            .output()
            .expect("npm is needed for the npm client test (Node is on the CI machine)");
        assert!(
            npm.status.success(),
            "npm ci in tests/npm-client: {}",
            String::from_utf8_lossy(&npm.stderr)
        );
    });
}

/// Sends `message` with the official client's `sendMessage` (or `sendRawMessage`).
async fn npm_send(app: &TestApp, username: &str, key: &str, raw: bool, message: Value) -> Value {
    ensure_npm_client();
    let base_url = app.url("/api/v0.1");
    let mut child = Command::new("node")
        .arg("send.js")
        .args([
            base_url.as_str(),
            username,
            key,
            if raw { "raw" } else { "message" },
        ])
        .current_dir(npm_client_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(message.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "node send.js: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("send.js prints JSON")
}

fn is_uuid_v4(id: &str) -> bool {
    let re =
        regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            .unwrap();
    re.is_match(id)
}

/// A serve-mode app with a credential `app` (its token returned) and `example.com` as a
/// sending domain.
async fn serve_app(spec: NewCredentialSpec) -> (TestApp, String) {
    let app = TestApp::start(&config_with(&[], "")).await;
    let token = app.credential(spec).await;
    app.add_example_sending_domain().await;
    (app, token)
}

fn credential(username: &str) -> NewCredentialSpec {
    NewCredentialSpec {
        username: username.into(),
        ..NewCredentialSpec::default()
    }
}

#[tokio::test]
async fn the_official_npm_client_sends_through_dev_mode() {
    let app = TestApp::dev(None).await;
    let answer = npm_send(
        &app,
        "any-user",
        "any-key",
        false,
        json!({
            "from": "Sender <sender@example.com>",
            "to": ["Recipient <recipient@example.net>", "second@example.net"],
            "cc": "cc@example.org",
            "subject": "Hello from the npm client",
            "plain": "plain body",
            "html": "<p>html body <img src=\"cid:logo\"></p>",
            "tags": ["js", "welcome"],
            "headers": {"X-Campaign": "autumn"},
            "attachments": [
                {"file_name": "a.txt", "content": "aGVsbG8=", "content_type": "text/plain"},
                {"file_name": "logo.png", "content": "iVBORw0K", "content_type": "image/png",
                 "content_id": "logo"}
            ]
        }),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    let result = &answer["result"];
    let id = result["id"].as_str().unwrap();
    assert!(is_uuid_v4(id), "{id}");
    assert_eq!(result["from"], "Sender <sender@example.com>");
    assert_eq!(
        result["to"],
        json!(["Recipient <recipient@example.net>", "second@example.net"])
    );
    assert_eq!(result["cc"], json!(["cc@example.org"]));
    assert_eq!(result["tags"], json!(["js", "welcome", "api"]));
    assert_eq!(result["test_mode"], false);
    assert_eq!(result["subject"], "Hello from the npm client");
    assert!(result.get("headers").is_none() && result.get("attachments").is_none());

    // Captured, not delivered, and listed by GET /api/outbound.
    let listed = app.get_json("/api/outbound").await;
    let message = &listed["messages"][0];
    assert_eq!(message["id"], id);
    assert_eq!(message["source"], "api");
    assert_eq!(message["username"], "any-user");
    assert_eq!(
        message["envelope_from"],
        format!("bounces+{id}@example.com")
    );
    let states: Vec<(&str, &str)> = message["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["address"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("recipient@example.net", "captured"),
            ("second@example.net", "captured"),
            ("cc@example.org", "captured")
        ]
    );
    let detail = app.get_json(&format!("/api/outbound/{id}")).await;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["registration"; 3]);

    // The queued bytes are the message the client described.
    let raw = app.queued_content(id).await;
    let parsed = postern::mail::message::ParsedMessage::parse(&raw);
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
    };
    assert_eq!(
        header("Subject").as_deref(),
        Some("Hello from the npm client")
    );
    assert_eq!(header("X-Campaign").as_deref(), Some("autumn"));
    assert_eq!(header("Message-ID"), Some(format!("<{id}@example.com>")));
    assert_eq!(parsed.plain.as_deref(), Some("plain body"));
    // The inline image goes with the HTML in multipart/related, named like an attachment;
    // the attachment comes after (contract §6.2).
    let text = String::from_utf8_lossy(&raw);
    let types: Vec<&str> = text
        .split("Content-Type: ")
        .skip(1)
        .map(|rest| rest.split([';', '\r']).next().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "multipart/mixed",
            "multipart/related",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "image/png",
            "text/plain"
        ],
        "{text}"
    );
    let leaves = postern::mail::message::mime_leaves(&raw);
    let logo = String::from_utf8_lossy(&raw[leaves[2].header.clone()]);
    for field in [
        "Content-Type: image/png; name=\"logo.png\"",
        "Content-Disposition: inline; filename=\"logo.png\"",
        "Content-ID: <logo>",
    ] {
        assert!(logo.contains(field), "{field} in {logo}");
    }
    let names: Vec<(&str, Option<&str>)> = parsed
        .attachments
        .iter()
        .map(|a| (a.file_name.as_str(), a.content_id.as_deref()))
        .collect();
    assert_eq!(names, [("logo.png", Some("<logo>")), ("a.txt", None)]);

    // sendRawMessage goes to the same endpoint.
    let raw = "From: sender@example.com\r\nTo: r@example.net\r\nSubject: raw\r\n\r\nraw body\r\n";
    let answer = npm_send(
        &app,
        "any-user",
        "other-key",
        true,
        json!({"from": "sender@example.com", "to": "r@example.net", "raw": raw}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["to"], json!(["r@example.net"]));
    assert_eq!(answer["result"]["subject"], Value::Null);
}

#[tokio::test]
async fn the_npm_client_sees_status_and_error_of_a_refusal() {
    let (app, token) = serve_app(credential("app")).await;
    let answer = npm_send(
        &app,
        "app",
        &token,
        false,
        json!({"from": "a@example.com", "to": "b@example.net", "subject": "no body"}),
    )
    .await;
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["name"], "CloudMailinError");
    assert_eq!(answer["status"], 422);
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.to_lowercase().contains("body not found"),
        "{message}"
    );

    let answer = npm_send(
        &app,
        "app",
        "wrong-token",
        false,
        json!({"from": "a@example.com", "to": "b@example.net", "plain": "x"}),
    )
    .await;
    assert_eq!(answer["status"], 401, "{answer}");

    let answer = npm_send(
        &app,
        "app",
        &token,
        false,
        json!({"from": "a@example.com", "to": "b@example.net", "plain": "x", "tags": "js"}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["tags"], json!(["js", "api"]));
}

#[tokio::test]
async fn serve_mode_checks_credentials_senders_and_domains() {
    let (app, token) = serve_app(NewCredentialSpec {
        allowed_senders: vec!["@example.com".into()],
        ..credential("app")
    })
    .await;
    let good = json!({"from": "a@example.com", "to": "b@example.net", "plain": "x"});

    // No header, a wrong token, an unknown username: 401 with the error shape.
    let response = reqwest::Client::new()
        .post(app.url("/api/v0.1/app/messages"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(app.post_message("app", "nope", good.clone()).await.0, 401);
    assert_eq!(app.post_message("other", &token, good.clone()).await.0, 401);

    // A sender outside the credential's patterns: 403.
    let (status, body) = app
        .post_message(
            "app",
            &token,
            json!({"from": "a@example.org", "to": "b@example.net", "plain": "x"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"],
        "credential app may not send as a@example.org"
    );

    // Accepted: exactly 202, queued for delivery, envelope sender on the return path.
    let (status, body) = app.post_message("app", &token, good.clone()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    let message = app.get_json(&format!("/api/outbound/{id}")).await;
    assert_eq!(
        message["envelope_from"],
        format!("bounces+{id}@mta.example.com")
    );
    assert_eq!(message["recipients"][0]["state"], "queued");
    assert_eq!(message["priority"], "standard");

    // Revoked: 401 from then on.
    assert!(app.outbound.revoke_credential("app").await.unwrap());
    assert_eq!(app.post_message("app", &token, good).await.0, 401);
}

#[tokio::test]
async fn unknown_sending_domains_are_refused_with_a_hint() {
    let (app, token) = serve_app(credential("app")).await;
    let (status, body) = app
        .post_message(
            "app",
            &token,
            json!({"from": "a@elsewhere.test", "to": "b@example.net", "plain": "x"}),
        )
        .await;
    assert_eq!(status, 422);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("sending domain elsewhere.test is not set up")
            && error.contains("postern sending-domain add elsewhere.test"),
        "{error}"
    );
    assert!(
        app.get_json("/api/outbound").await["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn test_credentials_and_test_mode_never_queue_for_delivery() {
    let (app, token) = serve_app(credential("live")).await;
    let test_token = app
        .credential(NewCredentialSpec {
            test: true,
            ..credential("sandbox")
        })
        .await;
    let message = json!({"from": "a@example.com", "to": "b@example.net", "plain": "x"});
    let (status, body) = app
        .post_message("sandbox", &test_token, message.clone())
        .await;
    assert_eq!((status, &body["test_mode"]), (202, &json!(true)));
    let mut asked = message.clone();
    asked["test_mode"] = json!(true);
    let (status, body2) = app.post_message("live", &token, asked).await;
    assert_eq!((status, &body2["test_mode"]), (202, &json!(true)));
    for id in [&body["id"], &body2["id"]] {
        let detail = app
            .get_json(&format!("/api/outbound/{}", id.as_str().unwrap()))
            .await;
        assert_eq!(detail["recipients"][0]["state"], "test");
        assert_eq!(detail["test_mode"], true);
    }
    let queued = app.get_json("/api/outbound?state=queued").await;
    assert!(queued["messages"].as_array().unwrap().is_empty());
    let tests = app.get_json("/api/outbound?state=test").await;
    assert_eq!(tests["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn go_client_shapes_limits_and_raw_messages() {
    let (app, token) = serve_app(credential("app")).await;

    // cloudmailin-go: headers as arrays, priority, tags array; exactly 202.
    let (status, body) = app
        .post_message(
            "app",
            &token,
            json!({
                "from": "a@example.com", "to": ["b@example.net"], "subject": "go",
                "plain": "x", "headers": {"x-agent": ["cloudmailin-go"]},
                "priority": "priority", "tags": ["go"]
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["tags"], json!(["go", "api"]));
    let detail = app
        .get_json(&format!("/api/outbound/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(detail["priority"], "priority");

    // Every refusal is a 422 with a sentence.
    let many: Vec<String> = (0..21).map(|i| format!("r{i}@example.net")).collect();
    for (request, expected) in [
        (
            json!({"from": "a@example.com", "to": many, "plain": "x"}),
            "at most 20 recipients",
        ),
        (
            json!({"from": "a@example.com", "cc": "c@example.net", "plain": "x"}),
            "to is required",
        ),
        (
            json!({"from": "a@example.com", "to": "b@example.net", "bcc": "c@example.net", "plain": "x"}),
            "bcc is not supported",
        ),
        (
            json!({"to": "b@example.net", "plain": "x"}),
            "from is required",
        ),
        (
            json!({"from": "a@example.com", "to": "b@example.net", "plain": "x",
                "attachments": [{"file_name": "x.exe", "content": "", "content_type": "application/x-msdownload"}]}),
            "extension .exe",
        ),
        (
            json!({"from": "a@example.com", "to": "b@example.net",
                "raw": "From: a@example.com\r\nTo: someone@else.test\r\n\r\nx"}),
            "To header",
        ),
        (json!("not an object"), "not a valid message"),
    ] {
        let (status, body) = app.post_message("app", &token, request).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["status"], 422);
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(expected),
            "{error:?} should say {expected:?}"
        );
    }

    // Large bodies: 7 MB of attachment (9.3 MB of JSON) is accepted, 11 MB is refused as
    // too large for a message, not by the HTTP layer.
    use base64::Engine;
    for (size, status) in [(7 * 1024 * 1024, 202), (11 * 1024 * 1024, 422)] {
        let content = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; size]);
        let (got, body) = app.post_message("app",
            &token,
            json!({"from": "a@example.com", "to": "b@example.net", "plain": "x",
                   "attachments": [{"file_name": "big.bin.txt", "content": content, "content_type": "text/plain"}]}),
        )
        .await;
        assert_eq!(got, status, "{size} bytes: {}", body["error"]);
    }
}
