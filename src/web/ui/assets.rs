//! Our one script, `GET /assets/postern.js`: local times and the message list's polling.
//! The stylesheet is inlined by `layout`. Both files live in the top-level `assets/` folder and
//! are compiled into the binary (`include_str!`): nothing to install beside it.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::web::AppState;

/// Behind the gate's `Access::Dashboard`, like the pages that load it.
pub(in crate::web) fn routes() -> Router<AppState> {
    Router::new().route("/assets/postern.js", get(script))
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/postern.js")),
    )
        .into_response()
}
