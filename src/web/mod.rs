//! The web listener: for now the JSON API over the metadata store.
//!
//! `GET /api/messages` (newest first, paged by `?before=ID&limit=N`), `GET
//! /api/messages/{id}`, `GET /api/messages/{id}/raw` (where content is kept), `GET
//! /healthz`. No authentication yet: keep the listener on loopback (the default).

use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{InboundMessage, MessageFilter, Store, StoreError};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Clone)]
struct AppState {
    store: Store,
}

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/messages", get(list_messages))
        .route("/api/messages/{id}", get(get_message))
        .route("/api/messages/{id}/raw", get(get_raw))
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .with_state(AppState { store })
}

/// Errors as `{"status": N, "error": "…"}`, the shape the outbound API will use too.
enum ApiError {
    NotFound(&'static str),
    BadRequest(String),
    Store(StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what.to_string()),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            ApiError::Store(error) => {
                tracing::error!(%error, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_string(),
                )
            }
        };
        (
            status,
            Json(json!({ "status": status.as_u16(), "error": message })),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::Store(error)
    }
}

async fn index() -> &'static str {
    "Postern\n\nGET /api/messages           received messages, newest first (?limit=N&before=ID)\nGET /api/messages/{id}      one message\nGET /api/messages/{id}/raw  the raw message, where it is kept (dev mode)\n"
}

#[derive(Deserialize)]
struct ListQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct MessagePage {
    messages: Vec<InboundMessage>,
    /// The `before` value for the next (older) page, if there may be one.
    next_before: Option<i64>,
}

async fn list_messages(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<MessagePage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let messages = state
        .store
        .list_inbound(MessageFilter {
            before: query.before,
            limit,
        })
        .await?;
    let next_before = (messages.len() == limit as usize)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(Json(MessagePage {
        messages,
        next_before,
    }))
}

/// A message id from the path; a non-number is a JSON 400 like every other error.
fn message_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::BadRequest("message ids are numbers".into()))
}

async fn get_message(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<InboundMessage>, ApiError> {
    let id = message_id(path)?;
    state
        .store
        .get_inbound(id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("no such message"))
}

async fn get_raw(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let raw = state
        .store
        .get_inbound_raw(id)
        .await?
        .ok_or(ApiError::NotFound("no raw content kept for this message"))?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}
