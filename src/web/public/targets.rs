//! The test targets `/target/{code}` and `/target/delay/{ms}` (contract §2.10): they answer any
//! request with that status, or with 200 after that delay, so a setup can be tried without
//! an app. Public in every mode: SMTP deliveries POST to them without credentials.
//!
//! The delay is capped at 30 s (the default delivery timeout: longer tells nothing more), and
//! outside open dev mode at most [`MAX_DELAYS_IN_FLIGHT`] delayed answers wait at once (the
//! rest get 429), so the public route cannot be used to hold connections open.

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
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

/// Longest delay `/target/delay/{ms}` sleeps: the default `[delivery] timeout_secs`.
pub(crate) const MAX_TARGET_DELAY_MS: u64 = 30_000;
/// Delayed answers waiting at once outside open dev mode.
pub(crate) const MAX_DELAYS_IN_FLIGHT: usize = 8;
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

/// `/target/delay/{ms}`: answers 200 after the delay (at most 30 s), to try timeouts.
async fn delayed_target(
    State(state): State<AppState>,
    path: Result<Path<u64>, PathRejection>,
    body: Body,
) -> Response {
    let Ok(Path(asked)) = path else {
        return ApiError::BadRequest("use /target/delay/{milliseconds}".into()).into_response();
    };
    // Open dev mode is this machine's own; anywhere else the waits are counted.
    let permit = match state.open {
        true => None,
        false => match state.delays.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => return too_many_delays(),
        },
    };
    let ms = asked.min(MAX_TARGET_DELAY_MS);
    let _ = axum::body::to_bytes(body, MAX_TARGET_BODY).await;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    drop(permit);
    let capped = match asked > ms {
        true => format!(" (the longest delay; {asked} ms asked)"),
        false => String::new(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Postern test target answered 200 after {ms} ms{capped}"),
    )
        .into_response()
}

fn too_many_delays() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::RETRY_AFTER, "30"),
        ],
        format!(
            "Postern test target: {MAX_DELAYS_IN_FLIGHT} delayed answers are already waiting; \
             try again later\n"
        ),
    )
        .into_response()
}
