//! Addresses and domains as JSON, over `inbound::managed` (which holds the rules): `GET/POST
//! /api/addresses`, `GET/PUT/DELETE /api/addresses/{id}`, and the same for `/api/domains`.
//! Reads for every role, writes for admins (the gate's rule). Bodies are the fields of
//! `[[address]]` / `[[domain]]`; answers add `id`, `source` (`config` or `api`) and
//! `active`, with URLs masked. An invalid field is 422
//! `{"status":422,"error":"…","field":"target","message":"…"}`; a pattern the config file
//! defines, or one managed already, is 409.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use super::super::AppState;
use super::super::auth::Principal;
use super::super::error::{ApiError, path_id};
use crate::accounts::Client;
use crate::inbound::managed::{Address, Domain, Kind, ManagedError};

/// Behind the gate's `Access::Dashboard`. The paths are written out, not built from
/// `Kind::PLURAL`, so that the OpenAPI test (which scans for route calls with literal
/// `/api/` paths) sees them.
pub(in crate::web) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/addresses",
            get(list::<Address>).post(create::<Address>),
        )
        .route(
            "/api/addresses/{id}",
            get(one::<Address>)
                .put(update::<Address>)
                .delete(remove::<Address>),
        )
        .route("/api/domains", get(list::<Domain>).post(create::<Domain>))
        .route(
            "/api/domains/{id}",
            get(one::<Domain>)
                .put(update::<Domain>)
                .delete(remove::<Domain>),
        )
}

impl From<ManagedError> for ApiError {
    fn from(error: ManagedError) -> ApiError {
        match error {
            ManagedError::Invalid {
                field,
                message,
                detail,
            } => ApiError::Field {
                field,
                message,
                detail,
            },
            ManagedError::NotFound => {
                ApiError::NotFound("no such entry (config entries have no id)")
            }
            ManagedError::Store(error) => ApiError::Store(error),
            conflict => ApiError::Status(StatusCode::CONFLICT, conflict.to_string()),
        }
    }
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// `{"addresses": [...]}` or `{"domains": [...]}`.
async fn list<K: Kind>(State(state): State<AppState>) -> Result<Response, ApiError> {
    let items = state.managed.entries::<K>().await?;
    Ok(Json(BTreeMap::from([(K::PLURAL, items)])).into_response())
}

async fn one<K: Kind>(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let item = state.managed.entry::<K>(path_id(path)?).await?;
    Ok(Json(item).into_response())
}

async fn create<K: Kind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    spec: Result<Json<K::Spec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let item = state
        .managed
        .put::<K>(None, body(spec)?, &principal.actor(), Some(client.ip))
        .await?;
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

async fn update<K: Kind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
    spec: Result<Json<K::Spec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let item = state
        .managed
        .put::<K>(Some(id), body(spec)?, &principal.actor(), Some(client.ip))
        .await?;
    Ok(Json(item).into_response())
}

async fn remove<K: Kind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    state
        .managed
        .delete::<K>(id, &principal.actor(), Some(client.ip))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
