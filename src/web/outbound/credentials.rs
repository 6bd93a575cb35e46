//! SMTP credentials: `GET /credentials` (admins also get the form and revoke buttons),
//! `POST /credentials` (admin: the token is on the answer page, once, with the SMTP URL and
//! the API base URL), `POST /credentials/{username}/revoke`; and as JSON
//! `GET /api/credentials`, `POST /api/credentials` (admin; the token is in this answer only)
//! and `DELETE /api/credentials/{username}` (admin).
//!
//! Pages and JSON change credentials through the helpers here: the same `Outbound` calls as
//! `postern credential`, plus an audit row. Events URLs are shown with their userinfo masked.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::{AuditAction, Client, Role};
use crate::outbound::{Credential, CredentialError, NewCredentialSpec};
use crate::store::CredentialMode;
use crate::web::AppState;
use crate::web::auth::{self, Principal};
use crate::web::error::ApiError;
use crate::web::ui::form::{self, FormPage, Refused, Submission};
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/credentials",
            get(form::show::<CredentialsPage>).post(form::submit::<CredentialsPage>),
        )
        .route("/credentials/{username}/revoke", post(revoke_credential))
        .route(
            "/api/credentials",
            get(api_list_credentials).post(api_create_credential),
        )
        .route("/api/credentials/{username}", delete(api_revoke_credential))
}

// The pages.

/// What the credential form sends; checkboxes are present when ticked.
#[derive(Debug, Default, Deserialize)]
struct CredentialForm {
    #[serde(default)]
    username: String,
    test: Option<String>,
    /// Sender patterns, separated by commas, spaces or new lines.
    #[serde(default)]
    senders: String,
    #[serde(default)]
    events_url: String,
    track_opens: Option<String>,
    track_clicks: Option<String>,
}

fn credential_row(principal: &Principal, credential: &CredentialView) -> Html {
    let state = match credential.revoked_at {
        Some(at) => html!("revoked {}", ui::unix_time(at)),
        None => Html::trusted("active"),
    };
    let action = if principal.role() == Role::Admin && credential.revoked_at.is_none() {
        html!(
            concat!(
                "<form method=\"post\" action=\"/credentials/{username}/revoke\" data-confirm=\"Revoke this credential? Apps using it can no longer send.\">{csrf}",
                "<button type=\"submit\">Revoke</button></form>"
            ),
            username = Html::escape(&credential.username),
            csrf = ui::csrf(principal),
        )
    } else {
        Html::new()
    };
    let senders = if credential.allowed_senders.is_empty() {
        Html::trusted("any")
    } else {
        Html::join(
            credential.allowed_senders.iter().map(|s| Html::escape(s)),
            "<br>",
        )
    };
    let on_off = |on: bool| if on { "on" } else { "off" };
    html!(
        concat!(
            "<tr><td>{username}</td><td>{mode}</td><td><code>{prefix}…</code></td><td>{senders}</td>",
            "<td class=\"mono\">{events}</td><td>opens {opens}, clicks {clicks}</td><td>{created}</td>",
            "<td>{used}</td><td>{state}</td><td>{action}</td></tr>\n",
        ),
        username = Html::escape(&credential.username),
        mode = credential.mode.as_str(),
        prefix = Html::escape(&credential.prefix),
        senders = senders,
        events = ui::or_dash(credential.events_url.as_deref()),
        opens = on_off(credential.track_opens),
        clicks = on_off(credential.track_clicks),
        created = ui::unix_time(credential.created_at),
        used = credential
            .last_used_at
            .map(ui::unix_time)
            .unwrap_or_else(|| Html::trusted("never")),
        state = state,
        action = action,
    )
}

/// The list, and for admins the form (with `error` above it and the fields kept).
async fn credentials_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    form: &CredentialForm,
) -> Response {
    let outbound = match super::outbound(state) {
        Ok(outbound) => outbound,
        Err(error) => return super::error_page(principal, error, ("/", "Messages")),
    };
    let credentials = match outbound.credentials().await {
        Ok(credentials) => credentials,
        Err(error) => return super::error_page(principal, error.into(), ("/", "Messages")),
    };
    let mut body = Html::trusted(
        "<p>Apps send with a credential: its username and token authenticate the send API (<code>Authorization: Bearer</code>) and SMTP submission.</p>\n",
    );
    if principal.role() == Role::Admin {
        let checked = |on: bool| if on { " checked" } else { "" };
        // A fresh form ticks both tracking boxes; a refused one keeps what was sent.
        let fresh = form.username.is_empty() && error.is_none();
        body.push(html!(
            concat!(
                "<h2>New credential</h2>\n{error}<form method=\"post\" action=\"/credentials\" class=\"filters\">{csrf}",
                "<label>Username<input name=\"username\" value=\"{username}\" required maxlength=\"64\" placeholder=\"my-app\"></label>",
                "<label>Allowed senders<input name=\"senders\" value=\"{senders}\" placeholder=\"alerts@example.com, @example.org\"></label>",
                "<label>Events URL<input name=\"events_url\" value=\"{events}\" placeholder=\"https://app.example.com/events\"></label>",
                "<label class=\"check\"><input type=\"checkbox\" name=\"test\" value=\"1\"{test}> test mode (never delivers)</label>",
                "<label class=\"check\"><input type=\"checkbox\" name=\"track_opens\" value=\"1\"{opens}> track opens</label>",
                "<label class=\"check\"><input type=\"checkbox\" name=\"track_clicks\" value=\"1\"{clicks}> track clicks</label>",
                "<button type=\"submit\">Create credential</button></form>\n",
            ),
            error = ui::error(error),
            csrf = ui::csrf(principal),
            username = Html::escape(&form.username),
            senders = Html::escape(&form.senders),
            events = Html::escape(&form.events_url),
            test = checked(form.test.is_some()),
            opens = checked(fresh || form.track_opens.is_some()),
            clicks = checked(fresh || form.track_clicks.is_some()),
        ));
    }
    body.push_trusted("<h2>Credentials</h2>\n");
    if credentials.is_empty() {
        body.push_trusted("<p>No credentials yet.</p>\n");
    } else {
        body.push_trusted(concat!(
            "<div class=\"scroll\"><table id=\"credentials\">\n<thead><tr><th>Username</th><th>Mode</th><th>Token</th>",
            "<th>Allowed senders</th><th>Events URL</th><th>Tracking</th><th>Created</th><th>Last used</th>",
            "<th>State</th><th></th></tr></thead>\n<tbody>\n",
        ));
        for credential in credentials {
            body.push(credential_row(principal, &CredentialView::from(credential)));
        }
        body.push_trusted("</tbody>\n</table></div>\n");
    }
    ui::dashboard(status, "Credentials", ui::nav(principal), body)
}

/// `/credentials`: the list and, for admins, the form to make a credential.
struct CredentialsPage;

impl FormPage for CredentialsPage {
    type Form = CredentialForm;
    const BACK: (&'static str, &'static str) = ("/credentials", "Credentials");

    async fn render(
        state: &AppState,
        principal: &Principal,
        status: StatusCode,
        refusal: Option<&str>,
        form: &CredentialForm,
    ) -> Response {
        credentials_page(state, principal, status, refusal, form).await
    }

    /// Makes the credential and shows its token, once, with where to send.
    async fn submit(sent: Submission<'_>, form: &CredentialForm) -> Result<Response, Refused> {
        let spec = NewCredentialSpec {
            username: form.username.trim().to_string(),
            test: form.test.is_some(),
            allowed_senders: form
                .senders
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            events_url: Some(form.events_url.trim().to_string()).filter(|u| !u.is_empty()),
            track_opens: Some(form.track_opens.is_some()),
            track_clicks: Some(form.track_clicks.is_some()),
        };
        let (credential, token) = create_and_audit(sent.state, sent.principal, sent.client, spec)
            .await
            .map_err(|error| super::refused(sent.principal, error, Self::BACK))?;
        let endpoints = endpoints(sent.state, sent.headers, &credential.username, &token);
        let body = html!(
            concat!(
                "<p>The credential <strong>{username}</strong> ({mode}) is made. Copy the token now: ",
                "it is shown this once and never again.</p>\n",
                "<dl>\n<dt>Username</dt><dd class=\"copy\"><code id=\"username\">{username}</code></dd>\n",
                "<dt>Token</dt><dd class=\"copy\"><code id=\"token\">{token}</code></dd>\n",
                "<dt>SMTP</dt><dd class=\"copy\"><code id=\"smtp-url\">{smtp}</code></dd>\n",
                "<dt>API base URL</dt><dd class=\"copy\"><code id=\"api-base-url\">{api}</code></dd>\n</dl>\n",
                "<p>Send with <code>POST {api}/{username}/messages</code> and ",
                "<code>Authorization: Bearer</code> the token, or with any CloudMailin client ",
                "given this base URL.</p>\n<p><a href=\"/credentials\">All credentials</a></p>",
            ),
            username = credential.username,
            mode = credential.mode.as_str(),
            token = token,
            smtp = endpoints.smtp_url,
            api = endpoints.api_base_url,
        );
        let nav = ui::nav(sent.principal);
        Ok(ui::dashboard(
            StatusCode::CREATED,
            "New credential",
            nav,
            body,
        ))
    }
}

async fn revoke_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let back = ("/credentials", "Credentials");
    let Ok(Path(username)) = path else {
        return ui::message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such credential",
            back,
        );
    };
    let client = client.map(|Extension(c)| c);
    match revoke_and_audit(&state, &principal, client.as_ref(), &username).await {
        Ok(true) => auth::redirect("/credentials"),
        Ok(false) => ui::message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such credential, or revoked already",
            back,
        ),
        Err(error) => super::error_page(&principal, error, back),
    }
}

// Shared by the pages and the JSON API.

/// `http://***@host/…` for a URL with userinfo; other text as it is.
fn mask_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_password(None);
            let _ = url.set_username("***");
            url.to_string()
        }
        _ => text.to_string(),
    }
}

/// A credential as shown: never the token, the events URL masked.
#[derive(Debug, Serialize)]
struct CredentialView {
    pub username: String,
    pub mode: CredentialMode,
    /// The token's first characters, to recognise it.
    pub prefix: String,
    pub allowed_senders: Vec<String>,
    pub events_url: Option<String>,
    pub track_opens: bool,
    pub track_clicks: bool,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339_option")]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "crate::store::unix_time::rfc3339_option")]
    pub revoked_at: Option<i64>,
}

impl From<Credential> for CredentialView {
    fn from(credential: Credential) -> CredentialView {
        CredentialView {
            username: credential.username,
            mode: credential.mode,
            prefix: credential.prefix,
            allowed_senders: credential.allowed_senders,
            events_url: credential.events_url.as_deref().map(mask_url),
            track_opens: credential.track_opens,
            track_clicks: credential.track_clicks,
            created_at: credential.created_at,
            last_used_at: credential.last_used_at,
            revoked_at: credential.revoked_at,
        }
    }
}

/// Where apps send: the send API's base URL (`web.public_url`, else the `Host` the request
/// came to) and the SMTP submission URL with the credential in it (`server.hostname`, the
/// first `[submission]` listener's port, 587 when there is none).
struct Endpoints {
    pub api_base_url: String,
    pub smtp_url: String,
}

fn endpoints(state: &AppState, headers: &HeaderMap, username: &str, token: &str) -> Endpoints {
    let base = match &state.settings.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                })
                .map(str::to_string)
                .or_else(|| state.settings.web_listen.map(|a| a.to_string()))
                .unwrap_or_else(|| state.settings.hostname.clone());
            format!("http://{host}")
        }
    };
    Endpoints {
        api_base_url: format!("{base}/api/v0.1"),
        smtp_url: format!(
            "smtp://{username}:{token}@{}:{port}?starttls=true",
            state.settings.hostname,
            port = state
                .settings
                .submission_listen
                .first()
                .map_or(587, |listener| listener.port()),
        ),
    }
}

/// Makes a credential through `Outbound` and writes the audit row.
async fn create_and_audit(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    spec: NewCredentialSpec,
) -> Result<(Credential, String), ApiError> {
    let outbound = super::outbound(state)?;
    let (credential, token) = outbound
        .create_credential(spec)
        .await
        .map_err(credential_error)?;
    let detail = format!("mode {}", credential.mode.as_str());
    state
        .accounts
        .audit(
            &principal.actor(),
            AuditAction::CredentialCreated,
            Some(&credential.username),
            client.map(|c| c.ip),
            Some(&detail),
        )
        .await?;
    Ok((credential, token))
}

/// Revokes a credential through `Outbound` and writes the audit row; false when there is
/// no live credential of that name.
async fn revoke_and_audit(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    username: &str,
) -> Result<bool, ApiError> {
    let revoked = super::outbound(state)?.revoke_credential(username).await?;
    if revoked {
        state
            .accounts
            .audit(
                &principal.actor(),
                AuditAction::CredentialRevoked,
                Some(username),
                client.map(|c| c.ip),
                None,
            )
            .await?;
    }
    Ok(revoked)
}

/// 422 naming the field; 409 for a taken username.
fn credential_error(error: CredentialError) -> ApiError {
    let field = |field: &str, error: &CredentialError| ApiError::Field {
        field: field.to_string(),
        message: error.to_string(),
        detail: format!("{field}: {error}"),
    };
    match error {
        CredentialError::BadUsername(_) => field("username", &error),
        CredentialError::BadSender(_) => field("allowed_senders", &error),
        CredentialError::BadEventsUrl(_) | CredentialError::EventsUrlInClear(_) => {
            field("events_url", &error)
        }
        CredentialError::Taken(_) => ApiError::Status(StatusCode::CONFLICT, error.to_string()),
        CredentialError::Store(error) => ApiError::Store(error),
    }
}

// The JSON API.

async fn api_list_credentials(State(state): State<AppState>) -> Result<Response, ApiError> {
    let credentials: Vec<CredentialView> = super::outbound(&state)?
        .credentials()
        .await?
        .into_iter()
        .map(CredentialView::from)
        .collect();
    Ok(Json(json!({ "credentials": credentials })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCredential {
    username: String,
    #[serde(default)]
    test: bool,
    #[serde(default)]
    allowed_senders: Vec<String>,
    events_url: Option<String>,
    track_opens: Option<bool>,
    track_clicks: Option<bool>,
}

async fn api_create_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    body: Result<Json<NewCredential>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = super::json_body(body)?;
    let spec = NewCredentialSpec {
        username: body.username.trim().to_string(),
        test: body.test,
        allowed_senders: body
            .allowed_senders
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        events_url: body
            .events_url
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty()),
        track_opens: body.track_opens,
        track_clicks: body.track_clicks,
    };
    let client = client.map(|Extension(c)| c);
    let (credential, token) = create_and_audit(&state, &principal, client.as_ref(), spec).await?;
    let endpoints = endpoints(&state, &headers, &credential.username, &token);
    let body = json!({
        "credential": CredentialView::from(credential),
        "token": token,
        "smtp_url": endpoints.smtp_url,
        "api_base_url": endpoints.api_base_url,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn api_revoke_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(username)) = path else {
        return Err(ApiError::BadRequest("a username is needed".into()));
    };
    let client = client.map(|Extension(c)| c);
    if revoke_and_audit(&state, &principal, client.as_ref(), &username).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no such credential, or revoked already"))
    }
}
