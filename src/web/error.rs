//! JSON errors, `{"status": N, "error": "…"}`: the shape every `/api` answer uses (and the
//! outbound API will use too). Store failures are logged and shown as an opaque 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::accounts::AccountError;
use crate::data_requests::RequestError;
use crate::store::StoreError;

pub(super) enum ApiError {
    NotFound(&'static str),
    BadRequest(String),
    /// 422: one field of a request body is not valid; `field` names it (for a form to show
    /// `message` next to it), `detail` is the whole sentence.
    Field {
        field: String,
        message: String,
        detail: String,
    },
    /// Any other status with its message (401, 403, 429, …).
    Status(StatusCode, String),
    Store(StoreError),
    /// A failure worth logging that the client should not see the details of.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Field {
                field,
                message,
                detail,
            } => {
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                let body = json!({
                    "status": status.as_u16(),
                    "error": detail,
                    "field": field,
                    "message": message,
                });
                return (status, Json(body)).into_response();
            }
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what.to_string()),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            ApiError::Status(status, why) => (status, why),
            ApiError::Store(error) => {
                tracing::error!(%error, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_string(),
                )
            }
            ApiError::Internal(error) => {
                tracing::error!(%error, "request failed");
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

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> ApiError {
        match error {
            AccountError::Store(error) => ApiError::Store(error),
            AccountError::Internal(error) => ApiError::Internal(error),
            AccountError::NoSuchUser(_) => ApiError::NotFound("no such user"),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> ApiError {
        match error {
            RequestError::Selector(error) => ApiError::BadRequest(error.to_string()),
            RequestError::Store(error) => ApiError::Store(error),
            RequestError::Write(error) => ApiError::Internal(error.to_string()),
        }
    }
}

/// A numeric id from the path; anything else is a JSON 400 like every other API error.
pub(super) fn path_id(
    path: Result<axum::extract::Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<i64, ApiError> {
    path.map(|axum::extract::Path(id)| id)
        .map_err(|_| ApiError::BadRequest("ids are numbers".into()))
}
