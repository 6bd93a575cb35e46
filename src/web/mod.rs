//! The web listener: sign-in, the JSON API over the metadata store and accounts, and the
//! test targets.
//!
//! One file per concern: `auth` (the gate: who is asking and may they, cookies, CSRF),
//! `signin` (the sign-in pages), `account` (a user's own pages and sign-out), `messages`
//! (the `/api/messages` API), `accounts_api` (users, API keys, audit log as JSON),
//! `addresses_api` (managed addresses and domains as JSON, over `manage`), `addresses_pages`
//! (the same as HTML forms), `openapi` (`/api/openapi.json`), `targets` (the test targets),
//! `html` (page layout and escaping), `error` (the JSON error shape).
//!
//! Route groups and their gate (see `auth`): public — `/healthz`, `/api/openapi.json`,
//! `/target/*`; sign-in — `/signin`, `/signin/totp`; account — `/account/*`, `/signout`;
//! dashboard — everything else. The dashboard's pages go into the dashboard group and get
//! its rules for free.

mod account;
mod accounts_api;
mod addresses_api;
mod addresses_pages;
mod auth;
mod error;
mod html;
mod messages;
mod openapi;
mod signin;
mod targets;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router, middleware};

use crate::accounts::{Accounts, Role};
use crate::manage::Managed;
use crate::store::Store;
use auth::{Access, Gate};
use error::ApiError;

pub use auth::{Principal, Who};

/// How the listener treats requests that are not signed in.
#[derive(Debug, Clone, Copy)]
pub struct WebOptions {
    /// Dev mode on a loopback listener: no sign-in, everything open.
    pub open: bool,
    /// Mark cookies `Secure` (`web.secure_cookies`).
    pub secure_cookies: bool,
}

#[derive(Clone)]
struct AppState {
    store: Store,
    accounts: Accounts,
    managed: Managed,
    open: bool,
    secure_cookies: bool,
}

pub fn router(store: Store, accounts: Accounts, managed: Managed, options: WebOptions) -> Router {
    let state = AppState {
        store,
        accounts,
        managed,
        open: options.open,
        secure_cookies: options.secure_cookies,
    };
    let behind = |routes: Router<AppState>, access: Access| {
        let gate = Gate {
            state: state.clone(),
            access,
        };
        routes.route_layer(middleware::from_fn_with_state(gate, auth::gate))
    };
    let dashboard = Router::new()
        .route("/", get(index))
        .merge(messages::routes())
        .merge(accounts_api::routes())
        .merge(addresses_api::routes())
        .merge(addresses_pages::routes());
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(targets::routes())
        .merge(openapi::routes())
        .merge(behind(signin::routes(), Access::SignIn))
        .merge(behind(signin::second_factor_routes(), Access::SecondFactor))
        .merge(behind(account::routes(), Access::Account))
        .merge(behind(dashboard, Access::Dashboard))
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .with_state(state)
}

/// The home page: who is signed in, and what there is so far.
async fn index(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let csrf = principal.csrf_token.clone().unwrap_or_default();
    let who = match &principal.who {
        Who::User(session) => {
            let user = &session.user;
            let role = match user.role {
                Role::Admin => "admin",
                Role::Viewer => "viewer (read-only)",
            };
            format!(
                concat!(
                    "<p>Signed in as <strong>{email}</strong>, {role}. Session ends at {ends} (UTC) unless used.</p>\n",
                    "<p><a href=\"/account/totp\">Two-factor authentication</a> · <a href=\"/account/password\">Change password</a></p>\n",
                    "<form method=\"post\" action=\"/signout\">{csrf}<button type=\"submit\">Sign out</button></form>\n",
                    "<form method=\"post\" action=\"/signout\">{csrf}<input type=\"hidden\" name=\"everywhere\" value=\"1\">",
                    "<button type=\"submit\">Sign out everywhere</button></form>\n",
                ),
                email = html::escape(&user.email),
                role = role,
                ends = session
                    .expires_at(state.accounts.policy())
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                csrf = html::csrf_field(&csrf),
            )
        }
        Who::ApiKey(key) => format!(
            "<p>API key <strong>{}</strong>.</p>\n",
            html::escape(&key.name)
        ),
        Who::Dev => {
            "<p>Dev mode: the listener is on loopback, so nobody signs in.</p>\n".to_string()
        }
    };
    let body = format!(
        concat!(
            "{who}<h2>API</h2>\n<ul>\n",
            "<li><a href=\"/api/messages\">GET /api/messages</a>: received messages, newest first; filters ",
            "<code>?address= &amp;recipient= &amp;sender= &amp;status=successful|rejected|delayed|captured ",
            "&amp;since=2026-11-28 &amp;until=2026-11-29 &amp;limit=50 &amp;before=ID</code></li>\n",
            "<li>GET /api/messages/{{id}}: one message with every delivery attempt</li>\n",
            "<li>GET /api/messages/{{id}}/raw: the raw message, where it is kept (dev mode)</li>\n",
            "<li><a href=\"/api/users\">GET /api/users</a> · <a href=\"/api/keys\">GET /api/keys</a> · POST /api/keys · DELETE /api/keys/{{id}} · ",
            "<a href=\"/api/audit\">GET /api/audit</a></li>\n",
            "<li><a href=\"/api/addresses\">GET /api/addresses</a> · POST /api/addresses · GET/PUT/DELETE /api/addresses/{{id}} · ",
            "<a href=\"/api/domains\">GET /api/domains</a> · POST /api/domains · GET/PUT/DELETE /api/domains/{{id}}</li>\n",
            "<li>ANY /target/{{code}}, /target/delay/{{ms}}: test targets</li>\n</ul>",
        ),
        who = who,
    );
    html::page(StatusCode::OK, "Postern", &body)
}
