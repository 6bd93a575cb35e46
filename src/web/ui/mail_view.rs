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

/// [`EMAIL_CSP`] with remote images allowed, when the viewer asked for them on this message
/// (the sender learns the message was opened, and from where).
const EMAIL_CSP_IMAGES: &str =
    "default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline'; sandbox";

/// Attachment types shown inline (`preview_response`): raster images and PDFs. Never SVG or
/// HTML, which could run as a page here.
const PREVIEWED: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
];

/// How much of a text attachment the page shows.
const TEXT_PREVIEW: usize = 16 * 1024;

/// Tabs over sections (`id`, label, content): a row of links, and each section under its
/// own heading; the script shows one at a time (the URL's `#id`, else the first).
pub(in crate::web) fn tabs(tabs: &[(&str, &str, Html)]) -> Html {
    let mut out = Html::trusted("<nav class=\"tabs\" role=\"tablist\">");
    for (id, label, _) in tabs {
        out.push(html!(
            "<a href=\"#{id}\" role=\"tab\" aria-controls=\"{id}\">{label}</a>",
            id = *id,
            label = *label,
        ));
    }
    out.push_trusted("</nav>\n");
    for (id, label, content) in tabs {
        out.push(html!(
            "<section id=\"{id}\" class=\"tab\" role=\"tabpanel\"><h2>{label}</h2>\n{content}</section>\n",
            id = *id,
            label = *label,
            content = content.clone(),
        ));
    }
    out
}

/// The HTML body in a sandboxed frame, with the remote-images switch.
pub(in crate::web) fn html_tab(base: &str, images: bool) -> Html {
    let (toggle, note) = match images {
        false => (
            html!(
                "<a href=\"{}?images=on#html\" id=\"images-on\">Load remote images</a>",
                base
            ),
            "Shown sandboxed: no scripts, no forms, remote images blocked.",
        ),
        true => (
            html!(
                "<a href=\"{}#html\" id=\"images-off\">Block remote images</a>",
                base
            ),
            "Shown sandboxed: no scripts, no forms; remote images load (the sender can see that).",
        ),
    };
    html!(
        concat!(
            "<p class=\"frame-note\">{note} {toggle}</p>\n",
            "<iframe sandbox src=\"{base}/html{query}\" title=\"HTML body\" referrerpolicy=\"no-referrer\"></iframe>\n",
        ),
        note = note,
        toggle = toggle,
        base = base,
        query = if images { "?images=on" } else { "" },
    )
}

/// The plain-text body (or the HTML's text, said so).
pub(in crate::web) fn text_tab(parsed: &ParsedMessage) -> Html {
    match (&parsed.plain, parsed.text()) {
        (Some(plain), _) => html!("<pre id=\"plain\">{}</pre>\n", plain),
        (None, Some(text)) => html!(
            "<p>No plain-text part; the HTML's text:</p>\n<pre id=\"plain\">{}</pre>\n",
            text
        ),
        (None, None) => Html::trusted("<p>No text body.</p>\n"),
    }
}

/// The message as kept (our `Received:` line first), up to `limit` bytes.
pub(in crate::web) fn source_tab(raw: &[u8], limit: usize) -> Html {
    let shown = head_bytes(raw, limit);
    let more = match shown.len() < raw.len() {
        true => html!(
            "<p>The first {} of {} bytes; download the .eml for the rest.</p>\n",
            shown.len(),
            raw.len()
        ),
        false => Html::new(),
    };
    html!(
        "{more}<pre id=\"source-text\">{text}</pre>\n",
        more = more,
        text = String::from_utf8_lossy(shown).as_ref(),
    )
}

/// The top-level header fields, in order.
pub(in crate::web) fn headers_tab(parsed: &ParsedMessage) -> Html {
    let mut out = Html::trusted("<div class=\"scroll\"><table id=\"header-fields\">\n<tbody>\n");
    for field in &parsed.headers {
        out.push(html!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            field.name,
            field.value
        ));
    }
    out.push_trusted("</tbody>\n</table></div>\n");
    out
}

/// The attachments: images and PDFs previewed (sandboxed), text shown, every one a download.
pub(in crate::web) fn attachments_section(base: &str, parsed: &ParsedMessage) -> Html {
    if parsed.attachments.is_empty() {
        return Html::new();
    }
    let mut out = html!(
        "<section id=\"attachments-section\"><h2>Attachments ({})</h2>\n<ul id=\"attachments\" class=\"attachments\">\n",
        parsed.attachments.len()
    );
    for (n, attachment) in parsed.attachments.iter().enumerate() {
        let essence = essence(&attachment.content_type);
        let preview = if essence.starts_with("image/") && PREVIEWED.contains(&essence.as_str()) {
            html!(
                "<img class=\"preview\" src=\"{base}/attachments/{n}/preview\" alt=\"{name}\" loading=\"lazy\">",
                base = base,
                n = n,
                name = attachment.file_name,
            )
        } else if essence == "application/pdf" {
            html!(
                "<iframe class=\"preview\" sandbox src=\"{base}/attachments/{n}/preview\" title=\"{name}\"></iframe>",
                base = base,
                n = n,
                name = attachment.file_name,
            )
        } else if is_text(&essence) {
            html!(
                "<pre class=\"preview\">{}</pre>",
                String::from_utf8_lossy(head_bytes(&attachment.content, TEXT_PREVIEW)).as_ref()
            )
        } else {
            Html::new()
        };
        out.push(html!(
            "<li><a href=\"{base}/attachments/{n}\" download>{name}</a> · {kind} · {size} bytes · {disposition}{preview}</li>\n",
            base = base,
            n = n,
            name = attachment.file_name,
            kind = attachment.content_type,
            size = attachment.content.len(),
            disposition = attachment.disposition.as_str(),
            preview = preview,
        ));
    }
    out.push_trusted("</ul></section>\n");
    out
}

/// Text the page may show as text (escaped): `text/*` but HTML, and JSON, XML, CSV.
fn is_text(essence: &str) -> bool {
    (essence.starts_with("text/") && essence != "text/html")
        || matches!(
            essence,
            "application/json" | "application/xml" | "application/csv"
        )
}

/// `type/subtype` of a stored content type, lower case, without parameters.
fn essence(stored: &str) -> String {
    stored
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// At most `limit` bytes.
pub(in crate::web) fn head_bytes(bytes: &[u8], limit: usize) -> &[u8] {
    &bytes[..bytes.len().min(limit)]
}

/// The kept content of a message: headers, plain body, the HTML body in a sandboxed iframe
/// loaded from `{base}/html`, and attachments downloaded from `{base}/attachments/{n}`.
/// Shared by the inbound (`/messages/{id}`) and outbound (`/outbound/{uuid}`) detail pages.
pub(in crate::web) fn content_section(base: &str, parsed: &ParsedMessage) -> Html {
    let mut out = Html::trusted(
        "<h2>Headers</h2>\n<div class=\"scroll\"><table id=\"header-fields\">\n<tbody>\n",
    );
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

/// The email's HTML under [`EMAIL_CSP`] (remote `images` allowed when asked), for a
/// sandboxed iframe only (inbound and outbound).
pub(in crate::web) fn email_html_response(parsed: ParsedMessage, images: bool) -> Response {
    let Some(html) = parsed.html else {
        return plain(StatusCode::NOT_FOUND, "no HTML body\n");
    };
    let csp = if images { EMAIL_CSP_IMAGES } else { EMAIL_CSP };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, csp),
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

/// An image or PDF attachment inline, for the detail page's `<img>` and sandboxed frame:
/// only the [`PREVIEWED`] types (404 otherwise), sandboxed, never sniffed.
pub(in crate::web) fn preview_response(parsed: ParsedMessage, n: usize) -> Response {
    let Some(attachment) = parsed.attachments.into_iter().nth(n) else {
        return plain(StatusCode::NOT_FOUND, "no such attachment\n");
    };
    let essence = essence(&attachment.content_type);
    let Some(kind) = PREVIEWED.iter().find(|kind| **kind == essence) else {
        return plain(StatusCode::NOT_FOUND, "no preview for this type\n");
    };
    (
        [
            (header::CONTENT_TYPE, *kind),
            (header::CONTENT_DISPOSITION, "inline"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        attachment.content,
    )
        .into_response()
}

/// A payload as plain text (JSON and multipart alike: to read or pipe, never to render).
pub(in crate::web) fn payload_response(payload: crate::webhook::Payload) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        payload.body,
    )
        .into_response()
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
