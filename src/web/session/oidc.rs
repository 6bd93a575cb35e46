//! Sign-in with an identity provider (`[[web.oidc]]`): `GET /signin/oidc/{name}` sends the
//! browser to the provider with a short-lived `postern_oidc` cookie (`HttpOnly;
//! SameSite=Lax`, 10 minutes, path `/signin/oidc`) that binds the sign-in to it;
//! `GET /signin/oidc/{name}/callback` is where the provider sends it back, and ends like the
//! password form: 303 to `next` with the session cookie, or to `/signin/totp` for users with
//! TOTP. Every failure is the sign-in page with a sentence saying what went wrong (4xx, or
//! 502 when the provider could not be used), never a 500 unless the store fails.
//!
//! The callback URL registered at the provider is `{web.public_url}/signin/oidc/{name}/callback`;
//! without `web.public_url` (allowed on a loopback listener only) it is built from the
//! request's `Host`, which must then be a loopback name or address.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use url::Url;

use crate::accounts::Client;
use crate::accounts::oidc::{Callback, OidcError, PENDING_TIMEOUT};
use crate::config::{OidcProvider, is_loopback_host};
use crate::web::AppState;
use crate::web::auth::{self, CsrfToken};
use crate::web::ui::{Html, html};

const OIDC_COOKIE: &str = "postern_oidc";
const COOKIE_PATH: &str = "/signin/oidc";

/// Behind the gate's `Access::SignIn`, like `/signin`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin/oidc/{name}", get(start))
        .route("/signin/oidc/{name}/callback", get(callback))
}

/// The "Sign in with …" links under the password form (plain links: no JavaScript).
pub(super) fn links(providers: &[OidcProvider], next: &str) -> Html {
    if providers.is_empty() {
        return Html::new();
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    let mut out = Html::trusted("\n<p>Or:</p>\n<ul class=\"providers\">\n");
    for provider in providers {
        out.push(html!(
            "<li><a href=\"/signin/oidc/{}?{}\">Sign in with {}</a></li>\n",
            provider.name,
            query,
            provider.label
        ));
    }
    out.push_trusted("</ul>");
    out
}

#[derive(Debug, Default, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn oidc_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let mut cookie = format!(
        "{OIDC_COOKIE}={value}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Where the provider sends the browser back.
fn callback_url(state: &AppState, headers: &HeaderMap, name: &str) -> Result<String, String> {
    let base = match &state.settings.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let base = format!("http://{host}");
            match Url::parse(&base) {
                Ok(url) if is_loopback_host(&url) && url.path() == "/" => base,
                _ => {
                    return Err(
                        "Sign-in with a provider needs web.public_url (the URL browsers reach Postern at) in the config."
                            .into(),
                    );
                }
            }
        }
    };
    Ok(format!("{base}/signin/oidc/{name}/callback"))
}

/// The sign-in page with what went wrong.
fn failed(state: &AppState, csrf: &str, next: &str, error: OidcError) -> Response {
    let status = match &error {
        OidcError::UnknownProvider(_) => StatusCode::NOT_FOUND,
        OidcError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        OidcError::NotStarted | OidcError::Expired | OidcError::StateMismatch => {
            StatusCode::BAD_REQUEST
        }
        OidcError::Denied { .. } => StatusCode::UNAUTHORIZED,
        OidcError::Provider { .. } => StatusCode::BAD_GATEWAY,
        OidcError::NoEmail { .. }
        | OidcError::UnverifiedEmail { .. }
        | OidcError::UnknownEmail { .. } => StatusCode::FORBIDDEN,
        OidcError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if let OidcError::Store(error) = error {
        return crate::web::error::ApiError::Store(error).into_response();
    }
    let message = format!("{}.", auth::capitalise(&error.to_string()));
    let page = super::signin::signin_form(state, status, csrf, "", next, Some(&message));
    match error {
        OidcError::Throttled { retry_after } => super::signin::throttled(page, retry_after),
        _ => page,
    }
}

async fn start(
    State(state): State<AppState>,
    Extension(CsrfToken(csrf)): Extension<CsrfToken>,
    Extension(client): Extension<Client>,
    Path(name): Path<String>,
    Query(query): Query<NextQuery>,
    headers: HeaderMap,
) -> Response {
    let next = auth::safe_next(query.next.as_deref());
    let redirect_url = match callback_url(&state, &headers, &name) {
        Ok(url) => url,
        Err(message) => {
            return super::signin::signin_form(
                &state,
                StatusCode::BAD_REQUEST,
                &csrf,
                "",
                next,
                Some(&message),
            );
        }
    };
    match state.oidc.start(&name, &redirect_url, next, &client).await {
        Ok(started) => with_cookie(
            auth::redirect(&started.authorize_url),
            &oidc_cookie(
                &started.browser,
                PENDING_TIMEOUT.as_secs(),
                state.secure_cookies,
            ),
        ),
        Err(error) => failed(&state, &csrf, next, error),
    }
}

async fn callback(
    State(state): State<AppState>,
    Extension(CsrfToken(csrf)): Extension<CsrfToken>,
    Extension(client): Extension<Client>,
    Path(name): Path<String>,
    Query(answer): Query<Callback>,
    headers: HeaderMap,
) -> Response {
    let browser = auth::cookie(&headers, OIDC_COOKIE);
    // Used once, whatever the outcome.
    let clear = oidc_cookie("", 0, state.secure_cookies);
    let finished = state
        .oidc
        .finish(&name, browser.as_deref(), &answer, &client)
        .await;
    let response = match finished {
        Ok(finished) => super::signin::signed_in(&state, finished.sign_in, &finished.next),
        Err(error) => failed(&state, &csrf, "/", error),
    };
    with_cookie(response, &clear)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_escape_and_carry_next() {
        let provider = |name: &str, label: &str| OidcProvider {
            name: name.into(),
            label: label.into(),
            kind: crate::config::ProviderKind::GitHub {
                web: Url::parse("https://github.com").unwrap(),
                api: Url::parse("https://api.github.com").unwrap(),
            },
            client_id: "x".into(),
            client_secret: crate::config::Secret::new("y"),
        };
        assert_eq!(links(&[], "/"), Html::new());
        let html = links(&[provider("gh", "<GitHub>")], "/messages/1?x=1&y=2").into_string();
        assert!(
            html.contains("<a href=\"/signin/oidc/gh?next=%2Fmessages%2F1%3Fx%3D1%26y%3D2\">Sign in with &lt;GitHub&gt;</a>"),
            "{html}"
        );
    }
}
