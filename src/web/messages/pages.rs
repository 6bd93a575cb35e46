//! The dashboard's pages of received mail, server-rendered and complete without JavaScript:
//! `GET /` (the list, filtered by a GET form, paged by `before`), `GET /messages/{id}` (one
//! message, its attempts and, where the raw message is kept, its content through
//! `ui::mail_view`), `GET /messages/{id}/html` (the email's HTML, only ever for a sandboxed
//! iframe), `GET /messages/{id}/attachments/{n}` (downloads) and
//! `POST /messages/{id}/resend` (admins).
//!
//! Everything that came with the mail is escaped; the email's HTML never enters a
//! dashboard page, only the sandboxed endpoint with its own strict policy.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::accounts::Role;
use crate::config::Field;
use crate::inbound::ResendError;
use crate::mail::message::ParsedMessage;
use crate::store::{InboundMessage, InboundMeta, MessageFilter, Outcome};
use crate::web::auth;
use crate::web::error::ApiError;
use crate::web::ui::{self, Html, html};
use crate::web::{AppState, Principal};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(list))
        .route("/messages/{id}", get(detail))
        .route("/messages/{id}/html", get(email_html))
        .route("/messages/{id}/resend", post(resend))
        .route("/messages/{id}/delete", post(delete_one))
        .route(
            "/messages/delete",
            get(confirm_delete).post(delete_matching),
        )
        .route("/messages/{id}/attachments/{n}", get(attachment))
}

const PAGE_SIZE: u32 = 50;
/// How much of a response body the pages show.
const BODY_SHOWN: usize = 2048;

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
    /// After a deletion: how many went (shown once above the list).
    deleted: Option<u64>,
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
        let outcome = status.as_deref().map(super::api::outcome).transpose()?;
        let bound = |name, value| {
            super::api::time_bound(name, value).map_err(|e| match e {
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

/// A page with only a message, for errors.
fn message_page(principal: &Principal, status: StatusCode, text: &str) -> Response {
    ui::message(principal, status, text, ("/", "All messages"))
}

fn store_failed(principal: &Principal, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "dashboard page failed");
    message_page(
        principal,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
    )
}

/// The target's answer: HTTP status (if any) and outcome.
fn response_cell(message: &InboundMessage) -> Html {
    let outcome = message.meta.outcome.as_str();
    match message.meta.http_status {
        Some(status) => html!(
            "<span class=\"{outcome}\">{status} {outcome}</span>",
            outcome = outcome,
            status = status,
        ),
        None => html!(
            "<span class=\"{outcome}\">{outcome}</span>",
            outcome = outcome
        ),
    }
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
    let retention = &state.settings.retention;
    let mut body = ui::retention_note(&retention.list_note(retention.inbound_metadata_days));
    if form.status.is_none() {
        body.push(refused_note(&state).await);
    }
    if let Some(deleted) = form.deleted {
        body.push(html!(
            "<p role=\"status\" id=\"deleted\">Deleted {deleted} {messages}.</p>\n",
            deleted = deleted,
            messages = if deleted == 1 { "message" } else { "messages" },
        ));
    }
    body.push(filter_form(&form));
    body.push(ui::error(problem.as_deref()));
    let newest = messages.first().map(|m| m.id).unwrap_or(0);
    body.push(html!(
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
        body.push_trusted("<tr><td colspan=\"11\">No messages.</td></tr>\n");
    }
    let unfiltered = form.fields().iter().all(|(_, value)| value.is_none());
    for message in &messages {
        let meta = &message.meta;
        body.push(html!(
            concat!(
                "<tr><td><a href=\"/messages/{id}\">{id}</a></td><td>{ip}</td><td class=\"mono\">{message_id}</td>",
                "<td>{sender}</td><td>{recipients}</td><td><a href=\"/messages/{id}\">{subject}</a></td>",
                "<td>{date}</td><td>{response}</td><td>{ms}&nbsp;ms</td><td>{tls}</td><td class=\"mono\">{reply}</td></tr>\n",
            ),
            id = message.id,
            ip = redacted(meta, Field::SenderIp, Html::escape(&meta.remote_ip)),
            message_id = redacted(meta, Field::MessageId, ui::or_dash(meta.message_id.as_deref())),
            sender = redacted(meta, Field::Sender, Html::escape(&meta.mail_from)),
            recipients = redacted(meta, Field::Recipient, recipients(meta)),
            subject = redacted(
                meta,
                Field::Subject,
                meta.subject
                    .as_deref()
                    .map(Html::escape)
                    .unwrap_or_else(|| Html::trusted("(no subject)")),
            ),
            date = ui::time(&meta.received_at),
            response = redacted(meta, Field::ServerResponse, response_cell(message)),
            ms = meta.processing_ms,
            tls = redacted(meta, Field::Tls, ui::or_dash(meta.tls_version.as_deref())),
            reply = Html::escape(&meta.smtp_reply),
        ));
    }
    body.push_trusted("</tbody>\n</table></div>\n");
    if principal.role() == Role::Admin && !messages.is_empty() {
        body.push(html!(
            "<p><a href=\"/messages/delete?{query}\" id=\"delete-matching\">Delete {which}…</a></p>\n",
            query = form.query(),
            which = if unfiltered { "all messages" } else { "every message this filter finds" },
        ));
    }
    if messages.is_empty() && unfiltered && !paged && state.open {
        body.push(getting_started(&state.settings));
    }
    let older = messages
        .last()
        .filter(|_| messages.len() == PAGE_SIZE as usize)
        .map(|last| last.id);
    body.push(ui::pager("/", &form.query(), paged, older));
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    ui::dashboard(status, "Messages", ui::nav(&principal), body)
}

/// Dev mode's empty inbox: where to send mail and how to read it back, with this instance's
/// own addresses (the commands `postern dev` prints), ready to copy.
fn getting_started(settings: &crate::web::Settings) -> Html {
    let mut out = Html::trusted("<section id=\"getting-started\">\n<h2>No mail yet</h2>\n");
    if let Some(smtp) = settings.smtp_listen {
        out.push(html!(
            concat!(
                "<p>Point your app's SMTP settings at <code class=\"copy\">{ip}:{port}</code>: every ",
                "recipient is accepted and kept here, nothing leaves this machine. Or send a test message:</p>\n",
                "<pre><code class=\"copy\">swaks --server {ip} --port {port} --to someone@example.com --from you@example.com</code></pre>\n",
            ),
            ip = smtp.ip().to_string(),
            port = smtp.port(),
        ));
    }
    if let Some(web) = settings.web_listen {
        out.push(html!(
            concat!(
                "<p>It appears here at once. Read it through the API:</p>\n",
                "<pre><code class=\"copy\">curl -s http://{web}/api/messages</code></pre>\n",
                "<p>Mail your app sends is captured under <a href=\"/outbound\">Sent</a>: through the send API",
            ),
            web = web.to_string(),
        ));
        match settings.submission_listen.first() {
            Some(submission) => out.push(html!(
                " or SMTP submission at <code class=\"copy\">{}</code> (user <code>dev</code>, password <code>dev</code>).</p>\n",
                submission.to_string()
            )),
            None => out.push_trusted(".</p>\n"),
        }
        out.push(html!(
            "<pre><code class=\"copy\">curl -s http://{web}/api/v0.1/dev/messages -H 'Authorization: Bearer dev' -d '{{\"from\":\"app@example.com\",\"to\":\"you@example.net\",\"subject\":\"Hi\",\"plain\":\"Hello\"}}'</code></pre>\n",
            web = web.to_string(),
        ));
    }
    out.push_trusted("</section>\n");
    out
}

/// "3 recipients refused at RCPT in the last 24 hours: show them" (refusals are listed only
/// under their filter); nothing when there were none.
async fn refused_note(state: &AppState) -> Html {
    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(24))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("UTC timestamps format as RFC 3339");
    match state.store.count_refused_since(since).await {
        Ok(0) => Html::new(),
        Ok(count) => html!(
            "<p id=\"refused\">{count} {recipients} refused at RCPT in the last 24 hours: <a href=\"/?status=refused\">show them</a>.</p>\n",
            count = count,
            recipients = if count == 1 {
                "recipient"
            } else {
                "recipients"
            },
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot count refused recipients");
            Html::new()
        }
    }
}

fn filter_form(form: &ListForm) -> Html {
    let fields = form.fields();
    let value = |i: usize| fields[i].1.map(Html::escape).unwrap_or_default();
    let status = fields[4].1.unwrap_or_default();
    let options = ui::select_options(
        [
            "successful",
            "rejected",
            "delayed",
            "captured",
            "bounce",
            "refused",
        ],
        status,
    );
    html!(
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
    ui::parse_kept(state.store.get_inbound_raw(id).await).await
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
    let mut body = Html::new();
    if let Some(outcome) = query.resent.as_deref().and_then(Outcome::from_name) {
        let outcome = outcome.as_str();
        let status = query.status.map(|s| format!("{s} ")).unwrap_or_default();
        body.push(html!(
            "<p role=\"status\" id=\"resent\">Resent to the target: <span class=\"{outcome}\">{status}{outcome}</span> (the last attempts below).</p>\n",
            outcome = outcome,
            status = status,
        ));
    }
    let can_resend = principal.role() == Role::Admin
        && message.has_raw
        && meta.target.is_some()
        && state.inbound.is_some();
    if principal.role() == Role::Admin {
        body.push(action_button(
            &principal,
            &format!("/messages/{id}/delete"),
            "Delete",
            Some("Delete this message, its content and its delivery attempts?"),
        ));
    }
    if can_resend {
        body.push(action_button(
            &principal,
            &format!("/messages/{id}/resend"),
            "Resend to target",
            None,
        ));
    }
    body.push(html!(
        "<p class=\"meta\">Message {id}{download}</p>\n",
        id = id,
        download = match message.has_raw {
            true => html!(
                " · <a href=\"/api/messages/{id}/raw\" download=\"message-{id}.eml\">Download .eml</a>",
                id = id
            ),
            false => Html::new(),
        },
    ));
    body.push(summary_section(&message));
    body.push(authentication_section(meta));
    body.push(attempts_section(&message));
    match &parsed {
        Some(parsed) => body.push(ui::content_section(&format!("/messages/{id}"), parsed)),
        None => body.push_trusted(
            "<h2>Content</h2>\n<p>The message itself is not kept (only dev mode keeps it).</p>\n",
        ),
    }
    // The subject names the page (the message's number where there is none to show).
    let title = match &meta.subject {
        Some(subject) if !subject.trim().is_empty() => subject.clone(),
        _ => format!("Message {id}"),
    };
    ui::dashboard(StatusCode::OK, &title, ui::nav(&principal), body)
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
            "<h2>Envelope</h2>\n<dl>\n<dt>Sender IP</dt><dd>{ip}</dd>\n<dt>HELO</dt><dd>{helo}</dd>\n",
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
    let mut out = Html::trusted("<h2>Authentication</h2>\n");
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
        "<dl id=\"authentication\">\n<dt>SPF</dt><dd>{spf}</dd>\n<dt>DKIM</dt><dd>{dkim}</dd>\n<dt>DMARC</dt><dd>{dmarc}</dd>\n</dl>\n",
        spf = spf,
        dkim = dkim,
        dmarc = dmarc,
    ));
    out
}

/// `shown`, or "redacted" when the row left `field` out (`config::privacy`).
fn redacted(meta: &InboundMeta, field: Field, shown: Html) -> Html {
    ui::redacted(&meta.redacted, field, shown)
}

fn recipients(meta: &InboundMeta) -> Html {
    Html::join(meta.recipients.iter().map(|r| Html::escape(r)), "<br>")
}

fn attempts_section(message: &InboundMessage) -> Html {
    let attempts = message.attempts.as_deref().unwrap_or_default();
    let mut out = Html::trusted("<h2>Delivery attempts</h2>\n");
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

/// "Delete N messages?": what the list's filter finds, counted, with the button that
/// deletes them (the same filter in hidden fields).
async fn confirm_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Query<ListForm>, QueryRejection>,
) -> Response {
    let form = form.map(|Query(f)| f).unwrap_or_default();
    // Every page, not one: the store's count and delete leave `before` aside.
    let filter = match form.filter() {
        Ok(filter) => filter,
        Err(why) => return message_page(&principal, StatusCode::BAD_REQUEST, &why),
    };
    let described = super::api::describe(&filter);
    let count = match state.store.count_inbound(filter).await {
        Ok(count) => count,
        Err(error) => return store_failed(&principal, error),
    };
    let mut body = html!(
        concat!(
            "<p>Delete <strong>{count} {messages}</strong> ({described}), with their content and ",
            "delivery attempts? This cannot be undone.</p>\n",
            "<form method=\"post\" action=\"/messages/delete\">{csrf}",
        ),
        count = count,
        messages = if count == 1 { "message" } else { "messages" },
        described = described,
        csrf = ui::csrf(&principal),
    );
    for (name, value) in form.fields() {
        if let Some(value) = value {
            body.push(html!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{value}\">",
                name = name,
                value = value,
            ));
        }
    }
    body.push(html!(
        "<button type=\"submit\">Delete {count}</button> <a href=\"/?{query}\">Cancel</a></form>\n",
        count = count,
        query = form.query(),
    ));
    ui::dashboard(StatusCode::OK, "Delete messages", ui::nav(&principal), body)
}

/// Deletes what the confirmed filter finds (admins, CSRF checked by the gate).
async fn delete_matching(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Form<ListForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return message_page(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form could not be read",
        );
    };
    // Every page, not one: the store's count and delete leave `before` aside.
    let filter = match form.filter() {
        Ok(filter) => filter,
        Err(why) => return message_page(&principal, StatusCode::BAD_REQUEST, &why),
    };
    let described = super::api::describe(&filter);
    match state.store.delete_inbound_matching(filter).await {
        Ok(deleted) => {
            let detail = format!("{deleted} matching {described}");
            super::api::audit_deleted(&state, &principal, &detail).await;
            auth::redirect(&format!("/?deleted={deleted}"))
        }
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

async fn parsed_or_error(
    state: &AppState,
    path: Result<Path<i64>, PathRejection>,
) -> Result<ParsedMessage, Response> {
    let Ok(Path(id)) = path else {
        return Err(ui::plain(StatusCode::NOT_FOUND, "no such message\n"));
    };
    ui::kept_or_plain(content(state, id)).await
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
    ui::email_html_response(parsed)
}

async fn attachment(
    State(state): State<AppState>,
    path: Result<Path<(i64, usize)>, PathRejection>,
) -> Response {
    let Ok(Path((id, n))) = path else {
        return ui::plain(StatusCode::NOT_FOUND, "no such attachment\n");
    };
    let parsed = match parsed_or_error(&state, Ok(Path(id))).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    ui::attachment_response(parsed, n)
}
