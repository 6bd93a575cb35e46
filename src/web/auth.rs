//! Who is asking, and may they: the gate in front of every route that is not public.
//!
//! The router puts each group of routes behind [`gate`] with its [`Access`] class, so a rule
//! follows a route wherever it is defined; the public routes (`/healthz`,
//! `/api/openapi.json`, the test targets) are simply not behind it. The rules, in order:
//!
//! 1. `Authorization: Bearer <API key>` (dashboard routes only): a valid key is the
//!    principal, no CSRF token needed (a browser never sends it by itself); an invalid one is
//!    401 wherever it is sent. Over plain HTTP from another machine it is 403 first
//!    (`plain_http`), unless `web.allow_plain_http`.
//! 2. A session cookie (`postern_session`) of a signed-in user: the principal. A user who
//!    must change a one-time password, or enrol TOTP where `web.require_totp` is set, is sent
//!    to that page first (303; 403 on `/api`).
//! 3. Dev mode on a loopback listener: everything is open, as in Mailpit; the principal is
//!    "dev", with admin rights. Its account pages, without a session, go home.
//! 4. Nobody: browsers get 303 to `/signin?next=…`, `/api/*` gets 401 JSON.
//!
//! Then, for state-changing methods (anything but GET, HEAD, OPTIONS): viewers get 403 on
//! dashboard routes (their own account pages, sign-out and their read state stay open to
//! them), and a request
//! without a valid CSRF token gets 403. The token is sent as the `csrf_token` field of a
//! urlencoded form or as the `X-CSRF-Token` header (multipart forms and JSON use the header).
//! It is bound to the session id, or before sign-in (and in dev mode) to an anonymous
//! `postern_csrf` cookie.
//!
//! Handlers read the principal with `Extension<Principal>`, the client with
//! `Extension<Client>`, and on the sign-in pages the form's token with `Extension<CsrfToken>`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::ui::{self, html};
use crate::accounts::{Actor, ApiKey, Client, Role, Session, User, csrf};

pub(super) const SESSION_COOKIE: &str = "postern_session";
pub(super) const ANONYMOUS_COOKIE: &str = "postern_csrf";
const CSRF_HEADER: &str = "x-csrf-token";
const CSRF_FIELD: &str = "csrf_token";
/// The largest urlencoded form the gate reads to find the token.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(super) const PASSWORD_PAGE: &str = "/account/password";
pub(super) const TOTP_PAGE: &str = "/account/totp";

/// What a group of routes requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// `/signin`: nobody signed in; CSRF bound to the anonymous cookie.
    SignIn,
    /// `/signin/totp`: a session that waits for its second factor.
    SecondFactor,
    /// The user's own pages and sign-out: a signed-in user of any role.
    Account,
    /// Everything else: a user, an API key, or dev mode; viewers only read.
    Dashboard,
    /// What each reader keeps for themselves (read state): as `Dashboard`, but viewers (users
    /// and keys) write too.
    Reader,
}

#[derive(Clone)]
pub(super) struct Gate {
    pub(super) state: AppState,
    pub(super) access: Access,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    pub who: Who,
    /// The token for this principal's forms; `None` for API keys, which need none.
    pub csrf_token: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Who {
    User(Session),
    ApiKey(ApiKey),
    /// Dev mode on loopback: nobody signs in.
    Dev,
}

impl Principal {
    pub fn role(&self) -> Role {
        match &self.who {
            Who::User(session) => session.user.role,
            Who::ApiKey(key) => key.role,
            Who::Dev => Role::Admin,
        }
    }

    /// For the audit log.
    pub fn actor(&self) -> Actor {
        match &self.who {
            Who::User(session) => Actor::user(&session.user),
            Who::ApiKey(key) => Actor::ApiKey(key.name.clone()),
            Who::Dev => Actor::Dev,
        }
    }

    /// Whose read state the inbox keeps (`store` `inbound_reads`): each user, each API
    /// key, and dev mode's one reader.
    pub fn reader(&self) -> String {
        match &self.who {
            Who::User(session) => format!("user:{}", session.user.id),
            Who::ApiKey(key) => format!("key:{}", key.id),
            Who::Dev => "dev".into(),
        }
    }

    pub fn session(&self) -> Option<&Session> {
        match &self.who {
            Who::User(session) => Some(session),
            _ => None,
        }
    }
}

/// The CSRF token for the forms of `/signin` and `/signin/totp`.
#[derive(Debug, Clone)]
pub(super) struct CsrfToken(pub(super) String);

/// The session waiting for its second factor, on `/signin/totp`.
#[derive(Debug, Clone)]
pub(super) struct PendingSession(pub(super) Session);

pub(super) async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let mut cookies = Vec::new();
    let mut response = match admit(&gate, request, &mut cookies).await {
        Ok(request) => next.run(request).await,
        Err(denied) => denied,
    };
    let headers = response.headers_mut();
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    // Nothing behind the gate belongs in a shared cache.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// What the gate knows about a request before it decides.
struct Asking {
    client: Client,
    path: String,
    /// `/api/*` and `/metrics` (machines ask): refusals are JSON, never a sign-in redirect.
    api: bool,
    /// A state-changing method: needs the CSRF token, and admin rights on the dashboard.
    writes: bool,
    session_token: Option<String>,
    /// The session of `session_token`, if it is live.
    session: Option<Session>,
}

impl Asking {
    /// What the request says; the session is looked up by [`admit`].
    fn of(request: &Request) -> Asking {
        let path = request.uri().path().to_string();
        Asking {
            client: client_of(request),
            api: path.starts_with("/api/") || path == "/metrics",
            writes: is_write(request.method()),
            path,
            session_token: cookie(request.headers(), SESSION_COOKIE),
            session: None,
        }
    }
}

/// The request, with what handlers need in its extensions, or the answer that refuses it.
/// Cookies to set go into `cookies` (also on refusals).
async fn admit(
    gate: &Gate,
    request: Request,
    cookies: &mut Vec<String>,
) -> Result<Request, Response> {
    let mut asking = Asking::of(&request);
    if let Some(token) = &asking.session_token {
        asking.session = gate.state.accounts.session(token).await.map_err(internal)?;
    }
    // Dev mode on loopback needs no account: its account pages, asked for without a session,
    // go home instead of to a sign-in nobody needs.
    if gate.state.open && gate.access == Access::Account && asking.session.is_none() {
        return Err(redirect("/"));
    }
    match gate.access {
        Access::SignIn => admit_signing_in(gate, request, asking, cookies).await,
        Access::SecondFactor => admit_second_factor(request, asking).await,
        Access::Account | Access::Dashboard | Access::Reader => {
            admit_signed_in(gate, request, asking, cookies).await
        }
    }
}

/// `/signin`: anyone not signed in yet (signed-in users reading it go home); the CSRF
/// token is bound to the anonymous cookie.
async fn admit_signing_in(
    gate: &Gate,
    request: Request,
    asking: Asking,
    cookies: &mut Vec<String>,
) -> Result<Request, Response> {
    let signed_in = asking
        .session
        .as_ref()
        .is_some_and(|s| !s.second_factor_pending);
    if !asking.writes && signed_in {
        return Err(redirect("/"));
    }
    let secret = anonymous_secret(request.headers(), cookies, gate.state.secure_cookies);
    let mut request = check_csrf(request, &secret, asking.api).await?;
    request
        .extensions_mut()
        .insert(CsrfToken(csrf::token_for(&secret)));
    request.extensions_mut().insert(asking.client);
    Ok(request)
}

/// `/signin/totp`: a session that waits for its second factor.
async fn admit_second_factor(request: Request, asking: Asking) -> Result<Request, Response> {
    let (Some(token), Some(session)) = (asking.session_token, asking.session) else {
        return Err(redirect("/signin"));
    };
    if !session.second_factor_pending {
        return Err(redirect("/"));
    }
    let mut request = check_csrf(request, &token, asking.api).await?;
    request
        .extensions_mut()
        .insert(CsrfToken(session.csrf_token().to_string()));
    request.extensions_mut().insert(PendingSession(session));
    request.extensions_mut().insert(asking.client);
    Ok(request)
}

/// The account pages and the dashboard, rules 1 to 4 of the module header in order: an API
/// key (dashboard only), a signed-in user, dev mode (dashboard only), or nobody.
async fn admit_signed_in(
    gate: &Gate,
    request: Request,
    asking: Asking,
    cookies: &mut Vec<String>,
) -> Result<Request, Response> {
    let dashboard = matches!(gate.access, Access::Dashboard | Access::Reader);
    if dashboard && let Some(presented) = bearer(request.headers()) {
        return admit_api_key(gate, request, asking, &presented).await;
    }
    if let (Some(token), Some(session)) = (&asking.session_token, &asking.session)
        && !session.second_factor_pending
    {
        return admit_user(gate, request, &asking, token, session).await;
    }
    if dashboard && gate.state.open {
        return admit_dev(request, asking, cookies, gate.state.secure_cookies).await;
    }
    Err(refuse_nobody(
        &request,
        &asking,
        cookies,
        gate.state.secure_cookies,
    ))
}

/// Rule 1: a valid key is the principal, without CSRF token; viewer keys only read.
async fn admit_api_key(
    gate: &Gate,
    request: Request,
    asking: Asking,
    presented: &str,
) -> Result<Request, Response> {
    let state = &gate.state;
    if let Some(refused) = super::plain_http::refusal(asking.client.ip, state.tokens_from_any_peer)
    {
        return Err(refused);
    }
    let Some(key) = state.accounts.api_key(presented).await.map_err(internal)? else {
        return Err(unauthorized("invalid or revoked API key"));
    };
    if asking.writes && key.role != Role::Admin && gate.access != Access::Reader {
        return Err(deny(
            asking.api,
            StatusCode::FORBIDDEN,
            "viewers have read-only access",
        ));
    }
    let principal = Principal {
        who: Who::ApiKey(key),
        csrf_token: None,
    };
    Ok(with_principal(request, principal, asking.client))
}

/// Rule 2: a signed-in user, after any step they must take first; viewers only read on the
/// dashboard; writes carry the session's CSRF token.
async fn admit_user(
    gate: &Gate,
    request: Request,
    asking: &Asking,
    token: &str,
    session: &Session,
) -> Result<Request, Response> {
    let user = &session.user;
    let require_totp = gate.state.accounts.policy().require_totp;
    if let Some(page) = required_step(user, require_totp, &asking.path) {
        return Err(if asking.api {
            deny(asking.api, StatusCode::FORBIDDEN, step_message(page))
        } else {
            redirect(page)
        });
    }
    if gate.access == Access::Dashboard && asking.writes && user.role != Role::Admin {
        return Err(deny(
            asking.api,
            StatusCode::FORBIDDEN,
            "viewers have read-only access",
        ));
    }
    let request = check_csrf(request, token, asking.api).await?;
    let principal = Principal {
        who: Who::User(session.clone()),
        csrf_token: Some(session.csrf_token().to_string()),
    };
    Ok(with_principal(request, principal, asking.client.clone()))
}

/// Rule 3: dev mode on loopback; the CSRF token is bound to the anonymous cookie.
async fn admit_dev(
    request: Request,
    asking: Asking,
    cookies: &mut Vec<String>,
    secure: bool,
) -> Result<Request, Response> {
    let secret = anonymous_secret(request.headers(), cookies, secure);
    let request = check_csrf(request, &secret, asking.api).await?;
    let principal = Principal {
        who: Who::Dev,
        csrf_token: Some(csrf::token_for(&secret)),
    };
    Ok(with_principal(request, principal, asking.client))
}

/// Rule 4: nobody. `/api/*` gets 401; browsers go to sign-in and come back here after.
fn refuse_nobody(
    request: &Request,
    asking: &Asking,
    cookies: &mut Vec<String>,
    secure: bool,
) -> Response {
    if asking.session_token.is_some() && asking.session.is_none() {
        // Expired or signed out elsewhere: drop the dead cookie.
        cookies.push(clear_cookie(SESSION_COOKIE, secure));
    }
    if asking.api {
        return unauthorized("sign in, or send an API key as Authorization: Bearer <key>");
    }
    let back = match *request.method() {
        Method::GET | Method::HEAD => request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        _ => "/".into(),
    };
    let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    redirect(&format!("/signin?next={next}"))
}

/// The request with who is asking, for the handlers.
fn with_principal(mut request: Request, principal: Principal, client: Client) -> Request {
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(client);
    request
}

/// The page a user must visit before any other, if any: a new password after a one-time
/// one, then TOTP enrolment where it is required. Sign-out is always allowed.
fn required_step(user: &User, require_totp: bool, path: &str) -> Option<&'static str> {
    if path == "/signout" {
        return None;
    }
    if user.password_change_required {
        return (path != PASSWORD_PAGE).then_some(PASSWORD_PAGE);
    }
    if require_totp && !user.totp_enabled {
        return (path != TOTP_PAGE).then_some(TOTP_PAGE);
    }
    None
}

fn step_message(page: &str) -> &'static str {
    if page == PASSWORD_PAGE {
        "choose a new password first (/account/password)"
    } else {
        "set up two-factor authentication first (/account/totp)"
    }
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Passes the request on if it reads, or carries the CSRF token for `secret`.
async fn check_csrf(request: Request, secret: &str, api: bool) -> Result<Request, Response> {
    if !is_write(request.method()) {
        return Ok(request);
    }
    let refused = || deny(api, StatusCode::FORBIDDEN, "missing or invalid CSRF token");
    if let Some(value) = request.headers().get(CSRF_HEADER) {
        let presented = value.to_str().unwrap_or_default();
        return if csrf::verify(secret, presented) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let urlencoded = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !urlencoded {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return Err(deny(api, StatusCode::PAYLOAD_TOO_LARGE, "form too large"));
    };
    let valid = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .is_some_and(|(_, value)| csrf::verify(secret, &value));
    if valid {
        Ok(Request::from_parts(parts, Body::from(bytes)))
    } else {
        Err(refused())
    }
}

/// The browser's anonymous CSRF secret, made (and set as a cookie) if it has none.
fn anonymous_secret(headers: &HeaderMap, cookies: &mut Vec<String>, secure: bool) -> String {
    if let Some(secret) = cookie(headers, ANONYMOUS_COOKIE).filter(|s| s.len() >= 32) {
        return secret;
    }
    let secret = csrf::new_secret();
    cookies.push(set_cookie(ANONYMOUS_COOKIE, &secret, None, secure));
    secret
}

fn client_of(request: &Request) -> Client {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Client {
        ip,
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// `Set-Cookie` for our cookies: `HttpOnly; SameSite=Lax`, `Secure` when configured; a
/// `max_age` of `None` lasts until the browser closes.
pub(super) fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

pub(super) fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", Some(0), secure)
}

pub(super) fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// A refusal: JSON on `/api`, a page elsewhere.
pub(super) fn deny(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        ApiError::Status(status, message.to_string()).into_response()
    } else {
        let title = status.canonical_reason().unwrap_or("Refused");
        ui::page(status, title, html!("<p>{}.</p>", capitalise(message)))
    }
}

/// The sentence with its first letter upper-case (refusals and sign-in errors are lower-case).
pub(super) fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::Status(StatusCode::UNAUTHORIZED, message.to_string()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"postern\""),
    );
    response
}

fn internal(error: crate::store::StoreError) -> Response {
    ApiError::Store(error).into_response()
}

/// Where to go after signing in: a path on this site, or `/`. Refuses `//host`, `/\host`
/// and anything not starting with `/`, which browsers would take to another site.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/api/messages?limit=2")),
            "/api/messages?limit=2"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; postern_session=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(
            set_cookie("n", "v", Some(60), true),
            "n=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
    }
}
