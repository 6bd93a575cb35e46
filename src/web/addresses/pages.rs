//! The addresses and domains pages, server-rendered and without JavaScript, over
//! `inbound::managed` (which holds every rule): `GET /addresses` (config entries read-only,
//! managed ones with edit and delete), `GET /addresses/new`, `POST /addresses`,
//! `GET /addresses/{id}/edit`, `POST /addresses/{id}`, `POST /addresses/{id}/delete`, and
//! the same under `/domains`. Reads for every role, writes for admins and CSRF (the gate's
//! rules). An invalid field re-renders the form with the input and the service's message
//! next to that field, 422. URLs are shown masked; a masked URL sent back unchanged keeps
//! the stored one.
//!
//! The handlers are written once, generic over [`PageKind`]: a kind's form is a table of
//! fields ([`Field`]) mapped to and from its spec through serde, so adding a field to a spec
//! means adding one row here.

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::{Map, Value};

use super::super::AppState;
use super::super::auth::{self, Principal};
use super::super::error::ApiError;
use super::super::ui::{self, Html, html, nav};
use crate::accounts::{Client, Role};
use crate::config::{AddressSpec, DomainSpec};
use crate::inbound::managed::{Address, Domain, Item, Kind, ManagedError, Source};

/// Behind the gate's `Access::Dashboard`.
pub(in crate::web) fn routes() -> Router<AppState> {
    kind_routes::<Address>().merge(kind_routes::<Domain>())
}

/// `/{plural}`, `/{plural}/new`, `/{plural}/{id}`, `/{plural}/{id}/edit`,
/// `/{plural}/{id}/delete`.
fn kind_routes<K: PageKind>() -> Router<AppState> {
    let list = format!("/{}", K::PLURAL);
    Router::new()
        .route(&list, get(list_page::<K>).post(create::<K>))
        .route(&format!("{list}/new"), get(new_form::<K>))
        .route(&format!("{list}/{{id}}"), post(update::<K>))
        .route(&format!("{list}/{{id}}/edit"), get(edit_form::<K>))
        .route(&format!("{list}/{{id}}/delete"), post(delete::<K>))
}

/// What a kind's pages show besides what [`Kind`] says: its form and its list line.
pub(super) trait PageKind: Kind {
    /// The list page's title.
    const TITLE: &'static str;
    /// The form, in order; each `name` is a field of `Kind::Spec`.
    const FIELDS: &'static [Field];
    /// An entry in the list (HTML, escaped).
    fn summary(spec: &Self::Spec) -> Html;
    /// A valid pattern put in place of an invalid one while the other fields are checked
    /// (never saved).
    const PLACEHOLDER: &'static str;
}

/// One form field: the spec field it edits, its label, and how it is entered.
pub(super) struct Field {
    name: &'static str,
    label: &'static str,
    input: Input,
}

enum Input {
    /// The entry's pattern: text, kept even when empty (the service says what is wrong).
    Pattern,
    /// Optional text; empty means unset.
    Text,
    /// An optional whole number.
    Number,
    /// A checkbox.
    Check,
    /// One of `choices` (the payload formats, the delivery modes), with the label of the
    /// empty choice.
    Choice(&'static str, &'static [&'static str]),
    /// A list of names, comma-separated in the form.
    List,
}

const fn field(name: &'static str, label: &'static str, input: Input) -> Field {
    Field { name, label, input }
}

impl PageKind for Address {
    const PLACEHOLDER: &'static str = "placeholder@placeholder.invalid";
    const TITLE: &'static str = "Addresses";
    const FIELDS: &'static [Field] = &[
        field(
            "address",
            "Address pattern (user@example.com, *@example.com, /regex/)",
            Input::Pattern,
        ),
        field(
            "target",
            "Target URL (credentials show masked; leave the mask to keep them)",
            Input::Text,
        ),
        field(
            "format",
            "Format",
            Input::Choice("default (json+n)", &FORMATS),
        ),
        field(
            "delivery",
            "Delivery (queued: 250 at once, then POSTed with retries)",
            Input::Choice("default (sync)", &DELIVERY_MODES),
        ),
        field(
            "timeout_secs",
            "Timeout in seconds (empty: delivery.timeout_secs)",
            Input::Number,
        ),
        field(
            "max_message_size",
            "Max message size in bytes (empty: smtp.max_message_size)",
            Input::Number,
        ),
        field(
            "size_exceeded_message",
            "Message for mail over that size",
            Input::Text,
        ),
        field(
            "size_as_number",
            "Attachment size as a JSON number",
            Input::Check,
        ),
        field(
            "html_to_plain",
            "Plain text from the HTML when the mail has no text part",
            Input::Check,
        ),
        field("dkim", "Verify DKIM", Input::Check),
        field("dmarc", "Check DMARC", Input::Check),
        field("auth_callback", "Auth callback URL", Input::Text),
        field("error_callback", "Error callback URL", Input::Text),
        field("redact", REDACT_LABEL, Input::List),
        field(
            "attachment_store",
            "Attachment store (a name from Stores: attachments as URLs)",
            Input::Text,
        ),
        field(
            "message_store",
            "Message store (the whole message: envelope.store_url)",
            Input::Text,
        ),
        field(
            "message_store_format",
            "What the message store keeps",
            Input::Choice("default (raw)", &MESSAGE_STORE_FORMATS),
        ),
    ];

    fn summary(spec: &AddressSpec) -> Html {
        html!(
            "<code>{}</code> → <code>{}</code> ({})",
            spec.address,
            spec.target.as_deref().unwrap_or("the domain's target"),
            spec.format.as_deref().unwrap_or("json+n"),
        )
    }
}

impl PageKind for Domain {
    const TITLE: &'static str = "Domains";
    const PLACEHOLDER: &'static str = "placeholder.invalid";
    const FIELDS: &'static [Field] = &[
        field(
            "domain",
            "Domain (example.com, *.example.com)",
            Input::Pattern,
        ),
        field(
            "auth_regex",
            "Auth regex, matched against the whole recipient address (ticket-\\d+@tickets\\.example\\.com; empty: every one)",
            Input::Text,
        ),
        field(
            "target",
            "Target URL for its addresses (credentials show masked; leave the mask to keep them)",
            Input::Text,
        ),
        field("format", "Format", Input::Choice("default", &FORMATS)),
        field(
            "delivery",
            "Delivery of its catch-all and default of its addresses",
            Input::Choice("default (sync)", &DELIVERY_MODES),
        ),
        field("redact", REDACT_LABEL, Input::List),
    ];

    fn summary(spec: &DomainSpec) -> Html {
        let local_parts = spec
            .auth_regex
            .as_deref()
            .map(|regex| html!(" recipients matching <code>{}</code>", regex));
        let target = spec
            .target
            .as_deref()
            .map(|target| html!(" → <code>{}</code>", target));
        html!("<code>{}</code>{}{}", spec.domain, local_parts, target)
    }
}

const REDACT_LABEL: &str = "Metadata not stored, comma-separated (sender_ip, helo, sender, \
    recipient, subject, message_id, server_response, tls), on top of privacy.redact";

const FORMATS: [&str; 6] = [
    "json+n",
    "multipart+n",
    "json",
    "multipart",
    "raw",
    "original",
];

/// What a message store keeps (`message_store_format`).
const MESSAGE_STORE_FORMATS: [&str; 2] = ["raw", "json"];

const DELIVERY_MODES: [&str; 2] = ["sync", "queued"];

/// A form as sent: field name → text (a checkbox is there when ticked).
type Values = BTreeMap<String, String>;

/// A field's error from the service, or one naming no field of the form (shown on top).
struct FieldError {
    field: String,
    message: String,
}

fn opt(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The spec a form describes, or the field that is not a number.
fn spec_from<K: PageKind>(values: &Values) -> Result<K::Spec, FieldError> {
    let mut object = Map::new();
    for field in K::FIELDS {
        let text = values.get(field.name).map_or("", String::as_str);
        let value = match field.input {
            Input::Pattern => Value::from(text.trim()),
            Input::Text | Input::Choice(..) => opt(text).map_or(Value::Null, Value::from),
            Input::Check => Value::Bool(values.contains_key(field.name)),
            Input::List => text.split(',').filter_map(opt).map(Value::from).collect(),
            Input::Number => match opt(text).map(|t| t.parse::<u64>()) {
                None => Value::Null,
                Some(Ok(n)) => Value::from(n),
                Some(Err(_)) => {
                    return Err(FieldError {
                        field: field.name.to_string(),
                        message: "a whole number".to_string(),
                    });
                }
            },
        };
        object.insert(field.name.to_string(), value);
    }
    // `FIELDS` names the contract's fields (a unit test checks it), so this holds.
    serde_json::from_value(Value::Object(object)).map_err(|e| FieldError {
        field: String::new(),
        message: e.to_string(),
    })
}

/// The form showing `spec` (as the service shows it: URLs masked).
fn values_of<K: PageKind>(spec: &K::Spec) -> Values {
    let fields = match serde_json::to_value(spec) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    let mut values = Values::new();
    for field in K::FIELDS {
        let text = match fields.get(field.name) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(true)) => "1".to_string(),
            Some(Value::Bool(false)) => continue,
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        values.insert(field.name.to_string(), text);
    }
    values
}

// HTML: these few functions, all through `ui::Html`.

fn admin(principal: &Principal) -> bool {
    principal.role() == Role::Admin
}

/// A dashboard page with a message and the way back to the list.
fn message<K: PageKind>(
    principal: &Principal,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let body = html!(
        "<p class=\"error\" role=\"alert\">{text}</p><p><a href=\"/{plural}\">Back to {plural}</a></p>",
        text = text,
        plural = K::PLURAL,
    );
    ui::dashboard(status, title, nav(principal), body)
}

/// A failure that is not a field's: 404, 409 (the config file defines it, or a duplicate),
/// or a store error.
fn failed<K: PageKind>(principal: &Principal, error: ManagedError) -> Response {
    match error {
        ManagedError::NotFound => message::<K>(
            principal,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such entry. Entries from the config file have no id; edit the file.",
        ),
        ManagedError::Store(error) => ApiError::Store(error).into_response(),
        other => message::<K>(
            principal,
            StatusCode::CONFLICT,
            "Not changed",
            &other.to_string(),
        ),
    }
}

fn bad_request<K: PageKind>(principal: &Principal, text: &str) -> Response {
    message::<K>(principal, StatusCode::BAD_REQUEST, "Bad request", text)
}

/// The form's error for `name`, if there is one.
fn field_error(errors: &[FieldError], name: &str) -> Html {
    match errors.iter().find(|error| error.field == name) {
        Some(error) => html!(
            "<p class=\"error field-error\" id=\"{name}-error\" role=\"alert\">{message}</p>",
            name = name,
            message = &error.message,
        ),
        None => Html::new(),
    }
}

/// One field of the form with its value and, if it is this field's, the error.
fn field_html(field: &Field, values: &Values, errors: &[FieldError]) -> Html {
    let (name, label) = (field.name, field.label);
    let value = values.get(name).map_or("", String::as_str);
    let error = field_error(errors, name);
    match field.input {
        Input::Pattern | Input::Text | Input::Number | Input::List => html!(
            "<label>{label} <input name=\"{name}\" value=\"{value}\"></label>{error}\n",
            label = label,
            name = name,
            value = value,
            error = error,
        ),
        Input::Check => html!(
            "<label class=\"check\"><input type=\"checkbox\" name=\"{name}\" value=\"1\"{checked}> {label}</label>{error}\n",
            name = name,
            checked = Html::trusted(if values.contains_key(name) {
                " checked"
            } else {
                ""
            }),
            label = label,
            error = error,
        ),
        Input::Choice(default, choices) => {
            let mut options = html!("<option value=\"\">{}</option>", default);
            for &format in choices {
                let selected = Html::trusted(if format == value { " selected" } else { "" });
                options.push(html!(
                    "<option value=\"{format}\"{selected}>{format}</option>",
                    format = format,
                    selected = selected,
                ));
            }
            html!(
                "<label>{label} <select name=\"{name}\">{options}</select></label>{error}\n",
                label = label,
                name = name,
                options = options,
                error = error,
            )
        }
    }
}

/// The new (`id: None`) or edit form, with the input kept and each of `errors` at its field
/// (or on top when it names no field of the form): 422 then, else 200.
fn form_page<K: PageKind>(
    principal: &Principal,
    id: Option<i64>,
    values: &Values,
    errors: &[FieldError],
) -> Response {
    let (noun, plural) = (K::NOUN, K::PLURAL);
    let (title, action) = match id {
        Some(id) => (format!("Edit {noun} {id}"), format!("/{plural}/{id}")),
        None => (format!("New {noun}"), format!("/{plural}")),
    };
    let top: Html = errors
        .iter()
        .filter(|e| !K::FIELDS.iter().any(|f| f.name == e.field))
        .map(|e| ui::error(Some(&e.message)))
        .collect();
    let fields: Html = K::FIELDS
        .iter()
        .map(|field| field_html(field, values, errors))
        .collect();
    let body = html!(
        concat!(
            "{top}<form method=\"post\" action=\"{action}\" class=\"filters\">\n{csrf}\n{fields}",
            "<button type=\"submit\">Save</button>\n</form>\n",
            "<p><a href=\"/{plural}\">Back to {plural}</a></p>",
        ),
        top = top,
        action = action,
        csrf = ui::csrf(principal),
        fields = fields,
        plural = plural,
    );
    let status = match errors.is_empty() {
        false => StatusCode::UNPROCESSABLE_ENTITY,
        true => StatusCode::OK,
    };
    ui::dashboard(status, &title, nav(principal), body)
}

/// One entry of the list: what it is, whether it is in use, and what may be done with it.
fn list_line<K: PageKind>(principal: &Principal, item: &Item<K::Spec>) -> Html {
    let inactive = if item.active { "" } else { " — not in use" };
    let actions = match (item.source, item.id) {
        (Source::Config, _) | (_, None) => Html::trusted(" — from the config file — edit it there"),
        (Source::Api, Some(id)) if admin(principal) => html!(
            concat!(
                " — <a href=\"/{plural}/{id}/edit\">Edit</a> ",
                "<form method=\"post\" action=\"/{plural}/{id}/delete\" style=\"display:inline\" data-confirm=\"Delete this entry? Mail for it is routed without it at once.\">{csrf}",
                "<button type=\"submit\">Delete</button></form>"
            ),
            plural = K::PLURAL,
            id = id,
            csrf = ui::csrf(principal),
        ),
        (Source::Api, Some(_)) => Html::new(),
    };
    html!(
        "<li>{summary}{inactive}{actions}</li>\n",
        summary = K::summary(&item.spec),
        inactive = inactive,
        actions = actions,
    )
}

fn list_html<K: PageKind>(principal: &Principal, items: &[Item<K::Spec>]) -> Response {
    let mut body = Html::new();
    if admin(principal) {
        body.push(html!(
            "<p><a href=\"/{}/new\">New {}</a></p>\n",
            K::PLURAL,
            K::NOUN
        ));
    }
    if items.is_empty() {
        // Nothing routes mail here yet: say where entries come from.
        body.push(html!(
            concat!(
                "<p class=\"empty\" id=\"empty\">No {plural} yet: mail to an address nothing matches is ",
                "refused at RCPT. Add one here (it takes effect at once), as an <code>[[{noun}]]</code> block in ",
                "the config file (read-only here), or through <code>POST /api/{plural}</code>.</p>\n",
            ),
            plural = K::PLURAL,
            noun = K::NOUN,
        ));
    } else {
        body.push_trusted("<ul>\n");
        for item in items {
            body.push(list_line::<K>(principal, item));
        }
        body.push_trusted("</ul>");
    }
    ui::dashboard(StatusCode::OK, K::TITLE, nav(principal), body)
}

// Handlers.

/// The id, or the page saying ids are numbers (boxed: a `Response` is large).
fn id<K: PageKind>(
    principal: &Principal,
    path: Result<Path<i64>, PathRejection>,
) -> Result<i64, Box<Response>> {
    path.map(|Path(id)| id)
        .map_err(|_| Box::new(bad_request::<K>(principal, "ids are numbers")))
}

fn form<K: PageKind>(
    principal: &Principal,
    form: Result<Form<Values>, FormRejection>,
) -> Result<Values, Box<Response>> {
    form.map(|Form(values)| values)
        .map_err(|rejection| Box::new(bad_request::<K>(principal, &rejection.body_text())))
}

async fn list_page<K: PageKind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    match state.managed.entries::<K>().await {
        Ok(items) => list_html::<K>(&principal, &items),
        Err(error) => ApiError::Store(error).into_response(),
    }
}

async fn new_form<K: PageKind>(Extension(principal): Extension<Principal>) -> Response {
    form_page::<K>(&principal, None, &Values::new(), &[])
}

async fn edit_form<K: PageKind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id::<K>(&principal, path) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match state.managed.entry::<K>(id).await {
        Ok(item) => form_page::<K>(&principal, Some(id), &values_of::<K>(&item.spec), &[]),
        Err(error) => failed::<K>(&principal, error),
    }
}

/// Creates (`id: None`) or updates from a form, then back to the list; a field's error
/// re-renders the form.
async fn save<K: PageKind>(
    state: AppState,
    principal: Principal,
    client: Client,
    id: Option<i64>,
    values: Values,
) -> Response {
    let spec = match spec_from::<K>(&values) {
        Ok(spec) => spec,
        Err(error) => {
            let errors = every_error::<K>(&state, id, &values, error).await;
            return form_page::<K>(&principal, id, &values, &errors);
        }
    };
    let spec = match id {
        Some(id) => match state.managed.unmasked::<K>(id, spec).await {
            Ok(spec) => spec,
            Err(error) => return failed::<K>(&principal, error),
        },
        None => spec,
    };
    let actor = principal.actor();
    match state
        .managed
        .put::<K>(id, spec, &actor, Some(client.ip))
        .await
    {
        Ok(_) => auth::redirect(&format!("/{}", K::PLURAL)),
        Err(ManagedError::Invalid { field, message, .. }) => {
            let errors = every_error::<K>(&state, id, &values, FieldError { field, message }).await;
            form_page::<K>(&principal, id, &values, &errors)
        }
        Err(error) => failed::<K>(&principal, error),
    }
}

/// Every field's error, not only the first the service found: each field found wrong is put
/// aside (emptied; a placeholder for the pattern) and the rest checked again, until they
/// pass or an error names no field. Nothing is saved.
async fn every_error<K: PageKind>(
    state: &AppState,
    id: Option<i64>,
    values: &Values,
    first: FieldError,
) -> Vec<FieldError> {
    let mut errors = vec![first];
    let mut probe = values.clone();
    while errors.len() <= K::FIELDS.len() {
        let last = &errors[errors.len() - 1];
        let Some(field) = K::FIELDS.iter().find(|f| f.name == last.field) else {
            break;
        };
        match field.input {
            Input::Pattern => probe.insert(field.name.to_string(), K::PLACEHOLDER.to_string()),
            _ => probe.remove(field.name),
        };
        let found = match spec_from::<K>(&probe) {
            Err(error) => error,
            Ok(spec) => {
                let spec = match id {
                    Some(id) => match state.managed.unmasked::<K>(id, spec).await {
                        Ok(spec) => spec,
                        Err(_) => break,
                    },
                    None => spec,
                };
                match state.managed.check::<K>(spec).await {
                    Err(ManagedError::Invalid { field, message, .. }) => {
                        FieldError { field, message }
                    }
                    _ => break,
                }
            }
        };
        if errors.iter().any(|e| e.field == found.field) {
            break;
        }
        errors.push(found);
    }
    errors
}

async fn create<K: PageKind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    input: Result<Form<Values>, FormRejection>,
) -> Response {
    match form::<K>(&principal, input) {
        Ok(values) => save::<K>(state, principal, client, None, values).await,
        Err(response) => *response,
    }
}

async fn update<K: PageKind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
    input: Result<Form<Values>, FormRejection>,
) -> Response {
    match (id::<K>(&principal, path), form::<K>(&principal, input)) {
        (Ok(id), Ok(values)) => save::<K>(state, principal, client, Some(id), values).await,
        (Err(response), _) | (_, Err(response)) => *response,
    }
}

async fn delete<K: PageKind>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id::<K>(&principal, path) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let actor = principal.actor();
    match state.managed.delete::<K>(id, &actor, Some(client.ip)).await {
        Ok(()) => auth::redirect(&format!("/{}", K::PLURAL)),
        Err(error) => failed::<K>(&principal, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the form is a field of the spec and back: a spec survives the round
    /// trip through its form, so `spec_from` cannot fail on a well-formed form.
    fn round_trip<K: PageKind>(spec: K::Spec)
    where
        K::Spec: PartialEq,
    {
        let values = values_of::<K>(&spec);
        assert_eq!(values.len(), K::FIELDS.len(), "{values:?}");
        match spec_from::<K>(&values) {
            Ok(back) => assert!(back == spec, "{back:?} != {spec:?}"),
            Err(error) => panic!("{}: {}", error.field, error.message),
        }
    }

    #[test]
    fn specs_survive_their_forms() {
        round_trip::<Address>(AddressSpec {
            address: "a@example.com".into(),
            target: Some("http://***@example.com/in".into()),
            format: Some("json".into()),
            timeout_secs: Some(7),
            max_message_size: Some(2048),
            size_exceeded_message: Some("too big".into()),
            size_as_number: true,
            html_to_plain: true,
            auth_callback: Some("http://example.com/auth".into()),
            error_callback: Some("http://example.com/error".into()),
            dkim: true,
            dmarc: true,
            redact: vec!["sender_ip".into(), "subject".into()],
            delivery: None,
            attachment_store: Some("files".into()),
            message_store: Some("bucket".into()),
            message_store_format: Some("json".into()),
        });
        round_trip::<Domain>(DomainSpec {
            domain: "*.example.com".into(),
            auth_regex: Some(r"t-\d+".into()),
            target: None,
            format: None,
            redact: Vec::new(),
            delivery: None,
        });
    }

    #[test]
    fn a_number_field_that_is_not_a_number_is_its_error() {
        let values = Values::from([
            ("address".to_string(), "a@example.com".to_string()),
            ("timeout_secs".to_string(), "soon".to_string()),
        ]);
        let error = spec_from::<Address>(&values).err().unwrap();
        assert_eq!(
            (error.field.as_str(), error.message.as_str()),
            ("timeout_secs", "a whole number")
        );
        let spec = spec_from::<Address>(&Values::from([(
            "address".to_string(),
            " a@example.com ".to_string(),
        )]))
        .ok()
        .unwrap();
        assert_eq!(spec.address, "a@example.com");
        assert_eq!((spec.target, spec.dkim), (None, false));
    }
}
