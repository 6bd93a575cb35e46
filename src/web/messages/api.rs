//! The JSON API over the metadata store: `GET /api/messages` (newest first, paged by
//! `?before=ID&limit=N`, filtered), `GET /api/messages/{id}` (with every delivery attempt)
//! and `GET /api/messages/{id}/raw` (where content is kept); admins delete one message
//! (`DELETE /api/messages/{id}`) or every message a filter matches (`DELETE /api/messages`).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use crate::accounts::AuditAction;
use crate::inbound::ResendError;
use crate::store::{InboundMessage, MessageFilter, Outcome, Search};
use crate::web::error::{ApiError, path_id};
use crate::web::{AppState, Principal};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/messages", get(list_messages).delete(delete_messages))
        .route(
            "/api/messages/{id}",
            get(get_message).delete(delete_message),
        )
        .route("/api/messages/{id}/raw", get(get_raw))
        .route("/api/messages/{id}/payload", get(get_payload))
        .route("/api/messages/{id}/resend", post(resend))
        .route("/api/messages/{id}/release", post(release))
        .route("/api/messages/{id}/repost", post(repost))
        .route("/api/messages/{id}/retry", post(retry))
        .route("/api/messages/{id}/discard", post(discard))
}

/// `POST /api/messages/{id}/retry` (admins): a queued or failed message (a `queued`
/// address's) is POSTed again now; 204, or 404 when it is not in the queue.
async fn retry(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let inbound = receiving(&state)?;
    match inbound.retry_queued_now(id).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::NotFound("no such message in the queue")),
    }
}

/// `POST /api/messages/{id}/discard` (admins): a queued or failed message leaves the queue
/// unposted and its content is deleted (`discarded`); 204, or 404 when it is not in the
/// queue (or is being POSTed right now).
async fn discard(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let inbound = receiving(&state)?;
    match inbound.discard_queued(id).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::NotFound(
            "no such message in the queue, or it is being posted right now",
        )),
    }
}

fn receiving(state: &AppState) -> Result<&crate::inbound::Inbound, ApiError> {
    state.inbound.as_deref().ok_or(ApiError::Status(
        StatusCode::CONFLICT,
        "nothing receives mail here".into(),
    ))
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// The search box's language (`store::search`): words, `from:`, `to:`, `subject:`,
    /// `status:`, `is:read`/`is:unread`, `has:attachment`, `after:`, `before:`, `-`.
    q: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
    address: Option<String>,
    recipient: Option<String>,
    sender: Option<String>,
    /// Text the subject contains.
    subject: Option<String>,
    /// `successful`, `rejected`, `delayed`, `captured`, `bounce`, `refused`, `queued`,
    /// `failed` or `discarded`.
    status: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`, inclusive.
    since: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`, exclusive.
    until: Option<String>,
}

/// Accepts `2026-11-28` or a full RFC 3339 time; returns the stored form's prefix to compare.
pub(super) fn time_bound(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    crate::store::time_bound(&value).map(Some).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name} must be a date (2026-11-28) or an RFC 3339 time (2026-11-28T09:00:00Z)"
        ))
    })
}

#[derive(Serialize)]
struct MessagePage {
    messages: Vec<InboundMessage>,
    /// The `before` value for the next (older) page, if there may be one.
    next_before: Option<i64>,
}

impl ListQuery {
    /// The store's filter for `reader`: `limit` checked, `q`, `status` and the dates parsed.
    fn filter(self, reader: String) -> Result<MessageFilter, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let outcome = self
            .status
            .as_deref()
            .map(outcome)
            .transpose()
            .map_err(|why| ApiError::BadRequest(why.into()))?;
        Ok(MessageFilter {
            before: self.before,
            limit,
            address: self.address,
            recipient: self.recipient,
            sender: self.sender,
            subject: self.subject,
            outcome,
            since: time_bound("since", self.since)?,
            until: time_bound("until", self.until)?,
            search: Search::parse(self.q.as_deref().unwrap_or_default())
                .map_err(|e| ApiError::BadRequest(format!("q: {e}")))?,
            reader: Some(reader),
        })
    }
}

/// The `status` filter's outcome, or what it may be.
pub(super) fn outcome(name: &str) -> Result<Outcome, &'static str> {
    Outcome::from_name(name)
        .ok_or("status must be successful, rejected, delayed, captured, bounce, refused, queued, failed or discarded")
}

async fn list_messages(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<MessagePage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = query.filter(principal.reader())?;
    let limit = filter.limit;
    let messages = state.store.list_inbound(filter).await?;
    let next_before = (messages.len() == limit as usize)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(Json(MessagePage {
        messages,
        next_before,
    }))
}

/// `DELETE /api/messages?…`: every message the filter matches (the list's filters; without
/// any, every message but the refusals), in batches; `{"deleted": N}`.
async fn delete_messages(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let q = query.q.clone();
    let filter = query.filter(principal.reader())?;
    let described = describe(&filter, q.as_deref());
    let deleted = state.store.delete_inbound_matching(filter).await?;
    audit_deleted(
        &state,
        &principal,
        &format!("{deleted} matching {described}"),
    )
    .await;
    Ok(Json(serde_json::json!({ "deleted": deleted })))
}

/// `DELETE /api/messages/{id}`: 204, or 404 when there is no such message.
async fn delete_message(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(path)?;
    match state.store.delete_inbound(id).await? {
        true => {
            audit_deleted(&state, &principal, &format!("message {id}")).await;
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::NotFound("no such message")),
    }
}

/// The filter as the audit log says it: `status=refused sender=…`, or `everything`.
pub(super) fn describe(filter: &MessageFilter, q: Option<&str>) -> String {
    let fields = [
        ("q", q.map(str::trim).filter(|q| !q.is_empty())),
        ("address", filter.address.as_deref()),
        ("recipient", filter.recipient.as_deref()),
        ("sender", filter.sender.as_deref()),
        ("subject", filter.subject.as_deref()),
        ("status", filter.outcome.map(Outcome::as_str)),
        ("since", filter.since.as_deref()),
        ("until", filter.until.as_deref()),
    ];
    let set: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| value.map(|value| format!("{name}={value}")))
        .collect();
    match set.is_empty() {
        true => "everything".into(),
        false => set.join(" "),
    }
}

/// One audit row per deletion (the dashboard's and the API's alike); a failed write is
/// logged, the deletion stands.
pub(super) async fn audit_deleted(state: &AppState, principal: &Principal, detail: &str) {
    let audited = state
        .accounts
        .audit(
            &principal.actor(),
            AuditAction::MessagesDeleted,
            None,
            None,
            Some(detail),
        )
        .await;
    if let Err(error) = audited {
        tracing::error!(%error, "cannot record a deletion in the audit log");
    }
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

/// `GET /api/messages/{id}/payload`: the body the message's app gets (as the detail page's
/// Payload tab shows it), `text/plain` with the payload's own type in `X-Payload-Type`.
async fn get_payload(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let inbound = state.inbound.as_ref().ok_or(ApiError::Status(
        StatusCode::CONFLICT,
        "nothing receives mail here".into(),
    ))?;
    match inbound.payload(id).await {
        Ok((_, payload)) => {
            let kind = payload.content_type.clone();
            let mut response = crate::web::ui::payload_response(payload);
            if let Ok(kind) = header::HeaderValue::from_str(&kind) {
                response.headers_mut().insert("x-payload-type", kind);
            }
            Ok(response)
        }
        Err(ResendError::NotFound) => Err(ApiError::NotFound("no such message")),
        Err(ResendError::Store(error)) => Err(error.into()),
        Err(error) => Err(ApiError::Status(StatusCode::CONFLICT, error.to_string())),
    }
}

/// What a resend or repost got: the outcome in the list's words, and the HTTP status.
fn posted(resent: crate::inbound::Resent) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "outcome": resent.outcome.as_str(),
        "http_status": resent.http_status,
    }))
}

fn resend_error(error: ResendError) -> ApiError {
    match error {
        ResendError::NotFound => ApiError::NotFound("no such message"),
        ResendError::Store(error) => error.into(),
        error => ApiError::Status(StatusCode::CONFLICT, error.to_string()),
    }
}

/// `POST /api/messages/{id}/resend` (admins): the kept message to its target again, as on
/// arrival; `{"outcome", "http_status"}`, the requests recorded as `resend` attempts.
async fn resend(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_id(path)?;
    let inbound = state.inbound.as_ref().ok_or(ApiError::Status(
        StatusCode::CONFLICT,
        "nothing receives mail here".into(),
    ))?;
    inbound.resend(id).await.map(posted).map_err(resend_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    /// `host:port`.
    server: String,
    /// Default: the envelope's recipients.
    #[serde(default)]
    recipients: Vec<String>,
}

/// `POST /api/messages/{id}/release` (dev mode): `{"server": "127.0.0.1:1025"}` →
/// `{"reply": "250 …"}`, the server's answer.
async fn release(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<ReleaseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_id(path)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    match super::release_kept(&state, id, &body.server, body.recipients).await {
        Ok(reply) => Ok(Json(serde_json::json!({ "reply": reply }))),
        Err((StatusCode::NOT_FOUND, _)) => Err(ApiError::NotFound("no such message")),
        Err((status, why)) => Err(ApiError::Status(status, why)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepostBody {
    url: String,
}

/// `POST /api/messages/{id}/repost` (dev mode): the payload to `{"url": …}` once;
/// `{"outcome", "http_status"}`, recorded as `repost` attempts.
async fn repost(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<RepostBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_id(path)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !state.open {
        return Err(ApiError::Status(
            StatusCode::FORBIDDEN,
            "posting to any URL is for dev mode".into(),
        ));
    }
    let url = crate::config::TargetUrl::parse(body.url.trim()).map_err(ApiError::BadRequest)?;
    let inbound = state.inbound.as_ref().ok_or(ApiError::Status(
        StatusCode::CONFLICT,
        "nothing receives mail here".into(),
    ))?;
    inbound
        .repost(id, &url)
        .await
        .map(posted)
        .map_err(resend_error)
}
