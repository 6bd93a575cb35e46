//! Addresses and domains as JSON, over `manage` (which holds the rules): `GET/POST
//! /api/addresses`, `GET/PUT/DELETE /api/addresses/{id}`, and the same for `/api/domains`.
//! Reads for every role, writes for admins (the gate's rule). Bodies are the fields of
//! `[[address]]` / `[[domain]]`; answers add `id`, `source` (`config` or `api`) and
//! `active`, with URLs masked. An invalid field is 422
//! `{"status":422,"error":"…","field":"target","message":"…"}`; a pattern the config file
//! defines, or one managed already, is 409.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, path_id};
use crate::accounts::Client;
use crate::config::{AddressSpec, DomainSpec};
use crate::manage::ManageError;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/addresses", get(list_addresses).post(create_address))
        .route(
            "/api/addresses/{id}",
            get(get_address).put(update_address).delete(delete_address),
        )
        .route("/api/domains", get(list_domains).post(create_domain))
        .route(
            "/api/domains/{id}",
            get(get_domain).put(update_domain).delete(delete_domain),
        )
}

impl From<ManageError> for ApiError {
    fn from(error: ManageError) -> ApiError {
        match error {
            ManageError::Invalid {
                field,
                message,
                detail,
            } => ApiError::Field {
                field,
                message,
                detail,
            },
            ManageError::NotFound => {
                ApiError::NotFound("no such entry (config entries have no id)")
            }
            ManageError::Store(error) => ApiError::Store(error),
            conflict => ApiError::Status(StatusCode::CONFLICT, conflict.to_string()),
        }
    }
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

async fn list_addresses(State(state): State<AppState>) -> Result<Response, ApiError> {
    let addresses = state.managed.addresses().await?;
    Ok(Json(json!({ "addresses": addresses })).into_response())
}

async fn get_address(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let item = state.managed.address(path_id(path)?).await?;
    Ok(Json(item).into_response())
}

async fn create_address(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    spec: Result<Json<AddressSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let item = state
        .managed
        .put_address(None, body(spec)?, &principal.actor(), Some(client.ip))
        .await?;
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

async fn update_address(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
    spec: Result<Json<AddressSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let item = state
        .managed
        .put_address(Some(id), body(spec)?, &principal.actor(), Some(client.ip))
        .await?;
    Ok(Json(item).into_response())
}

async fn delete_address(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    state
        .managed
        .delete_address(id, &principal.actor(), Some(client.ip))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_domains(State(state): State<AppState>) -> Result<Response, ApiError> {
    let domains = state.managed.domains().await?;
    Ok(Json(json!({ "domains": domains })).into_response())
}

async fn get_domain(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let item = state.managed.domain(path_id(path)?).await?;
    Ok(Json(item).into_response())
}

async fn create_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    spec: Result<Json<DomainSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let item = state
        .managed
        .put_domain(None, body(spec)?, &principal.actor(), Some(client.ip))
        .await?;
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

async fn update_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
    spec: Result<Json<DomainSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let item = state
        .managed
        .put_domain(Some(id), body(spec)?, &principal.actor(), Some(client.ip))
        .await?;
    Ok(Json(item).into_response())
}

async fn delete_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    state
        .managed
        .delete_domain(id, &principal.actor(), Some(client.ip))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
