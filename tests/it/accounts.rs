//! Accounts and sign-in over real HTTP against the real server: every authorisation rule,
//! the TOTP flow, throttling, expiry, sign-out everywhere, the audit log, and what is stored.

use std::time::Duration;

use postern::accounts::{Actor, NewPassword, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::browser::Page;
use crate::support::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Browser, TestApp, VIEWER_EMAIL, VIEWER_PASSWORD, config_with,
};

/// A production-like app: no dev mode, no addresses.
async fn serve() -> TestApp {
    TestApp::start(&config_with(&[], "")).await
}

/// A JSON request from a browser session, with the CSRF header when given.
async fn json_request(
    browser: &mut Browser,
    method: Method,
    path: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Page {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(token) = csrf {
        headers.push(("x-csrf-token", token));
    }
    browser
        .request(method, path, &headers, body.map(|b| b.to_string()))
        .await
}

/// A request with `Authorization: Bearer key`.
async fn with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/audit?limit=500").await["entries"]
        .as_array()
        .unwrap()
        .clone()
}

/// Turns TOTP on for the signed-in user of `browser`; returns the app's secret (as a
/// parsed otpauth URL) and the recovery codes.
pub(crate) async fn enrol_totp(
    app: &TestApp,
    browser: &mut Browser,
) -> (totp_rs::Totp, Vec<String>) {
    let page = browser.get("/account/totp").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<img src=\"data:image/png;base64,iVBORw0KGgo"),
        "a PNG QR code"
    );
    let url = page.code_text("otpauth").expect("the otpauth URL is shown");
    assert!(
        url.starts_with("otpauth://totp/Postern%20mx.postern.test:"),
        "{url}"
    );
    let totp = totp_rs::Totp::from_url(&url).unwrap();
    let csrf = page.csrf_token();
    // Reloading shows the same secret: a scan already made stays good.
    assert_eq!(
        browser.get("/account/totp").await.code_text("otpauth"),
        Some(url)
    );

    let wrong = browser
        .post_form(
            "/account/totp",
            &[("csrf_token", &csrf), ("code", "000000")],
        )
        .await;
    if code(app, &totp, 0) != "000000" {
        assert_eq!(wrong.status, 400, "{}", wrong.body);
    }
    let done = browser
        .post_form(
            "/account/totp",
            &[("csrf_token", &csrf), ("code", &code(app, &totp, 0))],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let list = &done.body[done.body.find("<ol id=\"recovery-codes\">").unwrap()..];
    let codes: Vec<String> = list
        .split("<li><code>")
        .skip(1)
        .map(|item| item.split("</code>").next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (totp, codes)
}

/// The TOTP code `steps` steps of 30 s from the app's clock.
fn code(app: &TestApp, totp: &totp_rs::Totp, steps: i64) -> String {
    totp.generate((app.clock.unix() + steps * 30) as u64)
        .to_string()
}

/// Password step of a TOTP user: returns the code form.
async fn password_step(browser: &mut Browser, email: &str, password: &str) -> Page {
    let answer = browser.submit_sign_in(email, password).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location(), Some("/signin/totp?next=%2F"));
    let form = browser.get("/signin/totp?next=%2F").await;
    assert_eq!(form.status, 200, "{}", form.body);
    form
}

async fn submit_code(browser: &mut Browser, form: &Page, code: &str) -> Page {
    let csrf = form.csrf_token();
    browser
        .post_form(
            "/signin/totp",
            &[("csrf_token", &csrf), ("code", code), ("next", "/")],
        )
        .await
}

#[tokio::test]
async fn without_a_session_browsers_are_sent_to_sign_in_and_the_api_answers_401() {
    let app = serve().await;
    let mut browser = app.browser();
    for (path, next) in [
        ("/", "%2F"),
        ("/api/messages?limit=2", "%2Fapi%2Fmessages%3Flimit%3D2"),
        ("/account/totp", "%2Faccount%2Ftotp"),
        ("/account/password", "%2Faccount%2Fpassword"),
    ] {
        let page = browser.get(path).await;
        if path.starts_with("/api/") {
            assert_eq!(page.status, 401, "{path}");
            assert_eq!(
                page.header("www-authenticate"),
                Some("Bearer realm=\"postern\"")
            );
            let body = page.json();
            assert_eq!(body["status"], 401);
            assert!(
                body["error"].as_str().unwrap().contains("API key"),
                "{body}"
            );
        } else {
            assert_eq!(page.status, 303, "{path}");
            assert_eq!(
                page.location(),
                Some(format!("/signin?next={next}").as_str())
            );
        }
    }
    for path in [
        "/api/messages",
        "/api/messages/1",
        "/api/messages/1/raw",
        "/api/users",
        "/api/keys",
        "/api/audit",
    ] {
        assert_eq!(browser.get(path).await.status, 401, "{path}");
    }
    let post = json_request(
        &mut browser,
        Method::POST,
        "/api/keys",
        None,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(post.status, 401);
    assert_eq!(browser.post_form("/signout", &[]).await.status, 303);
    // A second-factor page without a pending sign-in starts over.
    assert_eq!(
        browser.get("/signin/totp").await.location(),
        Some("/signin")
    );

    // Invalid and revoked keys: 401 wherever they are sent.
    let bad = with_key(&app, Method::GET, "/api/messages", "pst_not-a-key", None).await;
    assert_eq!(bad.status(), 401);
    let bad = with_key(&app, Method::GET, "/", "nonsense", None).await;
    assert_eq!(bad.status(), 401);

    // Public: health and the test targets, with or without anything.
    assert_eq!(browser.get("/healthz").await.status, 200);
    assert_eq!(
        browser.post_form("/target/202", &[("a", "b")]).await.status,
        202
    );
    assert_eq!(browser.get("/target/delay/1").await.status, 200);

    // After signing in, `next` brings the browser back.
    let signin = browser
        .get("/signin?next=%2Fapi%2Fmessages%3Flimit%3D2")
        .await;
    assert_eq!(
        signin.input_value("next").as_deref(),
        Some("/api/messages?limit=2")
    );
    let csrf = signin.csrf_token();
    let answer = browser
        .post_form(
            "/signin",
            &[
                ("csrf_token", &csrf),
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("next", "/api/messages?limit=2"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location(), Some("/api/messages?limit=2"));
    assert_eq!(browser.get("/api/messages?limit=2").await.status, 200);
    // Signed in, /signin sends the browser home.
    assert_eq!(browser.get("/signin").await.location(), Some("/"));
    // And `next` never leads off the site.
    let mut other = app.browser();
    let form = other.get("/signin").await;
    let answer = other
        .post_form(
            "/signin",
            &[
                ("csrf_token", &form.csrf_token()),
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(answer.location(), Some("/"));
}

#[tokio::test]
async fn viewers_read_admins_write() {
    let app = serve().await;
    app.add_viewer().await;

    let mut viewer = app.signed_in(VIEWER_EMAIL, VIEWER_PASSWORD).await;
    let csrf = viewer.session_csrf().await;
    for path in [
        "/",
        "/api/messages",
        "/api/users",
        "/api/keys",
        "/api/audit",
    ] {
        assert_eq!(viewer.get(path).await.status, 200, "{path}");
    }
    let refused = json_request(
        &mut viewer,
        Method::POST,
        "/api/keys",
        Some(&csrf),
        Some(json!({"name": "v"})),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        refused.json(),
        json!({"status": 403, "error": "viewers have read-only access"})
    );
    let refused = json_request(
        &mut viewer,
        Method::DELETE,
        "/api/keys/1",
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(refused.status, 403);
    // A viewer's own account pages are theirs to use.
    let form = viewer.get("/account/password").await;
    assert_eq!(form.status, 200);
    let changed = viewer
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &form.csrf_token()),
                ("password", "a new viewer password"),
                ("repeat", "a new viewer password"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);

    let mut admin = app.admin_browser().await;
    let csrf = admin.session_csrf().await;
    let created = json_request(
        &mut admin,
        Method::POST,
        "/api/keys",
        Some(&csrf),
        Some(json!({"name": "reader", "role": "viewer"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.json();
    let viewer_key = created["secret"].as_str().unwrap().to_string();
    assert!(viewer_key.starts_with("pst_"));
    assert_eq!(created["key"]["role"], "viewer");
    assert_eq!(created["key"]["created_by"], ADMIN_EMAIL);
    assert!(created["key"].get("secret").is_none() && created["key"].get("key_hash").is_none());

    // API keys: a viewer key reads, cannot write; an admin key writes without CSRF.
    assert_eq!(
        with_key(&app, Method::GET, "/api/messages", &viewer_key, None)
            .await
            .status(),
        200
    );
    let refused = with_key(
        &app,
        Method::POST,
        "/api/keys",
        &viewer_key,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let made = with_key(
        &app,
        Method::POST,
        "/api/keys",
        &app.api_key,
        Some(json!({"name": "by key", "role": "admin"})),
    )
    .await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["key"]["created_by"], "api key tests");

    // Revoking: the admin session (with CSRF) deletes; the key stops working.
    let id = created["key"]["id"].as_i64().unwrap();
    let revoked = json_request(
        &mut admin,
        Method::DELETE,
        &format!("/api/keys/{id}"),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_eq!(
        with_key(&app, Method::GET, "/api/messages", &viewer_key, None)
            .await
            .status(),
        401
    );
    let again = json_request(
        &mut admin,
        Method::DELETE,
        &format!("/api/keys/{id}"),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(again.status, 404);
    let keys = app.get_json("/api/keys").await["keys"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter()
            .any(|k| k["name"] == "reader" && k["revoked_at"].is_string())
    );
}

#[tokio::test]
async fn state_changes_without_a_valid_csrf_token_are_403() {
    let app = serve().await;
    let mut admin = app.admin_browser().await;
    let csrf = admin.session_csrf().await;
    let body = || Some(json!({"name": "k"}));

    let missing = json_request(&mut admin, Method::POST, "/api/keys", None, body()).await;
    assert_eq!(missing.status, 403);
    assert_eq!(
        missing.json(),
        json!({"status": 403, "error": "missing or invalid CSRF token"})
    );
    let wrong = json_request(&mut admin, Method::POST, "/api/keys", Some("AAAA"), body()).await;
    assert_eq!(wrong.status, 403);
    // The token of another session of the same user does not do.
    let mut other = app.admin_browser().await;
    let others = other.session_csrf().await;
    assert_ne!(others, csrf);
    let foreign = json_request(&mut admin, Method::POST, "/api/keys", Some(&others), body()).await;
    assert_eq!(foreign.status, 403);
    // Nor the anonymous token of the sign-in form.
    let anonymous = app.browser().get("/signin").await.csrf_token();
    let foreign = json_request(
        &mut admin,
        Method::POST,
        "/api/keys",
        Some(&anonymous),
        body(),
    )
    .await;
    assert_eq!(foreign.status, 403);
    let ok = json_request(&mut admin, Method::POST, "/api/keys", Some(&csrf), body()).await;
    assert_eq!(ok.status, 201, "{}", ok.body);

    // Forms: the field, not just the header.
    let refused = admin.post_form("/signout", &[]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("CSRF"), "{}", refused.body);
    let refused = admin
        .post_form("/signout", &[("csrf_token", &others)])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(admin.get("/").await.status, 200, "still signed in");

    // The sign-in form: no token, or a token without its cookie, is refused too.
    let mut fresh = app.browser();
    let form = fresh.get("/signin").await;
    let token = form.csrf_token();
    let credentials = [("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)];
    assert_eq!(fresh.post_form("/signin", &credentials).await.status, 403);
    fresh.forget_cookie("postern_csrf");
    let with_token = [
        credentials[0],
        credentials[1],
        ("csrf_token", token.as_str()),
    ];
    assert_eq!(fresh.post_form("/signin", &with_token).await.status, 403);

    let signed_out = admin.post_form("/signout", &[("csrf_token", &csrf)]).await;
    assert_eq!(signed_out.status, 303);
    assert_eq!(signed_out.location(), Some("/signin"));
    assert_eq!(admin.get("/").await.status, 303);
}

#[tokio::test]
async fn sign_in_with_password_and_totp() {
    let app = serve().await;
    let mut admin = app.admin_browser().await;
    let (totp, _) = enrol_totp(&app, &mut admin).await;
    assert!(
        admin
            .get("/account/totp")
            .await
            .body
            .contains("10 recovery codes left")
    );
    let audit = audit_actions(&app).await;
    assert_eq!(audit[0]["action"], "totp_enrolled");
    assert_eq!(audit[0]["actor"], ADMIN_EMAIL);

    let mut browser = app.browser();
    let answer = browser.submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(answer.location(), Some("/signin/totp?next=%2F"));
    let pending_cookie = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("postern_session="))
        .unwrap()
        .to_string();
    assert!(pending_cookie.contains("Max-Age=300"), "{pending_cookie}");
    let pending = browser.cookie("postern_session").unwrap().to_string();
    // Half signed in is not signed in.
    assert_eq!(browser.get("/").await.status, 303);
    assert_eq!(browser.get("/api/messages").await.status, 401);
    let form = browser.get("/signin/totp?next=%2F").await;

    let wrong = submit_code(&mut browser, &form, "123456").await;
    if code(&app, &totp, 0) != "123456" {
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    let right = submit_code(&mut browser, &form, &code(&app, &totp, 1)).await;
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(right.location(), Some("/"));
    let session = browser.cookie("postern_session").unwrap().to_string();
    assert_ne!(
        session, pending,
        "the session id changes after the second factor"
    );
    assert_eq!(browser.get("/").await.status, 200);
    // The pending id is dead.
    let mut replayed = app.browser();
    replayed.set_cookie("postern_session", &pending);
    assert_eq!(replayed.get("/").await.status, 303);
    assert_eq!(replayed.get("/signin/totp").await.status, 303);

    let audit = audit_actions(&app).await;
    assert_eq!(audit[0]["action"], "signin");
    assert_eq!(audit[0]["detail"], "password + TOTP");
    assert_eq!(audit[1]["action"], "signin_failed");
    assert_eq!(audit[1]["detail"], "wrong or reused second factor");
}

#[tokio::test]
async fn totp_drift_of_one_step_is_accepted_and_two_refused() {
    let app = serve().await;
    let mut admin = app.admin_browser().await;
    let (totp, _) = enrol_totp(&app, &mut admin).await;
    // Step s was used to enrol; four steps on, s+2 .. s+6 are all unused.
    app.clock.advance(Duration::from_secs(120));

    let mut browser = app.browser();
    let form = password_step(&mut browser, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for steps in [-2, 2] {
        let code = code(&app, &totp, steps);
        if (-1..=1).any(|d| self::code(&app, &totp, d) == code) {
            continue; // one time in a million, another step has the same code
        }
        let answer = submit_code(&mut browser, &form, &code).await;
        assert_eq!(answer.status, 401, "{steps} steps: {}", answer.body);
    }
    let behind = submit_code(&mut browser, &form, &code(&app, &totp, -1)).await;
    assert_eq!(behind.status, 303, "-1 step: {}", behind.body);

    let mut browser = app.browser();
    let form = password_step(&mut browser, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let ahead = submit_code(&mut browser, &form, &code(&app, &totp, 1)).await;
    assert_eq!(ahead.status, 303, "+1 step: {}", ahead.body);
}

#[tokio::test]
async fn a_used_totp_code_is_refused() {
    let app = serve().await;
    let mut admin = app.admin_browser().await;
    let (totp, _) = enrol_totp(&app, &mut admin).await;
    app.clock.advance(Duration::from_secs(60));

    let mut first = app.browser();
    let form = password_step(&mut first, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let now = code(&app, &totp, 0);
    assert_eq!(submit_code(&mut first, &form, &now).await.status, 303);

    // The same code again, from another browser, within its 30 seconds: refused.
    let mut second = app.browser();
    let form = password_step(&mut second, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let replay = submit_code(&mut second, &form, &now).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    // So is the previous step's code, older than the one used.
    let older = submit_code(&mut second, &form, &code(&app, &totp, -1)).await;
    assert_eq!(older.status, 401);
    // The next step's code works.
    let next = submit_code(&mut second, &form, &code(&app, &totp, 1)).await;
    assert_eq!(next.status, 303, "{}", next.body);
}

#[tokio::test]
async fn recovery_codes_work_once_each() {
    let app = serve().await;
    let mut admin = app.admin_browser().await;
    let (_, codes) = enrol_totp(&app, &mut admin).await;

    let mut phone_lost = app.browser();
    let form = password_step(&mut phone_lost, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // As a person types it: upper case, spaces for dashes.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let answer = submit_code(&mut phone_lost, &form, &typed).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(phone_lost.get("/").await.status, 200);

    let mut again = app.browser();
    let form = password_step(&mut again, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let reused = submit_code(&mut again, &form, &codes[0]).await;
    assert_eq!(reused.status, 401, "{}", reused.body);
    let other = submit_code(&mut again, &form, &codes[9]).await;
    assert_eq!(other.status, 303, "{}", other.body);
    assert!(
        admin
            .get("/account/totp")
            .await
            .body
            .contains("8 recovery codes left")
    );

    let audit = audit_actions(&app).await;
    assert_eq!(audit[0]["action"], "signin");
    assert_eq!(audit[0]["detail"], "password + recovery code");
    assert_eq!(audit[1]["action"], "recovery_code_used");
    assert_eq!(audit[1]["detail"], "8 left");
}

#[tokio::test]
async fn five_failures_throttle_an_account_for_fifteen_minutes() {
    let app = serve().await;
    app.add_viewer().await;
    let mut browser = app.browser();
    for _ in 0..5 {
        let answer = browser
            .submit_sign_in(ADMIN_EMAIL, "not the password")
            .await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert!(answer.body.contains("Wrong email or password."));
    }
    let throttled = browser.submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    // Every failure happened at the same instant of the test clock: 15 minutes to wait.
    assert_eq!(throttled.header("retry-after"), Some("900"));
    // Another account from the same address is not affected.
    app.browser().sign_in(VIEWER_EMAIL, VIEWER_PASSWORD).await;

    app.clock.advance(Duration::from_secs(899));
    let throttled = browser.submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("retry-after"), Some("1"));
    app.clock.advance(Duration::from_secs(1));
    browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn twenty_failures_throttle_an_address() {
    let app = serve().await;
    let mut browser = app.browser();
    for i in 0..20 {
        let answer = browser
            .submit_sign_in(&format!("guess{i}@postern.test"), "not the password")
            .await;
        assert_eq!(answer.status, 401, "attempt {i}: {}", answer.body);
    }
    // The right password of an untouched account, from the same address.
    let throttled = app
        .browser()
        .submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("retry-after"), Some("900"));
    app.clock.advance(Duration::from_secs(900));
    app.browser().sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn sessions_end_after_30_idle_minutes_or_12_hours() {
    let app = serve().await;
    let minutes = |n: u64| Duration::from_secs(n * 60);

    let mut idle = app.admin_browser().await;
    let cookie = idle.cookie("postern_session").unwrap().to_string();
    app.clock.advance(minutes(29));
    assert_eq!(idle.get("/").await.status, 200);
    app.clock.advance(minutes(29));
    assert_eq!(
        idle.get("/").await.status,
        200,
        "use restarts the idle time"
    );
    app.clock.advance(minutes(30));
    let expired = idle.get("/").await;
    assert_eq!(expired.status, 303);
    assert!(
        expired
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("postern_session=;") && c.contains("Max-Age=0")),
        "the dead cookie is cleared: {:?}",
        expired.set_cookies()
    );
    let mut again = app.browser();
    again.set_cookie("postern_session", &cookie);
    assert_eq!(again.get("/api/messages").await.status, 401);

    let mut busy = app.admin_browser().await;
    for _ in 0..(12 * 60 / 20 - 1) {
        app.clock.advance(minutes(20));
        assert_eq!(busy.get("/").await.status, 200);
    }
    app.clock.advance(minutes(19));
    assert_eq!(busy.get("/").await.status, 200, "11 h 59 min after sign-in");
    app.clock.advance(minutes(1));
    assert_eq!(
        busy.get("/").await.status,
        303,
        "12 h after sign-in, however busy"
    );
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_user() {
    let app = serve().await;
    app.add_viewer().await;
    let mut laptop = app.admin_browser().await;
    let mut phone = app.admin_browser().await;
    let mut tablet = app.admin_browser().await;
    let mut viewer = app.signed_in(VIEWER_EMAIL, VIEWER_PASSWORD).await;

    // Signing out ends this session only.
    let csrf = tablet.session_csrf().await;
    assert_eq!(
        tablet
            .post_form("/signout", &[("csrf_token", &csrf)])
            .await
            .status,
        303
    );
    assert_eq!(tablet.get("/").await.status, 303);
    assert_eq!(phone.get("/").await.status, 200);

    let csrf = laptop.session_csrf().await;
    let answer = laptop
        .post_form("/signout", &[("csrf_token", &csrf), ("everywhere", "1")])
        .await;
    assert_eq!(answer.status, 303);
    assert!(answer.set_cookies().iter().any(|c| c.contains("Max-Age=0")));
    assert_eq!(laptop.get("/").await.status, 303);
    assert_eq!(phone.get("/").await.status, 303);
    assert_eq!(
        viewer.get("/").await.status,
        200,
        "other users stay signed in"
    );

    let audit = audit_actions(&app).await;
    assert_eq!(audit[0]["action"], "signout_everywhere");
    assert_eq!(audit[0]["subject"], ADMIN_EMAIL);
    assert_eq!(audit[0]["detail"], "2 sessions");
}

/// The rows of "My sessions" on `/account`: (public id, the rest of the row).
fn session_rows(page: &Page) -> Vec<(String, String)> {
    let table = &page.body[page
        .body
        .find("<table id=\"sessions\">")
        .expect("the sessions table")..];
    let table = &table[..table.find("</table>").unwrap()];
    table
        .split("<tr id=\"session-")
        .skip(1)
        .map(|row| {
            let (id, rest) = row.split_once('"').unwrap();
            (id.to_string(), rest.to_string())
        })
        .collect()
}

#[tokio::test]
async fn my_sessions_are_listed_and_signed_out_one_by_one() {
    let app = serve().await;
    app.add_viewer().await;
    let mut laptop = app.browser();
    laptop.user_agent = "Laptop <Browser> 1.0".into();
    laptop.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut phone = app.browser();
    phone.user_agent = "Phone Browser 2.0".into();
    phone.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut viewer = app.signed_in(VIEWER_EMAIL, VIEWER_PASSWORD).await;
    let page = laptop.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let rows = session_rows(&page);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let this: Vec<_> = rows
        .iter()
        .filter(|(_, row)| row.contains("this session"))
        .collect();
    assert_eq!(this.len(), 1, "{rows:?}");
    assert!(
        this[0].1.contains("Laptop &lt;Browser&gt; 1.0"),
        "escaped: {rows:?}"
    );
    let (phone_id, phone_row) = rows
        .iter()
        .find(|(_, row)| row.contains("Phone Browser 2.0"))
        .unwrap()
        .clone();
    assert!(!phone_row.contains("this session"));
    assert!(phone_row.contains("127.0.0.1"));
    assert!(phone_row.contains("<time datetime=\""));
    assert_eq!(phone_id.len(), 16);
    assert!(
        phone_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // Neither the tokens nor their stored digests are on the page: the ids are the
    // digests' first 16 hex digits.
    let mut prefixes = Vec::new();
    for browser in [&laptop, &phone] {
        let token = browser.cookie("postern_session").unwrap();
        let digest = sha256_hex(token);
        assert!(!page.body.contains(token));
        assert!(!page.body.contains(&digest));
        prefixes.push(digest[..16].to_string());
    }
    let mut ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    prefixes.sort();
    assert_eq!(ids, prefixes);

    // Another device's session: CSRF needed, then it ends and this one stays.
    let path = format!("/account/sessions/{phone_id}/signout");
    assert_eq!(laptop.post_form(&path, &[]).await.status, 403);
    assert_eq!(phone.get("/").await.status, 200);
    let csrf = page.csrf_token();
    let answer = laptop.post_form(&path, &[("csrf_token", &csrf)]).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location(), Some("/account"));
    assert!(
        answer.set_cookies().is_empty(),
        "this browser stays signed in"
    );
    assert_eq!(phone.get("/").await.status, 303, "the phone is signed out");
    assert_eq!(laptop.get("/").await.status, 200);
    assert_eq!(session_rows(&laptop.get("/account").await).len(), 1);
    let entry = &audit_actions(&app).await[0];
    assert_eq!(entry["action"], "signout");
    assert_eq!(entry["actor"], ADMIN_EMAIL);
    assert_eq!(entry["detail"], format!("session {phone_id} (127.0.0.1)"));

    // Gone already, someone else's, malformed: 404, and nothing ends.
    let viewer_page = viewer.get("/account").await;
    let viewer_rows = session_rows(&viewer_page);
    assert_eq!(viewer_rows.len(), 1);
    assert!(viewer_rows[0].1.contains("this session"));
    let viewer_id = viewer_rows[0].0.clone();
    for id in [
        phone_id.clone(),
        viewer_id.clone(),
        viewer_id[..15].to_string(),
        viewer_id.to_uppercase(),
        "zzzzzzzzzzzzzzzz".to_string(),
    ] {
        let answer = laptop
            .post_form(
                &format!("/account/sessions/{id}/signout"),
                &[("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(answer.status, 404, "{id}: {}", answer.body);
    }
    assert_eq!(viewer.get("/").await.status, 200);
    assert_eq!(laptop.get("/").await.status, 200);

    // A viewer may end their own sessions too; their own is a sign-out.
    let viewer_csrf = viewer_page.csrf_token();
    let answer = viewer
        .post_form(
            &format!("/account/sessions/{viewer_id}/signout"),
            &[("csrf_token", &viewer_csrf)],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location(), Some("/signin"));
    assert!(
        answer
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("postern_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(viewer.get("/").await.status, 303);
    assert_eq!(laptop.get("/").await.status, 200);
}

/// SHA-256, lower-case hex, as the store keeps session ids.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn the_audit_log_records_sign_ins_and_account_changes() {
    let app = serve().await;
    let mut browser = app.browser();
    browser.user_agent = "audit-test".into();
    assert_eq!(
        browser
            .submit_sign_in("nobody@postern.test", "whatever it is")
            .await
            .status,
        401
    );
    assert_eq!(
        browser
            .submit_sign_in(ADMIN_EMAIL, "wrong password!")
            .await
            .status,
        401
    );
    browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = browser.session_csrf().await;
    let made = json_request(
        &mut browser,
        Method::POST,
        "/api/keys",
        Some(&csrf),
        Some(json!({"name": "audited"})),
    )
    .await;
    let id = made.json()["key"]["id"].as_i64().unwrap();
    json_request(
        &mut browser,
        Method::DELETE,
        &format!("/api/keys/{id}"),
        Some(&csrf),
        None,
    )
    .await;
    browser
        .post_form("/signout", &[("csrf_token", &csrf)])
        .await;

    let audit = audit_actions(&app).await;
    let rows: Vec<(String, String, String, String)> = audit
        .iter()
        .rev()
        .map(|row| {
            let text = |field: &str| row[field].as_str().unwrap_or("-").to_string();
            (
                text("actor"),
                text("action"),
                text("subject"),
                text("detail"),
            )
        })
        .collect();
    let row = |actor: &str, action: &str, subject: &str, detail: &str| {
        (
            actor.to_string(),
            action.to_string(),
            subject.to_string(),
            detail.to_string(),
        )
    };
    assert_eq!(
        rows,
        vec![
            row("cli", "user_created", ADMIN_EMAIL, "role admin"),
            row("cli", "api_key_created", "tests", "role admin"),
            row(
                "anonymous",
                "signin_failed",
                "nobody@postern.test",
                "unknown account"
            ),
            row("anonymous", "signin_failed", ADMIN_EMAIL, "wrong password"),
            row(ADMIN_EMAIL, "signin", "-", "password"),
            row(ADMIN_EMAIL, "api_key_created", "audited", "role viewer"),
            row(ADMIN_EMAIL, "api_key_revoked", "audited", "-"),
            row(ADMIN_EMAIL, "signout", "-", "-"),
        ]
    );
    assert_eq!(audit[0]["ip"], "127.0.0.1");
    assert!(audit[0]["at"].as_str().unwrap().ends_with('Z'));
    let page = app.get_json("/api/audit?limit=3").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 3);
    let older = app
        .get_json(&format!(
            "/api/audit?limit=10&before={}",
            page["next_before"]
        ))
        .await;
    assert_eq!(older["entries"].as_array().unwrap().len(), 5);
    assert_eq!(app.get("/api/audit?limit=0").await.status(), 400);
}

/// Session ids and API keys are stored as SHA-256 digests, passwords as argon2id PHC strings:
/// none of the secrets is anywhere in the database files.
#[tokio::test]
async fn secrets_are_stored_hashed() {
    use sha2::{Digest, Sha256};
    let app = serve().await;
    let mut browser = app.admin_browser().await;
    let session = browser.cookie("postern_session").unwrap().to_string();
    assert_eq!(session.len(), 43, "256 bits, base64url");
    let csrf = browser.session_csrf().await;
    let made = json_request(
        &mut browser,
        Method::POST,
        "/api/keys",
        Some(&csrf),
        Some(json!({"name": "k"})),
    )
    .await;
    let key = made.json()["secret"].as_str().unwrap().to_string();
    // The key works, so it is in the store in some form.
    assert_eq!(
        with_key(&app, Method::GET, "/api/messages", &key, None)
            .await
            .status(),
        200
    );

    let mut bytes = Vec::new();
    for file in ["postern.db", "postern.db-wal"] {
        if let Ok(content) = std::fs::read(app.data_dir.path().join(file)) {
            bytes.extend(content);
        }
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    let hex = |text: &str| {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for (what, secret) in [
        ("session id", &session),
        ("API key", &key),
        ("API key (test)", &app.api_key),
    ] {
        assert!(!contains(secret), "the {what} is stored in clear");
        assert!(contains(&hex(secret)), "the {what}'s SHA-256 is not stored");
    }
    assert!(!contains(ADMIN_PASSWORD), "the password is stored in clear");
    assert!(
        contains("$argon2id$v=19$m=8,t=1,p=1$"),
        "no argon2id PHC string (test parameters)"
    );
}

#[tokio::test]
async fn cookies_are_http_only_lax_and_secure_when_configured() {
    let app = serve().await;
    let mut browser = app.browser();
    let form = browser.get("/signin").await;
    let anonymous = form.set_cookies()[0].to_string();
    assert!(anonymous.starts_with("postern_csrf="), "{anonymous}");
    let answer = browser.submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cookie = answer.set_cookies()[0].to_string();
    assert!(cookie.starts_with("postern_session="), "{cookie}");
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "a loopback listener defaults to plain cookies: {cookie}"
    );
    // Pages are not cached and not framed.
    let home = browser.get("/").await;
    assert_eq!(home.header("cache-control"), Some("no-store"));
    assert_eq!(home.header("x-frame-options"), Some("DENY"));
    assert!(
        home.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    let secure = TestApp::start(&config_with(&[], "[web]\nsecure_cookies = true\n")).await;
    let mut browser = secure.browser();
    let form = browser.get("/signin").await;
    assert!(
        form.set_cookies()[0].ends_with("; Secure"),
        "{:?}",
        form.set_cookies()
    );
    let answer = browser.submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(
        answer.set_cookies()[0].contains("; Secure"),
        "{:?}",
        answer.set_cookies()
    );
}

#[tokio::test]
async fn one_time_passwords_must_be_replaced_before_anything_else() {
    let app = serve().await;
    let (_, generated) = app
        .accounts
        .create_user(
            "new@postern.test",
            Role::Admin,
            NewPassword::Generate,
            &Actor::Cli,
        )
        .await
        .unwrap();
    let generated = generated.unwrap();
    let mut browser = app.browser();
    browser.sign_in("new@postern.test", &generated).await;
    assert_eq!(browser.get("/").await.location(), Some("/account/password"));
    assert_eq!(
        browser.get("/account/totp").await.location(),
        Some("/account/password")
    );
    let api = browser.get("/api/messages").await;
    assert_eq!(api.status, 403);
    assert!(
        api.json()["error"]
            .as_str()
            .unwrap()
            .contains("new password")
    );

    let form = browser.get("/account/password").await;
    assert!(form.body.contains("one-time password"));
    let csrf = form.csrf_token();
    let differ = browser
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("password", "first choice here"),
                ("repeat", "second choice"),
            ],
        )
        .await;
    assert_eq!(differ.status, 400);
    let short = browser
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("password", "short"),
                ("repeat", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("at least 12 characters"));
    let done = browser
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("password", "my own password now"),
                ("repeat", "my own password now"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(browser.get("/").await.status, 200);
    assert_eq!(
        app.browser()
            .submit_sign_in("new@postern.test", &generated)
            .await
            .status,
        401
    );
    app.browser()
        .sign_in("new@postern.test", "my own password now")
        .await;
}

#[tokio::test]
async fn required_totp_sends_users_to_enrolment_first() {
    let app = TestApp::start(&config_with(&[], "[web]\nrequire_totp = true\n")).await;
    let mut admin = app.admin_browser().await;
    assert_eq!(admin.get("/").await.location(), Some("/account/totp"));
    let api = admin.get("/api/messages").await;
    assert_eq!(api.status, 403);
    assert!(api.json()["error"].as_str().unwrap().contains("two-factor"));
    // API keys are not users: they are not held up.
    assert_eq!(app.get("/api/messages").await.status(), 200);
    enrol_totp(&app, &mut admin).await;
    assert_eq!(admin.get("/").await.status, 200);
}

#[tokio::test]
async fn dev_mode_is_open_on_loopback_only() {
    let dev = TestApp::dev(None).await;
    let mut browser = dev.browser();
    let home = browser.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Dev mode"));
    assert_eq!(browser.get("/api/messages").await.status, 200);
    assert_eq!(browser.get("/api/audit").await.status, 200);
    // Open is not unguarded: writes still need the CSRF token of this browser.
    let refused = json_request(
        &mut browser,
        Method::POST,
        "/api/keys",
        None,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(refused.status, 403);

    let data_dir = tempfile::tempdir().unwrap();
    let config = postern::config::Config::dev(
        data_dir.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "0.0.0.0:0".parse().unwrap(),
        None,
    );
    let exposed = TestApp::from_config(config, data_dir).await;
    let mut browser = Browser::new(format!("127.0.0.1:{}", exposed.web.port()).parse().unwrap());
    assert_eq!(browser.get("/api/messages").await.status, 401);
    assert_eq!(browser.get("/").await.status, 303);
    browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(browser.get("/api/messages").await.status, 200);
}

/// `postern user add|list|delete` through the real binary, on the store a server then uses.
#[tokio::test]
async fn user_commands_of_the_real_binary() {
    let data_dir = tempfile::tempdir().unwrap();
    crate::support::private(data_dir.path());
    let config = data_dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.postern.test\"\ndata_dir = \"{}\"\n",
            data_dir.path().display()
        ),
    )
    .unwrap();
    let postern = |args: &[&str], stdin: &str| {
        crate::support::binary::run_with_stdin(
            crate::support::binary::postern()
                .args(args)
                .arg("--config")
                .arg(&config),
            stdin,
        )
    };

    let (code, out, err) = postern(
        &[
            "user",
            "add",
            "--email",
            "Owner@Postern.test",
            "--password-stdin",
        ],
        "the owner's own password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "created admin owner@postern.test");
    let (code, out, err) = postern(
        &[
            "user",
            "add",
            "--email",
            "reader@postern.test",
            "--role",
            "viewer",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let generated = out
        .lines()
        .find_map(|line| line.strip_prefix("one-time password: "))
        .unwrap_or_else(|| panic!("no one-time password printed:\n{out}"))
        .to_string();
    assert_eq!(generated.len(), 23, "{generated}");
    let (code, _, err) = postern(
        &[
            "user",
            "add",
            "--email",
            "owner@postern.test",
            "--password-stdin",
        ],
        "another password\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("exists already"), "{err}");
    let (code, _, err) = postern(
        &[
            "user",
            "add",
            "--email",
            "x@postern.test",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("at least 12 characters"), "{err}");
    let (code, _, err) = postern(
        &["user", "add", "--email", "not an email", "--password-stdin"],
        "a long enough password\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("is not an email address"), "{err}");

    let (code, out, _) = postern(&["user", "list"], "");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with("owner@postern.test") && lines[1].contains(" admin "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("reader@postern.test") && lines[2].contains(" viewer "),
        "{out}"
    );

    // The production argon2id parameters, in the PHC string the server verifies.
    let db = std::fs::read(data_dir.path().join("postern.db")).unwrap();
    let wal = std::fs::read(data_dir.path().join("postern.db-wal")).unwrap_or_default();
    let phc = b"$argon2id$v=19$m=19456,t=2,p=1$";
    assert!(
        db.windows(phc.len())
            .chain(wal.windows(phc.len()))
            .any(|w| w == phc),
        "no argon2id PHC string with m=19456,t=2,p=1"
    );

    // A server on that store lets them in.
    let toml = "[server]\nhostname = \"mx.postern.test\"\n";
    let app = TestApp::start_in(toml, data_dir).await;
    app.browser()
        .sign_in("owner@postern.test", "the owner's own password")
        .await;
    let mut reader = app.browser();
    reader.sign_in("reader@postern.test", &generated).await;
    assert_eq!(reader.get("/").await.location(), Some("/account/password"));

    let (code, _, err) = postern(&["user", "delete", "--email", "reader@postern.test"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        reader.get("/account/password").await.status,
        303,
        "the deleted user's session ended"
    );
    let (code, _, err) = postern(&["user", "delete", "--email", "nobody@postern.test"], "");
    assert_eq!(code, 1);
    assert!(err.contains("no user nobody@postern.test"), "{err}");
    let audit = audit_actions(&app).await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "user_deleted");
    assert_eq!(audit[0]["actor"], "cli");
}
