//! The web listener: the JSON API over the metadata store and the test targets.
//!
//! One file per concern: `messages` (the `/api/messages` API), `targets` (the test
//! targets), `error` (the JSON error shape). No authentication yet: keep the listener on
//! loopback (the default).

mod error;
mod messages;
mod targets;

use axum::Router;
use axum::routing::get;

use crate::store::Store;
use error::ApiError;

#[derive(Clone)]
struct AppState {
    store: Store,
}

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(messages::routes())
        .merge(targets::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .with_state(AppState { store })
}

async fn index() -> &'static str {
    concat!(
        "Postern\n\n",
        "GET /api/messages           received messages, newest first; filters: ?address= &recipient=\n",
        "                            &sender= &status=successful|rejected|delayed|captured\n",
        "                            &since=2026-11-28 &until=2026-11-29 &limit=50 &before=ID\n",
        "GET /api/messages/{id}      one message with every delivery attempt\n",
        "GET /api/messages/{id}/raw  the raw message, where it is kept (dev mode)\n",
        "ANY /target/{code}          a test target answering that HTTP status\n",
        "ANY /target/delay/{ms}      a test target answering 200 after a delay\n",
    )
}
