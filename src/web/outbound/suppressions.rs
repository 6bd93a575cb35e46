//! The suppression list (contract §6.11), over `outbound::suppression`: `GET /suppressions`
//! (admins also get the add form and remove buttons), `POST /suppressions` and
//! `POST /suppressions/remove` (the `address` field); and as JSON `GET /api/suppressions`,
//! `POST /api/suppressions` `{"address", "reason"?}` (201, or 200 when listed already),
//! `DELETE /api/suppressions/{address}` (204, 404 when not listed). Writes are audited.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{AuditAction, Client, Role};
use crate::outbound::suppression::SuppressionError;
use crate::web::AppState;
use crate::web::auth::{self, Principal};
use crate::web::error::ApiError;
use crate::web::ui::form::{self, FormPage, Refused, Submission};
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/suppressions",
            get(form::show::<SuppressionsPage>).post(form::submit::<SuppressionsPage>),
        )
        .route("/suppressions/remove", post(remove_suppression))
        .route("/api/suppressions", get(api_list).post(api_add))
        .route("/api/suppressions/{address}", delete(api_remove))
}

// The pages.

#[derive(Debug, Default, Deserialize)]
struct SuppressionForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    reason: String,
}

/// The list, and for admins the form (with `error` above it and the fields kept).
async fn suppressions_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    form: &SuppressionForm,
) -> Response {
    let rows = match super::outbound(state) {
        Ok(outbound) => match outbound.suppressions().await {
            Ok(rows) => rows,
            Err(error) => return super::error_page(principal, error.into(), ("/outbound", "Sent")),
        },
        Err(error) => return super::error_page(principal, error, ("/outbound", "Sent")),
    };
    let mut body = Html::trusted(
        "<p>Mail to these addresses is never attempted: each recipient gets a <code>suppressed</code> event instead. Hard bounces add addresses here.</p>\n",
    );
    if principal.role() == Role::Admin {
        body.push(html!(
            concat!(
                "<h2>Suppress an address</h2>\n{error}<form method=\"post\" action=\"/suppressions\" class=\"filters\">{csrf}",
                "<label>Address<input name=\"address\" value=\"{address}\" required placeholder=\"user@example.net\"></label>",
                "<label>Reason<input name=\"reason\" value=\"{reason}\" placeholder=\"manual\"></label>",
                "<button type=\"submit\">Suppress</button></form>\n",
            ),
            error = ui::error(error),
            csrf = ui::csrf(principal),
            address = Html::escape(&form.address),
            reason = Html::escape(&form.reason),
        ));
    }
    if rows.is_empty() {
        body.push_trusted("<p>No suppressed addresses.</p>\n");
    } else {
        body.push_trusted(concat!(
            "<div class=\"scroll\"><table id=\"suppressions\">\n<thead><tr><th>Address</th><th>Reason</th>",
            "<th>Message</th><th>Since (UTC)</th><th></th></tr></thead>\n<tbody>\n",
        ));
        for row in &rows {
            let message = match &row.message_id {
                Some(uuid) => html!(
                    "<a href=\"/outbound/{uuid}\" class=\"mono\">{uuid}</a>",
                    uuid = Html::escape(uuid)
                ),
                None => ui::dash(),
            };
            let action = if principal.role() == Role::Admin {
                html!(
                    concat!(
                        "<form method=\"post\" action=\"/suppressions/remove\" data-confirm=\"Remove this address from the suppression list? Mail to it is sent again.\">{csrf}",
                        "<input type=\"hidden\" name=\"address\" value=\"{address}\">",
                        "<button type=\"submit\">Remove</button></form>",
                    ),
                    csrf = ui::csrf(principal),
                    address = Html::escape(&row.address),
                )
            } else {
                Html::new()
            };
            body.push(html!(
                "<tr><td>{address}</td><td>{reason}</td><td>{message}</td><td>{since}</td><td>{action}</td></tr>\n",
                address = Html::escape(&row.address),
                reason = Html::escape(&row.reason),
                message = message,
                since = ui::unix_time(row.created_at),
                action = action,
            ));
        }
        body.push_trusted("</tbody>\n</table></div>\n");
    }
    ui::dashboard(status, "Suppression list", ui::nav(principal), body)
}

/// `/suppressions`: the list and, for admins, the form to suppress an address.
struct SuppressionsPage;

impl FormPage for SuppressionsPage {
    type Form = SuppressionForm;
    const BACK: (&'static str, &'static str) = ("/suppressions", "Suppression list");

    async fn render(
        state: &AppState,
        principal: &Principal,
        status: StatusCode,
        refusal: Option<&str>,
        form: &SuppressionForm,
    ) -> Response {
        suppressions_page(state, principal, status, refusal, form).await
    }

    /// Suppresses the address, then back to the list.
    async fn submit(sent: Submission<'_>, form: &SuppressionForm) -> Result<Response, Refused> {
        let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
        match suppress(
            sent.state,
            sent.principal,
            sent.client,
            &form.address,
            reason,
        )
        .await
        {
            Ok(_) => Ok(auth::redirect("/suppressions")),
            Err(ApiError::Field { detail, .. }) => {
                Err(Refused::Again(StatusCode::UNPROCESSABLE_ENTITY, detail))
            }
            Err(error) => Err(Refused::Answer(super::error_page(
                sent.principal,
                error,
                Self::BACK,
            ))),
        }
    }
}

async fn remove_suppression(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    form: Result<Form<SuppressionForm>, FormRejection>,
) -> Response {
    let back = ("/suppressions", "Suppression list");
    let Ok(Form(form)) = form else {
        return ui::message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
            back,
        );
    };
    let client = client.map(|Extension(c)| c);
    match unsuppress(&state, &principal, client.as_ref(), &form.address).await {
        Ok(true) => auth::redirect("/suppressions"),
        Ok(false) => ui::message(
            &principal,
            StatusCode::NOT_FOUND,
            "this address is not on the suppression list",
            back,
        ),
        Err(error) => super::error_page(&principal, error, back),
    }
}

// The JSON API.

#[derive(Debug, Deserialize)]
struct NewSuppression {
    address: String,
    reason: Option<String>,
}

async fn api_list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let rows = super::outbound(&state)?.suppressions().await?;
    Ok(Json(json!({ "suppressions": rows })).into_response())
}

/// Adds `address` through `Outbound::suppress` and, when it was not listed yet, writes the
/// audit row; the normalised address and whether it was added. Shared with the
/// `/suppressions` page.
async fn suppress(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    address: &str,
    reason: Option<&str>,
) -> Result<(String, bool), ApiError> {
    let (address, added) = match super::outbound(state)?.suppress(address, reason).await {
        Ok(result) => result,
        Err(SuppressionError::BadAddress(text)) => {
            return Err(ApiError::Field {
                field: "address".into(),
                message: "not an email address".into(),
                detail: SuppressionError::BadAddress(text).to_string(),
            });
        }
        Err(SuppressionError::Store(error)) => return Err(ApiError::Store(error)),
    };
    if added {
        state
            .accounts
            .audit(
                &principal.actor(),
                AuditAction::ConfigChanged,
                Some(&address),
                client.map(|c| c.ip),
                Some("suppression added"),
            )
            .await?;
    }
    Ok((address, added))
}

/// Removes `address` through `Outbound::unsuppress` and writes the audit row; false when
/// it was not listed. Shared with the `/suppressions` page.
async fn unsuppress(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    address: &str,
) -> Result<bool, ApiError> {
    if !super::outbound(state)?.unsuppress(address).await? {
        return Ok(false);
    }
    state
        .accounts
        .audit(
            &principal.actor(),
            AuditAction::ConfigChanged,
            Some(address.trim()),
            client.map(|c| c.ip),
            Some("suppression removed"),
        )
        .await?;
    Ok(true)
}

async fn api_add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    body: Result<Json<NewSuppression>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (address, added) = suppress(
        &state,
        &principal,
        Some(&client),
        &body.address,
        body.reason.as_deref(),
    )
    .await?;
    let row = super::outbound(&state)?
        .suppressions()
        .await?
        .into_iter()
        .find(|row| row.address.eq_ignore_ascii_case(&address));
    let status = match added {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(row)).into_response())
}

async fn api_remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(client): Extension<Client>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    if !unsuppress(&state, &principal, Some(&client), &address).await? {
        return Err(ApiError::NotFound(
            "this address is not on the suppression list",
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
