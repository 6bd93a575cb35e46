//! The JSON API over the metadata store.

use crate::support::{TestApp, config_with};

#[tokio::test]
async fn messages_are_listed_newest_first_in_pages() {
    let app = TestApp::dev(None).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    for i in 0..3 {
        let data = format!("Subject: message {i}\r\nMessage-ID: <{i}@example.com>\r\n\r\nbody {i}");
        let reply = smtp
            .send_mail("a@example.com", &["b@example.com"], &data)
            .await;
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }

    let page = app.get_json("/api/messages?limit=2").await;
    let subjects: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["message 2", "message 1"]);
    let before = page["next_before"].as_i64().unwrap();
    let page = app
        .get_json(&format!("/api/messages?limit=2&before={before}"))
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["subject"], "message 0");
    assert_eq!(page["next_before"], serde_json::Value::Null);

    // Every metadata field of one message.
    let id = page["messages"][0]["id"].as_i64().unwrap();
    let message = app.get_json(&format!("/api/messages/{id}")).await;
    for (field, expected) in [
        ("remote_ip", "127.0.0.1"),
        ("helo", "client.test"),
        ("mail_from", "a@example.com"),
        ("message_id", "<0@example.com>"),
        ("subject", "message 0"),
        ("outcome", "captured"),
        ("smtp_reply", "250 2.0.0 Message captured"),
        ("address", "*"),
    ] {
        assert_eq!(message[field], expected, "{field}");
    }
    assert_eq!(message["recipients"], serde_json::json!(["b@example.com"]));
    assert!(message["received_at"].as_str().unwrap().ends_with('Z'));
    assert!(message["processing_ms"].is_u64());
    assert_eq!(message["md5"].as_str().unwrap().len(), 32);
    assert_eq!(message["has_raw"], true);
    assert_eq!(message["tls_version"], serde_json::Value::Null);
}

#[tokio::test]
async fn errors_are_json() {
    let app = TestApp::dev(None).await;
    let get = |path: &str| reqwest::get(format!("http://{}{path}", app.web));
    let response = get("/api/messages/999").await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": 404, "error": "no such message"})
    );
    for bad in [
        "/api/messages?limit=0",
        "/api/messages?limit=abc",
        "/api/messages?before=x",
        "/api/messages/abc",
    ] {
        let response = get(bad).await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], 400, "{bad}");
    }
    assert_eq!(get("/api/nothing").await.unwrap().status(), 404);
    assert_eq!(get("/healthz").await.unwrap().text().await.unwrap(), "ok\n");
}

/// The OpenAPI document is public JSON, and every route it documents is routed: requested
/// with an admin key, none answers the router's "no such endpoint" 404 or 405.
#[tokio::test]
async fn the_openapi_document_covers_the_routes() {
    let app = TestApp::start(&config_with(&[], "")).await;
    let response = reqwest::get(app.url("/api/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let document: serde_json::Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let error = &document["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["status", "error"]));

    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{paths:?}");
    let client = reqwest::Client::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let url = app.url(&path.replace("{id}", "999999"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = client
                .request(method.clone(), url)
                .bearer_auth(&app.api_key);
            if method == reqwest::Method::POST || method == reqwest::Method::PUT {
                request = request.json(&serde_json::json!({}));
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}: {text}");
            assert!(
                !(status == 404 && text.contains("no such endpoint")),
                "{method} {path} is documented but not routed"
            );
        }
    }
}
