//! The dashboard's message pages over real HTTP against the real server: the list and its
//! filters and paging, the detail page with attempts, hostile mail escaped everywhere, the
//! email's HTML only through the sandboxed endpoint, attachment downloads, and the gate.

use postern::config::{Config, TargetUrl};

use crate::support::browser::Page;
use crate::support::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Browser, Receiver, TestApp, VIEWER_EMAIL, VIEWER_PASSWORD,
    config_with,
};

/// Rows of the message list.
fn rows(page: &Page) -> usize {
    page.body.matches("<tr data-id=\"").count()
}

async fn send(app: &TestApp, from: &str, to: &str, data: &str) -> String {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.send_mail(from, &[to], data).await
}

/// The newest message's id, through the API.
async fn newest_id(app: &TestApp) -> i64 {
    app.messages().await[0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn the_list_shows_new_mail_and_the_filters_narrow_it() {
    let app = TestApp::dev(None).await;
    let mut browser = app.browser();
    let empty = browser.get("/").await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("No messages."));

    for (from, to, subject) in [
        ("alice@a.test", "x@example.com", "Invoice 100% paid"),
        ("bob@b.test", "y@example.com", "Weekly report"),
        ("alice@a.test", "y@example.com", "hello_world"),
    ] {
        let reply = send(
            &app,
            from,
            to,
            &format!("Subject: {subject}\r\nMessage-ID: <{from}.{to}@ids.test>\r\n\r\nbody"),
        )
        .await;
        assert!(reply.starts_with("250"), "{reply}");
    }

    let list = browser.get("/").await;
    assert_eq!(list.status, 200);
    assert_eq!(rows(&list), 3);
    for text in [
        "Invoice 100% paid",
        "Weekly report",
        "hello_world",
        "to y@example.com",
        "<time class=\"ago\" datetime=\"",
        "<span class=\"badge captured\">captured</span>",
        "<meta name=\"viewport\"",
        "<table id=\"messages\" class=\"inbox\"",
        "<script src=\"/assets/postern.js\" defer></script>",
    ] {
        assert!(list.body.contains(text), "{text} missing:\n{}", list.body);
    }
    // Newest first.
    assert!(list.body.find("hello_world") < list.body.find("Invoice 100% paid"));
    let csp = list.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(list.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(list.header("x-frame-options"), Some("DENY"));

    for (query, expected) in [
        ("subject=report", &["Weekly report"][..]),
        ("subject=REPORT", &["Weekly report"]),
        ("subject=100%25", &["Invoice 100% paid"]),
        ("subject=%25", &["Invoice 100% paid"]),
        ("subject=o_w", &["hello_world"]),
        ("subject=l_o", &[]),
        (
            "sender=alice%40a.test",
            &["hello_world", "Invoice 100% paid"],
        ),
        (
            "recipient=y%40example.com",
            &["hello_world", "Weekly report"],
        ),
        (
            "sender=alice%40a.test&recipient=y%40example.com&subject=",
            &["hello_world"],
        ),
        (
            "status=captured&since=2000-01-01&until=2999-01-01",
            &["hello_world", "Weekly report", "Invoice 100% paid"],
        ),
        ("status=rejected", &[]),
        ("until=2000-01-01", &[]),
        (
            "address=%2A",
            &["hello_world", "Weekly report", "Invoice 100% paid"],
        ),
        ("address=nobody%40example.com", &[]),
        // The search box: words, any part of a field, operators, negation.
        ("q=report", &["Weekly report"]),
        ("q=REPO", &["Weekly report"]),
        ("q=from%3Aalice", &["hello_world", "Invoice 100% paid"]),
        ("q=from%3Aa.test+-subject%3Ahello", &["Invoice 100% paid"]),
        ("q=to%3Aexample.com+from%3Abob", &["Weekly report"]),
        ("q=subject%3A%22100%25+paid%22", &["Invoice 100% paid"]),
        (
            "q=is%3Aunread",
            &["hello_world", "Weekly report", "Invoice 100% paid"],
        ),
        ("q=is%3Aread", &[]),
        ("q=has%3Aattachment", &[]),
        (
            "q=after%3A2000-01-01+status%3Acaptured+o_w",
            &["hello_world"],
        ),
        ("q=before%3A2000-01-01", &[]),
        // Message bodies are searched where content is kept (dev mode).
        (
            "q=body",
            &["hello_world", "Weekly report", "Invoice 100% paid"],
        ),
        ("q=nowhere", &[]),
    ] {
        let page = browser.get(&format!("/?{query}")).await;
        assert_eq!(page.status, 200, "{query}");
        assert_eq!(rows(&page), expected.len(), "{query}:\n{}", page.body);
        for subject in expected {
            assert!(page.body.contains(subject), "{query}: {subject}");
        }
    }
    // The form keeps what was asked.
    let kept = browser
        .get("/?subject=%22%3E%3Cb%3Ex&status=rejected")
        .await;
    assert!(
        kept.body
            .contains("name=\"subject\" value=\"&quot;&gt;&lt;b&gt;x\"")
    );
    assert!(kept.body.contains("<option value=\"rejected\" selected>"));

    let search = browser.get("/?q=from%3Aalice+%22%3E%3Cb%3E").await;
    assert!(
        search
            .body
            .contains("name=\"q\" id=\"q\" value=\"from:alice &quot;&gt;&lt;b&gt;\""),
        "{}",
        search.body
    );
    let bad = browser.get("/?q=status%3Abogus").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("status: must be successful"),
        "{}",
        bad.body
    );
    let bad = browser.get("/?q=%22open").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("a quote is not closed"), "{}", bad.body);

    let bad = browser.get("/?status=bogus").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("status must be"), "{}", bad.body);
    let bad = browser.get("/?since=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("since must be"), "{}", bad.body);

    // The API filters by subject too.
    let api = app.get_json("/api/messages?subject=report").await;
    assert_eq!(api["messages"].as_array().unwrap().len(), 1);

    let script = browser.get("/assets/postern.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.body.contains("setInterval") && script.body.contains("toLocaleString"));

    let about = browser.get("/about").await;
    assert_eq!(about.status, 200);
    assert!(about.body.contains("GET /api/messages"));
    assert!(about.body.contains("Dev mode"));
}

#[tokio::test]
async fn the_older_link_pages_and_keeps_the_filters() {
    let app = TestApp::dev(None).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    for i in 0..51 {
        let reply = smtp
            .send_mail(
                "a@example.com",
                &["b@example.com"],
                &format!("Subject: bulk #{i}#\r\n\r\nx"),
            )
            .await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    send(
        &app,
        "a@example.com",
        "b@example.com",
        "Subject: other\r\n\r\nx",
    )
    .await;
    let mut browser = app.browser();
    let first = browser.get("/?subject=bulk").await;
    assert_eq!(rows(&first), 50);
    assert!(first.body.contains("bulk #50#") && !first.body.contains("bulk #0#"));
    assert!(
        first.body.contains(" data-live=\"inbound\""),
        "the newest page is live"
    );
    let start = first
        .body
        .find("<a href=\"/?subject=bulk&amp;before=")
        .unwrap();
    let href = &first.body[start + 9..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    assert!(first.body[start..].contains("rel=\"next\">Older</a>"));
    let older = browser.get(&href).await;
    assert_eq!(rows(&older), 1, "{}", older.body);
    assert!(older.body.contains("bulk #0#") && !older.body.contains("other"));
    assert!(
        !older.body.contains(" data-live="),
        "older pages stay still"
    );
    assert!(!older.body.contains("rel=\"next\""));
    assert!(older.body.contains("<a href=\"/?subject=bulk\">Newest</a>"));
}

#[tokio::test]
async fn signed_in_the_list_and_detail_show_attempts_and_escaped_answers() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with(
        &[("*@example.com", receiver.url("/html/422"))],
        "",
    ))
    .await;
    let reply = send(
        &app,
        "a@example.com",
        "b@example.com",
        "Subject: to a refusing app\r\n\r\nhi",
    )
    .await;
    assert!(reply.starts_with("554"), "{reply}");
    let id = newest_id(&app).await;

    // Without a session: sign-in first, for every page.
    let mut anonymous = app.browser();
    for path in [
        "/".to_string(),
        "/about".into(),
        format!("/messages/{id}"),
        format!("/messages/{id}/html"),
        format!("/messages/{id}/attachments/0"),
    ] {
        let page = anonymous.get(&path).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(page.location().unwrap().starts_with("/signin"), "{path}");
    }

    let mut browser = app.admin_browser().await;
    let list = browser.get("/").await;
    assert_eq!(list.status, 200);
    assert_eq!(rows(&list), 1);
    assert!(list.body.contains("to a refusing app"));
    assert!(list.body.contains("422 rejected"));
    assert!(list.body.contains(ADMIN_EMAIL), "who is signed in");
    assert!(list.body.contains("action=\"/signout\""));

    let detail = browser.get(&format!("/messages/{id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let target = receiver.url("/html/422");
    for text in [
        "Requests made",
        "<table id=\"attempts\">",
        target.as_str(),
        "<td>422</td>",
        "554 ",
        "&lt;html&gt;&lt;body&gt;&lt;h1&gt;Nope&lt;/h1&gt;&lt;/body&gt;&lt;/html&gt;",
        "a@example.com",
        "b@example.com",
        "The message itself is not kept",
    ] {
        assert!(
            detail.body.contains(text),
            "{text} missing:\n{}",
            detail.body
        );
    }
    assert!(!detail.body.contains("<h1>Nope"));
    assert!(
        !detail.body.contains("Resend to target"),
        "nothing kept, nothing to resend"
    );
    assert_eq!(
        browser.get(&format!("/messages/{id}/html")).await.status,
        404
    );
    assert_eq!(browser.get("/messages/99999").await.status, 404);
    assert_eq!(browser.get("/messages/nope").await.status, 404);
}

const HOSTILE: &str = concat!(
    "From: \"Evil \\\"><script>alert(1)</script>\" <evil@x.test>\r\n",
    "To: y@example.com\r\n",
    "Subject: </iframe>\"><script>alert('s')</script>\r\n",
    "Message-ID: <\"><script>m</script>@x.test>\r\n",
    "X-Hostile: <img src=x onerror=alert(1)>\r\n",
    "MIME-Version: 1.0\r\n",
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
    "\r\n",
    "--b1\r\n",
    "Content-Type: multipart/alternative; boundary=\"b2\"\r\n",
    "\r\n",
    "--b2\r\n",
    "Content-Type: text/plain\r\n",
    "\r\n",
    "plain <script>alert('p')</script>\r\n",
    "--b2\r\n",
    "Content-Type: text/html\r\n",
    "\r\n",
    "<html><body><script>alert('h')</script><img src=\"http://remote.test/t.png\" onerror=\"alert(2)\">",
    "<form action=\"http://evil.test/\"><input name=q></form></iframe><p>visible</p></body></html>\r\n",
    "--b2--\r\n",
    "--b1\r\n",
    "Content-Type: text/html; name=\"\\\"><script>f</script>.html\"\r\n",
    "Content-Disposition: attachment; filename=\"\\\"><script>f</script>.html\"\r\n",
    "\r\n",
    "<script>alert('attachment')</script>\r\n",
    "--b1\r\n",
    "Content-Type: application/pdf; name=\"report.pdf\"\r\n",
    "Content-Disposition: attachment; filename=\"report.pdf\"\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "\r\n",
    "JVBERi0xLjQK\r\n",
    "--b1--\r\n",
);

/// No markup from the mail: our one script tag, our one iframe at most, no images or forms.
fn assert_inert(page: &Page, iframes: usize) {
    assert_eq!(page.body.matches("<script").count(), 1, "{}", page.body);
    assert!(
        page.body
            .contains("<script src=\"/assets/postern.js\" defer></script>")
    );
    assert_eq!(
        page.body.matches("<iframe").count(),
        iframes,
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches("</iframe>").count(),
        iframes,
        "{}",
        page.body
    );
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(!page.body.contains("<form action=\"http"), "{}", page.body);
    // The Source and Payload tabs show the HTML as text: escaped, never as markup.
    assert!(
        !page.body.contains("\"https://remote.test"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn hostile_mail_is_escaped_and_its_html_only_served_sandboxed() {
    let app = TestApp::dev(None).await;
    let reply = send(&app, "evil@x.test", "y@example.com", HOSTILE).await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = newest_id(&app).await;
    let mut browser = app.browser();

    let list = browser.get("/").await;
    assert_eq!(rows(&list), 1);
    assert_inert(&list, 0);
    assert!(
        list.body
            .contains("&lt;/iframe&gt;&quot;&gt;&lt;script&gt;alert(&#39;s&#39;)&lt;/script&gt;"),
        "{}",
        list.body
    );

    let detail = browser.get(&format!("/messages/{id}")).await;
    assert_eq!(detail.status, 200);
    // The HTML body's frame and the PDF attachment's preview, both sandboxed.
    assert_inert(&detail, 2);
    assert_eq!(detail.body.matches("<iframe sandbox ").count(), 1);
    assert_eq!(
        detail
            .body
            .matches("<iframe class=\"preview\" sandbox ")
            .count(),
        1
    );
    for text in [
        "&lt;/iframe&gt;&quot;&gt;&lt;script&gt;alert(&#39;s&#39;)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "&lt;&quot;&gt;&lt;script&gt;m&lt;/script&gt;@x.test&gt;",
        "plain &lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;",
        &format!("<iframe sandbox src=\"/messages/{id}/html\""),
        "&quot;&gt;&lt;script&gt;f&lt;/script&gt;.html",
        "report.pdf",
    ] {
        assert!(
            detail.body.contains(text),
            "{text} missing:\n{}",
            detail.body
        );
    }

    let html = browser.get(&format!("/messages/{id}/html")).await;
    assert_eq!(html.status, 200);
    assert_eq!(
        html.header("content-security-policy"),
        Some("default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox")
    );
    assert_eq!(html.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(html.body.contains("<p>visible</p>"), "{}", html.body);

    // Downloads: attachment disposition, never served as HTML, nosniff.
    let mut seen = Vec::new();
    for n in 0..2 {
        let download = browser
            .get(&format!("/messages/{id}/attachments/{n}"))
            .await;
        assert_eq!(download.status, 200);
        assert_eq!(download.header("x-content-type-options"), Some("nosniff"));
        let disposition = download.header("content-disposition").unwrap().to_string();
        assert!(
            disposition.starts_with("attachment; filename=\""),
            "{disposition}"
        );
        if disposition.contains("report.pdf") {
            assert_eq!(download.header("content-type"), Some("application/pdf"));
            assert_eq!(download.body, "%PDF-1.4\n");
            seen.push("pdf");
        } else {
            assert_eq!(
                disposition,
                "attachment; filename=\"___script_f__script_.html\"; filename*=UTF-8''%22%3E%3Cscript%3Ef%3C%2Fscript%3E%2Ehtml"
            );
            assert_eq!(
                download.header("content-type"),
                Some("application/octet-stream")
            );
            assert!(
                download
                    .body
                    .contains("<script>alert('attachment')</script>")
            );
            seen.push("html");
        }
    }
    seen.sort();
    assert_eq!(seen, ["html", "pdf"]);
    // Previews: the PDF inline and sandboxed; the HTML attachment never.
    let mut previews = Vec::new();
    for n in 0..2 {
        let preview = browser
            .get(&format!("/messages/{id}/attachments/{n}/preview"))
            .await;
        match preview.status {
            200 => {
                assert_eq!(preview.header("content-type"), Some("application/pdf"));
                assert_eq!(preview.header("content-disposition"), Some("inline"));
                assert_eq!(
                    preview.header("content-security-policy"),
                    Some("default-src 'none'; sandbox")
                );
                assert_eq!(preview.header("x-content-type-options"), Some("nosniff"));
                previews.push("pdf");
            }
            status => {
                assert_eq!(status, 404, "{}", preview.body);
                previews.push("html: none");
            }
        }
    }
    previews.sort();
    assert_eq!(previews, ["html: none", "pdf"]);
    // Remote images load only when asked for, in the same sandbox.
    let images = browser.get(&format!("/messages/{id}/html?images=on")).await;
    assert_eq!(
        images.header("content-security-policy"),
        Some("default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline'; sandbox")
    );
    assert_eq!(
        browser
            .get(&format!("/messages/{id}/attachments/2"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn admins_resend_a_kept_message_and_viewers_cannot() {
    let receiver = Receiver::start().await;
    // Dev mode keeps messages; on a non-loopback listener it wants a sign-in.
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config::dev(
        data_dir.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "0.0.0.0:0".parse().unwrap(),
        Some(TargetUrl::parse(&receiver.url("/status/200")).unwrap()),
    );
    let app = TestApp::from_config(config, data_dir).await;
    app.add_viewer().await;
    let browser = || Browser::new(format!("127.0.0.1:{}", app.web.port()).parse().unwrap());
    let reply = send(
        &app,
        "a@example.com",
        "b@example.com",
        "Subject: again\r\nMessage-ID: <again@x.test>\r\n\r\nonce more",
    )
    .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(receiver.requests().len(), 1);
    let id = newest_id(&app).await;
    let path = format!("/messages/{id}/resend");

    assert_eq!(
        browser().post_form(&path, &[]).await.status,
        303,
        "no session"
    );

    let mut viewer = browser();
    viewer.sign_in(VIEWER_EMAIL, VIEWER_PASSWORD).await;
    let seen = viewer.get(&format!("/messages/{id}")).await;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains("Resend to target"));
    let csrf = seen.csrf_token();
    let refused = viewer.post_form(&path, &[("csrf_token", &csrf)]).await;
    assert_eq!(refused.status, 403);

    let mut admin = browser();
    admin.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let detail = admin.get(&format!("/messages/{id}")).await;
    assert!(
        detail
            .body
            .contains(&format!("<form method=\"post\" action=\"{path}\">")),
        "{}",
        detail.body
    );
    assert_eq!(
        admin.post_form(&path, &[]).await.status,
        403,
        "no CSRF token"
    );
    assert_eq!(
        receiver.requests().len(),
        1,
        "nothing was sent by refused posts"
    );

    let csrf = detail.csrf_token();
    let resent = admin.post_form(&path, &[("csrf_token", &csrf)]).await;
    assert_eq!(resent.status, 303, "{}", resent.body);
    let location = resent.location().unwrap().to_string();
    assert_eq!(
        location,
        format!("/messages/{id}?resent=successful&status=200")
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/status/200");
    assert_eq!(
        requests[1].json(),
        requests[0].json(),
        "the same payload again"
    );

    let after = admin.get(&location).await;
    assert!(after.body.contains("id=\"resent\""), "{}", after.body);
    assert!(after.body.contains("200 successful"));
    assert!(after.body.contains("<td>resend</td>"));
    assert_eq!(after.body.matches("<td>target</td>").count(), 1);
    let message = app.get_json(&format!("/api/messages/{id}")).await;
    assert_eq!(message["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(message["attempts"][1]["kind"], "resend");
    assert_eq!(message["outcome"], "successful");

    assert_eq!(
        admin
            .post_form("/messages/99999/resend", &[("csrf_token", &csrf)])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn captured_messages_have_no_target_to_resend_to() {
    let app = TestApp::dev(None).await;
    send(
        &app,
        "a@example.com",
        "b@example.com",
        "Subject: x\r\n\r\ny",
    )
    .await;
    let id = newest_id(&app).await;
    let mut browser = app.browser();
    let detail = browser.get(&format!("/messages/{id}")).await;
    assert!(!detail.body.contains("Resend to target"));
    // API keys need no CSRF token: the handler answers.
    let refused = reqwest::Client::new()
        .post(app.url(&format!("/messages/{id}/resend")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert!(refused.text().await.unwrap().contains("no target"));
}

#[tokio::test]
async fn open_dev_mode_resends_with_the_browsers_csrf_token() {
    let receiver = Receiver::start().await;
    let app = TestApp::dev(Some(&receiver.url("/status/422"))).await;
    let reply = send(
        &app,
        "a@example.com",
        "b@example.com",
        "Subject: x\r\n\r\ny",
    )
    .await;
    assert!(reply.starts_with("554"), "{reply}");
    let id = newest_id(&app).await;
    let mut browser = app.browser();
    let detail = browser.get(&format!("/messages/{id}")).await;
    assert!(detail.body.contains("Resend to target"), "{}", detail.body);
    let csrf = detail.csrf_token();
    let resent = browser
        .post_form(&format!("/messages/{id}/resend"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(resent.status, 303, "{}", resent.body);
    assert_eq!(
        resent.location(),
        Some(format!("/messages/{id}?resent=rejected&status=422").as_str())
    );
    assert_eq!(receiver.requests().len(), 2);
    let after = browser.get(resent.location().unwrap()).await;
    assert!(after.body.contains("422 rejected"));
    assert!(after.body.contains("target says 422"));
}

/// The `href`s of the page's navigation bar, in order.
fn nav_links(body: &str) -> Vec<String> {
    let nav = body
        .split_once("<nav")
        .and_then(|(_, rest)| rest.split_once("</nav>"))
        .map(|(nav, _)| nav)
        .unwrap_or_else(|| panic!("no <nav> in {body}"));
    nav.split("href=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn dev_mode_navigation_shows_only_what_applies_and_production_groups_it() {
    let dev = TestApp::dev(None).await;
    let page = dev.browser().get("/").await;
    assert_eq!(
        nav_links(&page.body),
        ["/", "/", "/outbound", "/settings", "/about"],
        "dev has no accounts, routing or sending set-up to show"
    );
    assert!(page.body.contains(">Inbox</a>"), "{}", page.body);

    let app = TestApp::start("[server]\nhostname = \"mx.postern.test\"\n").await;
    let page = app.admin_browser().await.get("/").await;
    let links = nav_links(&page.body);
    for href in [
        "/credentials",
        "/addresses",
        "/users",
        "/audit",
        "/data-requests",
        "/privacy",
    ] {
        assert!(links.iter().any(|l| l == href), "{href} in {links:?}");
    }
    for group in ["Mail", "Sending", "Configuration", "Administration"] {
        assert!(
            page.body
                .contains(&format!("<span class=\"nav-label\">{group}</span>")),
            "{group}: {}",
            page.body
        );
    }
}

#[tokio::test]
async fn dev_mode_starts_with_the_commands_to_send_mail_then_shows_it_titled_by_subject() {
    let app = TestApp::dev(None).await;
    let mut browser = app.browser();
    let empty = browser.get("/").await;
    // This instance's own addresses, as `postern dev` prints them.
    let swaks = format!(
        "swaks --server {} --port {} --to someone@example.com --from you@example.com",
        app.smtp.ip(),
        app.smtp.port()
    );
    assert!(
        empty.body.contains("<section id=\"getting-started\">"),
        "{}",
        empty.body
    );
    assert!(empty.body.contains(&swaks), "{}", empty.body);
    assert!(
        empty
            .body
            .contains(&format!("curl -s http://{}/api/messages", app.web)),
        "{}",
        empty.body
    );
    assert!(
        empty.body.contains(&format!(
            "SMTP submission at <code class=\"copy\">{}</code>",
            app.submission[0]
        )),
        "{}",
        empty.body
    );
    // A filter that finds nothing is not an empty inbox.
    let filtered = browser.get("/?subject=nothing").await;
    assert!(
        !filtered.body.contains("getting-started"),
        "{}",
        filtered.body
    );

    let reply = send(
        &app,
        "a@example.com",
        "b@example.com",
        "Subject: Your receipt\r\n\r\nthanks",
    )
    .await;
    assert!(reply.starts_with("250"), "{reply}");
    let list = browser.get("/").await;
    assert!(!list.body.contains("getting-started"), "{}", list.body);
    let id = newest_id(&app).await;
    let detail = browser.get(&format!("/messages/{id}")).await;
    assert!(
        detail.body.contains("<h1>Your receipt</h1>"),
        "{}",
        detail.body
    );
    assert!(
        detail.body.contains(&format!(
            "<a class=\"button\" href=\"/api/messages/{id}/raw\" download=\"message-{id}.eml\">Download .eml</a>"
        )),
        "{}",
        detail.body
    );
    let raw = browser.get(&format!("/api/messages/{id}/raw")).await;
    assert_eq!(raw.status, 200);
    assert!(raw.body.contains("Subject: Your receipt"), "{}", raw.body);
}

#[tokio::test]
async fn dev_mode_posts_a_kept_message_to_any_url_and_shows_its_payload() {
    let receiver = Receiver::start().await;
    let app = TestApp::dev(None).await;
    let reply = send(
        &app,
        "a@example.com",
        "b@example.com",
        "From: A <a@example.com>\r\nSubject: Replay me\r\n\r\nhello",
    )
    .await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = newest_id(&app).await;
    let mut browser = app.browser();
    let detail = browser.get(&format!("/messages/{id}")).await;
    for text in [
        "<section id=\"payload\" class=\"tab\"",
        "As <strong>json+n</strong>",
        "&quot;subject&quot;: &quot;Replay me&quot;",
        &format!(
            "curl -s http://{}/api/messages/{id}/payload | curl -X POST",
            app.web
        ),
        "action=\"/messages/",
    ] {
        assert!(
            detail.body.contains(text),
            "{text} missing:\n{}",
            detail.body
        );
    }
    // The payload as the app gets it, compact JSON, served as text.
    let payload = app.get(&format!("/api/messages/{id}/payload")).await;
    assert_eq!(payload.status(), 200);
    assert_eq!(
        payload.headers()["x-payload-type"].to_str().unwrap(),
        "application/json"
    );
    let json: serde_json::Value = serde_json::from_str(&payload.text().await.unwrap()).unwrap();
    assert_eq!(json["headers"]["subject"], "Replay me");
    assert_eq!(json["envelope"]["from"], "a@example.com");

    let csrf = detail.csrf_token();
    let target = receiver.url("/status/202");
    let posted = browser
        .post_form(
            &format!("/messages/{id}/repost"),
            &[("csrf_token", &csrf), ("url", &target)],
        )
        .await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    assert_eq!(
        posted.location(),
        Some(format!("/messages/{id}?reposted=successful&status=202#delivery").as_str())
    );
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    let sent: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(sent, json, "the same payload the tab shows");
    let message = app.get_json(&format!("/api/messages/{id}")).await;
    assert_eq!(message["attempts"][0]["kind"], "repost");
    assert_eq!(message["attempts"][0]["http_status"], 202);
    // A URL that is not one is said so.
    let bad = browser
        .post_form(
            &format!("/messages/{id}/repost"),
            &[("csrf_token", &csrf), ("url", "ftp://x")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = browser
        .post_form(
            &format!("/messages/{id}/release"),
            &[("csrf_token", &csrf), ("server", "nowhere")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("host:port"), "{}", bad.body);

    // The same through the API: repost, and release to an SMTP server (smtp-sink).
    let (status, answer) = app
        .call(
            &app.api_key,
            reqwest::Method::POST,
            &format!("/api/messages/{id}/repost"),
            Some(serde_json::json!({ "url": receiver.url("/status/200") })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "successful");
    assert_eq!(receiver.requests().len(), 2);
    {
        let sink = crate::support::sink::Sink::start(&[]).await;
        let (status, answer) = app
            .call(
                &app.api_key,
                reqwest::Method::POST,
                &format!("/api/messages/{id}/release"),
                Some(serde_json::json!({
                    "server": format!("127.0.0.1:{}", sink.port()),
                    "recipients": ["qa@release.test"],
                })),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["reply"].as_str().unwrap().starts_with("250"),
            "{answer}"
        );
        crate::support::wait::eventually("the sink keeps the message", async || {
            !sink.messages().is_empty()
        })
        .await;
        let kept = &sink.messages()[0];
        assert!(kept.contains("Subject: Replay me"), "{kept}");
        assert!(kept.contains("qa@release.test"), "{kept}");
    }
    let (status, answer) = app
        .call(
            &app.api_key,
            reqwest::Method::POST,
            &format!("/api/messages/{id}/release"),
            Some(serde_json::json!({ "server": "127.0.0.1:9" })),
        )
        .await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("cannot connect"),
        "{answer}"
    );
}
