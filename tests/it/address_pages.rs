//! The addresses and domains pages: HTML forms over real HTTP, a session and the page's
//! CSRF token, hot reload proved over SMTP, field errors next to their field, the config
//! file's entries read-only, viewers read-only, credentials never in a page.

use crate::support::browser::Page;
use crate::support::{Browser, Receiver, TestApp};

const CONFIG: &str = r#"
[server]
hostname = "mx.postern.test"

[[domain]]
domain = "config.example.net"
target = "RECEIVER/status/200"

[[address]]
address = "support@example.com"
target = "RECEIVER/status/201"
"#;

const SECRET: &str = "s3cret-pass";

async fn app(receiver: &Receiver) -> TestApp {
    TestApp::start(&CONFIG.replace("RECEIVER", &format!("http://{}", receiver.addr))).await
}

/// GETs a page, checking it is there and shows no credential.
async fn page(browser: &mut Browser, path: &str) -> Page {
    let page = browser.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    assert!(!page.body.contains(SECRET), "{path} showed a credential");
    page
}

/// Submits `fields` to `path` with the CSRF token of `form`.
async fn submit(browser: &mut Browser, form: &Page, path: &str, fields: &[(&str, &str)]) -> Page {
    let answer = browser.submit(form, path, fields).await;
    assert!(!answer.body.contains(SECRET), "{path} showed a credential");
    answer
}

/// The id in the first `href="{prefix}ID/edit"` of the page.
fn edit_id(page: &Page, prefix: &str) -> i64 {
    page.body
        .split(&format!("href=\"{prefix}"))
        .skip(1)
        .find_map(|rest| rest.split_once("/edit\"")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no edit link:\n{}", page.body))
}

#[tokio::test]
async fn an_admin_adds_edits_and_deletes_an_address_through_the_forms() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut admin = app.admin_browser().await;

    let list = page(&mut admin, "/addresses").await;
    assert!(list.body.contains("support@example.com"));
    assert!(list.body.contains("from the config file — edit it there"));
    assert!(!list.body.contains("/edit\""), "{}", list.body);
    assert!(app.rcpt_reply("new@example.com").await.starts_with("550"));

    let form = page(&mut admin, "/addresses/new").await;
    for field in [
        "address",
        "target",
        "format",
        "timeout_secs",
        "max_message_size",
        "size_exceeded_message",
        "size_as_number",
        "html_to_plain",
        "dkim",
        "dmarc",
        "auth_callback",
        "error_callback",
    ] {
        assert!(form.body.contains(&format!("name=\"{field}\"")), "{field}");
    }
    let target = format!("http://user:{SECRET}@{}/status/200", receiver.addr);
    let created = submit(
        &mut admin,
        &form,
        "/addresses",
        &[
            ("address", "new@example.com"),
            ("target", &target),
            ("format", "json"),
            ("timeout_secs", "7"),
            ("size_as_number", "1"),
            ("html_to_plain", "1"),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(created.location(), Some("/addresses"));

    // In use at once, with the credentials of its URL.
    let reply = app.mail_to("new@example.com").await;
    assert!(reply.starts_with("250 "), "{reply}");
    let post = receiver.single();
    assert_eq!(post.path, "/status/200");
    assert!(
        post.header("authorization")
            .is_some_and(|v| v.starts_with("Basic "))
    );

    let list = page(&mut admin, "/addresses").await;
    assert!(list.body.contains("new@example.com"));
    let id = edit_id(&list, "/addresses/");

    // The edit form shows the URL masked; sent back unchanged, the credentials stay.
    let edit = page(&mut admin, &format!("/addresses/{id}/edit")).await;
    let masked = edit.input_value("target").unwrap();
    assert_eq!(masked, format!("http://***@{}/status/200", receiver.addr));
    assert_eq!(edit.input_value("timeout_secs").as_deref(), Some("7"));
    assert!(
        edit.body
            .contains("name=\"size_as_number\" value=\"1\" checked")
    );
    assert!(
        edit.body
            .contains("name=\"html_to_plain\" value=\"1\" checked")
    );
    let updated = submit(
        &mut admin,
        &edit,
        &format!("/addresses/{id}"),
        &[
            ("address", "new@example.com"),
            ("target", &masked),
            ("format", "json"),
        ],
    )
    .await;
    assert_eq!(updated.status, 303, "{}", updated.body);
    assert!(app.mail_to("new@example.com").await.starts_with("250 "));
    let last = receiver.requests().pop().unwrap();
    assert_eq!(last.header("authorization"), post.header("authorization"));
    let edit = page(&mut admin, &format!("/addresses/{id}/edit")).await;
    assert_eq!(edit.input_value("timeout_secs").as_deref(), Some(""));

    // A new target applies at once.
    let updated = submit(
        &mut admin,
        &edit,
        &format!("/addresses/{id}"),
        &[
            ("address", "new@example.com"),
            ("target", &receiver.url("/status/202")),
        ],
    )
    .await;
    assert_eq!(updated.status, 303, "{}", updated.body);
    assert!(app.mail_to("new@example.com").await.starts_with("250 "));
    assert_eq!(receiver.requests().pop().unwrap().path, "/status/202");

    let list = page(&mut admin, "/addresses").await;
    let deleted = submit(&mut admin, &list, &format!("/addresses/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert!(app.rcpt_reply("new@example.com").await.starts_with("550"));
    let list = page(&mut admin, "/addresses").await;
    assert!(!list.body.contains("new@example.com"));
}

#[tokio::test]
async fn an_admin_adds_edits_and_deletes_a_domain_through_the_forms() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut admin = app.admin_browser().await;

    let list = page(&mut admin, "/domains").await;
    assert!(list.body.contains("config.example.net"));
    assert!(list.body.contains("from the config file — edit it there"));

    let form = page(&mut admin, "/domains/new").await;
    let target = format!("http://user:{SECRET}@{}/status/200", receiver.addr);
    let created = submit(
        &mut admin,
        &form,
        "/domains",
        &[
            ("domain", "tickets.example.com"),
            ("auth_regex", r"t-\d+@tickets\.example\.com"),
            ("target", &target),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert!(
        app.mail_to("t-42@tickets.example.com")
            .await
            .starts_with("250 ")
    );
    assert!(
        app.rcpt_reply("other@tickets.example.com")
            .await
            .starts_with("550")
    );

    let list = page(&mut admin, "/domains").await;
    let id = edit_id(&list, "/domains/");
    let edit = page(&mut admin, &format!("/domains/{id}/edit")).await;
    assert_eq!(
        edit.input_value("auth_regex").as_deref(),
        Some(r"t-\d+@tickets\.example\.com")
    );
    let masked = edit.input_value("target").unwrap();
    let updated = submit(
        &mut admin,
        &edit,
        &format!("/domains/{id}"),
        &[
            ("domain", "tickets.example.com"),
            ("auth_regex", r"x-\d+@tickets\.example\.com"),
            ("target", &masked),
        ],
    )
    .await;
    assert_eq!(updated.status, 303, "{}", updated.body);
    assert!(
        app.mail_to("x-1@tickets.example.com")
            .await
            .starts_with("250 ")
    );
    assert!(
        app.rcpt_reply("t-42@tickets.example.com")
            .await
            .starts_with("550")
    );
    let auth: Vec<_> = receiver
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(auth.len(), 2);
    assert!(auth[0].is_some() && auth[0] == auth[1], "{auth:?}");

    let list = page(&mut admin, "/domains").await;
    let deleted = submit(&mut admin, &list, &format!("/domains/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert!(
        app.rcpt_reply("x-1@tickets.example.com")
            .await
            .starts_with("550")
    );
}

#[tokio::test]
async fn invalid_fields_come_back_next_to_the_field_with_the_input_kept() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut admin = app.admin_browser().await;

    let form = page(&mut admin, "/addresses/new").await;
    let bad = submit(
        &mut admin,
        &form,
        "/addresses",
        &[
            ("address", "a\"<b>@example.com"),
            ("target", "ftp://example.com/x"),
        ],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    // Every field's error at once, each next to its field.
    assert!(
        bad.body.contains(
            "name=\"address\" value=\"a&quot;&lt;b&gt;@example.com\"></label><p class=\"error field-error\" id=\"address-error\""
        ),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains(
            "name=\"target\" value=\"ftp://example.com/x\"></label><p class=\"error field-error\" id=\"target-error\""
        ),
        "{}",
        bad.body
    );
    assert_eq!(bad.body.matches("class=\"error field-error\"").count(), 2);
    assert!(!bad.body.contains("<b>"));
    let bad = submit(
        &mut admin,
        &form,
        "/addresses",
        &[
            ("address", "a@example.com"),
            ("target", "ftp://example.com/x"),
        ],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains(
            "name=\"target\" value=\"ftp://example.com/x\"></label><p class=\"error field-error\""
        ),
        "{}",
        bad.body
    );
    assert_eq!(bad.body.matches("class=\"error field-error\"").count(), 1);
    let bad = submit(
        &mut admin,
        &form,
        "/addresses",
        &[
            ("address", "a@example.com"),
            ("target", &receiver.url("/status/200")),
            ("timeout_secs", "soon"),
        ],
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body.contains(
            "name=\"timeout_secs\" value=\"soon\"></label><p class=\"error field-error\""
        )
    );

    let form = page(&mut admin, "/domains/new").await;
    let bad = submit(
        &mut admin,
        &form,
        "/domains",
        &[("domain", "d.example.com"), ("auth_regex", "t-[0-9")],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains(
            "name=\"auth_regex\" value=\"t-[0-9\"></label><p class=\"error field-error\""
        ),
        "{}",
        bad.body
    );
    // Nothing was stored.
    let list = page(&mut admin, "/addresses").await;
    assert!(!list.body.contains("a@example.com"));
    let list = page(&mut admin, "/domains").await;
    assert!(!list.body.contains("d.example.com"));
}

#[tokio::test]
async fn config_entries_are_read_only_and_viewers_only_read() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut admin = app.admin_browser().await;

    // The config file's pattern cannot be taken over from a form.
    let form = page(&mut admin, "/addresses/new").await;
    let refused = submit(
        &mut admin,
        &form,
        "/addresses",
        &[
            ("address", "support@example.com"),
            ("target", &receiver.url("/status/500")),
        ],
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("config file"));
    let form = page(&mut admin, "/domains/new").await;
    let refused = submit(
        &mut admin,
        &form,
        "/domains",
        &[
            ("domain", "config.example.net"),
            ("target", &receiver.url("/status/500")),
        ],
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    // Config entries have no id to edit or delete.
    assert_eq!(admin.get("/addresses/0/edit").await.status, 404);
    let refused = submit(&mut admin, &form, "/addresses/0/delete", &[]).await;
    assert_eq!(refused.status, 404);
    assert!(app.mail_to("support@example.com").await.starts_with("250 "));
    assert_eq!(receiver.single().path, "/status/201");

    // An entry for the viewer to look at.
    let form = page(&mut admin, "/addresses/new").await;
    let target = format!("http://user:{SECRET}@{}/status/200", receiver.addr);
    let created = submit(
        &mut admin,
        &form,
        "/addresses",
        &[("address", "new@example.com"), ("target", &target)],
    )
    .await;
    assert_eq!(created.status, 303);
    let id = edit_id(&page(&mut admin, "/addresses").await, "/addresses/");

    let mut viewer = app.viewer_browser().await;
    let list = page(&mut viewer, "/addresses").await;
    assert!(list.body.contains("new@example.com"));
    assert!(!list.body.contains("/edit\""));
    assert!(!list.body.contains("/delete\""));
    assert!(!list.body.contains("/addresses/new"));
    let list = page(&mut viewer, "/domains").await;
    assert!(!list.body.contains("/domains/new"));
    let token = viewer.session_csrf().await;
    for (path, fields) in [
        ("/addresses", vec![("address", "v@example.com")]),
        (
            &*format!("/addresses/{id}"),
            vec![("address", "new@example.com")],
        ),
        (&*format!("/addresses/{id}/delete"), vec![]),
        ("/domains", vec![("domain", "v.example.com")]),
    ] {
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend(fields);
        assert_eq!(viewer.post_form(path, &all).await.status, 403, "{path}");
    }
    assert!(app.mail_to("new@example.com").await.starts_with("250 "));
}

#[tokio::test]
async fn the_pages_carry_the_dashboard_navigation() {
    let receiver = Receiver::start().await;
    let app = app(&receiver).await;
    let mut admin = app.admin_browser().await;
    let has_nav = |page: &Page| {
        page.body.contains("<nav>")
            && page.body.contains("<a href=\"/addresses\">Addresses</a>")
            && page.body.contains("action=\"/signout\"")
    };
    for path in ["/addresses", "/addresses/new", "/domains", "/domains/new"] {
        let page = page(&mut admin, path).await;
        assert!(has_nav(&page), "{path} has no navigation:\n{}", page.body);
    }
    // Refusals too: a missing entry, and the config file's pattern.
    let missing = admin.get("/domains/0/edit").await;
    assert_eq!(missing.status, 404);
    assert!(has_nav(&missing), "{}", missing.body);
    let form = page(&mut admin, "/domains/new").await;
    let refused = submit(
        &mut admin,
        &form,
        "/domains",
        &[("domain", "config.example.net")],
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(has_nav(&refused), "{}", refused.body);
}
