//! The server-rendered pages' two layouts (`page`: the narrow sign-in and account pages;
//! `dashboard`: the wide pages with navigation, CSS and our one script) and the security
//! headers every page carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Html, html};

/// A complete page.
pub(in crate::web) fn page(status: StatusCode, title: &str, body: Html) -> Response {
    let html = html!(
        concat!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>{title} · Postern</title>\n",
            "<style>:root{{color-scheme:light dark}}*{{box-sizing:border-box}}body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}",
            "label{{display:block;margin:.75rem 0}}input:not([type=hidden]){{display:block;width:100%;padding:.4rem;font:inherit}}",
            "button{{margin-top:1rem;padding:.4rem 1rem;font:inherit}}.error{{color:#a00}}code{{word-break:break-all}}</style>\n",
            "</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n",
        ),
        title = title,
        body = body,
    );
    respond(status, html, PAGE_CSP)
}

/// Inline styles only; images only from data: URLs (the TOTP QR code); no scripts, no
/// framing, forms post only here.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's pages add our own script (`/assets/postern.js`: live pages, tabs, keys),
/// its event stream and fetches, frames from here (the sandboxed email HTML, PDF previews)
/// and images from here (attachment previews, served sandboxed).
const DASHBOARD_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; script-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A dashboard page: the wide layout, the navigation and the script.
pub(in crate::web) fn dashboard(
    status: StatusCode,
    title: &str,
    nav: Html,
    body: Html,
) -> Response {
    let html = html!(
        concat!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>{title} · Postern</title>\n<style>{css}</style>\n",
            "<script src=\"/assets/postern.js\" defer></script>\n",
            "</head>\n<body>\n<nav>{nav}</nav>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n",
        ),
        title = title,
        css = Html::trusted(DASHBOARD_CSS),
        nav = nav,
        body = body,
    );
    respond(status, html, DASHBOARD_CSP)
}

const DASHBOARD_CSS: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/postern.css"));

/// The headers every page carries, with its content security policy.
fn respond(status: StatusCode, html: Html, csp: &'static str) -> Response {
    let mut response = (status, html.into_string()).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
