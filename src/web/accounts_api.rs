//! The JSON API over accounts, for scripts and for the dashboard's pages to come:
//! `GET /api/users`, `GET /api/keys`, `POST /api/keys` (admin; the key is in this answer
//! only), `DELETE /api/keys/{id}` (admin) and `GET /api/audit` (newest first, paged by
//! `?before=ID&limit=N`). Users are created and deleted with `postern user` for now.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, path_id};
use crate::accounts::Role;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list_users))
        .route("/api/keys", get(list_keys).post(create_key))
        .route("/api/keys/{id}", delete(revoke_key))
        .route("/api/audit", get(audit_log))
}

async fn list_users(State(state): State<AppState>) -> Result<Response, ApiError> {
    let users = state.accounts.users().await?;
    Ok(Json(json!({ "users": users })).into_response())
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
