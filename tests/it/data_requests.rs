//! Data-subject requests (issue 11 point 5) over the real binary: mail for two people, the
//! export of one holds their rows and content and none of the other's, a dry run counts,
//! the purge leaves no byte of the purged person in any file of the data directory while
//! the other person's data stays, and the audit row of the purge names no address. The same
//! over the admin API (`POST /api/exports`, `POST /api/purges`: viewers 403, bad selectors
//! 400) and the `/data-requests` page (admins only; a purge needs its confirmation box).

use std::io::Read;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use postern::accounts::{Actor, Role};

use crate::support::TestApp;
use crate::support::binary::postern;

const ALICE: &str = "alice.subject@example.net";
const BOB: &str = "bob.other@example.net";
const ALICE_MARK: &str = "alice-marker-5c1e9";
const BOB_MARK: &str = "bob-marker-77d02";

/// Inbound mail from and to each person, and one outbound message to each.
async fn mail_for_two_people(app: &TestApp) {
    for (person, mark) in [(ALICE, ALICE_MARK), (BOB, BOB_MARK)] {
        let mut smtp = app.smtp().await;
        smtp.ehlo().await;
        let body = format!("Subject: {mark}\r\nFrom: {person}\r\n\r\n{mark} body");
        smtp.send_mail(person, &["inbox@postern.test"], &body).await;
        smtp.send_mail("shop@example.org", &[person], &body).await;
        let (status, answer) = app
            .post_message(
                "any-user",
                "any-key",
                json!({"from": "App <app@example.com>", "to": [person],
                       "subject": mark, "plain": format!("{mark} outbound")}),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
    }
}

fn run(data_dir: &Path, args: &[&str]) -> Output {
    postern()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The archive's files by name.
fn unpack(path: &Path) -> Vec<(String, Vec<u8>)> {
    unpack_bytes(&std::fs::read(path).unwrap())
}

fn unpack_bytes(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.push((name, bytes));
    }
    files
}

fn occurs(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Every file of the data directory, read raw.
fn data_dir_bytes(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

/// The export of alice: her two inbound and one outbound message with their content and
/// rows, and no byte of bob.
fn holds_alice_only(files: &[(String, Vec<u8>)]) {
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"manifest.json"), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("inbound/")).count(),
        2
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("outbound/")).count(),
        1
    );
    for (name, bytes) in files {
        assert!(
            !occurs(bytes, BOB) && !occurs(bytes, BOB_MARK),
            "{name} names bob"
        );
    }
    let inbound = &files
        .iter()
        .find(|(n, _)| n == "inbound_messages.jsonl")
        .unwrap()
        .1;
    assert_eq!(String::from_utf8_lossy(inbound).lines().count(), 2);
    let eml = files.iter().filter(|(n, _)| n.ends_with(".eml"));
    assert!(eml.clone().all(|(_, bytes)| occurs(bytes, ALICE_MARK)));
    let manifest: Value =
        serde_json::from_slice(&files.iter().find(|(n, _)| n == "manifest.json").unwrap().1)
            .unwrap();
    assert_eq!(manifest["selector"]["value"], ALICE);
    assert_eq!(manifest["eml_files"], 3);
}

/// No file of the data directory holds alice's address or content; bob's data stays.
fn nothing_of_alice_is_left(dir: &Path) {
    let files = data_dir_bytes(dir);
    assert!(files.iter().any(|(name, _)| name.ends_with("postern.db")));
    for (name, bytes) in &files {
        assert!(
            !occurs(bytes, ALICE) && !occurs(bytes, ALICE_MARK),
            "{name} keeps alice"
        );
    }
    let db = &files
        .iter()
        .find(|(n, _)| n.ends_with("postern.db"))
        .unwrap()
        .1;
    assert!(occurs(db, BOB) && occurs(db, BOB_MARK), "bob's data stays");
}

#[tokio::test]
async fn export_holds_one_person_and_purge_leaves_nothing_of_them() {
    let app = TestApp::dev(None).await;
    mail_for_two_people(&app).await;
    let data_dir = app.stop().await;
    let dir = data_dir.path();

    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("alice.tar");
    let archive_arg = archive.to_str().unwrap();
    stdout(&run(
        dir,
        &["export", "--email", ALICE, "--output", archive_arg],
    ));
    holds_alice_only(&unpack(&archive));

    let dry = stdout(&run(dir, &["purge", "--email", ALICE, "--dry-run"]));
    assert!(dry.contains("inbound_messages       2"), "{dry}");
    assert!(dry.contains("outbound_messages      1"), "{dry}");
    let refused = run(dir, &["purge", "--email", ALICE]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "no TTY and no --yes is refused"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    let purged = stdout(&run(dir, &["purge", "--email", ALICE, "--yes"]));
    assert!(purged.contains("inbound_messages       2"), "{purged}");
    nothing_of_alice_is_left(dir);

    let again = out.path().join("alice-again.tar");
    stdout(&run(
        dir,
        &[
            "export",
            "--email",
            ALICE,
            "--output",
            again.to_str().unwrap(),
        ],
    ));
    let left = unpack(&again);
    assert_eq!(left.iter().filter(|(n, _)| n.ends_with(".eml")).count(), 0);
    let audit = &left.iter().find(|(n, _)| n == "audit_log.jsonl").unwrap().1;
    assert!(
        audit.is_empty(),
        "the purge's audit row does not name alice"
    );
    audit_row_names_no_address(dir).await;
}

/// The purge left one audit row: the selector's digest and counts, no address.
async fn audit_row_names_no_address(dir: &Path) {
    let store = postern::store::Store::open(dir).unwrap();
    let rows = store.list_audit(None, 10).await.unwrap();
    let row = rows
        .iter()
        .find(|row| row.entry.action == postern::data_requests::PURGE_ACTION)
        .expect("the purge is in the audit log");
    let text = format!("{:?}", row.entry);
    assert!(
        text.contains("sha256:") && text.contains("inbound_messages=2"),
        "{text}"
    );
    assert!(!text.contains('@'), "{text}");
}

// Over the API and the page (issue 11: the same requests for admins on the web).

/// `POST path` with `key` and a JSON body; the whole answer.
async fn post_json(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `POST path` with the admin key; the status and the JSON answer.
async fn admin_post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let post = reqwest::Method::POST;
    app.call(&app.api_key, post, path, Some(body)).await
}

/// The `counts` of a JSON answer, by table.
fn rows(answer: &Value, table: &str) -> u64 {
    answer["counts"][table]
        .as_u64()
        .unwrap_or_else(|| panic!("no count of {table}: {answer}"))
}

/// The audit entries of the purges, as text.
async fn purge_audit_rows(app: &TestApp) -> Vec<String> {
    let audit = app.get_json("/api/audit").await;
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == postern::data_requests::PURGE_ACTION)
        .map(Value::to_string)
        .collect()
}

#[tokio::test]
async fn the_api_exports_one_person_and_its_purge_leaves_nothing_of_them() {
    let app = TestApp::dev(None).await;
    mail_for_two_people(&app).await;
    let key = app.api_key.clone();

    let response = post_json(&app, &key, "/api/exports", json!({ "email": ALICE })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"postern-export-email-")
            && disposition.ends_with(".tar\"")
            && !disposition.contains('@'),
        "{disposition}"
    );
    holds_alice_only(&unpack_bytes(&response.bytes().await.unwrap()));

    for (path, body) in [
        ("/api/exports?dry_run=true", json!({ "email": ALICE })),
        ("/api/exports", json!({ "email": ALICE, "dry_run": true })),
        ("/api/purges?dry_run=true", json!({ "email": ALICE })),
        ("/api/purges", json!({ "email": ALICE, "dry_run": true })),
    ] {
        let response = post_json(&app, &key, path, body).await;
        assert_eq!(response.status(), 200, "{path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["dry_run"], true, "{path}: {answer}");
        assert_eq!(rows(&answer, "inbound_messages"), 2, "{path}: {answer}");
        assert_eq!(rows(&answer, "outbound_messages"), 1, "{path}: {answer}");
    }
    assert!(
        purge_audit_rows(&app).await.is_empty(),
        "a dry run purges nothing"
    );

    let (status, purged) = admin_post(&app, "/api/purges", json!({ "email": ALICE })).await;
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged["dry_run"], false);
    assert_eq!(rows(&purged, "inbound_messages"), 2, "{purged}");
    assert_eq!(rows(&purged, "outbound_messages"), 1, "{purged}");
    // While the app runs: its database, WAL and every other file.
    nothing_of_alice_is_left(app.data_dir.path());

    let audit = purge_audit_rows(&app).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].contains("api key tests"),
        "the actor is the key: {audit:?}"
    );
    assert!(!audit[0].contains('@'), "{audit:?}");
    let (_, again) = admin_post(&app, "/api/exports?dry_run=true", json!({ "email": ALICE })).await;
    assert_eq!(rows(&again, "inbound_messages"), 0, "{again}");
}

#[tokio::test]
async fn the_api_refuses_viewers_and_bad_selectors() {
    let app = TestApp::dev(None).await;
    mail_for_two_people(&app).await;
    let (_, viewer) = app
        .accounts
        .create_api_key("viewer", Role::Viewer, &Actor::Cli)
        .await
        .unwrap();
    for path in ["/api/exports", "/api/purges"] {
        let response = post_json(&app, &viewer, path, json!({ "email": ALICE })).await;
        assert_eq!(response.status(), 403, "{path}");
    }

    for (body, says) in [
        (json!({}), "exactly one of email, domain or address (got 0)"),
        (
            json!({ "email": ALICE, "domain": "example.net" }),
            "(got 2)",
        ),
        (
            json!({ "email": "nobody" }),
            "\"nobody\" is not an email address",
        ),
        (json!({ "domain": "%.net" }), "is not a domain name"),
        (
            json!({ "email": ALICE, "since": "last week" }),
            "since \"last week\" is not a date",
        ),
        (
            json!({ "email": ALICE, "dryrun": true }),
            "unknown field `dryrun`",
        ),
        (
            json!({ "email": ALICE, "dry_run": "yes" }),
            "dry_run is true or false",
        ),
        (
            json!({ "email": ALICE, "include_queued": 1 }),
            "include_queued is true or false",
        ),
    ] {
        let (status, answer) = admin_post(&app, "/api/purges", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["status"], 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
    }
    let (status, _) = admin_post(
        &app,
        "/api/exports?dry_run=maybe",
        json!({ "email": ALICE }),
    )
    .await;
    assert_eq!(status, 400);

    let (_, counts) = admin_post(&app, "/api/purges?dry_run=true", json!({ "email": ALICE })).await;
    assert_eq!(
        rows(&counts, "inbound_messages"),
        2,
        "nothing was purged: {counts}"
    );
}

#[tokio::test]
async fn the_page_counts_downloads_and_purges_for_admins_only() {
    let app = TestApp::dev(None).await;
    mail_for_two_people(&app).await;
    let mut admin = app.admin_browser().await;
    let mut viewer = app.viewer_browser().await;

    let page = admin.get("/data-requests").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("href=\"/data-requests\""),
        "the nav links it"
    );
    let alice = [("kind", "email"), ("value", ALICE)];
    let with = |more: &[(&'static str, &'static str)]| {
        let mut fields = alice.to_vec();
        fields.extend_from_slice(more);
        fields
    };

    let counted = admin
        .submit(&page, "/data-requests", &with(&[("action", "count")]))
        .await;
    assert_eq!(counted.status, 200, "{}", counted.body);
    assert!(counted.body.contains("A purge would delete (dry run)"));
    assert!(
        counted
            .body
            .contains("<tr><td>inbound_messages</td><td>2</td></tr>")
    );
    assert!(
        counted.body.contains(&format!("value=\"{ALICE}\"")),
        "the form keeps the fields"
    );

    let download = admin
        .submit(&page, "/data-requests", &with(&[("action", "export")]))
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(download.header("content-type"), Some("application/x-tar"));
    assert!(
        download
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    assert!(download.body.contains(ALICE_MARK) && !download.body.contains(BOB_MARK));

    // A session calls the JSON API with its CSRF token as a header, as the gate wants.
    let body = json!({ "email": ALICE, "dry_run": true }).to_string();
    let json_type = ("content-type", "application/json");
    let post = reqwest::Method::POST;
    let forged = admin
        .request(
            post.clone(),
            "/api/purges",
            &[json_type],
            Some(body.clone()),
        )
        .await;
    assert_eq!(forged.status, 403, "no CSRF token: {}", forged.body);
    let token = admin.session_csrf().await;
    let headers = [json_type, ("x-csrf-token", token.as_str())];
    let counted = admin
        .request(post, "/api/purges", &headers, Some(body))
        .await;
    assert_eq!(counted.status, 200, "{}", counted.body);
    assert_eq!(rows(&counted.json(), "inbound_messages"), 2);

    let unconfirmed = admin
        .submit(&page, "/data-requests", &with(&[("action", "purge")]))
        .await;
    assert_eq!(unconfirmed.status, 422, "{}", unconfirmed.body);
    assert!(unconfirmed.body.contains("tick the confirmation box"));
    assert!(purge_audit_rows(&app).await.is_empty());

    let bad = admin
        .submit(
            &page,
            "/data-requests",
            &[("kind", "email"), ("value", "nobody"), ("action", "count")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("is not an email address"), "{}", bad.body);

    let refused = viewer.get("/data-requests").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        !refused.body.contains("href=\"/data-requests\""),
        "no link for viewers"
    );
    let home = viewer.get("/").await;
    let denied = viewer
        .submit(
            &home,
            "/data-requests",
            &with(&[("action", "purge"), ("confirm", "on")]),
        )
        .await;
    assert_eq!(denied.status, 403);
    assert!(
        purge_audit_rows(&app).await.is_empty(),
        "viewers purge nothing"
    );

    let purged = admin
        .submit(
            &page,
            "/data-requests",
            &with(&[("action", "purge"), ("confirm", "on")]),
        )
        .await;
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert!(purged.body.contains("<h2>Purged</h2>"));
    assert!(
        purged
            .body
            .contains("<tr><td>inbound_messages</td><td>2</td></tr>")
    );
    nothing_of_alice_is_left(app.data_dir.path());
    let audit = purge_audit_rows(&app).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].contains(crate::support::ADMIN_EMAIL) && !audit[0].contains(ALICE));
}
