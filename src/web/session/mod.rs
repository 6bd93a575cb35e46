//! Signing in and a user's own pages: `signin` (email and password, then the second
//! factor), `oidc` (sign-in with an identity provider) and `account` (who you are, your
//! sessions, TOTP enrolment, password change, sign-out). Each group has its own gate class.

mod account;
mod oidc;
mod signin;

use axum::Router;

use crate::web::AppState;

/// `/signin` and `/signin/oidc/*`, behind the gate's `Access::SignIn`.
pub(super) fn signin_routes() -> Router<AppState> {
    Router::new().merge(signin::routes()).merge(oidc::routes())
}

/// `/signin/totp`, behind the gate's `Access::SecondFactor`.
pub(super) fn second_factor_routes() -> Router<AppState> {
    signin::second_factor_routes()
}

/// `/account[/*]` and `/signout`, behind the gate's `Access::Account`.
pub(super) fn account_routes() -> Router<AppState> {
    account::routes()
}
