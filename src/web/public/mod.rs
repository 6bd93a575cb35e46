//! The routes outside the gate: the test targets (`targets`), the OpenAPI document
//! (`openapi`), the CloudMailin send API with its own bearer token (`send`) and the open
//! pixel and click redirects with their signed tokens (`tracking`), and the local stores'
//! files behind signed, expiring links (`files`).

mod files;
mod openapi;
mod send;
mod targets;
mod tracking;

use axum::Router;

use crate::web::AppState;

pub(super) use targets::MAX_DELAYS_IN_FLIGHT;

/// Public: no sign-in; each route checks what it needs itself.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .merge(targets::routes())
        .merge(openapi::routes())
        .merge(send::routes())
        .merge(tracking::routes())
        .merge(files::routes())
}
