//! The local stores' files (`objects::local`), public like the links in the payloads that
//! point at them: `GET /files/{id}/{name}?expires=<unix>&signature=<hex>` answers the
//! file's bytes when the signature is this instance's and the time is not past; 403 for a
//! forged or expired link, 404 for a file that is gone. Whatever the sender put in it, the
//! answer is a download (`application/octet-stream`, `Content-Disposition: attachment`,
//! a `sandbox` CSP): a stored file never runs on this origin.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::objects::local::FileError;
use crate::web::AppState;

/// Public: outside every gate; the signature is the check.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/files/{id}/{name}", get(file))
}

#[derive(Debug, Deserialize)]
struct Link {
    expires: Option<i64>,
    signature: Option<String>,
}

async fn file(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    Query(link): Query<Link>,
) -> Response {
    let (Some(expires), Some(signature)) = (link.expires, link.signature) else {
        return (StatusCode::FORBIDDEN, "this link is not valid\n").into_response();
    };
    match state.objects.file(&id, &name, expires, &signature).await {
        Ok(bytes) => {
            // `name` passed the file-name check: letters, digits, '.', '-', '_' only.
            let disposition = format!("attachment; filename=\"{name}\"");
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            response
        }
        Err(error @ (FileError::Forged | FileError::Expired)) => {
            (StatusCode::FORBIDDEN, format!("{error}\n")).into_response()
        }
        Err(error @ FileError::Gone) => {
            (StatusCode::NOT_FOUND, format!("{error}\n")).into_response()
        }
        Err(FileError::Unreadable(why)) => {
            tracing::error!(error = %why, "cannot serve a stored file");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}
