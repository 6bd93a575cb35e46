//! The server-rendered pages' two layouts (`page`: the narrow sign-in and account pages;
//! `dashboard`: the wide message pages with navigation, CSS and our one script), HTML
//! escaping and the security headers every page carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and double-quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The hidden form field every state-changing form carries.
pub(super) fn csrf_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf_token" value="{}">"#,
        escape(token)
    )
}

/// A complete page. `body` is HTML already escaped where needed.
pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        concat!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>{title} · Postern</title>\n",
            "<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}",
            "label{{display:block;margin:.75rem 0}}input:not([type=hidden]){{display:block;width:100%;padding:.4rem;font:inherit}}",
            "button{{margin-top:1rem;padding:.4rem 1rem;font:inherit}}.error{{color:#a00}}code{{word-break:break-all}}</style>\n",
            "</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n",
        ),
        title = escape(title),
        body = body,
    );
    respond(status, html, PAGE_CSP)
}

/// Inline styles only; images only from data: URLs (the TOTP QR code); no scripts, no
/// framing, forms post only here.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's pages add our own script (`/assets/postern.js`, which fetches the list
/// again) and frames from here (the sandboxed email HTML).
const DASHBOARD_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A dashboard page: the wide layout, the navigation and the script. `nav` and `body` are
/// HTML already escaped where needed.
pub(super) fn dashboard(status: StatusCode, title: &str, nav: &str, body: &str) -> Response {
    let html = format!(
        concat!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>{title} · Postern</title>\n<style>{css}</style>\n",
            "<script src=\"/assets/postern.js\" defer></script>\n",
            "</head>\n<body>\n<nav>{nav}</nav>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n",
        ),
        title = escape(title),
        css = DASHBOARD_CSS,
        nav = nav,
        body = body,
    );
    respond(status, html, DASHBOARD_CSP)
}

const DASHBOARD_CSS: &str = include_str!("assets/postern.css");

/// The headers every page carries, with its content security policy.
fn respond(status: StatusCode, html: String, csp: &'static str) -> Response {
    let mut response = (status, html).into_response();
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

/// A paragraph with an error message, or nothing.
pub(super) fn error(message: Option<&str>) -> String {
    message
        .map(|m| format!(r#"<p class="error" role="alert">{}</p>"#, escape(m)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_content_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            csrf_field("a\"b"),
            r#"<input type="hidden" name="csrf_token" value="a&quot;b">"#
        );
    }
}
