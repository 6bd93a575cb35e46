//! The API keys page over real HTTP with a session and the page's CSRF token: a key's
//! secret is shown once and works, revoking it makes it 401, the audit log has both, and
//! viewers only read; the audit page, newest first and paged.

use postern::accounts::{Actor, Role};
use reqwest::StatusCode;

use crate::support::browser::Page;
use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, VIEWER_EMAIL};

async fn messages_status(app: &TestApp, secret: &str) -> StatusCode {
    reqwest::Client::new()
        .get(app.url("/api/messages"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .status()
}

/// The id in the first `action="/keys/ID/revoke"` of the page.
fn revoke_id(page: &Page) -> i64 {
    page.body
        .split("action=\"/keys/")
        .skip(1)
        .find_map(|rest| rest.split_once("/revoke\"")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no revoke form:\n{}", page.body))
}

#[tokio::test]
async fn an_admin_makes_a_key_sees_it_once_and_revokes_it() {
    let app = TestApp::start("").await;
    let mut admin = app.admin_browser().await;

    let list = admin.get("/keys").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("href=\"/keys\""),
        "the nav links the page"
    );
    assert!(list.body.contains("<td>tests</td>"), "{}", list.body);

    // A name that is not one is refused next to the form, with the input kept.
    let refused = admin
        .submit(&list, "/keys", &[("name", ""), ("role", "viewer")])
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("API key names are"));

    let made = admin
        .submit(
            &list,
            "/keys",
            &[("name", "<deploy> & co"), ("role", "viewer")],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let secret = made.code_text("secret").expect("the secret is on the page");
    assert!(secret.starts_with("pst_"), "{secret}");
    assert!(
        made.body.contains("&lt;deploy&gt; &amp; co"),
        "the name is escaped"
    );
    assert!(!made.body.contains("<deploy>"));
    assert_eq!(messages_status(&app, &secret).await, StatusCode::OK);

    // Never again: not on the list, which shows the name escaped and a short prefix.
    let list = admin.get("/keys").await;
    assert!(!list.body.contains(&secret), "the list shows the secret");
    assert!(list.body.contains("&lt;deploy&gt; &amp; co"));
    assert!(
        list.body
            .contains(&format!("<code>{}…</code>", &secret[..12]))
    );

    // Revoke the newest key (listed first or last: find the one with our name).
    let row = list
        .body
        .lines()
        .find(|line| line.contains("&lt;deploy&gt;"))
        .unwrap()
        .to_string();
    let id = revoke_id(&Page {
        status: 200,
        headers: Default::default(),
        body: row,
    });
    let revoked = admin
        .submit(&list, &format!("/keys/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(revoked.location(), Some("/keys"));
    assert_eq!(
        messages_status(&app, &secret).await,
        StatusCode::UNAUTHORIZED
    );
    let list = admin.get("/keys").await;
    let row = list
        .body
        .lines()
        .find(|line| line.contains("&lt;deploy&gt;"))
        .unwrap();
    assert!(row.contains("revoked"), "{row}");
    assert!(
        !row.contains("/revoke\""),
        "a revoked key has no revoke button"
    );
    let again = admin
        .submit(&list, &format!("/keys/{id}/revoke"), &[])
        .await;
    assert_eq!(again.status, 404);

    // Without the session's CSRF token nothing is made.
    let forged = admin
        .post_form("/keys", &[("name", "forged"), ("role", "admin")])
        .await;
    assert_eq!(forged.status, 403);
    assert!(!admin.get("/keys").await.body.contains("forged"));

    // The audit log has both actions, by the admin.
    let audit = app.get_json("/api/audit").await;
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["actor"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for action in ["api_key_created", "api_key_revoked"] {
        assert!(
            actions
                .iter()
                .any(|(a, who)| a == action && who.contains(ADMIN_EMAIL)),
            "{action} missing: {audit}"
        );
    }
    // And so does its page, the name escaped.
    let page = admin.get("/audit").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for action in ["api_key_created", "api_key_revoked"] {
        let row = page
            .body
            .lines()
            .find(|line| line.contains(&format!("<td>{action}</td>")))
            .unwrap_or_else(|| panic!("{action} not on the page:\n{}", page.body));
        assert!(row.contains(ADMIN_EMAIL), "{row}");
    }
    assert!(page.body.contains("&lt;deploy&gt;"));
    assert!(!page.body.contains("<deploy>"));
}

#[tokio::test]
async fn the_audit_page_is_newest_first_and_paged() {
    let app = TestApp::start("").await;
    // Starting wrote the admin's user_created row; 60 keys write 60 more, after it.
    for n in 0..60 {
        app.accounts
            .create_api_key(&format!("key-{n:02}"), Role::Viewer, &Actor::Cli)
            .await
            .unwrap();
    }
    let mut admin = app.admin_browser().await;
    let first = admin.get("/audit").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains("href=\"/audit\""),
        "the nav links the page"
    );
    let rows = |page: &Page| page.body.matches("<tr><td>").count();
    assert_eq!(rows(&first), 50);
    // Newest first: the sign-in just made is on top, the last key before the first.
    let signin = first
        .body
        .find("<td>signin</td>")
        .expect("the sign-in is listed");
    let last_key = first.body.find("key-59").unwrap();
    let earlier_key = first.body.find("key-58").unwrap();
    assert!(signin < last_key && last_key < earlier_key);
    assert!(!first.body.contains("<td>user_created</td>"));
    let older = first
        .body
        .split("href=\"/audit?before=")
        .nth(1)
        .and_then(|rest| rest.split_once('"'))
        .map(|(id, _)| id.to_string())
        .expect("an Older link");
    let second = admin.get(&format!("/audit?before={older}")).await;
    assert_eq!(second.status, 200);
    assert!(second.body.contains("<td>user_created</td>"));
    assert!(!second.body.contains("key-59"));
    assert!(
        !second.body.contains("?before="),
        "the last page links no older one"
    );
    assert_eq!(admin.get("/audit?before=x").await.status, 400);

    // Viewers read it too, as they read GET /api/audit.
    let mut viewer = app.viewer_browser().await;
    let page = viewer.get("/audit").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<td>user_created</td>"));
}

#[tokio::test]
async fn viewers_see_the_keys_without_forms_and_cannot_write() {
    let app = TestApp::start("").await;
    let mut viewer = app.viewer_browser().await;
    let list = viewer.get("/keys").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("<td>tests</td>"));
    assert!(!list.body.contains("action=\"/keys"), "{}", list.body);

    let id = app.accounts.api_keys().await.unwrap()[0].id;
    for (path, fields) in [
        (
            "/keys".to_string(),
            vec![("name", "mine"), ("role", "admin")],
        ),
        (format!("/keys/{id}/revoke"), vec![]),
    ] {
        let refused = viewer.submit(&list, &path, &fields).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
    }
    let keys = app.accounts.api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoked_at.is_none());
}

/// The `<tr>` line of the page that names `email`.
fn user_line<'a>(page: &'a Page, email: &str) -> Option<&'a str> {
    page.body
        .lines()
        .find(|line| line.starts_with("<tr><td>") && line.contains(email))
}

#[tokio::test]
async fn an_admin_creates_and_deletes_users_and_the_last_admin_stays() {
    let app = TestApp::start("").await;
    let mut admin = app.admin_browser().await;
    let list = admin.get("/users").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("href=\"/users\""),
        "the nav links the page"
    );
    assert!(
        user_line(&list, ADMIN_EMAIL)
            .unwrap()
            .contains("<td>admin</td>")
    );

    let refused = admin
        .submit(
            &list,
            "/users",
            &[("email", "<not an address>"), ("role", "viewer")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("is not an email address"));
    assert!(!refused.body.contains("<not an address>"), "escaped");

    let made = admin
        .submit(
            &list,
            "/users",
            &[("email", "New@Postern.test"), ("role", "viewer")],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let password = made.code_text("password").expect("the password is shown");
    assert!(password.len() >= 12, "{password}");
    let list = admin.get("/users").await;
    assert!(!list.body.contains(&password), "shown a second time");
    let row = user_line(&list, "new@postern.test").expect("listed");
    assert!(
        row.contains("<td>viewer</td>") && row.contains("<td>off</td>"),
        "{row}"
    );
    let taken = admin
        .submit(
            &list,
            "/users",
            &[("email", "new@postern.test"), ("role", "admin")],
        )
        .await;
    assert_eq!(taken.status, 422);
    assert!(taken.body.contains("exists already"));

    // The one-time password signs in (and must be replaced first).
    let mut newcomer = app.signed_in("new@postern.test", &password).await;
    assert_eq!(
        newcomer.get("/").await.location(),
        Some("/account/password")
    );

    // Role changes: up and down again; the only admin stays one.
    for role in ["admin", "viewer"] {
        let changed = admin
            .submit(
                &list,
                "/users/role",
                &[("email", "new@postern.test"), ("role", role)],
            )
            .await;
        assert_eq!(changed.status, 303, "{}", changed.body);
        let list = admin.get("/users").await;
        let row = user_line(&list, "new@postern.test").unwrap();
        assert!(row.contains(&format!("<td>{role}</td>")), "{row}");
        assert_eq!(
            app.accounts
                .user_by_email("new@postern.test")
                .await
                .unwrap()
                .unwrap()
                .role
                .as_str(),
            role
        );
    }
    let demoted = admin
        .submit(
            &list,
            "/users/role",
            &[("email", ADMIN_EMAIL), ("role", "viewer")],
        )
        .await;
    assert_eq!(demoted.status, 409, "{}", demoted.body);
    assert!(demoted.body.contains("is the only admin"));
    assert_eq!(
        app.accounts
            .user_by_email(ADMIN_EMAIL)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );

    // The only admin cannot be deleted; the page says why.
    let last = admin
        .submit(&list, "/users/delete", &[("email", ADMIN_EMAIL)])
        .await;
    assert_eq!(last.status, 409, "{}", last.body);
    assert!(last.body.contains("is the only admin"), "{}", last.body);
    assert!(
        app.accounts
            .user_by_email(ADMIN_EMAIL)
            .await
            .unwrap()
            .is_some()
    );

    let deleted = admin
        .submit(&list, "/users/delete", &[("email", "new@postern.test")])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let list = admin.get("/users").await;
    assert!(user_line(&list, "new@postern.test").is_none());
    assert!(
        app.accounts
            .user_by_email("new@postern.test")
            .await
            .unwrap()
            .is_none()
    );
    let again = admin
        .submit(&list, "/users/delete", &[("email", "new@postern.test")])
        .await;
    assert_eq!(again.status, 404);

    // The audit page lists what was done, by whom.
    let audit = admin.get("/audit").await;
    for action in ["user_created", "role_changed", "user_deleted"] {
        assert!(
            audit
                .body
                .lines()
                .any(|line| line.contains(&format!("<td>{action}</td>"))
                    && line.contains(ADMIN_EMAIL)
                    && line.contains("new@postern.test")),
            "{action}:\n{}",
            audit.body
        );
    }
}

#[tokio::test]
async fn viewers_see_users_without_forms_and_cannot_change_them() {
    let app = TestApp::start("").await;
    let mut viewer = app.viewer_browser().await;
    let list = viewer.get("/users").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(user_line(&list, ADMIN_EMAIL).is_some());
    assert!(!list.body.contains("action=\"/users"), "{}", list.body);
    for (path, fields) in [
        (
            "/users",
            vec![("email", "x@postern.test"), ("role", "admin")],
        ),
        ("/users/delete", vec![("email", ADMIN_EMAIL)]),
        (
            "/users/role",
            vec![("email", VIEWER_EMAIL), ("role", "admin")],
        ),
        ("/users/reset-totp", vec![("email", ADMIN_EMAIL)]),
    ] {
        let refused = viewer.submit(&list, path, &fields).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
    }
    assert_eq!(app.accounts.users().await.unwrap().len(), 2);
    let me = app
        .accounts
        .user_by_email(VIEWER_EMAIL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me.role, Role::Viewer);
}

#[tokio::test]
async fn an_admin_resets_a_users_totp_and_signs_them_out() {
    let app = TestApp::start(&crate::support::config_with(&[], "")).await;
    let mut viewer = app.viewer_browser().await;
    crate::accounts::enrol_totp(&app, &mut viewer).await;

    let mut admin = app.admin_browser().await;
    let list = admin.get("/users").await;
    let row = user_line(&list, VIEWER_EMAIL).unwrap();
    assert!(row.contains("<td>on</td>"), "{row}");
    assert!(row.contains("action=\"/users/reset-totp\""), "{row}");
    let admin_row = user_line(&list, ADMIN_EMAIL).unwrap();
    assert!(
        !admin_row.contains("reset-totp"),
        "no TOTP, nothing to reset"
    );

    let reset = admin
        .submit(&list, "/users/reset-totp", &[("email", VIEWER_EMAIL)])
        .await;
    assert_eq!(reset.status, 303, "{}", reset.body);
    let list = admin.get("/users").await;
    assert!(
        user_line(&list, VIEWER_EMAIL)
            .unwrap()
            .contains("<td>off</td>")
    );
    assert_eq!(
        viewer.get("/").await.status,
        303,
        "the viewer is signed out"
    );
    let audit = admin.get("/audit").await;
    assert!(
        audit
            .body
            .lines()
            .any(|line| line.contains("<td>totp_reset</td>") && line.contains(VIEWER_EMAIL)),
        "{}",
        audit.body
    );
}

/// The value cell of the settings row named `name`.
fn setting(page: &Page, name: &str) -> String {
    let marker = format!("<tr><th>{name}</th><td>");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}:\n{}", page.body))
        + marker.len();
    let end = page.body[start..].find("</td>").unwrap();
    page.body[start..start + end].to_string()
}

#[tokio::test]
async fn settings_show_listeners_and_tls_and_no_secret() {
    // Certificate files: the path is shown, the key never.
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["mx.postern.test".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    let key_pem = certified.key_pair.serialize_pem();
    std::fs::write(&key, &key_pem).unwrap();
    let app = TestApp::launch(&format!(
        "[smtp]\ntls_cert = {:?}\ntls_key = {:?}\n[dns]\nservers = [\"127.0.0.1:5399\"]\n[auth]\nspf = true\n",
        cert.display().to_string(),
        key.display().to_string()
    ))
    .checking_spf()
    .start()
    .await;
    let mut admin = app.admin_browser().await;
    let page = admin.get("/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("href=\"/settings\""),
        "the nav links the page"
    );
    assert_eq!(setting(&page, "SMTP listener"), app.smtp.to_string());
    assert_eq!(setting(&page, "Submission listeners"), "off");
    assert_eq!(
        setting(&page, "Web listener"),
        format!("{} (plain HTTP)", app.web)
    );
    assert_eq!(
        setting(&page, "TLS"),
        format!("files: {} — STARTTLS on SMTP", cert.display())
    );
    assert_eq!(setting(&page, "Issuer"), "CN=rcgen self signed cert");
    assert_eq!(
        setting(&page, "Names in the certificate"),
        "mx.postern.test"
    );
    assert_eq!(
        setting(&page, "Data directory"),
        app.data_dir.path().display().to_string()
    );
    assert_eq!(setting(&page, "Version"), postern::VERSION);
    assert_eq!(setting(&page, "SPF"), "on");
    assert_eq!(setting(&page, "DNS"), "127.0.0.1:5399");
    assert_eq!(setting(&page, "Session idle timeout"), "1800 s");
    assert_eq!(setting(&page, "Session lifetime"), "43200 s");
    assert!(
        !page.body.contains(&key.display().to_string()),
        "the key path"
    );
    assert!(!page.body.contains("PRIVATE KEY"));
    assert!(!page.body.contains(&app.api_key));
    assert!(!page.body.contains(ADMIN_PASSWORD));

    // Off and self-signed; viewers read it too.
    let off = TestApp::start("[tls]\nmode = \"off\"\n").await;
    let mut admin = off.admin_browser().await;
    let page = admin.get("/settings").await;
    assert_eq!(
        setting(&page, "TLS"),
        "off: no STARTTLS, no HTTPS ([tls] mode = &quot;off&quot;)"
    );
    assert_eq!(setting(&page, "SPF"), "off");
    // No [tls] at all: STARTTLS with a self-signed certificate for the hostname.
    let self_signed = TestApp::start("").await;
    let mut viewer = self_signed.viewer_browser().await;
    let page = viewer.get("/settings").await;
    assert_eq!(page.status, 200);
    assert_eq!(setting(&page, "TLS"), "self-signed — STARTTLS on SMTP");
    assert_eq!(setting(&page, "Source"), "self-signed");
}
