//! `POST /api/exports` and `POST /api/purges`: the body is the selector of `postern export`
//! (`email` | `domain` | `address`, optional `since` and `until`) and, for purges,
//! `include_suppressions` and `include_queued`; `dry_run` (a field, or `?dry_run=true`)
//! answers the counts and changes nothing. An export answers the tar archive
//! (`application/x-tar`), a purge the counts it deleted. A selector that is not exactly one
//! well-formed subject, or an unknown field, is 400 naming it; viewers get 403 (the gate).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{archive_download, counts_json, purge_or_count};
use crate::data_requests::Selector;
use crate::data_requests::selector::SelectorSpec;
use crate::store::PurgeScope;
use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/exports", post(export))
        .route("/api/purges", post(purge))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunQuery {
    #[serde(default)]
    dry_run: bool,
}

type JsonBody = Result<Json<Map<String, Value>>, JsonRejection>;

/// The body as a JSON object.
fn object(body: JsonBody) -> Result<Map<String, Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(body)
}

/// Takes the switch `name` out of the body: `false` when absent or null, else a boolean.
fn switch(body: &mut Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match body.remove(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(given)) => Ok(given),
        Some(_) => Err(ApiError::BadRequest(format!("{name} is true or false"))),
    }
}

/// What is left of the body once the `switches` are out: the selector, which refuses any
/// other field (a misspelt `dry_run` must not purge).
fn selector(body: Map<String, Value>, switches: &[&str]) -> Result<Selector, ApiError> {
    let spec: SelectorSpec = serde_json::from_value(Value::Object(body)).map_err(|e| {
        ApiError::BadRequest(format!("{e}, or the switches {}", switches.join(", ")))
    })?;
    Selector::parse(&spec).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn dry_run_query(query: Result<Query<DryRunQuery>, QueryRejection>) -> Result<bool, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(query.dry_run)
}

/// The archive, or with `dry_run` what it would hold.
async fn export(
    State(state): State<AppState>,
    query: Result<Query<DryRunQuery>, QueryRejection>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let mut body = object(body)?;
    let dry_run = switch(&mut body, "dry_run")? || dry_run_query(query)?;
    let selector = selector(body, &["dry_run"])?;
    if dry_run {
        let counts = state
            .data_requests
            .count(&selector, PurgeScope::ALL)
            .await?;
        return Ok(Json(counts_json(true, &counts)).into_response());
    }
    Ok(archive_download(state.data_requests.clone(), selector))
}

/// Deletes the subject (or with `dry_run` counts what would go); the counts.
async fn purge(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<DryRunQuery>, QueryRejection>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let mut body = object(body)?;
    let dry_run = switch(&mut body, "dry_run")? || dry_run_query(query)?;
    let scope = PurgeScope {
        suppressions: switch(&mut body, "include_suppressions")?,
        queued: switch(&mut body, "include_queued")?,
    };
    let switches = ["dry_run", "include_suppressions", "include_queued"];
    let selector = selector(body, &switches)?;
    let counts =
        purge_or_count(&state.data_requests, &selector, scope, dry_run, &principal).await?;
    Ok(Json(counts_json(dry_run, &counts)).into_response())
}
