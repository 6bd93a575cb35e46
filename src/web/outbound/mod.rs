//! Outbound mail in the dashboard, one module per concept, each with its pages and its JSON
//! API side by side: `sent` (sent mail: `/outbound`, `/api/outbound`), `credentials` (SMTP
//! credentials), `sending_domains` (domains with their DKIM keys and DNS records) and
//! `suppressions` (the suppression list).
//!
//! Viewers read; the gate refuses their writes (403) and any write without the session's
//! CSRF token. Pages and JSON make their changes through the same helpers (the same
//! `Outbound` calls as the CLI, plus the audit row). Everything that came with the mail or
//! from DNS is escaped; the email's HTML only ever reaches the sandboxed frame.

mod credentials;
mod sending_domains;
mod sent;
mod suppressions;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Json, Router};

use crate::outbound::Outbound;
use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::error::ApiError;
use crate::web::ui;
use crate::web::ui::form::Refused;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .merge(sent::routes())
        .merge(credentials::routes())
        .merge(sending_domains::routes())
        .merge(suppressions::routes())
}

/// The outbound service, or 404 where nothing sends mail.
fn outbound(state: &AppState) -> Result<&Outbound, ApiError> {
    state.outbound.as_ref().ok_or(ApiError::NotFound(
        "outbound mail is not enabled on this instance",
    ))
}

/// A JSON body, or 400 with what was wrong with it.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// An API error from a form's action: the page again for what the user can fix (422 naming
/// the field, or the service's status such as 409), the error page for the rest.
fn refused(principal: &Principal, error: ApiError, back: (&str, &str)) -> Refused {
    match error {
        ApiError::Field { message: why, .. } => {
            Refused::Again(StatusCode::UNPROCESSABLE_ENTITY, why)
        }
        ApiError::Status(status, why) => Refused::Again(status, why),
        error => Refused::Answer(error_page(principal, error, back)),
    }
}

/// An API error as a page: the sentence for what the request got wrong, an opaque 500
/// (logged) for the rest.
fn error_page(principal: &Principal, error: ApiError, back: (&str, &str)) -> Response {
    let (status, text) = match error {
        ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what.to_string()),
        ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
        ApiError::Status(status, why) => (status, why),
        ApiError::Field { message: why, .. } => (StatusCode::UNPROCESSABLE_ENTITY, why),
        ApiError::Store(error) => {
            tracing::error!(%error, "outbound page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        }
        ApiError::Internal(error) => {
            tracing::error!(%error, "outbound page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        }
    };
    ui::message(principal, status, &text, back)
}
