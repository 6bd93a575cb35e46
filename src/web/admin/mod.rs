//! The administration pages and their JSON API side by side, over the accounts service
//! (which writes the audit rows): `users`, `keys` (API keys), `audit` (the audit log) and
//! `settings` (read-only; `certificate`: its ACME section). Viewers read; the gate refuses their writes (403) and any write
//! without the session's CSRF token.

mod audit;
mod certificate;
mod keys;
mod settings;
mod users;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;

use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::ui;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .merge(users::routes())
        .merge(keys::routes())
        .merge(audit::routes())
        .merge(settings::routes())
}

/// The way back from an error page on any admin page.
const BACK: (&str, &str) = ("/keys", "API keys");

/// A page with only an error message, and the way back.
fn message(principal: &Principal, status: StatusCode, text: &str) -> Response {
    ui::message(principal, status, text, BACK)
}
