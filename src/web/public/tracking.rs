//! The tracking routes (contract §6.12), public like the links in the mail that point at them:
//! `GET /t/o/{token}` answers a 1×1 transparent GIF and records an `open`; `GET
//! /t/c/{token}` redirects (302) to the link the token signs and records a `click`. A token
//! this instance did not sign, or one for the other route, is a 404: the click route never
//! redirects anywhere it was not told to by a signed token. Answers are `no-store`, so every
//! open reaches the server (repeats within a minute count once, `outbound::tracking`).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::outbound::tracking::TrackKind;
use crate::web::AppState;

/// The smallest transparent GIF (1×1, 43 bytes).
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Public: outside every gate.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/t/o/{token}", get(open))
        .route("/t/c/{token}", get(click))
}

async fn open(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    track(state, peer, headers, 'o', &token).await
}

async fn click(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    track(state, peer, headers, 'c', &token).await
}

async fn track(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    letter: char,
    token: &str,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    let Some(outbound) = state.outbound.as_ref() else {
        return not_found();
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let kind = match outbound
        .track(letter, token, Some(peer.ip().to_string()), user_agent)
        .await
    {
        Ok(Some(kind)) => kind,
        Ok(None) => return not_found(),
        Err(error) => {
            tracing::error!(%error, "cannot record a tracking event");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
    };
    let no_store = (header::CACHE_CONTROL, "no-store");
    match kind {
        TrackKind::Open => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "image/gif"), no_store],
            PIXEL,
        )
            .into_response(),
        TrackKind::Click(url) => (
            StatusCode::FOUND,
            [(header::LOCATION, url.as_str()), no_store],
        )
            .into_response(),
    }
}
