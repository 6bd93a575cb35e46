//! An upgrade from the previous release. `tests/data/upgrade/` holds a store and a keyring
//! written by the binary of an earlier release (`fixture.json` names its commit; run
//! `tests/data/upgrade/make-fixture.py` with an older binary to make a new one): an admin, an
//! admin API key, a sending domain whose DKIM key is sealed, a credential, three received
//! messages, one message queued with its content sealed. The binary under test starts on them
//! as `serve` would after `apt-get upgrade`: every migration after the fixture's runs once, and
//! everything the older release stored still opens with the same keyring and secrets — the
//! queued message leaves through a loopback relay (smtp-sink) with its body and a DKIM
//! signature made with the sealed key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::support::binary::{Server, postern, run};
use crate::support::sink::Sink;
use crate::support::{Receiver, Smtp, eventually_ok, free_port};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade")
}

fn schema_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn the_previous_releases_store_is_migrated_and_everything_in_it_still_opens() {
    let facts: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("fixture.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    crate::support::private(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    crate::support::private(&data);
    for file in ["postern.db", "keyring"] {
        std::fs::copy(fixture().join(file), data.join(file)).unwrap();
        // Git keeps no modes; an install's are 0600, and postern refuses a readable keyring.
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let db = data.join("postern.db");
    let old = schema_version(&db);
    assert_eq!(old, facts["schema_version"].as_i64().unwrap());

    let receiver = Receiver::start().await;
    let relay = Sink::start(&[]).await;
    let (smtp, web) = (free_port(), free_port());
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.upgrade.test\"\ndata_dir = {data:?}\n\
             [smtp]\nlisten = \"127.0.0.1:{smtp}\"\n[web]\nlisten = \"127.0.0.1:{web}\"\n\
             [encryption]\nkey_file = {key:?}\n\
             [outbound]\nrelay = \"smtp://127.0.0.1:{relay}\"\n\
             [dns]\nservers = [\"127.0.0.1:9\"]\n\
             [[address]]\naddress = \"*@upgrade.test\"\ntarget = {target:?}\nformat = \"json\"\n",
            data = data.display().to_string(),
            key = data.join("keyring").display().to_string(),
            target = receiver.url("/status/200"),
            relay = relay.port(),
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let server = Server(
        postern()
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // The older release's admin API key, hashed in its store, still signs the API in.
    let api = |path: &str| {
        let request = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{web}{path}"))
            .bearer_auth(facts["api_key"].as_str().unwrap());
        async move { request.send().await }
    };
    let listed: Value = eventually_ok("serve answers the API", async || {
        let response = api("/api/messages").await.map_err(|error| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{error}; serve's log so far:\n{log}")
        })?;
        response.json().await.map_err(|e| e.to_string())
    })
    .await;
    let messages = listed["messages"].as_array().unwrap();
    let mut subjects: Vec<&str> = messages
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    let expected: Vec<&str> = facts["inbound_subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(subjects, expected);
    // The queued message's content and the domain's DKIM key, sealed by the older release,
    // open with the same keyring: the message leaves, signed.
    let outbound_id = facts["outbound_id"].as_str().unwrap();
    let delivered = eventually_ok("the queued message reaches the relay", async || {
        relay
            .messages()
            .into_iter()
            .find(|m| m.contains("queued before the upgrade, sealed at rest"))
            .ok_or_else(|| format!("{} messages at the relay", relay.messages().len()))
    })
    .await;
    assert!(
        delivered.contains("Subject: upgrade fixture outbound"),
        "{delivered}"
    );
    assert!(
        delivered.contains("DKIM-Signature:") && delivered.contains("d=upgrade.test"),
        "{delivered}"
    );
    let state: Value = eventually_ok("the queued message is delivered", async || {
        let detail: Value = api(&format!("/api/outbound/{outbound_id}"))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match detail["recipients"][0]["state"].as_str() {
            Some("delivered") => Ok(detail),
            _ => Err(detail.to_string()),
        }
    })
    .await;
    assert_eq!(state["subject"], "upgrade fixture outbound", "{state}");

    // The upgraded install takes new mail.
    let mut client = Smtp::connect(format!("127.0.0.1:{smtp}").parse().unwrap()).await;
    client.ehlo().await;
    let reply = client
        .send_mail(
            "sender@example.net",
            &["after@upgrade.test"],
            "Subject: after the upgrade\r\n\r\nhello\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(receiver.requests().len(), 1);
    // The older credential still authenticates the send API (its token is checked, not kept).
    let sent = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{web}/api/v0.1/{}/messages",
            facts["credential"]["username"].as_str().unwrap()
        ))
        .bearer_auth(facts["credential"]["token"].as_str().unwrap())
        .json(&serde_json::json!({
            "from": "app@upgrade.test", "to": ["someone@example.net"],
            "subject": "after the upgrade", "plain": "hello",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "{}", sent.text().await.unwrap());
    drop(server);

    // Each migration after the fixture's ran once, in order, and the store says so.
    let new = schema_version(&db);
    let log = std::fs::read_to_string(&log).unwrap();
    let migrated: Vec<i64> = log
        .lines()
        .filter(|line| line.contains("database migrated"))
        .map(|line| {
            let (_, rest) = line.split_once("version=").expect(line);
            rest.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(new > old, "the schema is still {old}: {log}");
    assert_eq!(migrated, ((old + 1)..=new).collect::<Vec<_>>(), "{log}");
    let (code, out, err) = run(&["user", "list", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(facts["admin"]["email"].as_str().unwrap()),
        "{out}"
    );
}
