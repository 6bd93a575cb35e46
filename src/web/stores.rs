//! Attachment and message stores (`objects`): `GET /stores` lists them (never a secret);
//! admins add one with the form (`POST /stores`: a test object is written first, and the
//! store's own error is shown when that fails) and remove one (`POST /stores/{name}/remove`,
//! refused while an address names it). As JSON: `GET /api/stores`, `POST /api/stores`
//! (201 with the store; 422 for a field, 409 for a taken name, 502 with the store's error),
//! `DELETE /api/stores/{name}` (204). Each change writes an audit row.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::accounts::{AuditAction, Client, Role};
use crate::objects::settings::CANNED_ACLS;
use crate::objects::{ObjectError, StoreInfo, StoreSpec};
use crate::web::AppState;
use crate::web::auth::{self, Principal};
use crate::web::error::ApiError;
use crate::web::ui::{self, Html, html};

const BACK: (&str, &str) = ("/stores", "Stores");

/// Behind the gate's `Access::Dashboard` (writes: admins).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/stores", get(stores_page).post(add_form))
        .route("/stores/{name}/remove", post(remove_form))
        .route("/api/stores", get(api_list).post(api_add))
        .route("/api/stores/{name}", delete(api_remove))
}

impl From<ObjectError> for ApiError {
    fn from(error: ObjectError) -> ApiError {
        match error {
            ObjectError::Invalid(why) => ApiError::Status(StatusCode::UNPROCESSABLE_ENTITY, why),
            ObjectError::NoSuchStore(_) => ApiError::NotFound("no store of that name"),
            error @ (ObjectError::Duplicate(_) | ObjectError::InUse { .. }) => {
                ApiError::Status(StatusCode::CONFLICT, error.to_string())
            }
            // The store's own answer: the operator needs it to fix the settings.
            error @ ObjectError::Write { .. } => {
                ApiError::Status(StatusCode::BAD_GATEWAY, error.to_string())
            }
            ObjectError::Store(error) => ApiError::Store(error),
        }
    }
}

/// Adds a store (the test write first) and audits it.
async fn add(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    spec: &StoreSpec,
) -> Result<StoreInfo, ApiError> {
    let added = state.objects.add(spec).await?;
    let detail = format!("{} store", added.kind);
    audit(
        state,
        principal,
        client,
        AuditAction::StoreAdded,
        &added.name,
        &detail,
    )
    .await?;
    Ok(added)
}

/// Removes a store unless an address (config or managed) names it, and audits it.
async fn remove(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    name: &str,
) -> Result<(), ApiError> {
    let configured = state.managed.configured_addresses_using_store(name);
    if !state.objects.remove(name, configured).await? {
        return Err(ApiError::NotFound("no store of that name"));
    }
    audit(
        state,
        principal,
        client,
        AuditAction::StoreRemoved,
        name,
        "removed",
    )
    .await
}

async fn audit(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    action: AuditAction,
    name: &str,
    detail: &str,
) -> Result<(), ApiError> {
    let subject = format!("store {name}");
    (state.accounts)
        .audit(
            &principal.actor(),
            action,
            Some(&subject),
            client.map(|c| c.ip),
            Some(detail),
        )
        .await?;
    Ok(())
}

// The page.

fn store_row(principal: &Principal, store: &StoreInfo) -> Html {
    let place = match store.kind.as_str() {
        "local" => html!(
            "the data directory; links valid {} days",
            store.expiry_days.unwrap_or_default()
        ),
        _ => html!(
            "{endpoint} bucket <code>{bucket}</code>{prefix} ({region}){acl}; key <code>{key}</code>",
            endpoint = store.endpoint.as_deref().unwrap_or("AWS S3"),
            bucket = store.bucket.as_deref().unwrap_or_default(),
            prefix = match &store.prefix {
                Some(prefix) => html!(" prefix <code>{}</code>", prefix.as_str()),
                None => Html::new(),
            },
            region = store.region.as_deref().unwrap_or_default(),
            acl = match &store.acl {
                Some(acl) => html!(", ACL {}", acl.as_str()),
                None => Html::new(),
            },
            key = store.access_key_id.as_deref().unwrap_or_default(),
        ),
    };
    let action = match principal.role() {
        Role::Admin => html!(
            concat!(
                "<form method=\"post\" action=\"/stores/{name}/remove\" data-confirm=\"Remove this store? ",
                "What is in it stays there.\">{csrf}<button type=\"submit\">Remove</button></form>"
            ),
            name = store.name.as_str(),
            csrf = ui::csrf(principal),
        ),
        _ => Html::new(),
    };
    html!(
        "<tr><td class=\"mono\">{name}</td><td>{kind}</td><td>{place}</td><td>{created}</td><td>{action}</td></tr>\n",
        name = store.name.as_str(),
        kind = store.kind.as_str(),
        place = place,
        created = store.created_at.as_str(),
        action = action,
    )
}

fn add_form_html(principal: &Principal, error: Option<&str>, spec: &StoreSpec) -> Html {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut acls = Html::trusted("<option value=\"\">(none)</option>");
    for acl in CANNED_ACLS {
        let selected = spec.acl.as_deref() == Some(acl);
        acls.push(html!(
            "<option value=\"{acl}\"{selected}>{acl}</option>",
            acl = *acl,
            selected = Html::trusted(if selected { " selected" } else { "" }),
        ));
    }
    let local = spec.kind == "local";
    html!(
        concat!(
            "<h2>New store</h2>\n{error}<form method=\"post\" action=\"/stores\">{csrf}\n",
            "<p><label>Name <input name=\"name\" value=\"{name}\" required maxlength=\"64\" pattern=\"[a-z0-9][a-z0-9_\\-]*\"></label> ",
            "<label>Kind <select name=\"kind\"><option value=\"s3\">S3-compatible bucket</option>",
            "<option value=\"local\"{local}>the data directory (local)</option></select></label></p>\n",
            "<fieldset><legend>S3</legend>",
            "<label>Endpoint <input name=\"endpoint\" value=\"{endpoint}\" placeholder=\"https://… (empty: AWS)\"></label> ",
            "<label>Bucket <input name=\"bucket\" value=\"{bucket}\"></label> ",
            "<label>Prefix <input name=\"prefix\" value=\"{prefix}\"></label> ",
            "<label>Region <input name=\"region\" value=\"{region}\" placeholder=\"us-east-1\"></label> ",
            "<label>ACL <select name=\"acl\">{acls}</select></label> ",
            "<label>Access key id <input name=\"access_key_id\" value=\"{key}\" autocomplete=\"off\"></label> ",
            "<label>Secret access key <input name=\"secret_access_key\" type=\"password\" autocomplete=\"off\"></label>",
            "</fieldset>\n",
            "<fieldset><legend>Local</legend><label>Links valid (days) ",
            "<input name=\"expiry_days\" type=\"number\" min=\"1\" max=\"365\" placeholder=\"7\"></label></fieldset>\n",
            "<p><button type=\"submit\">Test and add</button></p></form>\n",
        ),
        error = ui::error(error),
        csrf = ui::csrf(principal),
        name = spec.name.as_str(),
        local = Html::trusted(if local { " selected" } else { "" }),
        endpoint = value(&spec.endpoint),
        bucket = value(&spec.bucket),
        prefix = value(&spec.prefix),
        region = value(&spec.region),
        acls = acls,
        key = value(&spec.access_key_id),
    )
}

async fn page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    spec: &StoreSpec,
) -> Response {
    let stores = match state.objects.list().await {
        Ok(stores) => stores,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut body = Html::trusted(concat!(
        "<p>An address with an <code>attachment_store</code> gets its attachments put here ",
        "before the POST, which then carries their <code>url</code>s instead of the content; ",
        "with a <code>message_store</code> the whole message goes here too ",
        "(<code>envelope.store_url</code>). Postern only writes: it never lists, reads back or ",
        "deletes what is in a bucket (use the bucket's lifecycle rules). The local store keeps ",
        "files in the data directory, sealed, behind signed links that expire. Adding a store ",
        "writes a test object first; secrets are never shown again.</p>\n",
    ));
    if stores.is_empty() {
        body.push_trusted("<p>No stores yet.</p>\n");
    } else {
        body.push_trusted(concat!(
            "<table>\n<thead><tr><th>Name</th><th>Kind</th><th>Where</th><th>Added</th>",
            "<th></th></tr></thead>\n<tbody>\n"
        ));
        for store in &stores {
            body.push(store_row(principal, store));
        }
        body.push_trusted("</tbody>\n</table>\n");
    }
    if principal.role() == Role::Admin {
        body.push(add_form_html(principal, error, spec));
    }
    ui::dashboard(status, "Stores", ui::nav(principal), body)
}

async fn stores_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    page(
        &state,
        &principal,
        StatusCode::OK,
        None,
        &StoreSpec::default(),
    )
    .await
}

/// The form sends empty fields for what is not filled in: those are "not given".
fn from_form(mut spec: StoreSpec, expiry_days: Option<String>) -> Result<StoreSpec, String> {
    for field in [
        &mut spec.endpoint,
        &mut spec.bucket,
        &mut spec.prefix,
        &mut spec.region,
        &mut spec.acl,
        &mut spec.access_key_id,
        &mut spec.secret_access_key,
    ] {
        if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *field = None;
        }
    }
    spec.expiry_days = match expiry_days.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(days) => Some(
            days.parse()
                .map_err(|_| format!("expiry_days {days:?}: a number of days"))?,
        ),
    };
    Ok(spec)
}

/// The form's fields: as [`StoreSpec`], with the number as text (an empty field is allowed).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreForm {
    name: String,
    kind: String,
    endpoint: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    region: Option<String>,
    acl: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    expiry_days: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

async fn add_form(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    form: Result<Form<StoreForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return ui::bad_form(rejection),
    };
    let spec = StoreSpec {
        name: form.name,
        kind: form.kind,
        endpoint: form.endpoint,
        bucket: form.bucket,
        prefix: form.prefix,
        region: form.region,
        acl: form.acl,
        access_key_id: form.access_key_id,
        secret_access_key: form.secret_access_key,
        expiry_days: None,
        csrf_token: None,
    };
    let spec = match from_form(spec.clone(), form.expiry_days) {
        Ok(spec) => spec,
        Err(why) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return page(&state, &principal, status, Some(&why), &spec).await;
        }
    };
    let client = client.map(|Extension(c)| c);
    match add(&state, &principal, client.as_ref(), &spec).await {
        Ok(_) => auth::redirect("/stores"),
        Err(ApiError::Status(status, why)) => {
            page(&state, &principal, status, Some(&why), &spec).await
        }
        Err(other) => other.into_response(),
    }
}

async fn remove_form(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    Path(name): Path<String>,
) -> Response {
    let client = client.map(|Extension(c)| c);
    match remove(&state, &principal, client.as_ref(), &name).await {
        Ok(()) => auth::redirect("/stores"),
        Err(ApiError::NotFound(why)) => ui::message(&principal, StatusCode::NOT_FOUND, why, BACK),
        Err(ApiError::Status(status, why)) => ui::message(&principal, status, &why, BACK),
        Err(other) => other.into_response(),
    }
}

// The JSON API.

async fn api_list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stores = state.objects.list().await?;
    Ok(Json(json!({ "stores": stores })).into_response())
}

async fn api_add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    body: Result<Json<StoreSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(spec) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let client = client.map(|Extension(c)| c);
    let added = add(&state, &principal, client.as_ref(), &spec).await?;
    Ok((StatusCode::CREATED, Json(json!({ "store": added }))).into_response())
}

async fn api_remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let client = client.map(|Extension(c)| c);
    remove(&state, &principal, client.as_ref(), &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
