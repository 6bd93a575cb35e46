//! Running Postern (issue 13, part 6): `/metrics` counts what happened and only admins read
//! it; `/readyz` names what is not ready; `postern backup` copies the database while mail
//! arrives and `postern restore` puts it back (never under a running `serve`), the sealed
//! content opening with the keyring; `POSTERN_LOG_FORMAT=json` writes lines a machine parses;
//! `postern ready` (the container's HEALTHCHECK) asks the running server's `/readyz`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use std::time::Duration;

use serde_json::{Value, json};

use crate::outbound_delivery::{delivering_app, dest_zone, send, wait_state};
use crate::support::binary::{Server, postern, run};
use crate::support::dns::DnsServer;
use crate::support::sink::Sink;
use crate::support::{Receiver, Smtp, TestApp, config_with, eventually_ok, free_port, private};
use postern::accounts::{Actor, Role};
use postern::outbound::NewCredentialSpec;
use postern::store::RecipientState;

/// The value of the sample `name` (with its labels, as written) in OpenMetrics `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_sessions_replies_and_target_posts_for_admins_only() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[
            ("support@example.com", receiver.url("/status/200")),
            ("*@down.example.com", receiver.url("/status/503")),
        ],
        "",
    ))
    .await;
    assert!(app.mail_to("support@example.com").await.starts_with("250"));
    assert!(app.mail_to("x@down.example.com").await.starts_with("450"));
    assert!(
        app.rcpt_reply("nobody@example.com")
            .await
            .starts_with("550")
    );
    app.run_retention_once().await;

    let anonymous = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (_, viewer_key) = app
        .accounts
        .create_api_key("viewer", Role::Viewer, &Actor::Cli)
        .await
        .unwrap();
    let viewer = reqwest::Client::new()
        .get(app.url("/metrics"))
        .bearer_auth(&viewer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 403);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let expected = [
        ("postern_smtp_sessions_total{listener=\"mx\"}", 3.0),
        (
            "postern_smtp_messages_total{listener=\"mx\",code=\"250\"}",
            1.0,
        ),
        (
            "postern_smtp_messages_total{listener=\"mx\",code=\"450\"}",
            1.0,
        ),
        (
            "postern_smtp_recipients_refused_total{listener=\"mx\",code=\"550\"}",
            1.0,
        ),
        (
            "postern_target_request_seconds_count{address=\"support@example.com\"}",
            1.0,
        ),
        (
            "postern_target_responses_total{address=\"support@example.com\",status=\"2xx\"}",
            1.0,
        ),
        (
            "postern_target_responses_total{address=\"*@down.example.com\",status=\"5xx\"}",
            1.0,
        ),
        ("postern_retention_sweeps_total", 1.0),
        ("postern_outbound_queue_depth", 0.0),
    ];
    for (name, value) in expected {
        assert_eq!(sample(&text, name), Some(value), "{name} in:\n{text}");
    }
    // Labels name the configured pattern, never the recipient.
    assert!(!text.contains("x@down.example.com"), "{text}");
    assert!(sample(&text, "postern_store_size_bytes").unwrap() > 0.0);
    let days = text
        .lines()
        .find(|l| l.starts_with("postern_tls_certificate_days_left{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(days.is_some_and(|d| d > 0.0), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

/// The admin's scrape of `app`.
async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_queue_gauges_are_read_from_the_store_at_each_scrape() {
    let app = TestApp::start(&config_with(&[], "")).await;
    app.add_example_sending_domain().await;
    let token = app
        .credential(NewCredentialSpec {
            username: "app".into(),
            ..NewCredentialSpec::default()
        })
        .await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "postern_outbound_queue_depth"), Some(0.0));
    for to in ["a@example.net", "b@example.net"] {
        let body = json!({"from": "a@example.com", "to": to, "subject": "s", "plain": "p"});
        let (status, answer) = app.post_message("app", &token, body).await;
        assert_eq!(status, 202, "{answer}");
    }
    app.clock.advance(Duration::from_secs(120));
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "postern_outbound_queue_depth"), Some(2.0));
    assert_eq!(
        sample(&text, "postern_outbound_queue_oldest_seconds"),
        Some(120.0)
    );
}

#[tokio::test]
async fn metrics_count_the_workers_deliveries() {
    let sink = Sink::start(&[]).await;
    let dns = DnsServer::start(dest_zone()).await;
    let (app, token) = delivering_app(&dns, sink.port(), "").await;
    let uuid = send(&app, &token, "User <user@dest.test>", json!({})).await;
    wait_state(&app, &uuid, RecipientState::Delivered).await;
    let text = scrape(&app).await;
    let delivered = "postern_outbound_deliveries_total{outcome=\"delivered\"}";
    assert_eq!(sample(&text, delivered), Some(1.0), "{text}");
    assert_eq!(sample(&text, "postern_outbound_queue_depth"), Some(0.0));
}

#[tokio::test]
async fn readyz_is_public_and_names_what_is_not_ready() {
    let app = TestApp::start(&config_with(&[], "")).await;
    let readyz = || async { reqwest::get(app.url("/readyz")).await.unwrap() };
    let ready = readyz().await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["checks"]["store"], "writable", "{body}");
    assert_eq!(body["checks"]["listeners"], "accepting", "{body}");
    assert!(
        body["checks"]["certificate"]
            .as_str()
            .unwrap()
            .ends_with("days left"),
        "{body}"
    );

    // Another process holds the write lock: the store takes no write in time.
    let holder = rusqlite::Connection::open(app.data_dir.path().join("postern.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let blocked = readyz().await;
    assert_eq!(blocked.status(), 503);
    let body: Value = blocked.json().await.unwrap();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["not_ready"], serde_json::json!(["store"]), "{body}");
    // Alive all the same.
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        200
    );
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(readyz().await.status(), 200);
}

/// One message with `marker` in its body to `someone@example.com`; the DATA reply.
async fn send_marked(smtp: std::net::SocketAddr, marker: &str) -> String {
    let mut client = Smtp::connect(smtp).await;
    client.ehlo().await;
    let body = format!("Subject: {marker}\r\n\r\nthe body {marker}");
    client
        .send_mail("sender@example.org", &["someone@example.com"], &body)
        .await
}

/// `N` in `… N inbound and …` of backup's or restore's summary line.
fn inbound_count(out: &str) -> usize {
    let before = out.split(" inbound and").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn args<'a>(command: &'a str, dir: &'a Path, flag: &'a str, file: &'a Path) -> [&'a str; 5] {
    [
        command,
        "--data-dir",
        dir.to_str().unwrap(),
        flag,
        file.to_str().unwrap(),
    ]
}

#[tokio::test]
async fn a_backup_taken_while_mail_arrives_restores_into_a_fresh_directory() {
    let app = TestApp::dev(None).await;
    for n in 0..3 {
        let reply = send_marked(app.smtp, &format!("MARKER-before-{n}")).await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    let smtp = app.smtp;
    let arriving = tokio::spawn(async move {
        for n in 0..15 {
            let reply = send_marked(smtp, &format!("MARKER-during-{n}")).await;
            assert!(reply.starts_with("250"), "{reply}");
        }
    });
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("postern-backup.db");
    let dir = app.data_dir.path().to_owned();
    let backup = args("backup", &dir, "--output", &file).map(str::to_string);
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(&backup.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    arriving.await.unwrap();
    assert!(out.contains("THE KEYRING IS NOT IN THIS BACKUP"), "{out}");
    assert!(
        out.contains(&dir.join("keyring").display().to_string()),
        "{out}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let backed_up = inbound_count(&out);
    assert!((3..=18).contains(&backed_up), "{out}");

    // Never under a running serve.
    let (code, _, err) = run(&args("restore", &dir, "--input", &file), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("postern serve is running"), "{err}");

    // A fresh data directory with the keyring (dev keeps it in the data directory).
    let fresh = tempfile::tempdir().unwrap();
    private(fresh.path());
    std::fs::copy(dir.join("keyring"), fresh.path().join("keyring")).unwrap();
    let (code, out, err) = run(&args("restore", fresh.path(), "--input", &file), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(inbound_count(&out), backed_up, "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    app.stop().await;

    let config = postern::config::Config::dev(
        fresh.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        None,
    );
    let restored = TestApp::from_config(config, fresh).await;
    let messages = restored.messages().await;
    assert_eq!(messages.len(), backed_up);
    for message in &messages {
        let id = message["id"].as_i64().unwrap();
        let subject = message["subject"].as_str().unwrap();
        let raw = restored.get(&format!("/api/messages/{id}/raw")).await;
        assert_eq!(raw.status(), 200);
        let raw = raw.text().await.unwrap();
        assert!(raw.contains(&format!("the body {subject}")), "{raw}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_each_message_handled() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = postern()
        .args(["dev", "--smtp", "127.0.0.1:0", "--web", "127.0.0.1:0"])
        .args(["--submission", "127.0.0.1:0", "--forward"])
        .arg(receiver.url("/status/200"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("POSTERN_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The banner stays open for reading: a closed pipe would end the process at its next line.
    let (smtp, _banner) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let smtp: Option<std::net::SocketAddr> =
            lines.by_ref().map(Result::unwrap).find_map(|line| {
                let rest = line.trim().strip_prefix("SMTP")?.to_owned();
                rest.split_whitespace().next()?.parse().ok()
            });
        (smtp.expect("the banner names the SMTP listener"), lines)
    })
    .await
    .unwrap();
    let reply = send_marked(smtp, "MARKER-json").await;
    assert!(reply.starts_with("250"), "{reply}");
    // The line is written before the reply is sent.
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let handled = lines
        .iter()
        .find(|line| line["message"] == "message handled")
        .unwrap_or_else(|| panic!("no `message handled` line in:\n{stderr}"));
    assert_eq!(handled["level"], "INFO", "{handled}");
    assert_eq!(handled["status"], 250, "{handled}");
    assert_eq!(handled["http_status"], 200, "{handled}");
    assert!(handled["id"].is_i64(), "{handled}");
    assert!(handled["ms"].is_u64(), "{handled}");
    assert!(handled["address"].is_string(), "{handled}");
    assert!(handled["timestamp"].is_string(), "{handled}");
    assert!(
        !stderr.contains("MARKER-json"),
        "no content in logs: {stderr}"
    );
}

#[tokio::test]
async fn postern_ready_asks_the_running_servers_readyz_over_https() {
    let dir = tempfile::tempdir().unwrap();
    private(dir.path());
    let (smtp, web) = (free_port(), free_port());
    let config = dir.path().join("postern.toml");
    // As in the container: every address, HTTPS with a certificate nobody vouches for.
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.postern.test\"\ndata_dir = {:?}\n\
             [smtp]\nlisten = \"0.0.0.0:{smtp}\"\n[web]\nlisten = \"0.0.0.0:{web}\"\n\
             [tls]\nmode = \"self-signed\"\n[outbound]\ndeliver = false\n\
             [dns]\nservers = [\"127.0.0.1:9\"]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let ask = || {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || run(&["ready", "--config", &config], &[]))
                .await
                .unwrap()
        }
    };
    let (code, _, err) = ask().await;
    assert_eq!(code, 1, "nothing runs yet: {err}");
    assert!(
        err.contains(&format!(
            "error: no answer from https://mx.postern.test:{web}/readyz"
        )),
        "{err}"
    );

    let server = Server(
        postern()
            .args(["serve", "--config", &config])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = eventually_ok("postern ready says ready", async || match ask().await {
        (0, out, _) => Ok(out),
        (code, _, err) => Err(format!("exit {code}: {err}")),
    })
    .await;
    assert_eq!(
        out.trim(),
        format!("ready (https://mx.postern.test:{web}/readyz)")
    );
    drop(server);
    let (code, _, _) = ask().await;
    assert_eq!(code, 1, "the server is gone");
}
