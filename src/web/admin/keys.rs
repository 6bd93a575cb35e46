//! API keys: `GET /keys` (every key, revoked ones too; admins also get the form and a revoke
//! button per key), `POST /keys` (admin: makes a key and shows its secret on the answer page,
//! once — it is stored only as a digest), `POST /keys/{id}/revoke` (admin); and as JSON
//! `GET /api/keys`, `POST /api/keys` (admin; the key is in this answer only) and
//! `DELETE /api/keys/{id}` (admin).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{AccountError, ApiKey, Role};
use crate::web::AppState;
use crate::web::auth::{self, Principal};
use crate::web::error::{ApiError, path_id};
use crate::web::ui::form::{self, FormPage, Refused, Submission};
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/keys",
            get(form::show::<KeysPage>).post(form::submit::<KeysPage>),
        )
        .route("/keys/{id}/revoke", post(revoke_key))
        .route("/api/keys", get(api_list_keys).post(api_create_key))
        .route("/api/keys/{id}", delete(api_revoke_key))
}

fn key_row(principal: &Principal, key: &ApiKey) -> Html {
    let state = match key.revoked_at {
        Some(at) => html!("revoked {}", ui::offset_time(at)),
        None => Html::trusted("active"),
    };
    let action = if principal.role() == Role::Admin && key.revoked_at.is_none() {
        html!(
            concat!(
                "<form method=\"post\" action=\"/keys/{id}/revoke\" data-confirm=\"Revoke this API key? Whatever uses it is refused from now on.\">{csrf}",
                "<button type=\"submit\">Revoke</button></form>"
            ),
            id = key.id,
            csrf = ui::csrf(principal),
        )
    } else {
        Html::new()
    };
    html!(
        "<tr><td>{name}</td><td><code>{prefix}…</code></td><td>{role}</td><td>{created} by {by}</td><td>{used}</td><td>{state}</td><td>{action}</td></tr>\n",
        name = Html::escape(&key.name),
        prefix = Html::escape(&key.prefix),
        role = ui::role_name(key.role),
        created = ui::offset_time(key.created_at),
        by = Html::escape(&key.created_by),
        used = key
            .last_used_at
            .map(ui::offset_time)
            .unwrap_or_else(|| Html::trusted("never")),
        state = state,
        action = action,
    )
}

/// The list, and for admins the form (with `error` above it and `name` kept).
async fn keys_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    name: &str,
) -> Response {
    let keys = match state.accounts.api_keys().await {
        Ok(keys) => keys,
        Err(error) => return ApiError::Store(error).into_response(),
    };
    let mut body = Html::new();
    if principal.role() == Role::Admin {
        body.push(html!(
            concat!(
                "<h2>New key</h2>\n{error}<form method=\"post\" action=\"/keys\">{csrf}",
                "<label>Name <input name=\"name\" value=\"{name}\" required maxlength=\"100\"></label> ",
                "<label>Role <select name=\"role\"><option value=\"viewer\">viewer</option>",
                "<option value=\"admin\">admin</option></select></label> ",
                "<button type=\"submit\">Create key</button></form>\n",
            ),
            error = ui::error(error),
            csrf = ui::csrf(principal),
            name = Html::escape(name),
        ));
    }
    if keys.is_empty() {
        body.push_trusted("<p>No API keys yet.</p>");
    } else {
        body.push_trusted(concat!(
            "<table>\n<thead><tr><th>Name</th><th>Key</th><th>Role</th><th>Created</th>",
            "<th>Last used</th><th>State</th><th></th></tr></thead>\n<tbody>\n"
        ));
        for key in &keys {
            body.push(key_row(principal, key));
        }
        body.push_trusted("</tbody>\n</table>");
    }
    ui::dashboard(status, "API keys", ui::nav(principal), body)
}

#[derive(Debug, Default, Deserialize)]
struct NewKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// `/keys`: every key and, for admins, the form to make one.
struct KeysPage;

impl FormPage for KeysPage {
    type Form = NewKey;
    const BACK: (&'static str, &'static str) = super::BACK;

    async fn render(
        state: &AppState,
        principal: &Principal,
        status: StatusCode,
        refusal: Option<&str>,
        form: &NewKey,
    ) -> Response {
        keys_page(state, principal, status, refusal, &form.name).await
    }

    /// Makes the key and shows its secret, once.
    async fn submit(sent: Submission<'_>, form: &NewKey) -> Result<Response, Refused> {
        let Some(role) = Role::from_name(&form.role) else {
            let why = "role must be admin or viewer";
            return Err(Refused::Again(StatusCode::UNPROCESSABLE_ENTITY, why.into()));
        };
        let actor = sent.principal.actor();
        let (key, secret) = match sent
            .state
            .accounts
            .create_api_key(form.name.trim(), role, &actor)
            .await
        {
            Ok(made) => made,
            Err(error @ AccountError::InvalidKeyName) => {
                return Err(Refused::Again(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    error.to_string(),
                ));
            }
            Err(error) => return Err(Refused::Answer(ApiError::from(error).into_response())),
        };
        let body = html!(
            concat!(
                "<p>The key <strong>{name}</strong> ({role}) is made. Copy it now: ",
                "it is shown this once and never again.</p>\n",
                "<p><code id=\"secret\">{secret}</code></p>\n",
                "<p>Send it as <code>Authorization: Bearer …</code>.</p>\n",
                "<p><a href=\"/keys\">All keys</a></p>"
            ),
            name = key.name,
            role = ui::role_name(key.role),
            secret = secret,
        );
        let nav = ui::nav(sent.principal);
        Ok(ui::dashboard(StatusCode::CREATED, "New API key", nav, body))
    }
}

async fn revoke_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return super::message(&principal, StatusCode::BAD_REQUEST, "key ids are numbers");
    };
    match state.accounts.revoke_api_key(id, &principal.actor()).await {
        Ok(true) => auth::redirect("/keys"),
        Ok(false) => super::message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such key, or revoked already",
        ),
        Err(error) => ApiError::Store(error).into_response(),
    }
}

// The JSON API.

async fn api_list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state.accounts.api_keys().await?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    name: String,
    /// `admin` or `viewer` (the default).
    role: Option<String>,
}

async fn api_create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewKeyBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let role = match body.role.as_deref() {
        None => Role::Viewer,
        Some(name) => Role::from_name(name)
            .ok_or_else(|| ApiError::BadRequest("role must be admin or viewer".into()))?,
    };
    let (key, secret) = state
        .accounts
        .create_api_key(&body.name, role, &principal.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key, "secret": secret })),
    )
        .into_response())
}

async fn api_revoke_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    if state
        .accounts
        .revoke_api_key(id, &principal.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no such key, or revoked already"))
    }
}
