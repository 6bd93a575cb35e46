//! Users: `GET /users` (email, role, TOTP, created; admins also get the forms), `POST /users`
//! (admin: a user with a generated one-time password, shown on the answer page once),
//! `POST /users/role` (`email`, `role`), `POST /users/delete` and `POST /users/reset-totp`
//! (admin, the `email` field); and as JSON `GET /api/users`, `POST /api/users` (admin: the
//! given password, or a generated one-time password that is in this answer only),
//! `PATCH /api/users/{id}` (the role), `POST /api/users/{id}/reset-totp` and
//! `DELETE /api/users/{id}`.
//!
//! Pages, JSON and `postern user` make the same `Accounts` calls, so the rules (the last
//! admin is neither deleted nor made a viewer, and the page says so) and the audit rows are
//! the same whoever asks.

use std::future::Future;

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{AccountError, Actor, NewPassword, Role, User};
use crate::web::AppState;
use crate::web::auth::{self, Principal};
use crate::web::error::{ApiError, path_id};
use crate::web::ui::form::{self, FormPage, Refused, Submission};
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/users",
            get(form::show::<UsersPage>).post(form::submit::<UsersPage>),
        )
        .route("/users/delete", post(delete_user))
        .route("/users/reset-totp", post(reset_totp))
        .route("/users/role", post(change_role))
        .route("/api/users", get(api_list_users).post(api_create_user))
        .route(
            "/api/users/{id}",
            patch(api_change_user).delete(api_delete_user),
        )
        .route("/api/users/{id}/reset-totp", post(api_reset_totp))
}

// The pages.

fn user_row(principal: &Principal, user: &User) -> Html {
    let actions = if principal.role() == Role::Admin {
        let hidden = html!(
            "{}<input type=\"hidden\" name=\"email\" value=\"{}\">",
            ui::csrf(principal),
            user.email
        );
        let reset = if user.totp_enabled {
            html!(
                "<form method=\"post\" action=\"/users/reset-totp\">{hidden}<button type=\"submit\">Reset TOTP</button></form> ",
                hidden = hidden,
            )
        } else {
            Html::new()
        };
        let other = match user.role {
            Role::Admin => "viewer",
            Role::Viewer => "admin",
        };
        let role = html!(
            "<form method=\"post\" action=\"/users/role\">{hidden}<input type=\"hidden\" name=\"role\" value=\"{other}\"><button type=\"submit\">Make {other}</button></form> ",
            hidden = hidden,
            other = other,
        );
        html!(
            "{role}{reset}<form method=\"post\" action=\"/users/delete\" data-confirm=\"Delete this user? Their sessions end now.\">{hidden}<button type=\"submit\">Delete</button></form>",
            role = role,
            reset = reset,
            hidden = hidden,
        )
    } else {
        Html::new()
    };
    html!(
        "<tr><td>{email}</td><td>{role}</td><td>{totp}</td><td>{created}</td><td>{actions}</td></tr>\n",
        email = Html::escape(&user.email),
        role = ui::role_name(user.role),
        totp = if user.totp_enabled { "on" } else { "off" },
        created = ui::offset_time(user.created_at),
        actions = actions,
    )
}

/// The list, and for admins the form (with `error` above it and `email` kept).
async fn users_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
) -> Response {
    let users = match state.accounts.users().await {
        Ok(users) => users,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut body = ui::error(error);
    if principal.role() == Role::Admin {
        body.push(html!(
            concat!(
                "<h2>New user</h2>\n<form method=\"post\" action=\"/users\">{csrf}",
                "<label>Email <input name=\"email\" value=\"{email}\" required></label> ",
                "<label>Role <select name=\"role\"><option value=\"viewer\">viewer</option>",
                "<option value=\"admin\">admin</option></select></label> ",
                "<button type=\"submit\">Create user</button></form>\n",
                "<p>The user gets a one-time password, shown once, to replace at first sign-in.</p>\n",
            ),
            csrf = ui::csrf(principal),
            email = Html::escape(email),
        ));
    }
    body.push_trusted(concat!(
        "<table>\n<thead><tr><th>Email</th><th>Role</th><th>TOTP</th><th>Created</th>",
        "<th></th></tr></thead>\n<tbody>\n"
    ));
    for user in &users {
        body.push(user_row(principal, user));
    }
    body.push_trusted("</tbody>\n</table>");
    ui::dashboard(status, "Users", ui::nav(principal), body)
}

#[derive(Debug, Default, Deserialize)]
struct NewUserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// `/users`: every user and, for admins, the form to make one.
struct UsersPage;

impl FormPage for UsersPage {
    type Form = NewUserForm;
    const BACK: (&'static str, &'static str) = super::BACK;

    async fn render(
        state: &AppState,
        principal: &Principal,
        status: StatusCode,
        refusal: Option<&str>,
        form: &NewUserForm,
    ) -> Response {
        users_page(state, principal, status, refusal, &form.email).await
    }

    /// Makes the user with a one-time password and shows it, once.
    async fn submit(sent: Submission<'_>, form: &NewUserForm) -> Result<Response, Refused> {
        let unprocessable = |why: String| Refused::Again(StatusCode::UNPROCESSABLE_ENTITY, why);
        let Some(role) = Role::from_name(&form.role) else {
            return Err(unprocessable("role must be admin or viewer".into()));
        };
        let actor = sent.principal.actor();
        let made =
            sent.state
                .accounts
                .create_user(&form.email, role, NewPassword::Generate, &actor);
        let (user, password) = match made.await {
            Ok(made) => made,
            Err(error @ (AccountError::InvalidEmail(_) | AccountError::EmailTaken(_))) => {
                return Err(unprocessable(error.to_string()));
            }
            Err(error) => return Err(Refused::Answer(ApiError::from(error).into_response())),
        };
        let body = html!(
            concat!(
                "<p>The user <strong>{email}</strong> ({role}) is made. Give them this ",
                "one-time password now: it is shown this once and must be replaced at the ",
                "first sign-in.</p>\n<p><code id=\"password\">{password}</code></p>\n",
                "<p><a href=\"/users\">All users</a></p>"
            ),
            email = user.email,
            role = ui::role_name(user.role),
            password = password.as_deref().unwrap_or_default(),
        );
        let nav = ui::nav(sent.principal);
        Ok(ui::dashboard(StatusCode::CREATED, "New user", nav, body))
    }
}

#[derive(Debug, Deserialize)]
struct UserForm {
    #[serde(default)]
    email: String,
}

/// After a change to a user: back to the list, or the list with the service's refusal.
async fn user_changed(
    state: &AppState,
    principal: &Principal,
    result: Result<(), AccountError>,
) -> Response {
    match result {
        Ok(()) => auth::redirect("/users"),
        Err(error @ AccountError::LastAdmin(_)) => {
            users_page(
                state,
                principal,
                StatusCode::CONFLICT,
                Some(&error.to_string()),
                "",
            )
            .await
        }
        Err(error @ (AccountError::NoSuchUser(_) | AccountError::InvalidEmail(_))) => {
            users_page(
                state,
                principal,
                StatusCode::NOT_FOUND,
                Some(&error.to_string()),
                "",
            )
            .await
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `POST /users/delete` and `POST /users/reset-totp`: one change to the user the form
/// names, then [`user_changed`].
async fn change_user<F, Fut>(
    state: AppState,
    principal: Principal,
    form: Result<Form<UserForm>, FormRejection>,
    change: F,
) -> Response
where
    F: FnOnce(AppState, String, Actor) -> Fut,
    Fut: Future<Output = Result<(), AccountError>>,
{
    let Ok(Form(form)) = form else {
        let status = StatusCode::BAD_REQUEST;
        return super::message(&principal, status, "the form was not readable");
    };
    let result = change(state.clone(), form.email, principal.actor()).await;
    user_changed(&state, &principal, result).await
}

async fn delete_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    change_user(state, principal, form, |state, email, actor| async move {
        state.accounts.delete_user(&email, &actor).await
    })
    .await
}

async fn reset_totp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    change_user(state, principal, form, |state, email, actor| async move {
        state.accounts.reset_totp(&email, &actor).await
    })
    .await
}

#[derive(Debug, Deserialize)]
struct RoleForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return super::message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
        );
    };
    let Some(role) = Role::from_name(&form.role) else {
        return super::message(
            &principal,
            StatusCode::BAD_REQUEST,
            "role must be admin or viewer",
        );
    };
    let result = state
        .accounts
        .change_role(&form.email, role, &principal.actor())
        .await;
    user_changed(&state, &principal, result).await
}

// The JSON API.

async fn api_list_users(State(state): State<AppState>) -> Result<Response, ApiError> {
    let users = state.accounts.users().await?;
    Ok(Json(json!({ "users": users })).into_response())
}

/// 422 naming the field, for what a user's fields break; 409 for what clashes with other
/// users (a taken email, the last admin).
fn user_error(error: AccountError) -> ApiError {
    let field = |field: &str, message: String| ApiError::Field {
        field: field.to_string(),
        detail: format!("{field}: {message}"),
        message,
    };
    match error {
        AccountError::InvalidEmail(_) => field("email", error.to_string()),
        AccountError::WeakPassword(why) => field("password", why),
        AccountError::EmailTaken(_) | AccountError::LastAdmin(_) => {
            ApiError::Status(StatusCode::CONFLICT, error.to_string())
        }
        other => ApiError::from(other),
    }
}

fn role_field(name: &str) -> Result<Role, ApiError> {
    Role::from_name(name).ok_or_else(|| ApiError::Field {
        field: "role".into(),
        message: "must be admin or viewer".into(),
        detail: format!("role {name:?}: must be admin or viewer"),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    /// `admin` or `viewer`.
    role: String,
    /// Absent: a one-time password is generated, returned in this answer only, and must
    /// be replaced at the first sign-in.
    password: Option<String>,
}

async fn api_create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let role = role_field(&body.role)?;
    let password = match body.password {
        Some(given) => NewPassword::Given(given),
        None => NewPassword::Generate,
    };
    let (user, generated) = state
        .accounts
        .create_user(&body.email, role, password, &principal.actor())
        .await
        .map_err(user_error)?;
    let answer = match generated {
        Some(password) => json!({ "user": user, "password": password }),
        None => json!({ "user": user }),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The user with the id in the path, or 404.
async fn user_at(
    state: &AppState,
    path: Result<Path<i64>, PathRejection>,
) -> Result<User, ApiError> {
    let id = path_id(path)?;
    state
        .accounts
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    /// `admin` or `viewer`.
    role: String,
}

async fn api_change_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = user_at(&state, path).await?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let role = role_field(&body.role)?;
    state
        .accounts
        .change_role(&user.email, role, &principal.actor())
        .await
        .map_err(user_error)?;
    let user = state
        .accounts
        .user_by_id(user.id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    Ok(Json(json!({ "user": user })).into_response())
}

async fn api_reset_totp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let user = user_at(&state, path).await?;
    state
        .accounts
        .reset_totp(&user.email, &principal.actor())
        .await
        .map_err(user_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn api_delete_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let user = user_at(&state, path).await?;
    state
        .accounts
        .delete_user(&user.email, &principal.actor())
        .await
        .map_err(user_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
