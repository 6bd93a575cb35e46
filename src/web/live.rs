//! Live pages: `GET /live?scope=…` is a Server-Sent Events stream that sends `change` (the
//! data: the scope's version, `store::Scope`) first at once, then whenever a committed write
//! changed what the page shows. The dashboard's script compares it with the page's
//! `data-version` and fetches the page again; without the stream it polls.
//!
//! Scopes: `inbound` (the inbox), `outbound` (Sent), `message:ID` (a received message's
//! delivery), `sent:UUID` (a sent message). Writes are coalesced ([`COALESCE`]); a comment
//! keeps idle streams open through proxies; every stream ends when the shutdown starts, so
//! the drain never waits for an open tab.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::watch;

use crate::store::Scope;
use crate::web::AppState;
use crate::web::error::ApiError;

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/live", get(live))
}

/// Writes closer together than this send one event.
const COALESCE: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
struct LiveQuery {
    scope: String,
}

/// `inbound`, `outbound`, `message:ID`, `sent:UUID`.
pub(super) fn parse_scope(text: &str) -> Option<Scope> {
    match text.split_once(':') {
        None if text == "inbound" => Some(Scope::Inbound),
        None if text == "outbound" => Some(Scope::Outbound),
        Some(("message", id)) => id.parse().ok().map(Scope::Message),
        Some(("sent", uuid)) if uuid.len() <= 64 && !uuid.is_empty() => {
            Some(Scope::Sent(uuid.to_string()))
        }
        _ => None,
    }
}

/// The stream's state between events.
struct Watch {
    state: AppState,
    scope: Scope,
    changes: watch::Receiver<u64>,
    /// The version sent last; `None` before the first event.
    sent: Option<String>,
}

async fn live(
    State(state): State<AppState>,
    query: Result<Query<LiveQuery>, QueryRejection>,
) -> Response {
    let Some(scope) = query.ok().and_then(|Query(q)| parse_scope(&q.scope)) else {
        return ApiError::BadRequest(
            "scope must be inbound, outbound, message:ID or sent:UUID".into(),
        )
        .into_response();
    };
    let start = Watch {
        changes: state.store.changed(),
        state,
        scope,
        sent: None,
    };
    let stream = futures_util::stream::unfold(start, |mut watch| async move {
        let version = next_version(&mut watch).await?;
        let event = Event::default().event("change").data(&version);
        watch.sent = Some(version);
        Some((Ok::<_, Infallible>(event), watch))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The next version to send: the current one first, then each that differs from the last
/// sent; `None` ends the stream (shutdown, store gone).
async fn next_version(watch: &mut Watch) -> Option<String> {
    loop {
        if watch.sent.is_some() {
            let shutdown = watch.state.shutdown.clone();
            let stopping = async {
                match &shutdown {
                    Some(shutdown) => shutdown.triggered().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = watch.changes.changed() => changed.ok()?,
                () = stopping => return None,
            }
            tokio::time::sleep(COALESCE).await;
            watch.changes.borrow_and_update();
        }
        let version = match watch.state.store.version(watch.scope.clone()).await {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(%error, "live page: cannot read the store");
                return None;
            }
        };
        if watch.sent.as_deref() != Some(version.as_str()) {
            return Some(version);
        }
        // The first pass always sends; later ones only what changed.
    }
}

/// The version a page embeds as `data-version` when it is rendered; empty if unknown (the
/// script then takes the stream's first event as news).
pub(super) async fn version(state: &AppState, scope: Scope) -> String {
    state.store.version(scope).await.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_bad_ones_do_not() {
        assert_eq!(parse_scope("inbound"), Some(Scope::Inbound));
        assert_eq!(parse_scope("outbound"), Some(Scope::Outbound));
        assert_eq!(parse_scope("message:42"), Some(Scope::Message(42)));
        assert_eq!(parse_scope("sent:ab-12"), Some(Scope::Sent("ab-12".into())));
        for bad in ["", "message:x", "message:", "sent:", "inbox", "inbound:1"] {
            assert_eq!(parse_scope(bad), None, "{bad}");
        }
        assert_eq!(parse_scope(&format!("sent:{}", "a".repeat(65))), None);
    }
}
