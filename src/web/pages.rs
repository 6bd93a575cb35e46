//! The dashboard's message pages, server-rendered and complete without JavaScript:
//! `GET /` (the list, filtered by a GET form, paged by `before`), `GET /messages/{id}` (one
//! message, its attempts and, where the raw message is kept, its content),
//! `GET /messages/{id}/html` (the email's HTML, only ever for a sandboxed iframe),
//! `GET /messages/{id}/attachments/{n}` (downloads), `GET /about` (who is signed in, the API)
//! and `GET /assets/postern.js` (local times and the list's polling).
//!
//! Everything that came with the mail is escaped with `html::escape`; the email's HTML never
//! enters a dashboard page, only the sandboxed endpoint with its own strict policy.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::{AppState, Principal, Who, html, messages};
use crate::accounts::Role;
use crate::inbound::ResendError;
use crate::mail::message::ParsedMessage;
use crate::store::{InboundMessage, MessageFilter, Outcome};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(list))
        .route("/about", get(about))
        .route("/messages/{id}", get(detail))
        .route("/messages/{id}/html", get(email_html))
        .route("/messages/{id}/resend", post(resend))
        .route("/messages/{id}/attachments/{n}", get(attachment))
        .route("/assets/postern.js", get(script))
}

const PAGE_SIZE: u32 = 50;
/// How much of a response body the pages show.
const BODY_SHOWN: usize = 2048;

/// The policy of the email's own HTML: no scripts, no forms, no plugins, no remote loads
/// (images only from data: URLs), and a unique origin (`sandbox`) even if opened directly.
pub(super) const EMAIL_CSP: &str =
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox";

/// The list's GET form. Empty fields mean "any"; unknown fields are ignored (browsers).
#[derive(Deserialize, Default)]
struct ListForm {
    address: Option<String>,
    recipient: Option<String>,
    sender: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
}

impl ListForm {
    /// The filter fields that are set, as a query string (for links), without `before`.
    fn query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.fields() {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }

    fn fields(&self) -> [(&'static str, Option<&str>); 7] {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        [
            ("address", set(&self.address)),
            ("recipient", set(&self.recipient)),
            ("sender", set(&self.sender)),
            ("subject", set(&self.subject)),
            ("status", set(&self.status)),
            ("since", set(&self.since)),
            ("until", set(&self.until)),
        ]
    }

    fn filter(&self) -> Result<MessageFilter, String> {
        let [address, recipient, sender, subject, status, since, until] =
            self.fields().map(|(_, v)| v.map(str::to_string));
        let outcome = status
            .map(|name| {
                Outcome::from_name(&name)
                    .ok_or("status must be successful, rejected, delayed, captured or bounce")
            })
            .transpose()?;
        let bound = |name, value| {
            messages::time_bound(name, value).map_err(|e| match e {
                ApiError::BadRequest(why) => why,
                _ => format!("{name} is not a date"),
            })
        };
        let before = match self.before.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(text.parse().map_err(|_| "before must be a message id")?),
        };
        Ok(MessageFilter {
            before,
            limit: PAGE_SIZE,
            address,
            recipient,
            sender,
            subject,
            outcome,
            since: bound("since", since)?,
            until: bound("until", until)?,
        })
    }
}

/// The navigation bar: the pages, who is signed in and, for a session, sign-out.
pub(super) fn nav(principal: &Principal) -> String {
    let who = match &principal.who {
        Who::User(session) => format!(
            concat!(
                "<span>{email} ({role})</span> <a href=\"/account\">Account</a> ",
                "<form method=\"post\" action=\"/signout\">{csrf}<button type=\"submit\">Sign out</button></form>",
            ),
            email = html::escape(&session.user.email),
            role = role_name(session.user.role),
            csrf = html::csrf_field(principal.csrf_token.as_deref().unwrap_or_default()),
        ),
        Who::ApiKey(key) => format!("<span>API key {}</span>", html::escape(&key.name)),
        Who::Dev => "<span>Dev mode: open on loopback</span>".to_string(),
    };
    format!(
        "<a href=\"/\"><strong>Postern</strong></a> <a href=\"/\">Messages</a> <a href=\"/outbound\">Sent</a> <a href=\"/credentials\">Credentials</a> <a href=\"/sending-domains\">Sending domains</a> <a href=\"/suppressions\">Suppressions</a> <a href=\"/addresses\">Addresses</a> <a href=\"/domains\">Domains</a> <a href=\"/users\">Users</a> <a href=\"/keys\">API keys</a> <a href=\"/audit\">Audit log</a> <a href=\"/settings\">Settings</a> <a href=\"/about\">API</a> {who}"
    )
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    }
}

/// A page with only a message, for errors.
fn message_page(principal: &Principal, status: StatusCode, text: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html::dashboard(
        status,
        title,
        &nav(principal),
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">All messages</a></p>",
            html::escape(text)
        ),
    )
}

fn store_failed(principal: &Principal, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "dashboard page failed");
    message_page(
        principal,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
    )
}

/// An RFC 3339 UTC time; the script shows it in the viewer's time zone.
pub(super) fn time(at: &str) -> String {
    let at = html::escape(at);
    format!("<time datetime=\"{at}\">{at}</time>")
}

pub(super) fn or_dash(value: Option<&str>) -> String {
    value.map(html::escape).unwrap_or_else(|| "—".into())
}

/// The target's answer: HTTP status (if any) and outcome.
fn response_cell(message: &InboundMessage) -> String {
    let outcome = message.meta.outcome.as_str();
    match message.meta.http_status {
        Some(status) => format!("<span class=\"{outcome}\">{status} {outcome}</span>"),
        None => format!("<span class=\"{outcome}\">{outcome}</span>"),
    }
}

/// At most `limit` bytes, cut at a character boundary.
pub(super) fn head(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Query<ListForm>, QueryRejection>,
) -> Response {
    let form = form.map(|Query(f)| f).unwrap_or_default();
    let (filter, problem) = match form.filter() {
        Ok(filter) => (Some(filter), None),
        Err(why) => (None, Some(why)),
    };
    let paged = filter.as_ref().is_some_and(|f| f.before.is_some());
    let messages = match filter {
        Some(filter) => match state.store.list_inbound(filter).await {
            Ok(messages) => messages,
            Err(error) => return store_failed(&principal, error),
        },
        None => Vec::new(),
    };
    let mut body = filter_form(&form);
    body.push_str(&html::error(problem.as_deref()));
    let newest = messages.first().map(|m| m.id).unwrap_or(0);
    body.push_str(&format!(
        concat!(
            "<div class=\"scroll\"><table id=\"messages\" data-newest=\"{newest}\"{live}>\n",
            "<thead><tr><th>#</th><th>Sender IP</th><th>Message-ID</th><th>Sender</th>",
            "<th>Recipients</th><th>Subject</th><th>Date (UTC)</th><th>Server response</th>",
            "<th>Time</th><th>TLS</th><th>SMTP reply</th></tr></thead>\n<tbody>\n",
        ),
        newest = newest,
        live = if paged { "" } else { " data-live" },
    ));
    if messages.is_empty() {
        body.push_str("<tr><td colspan=\"11\">No messages.</td></tr>\n");
    }
    for message in &messages {
        let meta = &message.meta;
        let recipients = meta
            .recipients
            .iter()
            .map(|r| html::escape(r))
            .collect::<Vec<_>>()
            .join("<br>");
        body.push_str(&format!(
            concat!(
                "<tr><td><a href=\"/messages/{id}\">{id}</a></td><td>{ip}</td><td class=\"mono\">{message_id}</td>",
                "<td>{sender}</td><td>{recipients}</td><td><a href=\"/messages/{id}\">{subject}</a></td>",
                "<td>{date}</td><td>{response}</td><td>{ms}&nbsp;ms</td><td>{tls}</td><td class=\"mono\">{reply}</td></tr>\n",
            ),
            id = message.id,
            ip = html::escape(&meta.remote_ip),
            message_id = or_dash(meta.message_id.as_deref()),
            sender = html::escape(&meta.mail_from),
            recipients = recipients,
            subject = meta
                .subject
                .as_deref()
                .map(html::escape)
                .unwrap_or_else(|| "(no subject)".into()),
            date = time(&meta.received_at),
            response = response_cell(message),
            ms = meta.processing_ms,
            tls = or_dash(meta.tls_version.as_deref()),
            reply = html::escape(&meta.smtp_reply),
        ));
    }
    body.push_str("</tbody>\n</table></div>\n<p class=\"pager\">");
    let query = form.query();
    if paged {
        body.push_str(&format!(
            "<a href=\"/?{}\">Newest</a>",
            html::escape(&query)
        ));
    }
    if messages.len() == PAGE_SIZE as usize
        && let Some(last) = messages.last()
    {
        let sep = if query.is_empty() { "" } else { "&" };
        body.push_str(&format!(
            "<a href=\"/?{}\" rel=\"next\">Older</a>",
            html::escape(&format!("{query}{sep}before={}", last.id))
        ));
    }
    body.push_str("</p>\n");
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html::dashboard(status, "Messages", &nav(&principal), &body)
}

fn filter_form(form: &ListForm) -> String {
    let fields = form.fields();
    let value = |i: usize| fields[i].1.map(html::escape).unwrap_or_default();
    let status = fields[4].1.unwrap_or_default();
    let options = [
        "",
        "successful",
        "rejected",
        "delayed",
        "captured",
        "bounce",
    ]
    .iter()
    .map(|name| {
        format!(
            "<option value=\"{name}\"{selected}>{label}</option>",
            selected = if *name == status { " selected" } else { "" },
            label = if name.is_empty() { "any" } else { name },
        )
    })
    .collect::<String>();
    format!(
        concat!(
            "<form class=\"filters\" method=\"get\" action=\"/\">",
            "<label>Address<input name=\"address\" value=\"{address}\" placeholder=\"*@example.com\"></label>",
            "<label>Recipient<input name=\"recipient\" value=\"{recipient}\"></label>",
            "<label>Sender<input name=\"sender\" value=\"{sender}\"></label>",
            "<label>Subject contains<input name=\"subject\" value=\"{subject}\"></label>",
            "<label>Status<select name=\"status\">{options}</select></label>",
            "<label>Since (UTC)<input name=\"since\" value=\"{since}\" placeholder=\"2026-11-28\"></label>",
            "<label>Until (UTC)<input name=\"until\" value=\"{until}\" placeholder=\"2026-11-29\"></label>",
            "<button type=\"submit\">Filter</button> <a href=\"/\">Clear</a></form>\n",
        ),
        address = value(0),
        recipient = value(1),
        sender = value(2),
        subject = value(3),
        options = options,
        since = value(5),
        until = value(6),
    )
}

/// The message's parsed content, where the raw message is kept.
async fn content(state: &AppState, id: i64) -> Result<Option<ParsedMessage>, String> {
    let Some(raw) = state
        .store
        .get_inbound_raw(id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || ParsedMessage::parse(&raw))
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

/// `?resent=outcome`: the result of the resend that redirected here.
#[derive(Deserialize, Default)]
struct DetailQuery {
    resent: Option<String>,
    status: Option<u16>,
}

async fn detail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let Ok(Path(id)) = path else {
        return message_page(&principal, StatusCode::NOT_FOUND, "no such message");
    };
    let message = match state.store.get_inbound(id).await {
        Ok(Some(message)) => message,
        Ok(None) => return message_page(&principal, StatusCode::NOT_FOUND, "no such message"),
        Err(error) => return store_failed(&principal, error),
    };
    let parsed = match content(&state, id).await {
        Ok(parsed) => parsed,
        Err(error) => return store_failed(&principal, error),
    };
    let meta = &message.meta;
    let mut body = String::new();
    if let Some(outcome) = query.resent.as_deref().and_then(Outcome::from_name) {
        let outcome = outcome.as_str();
        let status = query.status.map(|s| format!("{s} ")).unwrap_or_default();
        body.push_str(&format!(
            "<p role=\"status\" id=\"resent\">Resent to the target: <span class=\"{outcome}\">{status}{outcome}</span> (the last attempts below).</p>\n"
        ));
    }
    let can_resend = principal.role() == Role::Admin
        && message.has_raw
        && meta.target.is_some()
        && state.inbound.is_some();
    if can_resend {
        body.push_str(&format!(
            concat!(
                "<form method=\"post\" action=\"/messages/{id}/resend\">{csrf}",
                "<button type=\"submit\">Resend to target</button></form>\n",
            ),
            id = id,
            csrf = html::csrf_field(principal.csrf_token.as_deref().unwrap_or_default()),
        ));
    }
    body += &format!(
        concat!(
            "<dl>\n<dt>Received</dt><dd>{date}</dd>\n",
            "<dt>Server response</dt><dd>{response}</dd>\n",
            "<dt>SMTP reply</dt><dd class=\"mono\">{reply}</dd>\n",
            "<dt>Processing time</dt><dd>{ms} ms</dd>\n",
            "<dt>Subject</dt><dd>{subject}</dd>\n",
            "<dt>Message-ID</dt><dd class=\"mono\">{message_id}</dd>\n",
            "<dt>Size</dt><dd>{size} bytes</dd>\n<dt>MD5</dt><dd class=\"mono\">{md5}</dd>\n",
            "<dt>TLS</dt><dd>{tls}</dd>\n<dt>Address</dt><dd>{address}</dd>\n",
            "<dt>Target</dt><dd class=\"mono\">{target}</dd>\n<dt>Format</dt><dd>{format}</dd>\n",
            "<dt>Error</dt><dd>{error}</dd>\n</dl>\n",
            "<h2>Envelope</h2>\n<dl>\n<dt>Sender IP</dt><dd>{ip}</dd>\n<dt>HELO</dt><dd>{helo}</dd>\n",
            "<dt>MAIL FROM</dt><dd>{from}</dd>\n<dt>RCPT TO</dt><dd>{to}</dd>\n</dl>\n",
        ),
        date = time(&meta.received_at),
        response = response_cell(&message),
        reply = html::escape(&meta.smtp_reply),
        ms = meta.processing_ms,
        subject = or_dash(meta.subject.as_deref()),
        message_id = or_dash(meta.message_id.as_deref()),
        size = meta.size,
        md5 = html::escape(&meta.md5),
        tls = or_dash(meta.tls_version.as_deref()),
        address = or_dash(meta.address.as_deref()),
        target = or_dash(meta.target.as_deref()),
        format = or_dash(meta.format.as_deref()),
        error = or_dash(meta.error.as_deref()),
        ip = html::escape(&meta.remote_ip),
        helo = html::escape(&meta.helo),
        from = html::escape(&meta.mail_from),
        to = meta
            .recipients
            .iter()
            .map(|r| html::escape(r))
            .collect::<Vec<_>>()
            .join("<br>"),
    );
    body.push_str(&attempts_section(&message));
    match &parsed {
        Some(parsed) => body.push_str(&content_section(&format!("/messages/{id}"), parsed)),
        None => body.push_str(
            "<h2>Content</h2>\n<p>The message itself is not kept (only dev mode keeps it).</p>\n",
        ),
    }
    let title = format!("Message {id}");
    html::dashboard(StatusCode::OK, &title, &nav(&principal), &body)
}

fn attempts_section(message: &InboundMessage) -> String {
    let attempts = message.attempts.as_deref().unwrap_or_default();
    let mut out = String::from("<h2>Delivery attempts</h2>\n");
    if attempts.is_empty() {
        out.push_str("<p>None: the message was not posted anywhere.</p>\n");
        return out;
    }
    out.push_str(concat!(
        "<div class=\"scroll\"><table id=\"attempts\">\n<thead><tr><th>#</th><th>Kind</th><th>Started (UTC)</th>",
        "<th>URL</th><th>Format</th><th>Status</th><th>Duration</th><th>Response body (first 2 KB)</th></tr></thead>\n<tbody>\n",
    ));
    for (i, attempt) in attempts.iter().enumerate() {
        let status = match (attempt.http_status, &attempt.error) {
            (Some(status), _) => status.to_string(),
            (None, Some(error)) => format!("<span class=\"error\">{}</span>", html::escape(error)),
            (None, None) => "—".into(),
        };
        out.push_str(&format!(
            concat!(
                "<tr><td>{n}</td><td>{kind}</td><td>{started}</td><td class=\"mono\">{url}</td><td>{format}</td>",
                "<td>{status}</td><td>{ms}&nbsp;ms</td><td><pre>{body}</pre></td></tr>\n",
            ),
            n = i + 1,
            kind = html::escape(&attempt.kind),
            started = time(&attempt.started_at),
            url = html::escape(&attempt.url),
            format = or_dash(attempt.format.as_deref()),
            status = status,
            ms = attempt.duration_ms,
            body = html::escape(head(&attempt.response_body, BODY_SHOWN)),
        ));
    }
    out.push_str("</tbody>\n</table></div>\n");
    out
}

/// The kept content of a message: headers, plain body, the HTML body in a sandboxed iframe
/// loaded from `{base}/html`, and attachments downloaded from `{base}/attachments/{n}`.
/// Shared by the inbound (`/messages/{id}`) and outbound (`/outbound/{uuid}`) detail pages.
pub(super) fn content_section(base: &str, parsed: &ParsedMessage) -> String {
    let base = html::escape(base);
    let mut out =
        String::from("<h2>Headers</h2>\n<div class=\"scroll\"><table id=\"headers\">\n<tbody>\n");
    for field in &parsed.headers {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            html::escape(&field.name),
            html::escape(&field.value)
        ));
    }
    out.push_str("</tbody>\n</table></div>\n<h2>Plain text</h2>\n");
    match &parsed.plain {
        Some(plain) => out.push_str(&format!(
            "<pre id=\"plain\">{}</pre>\n",
            html::escape(plain)
        )),
        None => out.push_str("<p>No plain-text body.</p>\n"),
    }
    out.push_str("<h2>HTML</h2>\n");
    if parsed.html.is_some() {
        out.push_str(&format!(
            concat!(
                "<p>Shown sandboxed: no scripts, no forms, no remote content.</p>\n",
                "<iframe sandbox src=\"{base}/html\" title=\"HTML body\" referrerpolicy=\"no-referrer\"></iframe>\n",
            ),
            base = base
        ));
    } else {
        out.push_str("<p>No HTML body.</p>\n");
    }
    out.push_str("<h2>Attachments</h2>\n");
    if parsed.attachments.is_empty() {
        out.push_str("<p>None.</p>\n");
        return out;
    }
    out.push_str("<ul id=\"attachments\">\n");
    for (n, attachment) in parsed.attachments.iter().enumerate() {
        out.push_str(&format!(
            "<li><a href=\"{base}/attachments/{n}\" download>{name}</a> · {kind} · {size} bytes · {disposition}</li>\n",
            name = html::escape(&attachment.file_name),
            kind = html::escape(&attachment.content_type),
            size = attachment.content.len(),
            disposition = attachment.disposition.as_str(),
        ));
    }
    out.push_str("</ul>\n");
    out
}

/// "Resend to target" (admins; the gate checks the role and the CSRF token first): sends
/// the kept message again through `inbound`, then shows the message with the result.
async fn resend(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return message_page(&principal, StatusCode::NOT_FOUND, "no such message");
    };
    if principal.role() != Role::Admin {
        return message_page(&principal, StatusCode::FORBIDDEN, "admins only");
    }
    let Some(inbound) = &state.inbound else {
        return message_page(
            &principal,
            StatusCode::CONFLICT,
            "nothing receives mail here",
        );
    };
    match inbound.resend(id).await {
        Ok(resent) => {
            let status = resent
                .http_status
                .map(|s| format!("&status={s}"))
                .unwrap_or_default();
            let location = format!("/messages/{id}?resent={}{status}", resent.outcome.as_str());
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        Err(ResendError::NotFound) => {
            message_page(&principal, StatusCode::NOT_FOUND, "no such message")
        }
        Err(ResendError::Store(error)) => store_failed(&principal, error),
        Err(error) => message_page(&principal, StatusCode::CONFLICT, &error.to_string()),
    }
}

/// Plain-text errors for the two content endpoints (they are fetched by frames and downloads).
pub(super) fn plain(status: StatusCode, text: &'static str) -> Response {
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

async fn parsed_or_error(
    state: &AppState,
    path: Result<Path<i64>, PathRejection>,
) -> Result<ParsedMessage, Response> {
    let Ok(Path(id)) = path else {
        return Err(plain(StatusCode::NOT_FOUND, "no such message\n"));
    };
    match content(state, id).await {
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

/// The email's HTML, for the sandboxed iframe of the detail page only.
async fn email_html(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let parsed = match parsed_or_error(&state, path).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    email_html_response(parsed)
}

/// The email's HTML under [`EMAIL_CSP`], for a sandboxed iframe only (inbound and outbound).
pub(super) fn email_html_response(parsed: ParsedMessage) -> Response {
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

async fn attachment(
    State(state): State<AppState>,
    path: Result<Path<(i64, usize)>, PathRejection>,
) -> Response {
    let Ok(Path((id, n))) = path else {
        return plain(StatusCode::NOT_FOUND, "no such attachment\n");
    };
    let parsed = match parsed_or_error(&state, Ok(Path(id))).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    attachment_response(parsed, n)
}

/// Attachment `n` as a download that never renders here (inbound and outbound).
pub(super) fn attachment_response(parsed: ParsedMessage, n: usize) -> Response {
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

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/postern.js"),
    )
        .into_response()
}

/// Who is signed in (and how to sign out), and the JSON API.
async fn about(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let who = match &principal.who {
        Who::User(session) => {
            let user = &session.user;
            let role = match user.role {
                Role::Admin => "admin",
                Role::Viewer => "viewer (read-only)",
            };
            let csrf = principal.csrf_token.clone().unwrap_or_default();
            format!(
                concat!(
                    "<p>Signed in as <strong>{email}</strong>, {role}. Session ends at {ends} (UTC) unless used.</p>\n",
                    "<p><a href=\"/account\">Account and my sessions</a> · <a href=\"/account/totp\">Two-factor authentication</a> · <a href=\"/account/password\">Change password</a></p>\n",
                    "<form method=\"post\" action=\"/signout\">{csrf}<input type=\"hidden\" name=\"everywhere\" value=\"1\">",
                    "<button type=\"submit\">Sign out everywhere</button></form>\n",
                ),
                email = html::escape(&user.email),
                role = role,
                ends = session
                    .expires_at(state.accounts.policy())
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                csrf = html::csrf_field(&csrf),
            )
        }
        Who::ApiKey(key) => format!(
            "<p>API key <strong>{}</strong>.</p>\n",
            html::escape(&key.name)
        ),
        Who::Dev => {
            "<p>Dev mode: the listener is on loopback, so nobody signs in.</p>\n".to_string()
        }
    };
    let body = format!(
        concat!(
            "{who}<h2>API</h2>\n<ul>\n",
            "<li><a href=\"/api/messages\">GET /api/messages</a>: received messages, newest first; filters ",
            "<code>?address= &amp;recipient= &amp;sender= &amp;subject= &amp;status=successful|rejected|delayed|captured|bounce ",
            "&amp;since=2026-11-28 &amp;until=2026-11-29 &amp;limit=50 &amp;before=ID</code></li>\n",
            "<li>GET /api/messages/{{id}}: one message with every delivery attempt</li>\n",
            "<li>GET /api/messages/{{id}}/raw: the raw message, where it is kept (dev mode)</li>\n",
            "<li><a href=\"/api/users\">GET /api/users</a> · POST /api/users · PATCH/DELETE /api/users/{{id}} · POST /api/users/{{id}}/reset-totp</li>\n",
            "<li><a href=\"/api/keys\">GET /api/keys</a> · POST /api/keys · DELETE /api/keys/{{id}} · ",
            "<a href=\"/api/audit\">GET /api/audit</a></li>\n",
            "<li><a href=\"/api/addresses\">GET /api/addresses</a> · POST /api/addresses · GET/PUT/DELETE /api/addresses/{{id}} · ",
            "<a href=\"/api/domains\">GET /api/domains</a> · POST /api/domains · GET/PUT/DELETE /api/domains/{{id}}</li>\n",
            "<li><a href=\"/api/outbound\">GET /api/outbound</a> · GET /api/outbound/{{id}} · ",
            "<a href=\"/api/credentials\">GET /api/credentials</a> · POST /api/credentials · DELETE /api/credentials/{{username}} · ",
            "<a href=\"/api/sending-domains\">GET /api/sending-domains</a> · POST /api/sending-domains · ",
            "DELETE /api/sending-domains/{{domain}} · GET /api/sending-domains/{{domain}}/verify · ",
            "<a href=\"/api/suppressions\">GET /api/suppressions</a></li>\n",
            "<li>ANY /target/{{code}}, /target/delay/{{ms}}: test targets</li>\n</ul>",
        ),
        who = who,
    );
    html::dashboard(StatusCode::OK, "About and API", &nav(&principal), &body)
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

    #[test]
    fn heads_cut_at_character_boundaries() {
        assert_eq!(head("abc", 2), "ab");
        assert_eq!(head("aé", 2), "a");
        assert_eq!(head("ab", 5), "ab");
    }
}
