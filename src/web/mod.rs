//! The web listener: for now the JSON API over the metadata store.
//!
//! `GET /api/messages` (newest first, paged by `?before=ID&limit=N`), `GET
//! /api/messages/{id}`, `GET /api/messages/{id}/raw` (where content is kept), `GET
//! /healthz`, and the test targets `/target/{code}` and `/target/delay/{ms}` (spec §2.10) that
//! answer any request with that status, or with 200 after that delay, so a setup can be
//! tried without an app. No authentication yet: keep the listener on loopback (the default).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{InboundMessage, MessageFilter, Outcome, Store, StoreError};

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
        .route("/target/{code}", any(test_target))
        .route("/target/delay/{ms}", any(delayed_target))
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

/// Longest delay `/target/delay/{ms}` sleeps: past any sane delivery timeout.
const MAX_TARGET_DELAY_MS: u64 = 600_000;
/// What the test targets read of a request body (a message up to the largest size limit).
const MAX_TARGET_BODY: usize = 1024 * 1024 * 1024;

/// `/target/{code}`: answers with that status and a `text/plain` body, which a 4xx turns
/// into the text of the 554 reply.
async fn test_target(path: Result<Path<u16>, PathRejection>, body: Body) -> Response {
    let Ok(Path(code)) = path else {
        return ApiError::BadRequest("use /target/{code} with a status from 200 to 599".into())
            .into_response();
    };
    let Some(status) = StatusCode::from_u16(code)
        .ok()
        .filter(|s| (200..600).contains(&s.as_u16()))
    else {
        return ApiError::BadRequest("use /target/{code} with a status from 200 to 599".into())
            .into_response();
    };
    // Read the whole request so that the client's connection stays usable.
    let _ = axum::body::to_bytes(body, MAX_TARGET_BODY).await;
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Postern test target answered {code}"),
    )
        .into_response()
}

/// `/target/delay/{ms}`: answers 200 after the delay, to try timeouts.
async fn delayed_target(path: Result<Path<u64>, PathRejection>, body: Body) -> Response {
    let Ok(Path(ms)) = path else {
        return ApiError::BadRequest("use /target/delay/{milliseconds}".into()).into_response();
    };
    let ms = ms.min(MAX_TARGET_DELAY_MS);
    let _ = axum::body::to_bytes(body, MAX_TARGET_BODY).await;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    (
        StatusCode::OK,
        format!("Postern test target answered 200 after {ms} ms"),
    )
        .into_response()
}

async fn index() -> &'static str {
    concat!(
        "Postern\n\n",
        "GET /api/messages           received messages, newest first; filters: ?address= &recipient=\n",
        "                            &sender= &status=successful|rejected|delayed|captured\n",
        "                            &since=2026-11-28 &until=2026-11-29 &limit=50 &before=ID\n",
        "GET /api/messages/{id}      one message with every delivery attempt\n",
        "GET /api/messages/{id}/raw  the raw message, where it is kept (dev mode)\n",
        "ANY /target/{code}          a test target answering that HTTP status\n",
        "ANY /target/delay/{ms}      a test target answering 200 after a delay\n",
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    before: Option<i64>,
    limit: Option<u32>,
    address: Option<String>,
    recipient: Option<String>,
    sender: Option<String>,
    /// `successful`, `rejected`, `delayed` or `captured`.
    status: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`, inclusive.
    since: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`, exclusive.
    until: Option<String>,
}

/// Accepts `2026-11-28` or a full RFC 3339 time; returns the stored form's prefix to compare.
fn time_bound(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    use time::format_description::well_known::Rfc3339;
    let Some(value) = value else { return Ok(None) };
    if let Ok(at) = time::OffsetDateTime::parse(&value, &Rfc3339) {
        let utc = at.to_offset(time::UtcOffset::UTC);
        return Ok(Some(utc.format(&Rfc3339).expect("UTC formats as RFC 3339")));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if time::Date::parse(&value, &date_format).is_ok() {
        return Ok(Some(value));
    }
    Err(ApiError::BadRequest(format!(
        "{name} must be a date (2026-11-28) or an RFC 3339 time (2026-11-28T09:00:00Z)"
    )))
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
    let outcome = query
        .status
        .map(|name| {
            Outcome::from_name(&name).ok_or_else(|| {
                ApiError::BadRequest(
                    "status must be successful, rejected, delayed or captured".into(),
                )
            })
        })
        .transpose()?;
    let messages = state
        .store
        .list_inbound(MessageFilter {
            before: query.before,
            limit,
            address: query.address,
            recipient: query.recipient,
            sender: query.sender,
            outcome,
            since: time_bound("since", query.since)?,
            until: time_bound("until", query.until)?,
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
