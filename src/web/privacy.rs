//! `GET /privacy` and `GET /api/privacy`: where data goes and what is kept, from
//! `privacy::build` (the live config and the managed entries), secrets masked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::{Extension, Router};

use crate::privacy::PrivacyReport;
use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::error::ApiError;
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/privacy", get(page))
        .route("/api/privacy", get(api))
}

async fn api(State(state): State<AppState>) -> Result<Json<PrivacyReport>, ApiError> {
    Ok(Json(state.privacy.report().await?))
}

async fn page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let report = match state.privacy.report().await {
        Ok(report) => report,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut body = Html::trusted(concat!(
        "<p>Generated from the running configuration and the addresses, domains and ",
        "credentials managed here; <a href=\"/api/privacy\">as JSON</a>.</p>\n",
        "<h2>Where data goes</h2>\n<table id=\"destinations\">\n<thead><tr><th>Kind</th>",
        "<th>Source</th><th>Destination</th><th>Sends</th><th>Encrypted</th></tr></thead>\n<tbody>\n"
    ));
    for destination in &report.destinations {
        body.push(html!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}: {}</td><td>{}</td></tr>\n",
            destination.kind.describe(),
            destination.source,
            destination.to,
            destination.sends.describe(),
            destination.detail,
            destination.encryption.describe(),
        ));
    }
    body.push_trusted(concat!(
        "</tbody>\n</table>\n<h2>What is stored</h2>\n<table id=\"stored\">\n<thead><tr>",
        "<th>What</th><th>Kept</th><th>Encrypted</th></tr></thead>\n<tbody>\n"
    ));
    for stored in &report.stored {
        let encrypted = if stored.encrypted { "yes" } else { "no" };
        body.push(html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            stored.what,
            stored.kept,
            encrypted
        ));
    }
    body.push_trusted("</tbody>\n</table>\n<h2>Notes</h2>\n<ul>\n");
    for note in &report.notes {
        body.push(html!("<li>{}</li>\n", note));
    }
    body.push_trusted("</ul>");
    ui::dashboard(StatusCode::OK, "Privacy", ui::nav(&principal), body)
}
