//! One received message (`GET /messages/{id}`): who, to whom, when and how it ended above
//! tabs — HTML · Text · Source · Headers · Payload · Delivery · Authentication · Details —
//! and the attachments with previews; the actions (mark unread, resend, delete, download).
//! The frames and downloads it loads: `GET /messages/{id}/html` (the email's HTML, only ever
//! for a sandboxed iframe; `?images=on` lets remote images load), `/attachments/{n}`
//! (downloads), `/attachments/{n}/preview` (images and PDFs, inline, sandboxed) and
//! `/payload` (the body the app gets, for "copy as curl").
//!
//! Server-rendered and complete without JavaScript (the tabs are then sections one under the
//! other). Everything that came with the mail is escaped; the email's HTML never enters a
//! dashboard page, only the sandboxed endpoint with its own strict policy.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::Value;

use super::{message_page, recipients, redacted, response_cell, store_failed};
use crate::accounts::Role;
use crate::config::Field;
use crate::inbound::ResendError;
use crate::mail::message::ParsedMessage;
use crate::store::{InboundMessage, InboundMeta, Outcome, Scope};
use crate::web::auth;
use crate::web::ui::{self, Html, html};
use crate::web::{AppState, Principal};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/messages/{id}", get(detail))
        .route("/messages/{id}/html", get(email_html))
        .route("/messages/{id}/payload", get(payload))
        .route("/messages/{id}/resend", post(resend))
        .route("/messages/{id}/release", post(release))
        .route("/messages/{id}/repost", post(repost))
        .route("/messages/{id}/delete", post(delete_one))
        .route("/messages/{id}/retry", post(retry))
        .route("/messages/{id}/discard", post(discard))
        .route("/messages/{id}/attachments/{n}", get(attachment))
        .route("/messages/{id}/attachments/{n}/preview", get(preview))
}

/// How much of a response body the pages show.
const BODY_SHOWN: usize = 2048;
/// How much of the source and of a payload the page shows (the rest is a download).
const SOURCE_SHOWN: usize = 256 * 1024;

/// `?resent=outcome`: the result of the resend that redirected here; `?images=on`: remote
/// images load in the HTML tab; `?replay=URL`: the URL "copy as curl" posts to.
#[derive(Deserialize, Default)]
struct DetailQuery {
    resent: Option<String>,
    /// After "Post to URL": its outcome (with `status`).
    reposted: Option<String>,
    status: Option<u16>,
    /// After a release: the SMTP server's answer.
    released: Option<String>,
    images: Option<String>,
    replay: Option<String>,
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
    let raw = match state.store.get_inbound_raw(id).await {
        Ok(raw) => raw,
        Err(error) => return store_failed(&principal, error),
    };
    let parsed = match ui::parse_kept(Ok(raw.clone())).await {
        Ok(parsed) => parsed,
        Err(error) => return store_failed(&principal, error),
    };
    // Opening a message reads it (for this reader only); a failed write costs only that.
    if let Err(error) = state.store.mark_read(principal.reader(), id, true).await {
        tracing::warn!(%error, id, "cannot mark a message read");
    }
    let meta = &message.meta;
    let mut body = Html::new();
    if let Some(outcome) = query.resent.as_deref().and_then(Outcome::from_name) {
        let outcome = outcome.as_str();
        let status = query.status.map(|s| format!("{s} ")).unwrap_or_default();
        body.push(html!(
            "<p role=\"status\" id=\"resent\">Resent to the target: <span class=\"{outcome}\">{status}{outcome}</span> (see Delivery).</p>\n",
            outcome = outcome,
            status = status,
        ));
    }
    if let Some(outcome) = query.reposted.as_deref().and_then(Outcome::from_name) {
        let outcome = outcome.as_str();
        let status = query.status.map(|s| format!("{s} ")).unwrap_or_default();
        body.push(html!(
            "<p role=\"status\" id=\"reposted\">Posted: <span class=\"{outcome}\">{status}{outcome}</span> (see Delivery).</p>\n",
            outcome = outcome,
            status = status,
        ));
    }
    if let Some(reply) = &query.released {
        body.push(html!(
            "<p role=\"status\" id=\"released\">Released; the server answered <code>{}</code>.</p>\n",
            reply
        ));
    }
    body.push(head_section(&message));
    body.push(actions(&state, &principal, &message));
    if state.open && message.has_raw {
        body.push(release_forms(&principal, &message));
    }
    let base = format!("/messages/{id}");
    let images = query.images.as_deref() == Some("on");
    let mut tabs: Vec<(&str, &str, Html)> = Vec::new();
    match (&parsed, &raw) {
        (Some(parsed), Some(raw)) => {
            if parsed.html.is_some() {
                tabs.push(("html", "HTML", ui::html_tab(&base, images)));
            }
            tabs.push(("text", "Text", ui::text_tab(parsed)));
            tabs.push(("source", "Source", ui::source_tab(raw, SOURCE_SHOWN)));
            tabs.push(("headers", "Headers", ui::headers_tab(parsed)));
            tabs.push((
                "payload",
                "Payload",
                payload_tab(&state, &message, raw, query.replay.as_deref()).await,
            ));
        }
        _ => tabs.push((
            "content",
            "Content",
            Html::trusted(match meta.redacted.is_empty() {
                true => "<p>The message itself is not kept here (only dev mode keeps it).</p>\n",
                false => "<p>The message itself is not kept: fields of it are redacted.</p>\n",
            }),
        )),
    }
    // Attempts appear here as they are made (`web::live`).
    let delivery = html!(
        "<div id=\"delivery-live\" data-live=\"message:{id}\" data-version=\"{version}\">{tab}</div>",
        id = id,
        version = crate::web::live::version(&state, Scope::Message(id)).await,
        tab = delivery_tab(&message),
    );
    tabs.push(("delivery", "Delivery", delivery));
    tabs.push((
        "authentication",
        "Authentication",
        authentication_section(meta),
    ));
    tabs.push(("details", "Details", summary_section(&message)));
    body.push(ui::tabs(&tabs));
    if let Some(parsed) = &parsed {
        body.push(ui::attachments_section(&base, parsed));
    }
    // The subject names the page (the message's number where there is none to show).
    let title = match &meta.subject {
        Some(subject) if !subject.trim().is_empty() => subject.clone(),
        _ => format!("Message {id}"),
    };
    ui::dashboard(StatusCode::OK, &title, ui::nav(&principal), body)
}

/// From, To, Cc, when, and how it ended: what a mail client shows above a message.
fn head_section(message: &InboundMessage) -> Html {
    let meta = &message.meta;
    let line = |name: &str, value: Option<&str>, field: Field| match value {
        Some(value) if !value.is_empty() => html!(
            "<dt>{name}</dt><dd>{value}</dd>",
            name = name,
            value = redacted(meta, field, Html::escape(value)),
        ),
        _ => Html::new(),
    };
    let from = meta
        .header_from
        .as_deref()
        .or(Some(meta.mail_from.as_str()));
    let to = match &meta.header_to {
        Some(to) => Html::escape(to),
        None => recipients(meta),
    };
    html!(
        concat!(
            "<dl class=\"message-head\">{from}<dt>To</dt><dd>{to}</dd>{cc}",
            "<dt>Received</dt><dd>{date}</dd><dt>Status</dt><dd>{response} <span class=\"mono\">{reply}</span></dd></dl>\n",
        ),
        from = line("From", from, Field::Sender),
        to = redacted(meta, Field::Recipient, to),
        cc = line("Cc", meta.header_cc.as_deref(), Field::Recipient),
        date = ui::time(&meta.received_at),
        response = redacted(meta, Field::ServerResponse, response_cell(message)),
        reply = Html::escape(&meta.smtp_reply),
    )
}

/// Mark unread (everyone), resend and delete (admins), download (where kept).
fn actions(state: &AppState, principal: &Principal, message: &InboundMessage) -> Html {
    let id = message.id;
    let mut out = Html::trusted("<div class=\"actions\">");
    out.push(action_button(
        principal,
        &format!("/messages/{id}/unread"),
        "Mark unread",
        None,
    ));
    let admin = principal.role() == Role::Admin;
    if admin && message.has_raw && message.meta.target.is_some() && state.inbound.is_some() {
        out.push(action_button(
            principal,
            &format!("/messages/{id}/resend"),
            "Resend to target",
            None,
        ));
    }
    if admin && message.queue.is_some() {
        out.push(action_button(
            principal,
            &format!("/messages/{id}/retry"),
            "Retry now",
            None,
        ));
        out.push(action_button(
            principal,
            &format!("/messages/{id}/discard"),
            "Discard",
            Some("Discard this message? It is never posted and its content is deleted."),
        ));
    }
    if admin {
        out.push(action_button(
            principal,
            &format!("/messages/{id}/delete"),
            "Delete",
            Some("Delete this message, its content and its delivery attempts?"),
        ));
    }
    if message.has_raw {
        out.push(html!(
            "<a class=\"button\" href=\"/api/messages/{id}/raw\" download=\"message-{id}.eml\">Download .eml</a>",
            id = id
        ));
    }
    out.push(html!("<span class=\"meta\">Message {}</span></div>\n", id));
    out
}

/// Dev mode: send the message on to an SMTP server, or its payload to a URL.
fn release_forms(principal: &Principal, message: &InboundMessage) -> Html {
    html!(
        concat!(
            "<details class=\"release\"><summary>Release or post…</summary>\n",
            "<form class=\"filters\" method=\"post\" action=\"/messages/{id}/release\">{csrf}",
            "<label>SMTP server<input name=\"server\" placeholder=\"127.0.0.1:1025\" required></label>",
            "<label class=\"grow\">Recipients (comma-separated)<input name=\"recipients\" value=\"{recipients}\"></label>",
            "<button type=\"submit\">Release</button></form>\n",
            "<form class=\"filters\" method=\"post\" action=\"/messages/{id}/repost\">{csrf}",
            "<label class=\"grow\">Post the payload to<input name=\"url\" type=\"url\" placeholder=\"http://localhost:3000/incoming\" required></label>",
            "<button type=\"submit\">Post</button></form>\n",
            "<p class=\"keys\">Release sends the message as received (its envelope sender, these recipients) to that server once; ",
            "Post sends the Payload tab's body once. Both are recorded under Delivery or shown here; nothing is retried.</p></details>\n",
        ),
        id = message.id,
        csrf = ui::csrf(principal),
        recipients = message.meta.recipients.join(", "),
    )
}

/// The body the app gets for this message, and "copy as curl" that replays it to a URL of
/// the viewer's choosing (the script keeps the command in step with the field).
async fn payload_tab(
    state: &AppState,
    message: &InboundMessage,
    raw: &[u8],
    replay: Option<&str>,
) -> Html {
    let id = message.id;
    let Some(inbound) = &state.inbound else {
        return Html::trusted("<p>Nothing receives mail here.</p>\n");
    };
    let (format, payload) = match inbound.payload_of(message.meta.clone(), raw.to_vec()).await {
        Ok(built) => built,
        Err(error) => return html!("<p>No payload: {}.</p>\n", error.to_string()),
    };
    let url = replay
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .unwrap_or("http://localhost:3000/incoming");
    let origin = state.settings.web_origin();
    let auth = match state.open {
        true => "",
        false => "-H \"Authorization: Bearer $POSTERN_API_KEY\" ",
    };
    let fetch = format!("curl -s {auth}{origin}/api/messages/{id}/payload");
    let curl = format!(
        "{fetch} | curl -X POST -H '{header}' --data-binary @- '{url}'",
        header = format_args!("Content-Type: {}", payload.content_type),
        url = url.replace('\'', "%27"),
    );
    // JSON is shown indented (the app gets it compact); multipart as it is.
    let pretty = serde_json::from_slice::<Value>(&payload.body)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok());
    let text = match &pretty {
        Some(pretty) => std::borrow::Cow::Borrowed(ui::head(pretty, SOURCE_SHOWN)),
        None => String::from_utf8_lossy(ui::head_bytes(&payload.body, SOURCE_SHOWN)),
    };
    html!(
        concat!(
            "<p>As <strong>{format}</strong> (<code>{content_type}</code>), {size} bytes: what the app gets for this message",
            " (rebuilt from the kept message and the checks made on arrival; multipart boundaries differ each time).</p>\n",
            "<form class=\"filters replay\" method=\"get\" action=\"/messages/{id}#payload\">",
            "<label class=\"grow\">Replay to<input name=\"replay\" id=\"replay-url\" value=\"{url}\" type=\"url\"></label>",
            "<button type=\"submit\">Update</button></form>\n",
            "<p>Copy as curl:</p><pre><code class=\"copy\" id=\"replay-curl\" data-fetch=\"{fetch}\" data-type=\"{content_type}\">{curl}</code></pre>\n",
            "<pre id=\"payload-body\">{text}</pre>\n",
        ),
        format = format.as_str(),
        content_type = payload.content_type,
        size = payload.body.len(),
        id = id,
        url = url,
        fetch = fetch,
        curl = curl,
        text = text.as_ref(),
    )
}

/// The body the app gets (`text/plain` for JSON and multipart alike: read, never rendered).
async fn payload(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return ui::plain(StatusCode::NOT_FOUND, "no such message\n");
    };
    let Some(inbound) = &state.inbound else {
        return ui::plain(StatusCode::CONFLICT, "nothing receives mail here\n");
    };
    match inbound.payload(id).await {
        Ok((_, payload)) => ui::payload_response(payload),
        Err(ResendError::NotFound) => ui::plain(StatusCode::NOT_FOUND, "no such message\n"),
        Err(ResendError::Store(error)) => {
            tracing::error!(%error, "reading a message for its payload failed");
            ui::plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
        Err(_) => ui::plain(StatusCode::CONFLICT, "no content kept for this message\n"),
    }
}

/// A one-button POST form with the session's CSRF token; `confirm` is asked first (by the
/// dashboard's script) for what cannot be undone.
fn action_button(principal: &Principal, action: &str, label: &str, confirm: Option<&str>) -> Html {
    let confirm = match confirm {
        Some(question) => html!(" data-confirm=\"{}\"", question),
        None => Html::new(),
    };
    html!(
        "<form method=\"post\" action=\"{action}\"{confirm}>{csrf}<button type=\"submit\">{label}</button></form>\n",
        action = action,
        confirm = confirm,
        csrf = ui::csrf(principal),
        label = label,
    )
}

/// What came in: the server's answer, the message's fields and its envelope.
fn summary_section(message: &InboundMessage) -> Html {
    let meta = &message.meta;
    html!(
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
            "<h3>Envelope</h3>\n<dl>\n<dt>Sender IP</dt><dd>{ip}</dd>\n<dt>HELO</dt><dd>{helo}</dd>\n",
            "<dt>MAIL FROM</dt><dd>{from}</dd>\n<dt>RCPT TO</dt><dd>{to}</dd>\n</dl>\n",
        ),
        date = ui::time(&meta.received_at),
        response = redacted(meta, Field::ServerResponse, response_cell(message)),
        reply = Html::escape(&meta.smtp_reply),
        ms = meta.processing_ms,
        subject = redacted(meta, Field::Subject, ui::or_dash(meta.subject.as_deref())),
        message_id = redacted(
            meta,
            Field::MessageId,
            ui::or_dash(meta.message_id.as_deref())
        ),
        size = meta.size,
        md5 = Html::escape(&meta.md5),
        tls = redacted(meta, Field::Tls, ui::or_dash(meta.tls_version.as_deref())),
        address = ui::or_dash(meta.address.as_deref()),
        target = ui::or_dash(meta.target.as_deref()),
        format = ui::or_dash(meta.format.as_deref()),
        error = ui::or_dash(meta.error.as_deref()),
        ip = redacted(meta, Field::SenderIp, Html::escape(&meta.remote_ip)),
        helo = redacted(meta, Field::Helo, Html::escape(&meta.helo)),
        from = redacted(meta, Field::Sender, Html::escape(&meta.mail_from)),
        to = redacted(meta, Field::Recipient, recipients(meta)),
    )
}

/// SPF, DKIM and DMARC as the message was checked (the payload's `envelope` results).
fn authentication_section(meta: &InboundMeta) -> Html {
    let mut out = Html::new();
    let Some(checks) = &meta.authentication else {
        out.push_trusted(match meta.redacted.iter().any(|f| f == Field::Sender.name()) {
            true => "<p>Not kept: the sender is redacted, and the results name its domains.</p>\n",
            false => "<p>Not checked (return mail, or received before Postern kept the results).</p>\n",
        });
        return out;
    };
    let text = |value: &Value| Html::escape(value.as_str().unwrap_or(""));
    let spf = &checks["spf"];
    let spf = html!(
        "<strong>{result}</strong> for {domain}",
        result = text(&spf["result"]),
        domain = text(&spf["domain"]),
    );
    let dkim = match checks["dkim"]["result"].as_array() {
        None => Html::trusted("not checked (<code>dkim = true</code> on the address)"),
        Some(signatures) => Html::join(
            signatures
                .iter()
                .map(|signature| match signature["domain"].as_str() {
                    Some("") | None => html!(
                        "<strong>{}</strong> (no signature)",
                        text(&signature["result"])
                    ),
                    Some(_) => html!(
                        "<strong>{result}</strong> d={domain} s={selector}",
                        result = text(&signature["result"]),
                        domain = text(&signature["domain"]),
                        selector = text(&signature["selector"]),
                    ),
                }),
            "<br>",
        ),
    };
    let dmarc = &checks["dmarc"];
    let dmarc = match dmarc.is_null() {
        true => Html::trusted("not checked (<code>dmarc = true</code> on the address)"),
        false => html!(
            "<strong>{result}</strong> for {domain}, policy {policy} (aligned SPF {spf}, aligned DKIM {dkim})",
            result = text(&dmarc["result"]),
            domain = ui::or_dash(
                dmarc["details"]["domain"]
                    .as_str()
                    .filter(|d| !d.is_empty())
            ),
            policy = text(&dmarc["details"]["policy"]),
            spf = text(&dmarc["details"]["dmarc_spf_result"]),
            dkim = text(&dmarc["details"]["dmarc_dkim_result"]),
        ),
    };
    out.push(html!(
        "<dl id=\"auth-results\">\n<dt>SPF</dt><dd>{spf}</dd>\n<dt>DKIM</dt><dd>{dkim}</dd>\n<dt>DMARC</dt><dd>{dmarc}</dd>\n</dl>\n",
        spf = spf,
        dkim = dkim,
        dmarc = dmarc,
    ));
    out
}

fn delivery_tab(message: &InboundMessage) -> Html {
    let attempts = message.attempts.as_deref().unwrap_or_default();
    let mut out = Html::new();
    if let Some(queue) = &message.queue {
        let next = match queue.state.as_str() {
            "failed" => html!(
                "failed: every try until {} failed; <em>Retry now</em> or <em>Discard</em>",
                ui::unix_time(queue.expires_at)
            ),
            _ => html!(
                "next try {}, retried until {}",
                ui::unix_time(queue.next_attempt_at),
                ui::unix_time(queue.expires_at)
            ),
        };
        out.push(html!(
            concat!(
                "<h3>Queue</h3>\n<p id=\"queue\">The sender got 250 when the message was queued. ",
                "{tries} tr{ies} so far; {next}.{error}</p>\n"
            ),
            tries = queue.attempts,
            ies = if queue.attempts == 1 { "y" } else { "ies" },
            next = next,
            error = match &queue.last_error {
                Some(error) => html!(" Last: <span class=\"error\">{}</span>", error),
                None => Html::new(),
            },
        ));
    }
    out.push_trusted("<h3>Requests made</h3>\n");
    if attempts.is_empty() {
        out.push_trusted("<p>None: the message was not posted anywhere.</p>\n");
        return out;
    }
    out.push_trusted(concat!(
        "<div class=\"scroll\"><table id=\"attempts\">\n<thead><tr><th>#</th><th>Kind</th><th>Started (UTC)</th>",
        "<th>URL</th><th>Format</th><th>Status</th><th>Duration</th><th>Response body (first 2 KB)</th></tr></thead>\n<tbody>\n",
    ));
    for (i, attempt) in attempts.iter().enumerate() {
        let status = match (attempt.http_status, &attempt.error) {
            (Some(status), _) => html!("{}", status),
            (None, Some(error)) => html!("<span class=\"error\">{}</span>", error),
            (None, None) => ui::dash(),
        };
        out.push(html!(
            concat!(
                "<tr><td>{n}</td><td>{kind}</td><td>{started}</td><td class=\"mono\">{url}</td><td>{format}</td>",
                "<td>{status}</td><td>{ms}&nbsp;ms</td><td><pre>{body}</pre></td></tr>\n",
            ),
            n = i + 1,
            kind = Html::escape(&attempt.kind),
            started = ui::time(&attempt.started_at),
            url = Html::escape(&attempt.url),
            format = ui::or_dash(attempt.format.as_deref()),
            status = status,
            ms = attempt.duration_ms,
            body = Html::escape(ui::head(&attempt.response_body, BODY_SHOWN)),
        ));
    }
    out.push_trusted("</tbody>\n</table></div>\n");
    out
}

/// Deletes one message (admins; the gate checks the role and the CSRF token first), then
/// back to the list, which says so.
async fn delete_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return message_page(&principal, StatusCode::NOT_FOUND, "no such message");
    };
    match state.store.delete_inbound(id).await {
        Ok(true) => {
            super::api::audit_deleted(&state, &principal, &format!("message {id}")).await;
            auth::redirect("/?deleted=1")
        }
        Ok(false) => message_page(&principal, StatusCode::NOT_FOUND, "no such message"),
        Err(error) => store_failed(&principal, error),
    }
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

/// "Retry now" and "Discard" (admins) on a queued or failed message, then back to it.
async fn retry(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    queue_action(state, principal, path, true).await
}

async fn discard(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    queue_action(state, principal, path, false).await
}

async fn queue_action(
    state: AppState,
    principal: Principal,
    path: Result<Path<i64>, PathRejection>,
    retry: bool,
) -> Response {
    let Ok(Path(id)) = path else {
        return message_page(&principal, StatusCode::NOT_FOUND, "no such message");
    };
    let Some(inbound) = &state.inbound else {
        return message_page(
            &principal,
            StatusCode::CONFLICT,
            "nothing receives mail here",
        );
    };
    let done = match retry {
        true => inbound.retry_queued_now(id).await,
        false => inbound.discard_queued(id).await,
    };
    match done {
        Ok(true) => auth::redirect(&format!("/messages/{id}#delivery")),
        Ok(false) => message_page(
            &principal,
            StatusCode::NOT_FOUND,
            "this message is not in the queue (or is being posted right now)",
        ),
        Err(error) => store_failed(&principal, error),
    }
}

async fn parsed_or_error(state: &AppState, id: i64) -> Result<ParsedMessage, Response> {
    ui::kept_or_plain(ui::parse_kept(state.store.get_inbound_raw(id).await)).await
}

/// `?images=on`: the frame may load remote images.
#[derive(Deserialize, Default)]
struct FrameQuery {
    images: Option<String>,
}

/// The email's HTML, for the sandboxed iframe of the detail page only.
async fn email_html(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    query: Result<Query<FrameQuery>, QueryRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return ui::plain(StatusCode::NOT_FOUND, "no such message\n");
    };
    let images = query.is_ok_and(|Query(q)| q.images.as_deref() == Some("on"));
    match parsed_or_error(&state, id).await {
        Ok(parsed) => ui::email_html_response(parsed, images),
        Err(response) => response,
    }
}

async fn attachment(
    State(state): State<AppState>,
    path: Result<Path<(i64, usize)>, PathRejection>,
) -> Response {
    attachment_as(&state, path, ui::attachment_response).await
}

/// An image or PDF attachment shown inline (sandboxed; anything else is 404 here).
async fn preview(
    State(state): State<AppState>,
    path: Result<Path<(i64, usize)>, PathRejection>,
) -> Response {
    attachment_as(&state, path, ui::preview_response).await
}

/// Attachment `n` of message `id`, answered by `respond` (download or preview).
async fn attachment_as(
    state: &AppState,
    path: Result<Path<(i64, usize)>, PathRejection>,
    respond: fn(ParsedMessage, usize) -> Response,
) -> Response {
    let Ok(Path((id, n))) = path else {
        return ui::plain(StatusCode::NOT_FOUND, "no such attachment\n");
    };
    match parsed_or_error(state, id).await {
        Ok(parsed) => respond(parsed, n),
        Err(response) => response,
    }
}

/// The release form: where to, and for whom (empty: the envelope's recipients).
#[derive(Deserialize)]
struct ReleaseForm {
    server: String,
    #[serde(default)]
    recipients: String,
}

/// "Release" (dev mode): the kept message to the SMTP server named, as received.
async fn release(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
    form: Result<axum::extract::Form<ReleaseForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return message_page(&principal, StatusCode::NOT_FOUND, "no such message");
    };
    let Ok(axum::extract::Form(form)) = form else {
        return message_page(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form could not be read",
        );
    };
    let recipients = form
        .recipients
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    match super::release_kept(&state, id, &form.server, recipients).await {
        Ok(reply) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("released", &reply)
                .finish();
            auth::redirect(&format!("/messages/{id}?{query}"))
        }
        Err((status, why)) => message_page(&principal, status, &why),
    }
}

#[derive(Deserialize)]
struct RepostForm {
    url: String,
}

/// "Post to URL" (dev mode): the payload to the URL given, recorded under Delivery.
async fn repost(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<i64>, PathRejection>,
    form: Result<axum::extract::Form<RepostForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Path(id)) = path else {
        return message_page(&principal, StatusCode::NOT_FOUND, "no such message");
    };
    if !state.open {
        return message_page(
            &principal,
            StatusCode::FORBIDDEN,
            "posting to any URL is for dev mode",
        );
    }
    let Ok(axum::extract::Form(form)) = form else {
        return message_page(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form could not be read",
        );
    };
    let url = match crate::config::TargetUrl::parse(form.url.trim()) {
        Ok(url) => url,
        Err(why) => return message_page(&principal, StatusCode::BAD_REQUEST, &why),
    };
    let Some(inbound) = &state.inbound else {
        return message_page(
            &principal,
            StatusCode::CONFLICT,
            "nothing receives mail here",
        );
    };
    match inbound.repost(id, &url).await {
        Ok(posted) => {
            let status = posted
                .http_status
                .map(|s| format!("&status={s}"))
                .unwrap_or_default();
            auth::redirect(&format!(
                "/messages/{id}?reposted={}{status}#delivery",
                posted.outcome.as_str()
            ))
        }
        Err(ResendError::NotFound) => {
            message_page(&principal, StatusCode::NOT_FOUND, "no such message")
        }
        Err(ResendError::Store(error)) => store_failed(&principal, error),
        Err(error) => message_page(&principal, StatusCode::CONFLICT, &error.to_string()),
    }
}
