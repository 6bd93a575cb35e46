//! The addresses and domains pages, server-rendered and without JavaScript, over `manage`
//! (which holds every rule): `GET /addresses` (config entries read-only, managed ones with
//! edit and delete), `GET /addresses/new`, `POST /addresses`, `GET /addresses/{id}/edit`,
//! `POST /addresses/{id}`, `POST /addresses/{id}/delete`, and the same under `/domains`.
//! Reads for every role, writes for admins and CSRF (the gate's rules). An invalid field
//! re-renders the form with the input and `manage`'s message next to that field, 422. URLs
//! are shown masked; a masked URL sent back unchanged keeps the stored one.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use super::AppState;
use super::auth::{self, Principal};
use super::error::ApiError;
use super::ui::legacy as html;
use crate::accounts::{Client, Role};
use crate::config::{AddressSpec, DomainSpec};
use crate::manage::{ManageError, Source};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/addresses", get(list_addresses).post(create_address))
        .route("/addresses/new", get(new_address))
        .route("/addresses/{id}", post(update_address))
        .route("/addresses/{id}/edit", get(edit_address))
        .route("/addresses/{id}/delete", post(delete_address))
        .route("/domains", get(list_domains).post(create_domain))
        .route("/domains/new", get(new_domain))
        .route("/domains/{id}", post(update_domain))
        .route("/domains/{id}/edit", get(edit_domain))
        .route("/domains/{id}/delete", post(delete_domain))
}

const FORMATS: [&str; 5] = ["json+n", "multipart+n", "json", "multipart", "raw"];

fn bad_request(message: &str) -> Response {
    html::page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("<p>{}</p>", html::escape(message)),
    )
}

/// The id, or the page saying ids are numbers (boxed: a `Response` is large).
fn id(path: Result<Path<i64>, PathRejection>) -> Result<i64, Box<Response>> {
    path.map(|Path(id)| id)
        .map_err(|_| Box::new(bad_request("ids are numbers")))
}

fn form<T>(form: Result<Form<T>, FormRejection>) -> Result<T, Box<Response>> {
    form.map(|Form(f)| f)
        .map_err(|rejection| Box::new(bad_request(&rejection.body_text())))
}

/// A failure that is not a field's: 404, 409 (the config file defines it, or a duplicate),
/// or a store error, as a page.
fn failed(error: ManageError) -> Response {
    match error {
        ManageError::NotFound => html::page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>No such entry. Entries from the config file have no id; edit the file.</p>",
        ),
        ManageError::Store(error) => ApiError::Store(error).into_response(),
        other => html::page(
            StatusCode::CONFLICT,
            "Not changed",
            &format!("<p>{}</p>", html::escape(&other.to_string())),
        ),
    }
}

fn csrf(principal: &Principal) -> &str {
    principal.csrf_token.as_deref().unwrap_or_default()
}

fn admin(principal: &Principal) -> bool {
    principal.role() == Role::Admin
}

fn opt(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn checked(on: bool) -> &'static str {
    if on { " checked" } else { "" }
}

/// The form's error for `name`, if it is that field's (an error naming no field goes on top).
fn field_error(error: Option<&(String, String)>, name: &str) -> String {
    match error {
        Some((field, message)) if field == name => html::error(Some(message)),
        _ => String::new(),
    }
}

fn text_input(label: &str, name: &str, value: &str, error: Option<&(String, String)>) -> String {
    format!(
        "<label>{label} <input name=\"{name}\" value=\"{value}\"></label>{error}\n",
        label = html::escape(label),
        value = html::escape(value),
        error = field_error(error, name),
    )
}

fn format_select(value: &str, default_label: &str, error: Option<&(String, String)>) -> String {
    let mut options = format!(
        "<option value=\"\">{}</option>",
        html::escape(default_label)
    );
    for format in FORMATS {
        let selected = if format == value { " selected" } else { "" };
        options.push_str(&format!(
            "<option value=\"{format}\"{selected}>{format}</option>"
        ));
    }
    format!(
        "<label>Format <select name=\"format\">{options}</select></label>{}\n",
        field_error(error, "format")
    )
}

/// A field's error from `manage`, or the failure that is not a field's.
fn invalid(error: ManageError) -> Result<(String, String), Box<Response>> {
    match error {
        ManageError::Invalid { field, message, .. } => Ok((field, message)),
        other => Err(Box::new(failed(other))),
    }
}

/// The top-of-form line for an error that names no field of the form.
fn form_error(error: Option<&(String, String)>, fields: &[&str]) -> String {
    match error {
        Some((field, message)) if !fields.contains(&field.as_str()) => html::error(Some(message)),
        _ => String::new(),
    }
}

/// The stored URL when `sent` is its masked form unchanged, else what was sent.
fn keep_stored(
    sent: Option<String>,
    masked: &Option<String>,
    stored: &Option<String>,
) -> Option<String> {
    if sent.is_some() && sent == *masked {
        stored.clone()
    } else {
        sent
    }
}

// Addresses.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AddressForm {
    address: String,
    target: String,
    format: String,
    timeout_secs: String,
    max_message_size: String,
    size_exceeded_message: String,
    size_as_number: Option<String>,
    dkim: Option<String>,
    dmarc: Option<String>,
    auth_callback: String,
    error_callback: String,
}

const ADDRESS_FIELDS: [&str; 11] = [
    "address",
    "target",
    "format",
    "timeout_secs",
    "max_message_size",
    "size_exceeded_message",
    "size_as_number",
    "dkim",
    "dmarc",
    "auth_callback",
    "error_callback",
];

impl AddressForm {
    fn from_spec(spec: &AddressSpec) -> AddressForm {
        AddressForm {
            address: spec.address.clone(),
            target: spec.target.clone().unwrap_or_default(),
            format: spec.format.clone().unwrap_or_default(),
            timeout_secs: spec.timeout_secs.map(|n| n.to_string()).unwrap_or_default(),
            max_message_size: spec
                .max_message_size
                .map(|n| n.to_string())
                .unwrap_or_default(),
            size_exceeded_message: spec.size_exceeded_message.clone().unwrap_or_default(),
            size_as_number: spec.size_as_number.then(|| "1".into()),
            dkim: spec.dkim.then(|| "1".into()),
            dmarc: spec.dmarc.then(|| "1".into()),
            auth_callback: spec.auth_callback.clone().unwrap_or_default(),
            error_callback: spec.error_callback.clone().unwrap_or_default(),
        }
    }

    /// The spec, or the field that is not a number.
    fn spec(&self) -> Result<AddressSpec, (String, String)> {
        let number = |name: &str, text: &str| -> Result<Option<u64>, (String, String)> {
            match opt(text) {
                None => Ok(None),
                Some(text) => text
                    .parse()
                    .map(Some)
                    .map_err(|_| (name.to_string(), "a whole number".to_string())),
            }
        };
        Ok(AddressSpec {
            address: self.address.trim().to_string(),
            target: opt(&self.target),
            format: opt(&self.format),
            timeout_secs: number("timeout_secs", &self.timeout_secs)?,
            max_message_size: number("max_message_size", &self.max_message_size)?,
            size_exceeded_message: opt(&self.size_exceeded_message),
            size_as_number: self.size_as_number.is_some(),
            auth_callback: opt(&self.auth_callback),
            error_callback: opt(&self.error_callback),
            dkim: self.dkim.is_some(),
            dmarc: self.dmarc.is_some(),
        })
    }
}

fn address_form(
    principal: &Principal,
    id: Option<i64>,
    input: &AddressForm,
    error: Option<&(String, String)>,
) -> Response {
    let (title, action) = match id {
        Some(id) => (format!("Edit address {id}"), format!("/addresses/{id}")),
        None => ("New address".to_string(), "/addresses".to_string()),
    };
    let mut body = form_error(error, &ADDRESS_FIELDS);
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\">\n{}\n",
        html::csrf_field(csrf(principal))
    ));
    body.push_str(&text_input(
        "Address pattern (user@example.com, *@example.com, /regex/)",
        "address",
        &input.address,
        error,
    ));
    body.push_str(&text_input(
        "Target URL (credentials show masked; leave the mask to keep them)",
        "target",
        &input.target,
        error,
    ));
    body.push_str(&format_select(&input.format, "default (json+n)", error));
    body.push_str(&text_input(
        "Timeout in seconds (empty: delivery.timeout_secs)",
        "timeout_secs",
        &input.timeout_secs,
        error,
    ));
    body.push_str(&text_input(
        "Max message size in bytes (empty: smtp.max_message_size)",
        "max_message_size",
        &input.max_message_size,
        error,
    ));
    body.push_str(&text_input(
        "Message for mail over that size",
        "size_exceeded_message",
        &input.size_exceeded_message,
        error,
    ));
    for (name, label, on) in [
        (
            "size_as_number",
            "Attachment size as a JSON number",
            input.size_as_number.is_some(),
        ),
        ("dkim", "Verify DKIM", input.dkim.is_some()),
        ("dmarc", "Check DMARC", input.dmarc.is_some()),
    ] {
        body.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"{name}\" value=\"1\"{} style=\"display:inline;width:auto\"> {label}</label>{}\n",
            checked(on),
            field_error(error, name),
        ));
    }
    body.push_str(&text_input(
        "Auth callback URL",
        "auth_callback",
        &input.auth_callback,
        error,
    ));
    body.push_str(&text_input(
        "Error callback URL",
        "error_callback",
        &input.error_callback,
        error,
    ));
    body.push_str("<button type=\"submit\">Save</button>\n</form>\n<p><a href=\"/addresses\">Back to addresses</a></p>");
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html::page(status, &title, &body)
}

async fn list_addresses(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let items = match state.managed.addresses().await {
        Ok(items) => items,
        Err(error) => return ApiError::Store(error).into_response(),
    };
    let admin = admin(&principal);
    let mut body =
        String::from("<p><a href=\"/domains\">Domains</a> · <a href=\"/\">Home</a></p>\n");
    if admin {
        body.push_str("<p><a href=\"/addresses/new\">New address</a></p>\n");
    }
    body.push_str("<ul>\n");
    for item in &items {
        let spec = &item.spec;
        let what = format!(
            "<code>{}</code> → <code>{}</code> ({})",
            html::escape(&spec.address),
            html::escape(spec.target.as_deref().unwrap_or("the domain's target")),
            html::escape(spec.format.as_deref().unwrap_or("json+n")),
        );
        let inactive = if item.active { "" } else { " — not in use" };
        let actions = match (item.source, item.id) {
            (Source::Config, _) | (_, None) => {
                " — from the config file — edit it there".to_string()
            }
            (Source::Api, Some(id)) if admin => format!(
                concat!(
                    " — <a href=\"/addresses/{id}/edit\">Edit</a> ",
                    "<form method=\"post\" action=\"/addresses/{id}/delete\" style=\"display:inline\">{csrf}",
                    "<button type=\"submit\">Delete</button></form>"
                ),
                id = id,
                csrf = html::csrf_field(csrf(&principal)),
            ),
            (Source::Api, Some(_)) => String::new(),
        };
        body.push_str(&format!("<li>{what}{inactive}{actions}</li>\n"));
    }
    body.push_str("</ul>");
    html::page(StatusCode::OK, "Addresses", &body)
}

async fn new_address(Extension(principal): Extension<Principal>) -> Response {
    address_form(&principal, None, &AddressForm::default(), None)
}

async fn edit_address(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id(path) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match state.managed.address(id).await {
        Ok(item) => address_form(
            &principal,
            Some(id),
            &AddressForm::from_spec(&item.spec),
            None,
        ),
        Err(error) => failed(error),
    }
}

async fn save_address(
    state: AppState,
    principal: Principal,
    client: Client,
    id: Option<i64>,
    input: AddressForm,
) -> Response {
    let mut spec = match input.spec() {
        Ok(spec) => spec,
        Err(error) => return address_form(&principal, id, &input, Some(&error)),
    };
    if let Some(id) = id {
        // The form shows URLs masked: sent back unchanged, they mean "keep the stored one".
        let (shown, stored) = match (
            state.managed.address(id).await,
            state.store.managed_address(id).await,
        ) {
            (Ok(shown), Ok(Some(stored))) => (shown.spec, stored),
            (Err(error), _) => return failed(error),
            (_, Err(error)) => return ApiError::Store(error).into_response(),
            (_, Ok(None)) => return failed(ManageError::NotFound),
        };
        spec.target = keep_stored(spec.target, &shown.target, &stored.target);
        spec.auth_callback = keep_stored(
            spec.auth_callback,
            &shown.auth_callback,
            &stored.auth_callback,
        );
        spec.error_callback = keep_stored(
            spec.error_callback,
            &shown.error_callback,
            &stored.error_callback,
        );
    }
    match state
        .managed
        .put_address(id, spec, &principal.actor(), Some(client.ip))
        .await
    {
        Ok(_) => auth::redirect("/addresses"),
        Err(error) => match invalid(error) {
            Ok(error) => address_form(&principal, id, &input, Some(&error)),
            Err(response) => *response,
        },
    }
}

async fn create_address(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    input: Result<Form<AddressForm>, FormRejection>,
) -> Response {
    match form(input) {
        Ok(input) => save_address(state, principal, client, None, input).await,
        Err(response) => *response,
    }
}

async fn update_address(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
    input: Result<Form<AddressForm>, FormRejection>,
) -> Response {
    match (id(path), form(input)) {
        (Ok(id), Ok(input)) => save_address(state, principal, client, Some(id), input).await,
        (Err(response), _) | (_, Err(response)) => *response,
    }
}

async fn delete_address(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id(path) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match state
        .managed
        .delete_address(id, &principal.actor(), Some(client.ip))
        .await
    {
        Ok(()) => auth::redirect("/addresses"),
        Err(error) => failed(error),
    }
}

// Domains.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DomainForm {
    domain: String,
    auth_regex: String,
    target: String,
    format: String,
}

const DOMAIN_FIELDS: [&str; 4] = ["domain", "auth_regex", "target", "format"];

impl DomainForm {
    fn from_spec(spec: &DomainSpec) -> DomainForm {
        DomainForm {
            domain: spec.domain.clone(),
            auth_regex: spec.auth_regex.clone().unwrap_or_default(),
            target: spec.target.clone().unwrap_or_default(),
            format: spec.format.clone().unwrap_or_default(),
        }
    }

    fn spec(&self) -> DomainSpec {
        DomainSpec {
            domain: self.domain.trim().to_string(),
            auth_regex: opt(&self.auth_regex),
            target: opt(&self.target),
            format: opt(&self.format),
        }
    }
}

fn domain_form(
    principal: &Principal,
    id: Option<i64>,
    input: &DomainForm,
    error: Option<&(String, String)>,
) -> Response {
    let (title, action) = match id {
        Some(id) => (format!("Edit domain {id}"), format!("/domains/{id}")),
        None => ("New domain".to_string(), "/domains".to_string()),
    };
    let mut body = form_error(error, &DOMAIN_FIELDS);
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\">\n{}\n",
        html::csrf_field(csrf(principal))
    ));
    body.push_str(&text_input(
        "Domain (example.com, *.example.com)",
        "domain",
        &input.domain,
        error,
    ));
    body.push_str(&text_input(
        "Auth regex: local parts accepted (empty: every one)",
        "auth_regex",
        &input.auth_regex,
        error,
    ));
    body.push_str(&text_input(
        "Target URL for its addresses (credentials show masked; leave the mask to keep them)",
        "target",
        &input.target,
        error,
    ));
    body.push_str(&format_select(&input.format, "default", error));
    body.push_str("<button type=\"submit\">Save</button>\n</form>\n<p><a href=\"/domains\">Back to domains</a></p>");
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html::page(status, &title, &body)
}

async fn list_domains(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let items = match state.managed.domains().await {
        Ok(items) => items,
        Err(error) => return ApiError::Store(error).into_response(),
    };
    let admin = admin(&principal);
    let mut body =
        String::from("<p><a href=\"/addresses\">Addresses</a> · <a href=\"/\">Home</a></p>\n");
    if admin {
        body.push_str("<p><a href=\"/domains/new\">New domain</a></p>\n");
    }
    body.push_str("<ul>\n");
    for item in &items {
        let spec = &item.spec;
        let what = format!(
            "<code>{}</code>{}{}",
            html::escape(&spec.domain),
            spec.auth_regex
                .as_deref()
                .map(|r| format!(" local parts <code>{}</code>", html::escape(r)))
                .unwrap_or_default(),
            spec.target
                .as_deref()
                .map(|t| format!(" → <code>{}</code>", html::escape(t)))
                .unwrap_or_default(),
        );
        let inactive = if item.active { "" } else { " — not in use" };
        let actions = match (item.source, item.id) {
            (Source::Config, _) | (_, None) => {
                " — from the config file — edit it there".to_string()
            }
            (Source::Api, Some(id)) if admin => format!(
                concat!(
                    " — <a href=\"/domains/{id}/edit\">Edit</a> ",
                    "<form method=\"post\" action=\"/domains/{id}/delete\" style=\"display:inline\">{csrf}",
                    "<button type=\"submit\">Delete</button></form>"
                ),
                id = id,
                csrf = html::csrf_field(csrf(&principal)),
            ),
            (Source::Api, Some(_)) => String::new(),
        };
        body.push_str(&format!("<li>{what}{inactive}{actions}</li>\n"));
    }
    body.push_str("</ul>");
    html::page(StatusCode::OK, "Domains", &body)
}

async fn new_domain(Extension(principal): Extension<Principal>) -> Response {
    domain_form(&principal, None, &DomainForm::default(), None)
}

async fn edit_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id(path) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match state.managed.domain(id).await {
        Ok(item) => domain_form(
            &principal,
            Some(id),
            &DomainForm::from_spec(&item.spec),
            None,
        ),
        Err(error) => failed(error),
    }
}

async fn save_domain(
    state: AppState,
    principal: Principal,
    client: Client,
    id: Option<i64>,
    input: DomainForm,
) -> Response {
    let mut spec = input.spec();
    if let Some(id) = id {
        let (shown, stored) = match (
            state.managed.domain(id).await,
            state.store.managed_domain(id).await,
        ) {
            (Ok(shown), Ok(Some(stored))) => (shown.spec, stored),
            (Err(error), _) => return failed(error),
            (_, Err(error)) => return ApiError::Store(error).into_response(),
            (_, Ok(None)) => return failed(ManageError::NotFound),
        };
        spec.target = keep_stored(spec.target, &shown.target, &stored.target);
    }
    match state
        .managed
        .put_domain(id, spec, &principal.actor(), Some(client.ip))
        .await
    {
        Ok(_) => auth::redirect("/domains"),
        Err(error) => match invalid(error) {
            Ok(error) => domain_form(&principal, id, &input, Some(&error)),
            Err(response) => *response,
        },
    }
}

async fn create_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    input: Result<Form<DomainForm>, FormRejection>,
) -> Response {
    match form(input) {
        Ok(input) => save_domain(state, principal, client, None, input).await,
        Err(response) => *response,
    }
}

async fn update_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
    input: Result<Form<DomainForm>, FormRejection>,
) -> Response {
    match (id(path), form(input)) {
        (Ok(id), Ok(input)) => save_domain(state, principal, client, Some(id), input).await,
        (Err(response), _) | (_, Err(response)) => *response,
    }
}

async fn delete_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id(path) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match state
        .managed
        .delete_domain(id, &principal.actor(), Some(client.ip))
        .await
    {
        Ok(()) => auth::redirect("/domains"),
        Err(error) => failed(error),
    }
}
