//! Sign-in with an identity provider over real sockets: a real OpenID Connect provider
//! (`oidc-provider-mock`, with client registration and nonces required) and a GitHub
//! stand-in that checks PKCE, driven by a browser that follows no redirect by itself.

use std::time::Duration;

use postern::accounts::{Actor, NewPassword, Role};
use serde_json::{Value, json};

use crate::support::browser::Page;
use crate::support::free_port;
use crate::support::oidc::{GitHub, OidcMock};
use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, Browser, TestApp, config_with};

const BOB: &str = "bob@postern.test";
const BOB_PASSWORD: &str = "bob's password for tests";

async fn add_bob(app: &TestApp) {
    app.accounts
        .create_user(
            BOB,
            Role::Viewer,
            NewPassword::Given(BOB_PASSWORD.into()),
            &Actor::Cli,
        )
        .await
        .unwrap();
}

/// Postern with the mock provider as `[[web.oidc]] name = "mock"`, its client registered
/// for Postern's callback URL. `None` when the provider is not installed (skipped).
async fn with_mock() -> Option<(TestApp, OidcMock)> {
    let mock = OidcMock::start().await?;
    let web = format!("127.0.0.1:{}", free_port());
    let (id, secret) = mock
        .register(&format!("http://{web}/signin/oidc/mock/callback"))
        .await;
    let provider = format!(
        "[[web.oidc]]\nname = \"mock\"\nkind = \"oidc\"\nlabel = \"Mock IdP\"\nissuer = \"{}\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n",
        mock.issuer
    );
    let app = TestApp::start_on(
        &config_with(&[], &provider),
        tempfile::tempdir().unwrap(),
        &web,
    )
    .await;
    add_bob(&app).await;
    Some((app, mock))
}

/// Postern with the GitHub stand-in as `name = "gh"`.
async fn with_github() -> (TestApp, GitHub) {
    let github = GitHub::start("gh-client", "gh-secret").await;
    let provider = format!(
        "[[web.oidc]]\nname = \"gh\"\nkind = \"github\"\ngithub_url = \"{}\"\napi_url = \"{}\"\nclient_id = \"gh-client\"\nclient_secret = \"gh-secret\"\n",
        github.url, github.api_url
    );
    let app = TestApp::start(&config_with(&[], &provider)).await;
    add_bob(&app).await;
    (app, github)
}

/// Follows "Sign in with …": the provider's authorization URL.
async fn click(browser: &mut Browser, name: &str, next: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let page = browser
        .get(&format!("/signin/oidc/{name}?next={next}"))
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    page.location().unwrap().to_string()
}

/// The browser arriving back at Postern from the provider.
async fn arrive(app: &TestApp, browser: &mut Browser, location: &str) -> Page {
    let path = location
        .strip_prefix(&app.url(""))
        .unwrap_or_else(|| panic!("the provider sends the browser back to Postern: {location}"));
    browser.get(path).await
}

async fn audit(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/audit?limit=50").await["entries"]
        .as_array()
        .unwrap()
        .clone()
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn assert_refused(page: &Page, status: u16, message: &str) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(
        page.body.contains(message),
        "{message:?} not in:\n{}",
        page.body
    );
    assert!(
        page.body
            .contains("<form method=\"post\" action=\"/signin\">"),
        "the sign-in page again"
    );
}

#[tokio::test]
async fn a_verified_email_signs_in_its_user() {
    let Some((app, mock)) = with_mock().await else {
        return;
    };
    mock.set_user(
        "bob-sub",
        json!({"email": "Bob@Postern.TEST", "email_verified": true}),
    )
    .await;
    let mut browser = app.browser();

    let signin = browser.get("/signin").await;
    assert!(
        signin
            .body
            .contains("<a href=\"/signin/oidc/mock?next=%2F\">Sign in with Mock IdP</a>"),
        "{}",
        signin.body
    );

    let authorize = click(&mut browser, "mock", "/about").await;
    assert!(
        authorize.starts_with(&format!("{}/oauth2/authorize?", mock.issuer)),
        "{authorize}"
    );
    let redirect_uri = format!("{}/signin/oidc/mock/callback", app.url(""));
    assert_eq!(param(&authorize, "redirect_uri"), Some(redirect_uri));
    assert_eq!(param(&authorize, "scope").as_deref(), Some("openid email"));
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(param(&authorize, "code_challenge").is_some_and(|c| c.len() == 43));
    assert!(param(&authorize, "nonce").is_some_and(|n| n.len() >= 32));
    assert!(param(&authorize, "state").is_some_and(|s| s.len() >= 16));
    let cookie = browser
        .cookie("postern_oidc")
        .expect("the binding cookie")
        .to_string();
    assert!(
        !authorize.contains(&cookie),
        "the cookie's token goes nowhere else"
    );

    let back = mock.authorize(&authorize, "bob-sub").await;
    let done = arrive(&app, &mut browser, &back).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/about"));
    assert!(
        browser.cookie("postern_oidc").is_none(),
        "the binding cookie is cleared"
    );
    let about = browser.get("/about").await;
    assert_eq!(about.status, 200);
    assert!(about.body.contains(BOB), "signed in as bob");
    assert_eq!(browser.get("/").await.status, 200);

    // The same answer again (a replayed or bookmarked callback) finds nothing to finish.
    let mut replay = app.browser();
    replay.set_cookie("postern_oidc", &cookie);
    let again = arrive(&app, &mut replay, &back).await;
    assert_refused(
        &again,
        400,
        "was not started in this browser, or was finished already",
    );
    assert!(replay.cookie("postern_session").is_none());

    let rows = audit(&app).await;
    let success = rows.iter().find(|r| r["action"] == "signin").unwrap();
    assert_eq!(success["actor"], BOB);
    assert_eq!(success["detail"], "oidc mock");
    assert_eq!(success["ip"], "127.0.0.1");
    assert_eq!(rows[0]["action"], "signin_failed");
    assert_eq!(rows[0]["detail"], "oidc mock: not started in this browser");
}

#[tokio::test]
async fn totp_is_still_asked_for() {
    let Some((app, mock)) = with_mock().await else {
        return;
    };
    let mut enrolling = app.browser();
    enrolling.sign_in(BOB, BOB_PASSWORD).await;
    let (totp, _) = crate::accounts::enrol_totp(&app, &mut enrolling).await;
    app.clock.advance(Duration::from_secs(90));

    mock.set_user("bob-sub", json!({"email": BOB, "email_verified": true}))
        .await;
    let mut browser = app.browser();
    let authorize = click(&mut browser, "mock", "/about").await;
    let back = mock.authorize(&authorize, "bob-sub").await;
    let first = arrive(&app, &mut browser, &back).await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.location(), Some("/signin/totp?next=%2Fabout"));
    assert_eq!(
        browser.get("/").await.status,
        303,
        "half signed in is not signed in"
    );

    let form = browser.get("/signin/totp?next=%2Fabout").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let code = totp.generate(app.clock.unix() as u64).to_string();
    let done = browser
        .post_form(
            "/signin/totp",
            &[
                ("csrf_token", &form.csrf_token()),
                ("code", &code),
                ("next", "/about"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/about"));
    assert_eq!(browser.get("/").await.status, 200);
    let rows = audit(&app).await;
    assert_eq!(rows[0]["action"], "signin");
    assert_eq!(rows[0]["actor"], BOB);
    assert_eq!(rows[0]["detail"], "oidc mock + TOTP");
}

#[tokio::test]
async fn unverified_and_unknown_emails_are_refused() {
    let Some((app, mock)) = with_mock().await else {
        return;
    };
    mock.set_user("unverified", json!({"email": BOB, "email_verified": false}))
        .await;
    mock.set_user(
        "stranger",
        json!({"email": "nobody@postern.test", "email_verified": true}),
    )
    .await;
    mock.set_user("no-email", json!({"name": "No Email"})).await;

    let attempt = |sub: &'static str| {
        let (app, mock) = (&app, &mock);
        async move {
            let mut browser = app.browser();
            let authorize = click(&mut browser, "mock", "/").await;
            let back = mock.authorize(&authorize, sub).await;
            let page = arrive(app, &mut browser, &back).await;
            assert!(
                browser.cookie("postern_session").is_none(),
                "{sub} got a session"
            );
            page
        }
    };
    assert_refused(
        &attempt("unverified").await,
        403,
        "Mock IdP has not verified your email address bob@postern.test; verify it there first.",
    );
    assert_refused(
        &attempt("stranger").await,
        403,
        "There is no Postern user with the email nobody@postern.test; ask an admin to add you.",
    );
    assert_refused(
        &attempt("no-email").await,
        403,
        "Mock IdP did not tell us an email address.",
    );

    let rows = audit(&app).await;
    let failed: Vec<(Value, Value)> = rows
        .iter()
        .take(3)
        .map(|r| {
            assert_eq!(r["action"], "signin_failed");
            assert_eq!(r["actor"], "anonymous");
            (r["subject"].clone(), r["detail"].clone())
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (Value::Null, json!("oidc mock: no email")),
            (
                json!("nobody@postern.test"),
                json!("oidc mock: unknown account")
            ),
            (json!(BOB), json!("oidc mock: email not verified")),
        ]
    );
    assert!(!rows.iter().any(|r| r["action"] == "signin"));
}

#[tokio::test]
async fn the_answer_must_carry_this_browsers_state() {
    let Some((app, mock)) = with_mock().await else {
        return;
    };
    mock.set_user("bob-sub", json!({"email": BOB, "email_verified": true}))
        .await;

    // Another state than the one sent.
    let mut browser = app.browser();
    let authorize = click(&mut browser, "mock", "/").await;
    let back = mock.authorize(&authorize, "bob-sub").await;
    let state = param(&back, "state").unwrap();
    let forged = back.replace(&format!("state={state}"), "state=forged");
    assert_ne!(forged, back);
    let page = arrive(&app, &mut browser, &forged).await;
    assert_refused(
        &page,
        400,
        "does not belong to the sign-in this browser started",
    );
    // That sign-in is used up: the genuine answer does not work after a forged one.
    let page = arrive(&app, &mut browser, &back).await;
    assert_refused(&page, 400, "was not started in this browser");

    // No state at all.
    let authorize = click(&mut browser, "mock", "/").await;
    let back = mock.authorize(&authorize, "bob-sub").await;
    let stripped = back.replace(&format!("state={}", param(&back, "state").unwrap()), "");
    assert_refused(
        &arrive(&app, &mut browser, &stripped).await,
        400,
        "does not belong",
    );

    // The right answer in another browser (a login CSRF: an attacker's code in a victim's
    // browser) is refused: the sign-in is bound to the browser that started it.
    let mut attacker = app.browser();
    let authorize = click(&mut attacker, "mock", "/").await;
    let back = mock.authorize(&authorize, "bob-sub").await;
    let mut victim = app.browser();
    let page = arrive(&app, &mut victim, &back).await;
    assert_refused(&page, 400, "was not started in this browser");
    assert!(victim.cookie("postern_session").is_none());

    let rows = audit(&app).await;
    let details: Vec<&str> = rows
        .iter()
        .take(4)
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "oidc mock: not started in this browser",
            "oidc mock: state mismatch",
            "oidc mock: not started in this browser",
            "oidc mock: state mismatch",
        ]
    );
}

#[tokio::test]
async fn an_unfinished_sign_in_expires_after_ten_minutes() {
    let Some((app, mock)) = with_mock().await else {
        return;
    };
    mock.set_user("bob-sub", json!({"email": BOB, "email_verified": true}))
        .await;
    let mut browser = app.browser();
    let authorize = click(&mut browser, "mock", "/").await;
    let back = mock.authorize(&authorize, "bob-sub").await;
    app.clock.advance(Duration::from_secs(10 * 60));
    let page = arrive(&app, &mut browser, &back).await;
    assert_refused(
        &page,
        400,
        "This sign-in took longer than 10 minutes; start again.",
    );
    assert!(browser.cookie("postern_session").is_none());
    assert_eq!(audit(&app).await[0]["detail"], "oidc mock: expired");

    // Just under ten minutes is fine.
    let authorize = click(&mut browser, "mock", "/").await;
    let back = mock.authorize(&authorize, "bob-sub").await;
    app.clock.advance(Duration::from_secs(10 * 60 - 1));
    assert_eq!(arrive(&app, &mut browser, &back).await.status, 303);
}

#[tokio::test]
async fn a_provider_that_is_down_is_a_clear_error() {
    // Down from the start: nothing listens on the issuer's port.
    let provider = format!(
        "[[web.oidc]]\nname = \"down\"\nkind = \"oidc\"\nlabel = \"Corp SSO\"\nissuer = \"http://127.0.0.1:{}\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
        free_port()
    );
    let app = TestApp::start(&config_with(&[], &provider)).await;
    let mut browser = app.browser();
    let page = browser.get("/signin/oidc/down").await;
    assert_refused(
        &page,
        502,
        "Corp SSO could not be used: its discovery document: could not connect; try again later.",
    );
    assert!(browser.cookie("postern_oidc").is_none());
    let rows = audit(&app).await;
    assert_eq!(rows[0]["action"], "signin_failed");
    assert_eq!(
        rows[0]["detail"],
        "oidc down: provider error: its discovery document: could not connect"
    );
    let unknown = browser.get("/signin/oidc/nope").await;
    assert_refused(
        &unknown,
        404,
        "There is no sign-in provider &quot;nope&quot;.",
    );

    // Down in the middle: between the authorization and the token request.
    let Some((app, mock)) = with_mock().await else {
        return;
    };
    mock.set_user("bob-sub", json!({"email": BOB, "email_verified": true}))
        .await;
    let mut browser = app.browser();
    let authorize = click(&mut browser, "mock", "/").await;
    let back = mock.authorize(&authorize, "bob-sub").await;
    mock.stop().await;
    let page = arrive(&app, &mut browser, &back).await;
    assert_refused(
        &page,
        502,
        "Mock IdP could not be used: its token endpoint could not connect; try again later.",
    );
    assert!(browser.cookie("postern_session").is_none());
}

#[tokio::test]
async fn github_signs_in_by_a_verified_email_with_pkce() {
    let (app, github) = with_github().await;
    let mut browser = app.browser();
    let signin = browser.get("/signin").await;
    assert!(
        signin.body.contains(">Sign in with GitHub</a>"),
        "{}",
        signin.body
    );

    // Primary but unverified, a verified one nobody has, then bob's (verified, not primary).
    github.set_emails(json!([
        {"email": "bob@old.example", "primary": true, "verified": false, "visibility": "private"},
        {"email": "other@example.com", "primary": false, "verified": true, "visibility": null},
        {"email": "BOB@postern.test", "primary": false, "verified": true, "visibility": null},
    ]));
    let authorize = click(&mut browser, "gh", "/").await;
    assert!(authorize.starts_with(&format!("{}/login/oauth/authorize?", github.url)));
    let back = github_grants(&authorize).await;
    let done = arrive(&app, &mut browser, &back).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/"));
    assert!(browser.get("/about").await.body.contains(BOB));

    let grants = github.grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].scope, "read:user user:email");
    assert_eq!(grants[0].challenge_method, "S256");
    assert_eq!(
        grants[0].redirect_uri,
        format!("{}/signin/oidc/gh/callback", app.url(""))
    );
    let rows = audit(&app).await;
    assert_eq!(
        (&rows[0]["action"], &rows[0]["actor"]),
        (&json!("signin"), &json!(BOB))
    );
    assert_eq!(rows[0]["detail"], "oidc gh");

    // Only unverified emails: refused, naming the primary one.
    github.set_emails(json!([
        {"email": "bob@postern.test", "primary": true, "verified": false},
    ]));
    let mut browser = app.browser();
    let authorize = click(&mut browser, "gh", "/").await;
    let back = github_grants(&authorize).await;
    let page = arrive(&app, &mut browser, &back).await;
    assert_refused(
        &page,
        403,
        "GitHub has not verified your email address bob@postern.test; verify it there first.",
    );

    // The user said no at GitHub.
    let authorize = click(&mut browser, "gh", "/").await;
    let state = param(&authorize, "state").unwrap();
    let denied = format!(
        "{}/signin/oidc/gh/callback?error=access_denied&error_description=The+user+has+denied+your+application+access.&state={state}",
        app.url("")
    );
    let page = arrive(&app, &mut browser, &denied).await;
    assert_refused(
        &page,
        401,
        "GitHub did not sign you in (access_denied: The user has denied your application access.).",
    );

    // A code that was used already (GitHub says so with HTTP 200 and an `error` field).
    let authorize = click(&mut browser, "gh", "/").await;
    let state = param(&authorize, "state").unwrap();
    let reused = format!(
        "{}/signin/oidc/gh/callback?code=code-0&state={state}",
        app.url("")
    );
    let page = arrive(&app, &mut browser, &reused).await;
    assert_refused(
        &page,
        502,
        "GitHub could not be used: it refused the code (bad_verification_code); try again later.",
    );
}

/// GitHub's authorization page, as for a user signed in there: where it sends the browser.
async fn github_grants(authorize: &str) -> String {
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorize)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    answer.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_one_time_password_must_still_be_replaced() {
    let (app, github) = with_github().await;
    let (user, _) = app
        .accounts
        .create_user(
            "new@postern.test",
            Role::Viewer,
            NewPassword::Generate,
            &Actor::Cli,
        )
        .await
        .unwrap();
    assert!(user.password_change_required);
    github.set_emails(json!([{"email": "new@postern.test", "primary": true, "verified": true}]));
    let mut browser = app.browser();
    let authorize = click(&mut browser, "gh", "/").await;
    let done = arrive(&app, &mut browser, &github_grants(&authorize).await).await;
    assert_eq!(done.status, 303, "{}", done.body);
    // Signed in, but the generated password would stay usable: it is replaced first.
    let home = browser.get("/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), Some("/account/password"));
    assert_eq!(browser.get("/account/password").await.status, 200);
}

#[tokio::test]
async fn without_public_url_the_callback_follows_a_loopback_host_only() {
    let (app, github) = with_github().await;
    let port = app.web.port();
    let mut browser = app.browser();
    let localhost = format!("localhost:{port}");
    let page = browser
        .request(
            reqwest::Method::GET,
            "/signin/oidc/gh",
            &[("host", &localhost)],
            None,
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        param(page.location().unwrap(), "redirect_uri"),
        Some(format!("http://localhost:{port}/signin/oidc/gh/callback"))
    );
    let page = browser
        .request(
            reqwest::Method::GET,
            "/signin/oidc/gh",
            &[("host", "postern.example.com")],
            None,
        )
        .await;
    // A foreign Host never reaches the sign-in routes on a loopback listener (web::host).
    assert_eq!(page.status, 421, "{}", page.body);
    assert!(page.body.contains("web.public_url"), "{}", page.body);
    assert_eq!(github.grants().len(), 0);
}

#[tokio::test]
async fn failures_are_throttled_by_address() {
    let (app, _github) = with_github().await;
    let mut browser = app.browser();
    for _ in 0..postern::accounts::IP_FAILURES {
        let page = browser.get("/signin/oidc/gh/callback?code=x&state=y").await;
        assert_eq!(page.status, 400, "{}", page.body);
    }
    let page = browser.get("/signin/oidc/gh/callback?code=x&state=y").await;
    assert_refused(&page, 429, "Too many failed sign-ins");
    assert!(page.header("retry-after").is_some());
    let start = browser.get("/signin/oidc/gh").await;
    assert_eq!(start.status, 429, "{}", start.body);
    // The same address's password sign-ins are throttled too: it is one budget.
    let password = browser.submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(password.status, 429);
    app.clock.advance(postern::accounts::THROTTLE_WINDOW);
    assert_eq!(browser.get("/signin/oidc/gh").await.status, 303);
}

#[tokio::test]
async fn settings_list_the_providers_without_secrets() {
    let (app, _github) = with_github().await;
    let mut admin = app.admin_browser().await;
    let page = admin.get("/settings").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<table id=\"sign-in-providers\">"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<tr><td>gh</td><td>Sign in with GitHub</td><td>GitHub at http://127.0.0.1:"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<td>gh-client</td>"));
    assert!(!page.body.contains("gh-secret"));
}
