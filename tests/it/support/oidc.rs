//! Identity providers on loopback for the sign-in tests: a real OpenID Connect provider
//! (PyPI `oidc-provider-mock`, run as a subprocess with client registration and nonces
//! required), and a stand-in for GitHub (the public service cannot run here) that checks
//! what GitHub checks: the client secret, the code, the redirect URL and the PKCE verifier.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

use super::free_port;

/// `oidc-provider-mock` on a loopback port.
pub struct OidcMock {
    /// `http://127.0.0.1:PORT`, as its discovery document names it.
    pub issuer: String,
    child: Child,
    http: reqwest::Client,
}

fn oidc_required() -> bool {
    std::env::var_os("TEST_OIDC").is_some_and(|v| v == "required")
}

impl OidcMock {
    /// Starts the provider; `None` (after saying so) if the package is not installed and
    /// `TEST_OIDC` is not `required`.
    pub async fn start() -> Option<OidcMock> {
        let installed = Command::new("python3")
            .args(["-c", "import oidc_provider_mock"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                !oidc_required(),
                "TEST_OIDC=required but oidc-provider-mock is missing: python3 -m pip install oidc-provider-mock==0.3.4"
            );
            super::skipped(
                "oidc-provider-mock is not installed (python3 -m pip install oidc-provider-mock==0.3.4; TEST_OIDC=required makes this a failure)",
            );
            return None;
        }
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--require-registration", "--require-nonce"])
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mock = OidcMock {
            issuer: format!("http://127.0.0.1:{port}"),
            child,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        let discovery = format!("{}/.well-known/openid-configuration", mock.issuer);
        for _ in 0..200 {
            if let Ok(answer) = mock.http.get(&discovery).send().await
                && answer.status().is_success()
            {
                return Some(mock);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oidc-provider-mock did not answer on {discovery} within 20 s");
    }

    /// Registers a client for `redirect_url`: its (id, secret).
    pub async fn register(&self, redirect_url: &str) -> (String, String) {
        let answer: Value = self
            .http
            .post(format!("{}/oauth2/clients", self.issuer))
            .json(&json!({
                "redirect_uris": [redirect_url],
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            answer["client_id"].as_str().unwrap().to_string(),
            answer["client_secret"].as_str().unwrap().to_string(),
        )
    }

    /// Defines the user `sub` with these claims (`email`, `email_verified`, …).
    pub async fn set_user(&self, sub: &str, claims: Value) {
        let answer = self
            .http
            .put(format!("{}/users/{sub}", self.issuer))
            .json(&claims)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204, "{}", answer.text().await.unwrap());
    }

    /// What the user does at the provider: signs in as `sub` on the authorization page the
    /// browser was sent to. Returns where the provider sends the browser next.
    pub async fn authorize(&self, authorize_url: &str, sub: &str) -> String {
        let page = self.http.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
        let answer = self
            .http
            .post(authorize_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("sub", sub)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 302, "{}", answer.text().await.unwrap());
        answer.headers()["location"].to_str().unwrap().to_string()
    }

    /// Stops the provider (for "provider down" cases).
    pub async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// One authorization the GitHub stand-in granted.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub challenge: String,
    pub challenge_method: String,
}

#[derive(Default)]
struct GitHubState {
    client_id: String,
    client_secret: String,
    emails: Value,
    grants: HashMap<String, Grant>,
    tokens: Vec<String>,
    /// Every grant, for the tests to look at.
    seen: Vec<Grant>,
}

/// A GitHub-shaped OAuth server: `/login/oauth/authorize` (grants at once, as for a user
/// signed in there), `/login/oauth/access_token`, `/api/user/emails`.
pub struct GitHub {
    pub url: String,
    pub api_url: String,
    state: Arc<Mutex<GitHubState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GitHub {
    pub async fn start(client_id: &str, client_secret: &str) -> GitHub {
        let state = Arc::new(Mutex::new(GitHubState {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            emails: json!([]),
            ..GitHubState::default()
        }));
        let app = Router::new()
            .route("/login/oauth/authorize", get(github_authorize))
            .route("/login/oauth/access_token", post(github_token))
            .route("/api/user/emails", get(github_emails))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GitHub {
            url: format!("http://{addr}"),
            api_url: format!("http://{addr}/api"),
            state,
            task,
        }
    }

    /// What `/user/emails` answers from now on.
    pub fn set_emails(&self, emails: Value) {
        self.state.lock().unwrap().emails = emails;
    }

    pub fn grants(&self) -> Vec<Grant> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn github_authorize(
    State(state): State<Arc<Mutex<GitHubState>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    let grant = Grant {
        client_id: field("client_id"),
        redirect_uri: field("redirect_uri"),
        scope: field("scope"),
        challenge: field("code_challenge"),
        challenge_method: field("code_challenge_method"),
    };
    let mut state = state.lock().unwrap();
    if grant.client_id != state.client_id {
        return (StatusCode::NOT_FOUND, "unknown client").into_response();
    }
    let code = format!("code-{}", state.seen.len());
    state.seen.push(grant.clone());
    state.grants.insert(code.clone(), grant.clone());
    let to = format!(
        "{}?{}",
        grant.redirect_uri,
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &field("state"))
            .finish()
    );
    Redirect::to(&to).into_response()
}

/// GitHub answers errors here with 200 and an `error` field.
async fn github_token(
    State(state): State<Arc<Mutex<GitHubState>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let mut state = state.lock().unwrap();
    assert_eq!(
        headers.get("accept").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    if field("client_id") != state.client_id || field("client_secret") != state.client_secret {
        return Json(json!({"error": "incorrect_client_credentials"}));
    }
    let Some(grant) = state.grants.remove(&field("code")) else {
        return Json(json!({"error": "bad_verification_code"}));
    };
    let verifier_digest = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if grant.challenge_method != "S256" || verifier_digest != grant.challenge {
        return Json(json!({"error": "bad_verification_code", "error_description": "PKCE"}));
    }
    if field("redirect_uri") != grant.redirect_uri {
        return Json(json!({"error": "redirect_uri_mismatch"}));
    }
    let token = format!("gho_{}", state.tokens.len() + 1);
    state.tokens.push(token.clone());
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}))
}

async fn github_emails(
    State(state): State<Arc<Mutex<GitHubState>>>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().unwrap();
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let user_agent = headers.get("user-agent").and_then(|v| v.to_str().ok());
    if !user_agent.is_some_and(|ua| ua.starts_with("Postern/")) {
        return (StatusCode::FORBIDDEN, "GitHub requires a User-Agent").into_response();
    }
    if !state.tokens.iter().any(|t| t == presented) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    Json(state.emails.clone()).into_response()
}
