//! Webhook signing secrets (`webhook::signing`): `GET /signing` lists every address whose
//! mail is POSTed and every live SMTP credential with whether its POSTs are signed; admins
//! rotate (`POST /signing/rotate`: the new secret is on the answer page, once), retire the
//! replaced secret before its overlap ends (`POST /signing/retire`) or stop signing
//! (`POST /signing/remove`). As JSON: `GET /api/signing`, and `POST /api/signing/rotate`,
//! `/retire`, `/remove` with `{"address": "…"}` or `{"credential": "…"}` (admins; the secret
//! is in the rotate answer only). Every change writes an audit row.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::{AuditAction, Client, Role};
use crate::web::AppState;
use crate::web::auth::{self, Principal};
use crate::web::error::ApiError;
use crate::web::ui::{self, Html, html};
use crate::webhook::signing::{Rotated, SigningError, SigningStatus};
use crate::webhook::{Owner, Signing};

const BACK: (&str, &str) = ("/signing", "Signing secrets");

/// Behind the gate's `Access::Dashboard` (writes: admins).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signing", get(signing_page))
        .route("/signing/rotate", post(rotate_form))
        .route("/signing/retire", post(end_form::<Retire>))
        .route("/signing/remove", post(end_form::<Remove>))
        .route("/api/signing", get(api_list))
        .route("/api/signing/rotate", post(api_rotate))
        .route("/api/signing/retire", post(api_end::<Retire>))
        .route("/api/signing/remove", post(api_end::<Remove>))
}

impl From<SigningError> for ApiError {
    fn from(error: SigningError) -> ApiError {
        match error {
            SigningError::Store(error) => ApiError::Store(error),
            corrupt => ApiError::Internal(corrupt.to_string()),
        }
    }
}

/// One owner and its signing, as listed.
#[derive(Debug, Serialize)]
struct Listed {
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
    /// `None`: its POSTs are not signed.
    signing: Option<SigningStatus>,
}

/// Every owner a secret can have now: the addresses whose mail is POSTed, then the live
/// credentials; with their signing.
async fn owners(state: &AppState) -> Result<Vec<(Owner, Option<SigningStatus>)>, ApiError> {
    let mut owners: Vec<Owner> = (state.managed.posting_addresses().into_iter())
        .map(Owner::Address)
        .collect();
    if let Some(outbound) = &state.outbound {
        let credentials = outbound.credentials().await?;
        owners.extend(
            (credentials.into_iter())
                .filter(|credential| credential.revoked_at.is_none())
                .map(|credential| Owner::Credential(credential.username)),
        );
    }
    let mut listed = Vec::with_capacity(owners.len());
    for owner in owners {
        let status = state.signing.status(&owner).await?;
        listed.push((owner, status));
    }
    Ok(listed)
}

/// The owner a request names, if it is one [`owners`] lists.
async fn known(state: &AppState, named: &Named) -> Result<Owner, ApiError> {
    let owner = match (&named.address, &named.credential) {
        (Some(address), None) => Owner::Address(address.trim().to_string()),
        (None, Some(credential)) => Owner::Credential(credential.trim().to_string()),
        _ => {
            return Err(ApiError::BadRequest(
                "name exactly one of address or credential".into(),
            ));
        }
    };
    let exists = owners(state).await?.iter().any(|(o, _)| *o == owner);
    match (exists, &owner) {
        (true, _) => Ok(owner),
        (false, Owner::Address(_)) => Err(ApiError::NotFound(
            "no address with that pattern POSTs anywhere (GET /api/signing lists them)",
        )),
        (false, Owner::Credential(_)) => {
            Err(ApiError::NotFound("no live credential with that username"))
        }
    }
}

/// An owner named in a form or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    address: Option<String>,
    credential: Option<String>,
    /// The form's CSRF field (the gate has checked it).
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

async fn audit(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    action: AuditAction,
    owner: &Owner,
) -> Result<(), ApiError> {
    let subject = owner.to_string();
    state
        .accounts
        .audit(
            &principal.actor(),
            action,
            Some(&subject),
            client.map(|c| c.ip),
            None,
        )
        .await?;
    Ok(())
}

/// A new secret for the owner a request names, audited.
async fn rotate(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    named: &Named,
) -> Result<(Owner, Rotated), ApiError> {
    let owner = known(state, named).await?;
    let rotated = state.signing.rotate(&owner).await?;
    audit(
        state,
        principal,
        client,
        AuditAction::SigningSecretRotated,
        &owner,
    )
    .await?;
    Ok((owner, rotated))
}

/// The two ends of signing a page or the API asks for: the replaced secret's overlap, or
/// all of it. A marker type each, so one handler serves both routes.
trait End: Send + Sync + 'static {
    const ACTION: AuditAction;
    /// The 404's text when there was nothing to end.
    const NOTHING: &'static str;
    fn apply(
        signing: &Signing,
        owner: &Owner,
    ) -> impl std::future::Future<Output = Result<bool, SigningError>> + Send;
}

struct Retire;
struct Remove;

impl End for Retire {
    const ACTION: AuditAction = AuditAction::SigningSecretRetired;
    const NOTHING: &'static str = "no replaced secret is signing";
    async fn apply(signing: &Signing, owner: &Owner) -> Result<bool, SigningError> {
        signing.retire_previous(owner).await
    }
}

impl End for Remove {
    const ACTION: AuditAction = AuditAction::SigningSecretRemoved;
    const NOTHING: &'static str = "its POSTs are not signed";
    async fn apply(signing: &Signing, owner: &Owner) -> Result<bool, SigningError> {
        signing.remove(owner).await
    }
}

/// Ends `E` for the owner a request names, audited; 404 when there was nothing to end.
async fn end<E: End>(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    named: &Named,
) -> Result<(), ApiError> {
    let owner = known(state, named).await?;
    if !E::apply(&state.signing, &owner).await? {
        return Err(ApiError::NotFound(E::NOTHING));
    }
    audit(state, principal, client, E::ACTION, &owner).await
}

// The pages.

fn owner_fields(owner: &Owner) -> Html {
    match owner {
        Owner::Address(pattern) => html!(
            r#"<input type="hidden" name="address" value="{}">"#,
            pattern
        ),
        Owner::Credential(username) => html!(
            r#"<input type="hidden" name="credential" value="{}">"#,
            username
        ),
    }
}

fn owner_row(principal: &Principal, owner: &Owner, status: Option<&SigningStatus>) -> Html {
    let (kind, name) = match owner {
        Owner::Address(pattern) => ("address", pattern),
        Owner::Credential(username) => ("credential", username),
    };
    let signing = match status {
        None => Html::trusted("not signed"),
        Some(status) => match status.previous_until {
            None => html!("signed since {}", ui::unix_time(status.created_at)),
            Some(until) => html!(
                "signed since {}; the replaced secret signs too until {}",
                ui::unix_time(status.created_at),
                ui::unix_time(until)
            ),
        },
    };
    let mut actions = Html::new();
    if principal.role() == Role::Admin {
        let form = |action: &str, label: &str, confirm: Option<&str>| {
            html!(
                concat!(
                    "<form method=\"post\" action=\"/signing/{action}\"{confirm}>{csrf}{fields}",
                    "<button type=\"submit\">{label}</button></form> "
                ),
                action = action,
                confirm = match confirm {
                    Some(text) => html!(" data-confirm=\"{}\"", text),
                    None => Html::new(),
                },
                csrf = ui::csrf(principal),
                fields = owner_fields(owner),
                label = label,
            )
        };
        let rotate = match status {
            None => form("rotate", "Generate secret", None),
            Some(_) => form(
                "rotate",
                "Rotate",
                Some("Make a new secret? The current one keeps signing for 24 hours beside it."),
            ),
        };
        actions.push(rotate);
        if status.is_some_and(|s| s.previous_until.is_some()) {
            actions.push(form(
                "retire",
                "Retire old secret",
                Some("Stop signing with the replaced secret now? Apps still using it start refusing."),
            ));
        }
        if status.is_some() {
            actions.push(form(
                "remove",
                "Stop signing",
                Some("Stop signing these POSTs? Apps that verify signatures start refusing them."),
            ));
        }
    }
    html!(
        "<tr><td>{kind}</td><td class=\"mono\">{name}</td><td>{signing}</td><td>{actions}</td></tr>\n",
        kind = kind,
        name = name.as_str(),
        signing = signing,
        actions = actions,
    )
}

async fn signing_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let listed = match owners(&state).await {
        Ok(listed) => listed,
        Err(error) => return error.into_response(),
    };
    let mut body = Html::trusted(concat!(
        "<p>With a signing secret, every POST Postern makes for an address (its messages and ",
        "its callbacks) or a credential (its events webhook) carries the Standard Webhooks ",
        "headers <code>webhook-id</code>, <code>webhook-timestamp</code> and ",
        "<code>webhook-signature</code>: your app checks them with the secret and refuses ",
        "what it did not come from Postern. A rotation keeps the replaced secret signing ",
        "for 24 hours beside the new one, so the app can switch without losing a request.</p>\n",
    ));
    if listed.is_empty() {
        body.push_trusted("<p>No address POSTs anywhere and no credential exists yet.</p>");
    } else {
        body.push_trusted(concat!(
            "<table>\n<thead><tr><th>For</th><th>Name</th><th>Signing</th><th></th></tr>",
            "</thead>\n<tbody>\n"
        ));
        for (owner, status) in &listed {
            body.push(owner_row(&principal, owner, status.as_ref()));
        }
        body.push_trusted("</tbody>\n</table>");
    }
    ui::dashboard(StatusCode::OK, "Signing secrets", ui::nav(&principal), body)
}

fn failed(principal: &Principal, error: ApiError) -> Response {
    match error {
        ApiError::NotFound(why) => ui::message(principal, StatusCode::NOT_FOUND, why, BACK),
        ApiError::BadRequest(why) => ui::message(principal, StatusCode::BAD_REQUEST, &why, BACK),
        other => other.into_response(),
    }
}

async fn rotate_form(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    form: Result<Form<Named>, FormRejection>,
) -> Response {
    let named = match form {
        Ok(Form(named)) => named,
        Err(rejection) => return ui::bad_form(rejection),
    };
    let client = client.map(|Extension(c)| c);
    let (owner, rotated) = match rotate(&state, &principal, client.as_ref(), &named).await {
        Ok(rotated) => rotated,
        Err(error) => return failed(&principal, error),
    };
    let overlap = match rotated.previous_until {
        Some(until) => html!(
            " The secret it replaces keeps signing beside it until {}: give the app this one before then, or retire the old one when it has it.",
            ui::unix_time(until)
        ),
        None => Html::new(),
    };
    let body = html!(
        concat!(
            "<p>The POSTs for the {owner} are signed with this secret from now on. Copy it now: ",
            "it is shown this once and never again.{overlap}</p>\n",
            "<p><code id=\"secret\">{secret}</code> ",
            "<button type=\"button\" data-copy=\"#secret\">Copy</button></p>\n",
            "<p>Check each request with a Standard Webhooks library (e.g. <code>pip install ",
            "standardwebhooks</code>: <code>Webhook(secret).verify(body, headers)</code>); ",
            "the README shows it in Python, Node and Go.</p>\n",
            "<p><a href=\"/signing\">All signing secrets</a></p>"
        ),
        owner = owner.to_string(),
        overlap = overlap,
        secret = rotated.secret,
    );
    ui::dashboard(
        StatusCode::CREATED,
        "New signing secret",
        ui::nav(&principal),
        body,
    )
}

/// "Retire old secret" and "Stop signing", then back to the list.
async fn end_form<E: End>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    form: Result<Form<Named>, FormRejection>,
) -> Response {
    let named = match form {
        Ok(Form(named)) => named,
        Err(rejection) => return ui::bad_form(rejection),
    };
    let client = client.map(|Extension(c)| c);
    match end::<E>(&state, &principal, client.as_ref(), &named).await {
        Ok(()) => auth::redirect("/signing"),
        Err(error) => failed(&principal, error),
    }
}

// The JSON API.

fn listed(owner: Owner, signing: Option<SigningStatus>) -> Listed {
    let (address, credential) = match owner {
        Owner::Address(pattern) => (Some(pattern), None),
        Owner::Credential(username) => (None, Some(username)),
    };
    Listed {
        address,
        credential,
        signing,
    }
}

async fn api_list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let owners: Vec<Listed> = (owners(&state).await?.into_iter())
        .map(|(owner, status)| listed(owner, status))
        .collect();
    Ok(Json(json!({ "signing": owners })).into_response())
}

fn json_body(body: Result<Json<Named>, JsonRejection>) -> Result<Named, ApiError> {
    body.map(|Json(named)| named)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

async fn api_rotate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    body: Result<Json<Named>, JsonRejection>,
) -> Result<Response, ApiError> {
    let named = json_body(body)?;
    let client = client.map(|Extension(c)| c);
    let (owner, rotated) = rotate(&state, &principal, client.as_ref(), &named).await?;
    let mut answer = serde_json::to_value(listed(owner, None)).expect("serialisable");
    answer["secret"] = rotated.secret.into();
    answer["previous_valid_until"] = match rotated.previous_until {
        Some(until) => crate::clock::from_unix(until)
            .format(&time::format_description::well_known::Rfc3339)
            .expect("UTC formats as RFC 3339")
            .into(),
        None => serde_json::Value::Null,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `POST /api/signing/retire` and `/remove`: 204, or 404 when there was nothing to end.
async fn api_end<E: End>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    body: Result<Json<Named>, JsonRejection>,
) -> Result<Response, ApiError> {
    let named = json_body(body)?;
    let client = client.map(|Extension(c)| c);
    end::<E>(&state, &principal, client.as_ref(), &named).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
