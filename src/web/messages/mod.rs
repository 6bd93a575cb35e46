//! Received mail: the inbox (`list`), one message with its tabs and actions (`pages`), the
//! read state (`read`) and the JSON API over the same store (`api`: `/api/messages`).

mod api;
mod list;
mod pages;
mod read;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;

use crate::config::Field;
use crate::store::{InboundMessage, InboundMeta};
use crate::web::ui::{self, Html, html};
use crate::web::{AppState, Principal};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .merge(list::routes())
        .merge(pages::routes())
        .merge(api::routes())
}

/// Behind the gate's `Access::Reader`: read state is each reader's own, so viewers (users
/// and keys) keep theirs too.
pub(super) fn reader_routes() -> Router<AppState> {
    read::routes()
}

/// A page with only a message, for errors.
fn message_page(principal: &Principal, status: StatusCode, text: &str) -> Response {
    ui::message(principal, status, text, ("/", "All messages"))
}

fn store_failed(principal: &Principal, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "dashboard page failed");
    message_page(
        principal,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
    )
}

/// The target's answer: HTTP status (if any) and outcome.
fn response_cell(message: &InboundMessage) -> Html {
    let outcome = message.meta.outcome.as_str();
    match message.meta.http_status {
        Some(status) => html!(
            "<span class=\"badge {outcome}\">{status} {outcome}</span>",
            outcome = outcome,
            status = status,
        ),
        None => html!(
            "<span class=\"badge {outcome}\">{outcome}</span>",
            outcome = outcome
        ),
    }
}

/// `shown`, or "redacted" when the row left `field` out (`config::privacy`).
fn redacted(meta: &InboundMeta, field: Field, shown: Html) -> Html {
    ui::redacted(&meta.redacted, field, shown)
}

fn recipients(meta: &InboundMeta) -> Html {
    Html::join(meta.recipients.iter().map(|r| Html::escape(r)), "<br>")
}

/// Dev mode's release ([`crate::outbound::worker::release`]): the kept message `id` as
/// received to `server` (`host:port`) for `recipients` (none: the envelope's); the server's
/// answer, or the status and sentence that say why not. Shared by the page and the API.
async fn release_kept(
    state: &AppState,
    id: i64,
    server: &str,
    recipients: Vec<String>,
) -> Result<String, (StatusCode, String)> {
    let refuse = |status, why: &str| Err((status, why.to_string()));
    if !state.open {
        return refuse(StatusCode::FORBIDDEN, "release is for dev mode");
    }
    let server = server.trim();
    if server
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the SMTP server must be host:port (127.0.0.1:1025)",
        );
    }
    let failed = |error: crate::store::StoreError| {
        tracing::error!(%error, "reading a message to release failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".to_string(),
        )
    };
    let Some(message) = state.store.get_inbound(id).await.map_err(failed)? else {
        return refuse(StatusCode::NOT_FOUND, "no such message");
    };
    let Some(raw) = state.store.get_inbound_raw(id).await.map_err(failed)? else {
        return refuse(StatusCode::CONFLICT, "the message itself is not kept");
    };
    let recipients = match recipients.is_empty() {
        true => message.meta.recipients.clone(),
        false => recipients,
    };
    let released = crate::outbound::worker::release::release(
        server,
        &state.settings.hostname,
        &message.meta.mail_from,
        &recipients,
        &raw,
    )
    .await;
    match released {
        Ok(reply) => {
            tracing::info!(id, server, recipients = recipients.len(), %reply, "message released");
            Ok(reply)
        }
        Err(error) => Err((StatusCode::BAD_GATEWAY, error.to_string())),
    }
}
