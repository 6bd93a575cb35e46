//! The suppression list as JSON (spec §6.11), over `outbound::suppression`:
//! `GET /api/suppressions`, `POST /api/suppressions` `{"address", "reason"?}` (201, or 200
//! when listed already), `DELETE /api/suppressions/{address}` (204, 404 when not listed).
//! Reads for every role, writes for admins (the gate's rule); writes are audited.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use crate::accounts::{AuditAction, Client};
use crate::outbound::suppression::SuppressionError;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/suppressions", get(list).post(add))
        .route("/api/suppressions/{address}", delete(remove))
}

#[derive(Debug, Deserialize)]
struct NewSuppression {
    address: String,
    reason: Option<String>,
}

fn outbound(state: &AppState) -> Result<&crate::outbound::Outbound, ApiError> {
    state.outbound.as_ref().ok_or(ApiError::NotFound(
        "outbound mail is not enabled on this instance",
    ))
}

async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let rows = outbound(&state)?.suppressions().await?;
    Ok(Json(json!({ "suppressions": rows })).into_response())
}

/// Adds `address` through `Outbound::suppress` and, when it was not listed yet, writes the
/// audit row; the normalised address and whether it was added. Shared with the
/// `/suppressions` page.
pub(super) async fn suppress(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    address: &str,
    reason: Option<&str>,
) -> Result<(String, bool), ApiError> {
    let (address, added) = match outbound(state)?.suppress(address, reason).await {
        Ok(result) => result,
        Err(SuppressionError::BadAddress(text)) => {
            return Err(ApiError::Field {
                field: "address".into(),
                message: "not an email address".into(),
                detail: SuppressionError::BadAddress(text).to_string(),
            });
        }
        Err(SuppressionError::Store(error)) => return Err(ApiError::Store(error)),
    };
    if added {
        state
            .accounts
            .audit(
                &principal.actor(),
                AuditAction::ConfigChanged,
                Some(&address),
                client.map(|c| c.ip),
                Some("suppression added"),
            )
            .await?;
    }
    Ok((address, added))
}

/// Removes `address` through `Outbound::unsuppress` and writes the audit row; false when
/// it was not listed. Shared with the `/suppressions` page.
pub(super) async fn unsuppress(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    address: &str,
) -> Result<bool, ApiError> {
    if !outbound(state)?.unsuppress(address).await? {
        return Ok(false);
    }
    state
        .accounts
        .audit(
            &principal.actor(),
            AuditAction::ConfigChanged,
            Some(address.trim()),
            client.map(|c| c.ip),
            Some("suppression removed"),
        )
        .await?;
    Ok(true)
}

async fn add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    body: Result<Json<NewSuppression>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (address, added) = suppress(
        &state,
        &principal,
        Some(&client),
        &body.address,
        body.reason.as_deref(),
    )
    .await?;
    let row = outbound(&state)?
        .suppressions()
        .await?
        .into_iter()
        .find(|row| row.address.eq_ignore_ascii_case(&address));
    let status = match added {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(row)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    if !unsuppress(&state, &principal, Some(&client), &address).await? {
        return Err(ApiError::NotFound(
            "this address is not on the suppression list",
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
