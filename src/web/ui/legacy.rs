//! The string helpers the addresses pages (`web::addresses_pages`) still build their HTML
//! with, until they are ported to [`Html`]: thin wrappers over the kit. Nothing new should
//! use them.

use axum::http::StatusCode;
use axum::response::Response;

use super::Html;

pub(in crate::web) fn escape(text: &str) -> String {
    Html::escape(text).into_string()
}

pub(in crate::web) fn error(message: Option<&str>) -> String {
    super::error(message).into_string()
}

pub(in crate::web) fn csrf_field(token: &str) -> String {
    super::csrf_field(token).into_string()
}

/// `body` is markup built with `format!` and [`escape`].
pub(in crate::web) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    super::page(status, title, Html::assume_escaped(body.to_string()))
}
