//! Read state, each reader's own (`Principal::reader`): the detail page marks a message
//! read when it is opened; `POST /messages/{id}/unread` and `/read` (the detail page's and
//! the inbox keyboard's), `PUT`/`DELETE /api/messages/{id}/read` (204, 404).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{post, put};
use axum::{Extension, Router};

use super::{message_page, store_failed};
use crate::web::auth;
use crate::web::error::{ApiError, path_id};
use crate::web::{AppState, Principal};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/messages/{id}/read", post(mark_read_page))
        .route("/messages/{id}/unread", post(mark_unread_page))
        .route(
            "/api/messages/{id}/read",
            put(mark_read).delete(mark_unread),
        )
}

/// Marked unread: back to the inbox, where it stands out again.
async fn mark_unread_page(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    mark_page(state, principal, path, false).await
}

/// Marked read: back to the inbox.
async fn mark_read_page(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    mark_page(state, principal, path, true).await
}

async fn mark_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
    read: bool,
) -> Response {
    let Ok(Path(id)) = path else {
        return message_page(&principal, StatusCode::NOT_FOUND, "no such message");
    };
    match state.store.mark_read(principal.reader(), id, read).await {
        Ok(true) => auth::redirect("/"),
        Ok(false) => message_page(&principal, StatusCode::NOT_FOUND, "no such message"),
        Err(error) => store_failed(&principal, error),
    }
}

async fn mark_read(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    mark(&state, &principal, path_id(path)?, true).await
}

async fn mark_unread(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    mark(&state, &principal, path_id(path)?, false).await
}

async fn mark(
    state: &AppState,
    principal: &Principal,
    id: i64,
    read: bool,
) -> Result<StatusCode, ApiError> {
    match state.store.mark_read(principal.reader(), id, read).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("no such message")),
    }
}
