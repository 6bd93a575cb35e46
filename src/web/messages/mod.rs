//! Received mail: the dashboard's pages (`pages`: the list, one message, its sandboxed HTML,
//! downloads and resend) and the JSON API over the same store (`api`: `/api/messages`).

mod api;
mod pages;

use axum::Router;

use crate::web::AppState;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().merge(pages::routes()).merge(api::routes())
}
