//! The sandboxed mail view shared by the inbound (`/messages/{id}`) and outbound
//! (`/outbound/{uuid}`) detail pages: the content section (headers, plain text, the HTML in a
//! sandboxed frame, the attachment list), the frame's own response under [`EMAIL_CSP`], and
//! attachment downloads that never render here.
//!
//! The email's HTML never enters a dashboard page, only the frame's endpoint with its own
//! strict policy.

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Html, html};
use crate::mail::message::ParsedMessage;
use crate::store::StoreError;

/// The policy of the email's own HTML: no scripts, no forms, no plugins, no remote loads
/// (images only from data: URLs), and a unique origin (`sandbox`) even if opened directly.
pub(in crate::web) const EMAIL_CSP: &str =
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox";

/// The kept content of a message: headers, plain body, the HTML body in a sandboxed iframe
/// loaded from `{base}/html`, and attachments downloaded from `{base}/attachments/{n}`.
/// Shared by the inbound (`/messages/{id}`) and outbound (`/outbound/{uuid}`) detail pages.
pub(in crate::web) fn content_section(base: &str, parsed: &ParsedMessage) -> Html {
    let mut out =
        Html::trusted("<h2>Headers</h2>\n<div class=\"scroll\"><table id=\"headers\">\n<tbody>\n");
    for field in &parsed.headers {
        out.push(html!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            field.name,
            field.value
        ));
    }
    out.push_trusted("</tbody>\n</table></div>\n<h2>Plain text</h2>\n");
    match &parsed.plain {
        Some(plain) => out.push(html!("<pre id=\"plain\">{}</pre>\n", plain)),
        None => out.push_trusted("<p>No plain-text body.</p>\n"),
    }
    out.push_trusted("<h2>HTML</h2>\n");
    if parsed.html.is_some() {
        out.push(html!(
            concat!(
                "<p>Shown sandboxed: no scripts, no forms, no remote content.</p>\n",
                "<iframe sandbox src=\"{base}/html\" title=\"HTML body\" referrerpolicy=\"no-referrer\"></iframe>\n",
            ),
            base = base
        ));
    } else {
        out.push_trusted("<p>No HTML body.</p>\n");
    }
    out.push_trusted("<h2>Attachments</h2>\n");
    if parsed.attachments.is_empty() {
        out.push_trusted("<p>None.</p>\n");
        return out;
    }
    out.push_trusted("<ul id=\"attachments\">\n");
    for (n, attachment) in parsed.attachments.iter().enumerate() {
        out.push(html!(
            "<li><a href=\"{base}/attachments/{n}\" download>{name}</a> · {kind} · {size} bytes · {disposition}</li>\n",
            base = base,
            n = n,
            name = attachment.file_name,
            kind = attachment.content_type,
            size = attachment.content.len(),
            disposition = attachment.disposition.as_str(),
        ));
    }
    out.push_trusted("</ul>\n");
    out
}

/// The kept raw message (`None`: not kept), parsed off the async threads.
pub(in crate::web) async fn parse_kept(
    raw: Result<Option<Vec<u8>>, StoreError>,
) -> Result<Option<ParsedMessage>, String> {
    let Some(raw) = raw.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || ParsedMessage::parse(&raw))
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The parsed content for the frame and the downloads, or the plain-text answer that says
/// why there is none (they are fetched by frames and downloads, not shown as pages).
pub(in crate::web) async fn kept_or_plain(
    content: impl Future<Output = Result<Option<ParsedMessage>, String>>,
) -> Result<ParsedMessage, Response> {
    match content.await {
        Ok(Some(parsed)) => Ok(parsed),
        Ok(None) => Err(plain(
            StatusCode::NOT_FOUND,
            "no content kept for this message\n",
        )),
        Err(error) => {
            tracing::error!(%error, "reading a message's content failed");
            Err(plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
        }
    }
}

/// Plain-text errors for the two content endpoints (they are fetched by frames and downloads).
pub(in crate::web) fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

/// The email's HTML under [`EMAIL_CSP`], for a sandboxed iframe only (inbound and outbound).
pub(in crate::web) fn email_html_response(parsed: ParsedMessage) -> Response {
    let Some(html) = parsed.html else {
        return plain(StatusCode::NOT_FOUND, "no HTML body\n");
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, EMAIL_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// Attachment `n` as a download that never renders here (inbound and outbound).
pub(in crate::web) fn attachment_response(parsed: ParsedMessage, n: usize) -> Response {
    let Some(attachment) = parsed.attachments.into_iter().nth(n) else {
        return plain(StatusCode::NOT_FOUND, "no such attachment\n");
    };
    let mut response = attachment.content.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        download_type(&attachment.content_type),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&attachment.file_name),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The stored type without parameters, unless it could render as a page here (HTML, XHTML,
/// SVG) or is not a plain `type/subtype`: then `application/octet-stream`.
fn download_type(stored: &str) -> HeaderValue {
    let essence = stored
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let well_formed = essence
        .split_once('/')
        .is_some_and(|(kind, sub)| token(kind) && token(sub));
    let renders = matches!(
        essence.as_str(),
        "text/html" | "application/xhtml+xml" | "image/svg+xml"
    );
    if well_formed && !renders {
        HeaderValue::from_str(&essence).expect("tokens are valid header text")
    } else {
        HeaderValue::from_static("application/octet-stream")
    }
}

/// `attachment` with an ASCII fallback name and the exact name as RFC 5987 `filename*`.
fn content_disposition(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let fallback = if fallback.trim().is_empty() {
        "attachment".to_string()
    } else {
        fallback
    };
    let exact = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"
    ))
    .expect("ASCII without controls or quotes is valid header text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_never_render_as_pages_here() {
        for (stored, sent) in [
            ("application/pdf", "application/pdf"),
            ("Image/PNG; name=\"x.png\"", "image/png"),
            ("text/html", "application/octet-stream"),
            ("TEXT/HTML; charset=utf-8", "application/octet-stream"),
            ("image/svg+xml", "application/octet-stream"),
            ("application/xhtml+xml", "application/octet-stream"),
            ("nonsense", "application/octet-stream"),
            ("text/plain\r\nX-Evil: 1", "application/octet-stream"),
            ("te\"xt/plain", "application/octet-stream"),
        ] {
            assert_eq!(download_type(stored), sent, "{stored:?}");
        }
    }

    #[test]
    fn file_names_cannot_break_the_header() {
        assert_eq!(
            content_disposition("a\"b\r\nc.txt"),
            "attachment; filename=\"a_b__c.txt\"; filename*=UTF-8''a%22b%0D%0Ac%2Etxt"
        );
        assert_eq!(
            content_disposition("\"><script>"),
            "attachment; filename=\"___script_\"; filename*=UTF-8''%22%3E%3Cscript%3E"
        );
        assert_eq!(
            content_disposition("ü"),
            "attachment; filename=\"_\"; filename*=UTF-8''%C3%BC"
        );
    }
}
