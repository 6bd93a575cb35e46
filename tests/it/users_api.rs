//! Users over the JSON API (`POST /api/users`, `PATCH|DELETE /api/users/{id}`,
//! `POST /api/users/{id}/reset-totp`) against the real server: the answers, the same rules as
//! the `/users` page (the last admin stays), who may call them, and the audit rows.

use reqwest::Method;
use serde_json::{Value, json};

use crate::accounts::enrol_totp;
use crate::support::{ADMIN_EMAIL, TestApp, config_with};

async fn serve() -> TestApp {
    TestApp::start(&config_with(&[], "")).await
}

async fn user_json(app: &TestApp, email: &str) -> Option<Value> {
    let users = app.get_json("/api/users").await;
    users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .cloned()
}

async fn audit(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/audit?limit=500").await["entries"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_admin_key_creates_users_with_a_one_time_or_a_given_password() {
    let app = serve().await;
    let key = app.api_key.clone();

    // No password: a generated one, in this answer only, to be replaced at first sign-in.
    let (status, created) = app
        .call(
            &key,
            Method::POST,
            "/api/users",
            Some(json!({"email": " New@Postern.test", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let user = &created["user"];
    assert_eq!(user["email"], "new@postern.test");
    assert_eq!(user["role"], "viewer");
    assert_eq!(user["password_change_required"], true);
    assert_eq!(user["totp_enabled"], false);
    assert!(user["id"].is_i64());
    let one_time = created["password"].as_str().unwrap().to_string();
    assert_eq!(one_time.len(), 23, "{one_time}");
    assert_eq!(
        user_json(&app, "new@postern.test").await.as_ref(),
        Some(user)
    );
    let listed = app.get("/api/users").await.text().await.unwrap();
    assert!(!listed.contains(&one_time), "the password is shown once");

    let mut browser = app.browser();
    browser.sign_in("new@postern.test", &one_time).await;
    assert_eq!(browser.get("/").await.location(), Some("/account/password"));

    // A given password: no password in the answer, nothing to replace.
    let (status, created) = app.call(&key,
        Method::POST,
        "/api/users",
        Some(json!({"email": "ops@postern.test", "role": "admin", "password": "a chosen passphrase"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["user"]["role"], "admin");
    assert_eq!(created["user"]["password_change_required"], false);
    assert_eq!(created.as_object().unwrap().len(), 1, "{created}");
    let mut ops = app.browser();
    ops.sign_in("ops@postern.test", "a chosen passphrase").await;
    assert_eq!(ops.get("/").await.status, 200);

    // The page's and the CLI's rules, as JSON errors.
    for (body, status, field) in [
        (
            json!({"email": "ops@postern.test", "role": "viewer"}),
            409,
            None,
        ),
        (
            json!({"email": "OPS@postern.test ", "role": "viewer"}),
            409,
            None,
        ),
        (
            json!({"email": "not an email", "role": "viewer"}),
            422,
            Some("email"),
        ),
        (
            json!({"email": "x@postern.test", "role": "owner"}),
            422,
            Some("role"),
        ),
        (
            json!({"email": "x@postern.test", "role": "viewer", "password": "short"}),
            422,
            Some("password"),
        ),
        (json!({"email": "x@postern.test"}), 400, None),
        (
            json!({"email": "x@postern.test", "role": "viewer", "admin": true}),
            400,
            None,
        ),
    ] {
        let (got, answer) = app
            .call(&key, Method::POST, "/api/users", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["status"], status, "{answer}");
        match field {
            Some(field) => assert_eq!(answer["field"], field, "{answer}"),
            None => assert!(answer.get("field").is_none(), "{answer}"),
        }
    }
    assert!(user_json(&app, "x@postern.test").await.is_none());

    let entries = audit(&app).await;
    let created: Vec<(&Value, &Value, &Value)> = entries
        .iter()
        .filter(|e| e["action"] == "user_created" && e["actor"] == "api key tests")
        .map(|e| (&e["subject"], &e["detail"], &e["actor"]))
        .collect();
    assert_eq!(
        created,
        [
            (
                &json!("ops@postern.test"),
                &json!("role admin"),
                &json!("api key tests")
            ),
            (
                &json!("new@postern.test"),
                &json!("role viewer"),
                &json!("api key tests")
            ),
        ]
    );
}

#[tokio::test]
async fn roles_change_and_users_go_but_the_last_admin_stays() {
    let app = serve().await;
    let key = app.api_key.clone();
    let admin_id = user_json(&app, ADMIN_EMAIL).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let (_, created) = app.call(&key,
        Method::POST,
        "/api/users",
        Some(json!({"email": "second@postern.test", "role": "viewer", "password": "second password here"})),
    )
    .await;
    let second_id = created["user"]["id"].as_i64().unwrap();

    // The only admin can be neither made a viewer nor deleted.
    let (status, answer) = app
        .call(
            &key,
            Method::PATCH,
            &format!("/api/users/{admin_id}"),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("only admin"));
    let (status, _) = app
        .call(
            &key,
            Method::DELETE,
            &format!("/api/users/{admin_id}"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(user_json(&app, ADMIN_EMAIL).await.unwrap()["role"], "admin");

    // With a second admin, both work; the answer is the changed user.
    let (status, answer) = app
        .call(
            &key,
            Method::PATCH,
            &format!("/api/users/{second_id}"),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user"]["role"], "admin");
    assert_eq!(answer["user"]["email"], "second@postern.test");
    let (status, answer) = app
        .call(
            &key,
            Method::PATCH,
            &format!("/api/users/{admin_id}"),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user"]["role"], "viewer");
    // Now `second` is the only admin.
    let (status, _) = app
        .call(
            &key,
            Method::DELETE,
            &format!("/api/users/{second_id}"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (status, answer) = app
        .call(
            &key,
            Method::DELETE,
            &format!("/api/users/{admin_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    assert!(user_json(&app, ADMIN_EMAIL).await.is_none());

    // Unknown ids, non-numeric ids and bad bodies.
    for (method, path, body, status) in [
        (Method::DELETE, format!("/api/users/{admin_id}"), None, 404),
        (
            Method::PATCH,
            format!("/api/users/{admin_id}"),
            Some(json!({"role": "admin"})),
            404,
        ),
        (
            Method::POST,
            format!("/api/users/{admin_id}/reset-totp"),
            None,
            404,
        ),
        (Method::DELETE, "/api/users/abc".to_string(), None, 400),
        (
            Method::PATCH,
            format!("/api/users/{second_id}"),
            Some(json!({"role": "root"})),
            422,
        ),
        (
            Method::PATCH,
            format!("/api/users/{second_id}"),
            Some(json!({"email": "other@postern.test"})),
            400,
        ),
    ] {
        let (got, answer) = app.call(&key, method.clone(), &path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_eq!(answer["status"], status, "{answer}");
    }

    let entries = audit(&app).await;
    let actions: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|e| e["actor"] == "api key tests")
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("user_deleted", ADMIN_EMAIL, ""),
            ("role_changed", ADMIN_EMAIL, "role viewer"),
            ("role_changed", "second@postern.test", "role admin"),
            ("user_created", "second@postern.test", "role viewer"),
        ]
    );
}

#[tokio::test]
async fn reset_totp_turns_it_off_and_ends_the_users_sessions() {
    let app = serve().await;
    let (_, created) = app.call(&app.api_key,
        Method::POST,
        "/api/users",
        Some(json!({"email": "phone@postern.test", "role": "viewer", "password": "lost my phone today"})),
    )
    .await;
    let id = created["user"]["id"].as_i64().unwrap();
    let mut browser = app.browser();
    browser
        .sign_in("phone@postern.test", "lost my phone today")
        .await;
    enrol_totp(&app, &mut browser).await;
    assert_eq!(
        user_json(&app, "phone@postern.test").await.unwrap()["totp_enabled"],
        true
    );
    assert_eq!(browser.get("/").await.status, 200);

    let (status, answer) = app
        .call(
            &app.api_key,
            Method::POST,
            &format!("/api/users/{id}/reset-totp"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(
        user_json(&app, "phone@postern.test").await.unwrap()["totp_enabled"],
        false
    );
    assert_eq!(browser.get("/").await.status, 303, "signed out");
    let entries = audit(&app).await;
    assert_eq!(entries[0]["action"], "totp_reset");
    assert_eq!(entries[0]["subject"], "phone@postern.test");
    assert_eq!(entries[0]["actor"], "api key tests");
}

#[tokio::test]
async fn only_admins_change_users_and_sessions_need_the_csrf_header() {
    let app = serve().await;
    let (_, created) = app.call(&app.api_key,
        Method::POST,
        "/api/users",
        Some(json!({"email": "viewer@postern.test", "role": "viewer", "password": "viewer password here"})),
    )
    .await;
    let viewer_id = created["user"]["id"].as_i64().unwrap();
    let viewer_key = app
        .accounts
        .create_api_key(
            "read only",
            postern::accounts::Role::Viewer,
            &postern::accounts::Actor::Cli,
        )
        .await
        .unwrap()
        .1;

    let writes = [
        (
            Method::POST,
            "/api/users".to_string(),
            Some(json!({"email": "x@postern.test", "role": "admin"})),
        ),
        (
            Method::PATCH,
            format!("/api/users/{viewer_id}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::POST,
            format!("/api/users/{viewer_id}/reset-totp"),
            None,
        ),
        (Method::DELETE, format!("/api/users/{viewer_id}"), None),
    ];
    // A viewer key reads the list and writes nothing.
    assert_eq!(
        app.call(&viewer_key, Method::GET, "/api/users", None)
            .await
            .0,
        200
    );
    for (method, path, body) in &writes {
        let (status, answer) = app
            .call(&viewer_key, method.clone(), path, body.clone())
            .await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "viewers have read-only access");
    }
    // So does a viewer's session, CSRF header or not.
    let mut viewer = app.browser();
    viewer
        .sign_in("viewer@postern.test", "viewer password here")
        .await;
    let csrf = viewer.session_csrf().await;
    for (method, path, body) in &writes {
        let answer = viewer
            .request(
                method.clone(),
                path,
                &[
                    ("content-type", "application/json"),
                    ("x-csrf-token", &csrf),
                ],
                body.as_ref().map(Value::to_string),
            )
            .await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
    }
    // An admin's session needs the CSRF header, then works.
    let mut admin = app.admin_browser().await;
    let body = json!({"email": "fromsession@postern.test", "role": "viewer"}).to_string();
    let refused = admin
        .request(
            Method::POST,
            "/api/users",
            &[("content-type", "application/json")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["error"], "missing or invalid CSRF token");
    let csrf = admin.session_csrf().await;
    let made = admin
        .request(
            Method::POST,
            "/api/users",
            &[
                ("content-type", "application/json"),
                ("x-csrf-token", &csrf),
            ],
            Some(body),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(audit(&app).await[0]["actor"], ADMIN_EMAIL);
    // Nothing the refused requests asked for happened.
    assert!(user_json(&app, "x@postern.test").await.is_none());
    assert_eq!(
        user_json(&app, "viewer@postern.test").await.unwrap()["role"],
        "viewer"
    );
}
