//! The CloudMailin send API, `POST /api/v0.1/{username}/messages` (contract §6.2–§6.4). (The
//! outbound listing, `GET /api/outbound[/{id}]`, is in `web::outbound::sent`.)
//!
//! The send route is outside the dashboard's gate: it authenticates with the SMTP
//! credential (`Authorization: Bearer <token>`, the username in the path), as the official
//! clients do; not over plain HTTP from another machine (`web::plain_http`: 403). It answers
//! exactly 202 with the echo (cloudmailin-go accepts nothing else) or
//! `{"status": N, "error": "…"}`. The body is read whole, up to [`MAX_BODY`]. What a
//! request may say is `outbound::compose`'s; a `raw` message passes the same check as SMTP
//! submission (`outbound::raw_message`).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::outbound::{SendRequest, SubmitError};
use crate::web::AppState;

/// 10 MB of mail plus base64 and JSON overhead (contract §6.3 asks for at least 15 MB).
pub(super) const MAX_BODY: usize = 20 * 1024 * 1024;

/// The send route: public, authenticated by its own bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v0.1/{username}/messages", post(send))
        .layer(DefaultBodyLimit::max(MAX_BODY))
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
    if let Some(refused) = crate::web::plain_http::refusal(peer.ip(), state.tokens_from_any_peer) {
        return refused;
    }
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
