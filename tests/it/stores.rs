//! Attachment and message stores (contract §3) over the real binary: the local store (files
//! in the data directory, sealed, behind signed expiring links) and an S3-compatible one
//! (`moto_server` on loopback; `TEST_S3=required` makes its absence a failure). The payload
//! carries `url`s instead of the content in every format with attachments, full-message
//! storage sets `envelope.store_url`, a store whose test write fails is refused at save, and
//! a store that does not take a message makes it a temporary failure (450, or a retry).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::s3::Moto;
use crate::support::{Receiver, TestApp, eventually};

const REPORT: &[u8] = b"%PDF-1.4 quarterly numbers: ZEBRA-7731";
const IMAGE: &[u8] = &[0x89, b'P', b'N', b'G', 0, 1, 2, 3, 254, 255];

/// A message with a PDF whose name tries to leave its folder, and an inline image.
fn message() -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    format!(
        concat!(
            "From: Ann <ann@example.net>\r\nTo: files@example.com\r\nSubject: Stored\r\n",
            "Message-ID: <stored1@example.net>\r\nMIME-Version: 1.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n",
            "--XX\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
            "--XX\r\nContent-Type: application/pdf\r\n",
            "Content-Disposition: attachment; filename=\"../../etc/Q1 report.pdf\"\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\n{report}\r\n",
            "--XX\r\nContent-Type: image/png\r\nContent-ID: <img1>\r\n",
            "Content-Disposition: inline; filename=\"logo.png\"\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\n{image}\r\n",
            "--XX--\r\n"
        ),
        report = b64(REPORT),
        image = b64(IMAGE),
    )
}

fn config(receiver: &Receiver, addresses: &[(&str, &str, &str)]) -> String {
    let mut toml = String::from("[server]\nhostname = \"mx.postern.test\"\n");
    for (address, format, extra) in addresses {
        toml.push_str(&format!(
            "\n[[address]]\naddress = \"{address}\"\ntarget = \"{}\"\nformat = \"{format}\"\n{extra}\n",
            receiver.url("/status/200")
        ));
    }
    toml
}

async fn send(app: &TestApp, to: &str) -> String {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.send_mail("ann@example.net", &[to], &message()).await
}

async fn add_store(app: &TestApp, body: Value) -> (u16, Value) {
    app.call(&app.api_key, Method::POST, "/api/stores", Some(body))
        .await
}

async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let answer = reqwest::get(url).await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.bytes().await.unwrap().to_vec())
}

/// The values of the text fields named `name` in a form-data body.
fn form_values(body: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let marker = format!("name=\"{name}\"\r\n\r\n");
    text.split(&marker)
        .skip(1)
        .map(|rest| rest.split("\r\n--").next().unwrap().to_string())
        .collect()
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

#[tokio::test]
async fn the_local_store_serves_sealed_files_behind_signed_links_that_expire() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(
        &receiver,
        &[(
            "files@example.com",
            "json+n",
            "attachment_store = \"files\"\nmessage_store = \"files\"",
        )],
    ))
    .await;
    let (status, added) = add_store(&app, json!({"name": "files", "kind": "local"})).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["store"]["expiry_days"], 7);

    let reply = send(&app, "files@example.com").await;
    assert!(reply.starts_with("250"), "{reply}");
    let payload = receiver.single().json();
    let attachments = payload["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2, "{payload}");
    let report = &attachments[0];
    assert!(report.get("content").is_none(), "{report}");
    assert_eq!(report["file_name"], "../../etc/Q1 report.pdf");
    assert_eq!(report["content_type"], "application/pdf");
    assert_eq!(report["size"], REPORT.len().to_string());
    assert_eq!(report["disposition"], "attachment");
    assert_eq!(attachments[1]["content_id"], "<img1>");
    let report_url = report["url"].as_str().unwrap();
    let origin = format!("http://{}/files/", app.web);
    assert!(report_url.starts_with(&origin), "{report_url}");
    assert!(
        report_url.contains("/Q1_report.pdf?expires="),
        "the sanitised name, in a folder of its own: {report_url}"
    );

    // The links fetch the bytes, as downloads that never run on this origin.
    let answer = reqwest::get(report_url).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/octet-stream");
    assert!(
        answer.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(answer.bytes().await.unwrap().as_ref(), REPORT);
    let image_url = attachments[1]["url"].as_str().unwrap();
    assert_eq!(fetch(image_url).await, (200, IMAGE.to_vec()));

    // The whole message, as received: its MD5 is the envelope's.
    let store_url = payload["envelope"]["store_url"].as_str().unwrap();
    assert!(store_url.contains(".eml?expires="), "{store_url}");
    let (status, raw) = fetch(store_url).await;
    assert_eq!(status, 200);
    let md5 = format!("{:x}", md5::Md5::digest(&raw));
    assert_eq!(md5, payload["envelope"]["md5"].as_str().unwrap());
    assert!(String::from_utf8_lossy(&raw).contains("Subject: Stored"));

    // On disk: private and sealed, no plaintext of either.
    let files = files_under(&app.data_dir.path().join("files"));
    assert_eq!(
        files.len(),
        3,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        assert!(!bytes.windows(10).any(|w| w == b"ZEBRA-7731"), "{path:?}");
        assert!(
            !bytes.windows(14).any(|w| w == b"Subject: Store"),
            "{path:?}"
        );
    }

    // Forged links: another signature, another expiry, another name.
    let forged = format!("{}0", &report_url[..report_url.len() - 1]);
    let forged = if forged == report_url {
        format!("{}1", &report_url[..report_url.len() - 1])
    } else {
        forged
    };
    assert_eq!(fetch(&forged).await.0, 403);
    let (path, query) = report_url.split_once("?expires=").unwrap();
    let (expires, signature) = query.split_once("&signature=").unwrap();
    let later: i64 = expires.parse::<i64>().unwrap() + 86_400;
    let extended = format!("{path}?expires={later}&signature={signature}");
    assert_eq!(fetch(&extended).await.0, 403);
    let renamed = format!(
        "{}?expires={query}",
        path.replace("Q1_report.pdf", "logo.png")
    );
    assert_eq!(fetch(&renamed).await.0, 403);
    assert_eq!(fetch(path).await.0, 403, "no signature");
    let traversal = format!(
        "http://{}/files/..%2F..%2Fpostern.db/x?expires=1&signature=00",
        app.web
    );
    assert_eq!(fetch(&traversal).await.0, 403);

    // Gone: 404; expired: 403, and the sweep deletes it.
    let image_file = files
        .iter()
        .find(|(p, _)| p.ends_with("logo.png"))
        .unwrap()
        .0
        .clone();
    std::fs::remove_file(&image_file).unwrap();
    assert_eq!(fetch(image_url).await.0, 404);
    app.clock.advance(Duration::from_secs(7 * 86_400 + 1));
    assert_eq!(fetch(report_url).await.0, 403);
    app.run_retention_once().await;
    assert!(files_under(&app.data_dir.path().join("files")).is_empty());
}

#[tokio::test]
async fn multipart_formats_carry_url_fields_and_json_message_storage_has_the_urls() {
    let receiver = Receiver::start().await;
    let stores =
        "attachment_store = \"files\"\nmessage_store = \"files\"\nmessage_store_format = \"json\"";
    let app = TestApp::start(&config(
        &receiver,
        &[
            ("mpn@example.com", "multipart+n", stores),
            (
                "mp@example.com",
                "multipart",
                "attachment_store = \"files\"",
            ),
        ],
    ))
    .await;
    let (status, _) = add_store(
        &app,
        json!({"name": "files", "kind": "local", "expiry_days": 2}),
    )
    .await;
    assert_eq!(status, 201);

    assert!(send(&app, "mpn@example.com").await.starts_with("250"));
    let body = receiver.single().body;
    let urls = form_values(&body, "attachments[][url]");
    assert_eq!(urls.len(), 2);
    assert_eq!(
        form_values(&body, "attachments[][file_name]"),
        ["../../etc/Q1 report.pdf", "logo.png"]
    );
    assert_eq!(form_values(&body, "attachments[][content_id]"), ["<img1>"]);
    assert!(!body.windows(10).any(|w| w == b"ZEBRA-7731"), "no content");
    assert_eq!(fetch(&urls[0]).await, (200, REPORT.to_vec()));
    let store_url = &form_values(&body, "envelope[store_url]")[0];
    assert!(store_url.contains(".json?expires="), "{store_url}");
    let (status, document) = fetch(store_url).await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_slice(&document).unwrap();
    assert_eq!(document["headers"]["subject"], "Stored");
    assert_eq!(document["attachments"][0]["url"], urls[0].as_str());
    assert!(document["envelope"].get("store_url").is_none());
    assert_eq!(
        document["envelope"]["md5"].as_str().unwrap(),
        form_values(&body, "envelope[md5]")[0]
    );

    receiver.clear();
    assert!(send(&app, "mp@example.com").await.starts_with("250"));
    let body = receiver.single().body;
    let url = &form_values(&body, "attachments[1][url]")[0];
    assert_eq!(fetch(url).await, (200, IMAGE.to_vec()));
    assert!(form_values(&body, "envelope[store_url]").is_empty());
}

#[tokio::test]
async fn an_address_names_only_a_store_that_exists_and_a_store_in_use_stays() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(
        &receiver,
        &[("cfg@example.com", "json+n", "attachment_store = \"kept\"")],
    ))
    .await;
    let target = receiver.url("/status/200");
    let address = json!({"address": "api@example.com", "target": target, "message_store": "nope"});
    let (status, answer) = app
        .call(
            &app.api_key,
            Method::POST,
            "/api/addresses",
            Some(address.clone()),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "message_store");
    assert_eq!(
        add_store(&app, json!({"name": "nope", "kind": "local"}))
            .await
            .0,
        201
    );
    let (status, answer) = app
        .call(&app.api_key, Method::POST, "/api/addresses", Some(address))
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = app
        .call(&app.api_key, Method::DELETE, "/api/stores/nope", None)
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("api@example.com")
    );
    // The config's address names `kept`: it cannot go either.
    assert_eq!(
        add_store(&app, json!({"name": "kept", "kind": "local"}))
            .await
            .0,
        201
    );
    let (status, _) = app
        .call(&app.api_key, Method::DELETE, "/api/stores/kept", None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        add_store(&app, json!({"name": "kept", "kind": "local"}))
            .await
            .0,
        409,
        "a taken name"
    );
    let (status, answer) = add_store(
        &app,
        json!({"name": "far", "kind": "s3", "endpoint": "http://s3.example.com", "bucket": "b",
               "access_key_id": "a", "secret_access_key": "s"}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("TLS"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_s3_store_gets_the_objects_with_their_acl_and_never_shows_its_secret() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_bucket("mail-bucket").await;
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(
        &receiver,
        &[
            (
                "files@example.com",
                "json",
                "attachment_store = \"s3\"\nmessage_store = \"s3\"",
            ),
            (
                "queued@example.com",
                "json+n",
                "attachment_store = \"s3\"\ndelivery = \"queued\"",
            ),
        ],
    ))
    .await;
    let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let spec = |name: &str, bucket: &str| {
        json!({"name": name, "kind": "s3", "endpoint": moto.endpoint, "bucket": bucket,
               "prefix": "/in/", "region": "eu-west-1", "acl": "public-read",
               "access_key_id": "AKIDEXAMPLE", "secret_access_key": secret})
    };

    // The test write fails (no such bucket): refused with the store's words, nothing kept.
    let (status, answer) = add_store(&app, spec("s3", "no-such-bucket")).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("\"s3\""),
        "{answer}"
    );
    assert_eq!(app.get_json("/api/stores").await["stores"], json!([]));

    let (status, answer) = add_store(&app, spec("s3", "mail-bucket")).await;
    assert_eq!(status, 201, "{answer}");
    let listed = app.get("/api/stores").await.text().await.unwrap();
    assert!(!listed.contains(secret), "{listed}");
    assert!(listed.contains("AKIDEXAMPLE"));
    // Where data goes names the bucket's endpoint, as a destination of whole messages.
    let report = app.get_json("/api/privacy").await;
    let text = report.to_string();
    assert!(!text.contains(secret), "{text}");
    let destination = report["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "object_store")
        .unwrap_or_else(|| panic!("no object store in {report}"))
        .clone();
    assert_eq!(destination["host"], "127.0.0.1", "{destination}");
    assert_eq!(destination["sends"], "full_message");
    assert!(
        destination["source"]
            .as_str()
            .unwrap()
            .contains("mail-bucket")
    );
    // The page: listed without the secret; its form refuses a store that cannot be written.
    let mut browser = app.admin_browser().await;
    let page = browser.get("/stores").await;
    assert!(page.body.contains("mail-bucket") && !page.body.contains(secret));
    let fields = [
        ("name", "other"),
        ("kind", "s3"),
        ("endpoint", moto.endpoint.as_str()),
        ("bucket", "no-such-bucket"),
        ("prefix", ""),
        ("region", ""),
        ("acl", ""),
        ("access_key_id", "AKIDEXAMPLE"),
        ("secret_access_key", secret),
        ("expiry_days", ""),
    ];
    let refused = browser.submit(&page, "/stores", &fields).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(refused.body.contains("NoSuchBucket") || refused.body.contains("no-such-bucket"));
    assert!(!refused.body.contains(secret));
    let test_object = format!("{}/mail-bucket/in/postern-write-test.txt", moto.endpoint);
    assert_eq!(fetch(&test_object).await.0, 200, "the test object");

    assert!(send(&app, "files@example.com").await.starts_with("250"));
    let payload = receiver.single().json();
    let url = payload["attachments"][0]["url"].as_str().unwrap();
    let prefix = format!("{}/mail-bucket/in/", moto.endpoint);
    assert!(
        url.starts_with(&prefix) && url.ends_with("/Q1_report.pdf"),
        "{url}"
    );
    assert_eq!(moto.get(url).await, (200, REPORT.to_vec()));
    let acl = String::from_utf8(moto.get(&format!("{url}?acl")).await.1).unwrap();
    assert!(acl.contains("AllUsers") && acl.contains("READ"), "{acl}");
    let store_url = payload["envelope"]["store_url"].as_str().unwrap();
    let md5 = payload["envelope"]["md5"].as_str().unwrap();
    assert!(
        store_url.starts_with(&prefix) && store_url.ends_with(&format!("_{md5}.eml")),
        "{store_url}"
    );
    let name = store_url.rsplit('/').next().unwrap();
    assert_eq!(name.len(), "YYYY_MM_DD_HH_MM_SS_".len() + 32 + 4, "{name}");
    let (status, raw) = moto.get(store_url).await;
    assert_eq!(status, 200);
    assert_eq!(format!("{:x}", md5::Md5::digest(&raw)), md5);

    // The store goes away: sync mail gets 450 (and the row says why), queued mail waits.
    moto.stop().await;
    receiver.clear();
    let reply = send(&app, "files@example.com").await;
    assert!(reply.starts_with("450 4.3.0"), "{reply}");
    assert!(
        receiver.requests().is_empty(),
        "nothing POSTed without the store"
    );
    let reply = send(&app, "queued@example.com").await;
    assert!(reply.starts_with("250"), "{reply}");
    eventually("a failed try of the queued message", async || {
        let list = app.messages().await;
        let Some(queued) = list.iter().find(|m| m["outcome"] == "queued") else {
            return false;
        };
        let message = app
            .get_json(&format!("/api/messages/{}", queued["id"]))
            .await;
        message["queue"]["attempts"] == 1
            && message["queue"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("store \"s3\""))
    })
    .await;
    assert!(receiver.requests().is_empty());
    let list = app.messages().await;
    let delayed = list.iter().find(|m| m["outcome"] == "delayed").unwrap();
    let delayed = app
        .get_json(&format!("/api/messages/{}", delayed["id"]))
        .await;
    assert!(
        delayed["error"].as_str().unwrap().contains("store \"s3\""),
        "{delayed}"
    );
}

use md5::Digest as _;

#[tokio::test]
async fn stores_added_and_removed_by_the_cli_apply_to_the_running_server() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(
        &receiver,
        &[("files@example.com", "json+n", "attachment_store = \"cli\"")],
    ))
    .await;
    let data_dir = app.data_dir.path().to_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["store"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", &data_dir]);
        crate::support::binary::run(&all, &[])
    };
    // Not there yet: a temporary failure that names the store.
    let reply = send(&app, "files@example.com").await;
    assert!(
        reply.starts_with("450") && reply.contains("\"cli\""),
        "{reply}"
    );

    let (code, out, err) = cli(&[
        "add",
        "--name",
        "cli",
        "--kind",
        "local",
        "--expiry-days",
        "3",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("cli: local") && out.contains("3 days"),
        "{out}"
    );
    let (code, _, err) = cli(&["add", "--name", "bad", "--kind", "s3", "--bucket", "b"]);
    assert_ne!(code, 0, "no secret on standard input: {err}");

    receiver.clear();
    assert!(send(&app, "files@example.com").await.starts_with("250"));
    let url = receiver.single().json()["attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch(&url).await, (200, REPORT.to_vec()));
    let audit = app.get_json("/api/audit").await.to_string();
    assert!(audit.contains("store_added"), "{audit}");

    let (code, out, err) = cli(&["remove", "--name", "cli"]);
    assert_eq!(code, 0, "{out}{err}");
    let reply = send(&app, "files@example.com").await;
    assert!(reply.starts_with("450"), "{reply}");
}

/// A config address naming a store that does not exist is said at start, with the command
/// that makes it (stores are made at runtime, so it is not refused).
#[test]
fn serve_says_at_start_which_address_names_a_missing_store() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.postern.test\"\ndata_dir = \"{}\"\n\
             [smtp]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n[auth]\nspf = false\n\
             [[address]]\naddress = \"files@example.com\"\ntarget = \"http://127.0.0.1:9/in\"\n\
             attachment_store = \"archive\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = crate::support::binary::postern()
        .args(["serve", "--config"])
        .arg(&config)
        .env("POSTERN_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut warned = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("names a store that does not exist") {
            warned = Some(line);
            break;
        }
        if line.contains("postern is ready") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let warned = warned.expect("a warning naming the missing store");
    assert!(
        warned.contains("files@example.com") && warned.contains("archive"),
        "{warned}"
    );
    assert!(warned.contains("postern store add archive"), "{warned}");
}
