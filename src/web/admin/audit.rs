//! The audit log: `GET /audit` (newest first, 50 to a page, "Older" by `?before=ID`) and
//! `GET /api/audit` (paged by `?before=ID&limit=N`). Viewers may read the page because the
//! JSON already lets them: hiding the page alone would protect nothing.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::error::ApiError;
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(audit_log))
        .route("/api/audit", get(api_audit_log))
}

/// Rows on one page of the audit log.
const AUDIT_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
struct AuditQuery {
    before: Option<i64>,
}

async fn audit_log(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return super::message(&principal, StatusCode::BAD_REQUEST, "before is an entry id");
    };
    let entries = match state.accounts.audit_log(query.before, AUDIT_PAGE).await {
        Ok(entries) => entries,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut body = Html::new();
    if entries.is_empty() {
        body.push_trusted("<p>No entries.</p>\n");
    } else {
        body.push_trusted(concat!(
            "<table>\n<thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Subject</th>",
            "<th>Address</th><th>Detail</th></tr></thead>\n<tbody>\n"
        ));
        for entry in &entries {
            body.push(html!(
                "<tr><td>{at}</td><td>{actor}</td><td>{action}</td><td>{subject}</td><td>{ip}</td><td>{detail}</td></tr>\n",
                at = ui::offset_time(entry.at),
                actor = Html::escape(&entry.actor),
                action = Html::escape(&entry.action),
                subject = entry.subject,
                ip = entry.ip,
                detail = entry.detail,
            ));
        }
        body.push_trusted("</tbody>\n</table>\n");
    }
    let mut links = Vec::new();
    if query.before.is_some() {
        links.push(Html::trusted("<a href=\"/audit\">Newest</a>"));
    }
    if entries.len() == AUDIT_PAGE as usize
        && let Some(last) = entries.last()
    {
        links.push(html!("<a href=\"/audit?before={}\">Older</a>", last.id));
    }
    if !links.is_empty() {
        body.push(html!("<p>{}</p>", Html::join(links, " · ")));
    }
    ui::dashboard(StatusCode::OK, "Audit log", ui::nav(&principal), body)
}

// The JSON API.

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditApiQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

async fn api_audit_log(
    State(state): State<AppState>,
    query: Result<Query<AuditApiQuery>, QueryRejection>,
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
