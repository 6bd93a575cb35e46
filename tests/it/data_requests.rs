//! Data-subject requests (issue 11 point 5) over the real binary: mail for two people, the
//! export of one holds their rows and content and none of the other's, a dry run counts,
//! the purge leaves no byte of the purged person in any file of the data directory while
//! the other person's data stays, and the audit row of the purge names no address.

use std::io::Read;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

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
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
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
    let files = unpack(&archive);
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
    for (name, bytes) in &files {
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
