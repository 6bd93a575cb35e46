//! The outbound pages and their JSON API over real HTTP: sent mail (dev mode captured,
//! serve mode queued) with its HTML only in the sandboxed frame; credentials made on the
//! page authenticate the send API and their token is shown once; viewers read but never
//! write, nothing is written without the CSRF token; sending domains show their records
//! and what the loopback DNS server publishes for each (found, missing, different).

use reqwest::Method;
use serde_json::{Value, json};

use postern::accounts::{Actor, Role};

use crate::support::dns::{DnsServer, Zone};
use crate::support::{TestApp, config_with, eventually_ok};

const EMAIL_CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox";

/// `GET path` without any credential (dev mode is open on loopback).
async fn open_get(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(app.url(path)).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The table row of the page's body that contains `needle`.
fn row<'a>(page: &'a str, needle: &str) -> &'a str {
    page.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{page}"))
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    app.get_json("/api/audit").await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn dev_mode_shows_captured_mail_with_its_html_only_sandboxed() {
    let app = TestApp::dev(None).await;
    let (status, accepted) = app
        .post_message(
            "dev-app",
            "any token",
            json!({
                "from": "Shop <shop@example.com>",
                "to": ["buyer@example.net", "second@example.net"],
                "subject": "Order <b>42</b> & more",
                "plain": "Hello in plain <text>",
                "html": "<p>Hello</p><script>alert('x')</script>",
                "tags": ["orders"],
            }),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();

    // The nav links the list, next to the inbound messages.
    let (_, _, home) = open_get(&app, "/").await;
    assert!(home.contains("<a href=\"/\">Inbox</a> <a href=\"/outbound\">Sent</a>"));

    let (status, headers, list) = open_get(&app, "/outbound").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let line = row(&list, &format!("href=\"/outbound/{id}\""));
    assert!(
        line.contains("Order &lt;b&gt;42&lt;/b&gt; &amp; more"),
        "{line}"
    );
    assert!(line.contains("Shop &lt;shop@example.com&gt;"), "{line}");
    assert!(
        line.contains("buyer@example.net <span class=\"badge state-captured\">captured</span>"),
        "{line}"
    );
    assert!(line.contains("second@example.net <span class=\"badge state-captured\">"));
    assert!(line.contains("<span class=\"tag\">orders</span>"), "{line}");
    assert!(line.contains("<td>api</td>"), "{line}");
    assert!(!list.contains("<b>42</b>"), "the subject is escaped");

    // The filters, each both ways; a state that is none is a 400 with the sentence.
    for (query, listed) in [
        ("state=captured", true),
        ("state=delivered", false),
        ("tag=orders", true),
        ("tag=other", false),
        ("recipient=SECOND@example.net", true),
        ("recipient=third@example.net", false),
    ] {
        let (status, _, page) = open_get(&app, &format!("/outbound?{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(page.contains(&id), listed, "{query}");
        if !listed {
            assert!(page.contains("No messages."), "{query}");
        }
    }
    let (status, _, page) = open_get(&app, "/outbound?state=bogus").await;
    assert_eq!(status, 400);
    assert!(page.contains("state must be one of queued"), "{page}");

    // The detail: envelope, headers from the stored content, recipients, events, bodies.
    let (status, _, detail) = open_get(&app, &format!("/outbound/{id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert!(
        detail.contains(&format!("bounces+{id}@example.com")),
        "{detail}"
    );
    assert!(detail.contains("<th>Subject</th><td>Order &lt;b&gt;42&lt;/b&gt; &amp; more</td>"));
    assert!(
        detail.contains(&format!("&lt;{id}@example.com&gt;")),
        "the Message-ID header"
    );
    let recipient = row(&detail, "<tr><td>buyer@example.net</td>");
    assert!(recipient.contains("state-captured"), "{recipient}");
    assert_eq!(detail.matches("<td>registration</td>").count(), 2);
    assert!(detail.contains("<pre id=\"plain\">Hello in plain &lt;text&gt;"));
    assert!(detail.contains(&format!(
        "<iframe sandbox src=\"/outbound/{id}/html\" title=\"HTML body\""
    )));
    assert!(
        !detail.contains("<script>alert"),
        "the HTML never enters the page"
    );
    assert!(!detail.contains("<p>Hello</p>"));

    // The HTML only from its own endpoint, under the email policy.
    let (status, headers, html) = open_get(&app, &format!("/outbound/{id}/html")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-security-policy"], EMAIL_CSP);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(html.contains("<p>Hello</p>"), "{html}");

    for missing in [
        "/outbound/not-a-uuid",
        "/outbound/00000000-0000-4000-8000-000000000000",
    ] {
        assert_eq!(open_get(&app, missing).await.0, 404, "{missing}");
    }
    assert_eq!(
        open_get(&app, "/outbound/00000000-0000-4000-8000-000000000000/html")
            .await
            .0,
        404
    );

    // 50 to a page; "Older" goes on with the filters kept.
    for i in 0..50 {
        let (status, _) = app
            .post_message(
                "dev-app",
                "any token",
                json!({"from": "shop@example.com", "to": "buyer@example.net",
                   "subject": format!("later {i}"), "plain": "x", "tags": ["bulk"]}),
            )
            .await;
        assert_eq!(status, 202);
    }
    let (_, _, first) = open_get(&app, "/outbound?recipient=buyer%40example.net").await;
    assert!(first.contains("later 49") && !first.contains(&id));
    let older = first
        .split("<a href=\"")
        .find_map(|rest| rest.split_once("\" rel=\"next\">Older</a>"))
        .map(|(href, _)| href.replace("&amp;", "&"))
        .unwrap_or_else(|| panic!("no Older link:\n{first}"));
    assert!(
        older.starts_with("/outbound?recipient=buyer%40example.net&before="),
        "{older}"
    );
    let (status, _, second) = open_get(&app, &older).await;
    assert_eq!(status, 200);
    assert!(
        second.contains(&id) && !second.contains("later 49"),
        "{second}"
    );
    assert!(second.contains("href=\"/outbound?recipient=buyer%40example.net\">Newest</a>"));
}

#[tokio::test]
async fn credentials_made_on_the_page_send_and_viewers_only_read() {
    let app = TestApp::start(&config_with(&[], "")).await;
    app.add_example_sending_domain().await;
    let mut admin = app.admin_browser().await;
    let mut viewer = app.viewer_browser().await;

    let list = admin.get("/credentials").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("No credentials yet."));

    // Field errors come back next to the form with the input kept.
    let refused = admin
        .submit(
            &list,
            "/credentials",
            &[("username", "Bad Name"), ("senders", "@example.com")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("is not allowed"), "{}", refused.body);
    assert_eq!(refused.input_value("username").as_deref(), Some("Bad Name"));

    let made = admin
        .submit(
            &list,
            "/credentials",
            &[
                ("username", "shop"),
                ("senders", "@example.com, alerts@example.org"),
                ("events_url", "https://user:secret@events.example.net/hook"),
                ("track_opens", "1"),
            ],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let token = made.code_text("token").expect("the token is on the page");
    assert_eq!(made.code_text("username").as_deref(), Some("shop"));
    assert_eq!(
        made.code_text("smtp-url").unwrap(),
        format!("smtp://shop:{token}@mx.postern.test:587?starttls=true")
    );
    assert_eq!(
        made.code_text("api-base-url").unwrap(),
        format!("http://{}/api/v0.1", app.web)
    );

    // The token works with the send API; the message is queued for delivery.
    let (status, accepted) = app.post_message("shop",
        &token,
        json!({"from": "shop@example.com", "to": "buyer@example.net", "subject": "Queued one", "plain": "hi"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let sent = viewer.get("/outbound").await;
    assert_eq!(sent.status, 200);
    let line = row(&sent.body, &format!("href=\"/outbound/{id}\""));
    assert!(line.contains("state-queued\">queued</span>"), "{line}");
    let detail = viewer.get(&format!("/outbound/{id}")).await;
    assert_eq!(detail.status, 200);
    let recipient = row(&detail.body, "<tr><td>buyer@example.net</td>");
    assert!(
        recipient.contains("queued</span></td><td>0</td><td><time"),
        "{recipient}"
    );
    assert!(
        detail.body.contains("<dd>shop</dd>"),
        "the credential is named"
    );

    // Never again: the list shows the prefix, the mode, the masked events URL.
    let list = admin.get("/credentials").await;
    assert!(!list.body.contains(&token), "the list shows the token");
    let line = row(&list.body, "<tr><td>shop</td>");
    assert!(
        line.contains(&format!("<code>{}…</code>", &token[..8])),
        "{line}"
    );
    assert!(line.contains("<td>live</td>"), "{line}");
    assert!(
        line.contains("https://***@events.example.net/hook"),
        "{line}"
    );
    assert!(
        !list.body.contains("secret@"),
        "the events URL's password is masked"
    );
    assert!(
        line.contains("@example.com<br>alerts@example.org"),
        "{line}"
    );
    assert!(line.contains("opens on, clicks off"), "{line}");

    // Viewers read the list without the form or buttons, and every write is 403.
    let seen = viewer.get("/credentials").await;
    assert_eq!(seen.status, 200);
    assert!(seen.body.contains("<tr><td>shop</td>"));
    assert!(!seen.body.contains("action=\"/credentials\""));
    assert!(!seen.body.contains("/revoke\""));
    let viewer_csrf = viewer.session_csrf().await;
    for (path, fields) in [
        ("/credentials", vec![("username", "sneaky")]),
        ("/credentials/shop/revoke", vec![]),
    ] {
        let mut all = vec![("csrf_token", viewer_csrf.as_str())];
        all.extend(fields);
        let answer = viewer.post_form(path, &all).await;
        assert_eq!(answer.status, 403, "{path}");
    }

    // Without the session's CSRF token nothing happens.
    let forged = admin
        .post_form("/credentials", &[("username", "forged")])
        .await;
    assert_eq!(forged.status, 403);
    let forged = admin.post_form("/credentials/shop/revoke", &[]).await;
    assert_eq!(forged.status, 403);
    assert!(!admin.get("/credentials").await.body.contains("forged"));

    // A taken name is a 409 next to the form.
    let taken = admin
        .submit(&list, "/credentials", &[("username", "shop")])
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);

    // Revoked: the token stops working, the row says so, no second revoke.
    let revoked = admin.submit(&list, "/credentials/shop/revoke", &[]).await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(revoked.location(), Some("/credentials"));
    let (status, _) = app
        .post_message(
            "shop",
            &token,
            json!({"from": "shop@example.com", "to": "buyer@example.net", "plain": "hi"}),
        )
        .await;
    assert_eq!(status, 401);
    let list = admin.get("/credentials").await;
    assert!(row(&list.body, "<tr><td>shop</td>").contains("revoked <time"));
    let again = admin.submit(&list, "/credentials/shop/revoke", &[]).await;
    assert_eq!(again.status, 404);

    let actions = audit_actions(&app).await;
    for expected in ["credential_created", "credential_revoked"] {
        assert!(
            actions.contains(&(expected.to_string(), "shop".to_string())),
            "{expected}: {actions:?}"
        );
    }
}

#[tokio::test]
async fn sending_domains_show_their_records_and_what_dns_publishes() {
    let dns = DnsServer::start(Zone::new()).await;
    let app = TestApp::start(&config_with(
        &[],
        &format!(
            "[dns]\nservers = [\"{}\"]\n[auth]\nspf = false\ntimeout_secs = 2\n",
            dns.addr()
        ),
    ))
    .await;
    let mut admin = app.admin_browser().await;
    let mut viewer = app.viewer_browser().await;

    let list = admin.get("/sending-domains").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("No sending domains yet."));
    let refused = admin
        .submit(
            &list,
            "/sending-domains",
            &[("domain", "not a domain"), ("algorithm", "ed25519")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("is not a domain name"));
    assert_eq!(
        refused.input_value("domain").as_deref(),
        Some("not a domain")
    );

    let added = admin
        .submit(
            &list,
            "/sending-domains",
            &[
                ("domain", "example.com"),
                ("algorithm", "ed25519"),
                ("return_path", ""),
            ],
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert!(
        added
            .body
            .contains("Added example.com: publish the DNS records below")
    );
    let domains = app.get_json("/api/sending-domains").await;
    let domain = &domains["sending_domains"][0];
    assert_eq!(domain["domain"], "example.com");
    assert_eq!(domain["return_path_domain"], "mta.example.com");
    let records = domain["dns_records"].as_array().unwrap();
    let dkim_name = records[0]["name"].as_str().unwrap();
    let dkim_value = records[0]["value"].as_str().unwrap();
    assert!(
        dkim_value.starts_with("v=DKIM1; k=ed25519; p="),
        "{dkim_value}"
    );
    // Every record is on the page, ready to copy.
    for record in records {
        let marker = format!(
            "<tr data-record=\"{} {}\">",
            record["kind"].as_str().unwrap(),
            record["name"].as_str().unwrap()
        );
        let line = row(&added.body, &marker);
        assert!(line.contains(&format!(
            "<code class=\"copy\">{}</code>",
            record["value"].as_str().unwrap()
        )));
    }
    assert!(
        added
            .body
            .contains("<code class=\"copy\">10 mx.postern.test.</code>")
    );

    // DNS: the DKIM key published right, the return path's MX missing, its SPF wrong,
    // DMARC there with the operator's own policy.
    dns.set_zone(
        Zone::new()
            .txt(dkim_name, dkim_value)
            .txt("mta.example.com", "v=spf1 include:elsewhere.example ~all")
            .txt("_dmarc.example.com", "v=DMARC1; p=quarantine"),
    );
    let check = viewer.get("/sending-domains/example.com/verify").await;
    assert_eq!(check.status, 200, "{}", check.body);
    let status_of = |kind: &str, name: &str| {
        let line = row(&check.body, &format!("data-record=\"{kind} {name}\""));
        line.split("data-status=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string()
    };
    assert_eq!(status_of("TXT", dkim_name), "found");
    assert_eq!(status_of("MX", "mta.example.com"), "missing");
    assert_eq!(status_of("TXT", "mta.example.com"), "different");
    assert_eq!(status_of("TXT", "_dmarc.example.com"), "found");
    assert!(
        row(&check.body, "data-record=\"TXT mta.example.com\"")
            .contains("<code>v=spf1 include:elsewhere.example ~all</code>"),
        "what is published instead is shown"
    );
    assert!(dns.queries() >= 4, "the loopback server was asked");

    // The same through the API.
    let verify = app
        .get_json("/api/sending-domains/example.com/verify")
        .await;
    assert_eq!(verify["verified"], false);
    let statuses: Vec<&str> = verify["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["found", "missing", "different", "found"]);

    // Once everything is published, it is verified.
    dns.set_zone(
        Zone::new()
            .txt(dkim_name, dkim_value)
            .mx("mta.example.com", 10, "mx.postern.test")
            .txt("mta.example.com", "v=spf1 a:mx.postern.test ~all"),
    );
    let verify = app
        .get_json("/api/sending-domains/example.com/verify")
        .await;
    assert_eq!(verify["verified"], true, "{verify}");
    assert_eq!(
        verify["records"][3]["status"], "missing",
        "DMARC is optional"
    );

    // Viewers read and check, but neither add nor remove.
    let seen = viewer.get("/sending-domains").await;
    assert!(seen.body.contains(dkim_name));
    assert!(!seen.body.contains("action=\"/sending-domains\""));
    assert!(!seen.body.contains("/remove\""));
    let viewer_csrf = viewer.session_csrf().await;
    let answer = viewer
        .post_form(
            "/sending-domains/example.com/remove",
            &[("csrf_token", &viewer_csrf)],
        )
        .await;
    assert_eq!(answer.status, 403);
    let forged = admin
        .post_form("/sending-domains/example.com/remove", &[])
        .await;
    assert_eq!(forged.status, 403);

    let removed = admin
        .submit(&list, "/sending-domains/example.com/remove", &[])
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(
        admin
            .get("/sending-domains")
            .await
            .body
            .contains("No sending domains yet.")
    );
    assert_eq!(
        app.get("/api/sending-domains/example.com/verify")
            .await
            .status(),
        404
    );
    let actions = audit_actions(&app).await;
    for expected in ["sending_domain_added", "sending_domain_removed"] {
        assert!(
            actions.contains(&(expected.to_string(), "example.com".to_string())),
            "{expected}: {actions:?}"
        );
    }
}

/// The JSON equivalents with API keys: admins write, viewer keys only read, every route
/// documented in the OpenAPI document.
#[tokio::test]
async fn the_json_api_makes_lists_and_revokes() {
    let app = TestApp::start(&config_with(&[], "")).await;
    let (_, viewer_key) = app
        .accounts
        .create_api_key("viewer", Role::Viewer, &Actor::Cli)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let call = |method: Method, path: &str, key: &str, body: Option<Value>| {
        let mut request = client.request(method, app.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    };
    let admin = app.api_key.clone();

    let (status, made) = call(
        Method::POST,
        "/api/credentials",
        &admin,
        Some(json!({"username": "api-app", "test": true, "events_url": "https://u:p@hooks.example.net/x"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap();
    assert_eq!(made["credential"]["mode"], "test");
    assert_eq!(
        made["credential"]["events_url"],
        "https://***@hooks.example.net/x"
    );
    assert_eq!(
        made["smtp_url"],
        format!("smtp://api-app:{token}@mx.postern.test:587?starttls=true")
    );
    assert_eq!(made["api_base_url"], format!("http://{}/api/v0.1", app.web));
    let (status, body) = call(
        Method::POST,
        "/api/credentials",
        &admin,
        Some(json!({"username": "api-app"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(
        Method::POST,
        "/api/credentials",
        &admin,
        Some(json!({"username": "ok", "allowed_senders": ["nope"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "allowed_senders");

    let (status, listed) = call(Method::GET, "/api/credentials", &viewer_key, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["credentials"][0]["username"], "api-app");
    assert!(
        !listed.to_string().contains(token),
        "the list never has the token"
    );

    let (status, added) = call(
        Method::POST,
        "/api/sending-domains",
        &admin,
        Some(json!({"domain": "Example.org", "algorithm": "ed25519", "return_path": "bounce.example.org"})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["domain"], "example.org");
    assert_eq!(added["dkim_algorithm"], "ed25519-sha256");
    assert_eq!(added["dns_records"][1]["name"], "bounce.example.org");
    let (status, _) = call(
        Method::POST,
        "/api/sending-domains",
        &admin,
        Some(json!({"domain": "example.org"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = call(
        Method::POST,
        "/api/sending-domains",
        &admin,
        Some(json!({"domain": "example.net", "algorithm": "dsa"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "algorithm");

    // The token of the test credential sends (recorded, never delivered).
    let (status, accepted) = app
        .post_message(
            "api-app",
            token,
            json!({"from": "a@example.org", "to": "b@example.net", "plain": "x"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["test_mode"], true);

    // Viewer keys read but never write.
    for (method, path, body) in [
        (
            Method::POST,
            "/api/credentials",
            Some(json!({"username": "v"})),
        ),
        (Method::DELETE, "/api/credentials/api-app", None),
        (
            Method::POST,
            "/api/sending-domains",
            Some(json!({"domain": "v.example"})),
        ),
        (Method::DELETE, "/api/sending-domains/example.org", None),
    ] {
        let (status, _) = call(method.clone(), path, &viewer_key, body).await;
        assert_eq!(status, 403, "{method} {path}");
    }
    let (status, _) = call(Method::GET, "/api/sending-domains", &viewer_key, None).await;
    assert_eq!(status, 200);

    let (status, _) = call(Method::DELETE, "/api/credentials/api-app", &admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(Method::DELETE, "/api/credentials/api-app", &admin, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        Method::DELETE,
        "/api/sending-domains/example.org",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        Method::DELETE,
        "/api/sending-domains/example.org",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Every new route is in the OpenAPI document.
    let document: Value = reqwest::get(app.url("/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        ("/api/credentials", "get"),
        ("/api/credentials", "post"),
        ("/api/credentials/{username}", "delete"),
        ("/api/sending-domains", "get"),
        ("/api/sending-domains", "post"),
        ("/api/sending-domains/{domain}", "delete"),
        ("/api/sending-domains/{domain}/verify", "get"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path}"
        );
    }
    let statuses = &document["paths"]["/api/sending-domains/{domain}/verify"]["get"]["responses"]["200"]
        ["content"]["application/json"]["schema"]["properties"]["records"]["items"]["allOf"][1]["properties"]
        ["status"]["enum"];
    assert_eq!(statuses, &json!(["found", "missing", "different", "error"]));
}

#[tokio::test]
async fn the_suppression_list_page_adds_and_removes_through_the_api_path() {
    let app = TestApp::start(&config_with(&[], "")).await;
    app.add_example_sending_domain().await;
    let token = app
        .credential(postern::outbound::NewCredentialSpec {
            username: "shop".into(),
            ..Default::default()
        })
        .await;
    let mut admin = app.admin_browser().await;
    let mut viewer = app.viewer_browser().await;

    let list = admin.get("/suppressions").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("No suppressed addresses."));
    assert!(
        list.body.contains("href=\"/suppressions\""),
        "the nav links the page"
    );
    let refused = admin
        .submit(&list, "/suppressions", &[("address", "no <address>")])
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        refused.input_value("address").as_deref(),
        Some("no &lt;address&gt;")
    );

    let added = admin
        .submit(
            &list,
            "/suppressions",
            &[("address", "blocked@example.net"), ("reason", "asked us")],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let listed = viewer.get("/suppressions").await;
    let line = row(&listed.body, "<tr><td>blocked@example.net</td>");
    assert!(line.contains("asked us"), "{line}");
    assert!(
        !listed.body.contains("action=\"/suppressions"),
        "viewers get no forms"
    );
    let api = app.get_json("/api/suppressions").await;
    assert_eq!(api["suppressions"][0]["address"], "blocked@example.net");

    // Mail to it is never attempted, and the sent list says so.
    let (status, accepted) = app
        .post_message(
            "shop",
            &token,
            json!({"from": "shop@example.com", "to": "blocked@example.net", "plain": "x"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let sent = viewer.get("/outbound?state=suppressed").await;
    assert!(
        row(&sent.body, accepted["id"].as_str().unwrap()).contains("state-suppressed"),
        "{}",
        sent.body
    );

    let viewer_csrf = viewer.session_csrf().await;
    let answer = viewer
        .post_form(
            "/suppressions/remove",
            &[
                ("csrf_token", &viewer_csrf),
                ("address", "blocked@example.net"),
            ],
        )
        .await;
    assert_eq!(answer.status, 403);
    let forged = admin
        .post_form(
            "/suppressions/remove",
            &[("address", "blocked@example.net")],
        )
        .await;
    assert_eq!(forged.status, 403);

    let removed = admin
        .submit(
            &list,
            "/suppressions/remove",
            &[("address", "blocked@example.net")],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(
        admin
            .get("/suppressions")
            .await
            .body
            .contains("No suppressed addresses.")
    );
    let again = admin
        .submit(
            &list,
            "/suppressions/remove",
            &[("address", "blocked@example.net")],
        )
        .await;
    assert_eq!(again.status, 404);
    let actions = audit_actions(&app).await;
    assert_eq!(
        actions
            .iter()
            .filter(
                |(action, subject)| action == "config_changed" && subject == "blocked@example.net"
            )
            .count(),
        2,
        "{actions:?}"
    );
}

/// The real binary's `postern check` lists every sending domain with its DKIM TXT record,
/// read from the store (and says so when there is no database yet).
#[test]
fn postern_check_prints_each_sending_domain_with_its_dkim_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.postern.test\"\ndata_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_postern"));
        command.env(
            "CREDENTIALS_DIRECTORY",
            crate::support::binary::credentials_directory(),
        );
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("POSTERN_") {
                command.env_remove(name);
            }
        }
        let output = command.args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stdout}{stderr}");
        stdout
    };
    let before = run(&["check", "--config", config]);
    assert!(
        before.contains("Sending   none yet (no database in"),
        "{before}"
    );
    assert!(before.contains("config OK"));
    assert!(
        !dir.path().join("data/postern.db").exists(),
        "check made no database"
    );

    let added = run(&[
        "sending-domain",
        "add",
        "--config",
        config,
        "example.com",
        "--algorithm",
        "ed25519",
    ]);
    let lines: Vec<&str> = added.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.contains("._domainkey.example.com"))
        .unwrap_or_else(|| panic!("no DKIM record:\n{added}"));
    let name = lines[at].split_whitespace().last().unwrap();
    let value = lines[at + 1].trim();
    assert!(value.starts_with("v=DKIM1; k=ed25519; p="), "{added}");

    let after = run(&["check", "--config", config]);
    assert!(
        after.contains("Sending   example.com (return path mta.example.com)"),
        "{after}"
    );
    assert!(
        after.contains(&format!("  DKIM    {name} TXT \"{value}\"")),
        "{after}"
    );
}

/// Serve mode with the delivery worker: smtp-sink as the MX on loopback (behind the loopback
/// DNS server) refuses the recipient; the detail page shows the attempt with its host, code,
/// reply, TLS and duration, the recipient bounced, and the events.
#[tokio::test]
async fn the_detail_page_shows_every_delivery_attempt() {
    let sink = crate::support::sink::Sink::start(&["-f", "RCPT"]).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("dest.test", 10, "mx.dest.test")
            .a("mx.dest.test", std::net::Ipv4Addr::LOCALHOST),
    )
    .await;
    let app = TestApp::launch(&config_with(
        &[],
        &format!(
            "[outbound]\ndns = [\"{}\"]\nport = {}\ntimeout_secs = 5\n",
            dns.addr(),
            sink.port()
        ),
    ))
    .delivering()
    .start()
    .await;
    app.add_example_sending_domain().await;
    let token = app
        .credential(postern::outbound::NewCredentialSpec {
            username: "shop".into(),
            ..Default::default()
        })
        .await;
    let (status, accepted) = app.post_message("shop",
        &token,
        json!({"from": "shop@example.com", "to": "gone@dest.test", "subject": "Bounce me", "plain": "x"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap();

    let mut admin = app.admin_browser().await;
    let detail = eventually_ok("the bounced badge", async || {
        let detail = admin.get(&format!("/outbound/{id}")).await;
        assert_eq!(detail.status, 200, "{}", detail.body);
        // The badge, not the stylesheet's `.state-bounced`.
        match detail.body.contains("<span class=\"badge state-bounced\">") {
            true => Ok(detail),
            false => Err(format!("not bounced:\n{}", detail.body)),
        }
    })
    .await;
    let attempt = row(&detail.body, "<td class=\"mono\">mx.dest.test</td>");
    assert!(
        attempt.contains("<td>gone@dest.test</td>") && attempt.contains("<td>bounced</td>"),
        "{attempt}"
    );
    assert!(attempt.contains("<td>5"), "a 5xx code: {attempt}");
    assert!(attempt.contains("&nbsp;ms</td>"), "{attempt}");
    assert!(
        attempt.contains("<td>—</td><td>"),
        "no TLS with smtp-sink: {attempt}"
    );
    let recipient = row(&detail.body, "<tr><td>gone@dest.test</td>");
    assert!(
        recipient.contains("bounced</span></td><td>1</td>"),
        "{recipient}"
    );
    assert!(detail.body.contains("<td>bounce</td>"), "the bounce event");
    assert!(
        !detail
            .body
            .contains("<h2>Delivery attempts</h2>\n<p>None yet.</p>")
    );
    app.stop().await;
}
