//! Encryption at rest (issue 11 point 2): mail and secrets are sealed in every file of the
//! data directory yet read back as they were; keys rotate, old data is re-sealed, a key is
//! retired only once nothing needs it; a missing, wrong or exposed key file is a clear error.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::support::binary::run;
use crate::support::scan::files_holding;
use crate::support::{TestApp, config_with};
use postern::outbound::NewCredentialSpec;

/// A send-API message from `example.com` with `marker` in its body; its id.
async fn send(app: &TestApp, token: &str, marker: &str) -> String {
    let (status, body) = app
        .post_message(
            "app",
            token,
            json!({"from": "a@example.com", "to": "b@example.net",
                   "subject": "sealed", "plain": format!("body {marker}")}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// An app over `data_dir` with `extra` config.
async fn app_in(extra: &str, data_dir: tempfile::TempDir) -> TestApp {
    TestApp::start_in(&config_with(&[], extra), data_dir).await
}

/// The credential `app` and the sending domain `example.com`: the credential's token.
async fn ready_to_send(app: &TestApp) -> String {
    app.add_example_sending_domain().await;
    app.credential(NewCredentialSpec {
        username: "app".into(),
        ..NewCredentialSpec::default()
    })
    .await
}

#[tokio::test]
async fn mail_and_secrets_are_sealed_in_every_file_and_read_back() {
    // Without the (plaintext) body search index dev mode turns on: see the test below.
    let app = TestApp::dev_with(None, |config| config.privacy.index_bodies = false).await;
    let marker = "MARKER-7f3a9c1e-inbound";
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail(
            "sender@example.org",
            &["someone@example.com"],
            &format!("Subject: sealed\r\n\r\nthe body {marker}"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");

    let sent_marker = "MARKER-2b8e4d60-outbound";
    let (status, body) = app
        .post_message(
            "any-user",
            "any-key",
            json!({"from": "a@example.com", "to": "b@example.net",
                   "subject": "sealed", "plain": format!("body {sent_marker}")}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let sent_id = body["id"].as_str().unwrap().to_string();

    let admin = app
        .accounts
        .user_by_email(crate::support::ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap();
    let totp = app.accounts.totp_enrolment(&admin).await.unwrap();
    app.add_example_sending_domain().await;
    let domain = app
        .outbound
        .store()
        .sending_domain("example.com")
        .await
        .unwrap()
        .unwrap();
    let dkim_line = domain
        .dkim_private_key
        .lines()
        .find(|line| !line.starts_with("-----"))
        .expect("a PEM body line")
        .to_string();

    let dir = app.data_dir.path().to_owned();
    for secret in [marker, sent_marker, &totp.secret, &dkim_line] {
        assert_eq!(
            files_holding(&dir, secret.as_bytes()),
            Vec::<String>::new(),
            "{secret} is in plaintext on disk"
        );
    }

    // Read back through the app as they were written.
    let messages = app.messages().await;
    let id = messages[0]["id"].as_i64().unwrap();
    let raw = app.get(&format!("/api/messages/{id}/raw")).await;
    assert_eq!(raw.status(), 200);
    assert!(raw.text().await.unwrap().contains(marker));
    let content = app.queued_content(&sent_id).await;
    assert!(String::from_utf8_lossy(&content).contains(sent_marker));
    let again = app.accounts.totp_enrolment(&admin).await.unwrap();
    assert_eq!(again.secret, totp.secret);
    assert_eq!(
        app.run_reencrypt_once().await,
        0,
        "everything is sealed already"
    );
}

/// A config file for the binary over `data_dir` and `key_file`.
fn config_file(dir: &Path, data_dir: &Path, key_file: &Path) -> std::path::PathBuf {
    let path = dir.join("postern.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\ndata_dir = {:?}\n[encryption]\nkey_file = {:?}\n",
            data_dir.display().to_string(),
            key_file.display().to_string()
        ),
    )
    .unwrap();
    path
}

fn keyring_status(config: &Path) -> String {
    let (code, out, err) = run(
        &["keyring", "status", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    out
}

/// The key ids of `postern keyring status`, oldest first.
fn key_ids(status: &str) -> Vec<String> {
    status
        .lines()
        .filter_map(|line| line.strip_prefix("key "))
        .map(|rest| rest[..16].to_string())
        .collect()
}

#[tokio::test]
async fn keys_rotate_old_values_are_resealed_and_a_key_retires_only_when_unused() {
    let files = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    crate::support::private(data_dir.path());
    let key_file = data_dir.path().join("keyring");
    let config = config_file(files.path(), data_dir.path(), &key_file);
    let config = config.to_str().unwrap();
    let extra = format!(
        "[encryption]\nkey_file = {:?}\n",
        key_file.display().to_string()
    );

    let app = app_in(&extra, data_dir).await;
    let token = ready_to_send(&app).await;
    let first = send(&app, &token, "before-rotation").await;
    let data_dir = app.stop().await;
    let status = keyring_status(Path::new(config));
    let old = key_ids(&status);
    assert_eq!(old.len(), 1, "{status}");

    let (code, out, err) = run(&["keyring", "rotate", "--config", config], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restart postern serve"), "{out}");
    let status = keyring_status(Path::new(config));
    let ids = key_ids(&status);
    assert_eq!(ids.len(), 2, "{status}");
    let new = ids[1].clone();
    assert_ne!(new, old[0]);

    // Restarted: new writes use the new key, old values still open.
    let app = app_in(&extra, data_dir).await;
    let second = send(&app, &token, "after-rotation").await;
    assert!(String::from_utf8_lossy(&app.queued_content(&first).await).contains("before-rotation"));
    let data_dir = app.stop().await;

    // The old key still seals values: retiring it is refused.
    let (code, _, err) = run(&["keyring", "retire", "--config", config, &old[0]], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("still sealed with key {}", old[0]))
            && err.contains("postern keyring reencrypt"),
        "{err}"
    );

    let app = app_in(&extra, data_dir).await;
    assert!(app.run_reencrypt_once().await > 0);
    let data_dir = app.stop().await;
    let status = keyring_status(Path::new(config));
    assert!(
        status.contains(&format!("key {}  0 values", old[0])),
        "{status}"
    );

    let (code, out, err) = run(&["keyring", "retire", "--config", config, &old[0]], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("retired key {}", old[0])), "{out}");
    assert_eq!(key_ids(&keyring_status(Path::new(config))), [new]);

    let app = app_in(&extra, data_dir).await;
    for (id, marker) in [(first, "before-rotation"), (second, "after-rotation")] {
        assert!(String::from_utf8_lossy(&app.queued_content(&id).await).contains(marker));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_store_written_without_encryption_is_read_then_sealed_by_reencrypt() {
    let data_dir = tempfile::tempdir().unwrap();
    let app = app_in("[encryption]\nenabled = false\n", data_dir).await;
    let token = ready_to_send(&app).await;
    let id = send(&app, &token, "PLAIN-5d1c0b2a").await;
    let data_dir = app.stop().await;
    assert!(
        !files_holding(data_dir.path(), b"PLAIN-5d1c0b2a").is_empty(),
        "without encryption the content is plaintext (else this test proves nothing)"
    );

    let app = app_in("", data_dir).await;
    assert!(String::from_utf8_lossy(&app.queued_content(&id).await).contains("PLAIN-5d1c0b2a"));
    assert!(app.run_reencrypt_once().await >= 2, "content and DKIM key");
    assert!(String::from_utf8_lossy(&app.queued_content(&id).await).contains("PLAIN-5d1c0b2a"));
    let data_dir = app.stop().await;
    assert_eq!(
        files_holding(data_dir.path(), b"PLAIN-5d1c0b2a"),
        Vec::<String>::new(),
        "re-sealed plaintext is gone from every file"
    );
}

#[tokio::test]
async fn missing_wrong_and_exposed_key_files_are_clear_errors() {
    let files = tempfile::tempdir().unwrap();
    let data_dir = files.path().join("data");
    let key_file = files.path().join("keyring");
    let config = config_file(files.path(), &data_dir, &key_file);
    let config = config.to_str().unwrap();

    let (code, _, err) = run(&["check", "--config", config], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("key file {} does not exist", key_file.display()))
            && err.contains("postern keyring init")
            && err.contains("cannot be read"),
        "{err}"
    );
    let (code, _, err) = run(&["serve", "--config", config], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");

    let (code, out, err) = run(&["keyring", "init", "--config", config], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mode 0600"), "{out}");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A value sealed with this keyring, then another keyring: the error names the key.
    let (code, _, err) = run(
        &[
            "sending-domain",
            "add",
            "--config",
            config,
            "--algorithm",
            "ed25519",
            "example.com",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let status = keyring_status(Path::new(config));
    let sealing = key_ids(&status)[0].clone();
    std::fs::rename(&key_file, files.path().join("keyring.right")).unwrap();
    postern::crypto::Keyring::generate()
        .save(&key_file, None)
        .unwrap();
    let (code, _, err) = run(&["sending-domain", "list", "--config", config], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "sealed with key {sealing}, which the keyring does not hold"
        )),
        "{err}"
    );

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&["check", "--config", config], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("chmod"), "{err}");
}

#[test]
fn init_writes_a_keyring_and_check_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern.toml");
    let path = path.to_str().unwrap();
    let (code, out, err) = run(&["init", "--output", path], &[]);
    assert_eq!(code, 0, "{err}");
    let key_file = dir.path().join("keyring");
    assert!(out.contains("back up the key file separately"), "{out}");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let config = std::fs::read_to_string(path).unwrap();
    assert!(
        config.contains(&format!("key_file = {:?}", key_file.display().to_string())),
        "{config}"
    );

    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let (code, out, err) = run(
        &["check", "--config", path],
        &[("POSTERN_SERVER__DATA_DIR", data_dir)],
    );
    assert_eq!(code, 0, "{err}");
    let keyring = postern::crypto::Keyring::load(&key_file, None).unwrap();
    assert!(
        out.contains(&format!("key file {}", key_file.display()))
            && out.contains(&format!("seals with {}", keyring.current()))
            && out.contains("back up the key file separately from the database"),
        "{out}"
    );
}

#[tokio::test]
async fn the_body_index_is_plaintext_so_only_index_bodies_fills_it() {
    let marker = "MARKER-5d1c0e7a-indexed";
    for index_bodies in [false, true] {
        let app =
            TestApp::dev_with(None, |config| config.privacy.index_bodies = index_bodies).await;
        let mut smtp = app.smtp().await;
        smtp.ehlo().await;
        let reply = smtp
            .send_mail(
                "sender@example.org",
                &["someone@example.com"],
                &format!("Subject: indexed\r\n\r\nthe body {marker}"),
            )
            .await;
        assert!(reply.starts_with("250"), "{reply}");
        let found = app.get_json(&format!("/api/messages?q={marker}")).await;
        let found = found["messages"].as_array().unwrap().len();
        let on_disk = files_holding(app.data_dir.path(), marker.as_bytes());
        match index_bodies {
            // Sealed content, no index: not searchable, nowhere in plaintext.
            false => assert_eq!((found, on_disk), (0, Vec::<String>::new())),
            // The index finds it, and holds it in plaintext: the trade-off the README states.
            true => {
                assert_eq!(found, 1);
                assert!(!on_disk.is_empty());
            }
        }
        // The preview is sealed either way, and reads back.
        let message = &app.messages().await[0];
        assert_eq!(message["preview"], format!("the body {marker}"));
    }
}
