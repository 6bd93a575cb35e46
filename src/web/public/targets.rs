//! The test targets `/target/{code}` and `/target/delay/{ms}` (spec §2.10): they answer any
//! request with that status, or with 200 after that delay, so a setup can be tried without
//! an app. Public in every mode: SMTP deliveries POST to them without credentials.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::web::AppState;
use crate::web::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/target/{code}", any(test_target))
        .route("/target/delay/{ms}", any(delayed_target))
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
