//! The JSON API over accounts, for scripts: `GET /api/users`; `POST /api/users` (admin: a
//! user with the given password, or a generated one-time password that is in this answer
//! only), `PATCH /api/users/{id}` (admin: the role), `POST /api/users/{id}/reset-totp` and
//! `DELETE /api/users/{id}` (admin); `GET /api/keys`, `POST /api/keys` (admin; the key is in
//! this answer only), `DELETE /api/keys/{id}` (admin) and `GET /api/audit` (newest first,
//! paged by `?before=ID&limit=N`).
//!
//! Every change goes through the same `Accounts` calls as the `/users` and `/keys` pages
//! (`web::admin_pages`) and `postern user`, so the rules (the last admin is neither deleted
//! nor made a viewer) and the audit rows are the same whoever asks. The gate keeps viewers,
//! viewer keys and requests without the CSRF header away from the writes.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, path_id};
use crate::accounts::{AccountError, NewPassword, Role, User};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{id}", patch(change_user).delete(delete_user))
        .route("/api/users/{id}/reset-totp", post(reset_totp))
        .route("/api/keys", get(list_keys).post(create_key))
        .route("/api/keys/{id}", delete(revoke_key))
        .route("/api/audit", get(audit_log))
}

async fn list_users(State(state): State<AppState>) -> Result<Response, ApiError> {
    let users = state.accounts.users().await?;
    Ok(Json(json!({ "users": users })).into_response())
}

/// 422 naming the field, for what a user's fields break; 409 for what clashes with other
/// users (a taken email, the last admin).
fn user_error(error: AccountError) -> ApiError {
    let field = |field: &str, message: String| ApiError::Field {
        field: field.to_string(),
        detail: format!("{field}: {message}"),
        message,
    };
    match error {
        AccountError::InvalidEmail(_) => field("email", error.to_string()),
        AccountError::WeakPassword(why) => field("password", why),
        AccountError::EmailTaken(_) | AccountError::LastAdmin(_) => {
            ApiError::Status(StatusCode::CONFLICT, error.to_string())
        }
        other => ApiError::from(other),
    }
}

fn role_field(name: &str) -> Result<Role, ApiError> {
    Role::from_name(name).ok_or_else(|| ApiError::Field {
        field: "role".into(),
        message: "must be admin or viewer".into(),
        detail: format!("role {name:?}: must be admin or viewer"),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    /// `admin` or `viewer`.
    role: String,
    /// Absent: a one-time password is generated, returned in this answer only, and must
    /// be replaced at the first sign-in.
    password: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let role = role_field(&body.role)?;
    let password = match body.password {
        Some(given) => NewPassword::Given(given),
        None => NewPassword::Generate,
    };
    let (user, generated) = state
        .accounts
        .create_user(&body.email, role, password, &principal.actor())
        .await
        .map_err(user_error)?;
    let answer = match generated {
        Some(password) => json!({ "user": user, "password": password }),
        None => json!({ "user": user }),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The user with the id in the path, or 404.
async fn user_at(
    state: &AppState,
    path: Result<Path<i64>, PathRejection>,
) -> Result<User, ApiError> {
    let id = path_id(path)?;
    state
        .accounts
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    /// `admin` or `viewer`.
    role: String,
}

async fn change_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = user_at(&state, path).await?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let role = role_field(&body.role)?;
    state
        .accounts
        .change_role(&user.email, role, &principal.actor())
        .await
        .map_err(user_error)?;
    let user = state
        .accounts
        .user_by_id(user.id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    Ok(Json(json!({ "user": user })).into_response())
}

async fn reset_totp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let user = user_at(&state, path).await?;
    state
        .accounts
        .reset_totp(&user.email, &principal.actor())
        .await
        .map_err(user_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let user = user_at(&state, path).await?;
    state
        .accounts
        .delete_user(&user.email, &principal.actor())
        .await
        .map_err(user_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state.accounts.api_keys().await?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// `admin` or `viewer` (the default).
    role: Option<String>,
}

async fn create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewKey>, JsonRejection>,
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

async fn revoke_key(
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

async fn audit_log(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let entries = state.accounts.audit_log(query.before, limit).await?;
    let next_before = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({ "entries": entries, "next_before": next_before })).into_response())
}
