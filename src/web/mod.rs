//! The web layer: sign-in, the dashboard's pages, the JSON API over the metadata store
//! and accounts, and the test targets.
//!
//! One folder per domain, each with its pages and JSON API side by side: `public` (the
//! routes outside the gate: test targets, OpenAPI, the send API, tracking), `session`
//! (sign-in, OIDC, a user's own account pages), `messages` (received mail), `outbound` (sent
//! mail, credentials, sending domains, suppressions), `admin` (users, API keys, audit log,
//! settings), `privacy` (where data goes), `data_requests` (export and purge one person's
//! data, admins only), `addresses` (managed addresses and domains, over `inbound::managed`), and
//! `stores` (attachment and message stores, over `objects`).
//! Shared by all: `listener` (the accept loop: header deadline, per-address caps), `host`
//! (the `Host` check in front of every route, against DNS rebinding), `auth`
//! (the gate: who is asking and may they, cookies, CSRF), `plain_http` (no API tokens over
//! plain HTTP from another machine), `ui` (layouts, escaping,
//! navigation and the other pieces every page repeats, the sandboxed mail view), `error`
//! (the JSON error shape), `about` (who is signed in, the API).
//!
//! `operations`: `/readyz` (public) and `/metrics` (admins), for monitoring.
//!
//! Route groups and their gate (see `auth`): public — `/healthz`, `/readyz`, `/api/openapi.json`,
//! `/target/*`, `POST /api/v0.1/{username}/messages` (its own bearer token), `/files/*` (signed,
//! expiring links to the local stores' files), `/t/o/*` and
//! `/t/c/*` (signed tracking tokens); sign-in — `/signin`, `/signin/oidc/*`, `/signin/totp`;
//! account — `/account[/*]`, `/signout`;
//! dashboard — everything else. The dashboard's pages go into the dashboard group and get
//! its rules for free.
//!
//! In front of every route, public ones included: the `Host` check (`host`), and
//! `X-Content-Type-Options: nosniff` on every answer (JSON, `/raw`, targets, errors), so no
//! browser guesses a type the answer does not declare.

mod about;
mod addresses;
mod admin;
mod auth;
mod data_requests;
mod error;
pub mod host;
pub mod listener;
mod live;
mod messages;
mod operations;
mod outbound;
mod plain_http;
mod privacy;
mod public;
pub mod redirect;
mod session;
mod signing;
mod stores;
mod ui;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, middleware};

use std::sync::Arc;

use crate::accounts::Accounts;
use crate::accounts::oidc::Oidc;
use crate::inbound::Inbound;
use crate::inbound::managed::Managed;
use crate::outbound::Outbound;
use crate::store::Store;
use auth::{Access, Gate};
use error::ApiError;

pub use auth::{Principal, Who};

/// How the listener treats requests that are not signed in, and which `Host` it answers.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Dev mode on a loopback listener: no sign-in, everything open.
    pub open: bool,
    /// Mark cookies `Secure` (`web.secure_cookies`).
    pub secure_cookies: bool,
    /// The `Host` values served (`host`); the rest get 421.
    pub hosts: host::HostRule,
    /// Take API tokens over plain HTTP from any peer (`web.allow_plain_http`: a TLS proxy
    /// in front); otherwise only from loopback (`plain_http`).
    pub allow_plain_http: bool,
    /// The listener serves HTTPS: API tokens are taken from any peer.
    pub https: bool,
    /// Send `Strict-Transport-Security` (HTTPS with a CA-issued certificate).
    pub hsts: bool,
}

/// What `/settings` shows, taken from the config and the bound listeners by `App::build`.
/// Nothing secret: paths and numbers only.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub smtp_listen: Option<std::net::SocketAddr>,
    /// `[submission]` listeners (empty: off).
    pub submission_listen: Vec<std::net::SocketAddr>,
    /// `[submission] tls_listen`: implicit TLS (port 465).
    pub submission_tls_listen: Vec<std::net::SocketAddr>,
    pub web_listen: Option<std::net::SocketAddr>,
    /// `web.listen` serves HTTPS.
    pub https: bool,
    /// The certificate every listener serves (`None`: `[tls] mode = "off"`).
    pub certificates: Option<Arc<crate::tls::Certificates>>,
    pub data_dir: std::path::PathBuf,
    pub spf: bool,
    /// `None`: the system resolver.
    pub dns_servers: Option<Vec<std::net::SocketAddr>>,
    /// `web.public_url`: where sign-in providers send browsers back.
    pub public_url: Option<url::Url>,
    /// `server.hostname`: the sending domains' MX and SPF records name it.
    pub hostname: String,
    /// `[auth] timeout_secs`: bounds each DNS query of the sending-domain check.
    pub dns_timeout: std::time::Duration,
    /// `[retention]` (dev mode: the newest messages): the settings page and the lists say it.
    pub retention: crate::retention::Retention,
}

impl Settings {
    /// Where this dashboard is reached, for the commands pages show: `web.public_url`, else
    /// the listener (loopback for an unspecified address).
    pub fn web_origin(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.as_str().trim_end_matches('/').to_string();
        }
        let scheme = if self.https { "https" } else { "http" };
        match self.web_listen {
            Some(listen) if listen.ip().is_unspecified() => {
                format!("{scheme}://127.0.0.1:{}", listen.port())
            }
            Some(listen) => format!("{scheme}://{listen}"),
            None => format!("{scheme}://localhost"),
        }
    }
}

#[derive(Clone)]
struct AppState {
    store: Store,
    accounts: Accounts,
    managed: Managed,
    open: bool,
    secure_cookies: bool,
    /// Bearer tokens are taken from any peer: the listener serves HTTPS, or
    /// `web.allow_plain_http` vouches for a TLS proxy in front (`plain_http`).
    tokens_from_any_peer: bool,
    /// Sends kept messages again ("Resend to target"); `None` where nothing receives mail.
    inbound: Option<Arc<Inbound>>,
    /// The send API and the outbound pages; `None` where nothing sends mail.
    outbound: Option<Outbound>,
    settings: Arc<Settings>,
    /// Where data goes (`/privacy`).
    privacy: crate::privacy::Privacy,
    /// The sign-in providers (`[[web.oidc]]`; none is fine).
    oidc: Oidc,
    /// The delayed test target's waits in flight (`public::targets`).
    delays: Arc<tokio::sync::Semaphore>,
    /// Exports and purges of a data subject (`/data-requests`, `/api/exports`, `/api/purges`).
    data_requests: crate::data_requests::DataRequests,
    /// The instance's counters (`/metrics`).
    metrics: crate::metrics::Metrics,
    /// The app's shutdown: `/readyz` says "shutting down" once it is triggered.
    shutdown: Option<crate::shutdown::Shutdown>,
    /// Webhook signing secrets (`/signing`).
    signing: crate::webhook::Signing,
    /// Attachment and message stores (`/stores`, and the local stores' `/files/…`).
    objects: crate::objects::Objects,
}

/// The services the web listener serves, built by `App::build`.
pub struct Services {
    pub store: Store,
    pub accounts: Accounts,
    pub managed: Managed,
    /// Sends kept messages again; `None` where nothing receives mail.
    pub inbound: Option<Arc<Inbound>>,
    /// The send API and the outbound pages; `None` where nothing sends mail.
    pub outbound: Option<Outbound>,
    /// The sign-in providers (`[[web.oidc]]`; none is fine).
    pub oidc: Oidc,
    /// Where data goes (`/privacy`).
    pub privacy: crate::privacy::Privacy,
    /// Exports and purges of a data subject.
    pub data_requests: crate::data_requests::DataRequests,
    /// The instance's counters (`/metrics`).
    pub metrics: crate::metrics::Metrics,
    /// The app's shutdown (`/readyz`); `None`: never draining.
    pub shutdown: Option<crate::shutdown::Shutdown>,
    /// Webhook signing secrets (`/signing`).
    pub signing: crate::webhook::Signing,
    /// Attachment and message stores (`/stores`, `/files/…`).
    pub objects: crate::objects::Objects,
}

pub fn router(services: Services, options: WebOptions, settings: Settings) -> Router {
    let Services {
        store,
        accounts,
        managed,
        inbound,
        outbound,
        oidc,
        privacy,
        data_requests,
        metrics,
        shutdown,
        signing,
        objects,
    } = services;
    let state = AppState {
        oidc,
        privacy,
        settings: Arc::new(settings),
        store,
        accounts,
        managed,
        inbound,
        outbound,
        open: options.open,
        secure_cookies: options.secure_cookies,
        // Over HTTPS a token never crossed the network in clear.
        tokens_from_any_peer: options.allow_plain_http || options.https,
        delays: Arc::new(tokio::sync::Semaphore::new(public::MAX_DELAYS_IN_FLIGHT)),
        data_requests,
        metrics,
        shutdown,
        signing,
        objects,
    };
    let behind = |routes: Router<AppState>, access: Access| {
        let gate = Gate {
            state: state.clone(),
            access,
        };
        routes.route_layer(middleware::from_fn_with_state(gate, auth::gate))
    };
    let dashboard = Router::new()
        .merge(messages::routes())
        .merge(live::routes())
        .merge(outbound::routes())
        .merge(admin::routes())
        .merge(addresses::api::routes())
        .merge(addresses::pages::routes())
        .merge(about::routes())
        .merge(privacy::routes())
        .merge(data_requests::routes())
        .merge(operations::routes())
        .merge(signing::routes())
        .merge(stores::routes())
        .merge(ui::routes());
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(operations::public_routes())
        .merge(public::routes())
        .merge(behind(session::signin_routes(), Access::SignIn))
        .merge(behind(
            session::second_factor_routes(),
            Access::SecondFactor,
        ))
        .merge(behind(session::account_routes(), Access::Account))
        .merge(behind(messages::reader_routes(), Access::Reader))
        .merge(behind(dashboard, Access::Dashboard))
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .with_state(state)
        // The last layer is the outermost: nosniff covers the Host check's 421 too.
        .layer(middleware::from_fn_with_state(options.hosts, host::check))
        .layer(middleware::map_response(nosniff));
    match options.hsts {
        true => router.layer(middleware::map_response(hsts)),
        false => router,
    }
}

/// `Strict-Transport-Security` for a year on every answer, when the listener serves HTTPS
/// with a certificate browsers trust (not the subdomains: they may be other services).
async fn hsts(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// `X-Content-Type-Options: nosniff` on every answer (pages set it too; inserting again
/// replaces, never duplicates).
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
