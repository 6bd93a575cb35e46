//! The JSON API over the metadata store: `GET /api/messages` (newest first, paged by
//! `?before=ID&limit=N`, filtered), `GET /api/messages/{id}` (with every delivery attempt)
//! and `GET /api/messages/{id}/raw` (where content is kept).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::store::{InboundMessage, MessageFilter, Outcome};
use crate::web::AppState;
use crate::web::error::{ApiError, path_id};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/messages", get(list_messages))
        .route("/api/messages/{id}", get(get_message))
        .route("/api/messages/{id}/raw", get(get_raw))
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    before: Option<i64>,
    limit: Option<u32>,
    address: Option<String>,
    recipient: Option<String>,
    sender: Option<String>,
    /// Text the subject contains.
    subject: Option<String>,
    /// `successful`, `rejected`, `delayed` or `captured`.
    status: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`, inclusive.
    since: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`, exclusive.
    until: Option<String>,
}

/// Accepts `2026-11-28` or a full RFC 3339 time; returns the stored form's prefix to compare.
pub(super) fn time_bound(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
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
                    "status must be successful, rejected, delayed, captured, bounce or refused"
                        .into(),
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
            subject: query.subject,
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

async fn get_message(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<InboundMessage>, ApiError> {
    let id = path_id(path)?;
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
