//! `/privacy` and `GET /api/privacy` (issue 11): the destinations come from the live config
//! and the entries managed at runtime, masked; the page is behind sign-in.

use postern::outbound::NewCredentialSpec;
use serde_json::{Value, json};

use crate::support::{Browser, TestApp, config_with};

#[tokio::test]
async fn the_report_lists_config_and_managed_destinations_without_secrets() {
    let target = "https://user:s3cret@app.example.com/in".to_string();
    let app = TestApp::start(&config_with(&[("in@postern.test", target)], "")).await;
    app.credential(NewCredentialSpec {
        username: "app".into(),
        events_url: Some("http://hook:s3cret@127.0.0.1:9/events".into()),
        ..NewCredentialSpec::default()
    })
    .await;
    let address = json!({"address": "api@postern.test", "target": "http://127.0.0.1:9/api"});
    let (status, added) = app
        .call(
            &app.api_key,
            reqwest::Method::POST,
            "/api/addresses",
            Some(address),
        )
        .await;
    assert_eq!(status, 201, "{added}");

    let report = app.get_json("/api/privacy").await;
    let text = report.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    let find = |kind: &str, source: &str| -> Value {
        let list = report["destinations"].as_array().unwrap();
        let found = list
            .iter()
            .find(|d| d["kind"] == kind && d["source"] == source);
        found
            .cloned()
            .unwrap_or_else(|| panic!("{kind} {source} in {report:#}"))
    };
    let config = find("target", "config [[address]] in@postern.test");
    assert_eq!(config["to"], "https://***@app.example.com/in");
    assert_eq!(
        (&config["encryption"], &config["sends"]),
        (&json!("yes"), &json!("full_message"))
    );
    let managed = find("target", "managed address api@postern.test");
    assert_eq!(managed["encryption"], "no");
    let events = find("events_webhook", "credential app");
    assert_eq!(events["to"], "http://***@127.0.0.1:9/events");
    // The test app runs without the delivery worker: no MX is listed, nothing goes out.
    let kinds: Vec<_> = report["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["kind"])
        .collect();
    assert!(!kinds.contains(&&json!("mx")), "{report:#}");
    let stored = report["stored"].as_array().unwrap();
    let encrypted = |what: &str| {
        let row = stored
            .iter()
            .find(|s| s["what"].as_str().unwrap().starts_with(what));
        row.unwrap_or_else(|| panic!("no stored row {what}: {report:#}"))["encrypted"].clone()
    };
    // The test app seals with its keyring; metadata stays plain, and each row says its days.
    assert_eq!(
        encrypted("Sent messages' content"),
        json!(true),
        "{report:#}"
    );
    assert_eq!(encrypted("Received messages' metadata"), json!(false));
    assert!(stored.iter().any(|s| s["kept"] == "60 days"), "{report:#}");

    let mut browser = app.admin_browser().await;
    let page = browser.get("/privacy").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("https://***@app.example.com/in"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("s3cret"));
    let anonymous = Browser::new(app.web).get("/privacy").await;
    assert_ne!(anonymous.status, 200, "{}", anonymous.body);
}
