//! Retention (`[retention]`, issue 11) over the real app on the manual clock: rows and
//! content expire at their configured days and not before, queued mail never; audit and
//! tracking cutoffs; dev mode keeps the newest messages; a deleted message leaves no trace
//! in the database file or its WAL, and the file shrinks.

use std::time::Duration;

use serde_json::{Value, json};

use postern::config::Config;
use postern::outbound::NewCredentialSpec;
use postern::retention::{ContentRule, Retention};
use postern::store::{Engagement, Swept};

use crate::support::{TestApp, config_with, private};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Dev mode (every message captured and kept, raw content included) with `retention`.
async fn capturing_app(retention: Retention) -> TestApp {
    crate::support::init();
    let data_dir = tempfile::tempdir().unwrap();
    private(data_dir.path());
    let mut config = Config::dev(
        data_dir.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        None,
    );
    config.retention = retention;
    TestApp::from_config(config, data_dir).await
}

/// A serve-mode app (no delivery worker: sent mail stays queued) with a live credential
/// `app` and a test-mode one `tester`, both allowed to send as example.com; their tokens.
async fn sending_app(extra: &str) -> (TestApp, String, String) {
    let app = TestApp::start(&config_with(&[], extra)).await;
    app.add_example_sending_domain().await;
    let credential = |username: &str, test: bool| NewCredentialSpec {
        username: username.into(),
        test,
        ..NewCredentialSpec::default()
    };
    let live = app.credential(credential("app", false)).await;
    let test = app.credential(credential("tester", true)).await;
    (app, live, test)
}

/// Sends one message through the API as `username`; its UUID.
async fn send(app: &TestApp, username: &str, token: &str, subject: &str) -> String {
    let body = json!({"from": "a@example.com", "to": "one@example.net",
                      "subject": subject, "plain": "hello"});
    let (status, answer) = app.post_message(username, token, body).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// The ids of the received messages, newest first.
async fn inbound_ids(app: &TestApp) -> Vec<i64> {
    let messages = app.messages().await;
    messages.iter().map(|m| m["id"].as_i64().unwrap()).collect()
}

async fn has_inbound_raw(app: &TestApp, id: i64) -> bool {
    let store = app.outbound.store();
    store.get_inbound_raw(id).await.unwrap().is_some()
}

#[tokio::test]
async fn inbound_rows_and_content_expire_at_their_days_and_not_before() {
    let retention = Retention {
        inbound_metadata_days: 10,
        content: ContentRule::Days(3),
        ..Retention::default()
    };
    let app = capturing_app(retention).await;
    assert!(app.mail_to("someone@example.com").await.starts_with("250"));
    let [id] = inbound_ids(&app).await[..] else {
        panic!("one message is listed")
    };
    assert!(has_inbound_raw(&app, id).await);

    app.clock.advance(3 * DAY - HOUR);
    assert_eq!(app.run_retention_once().await, Swept::default());
    assert!(has_inbound_raw(&app, id).await, "content kept until 3 days");

    app.clock.advance(2 * HOUR);
    let swept = app.run_retention_once().await;
    assert_eq!((swept.inbound_content, swept.inbound_messages), (1, 0));
    assert!(
        !has_inbound_raw(&app, id).await,
        "content deleted after 3 days"
    );
    assert_eq!(inbound_ids(&app).await, [id], "the row stays");
    let shown = app.get_json(&format!("/api/messages/{id}")).await;
    assert_eq!(shown["has_raw"], false);

    app.clock.advance(7 * DAY - 2 * HOUR);
    assert_eq!(app.run_retention_once().await.inbound_messages, 0);
    assert_eq!(
        inbound_ids(&app).await,
        [id],
        "the row is kept until 10 days"
    );
    app.clock.advance(2 * HOUR);
    assert_eq!(app.run_retention_once().await.inbound_messages, 1);
    assert_eq!(inbound_ids(&app).await, Vec::<i64>::new());
    assert_eq!(app.get(&format!("/api/messages/{id}")).await.status(), 404);
}

#[tokio::test]
async fn sent_mail_expires_but_queued_mail_is_never_swept() {
    let (app, live, test) =
        sending_app("[retention]\noutbound_metadata_days = 5\ncontent_days = 2\n").await;
    let queued = send(&app, "app", &live, "waits in the queue").await;
    let done = send(&app, "tester", &test, "test mode, finished").await;
    let store = app.outbound.store();
    let row = async |uuid: &str| store.outbound_message(uuid).await.unwrap();
    let done_row = row(&done).await.unwrap().row_id;
    let queued_row = row(&queued).await.unwrap().row_id;

    app.clock.advance(2 * DAY - HOUR);
    assert_eq!(app.run_retention_once().await.outbound_content, 0);
    app.clock.advance(2 * HOUR);
    let swept = app.run_retention_once().await;
    assert_eq!((swept.outbound_content, swept.outbound_messages), (1, 0));
    assert_eq!(store.outbound_content(done_row).await.unwrap(), None);
    assert!(
        store.outbound_content(queued_row).await.unwrap().is_some(),
        "the queue still needs the queued message's content"
    );

    app.clock.advance(3 * DAY - 2 * HOUR);
    assert_eq!(app.run_retention_once().await.outbound_messages, 0);
    assert!(row(&done).await.is_some(), "kept until 5 days");
    app.clock.advance(2 * HOUR);
    assert_eq!(app.run_retention_once().await.outbound_messages, 1);
    assert!(row(&done).await.is_none(), "deleted after 5 days");
    let gone = app.get(&format!("/api/outbound/{done}")).await;
    assert_eq!(gone.status(), 404);

    // A year on, the queued message (and what it still needs to go out) is all there.
    app.clock.advance(365 * DAY);
    app.run_retention_once().await;
    let detail = app.get_json(&format!("/api/outbound/{queued}")).await;
    assert_eq!(detail["recipients"][0]["state"], "queued", "{detail}");
    assert!(!app.queued_content(&queued).await.is_empty());
}

#[tokio::test]
async fn audit_entries_expire_at_audit_days() {
    let (app, _, _) = sending_app("[retention]\naudit_days = 20\n").await;
    let audit = async || app.get_json("/api/audit").await["entries"].clone();
    let before = audit().await;
    assert!(
        before.as_array().is_some_and(|a| !a.is_empty()),
        "starting the test app is audited: {before}"
    );
    app.clock.advance(20 * DAY - HOUR);
    assert_eq!(app.run_retention_once().await.audit_entries, 0);
    assert_eq!(audit().await, before);
    app.clock.advance(2 * HOUR);
    let swept = app.run_retention_once().await;
    assert_eq!(swept.audit_entries, before.as_array().unwrap().len());
    assert_eq!(audit().await, json!([]));
}

#[tokio::test]
async fn tracking_ip_and_user_agent_are_nulled_after_tracking_days() {
    let (app, live, _) = sending_app("[retention]\ntracking_days = 4\n").await;
    let uuid = send(&app, "app", &live, "opened").await;
    // As the open route records it (`outbound::tracking`), from this address and agent.
    let open_by = Engagement {
        uuid: uuid.clone(),
        recipient: "one@example.net".into(),
        kind: "open",
        url: None,
        details: json!({"ip": "203.0.113.9", "user_agent": "RetentionAgent/1"}).to_string(),
        at: app.clock.unix(),
    };
    let store = app.outbound.store();
    let recorded = store.record_engagement(open_by, 60).await.unwrap();
    assert!(recorded);
    let open = async || -> Value {
        let detail = app.get_json(&format!("/api/outbound/{uuid}")).await;
        let events = detail["events"].as_array().unwrap().clone();
        let open = events.into_iter().find(|e| e["kind"] == "open");
        open.unwrap_or_else(|| panic!("no open event in {detail}"))
    };
    assert!(open().await.to_string().contains("RetentionAgent/1"));

    app.clock.advance(4 * DAY - HOUR);
    assert_eq!(app.run_retention_once().await.tracking_events, 0);
    assert!(open().await.to_string().contains("203.0.113.9"));
    app.clock.advance(2 * HOUR);
    assert_eq!(app.run_retention_once().await.tracking_events, 1);
    let after = open().await.to_string();
    assert!(
        !after.contains("203.0.113.9") && !after.contains("RetentionAgent/1"),
        "the open stays, who opened is gone: {after}"
    );
    assert_eq!(app.run_retention_once().await.tracking_events, 0, "once");
}

#[tokio::test]
async fn dev_keeps_only_the_newest_messages() {
    let app = capturing_app(Retention {
        content: ContentRule::Newest(3),
        ..Retention::default()
    })
    .await;
    for _ in 0..5 {
        assert!(app.mail_to("someone@example.com").await.starts_with("250"));
    }
    let all = inbound_ids(&app).await;
    assert_eq!(all.len(), 5);
    let swept = app.run_retention_once().await;
    assert_eq!(swept.inbound_messages, 2);
    assert_eq!(inbound_ids(&app).await, all[..3], "the newest three stay");
    assert_eq!(app.run_retention_once().await, Swept::default());
    let page = app.get("/").await.text().await.unwrap();
    assert!(
        page.contains("Dev mode keeps the newest 3 messages"),
        "{page}"
    );
}

/// Every file of the database (`postern.db`, `-wal`): total bytes, and whether `marker`
/// is in any of them.
fn scan(data_dir: &std::path::Path, marker: &[u8]) -> (u64, bool) {
    let mut total = 0;
    let mut found = false;
    for name in ["postern.db", "postern.db-wal"] {
        let Ok(bytes) = std::fs::read(data_dir.join(name)) else {
            continue;
        };
        total += bytes.len() as u64;
        found |= bytes.windows(marker.len()).any(|w| w == marker);
    }
    (total, found)
}

#[tokio::test]
async fn a_swept_message_leaves_no_trace_on_disk_and_the_file_shrinks() {
    let app = capturing_app(Retention {
        inbound_metadata_days: 1,
        content: ContentRule::Days(1),
        ..Retention::default()
    })
    .await;
    let marker = format!("retention-marker-{}", std::process::id());
    let body = format!("{marker}\r\n").repeat(20_000);
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let message = format!("Subject: {marker}\r\n\r\n{body}");
    let reply = smtp
        .send_mail("sender@example.org", &["someone@example.com"], &message)
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let (before, found) = scan(app.data_dir.path(), marker.as_bytes());
    assert!(found, "the marker is on disk before the sweep");

    app.clock.advance(DAY + HOUR);
    let swept = app.run_retention_once().await;
    // The row goes, and its content with it (counted with the row).
    assert_eq!((swept.inbound_messages, swept.inbound_content), (1, 0));
    let (after, found) = scan(app.data_dir.path(), marker.as_bytes());
    assert!(!found, "secure_delete and the truncated WAL leave no copy");
    assert!(
        after < before / 2,
        "the database shrank: {before} → {after} bytes"
    );
}

#[tokio::test]
async fn the_settings_page_and_the_lists_say_the_retention() {
    let (app, _, _) =
        sending_app("[retention]\ninbound_metadata_days = 45\ncontent_days = 3\n").await;
    let mut browser = app.admin_browser().await;
    let settings = browser.get("/settings").await.body;
    for shown in ["Retention", "45 days", "3 days", "365 days", "30 days"] {
        assert!(settings.contains(shown), "{shown}: {settings}");
    }
    let received = browser.get("/").await.body;
    assert!(
        received.contains("Kept 45 days; message content 3 days."),
        "{received}"
    );
    let sent = browser.get("/outbound").await.body;
    assert!(
        sent.contains("Kept 60 days; message content 3 days."),
        "{sent}"
    );
}

#[test]
fn check_prints_the_retention_and_names_a_bad_setting() {
    let data_dir = tempfile::tempdir().unwrap();
    private(data_dir.path());
    let config = data_dir.path().join("postern.toml");
    let check = |retention: &str| {
        let text = format!(
            "[server]\nhostname = \"mx.postern.test\"\ndata_dir = \"{}\"\n[retention]\n{retention}",
            data_dir.path().display()
        );
        std::fs::write(&config, text).unwrap();
        let output = crate::support::binary::postern()
            .arg("check")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stdout, stderr)
    };
    let (code, out, _) = check("content_days = 3\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Retention received mail 60 days, sent mail 60 days, content 3 days,"),
        "{out}"
    );
    let (code, _, err) = check("content_days = 0\n");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("retention.content_days = 0: must be between 1 and 36500"),
        "{err}"
    );
}
