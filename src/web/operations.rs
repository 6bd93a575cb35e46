//! What monitoring asks: `GET /readyz` (public, cheap, nothing secret) and `GET /metrics`
//! (OpenMetrics text, admins only: an admin API key as `Authorization: Bearer`, or a
//! signed-in admin; behind the dashboard gate).
//!
//! `/healthz` says the process answers; `/readyz` says it can do its job: the store takes a
//! write (rolled back), the listeners accept (not draining for shutdown), and the certificate
//! is there and unexpired when TLS is on. 200 or 503, with a JSON body naming each check.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};
use tracing::warn;

use crate::accounts::Role;
use crate::metrics::{CONTENT_TYPE, Scrape};
use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::error::ApiError;

/// Longer than this, the store counts as not writable (a stuck writer is not ready).
const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// Outside the gate.
pub(super) fn public_routes() -> Router<AppState> {
    Router::new().route("/readyz", get(readyz))
}

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let checks = [
        ("store", store_check(&state).await),
        ("listeners", listeners_check(&state)),
        ("certificate", certificate_check(&state)),
    ];
    let ready = checks.iter().all(|(_, check)| check.is_ok());
    let not_ready: Vec<&str> = checks
        .iter()
        .filter(|(_, check)| check.is_err())
        .map(|(name, _)| *name)
        .collect();
    let checks: Map<String, Value> = checks
        .into_iter()
        .map(|(name, check)| (name.to_string(), check.unwrap_or_else(|e| e).into()))
        .collect();
    let status = match ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({ "ready": ready, "not_ready": not_ready, "checks": checks });
    (status, Json(body)).into_response()
}

/// `Ok(what is fine)` or `Err(what is not)`: short words, nothing secret.
type Check = Result<String, String>;

async fn store_check(state: &AppState) -> Check {
    match tokio::time::timeout(STORE_DEADLINE, state.store.check_writable()).await {
        Ok(Ok(())) => Ok("writable".into()),
        Ok(Err(error)) => {
            warn!(%error, "readiness: the store cannot be written");
            Err("not writable (see the log)".into())
        }
        Err(_) => {
            warn!("readiness: the store took over two seconds to take a write");
            Err("no write within 2 s".into())
        }
    }
}

fn listeners_check(state: &AppState) -> Check {
    match &state.shutdown {
        Some(shutdown) if shutdown.is_triggered() => Err("shutting down".into()),
        _ => Ok("accepting".into()),
    }
}

fn certificate_check(state: &AppState) -> Check {
    let Some(certificates) = &state.settings.certificates else {
        return Ok("TLS off".into());
    };
    match certificates.status().days_left(SystemTime::now()) {
        Some(days) if days >= 0 => Ok(format!("{days} days left")),
        Some(_) => Err("expired".into()),
        None => Err("no readable certificate".into()),
    }
}

async fn metrics(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    if principal.role() != Role::Admin {
        let why = "metrics are for admins (an admin API key or a signed-in admin)";
        return ApiError::Status(StatusCode::FORBIDDEN, why.into()).into_response();
    }
    let (queue_depth, oldest) = match state.store.queue_depth().await {
        Ok(depth) => depth,
        Err(error) => return ApiError::Store(error).into_response(),
    };
    // The queue's times are on the app clock.
    let now = state.accounts.clock().unix();
    let certificate = state.settings.certificates.as_ref().and_then(|c| {
        let status = c.status();
        let days = status.days_left(SystemTime::now())?;
        Some((status.names.first().cloned().unwrap_or_default(), days))
    });
    let scrape = Scrape {
        queue_depth,
        queue_oldest_seconds: oldest.map_or(0, |queued| (now - queued).max(0)),
        certificate,
        store_bytes: state.store.size_bytes(),
    };
    let text = state.metrics.render(&scrape);
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
