//! A signed-in user's own pages, open to every role: `/account` (who you are, links to the
//! pages below, "My sessions": every signed-in session of yours with when it started, when
//! it was last used, its address and browser, "this session" marked, and a sign-out button
//! for each — `POST /account/sessions/{id}/signout` — besides "Sign out everywhere"),
//! `/account/totp` (enrol an authenticator app: QR code, otpauth URL, then the ten recovery
//! codes, shown once), `/account/password` (a new password; required after a one-time
//! password) and `POST /signout` (this session, or with `everywhere=1` every session of the
//! user).
//!
//! Sessions are named by their public id (`accounts::PUBLIC_ID_CHARS` hex digits of the
//! stored digest), never by the cookie's token. There is no JSON counterpart: API keys
//! belong to no user, so "my sessions" means nothing to a key.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::accounts::{
    AccountError, Actor, Client, MIN_PASSWORD_CHARS, Session, SessionEnd, SessionSummary,
};
use crate::web::AppState;
use crate::web::auth::{self, Principal, SESSION_COOKIE};
use crate::web::error::ApiError;
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Account`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signout", post(sign_out))
        .route("/account", get(account_page))
        .route("/account/sessions/{id}/signout", post(end_session))
        .route("/account/totp", get(totp_page).post(totp_confirm))
        .route(
            "/account/password",
            get(password_page).post(password_change),
        )
}

fn failed(error: AccountError) -> Response {
    ApiError::from(error).into_response()
}

/// Who is on an account page: always a signed-in user, since the gate lets only them through
/// to these routes; anything else is sent to sign in.
struct SignedIn {
    principal: Principal,
    session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<SignedIn, Response> {
        let principal = parts.extensions.get::<Principal>();
        let Some((principal, session)) = principal.and_then(|p| Some((p, p.session()?))) else {
            return Err(auth::redirect("/signin"));
        };
        Ok(SignedIn {
            session: session.clone(),
            principal: principal.clone(),
        })
    }
}

#[derive(Debug, Deserialize)]
struct SignOutForm {
    everywhere: Option<String>,
}

async fn sign_out(
    State(state): State<AppState>,
    SignedIn { session, .. }: SignedIn,
    Extension(client): Extension<Client>,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Response {
    let everywhere = form
        .ok()
        .and_then(|Form(f)| f.everywhere)
        .is_some_and(|v| !v.is_empty() && v != "0");
    let result = if everywhere {
        state
            .accounts
            .sign_out_everywhere(&session.user, &Actor::user(&session.user), Some(&client))
            .await
            .map(|_| ())
    } else {
        state.accounts.sign_out(&session, &client).await
    };
    if let Err(error) = result {
        return ApiError::Store(error).into_response();
    }
    signed_out(&state)
}

/// The answer to a sign-out: to `/signin`, the cookie dropped.
fn signed_out(state: &AppState) -> Response {
    let mut response = auth::redirect("/signin");
    let cookie = auth::clear_cookie(SESSION_COOKIE, state.secure_cookies);
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a valid cookie"),
    );
    response
}

fn session_row(summary: &SessionSummary, csrf: &str) -> Html {
    let marker = if summary.current {
        Html::trusted(" <strong class=\"current\">this session</strong>")
    } else {
        Html::new()
    };
    html!(
        concat!(
            "<tr id=\"session-{id}\"><td><code>{id}</code>{marker}</td><td>{created}</td><td>{seen}</td>",
            "<td>{ip}</td><td>{agent}</td><td><form method=\"post\" action=\"/account/sessions/{id}/signout\">",
            "{csrf}<button type=\"submit\">Sign out</button></form></td></tr>\n"
        ),
        id = Html::escape(&summary.id),
        marker = marker,
        created = ui::offset_time(summary.created_at),
        seen = ui::offset_time(summary.last_seen_at),
        ip = Html::escape(&summary.ip),
        agent = Html::escape(summary.user_agent.as_deref().unwrap_or("unknown")),
        csrf = ui::csrf_field(csrf),
    )
}

async fn account_page(
    State(state): State<AppState>,
    SignedIn { principal, session }: SignedIn,
) -> Response {
    let sessions = match state.accounts.sessions_of(&session).await {
        Ok(sessions) => sessions,
        Err(error) => return ApiError::Store(error).into_response(),
    };
    let csrf = principal.csrf_token.as_deref().unwrap_or_default();
    let user = &session.user;
    let rows: Html = sessions.iter().map(|s| session_row(s, csrf)).collect();
    let body = html!(
        concat!(
            "<p>Signed in as <strong>{email}</strong> ({role}). Two-factor authentication is {totp}.</p>\n",
            "<p><a href=\"/account/totp\">Two-factor authentication</a> · <a href=\"/account/password\">Change password</a></p>\n",
            "<h2>My sessions</h2>\n",
            "<p>Every browser signed in as you. A session you do not recognise: sign it out, then change your password.</p>\n",
            "<table id=\"sessions\">\n<thead><tr><th>Session</th><th>Signed in</th><th>Last used</th><th>Address</th>",
            "<th>Browser</th><th></th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n",
            "<form method=\"post\" action=\"/signout\">{csrf}<input type=\"hidden\" name=\"everywhere\" value=\"1\">",
            "<button type=\"submit\">Sign out everywhere</button></form>\n",
        ),
        email = Html::escape(&user.email),
        role = ui::role_name(user.role),
        totp = if user.totp_enabled { "on" } else { "off" },
        rows = rows,
        csrf = ui::csrf_field(csrf),
    );
    ui::dashboard(StatusCode::OK, "Account", ui::nav(&principal), body)
}

async fn end_session(
    State(state): State<AppState>,
    SignedIn { principal, session }: SignedIn,
    Extension(client): Extension<Client>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let id = path.map(|Path(id)| id).unwrap_or_default();
    match state.accounts.end_session(&session, &id, &client).await {
        Ok(SessionEnd::ThisSession) => signed_out(&state),
        Ok(SessionEnd::OtherSession) => auth::redirect("/account"),
        Ok(SessionEnd::NotFound) => ui::dashboard(
            StatusCode::NOT_FOUND,
            "Not Found",
            ui::nav(&principal),
            Html::trusted(
                "<p class=\"error\" role=\"alert\">No such session of yours (it may have ended already).</p><p><a href=\"/account\">My sessions</a></p>",
            ),
        ),
        Err(error) => ApiError::Store(error).into_response(),
    }
}

async fn totp_page(
    State(state): State<AppState>,
    SignedIn { principal, session }: SignedIn,
) -> Response {
    let csrf = principal.csrf_token.as_deref().unwrap_or_default();
    enrolment_page(&state, &session, csrf, StatusCode::OK, None).await
}

async fn enrolment_page(
    state: &AppState,
    session: &Session,
    csrf: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let user = &session.user;
    if user.totp_enabled {
        let left = match state.accounts.recovery_codes_left(user).await {
            Ok(left) => left,
            Err(error) => return ApiError::Store(error).into_response(),
        };
        return ui::page(
            StatusCode::OK,
            "Two-factor authentication",
            html!(
                "<p>Two-factor authentication is on for {email}. {left} recovery codes left.</p><p><a href=\"/\">Home</a></p>",
                email = user.email,
                left = left,
            ),
        );
    }
    let enrolment = match state.accounts.totp_enrolment(user).await {
        Ok(enrolment) => enrolment,
        Err(error) => return failed(error),
    };
    let body = html!(
        concat!(
            "{error}<p>Scan this code with an authenticator app (or enter the key by hand), then type the 6-digit code it shows.</p>\n",
            "<p><img src=\"data:image/png;base64,{qr}\" alt=\"QR code of the otpauth URL below\" width=\"240\" height=\"240\"></p>\n",
            "<p>Key: <code>{secret}</code></p>\n<p>URL: <code id=\"otpauth\">{url}</code></p>\n",
            "<form method=\"post\" action=\"/account/totp\">\n{csrf}\n",
            "<label>Code <input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required autofocus></label>\n",
            "<button type=\"submit\">Turn on</button>\n</form>",
        ),
        error = ui::error(error),
        qr = enrolment.qr_png_base64,
        secret = Html::escape(&enrolment.secret),
        url = Html::escape(&enrolment.otpauth_url),
        csrf = ui::csrf_field(csrf),
    );
    ui::page(status, "Set up two-factor authentication", body)
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn totp_confirm(
    State(state): State<AppState>,
    SignedIn { principal, session }: SignedIn,
    Extension(client): Extension<Client>,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ui::bad_form(rejection),
    };
    let csrf = principal.csrf_token.as_deref().unwrap_or_default();
    match state
        .accounts
        .confirm_totp(&session.user, &form.code, &client)
        .await
    {
        Ok(codes) => {
            let items: Html = codes
                .iter()
                .map(|code| html!("<li><code>{}</code></li>", Html::escape(code)))
                .collect();
            ui::page(
                StatusCode::OK,
                "Two-factor authentication is on",
                html!(
                    concat!(
                        "<p>Keep these recovery codes somewhere safe. Each one signs you in once ",
                        "instead of a code from your app. They are not shown again.</p>\n",
                        "<ol id=\"recovery-codes\">{items}</ol>\n<p><a href=\"/\">Continue</a></p>",
                    ),
                    items = items
                ),
            )
        }
        Err(AccountError::WrongCode) => {
            enrolment_page(
                &state,
                &session,
                csrf,
                StatusCode::BAD_REQUEST,
                Some("That code is not right; check the time on your phone and try the next one."),
            )
            .await
        }
        Err(AccountError::TotpAlreadyEnabled) => auth::redirect("/account/totp"),
        Err(error) => failed(error),
    }
}

fn password_form(status: StatusCode, csrf: &str, required: bool, error: Option<&str>) -> Response {
    let intro = if required {
        Html::trusted(
            "<p>You signed in with a one-time password. Choose your own to continue.</p>\n",
        )
    } else {
        Html::new()
    };
    let body = html!(
        concat!(
            "{error}{intro}<form method=\"post\" action=\"/account/password\">\n{csrf}\n",
            "<label>New password (at least {min} characters) <input type=\"password\" name=\"password\" autocomplete=\"new-password\" required autofocus></label>\n",
            "<label>Again <input type=\"password\" name=\"repeat\" autocomplete=\"new-password\" required></label>\n",
            "<button type=\"submit\">Change password</button>\n</form>",
        ),
        error = ui::error(error),
        intro = intro,
        csrf = ui::csrf_field(csrf),
        min = MIN_PASSWORD_CHARS,
    );
    ui::page(status, "Change password", body)
}

async fn password_page(SignedIn { principal, session }: SignedIn) -> Response {
    let csrf = principal.csrf_token.as_deref().unwrap_or_default();
    password_form(
        StatusCode::OK,
        csrf,
        session.user.password_change_required,
        None,
    )
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
}

async fn password_change(
    State(state): State<AppState>,
    SignedIn { principal, session }: SignedIn,
    Extension(client): Extension<Client>,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ui::bad_form(rejection),
    };
    let csrf = principal.csrf_token.as_deref().unwrap_or_default();
    let required = session.user.password_change_required;
    if form.password != form.repeat {
        return password_form(
            StatusCode::BAD_REQUEST,
            csrf,
            required,
            Some("The two passwords differ."),
        );
    }
    match state
        .accounts
        .change_password(&session, &form.password, &client)
        .await
    {
        Ok(()) => auth::redirect("/"),
        Err(AccountError::WeakPassword(why)) => {
            password_form(StatusCode::BAD_REQUEST, csrf, required, Some(&why))
        }
        Err(error) => failed(error),
    }
}
