//! The sign-in pages: `/signin` (email and password) and `/signin/totp` (a TOTP code or a
//! recovery code, for users with TOTP on). Wrong credentials: 401 and the form again;
//! throttled: 429 with `Retry-After`. On success, 303 to `next` (a path on this site) with
//! the session cookie. Under the form, a link per sign-in provider (`web::oidc`), whose
//! sign-ins end here too ([`signed_in`]).

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::accounts::{Client, NewSession, SECOND_FACTOR_TIMEOUT, SignIn, SignInError};
use crate::web::AppState;
use crate::web::auth::{self, CsrfToken, PendingSession, SESSION_COOKIE};
use crate::web::ui::{self, Html, html};

/// `/signin`, behind the gate's `Access::SignIn`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/signin", get(signin_page).post(signin))
}

/// `/signin/totp`, behind the gate's `Access::SecondFactor`.
pub(super) fn second_factor_routes() -> Router<AppState> {
    Router::new().route("/signin/totp", get(second_factor_page).post(second_factor))
}

#[derive(Debug, Default, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    next: Option<String>,
}

fn next_field(next: &str) -> Html {
    html!(
        r#"<input type="hidden" name="next" value="{}">"#,
        Html::escape(next)
    )
}

/// The sign-in page: the password form, then a link per sign-in provider.
pub(super) fn signin_form(
    state: &AppState,
    status: StatusCode,
    csrf: &str,
    email: &str,
    next: &str,
    error: Option<&str>,
) -> Response {
    let body = html!(
        concat!(
            "{error}<form method=\"post\" action=\"/signin\">\n{csrf}{next_field}\n",
            "<label>Email <input type=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"username\" required autofocus></label>\n",
            "<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\n",
            "<button type=\"submit\">Sign in</button>\n</form>{providers}",
        ),
        error = ui::error(error),
        csrf = ui::csrf_field(csrf),
        next_field = next_field(next),
        email = Html::escape(email),
        providers = super::oidc::links(state.oidc.providers(), next),
    );
    ui::page(status, "Sign in", body)
}

fn code_form(status: StatusCode, csrf: &str, next: &str, error: Option<&str>) -> Response {
    let body = html!(
        concat!(
            "{error}<p>Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>\n",
            "<form method=\"post\" action=\"/signin/totp\">\n{csrf}{next}\n",
            "<label>Code <input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required autofocus></label>\n",
            "<button type=\"submit\">Continue</button>\n</form>",
        ),
        error = ui::error(error),
        csrf = ui::csrf_field(csrf),
        next = next_field(next),
    );
    ui::page(status, "Two-factor authentication", body)
}

pub(super) fn throttled(mut page: Response, retry_after: std::time::Duration) -> Response {
    *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let seconds = retry_after.as_secs().max(1);
    page.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits are a valid header value"),
    );
    page
}

fn with_session(
    mut response: Response,
    session: &NewSession,
    max_age: u64,
    secure: bool,
) -> Response {
    let cookie = auth::set_cookie(SESSION_COOKIE, &session.token, Some(max_age), secure);
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("tokens are base64url"),
    );
    response
}

async fn signin_page(
    State(state): State<AppState>,
    Extension(CsrfToken(csrf)): Extension<CsrfToken>,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = auth::safe_next(query.next.as_deref());
    signin_form(&state, StatusCode::OK, &csrf, "", next, None)
}

/// The answer to a first step that worked: 303 to `next` signed in, or to the second step.
pub(super) fn signed_in(state: &AppState, sign_in: SignIn, next: &str) -> Response {
    let secure = state.secure_cookies;
    match sign_in {
        SignIn::Complete(session) => {
            let lifetime = state.accounts.policy().session_lifetime.as_secs();
            with_session(auth::redirect(next), &session, lifetime, secure)
        }
        SignIn::SecondFactor(pending) => {
            let to: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            with_session(
                auth::redirect(&format!("/signin/totp?{to}")),
                &pending,
                SECOND_FACTOR_TIMEOUT.as_secs(),
                secure,
            )
        }
    }
}

async fn signin(
    State(state): State<AppState>,
    Extension(CsrfToken(csrf)): Extension<CsrfToken>,
    Extension(client): Extension<Client>,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ui::bad_form(rejection),
    };
    let next = auth::safe_next(form.next.as_deref());
    match state
        .accounts
        .sign_in(&form.email, &form.password, &client)
        .await
    {
        Ok(sign_in) => signed_in(&state, sign_in, next),
        Err(SignInError::Throttled { retry_after }) => {
            let message = format!(
                "Too many failed sign-ins. Try again in {} minutes.",
                retry_after.as_secs().div_ceil(60)
            );
            throttled(
                signin_form(
                    &state,
                    StatusCode::OK,
                    &csrf,
                    &form.email,
                    next,
                    Some(&message),
                ),
                retry_after,
            )
        }
        Err(SignInError::Store(error)) => crate::web::error::ApiError::Store(error).into_response(),
        Err(_) => signin_form(
            &state,
            StatusCode::UNAUTHORIZED,
            &csrf,
            &form.email,
            next,
            Some("Wrong email or password."),
        ),
    }
}

async fn second_factor_page(
    Extension(CsrfToken(csrf)): Extension<CsrfToken>,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = auth::safe_next(query.next.as_deref());
    code_form(StatusCode::OK, &csrf, next, None)
}

async fn second_factor(
    State(state): State<AppState>,
    Extension(CsrfToken(csrf)): Extension<CsrfToken>,
    Extension(PendingSession(pending)): Extension<PendingSession>,
    Extension(client): Extension<Client>,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ui::bad_form(rejection),
    };
    let next = auth::safe_next(form.next.as_deref());
    match state
        .accounts
        .second_factor(&pending, &form.code, &client)
        .await
    {
        Ok(session) => signed_in(&state, SignIn::Complete(session), next),
        Err(SignInError::Throttled { retry_after }) => throttled(
            code_form(
                StatusCode::OK,
                &csrf,
                next,
                Some("Too many failed attempts. Wait, then sign in again."),
            ),
            retry_after,
        ),
        Err(SignInError::WrongCode) => code_form(
            StatusCode::UNAUTHORIZED,
            &csrf,
            next,
            Some("That code is not right, or was used already."),
        ),
        Err(SignInError::Store(error)) => crate::web::error::ApiError::Store(error).into_response(),
        Err(_) => auth::redirect("/signin"),
    }
}
