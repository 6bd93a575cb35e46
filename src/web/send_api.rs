//! The CloudMailin send API, `POST /api/v0.1/{username}/messages` (spec §6.2–§6.4), and the
//! outbound listing, `GET /api/outbound[/{id}]`.
//!
//! The send route is outside the dashboard's gate: it authenticates with the SMTP
//! credential (`Authorization: Bearer <token>`, the username in the path), as the official
//! clients do. It answers exactly 202 with the echo (cloudmailin-go accepts nothing else) or
//! `{"status": N, "error": "…"}`. The body is read whole, up to [`MAX_BODY`].

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::outbound::{SendRequest, SubmitError};
use crate::store::{OutboundFilter, RecipientState, unix_time};

/// 10 MB of mail plus base64 and JSON overhead (spec §6.3 asks for at least 15 MB).
pub(super) const MAX_BODY: usize = 20 * 1024 * 1024;

/// The send route: public, authenticated by its own bearer token.
pub(super) fn send_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v0.1/{username}/messages", post(send))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// The listing routes: behind the dashboard's gate.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/outbound", get(list))
        .route("/api/outbound/{id}", get(detail))
}

fn error(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"status": status.as_u16(), "error": message.into()});
    (status, Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

async fn send(
    State(state): State<AppState>,
    Path(username): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(outbound) = state.outbound.as_ref() else {
        return error(404, "outbound mail is not enabled on this instance");
    };
    let Some(token) = bearer(&headers) else {
        return error(
            401,
            "missing Authorization: Bearer <token> (the SMTP password)",
        );
    };
    let request: SendRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(422, format!("the body is not a valid message: {e}")),
    };
    match outbound
        .send_api(&username, token, request, Some(peer.ip().to_string()))
        .await
    {
        Ok(accepted) => {
            tracing::info!(id = %accepted.id, username, recipients = accepted.to.len() + accepted.cc.len(), "outbound message queued (API)");
            (StatusCode::ACCEPTED, Json(accepted)).into_response()
        }
        Err(SubmitError::Store(e)) => {
            tracing::error!(error = %e, "cannot queue an outbound message");
            error(500, SubmitError::Store(e).to_string())
        }
        Err(e) => error(e.http_status(), e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    before: Option<i64>,
    limit: Option<u32>,
    recipient: Option<String>,
    tag: Option<String>,
    state: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let state_filter = match query.state.as_deref() {
        None | Some("") => None,
        Some(name) => Some(RecipientState::from_name(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "state must be one of queued, sending, delivered, deferred, bounced, suppressed, \
                 expired, captured, test (got {name:?})"
            ))
        })?),
    };
    let messages = state
        .store
        .list_outbound(OutboundFilter {
            before: query.before,
            limit: query.limit.unwrap_or(50),
            recipient: query.recipient.filter(|r| !r.is_empty()),
            tag: query.tag.filter(|t| !t.is_empty()),
            state: state_filter,
        })
        .await
        .map_err(ApiError::Store)?;
    let next = messages.last().map(|m| m.row_id);
    Ok(Json(json!({"messages": messages, "next_before": next})).into_response())
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let message = state
        .store
        .outbound_message(&id)
        .await
        .map_err(ApiError::Store)?
        .ok_or(ApiError::NotFound("no outbound message with this id"))?;
    let events = state
        .store
        .outbound_events(message.row_id)
        .await
        .map_err(ApiError::Store)?;
    let events: Vec<serde_json::Value> = events
        .into_iter()
        .map(|event| {
            json!({
                "kind": event.kind,
                "recipient": event.recipient,
                "details": serde_json::from_str::<serde_json::Value>(&event.details)
                    .unwrap_or_else(|_| json!({})),
                "created_at": unix_time::to_rfc3339(event.created_at),
                "webhook": event.webhook,
            })
        })
        .collect();
    // Every delivery attempt, oldest first, named by its recipient's address.
    let attempts: Vec<serde_json::Value> = state
        .store
        .outbound_attempts(message.row_id)
        .await
        .map_err(ApiError::Store)?
        .into_iter()
        .map(|attempt| {
            let recipient = message
                .recipients
                .iter()
                .find(|r| r.id == attempt.recipient_id)
                .map(|r| r.address.clone());
            json!({
                "recipient": recipient,
                "started_at": unix_time::to_rfc3339(attempt.started_at),
                "host": attempt.host,
                "outcome": attempt.outcome,
                "code": attempt.code,
                "response": attempt.response,
                "tls": attempt.tls,
                "duration_ms": attempt.duration_ms,
            })
        })
        .collect();
    let mut body = serde_json::to_value(&message).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["events"] = events.into();
    body["attempts"] = attempts.into();
    Ok(Json(body).into_response())
}
