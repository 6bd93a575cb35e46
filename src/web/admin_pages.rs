//! The API keys page, server-rendered and without JavaScript, over the accounts service
//! (which writes the audit rows): `GET /keys` (every key, revoked ones too; admins also get
//! the form and a revoke button per key), `POST /keys` (admin: makes a key and shows its
//! secret on the answer page, once — it is stored only as a digest), and
//! `POST /keys/{id}/revoke` (admin); `GET /users` (email, role, TOTP, created; admins also
//! get the forms), `POST /users` (admin: a user with a generated one-time password, shown
//! on the answer page once), `POST /users/role` (`email`, `role`), `POST /users/delete` and
//! `POST /users/reset-totp` (admin, the `email` field; the service refuses to delete the
//! last admin or make them a viewer, and the page says so); and `GET /audit` (the audit log, newest first, 50 to a
//! page, "Older" by `?before=ID`); `GET /settings` (read-only: listeners, STARTTLS, version,
//! data dir, SPF and DNS, session policy; paths and numbers, never a secret). Viewers read; the gate refuses their writes (403) and
//! any write without the session's CSRF token. Viewers may read the audit log because
//! `GET /api/audit` already lets them: hiding the page alone would protect nothing.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::{self, Principal};
use super::error::ApiError;
use super::pages::{nav, role_name};
use super::{AppState, html};
use crate::accounts::{AccountError, ApiKey, NewPassword, Role, User};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}/revoke", post(revoke_key))
        .route("/audit", get(audit_log))
        .route("/users", get(list_users).post(create_user))
        .route("/users/delete", post(delete_user))
        .route("/users/reset-totp", post(reset_totp))
        .route("/users/role", post(change_role))
        .route("/settings", get(settings))
}

/// Rows on one page of the audit log.
const AUDIT_PAGE: u32 = 50;

fn csrf(principal: &Principal) -> &str {
    principal.csrf_token.as_deref().unwrap_or_default()
}

/// An RFC 3339 UTC time; the dashboard's script shows it in the viewer's time zone.
pub(super) fn time(at: OffsetDateTime) -> String {
    let at = at.format(&Rfc3339).unwrap_or_default();
    format!("<time datetime=\"{at}\">{at}</time>")
}

fn message(principal: &Principal, status: StatusCode, text: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html::dashboard(
        status,
        title,
        &nav(principal),
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/keys\">API keys</a></p>",
            html::escape(text)
        ),
    )
}

fn key_row(principal: &Principal, key: &ApiKey) -> String {
    let state = match key.revoked_at {
        Some(at) => format!("revoked {}", time(at)),
        None => "active".to_string(),
    };
    let action = if principal.role() == Role::Admin && key.revoked_at.is_none() {
        format!(
            concat!(
                "<form method=\"post\" action=\"/keys/{id}/revoke\">{csrf}",
                "<button type=\"submit\">Revoke</button></form>"
            ),
            id = key.id,
            csrf = html::csrf_field(csrf(principal)),
        )
    } else {
        String::new()
    };
    format!(
        "<tr><td>{name}</td><td><code>{prefix}…</code></td><td>{role}</td><td>{created} by {by}</td><td>{used}</td><td>{state}</td><td>{action}</td></tr>\n",
        name = html::escape(&key.name),
        prefix = html::escape(&key.prefix),
        role = role_name(key.role),
        created = time(key.created_at),
        by = html::escape(&key.created_by),
        used = key.last_used_at.map(time).unwrap_or_else(|| "never".into()),
    )
}

/// The list, and for admins the form (with `error` above it and `name` kept).
async fn keys_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    name: &str,
) -> Response {
    let keys = match state.accounts.api_keys().await {
        Ok(keys) => keys,
        Err(error) => return ApiError::Store(error).into_response(),
    };
    let mut body = String::new();
    if principal.role() == Role::Admin {
        body.push_str(&format!(
            concat!(
                "<h2>New key</h2>\n{error}<form method=\"post\" action=\"/keys\">{csrf}",
                "<label>Name <input name=\"name\" value=\"{name}\" required maxlength=\"100\"></label> ",
                "<label>Role <select name=\"role\"><option value=\"viewer\">viewer</option>",
                "<option value=\"admin\">admin</option></select></label> ",
                "<button type=\"submit\">Create key</button></form>\n",
            ),
            error = html::error(error),
            csrf = html::csrf_field(csrf(principal)),
            name = html::escape(name),
        ));
    }
    if keys.is_empty() {
        body.push_str("<p>No API keys yet.</p>");
    } else {
        body.push_str(concat!(
            "<table>\n<thead><tr><th>Name</th><th>Key</th><th>Role</th><th>Created</th>",
            "<th>Last used</th><th>State</th><th></th></tr></thead>\n<tbody>\n"
        ));
        for key in &keys {
            body.push_str(&key_row(principal, key));
        }
        body.push_str("</tbody>\n</table>");
    }
    html::dashboard(status, "API keys", &nav(principal), &body)
}

async fn list_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    keys_page(&state, &principal, StatusCode::OK, None, "").await
}

#[derive(Debug, Deserialize)]
struct NewKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

async fn create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<NewKey>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
        );
    };
    let Some(role) = Role::from_name(&form.role) else {
        return keys_page(
            &state,
            &principal,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("role must be admin or viewer"),
            &form.name,
        )
        .await;
    };
    match state
        .accounts
        .create_api_key(form.name.trim(), role, &principal.actor())
        .await
    {
        Ok((key, secret)) => {
            let body = format!(
                concat!(
                    "<p>The key <strong>{name}</strong> ({role}) is made. Copy it now: ",
                    "it is shown this once and never again.</p>\n",
                    "<p><code id=\"secret\">{secret}</code></p>\n",
                    "<p>Send it as <code>Authorization: Bearer …</code>.</p>\n",
                    "<p><a href=\"/keys\">All keys</a></p>"
                ),
                name = html::escape(&key.name),
                role = role_name(key.role),
                secret = html::escape(&secret),
            );
            html::dashboard(StatusCode::CREATED, "New API key", &nav(&principal), &body)
        }
        Err(AccountError::InvalidKeyName) => {
            keys_page(
                &state,
                &principal,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&AccountError::InvalidKeyName.to_string()),
                &form.name,
            )
            .await
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

async fn revoke_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return message(&principal, StatusCode::BAD_REQUEST, "key ids are numbers");
    };
    match state.accounts.revoke_api_key(id, &principal.actor()).await {
        Ok(true) => auth::redirect("/keys"),
        Ok(false) => message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such key, or revoked already",
        ),
        Err(error) => ApiError::Store(error).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    before: Option<i64>,
}

async fn audit_log(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return message(&principal, StatusCode::BAD_REQUEST, "before is an entry id");
    };
    let entries = match state.accounts.audit_log(query.before, AUDIT_PAGE).await {
        Ok(entries) => entries,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut body = String::new();
    if entries.is_empty() {
        body.push_str("<p>No entries.</p>\n");
    } else {
        body.push_str(concat!(
            "<table>\n<thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Subject</th>",
            "<th>Address</th><th>Detail</th></tr></thead>\n<tbody>\n"
        ));
        for entry in &entries {
            body.push_str(&format!(
                "<tr><td>{at}</td><td>{actor}</td><td>{action}</td><td>{subject}</td><td>{ip}</td><td>{detail}</td></tr>\n",
                at = time(entry.at),
                actor = html::escape(&entry.actor),
                action = html::escape(&entry.action),
                subject = html::escape(entry.subject.as_deref().unwrap_or("")),
                ip = html::escape(entry.ip.as_deref().unwrap_or("")),
                detail = html::escape(entry.detail.as_deref().unwrap_or("")),
            ));
        }
        body.push_str("</tbody>\n</table>\n");
    }
    let mut links = Vec::new();
    if query.before.is_some() {
        links.push("<a href=\"/audit\">Newest</a>".to_string());
    }
    if entries.len() == AUDIT_PAGE as usize
        && let Some(last) = entries.last()
    {
        links.push(format!("<a href=\"/audit?before={}\">Older</a>", last.id));
    }
    if !links.is_empty() {
        body.push_str(&format!("<p>{}</p>", links.join(" · ")));
    }
    html::dashboard(StatusCode::OK, "Audit log", &nav(&principal), &body)
}

// Users.

fn user_row(principal: &Principal, user: &User) -> String {
    let actions = if principal.role() == Role::Admin {
        let hidden = format!(
            "{}<input type=\"hidden\" name=\"email\" value=\"{}\">",
            html::csrf_field(csrf(principal)),
            html::escape(&user.email)
        );
        let reset = if user.totp_enabled {
            format!(
                "<form method=\"post\" action=\"/users/reset-totp\">{hidden}<button type=\"submit\">Reset TOTP</button></form> "
            )
        } else {
            String::new()
        };
        let other = match user.role {
            Role::Admin => "viewer",
            Role::Viewer => "admin",
        };
        let role = format!(
            "<form method=\"post\" action=\"/users/role\">{hidden}<input type=\"hidden\" name=\"role\" value=\"{other}\"><button type=\"submit\">Make {other}</button></form> "
        );
        format!(
            "{role}{reset}<form method=\"post\" action=\"/users/delete\">{hidden}<button type=\"submit\">Delete</button></form>"
        )
    } else {
        String::new()
    };
    format!(
        "<tr><td>{email}</td><td>{role}</td><td>{totp}</td><td>{created}</td><td>{actions}</td></tr>\n",
        email = html::escape(&user.email),
        role = role_name(user.role),
        totp = if user.totp_enabled { "on" } else { "off" },
        created = time(user.created_at),
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
    let mut body = html::error(error);
    if principal.role() == Role::Admin {
        body.push_str(&format!(
            concat!(
                "<h2>New user</h2>\n<form method=\"post\" action=\"/users\">{csrf}",
                "<label>Email <input name=\"email\" value=\"{email}\" required></label> ",
                "<label>Role <select name=\"role\"><option value=\"viewer\">viewer</option>",
                "<option value=\"admin\">admin</option></select></label> ",
                "<button type=\"submit\">Create user</button></form>\n",
                "<p>The user gets a one-time password, shown once, to replace at first sign-in.</p>\n",
            ),
            csrf = html::csrf_field(csrf(principal)),
            email = html::escape(email),
        ));
    }
    body.push_str(concat!(
        "<table>\n<thead><tr><th>Email</th><th>Role</th><th>TOTP</th><th>Created</th>",
        "<th></th></tr></thead>\n<tbody>\n"
    ));
    for user in &users {
        body.push_str(&user_row(principal, user));
    }
    body.push_str("</tbody>\n</table>");
    html::dashboard(status, "Users", &nav(principal), &body)
}

async fn list_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    users_page(&state, &principal, StatusCode::OK, None, "").await
}

#[derive(Debug, Deserialize)]
struct NewUserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<NewUserForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
        );
    };
    let unprocessable = |text: String| {
        let (state, principal, email) = (&state, &principal, form.email.clone());
        async move {
            users_page(
                state,
                principal,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&text),
                &email,
            )
            .await
        }
    };
    let Some(role) = Role::from_name(&form.role) else {
        return unprocessable("role must be admin or viewer".into()).await;
    };
    match state
        .accounts
        .create_user(&form.email, role, NewPassword::Generate, &principal.actor())
        .await
    {
        Ok((user, password)) => {
            let body = format!(
                concat!(
                    "<p>The user <strong>{email}</strong> ({role}) is made. Give them this ",
                    "one-time password now: it is shown this once and must be replaced at the ",
                    "first sign-in.</p>\n<p><code id=\"password\">{password}</code></p>\n",
                    "<p><a href=\"/users\">All users</a></p>"
                ),
                email = html::escape(&user.email),
                role = role_name(user.role),
                password = html::escape(password.as_deref().unwrap_or_default()),
            );
            html::dashboard(StatusCode::CREATED, "New user", &nav(&principal), &body)
        }
        Err(error @ (AccountError::InvalidEmail(_) | AccountError::EmailTaken(_))) => {
            unprocessable(error.to_string()).await
        }
        Err(error) => ApiError::from(error).into_response(),
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

async fn delete_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
        );
    };
    let result = state
        .accounts
        .delete_user(&form.email, &principal.actor())
        .await;
    user_changed(&state, &principal, result).await
}

async fn reset_totp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
        );
    };
    let result = state
        .accounts
        .reset_totp(&form.email, &principal.actor())
        .await;
    user_changed(&state, &principal, result).await
}

// Settings.

async fn settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let settings = &state.settings;
    let policy = state.accounts.policy();
    let addr = |addr: Option<std::net::SocketAddr>| {
        addr.map(|a| a.to_string())
            .unwrap_or_else(|| "not listening".into())
    };
    let dns = match &settings.dns_servers {
        None => "the system resolver".to_string(),
        Some(servers) => servers
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let rows = [
        ("Version", crate::VERSION.to_string()),
        ("SMTP listener", addr(settings.smtp_listen)),
        (
            "Submission listeners",
            match settings.submission_listen.as_slice() {
                [] => "off".to_string(),
                addrs => addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        ),
        ("Web listener", addr(settings.web_listen)),
        ("STARTTLS", settings.starttls.clone()),
        ("Data directory", settings.data_dir.display().to_string()),
        ("SPF", if settings.spf { "on" } else { "off" }.to_string()),
        ("DNS", dns),
        (
            "Session idle timeout",
            format!("{} s", policy.session_idle.as_secs()),
        ),
        (
            "Session lifetime",
            format!("{} s", policy.session_lifetime.as_secs()),
        ),
        (
            "TOTP required",
            if policy.require_totp { "yes" } else { "no" }.to_string(),
        ),
        (
            "Public URL",
            settings
                .public_url
                .as_ref()
                .map(|url| url.as_str().trim_end_matches('/').to_string())
                .unwrap_or_else(|| "not set (sign-in providers use the loopback Host)".into()),
        ),
    ];
    let providers = state.oidc.providers();
    let mut body = String::from(concat!(
        "<p>Read-only; change the config file and restart.</p>\n",
        "<table>\n<tbody>\n"
    ));
    for (name, value) in rows {
        body.push_str(&format!(
            "<tr><th>{name}</th><td>{}</td></tr>\n",
            html::escape(&value)
        ));
    }
    body.push_str("</tbody>\n</table>\n<h2>Sign-in providers</h2>\n");
    if providers.is_empty() {
        body.push_str("<p>None: users sign in with their password only ([[web.oidc]]).</p>");
    } else {
        body.push_str(concat!(
            "<table id=\"sign-in-providers\">\n<thead><tr><th>Name</th><th>Button</th>",
            "<th>Kind</th><th>Client id</th></tr></thead>\n<tbody>\n"
        ));
        for provider in providers {
            body.push_str(&format!(
                "<tr><td>{}</td><td>Sign in with {}</td><td>{}</td><td>{}</td></tr>\n",
                html::escape(&provider.name),
                html::escape(&provider.label),
                html::escape(&provider.kind.describe()),
                html::escape(&provider.client_id),
            ));
        }
        body.push_str("</tbody>\n</table>");
    }
    html::dashboard(StatusCode::OK, "Settings", &nav(&principal), &body)
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
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
        );
    };
    let Some(role) = Role::from_name(&form.role) else {
        return message(
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
