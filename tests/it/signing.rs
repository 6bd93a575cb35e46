//! Signed webhooks (Standard Webhooks): a real app (`support/signed_app.py`) checks every
//! POST with the `standardwebhooks` package from PyPI and refuses what does not verify, so
//! the SMTP reply itself says whether Postern's signature holds: inbound payloads, the
//! authorization and error callbacks, and the events webhook; rotation with two valid
//! secrets, retiring, removing, and a rotation by the CLI while the server runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use postern::outbound::NewCredentialSpec;
use postern::store::SendingDomainRow;

use crate::support::binary;
use crate::support::{TestApp, eventually};

/// The Python app, its secret file and its request log.
struct SignedApp {
    child: Child,
    port: u16,
    secret_file: PathBuf,
    log_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl SignedApp {
    fn start() -> SignedApp {
        let dir = tempfile::tempdir().unwrap();
        let (secret_file, log_file) = (dir.path().join("secret"), dir.path().join("log"));
        // Until a test gives it Postern's, the app knows a secret Postern never makes.
        std::fs::write(&secret_file, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/signed_app.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([&secret_file, &log_file])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "signed_app.py did not start (needs `pip install standardwebhooks==1.3.0`): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        };
        SignedApp {
            child,
            port,
            secret_file,
            log_file,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the app knows from now on.
    fn knows(&self, secret: &str) {
        std::fs::write(&self.secret_file, secret).unwrap();
    }

    /// Every request the app got, oldest first.
    fn log(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn last(&self) -> Value {
        self.log().pop().expect("the app got a request")
    }
}

impl Drop for SignedApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(app: &SignedApp) -> String {
    format!(
        concat!(
            "[server]\nhostname = \"mx.postern.test\"\n",
            "[[address]]\naddress = \"signed@example.com\"\ntarget = \"{inbound}\"\n",
            "error_callback = \"{error}\"\n",
            "[[address]]\naddress = \"checked@example.com\"\ntarget = \"{inbound}\"\n",
            "auth_callback = \"{auth}\"\n",
        ),
        inbound = app.url("/inbound"),
        error = app.url("/error"),
        auth = app.url("/auth"),
    )
}

async fn signing(postern: &TestApp, action: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/signing/{action}");
    postern
        .call(&postern.api_key, Method::POST, &path, Some(body))
        .await
}

fn signatures(entry: &Value) -> usize {
    entry["webhook-signature"]
        .as_str()
        .map_or(0, |s| s.split(' ').count())
}

#[tokio::test]
async fn an_app_verifies_every_inbound_post_and_callback_through_a_rotation() {
    let app = SignedApp::start();
    let postern = TestApp::start(&config(&app)).await;
    let signed = json!({ "address": "signed@example.com" });

    // Nothing is signed yet: the app refuses, and its words reach the sender.
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.starts_with("554"), "{reply}");
    assert!(reply.contains("Missing required headers"), "{reply}");
    assert_eq!(
        postern.rcpt_reply("checked@example.com").await.get(..3),
        Some("550")
    );

    let (status, first) = signing(&postern, "rotate", signed.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["address"], "signed@example.com");
    assert_eq!(first["previous_valid_until"], Value::Null);
    let first_secret = first["secret"].as_str().unwrap().to_string();
    assert!(first_secret.starts_with("whsec_"), "{first_secret}");
    app.knows(&first_secret);
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.starts_with("250"), "{reply}");
    let entry = app.last();
    assert_eq!(entry["verified"], true, "{entry}");
    assert_eq!(signatures(&entry), 1);
    // The id is the message's idempotency key: the same on every try of the same message.
    let id = entry["webhook-id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{id}");

    // A rotation: both secrets sign for a day, so the app that knows the old one still takes it.
    let (status, second) = signing(&postern, "rotate", signed.clone()).await;
    assert_eq!(status, 201, "{second}");
    let second_secret = second["secret"].as_str().unwrap().to_string();
    assert_ne!(second_secret, first_secret);
    assert!(second["previous_valid_until"].is_string(), "{second}");
    let reply = postern.mail_to("signed@example.com").await;
    assert!(
        reply.starts_with("250"),
        "old secret during the overlap: {reply}"
    );
    assert_eq!(signatures(&app.last()), 2);
    app.knows(&second_secret);
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.starts_with("250"), "new secret: {reply}");

    // Retired: the old secret no longer signs, so an app still on it refuses.
    let (status, _) = signing(&postern, "retire", signed.clone()).await;
    assert_eq!(status, 204);
    let (status, _) = signing(&postern, "retire", signed.clone()).await;
    assert_eq!(status, 404, "nothing left to retire");
    app.knows(&first_secret);
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.starts_with("554"), "{reply}");
    assert!(reply.contains("No matching signature"), "{reply}");
    // That refusal went to the error callback, signed with the new secret.
    app.knows(&second_secret);
    eventually("the error callback", async || {
        app.log().iter().any(|e| e["path"] == "/error")
    })
    .await;
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.starts_with("250"), "{reply}");

    // The other address has a secret of its own: its authorization callback is signed
    // with it, and its messages too.
    let (_, checked) = signing(
        &postern,
        "rotate",
        json!({ "address": "checked@example.com" }),
    )
    .await;
    let checked_secret = checked["secret"].as_str().unwrap().to_string();
    assert_ne!(checked_secret, second_secret);
    app.knows(&checked_secret);
    assert_eq!(
        postern.rcpt_reply("checked@example.com").await.get(..3),
        Some("250")
    );
    assert_eq!(app.last()["path"], "/auth");
    assert_eq!(app.last()["verified"], true);
    let reply = postern.mail_to("checked@example.com").await;
    assert!(reply.starts_with("250"), "{reply}");
    let reply = postern.mail_to("signed@example.com").await;
    assert!(
        reply.starts_with("554"),
        "another address's secret does not verify: {reply}"
    );

    // Listed (never with a secret), then removed: the POSTs go unsigned again.
    let listed = postern.get_json("/api/signing").await;
    let text = listed.to_string();
    assert!(!text.contains("whsec_"), "{text}");
    let of = |address: &str| {
        listed["signing"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["address"] == address)
            .cloned()
            .unwrap()
    };
    assert!(
        of("signed@example.com")["signing"]["created_at"].is_string(),
        "{listed}"
    );
    let (status, _) = signing(&postern, "remove", signed.clone()).await;
    assert_eq!(status, 204);
    app.knows(&second_secret);
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.contains("Missing required headers"), "{reply}");

    // Only what POSTs somewhere can have a secret; one owner at a time.
    let (status, _) = signing(&postern, "rotate", json!({ "address": "nobody@else.test" })).await;
    assert_eq!(status, 404);
    let both = json!({ "address": "signed@example.com", "credential": "app" });
    assert_eq!(signing(&postern, "rotate", both).await.0, 400);

    // Every change is in the audit log, without the secret.
    let audit = postern.get_json("/api/audit").await.to_string();
    assert!(audit.contains("signing_secret_rotated"), "{audit}");
    assert!(audit.contains("signing_secret_retired"), "{audit}");
    assert!(audit.contains("signing_secret_removed"), "{audit}");
    assert!(!audit.contains("whsec_"), "{audit}");
}

#[tokio::test]
async fn a_viewer_cannot_make_or_end_secrets() {
    let app = SignedApp::start();
    let postern = TestApp::start(&config(&app)).await;
    let (_, viewer) = postern
        .accounts
        .create_api_key(
            "viewer",
            postern::accounts::Role::Viewer,
            &postern::accounts::Actor::Cli,
        )
        .await
        .unwrap();
    let body = json!({ "address": "signed@example.com" });
    assert_eq!(signing(&postern, "rotate", body.clone()).await.0, 201);
    for action in ["rotate", "retire", "remove"] {
        let path = format!("/api/signing/{action}");
        let (status, _) = postern
            .call(&viewer, Method::POST, &path, Some(body.clone()))
            .await;
        assert_eq!(status, 403, "{action}");
    }
    // Viewers read who signs (never a secret): the list is for every role.
    let (status, listed) = postern
        .call(&viewer, Method::GET, "/api/signing", None)
        .await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains("whsec_"), "{listed}");
    // Nothing a viewer asked for took effect: the admin's secret still signs, alone.
    let entry = (listed["signing"].as_array().unwrap().iter())
        .find(|o| o["address"] == "signed@example.com")
        .unwrap()
        .clone();
    assert!(entry["signing"]["created_at"].is_string(), "{entry}");
    assert!(entry["signing"]["previous_until"].is_null(), "{entry}");
}

#[tokio::test]
async fn the_events_webhook_is_signed_with_the_credentials_secret() {
    let app = SignedApp::start();
    let postern = TestApp::start(&config(&app)).await;
    let token = postern
        .credential(NewCredentialSpec {
            username: "app".into(),
            events_url: Some(app.url("/events")),
            ..NewCredentialSpec::default()
        })
        .await;
    postern
        .outbound
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
    let (status, rotated) = signing(&postern, "rotate", json!({ "credential": "app" })).await;
    assert_eq!(status, 201, "{rotated}");
    app.knows(rotated["secret"].as_str().unwrap());

    let message = json!({
        "from": "news@example.com", "to": "someone@example.net",
        "subject": "hi", "plain": "hello"
    });
    let (status, answer) = postern.post_message("app", &token, message).await;
    assert_eq!(status, 202, "{answer}");
    eventually("a batch of events", async || {
        postern.run_events_once().await;
        app.log().iter().any(|e| e["path"] == "/events")
    })
    .await;
    let batch = app.last();
    assert_eq!(batch["path"], "/events");
    assert_eq!(batch["verified"], true, "{batch}");
    assert!(batch["webhook-id"].as_str().unwrap().starts_with("evt_"));
    // The address's secret is not the credential's: an address without one stays unsigned.
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.contains("Missing required headers"), "{reply}");
}

#[tokio::test]
async fn a_rotation_by_the_cli_applies_to_the_running_servers_next_post() {
    let app = SignedApp::start();
    let postern = TestApp::start(&config(&app)).await;
    let data_dir = postern.data_dir.path().to_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["signing"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", &data_dir]);
        binary::run(&all, &[])
    };
    let (code, out, err) = cli(&["rotate", "--address", "signed@example.com"]);
    assert_eq!(code, 0, "{out}{err}");
    let secret = out.lines().next().unwrap().trim().to_string();
    assert!(secret.starts_with("whsec_"), "{out}");
    assert!(out.contains("shown only now"), "{out}");
    app.knows(&secret);
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.starts_with("250"), "{reply}");

    // A second rotation by the CLI: the server sees it at once (no restart, no reload).
    let (code, out, _) = cli(&["rotate", "--address", "signed@example.com"]);
    assert_eq!(code, 0);
    assert!(out.contains("signs beside it until"), "{out}");
    let newer = out.lines().next().unwrap().trim().to_string();
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(signatures(&app.last()), 2);
    app.knows(&newer);
    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("address signed@example.com: signed since"),
        "{out}"
    );
    assert!(!out.contains("whsec_"), "{out}");

    let (code, _, err) = cli(&["rotate", "--credential", "nobody"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no live credential called nobody"), "{err}");
    let (code, _, err) = cli(&["rotate", "--address", "not a pattern"]);
    assert_ne!(code, 0);
    assert!(err.contains("--address"), "{err}");
    let (code, _, err) = cli(&["rotate"]);
    assert_eq!(
        code, 2,
        "clap wants one of --address or --credential: {err}"
    );

    let (code, _, _) = cli(&["remove", "--address", "signed@example.com"]);
    assert_eq!(code, 0);
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.contains("Missing required headers"), "{reply}");
}

#[tokio::test]
async fn a_deleted_managed_address_takes_its_secret_with_it() {
    let app = SignedApp::start();
    let postern = TestApp::start(&config(&app)).await;
    let body = json!({ "address": "managed@example.com", "target": app.url("/inbound") });
    let (status, made) = postern
        .call(
            &postern.api_key,
            Method::POST,
            "/api/addresses",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let managed = json!({ "address": "managed@example.com" });
    assert_eq!(signing(&postern, "rotate", managed.clone()).await.0, 201);
    let signing_of = async |address: &str| -> Value {
        let listed = postern.get_json("/api/signing").await;
        (listed["signing"].as_array().unwrap().iter())
            .find(|o| o["address"] == address)
            .map(|o| o["signing"].clone())
            .unwrap_or(Value::Null)
    };
    assert!(signing_of("managed@example.com").await.is_object());

    let path = format!("/api/addresses/{}", made["id"]);
    let (status, _) = postern
        .call(&postern.api_key, Method::DELETE, &path, None)
        .await;
    assert_eq!(status, 204);
    // A new entry with the same pattern starts unsigned: the old app's secret is gone.
    let (status, _) = postern
        .call(&postern.api_key, Method::POST, "/api/addresses", Some(body))
        .await;
    assert_eq!(status, 201);
    assert_eq!(signing_of("managed@example.com").await, Value::Null);
    let reply = postern.mail_to("managed@example.com").await;
    assert!(reply.contains("Missing required headers"), "{reply}");
    // A config address keeps its secret whatever happens to managed entries.
    assert_eq!(
        signing(
            &postern,
            "rotate",
            json!({ "address": "signed@example.com" })
        )
        .await
        .0,
        201
    );
    assert!(signing_of("signed@example.com").await.is_object());
}

#[tokio::test]
async fn the_signing_page_rotates_shows_the_secret_once_and_stops_signing() {
    let app = SignedApp::start();
    let postern = TestApp::start(&config(&app)).await;
    let mut browser = postern.admin_browser().await;
    let page = browser.get("/signing").await;
    assert!(page.body.contains("signed@example.com") && page.body.contains("Generate secret"));
    let fields = [("address", "signed@example.com")];
    let made = browser.submit(&page, "/signing/rotate", &fields).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let secret = made.body.split("<code id=\"secret\">").nth(1).unwrap();
    let secret = secret.split('<').next().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    app.knows(secret);
    assert!(
        postern
            .mail_to("signed@example.com")
            .await
            .starts_with("250")
    );
    let listed = browser.get("/signing").await;
    assert!(!listed.body.contains(secret), "shown once");
    assert!(listed.body.contains("Stop signing") && !listed.body.contains("Retire old secret"));
    // Nothing to retire: said so, nothing changed.
    let refused = browser.submit(&listed, "/signing/retire", &fields).await;
    assert_eq!(refused.status, 404, "{}", refused.body);
    let stopped = browser.submit(&listed, "/signing/remove", &fields).await;
    assert_eq!(stopped.location(), Some("/signing"));
    let reply = postern.mail_to("signed@example.com").await;
    assert!(reply.contains("Missing required headers"), "{reply}");
}
