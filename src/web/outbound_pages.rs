//! The dashboard's outbound pages, server-rendered and complete without JavaScript:
//! `GET /outbound` (sent mail, newest first, 50 to a page, filtered by recipient, tag and
//! state with a GET form, "Older" by `?before=`), `GET /outbound/{uuid}` (one message: the
//! envelope, its headers and bodies from the queued content, each recipient's state, every
//! delivery attempt and the events), `GET /outbound/{uuid}/html` and `/outbound/{uuid}/attachments/{n}` (the
//! same sandboxed frame and downloads as the inbound pages, from `web::pages`);
//! `GET /credentials` (SMTP credentials; admins also get the form and revoke buttons),
//! `POST /credentials` (admin: the token is on the answer page, once, with the SMTP URL and
//! the API base URL), `POST /credentials/{username}/revoke`; `GET /sending-domains` (each
//! domain with the DNS records to publish; admins also get the add form and remove
//! buttons), `POST /sending-domains`, `POST /sending-domains/{domain}/remove`, and
//! `GET /sending-domains/{domain}/verify` (what DNS shows for each record); `GET /suppressions`
//! (the suppression list; admins also get the add form and remove buttons),
//! `POST /suppressions` and `POST /suppressions/remove` (the `address` field).
//!
//! Viewers read; the gate refuses their writes (403) and any write without the session's
//! CSRF token. Changes go through the helpers of `web::outbound_api`, shared with the JSON
//! API (same `Outbound` calls as the CLI, plus the audit row). Everything that came with
//! the mail or from DNS is escaped; the email's HTML only ever reaches the sandboxed frame.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use time::OffsetDateTime;

use super::auth::{self, Principal};
use super::error::ApiError;
use super::outbound_api::{self, CredentialView};
use super::pages::{self, nav};
use super::suppressions_api;
use super::{AppState, html};
use crate::accounts::{Client, Role};
use crate::mail::message::ParsedMessage;
use crate::outbound::NewCredentialSpec;
use crate::outbound::dns_check::RecordCheck;
use crate::outbound::domains::SendingDomain;
use crate::store::{OutboundAttemptRow, OutboundFilter, OutboundSummary, RecipientState};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/outbound", get(list))
        .route("/outbound/{uuid}", get(detail))
        .route("/outbound/{uuid}/html", get(email_html))
        .route("/outbound/{uuid}/attachments/{n}", get(attachment))
        .route("/credentials", get(credentials).post(create_credential))
        .route("/credentials/{username}/revoke", post(revoke_credential))
        .route("/sending-domains", get(domains).post(add_domain))
        .route("/sending-domains/{domain}/remove", post(remove_domain))
        .route("/sending-domains/{domain}/verify", get(verify_domain))
        .route("/suppressions", get(suppressions).post(add_suppression))
        .route("/suppressions/remove", post(remove_suppression))
}

const PAGE_SIZE: u32 = 50;

const STATES: [&str; 9] = [
    "queued",
    "sending",
    "delivered",
    "deferred",
    "bounced",
    "suppressed",
    "expired",
    "captured",
    "test",
];

fn csrf(principal: &Principal) -> String {
    html::csrf_field(principal.csrf_token.as_deref().unwrap_or_default())
}

/// Unix seconds as an RFC 3339 UTC `<time>`; the dashboard's script shows local time.
fn unix_time(at: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(at) {
        Ok(at) => super::admin_pages::time(at),
        Err(_) => "—".into(),
    }
}

/// A page with only a message and a way back.
fn message(principal: &Principal, status: StatusCode, text: &str, back: (&str, &str)) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html::dashboard(
        status,
        title,
        &nav(principal),
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"{}\">{}</a></p>",
            html::escape(text),
            back.0,
            back.1
        ),
    )
}

/// An API error as a page: the sentence for what the request got wrong, an opaque 500
/// (logged) for the rest.
fn error_page(principal: &Principal, error: ApiError, back: (&str, &str)) -> Response {
    match error {
        ApiError::NotFound(what) => message(principal, StatusCode::NOT_FOUND, what, back),
        ApiError::BadRequest(why) => message(principal, StatusCode::BAD_REQUEST, &why, back),
        ApiError::Status(status, why) => message(principal, status, &why, back),
        ApiError::Field { message: why, .. } => {
            message(principal, StatusCode::UNPROCESSABLE_ENTITY, &why, back)
        }
        ApiError::Store(error) => {
            tracing::error!(%error, "outbound page failed");
            message(
                principal,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                back,
            )
        }
        ApiError::Internal(error) => {
            tracing::error!(%error, "outbound page failed");
            message(
                principal,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                back,
            )
        }
    }
}

fn state_badge(state: RecipientState) -> String {
    let name = state.as_str();
    format!("<span class=\"badge state-{name}\">{name}</span>")
}

// Sent mail.

/// The list's GET form. Empty fields mean "any"; unknown fields are ignored (browsers).
#[derive(Deserialize, Default)]
struct ListForm {
    recipient: Option<String>,
    tag: Option<String>,
    state: Option<String>,
    before: Option<String>,
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ListForm {
    /// The filters that are set, as a query string (for links), without `before`.
    fn query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("recipient", set(&self.recipient)),
            ("tag", set(&self.tag)),
            ("state", set(&self.state)),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }

    fn filter(&self) -> Result<OutboundFilter, String> {
        let state = set(&self.state)
            .map(|name| {
                RecipientState::from_name(name)
                    .ok_or_else(|| format!("state must be one of {}", STATES.join(", ")))
            })
            .transpose()?;
        let before = set(&self.before)
            .map(|text| text.parse().map_err(|_| "before must be a number"))
            .transpose()?;
        Ok(OutboundFilter {
            before,
            limit: PAGE_SIZE,
            recipient: set(&self.recipient).map(str::to_string),
            tag: set(&self.tag).map(str::to_string),
            state,
        })
    }
}

fn filter_form(form: &ListForm) -> String {
    let chosen = set(&form.state).unwrap_or_default();
    let options = std::iter::once("")
        .chain(STATES)
        .map(|name| {
            format!(
                "<option value=\"{name}\"{selected}>{label}</option>",
                selected = if name == chosen { " selected" } else { "" },
                label = if name.is_empty() { "any" } else { name },
            )
        })
        .collect::<String>();
    format!(
        concat!(
            "<form class=\"filters\" method=\"get\" action=\"/outbound\">",
            "<label>Recipient<input name=\"recipient\" value=\"{recipient}\"></label>",
            "<label>Tag<input name=\"tag\" value=\"{tag}\"></label>",
            "<label>State<select name=\"state\">{options}</select></label>",
            "<button type=\"submit\">Filter</button> <a href=\"/outbound\">Clear</a></form>\n",
        ),
        recipient = set(&form.recipient).map(html::escape).unwrap_or_default(),
        tag = set(&form.tag).map(html::escape).unwrap_or_default(),
        options = options,
    )
}

fn subject_text(message: &OutboundSummary) -> String {
    message
        .subject
        .as_deref()
        .map(html::escape)
        .unwrap_or_else(|| "(no subject)".into())
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
        Some(filter) => match state.store.list_outbound(filter).await {
            Ok(messages) => messages,
            Err(error) => return error_page(&principal, error.into(), ("/outbound", "Sent")),
        },
        None => Vec::new(),
    };
    let mut body = filter_form(&form);
    body.push_str(&html::error(problem.as_deref()));
    body.push_str(concat!(
        "<div class=\"scroll\"><table id=\"outbound\">\n<thead><tr><th>Created (UTC)</th><th>From</th>",
        "<th>Recipients</th><th>Subject</th><th>Tags</th><th>Source</th><th>Test</th></tr></thead>\n<tbody>\n",
    ));
    if messages.is_empty() {
        body.push_str("<tr><td colspan=\"7\">No messages.</td></tr>\n");
    }
    for message in &messages {
        let recipients = message
            .recipients
            .iter()
            .map(|r| format!("{} {}", html::escape(&r.address), state_badge(r.state)))
            .collect::<Vec<_>>()
            .join("<br>");
        let tags = message
            .tags
            .iter()
            .map(|t| format!("<span class=\"tag\">{}</span>", html::escape(t)))
            .collect::<Vec<_>>()
            .join(" ");
        body.push_str(&format!(
            concat!(
                "<tr><td>{created}</td><td>{from}</td><td>{recipients}</td>",
                "<td><a href=\"/outbound/{uuid}\">{subject}</a></td><td>{tags}</td><td>{source}</td><td>{test}</td></tr>\n",
            ),
            created = unix_time(message.created_at),
            from = html::escape(&message.from),
            recipients = recipients,
            uuid = html::escape(&message.id),
            subject = subject_text(message),
            tags = tags,
            source = message.source.as_str(),
            test = if message.test_mode { "test" } else { "—" },
        ));
    }
    body.push_str("</tbody>\n</table></div>\n<p class=\"pager\">");
    let query = form.query();
    if paged {
        body.push_str(&format!(
            "<a href=\"/outbound?{}\">Newest</a>",
            html::escape(&query)
        ));
    }
    if messages.len() == PAGE_SIZE as usize
        && let Some(last) = messages.last()
    {
        let sep = if query.is_empty() { "" } else { "&" };
        body.push_str(&format!(
            "<a href=\"/outbound?{}\" rel=\"next\">Older</a>",
            html::escape(&format!("{query}{sep}before={}", last.row_id))
        ));
    }
    body.push_str("</p>\n");
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html::dashboard(status, "Sent", &nav(&principal), &body)
}

/// The message by its UUID, or the page that says why not.
async fn find(
    state: &AppState,
    principal: &Principal,
    uuid: Result<Path<String>, PathRejection>,
) -> Result<OutboundSummary, Response> {
    let not_found = || {
        message(
            principal,
            StatusCode::NOT_FOUND,
            "no such message",
            ("/outbound", "Sent"),
        )
    };
    let Ok(Path(uuid)) = uuid else {
        return Err(not_found());
    };
    if uuid::Uuid::parse_str(&uuid).is_err() {
        return Err(not_found());
    }
    match state.store.outbound_message(&uuid).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(not_found()),
        Err(error) => Err(error_page(principal, error.into(), ("/outbound", "Sent"))),
    }
}

/// The queued bytes, parsed; `None` when the content is gone.
async fn content(state: &AppState, row_id: i64) -> Result<Option<ParsedMessage>, String> {
    let Some(raw) = state
        .store
        .outbound_content(row_id)
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

async fn detail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uuid: Result<Path<String>, PathRejection>,
) -> Response {
    let found = match find(&state, &principal, uuid).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let events = match state.store.outbound_events(found.row_id).await {
        Ok(events) => events,
        Err(error) => return error_page(&principal, error.into(), ("/outbound", "Sent")),
    };
    let attempts = match state.store.outbound_attempts(found.row_id).await {
        Ok(attempts) => attempts,
        Err(error) => return error_page(&principal, error.into(), ("/outbound", "Sent")),
    };
    let parsed = match content(&state, found.row_id).await {
        Ok(parsed) => parsed,
        Err(error) => {
            return error_page(&principal, ApiError::Internal(error), ("/outbound", "Sent"));
        }
    };
    let mut body = format!(
        concat!(
            "<dl>\n<dt>ID</dt><dd class=\"mono\">{uuid}</dd>\n",
            "<dt>Created</dt><dd>{created}</dd>\n",
            "<dt>Credential</dt><dd>{username}</dd>\n<dt>Source</dt><dd>{source}</dd>\n",
            "<dt>From</dt><dd>{from}</dd>\n<dt>Envelope sender</dt><dd class=\"mono\">{envelope}</dd>\n",
            "<dt>Subject</dt><dd>{subject}</dd>\n<dt>Tags</dt><dd>{tags}</dd>\n",
            "<dt>Priority</dt><dd>{priority}</dd>\n<dt>Test mode</dt><dd>{test}</dd>\n",
            "<dt>Size</dt><dd>{size} bytes</dd>\n</dl>\n",
        ),
        uuid = html::escape(&found.id),
        created = unix_time(found.created_at),
        username = html::escape(&found.username),
        source = found.source.as_str(),
        from = html::escape(&found.from),
        envelope = html::escape(&found.envelope_from),
        subject = subject_text(&found),
        tags = html::escape(&found.tags.join(", ")),
        priority = found.priority.as_str(),
        test = if found.test_mode { "yes" } else { "no" },
        size = found.size,
    );
    body.push_str(concat!(
        "<h2>Recipients</h2>\n<div class=\"scroll\"><table id=\"recipients\">\n<thead><tr><th>Recipient</th>",
        "<th>State</th><th>Attempts</th><th>Next attempt (UTC)</th><th>Expires (UTC)</th><th>Last code</th>",
        "<th>Last response</th></tr></thead>\n<tbody>\n",
    ));
    for recipient in &found.recipients {
        let waiting = matches!(
            recipient.state,
            RecipientState::Queued | RecipientState::Deferred
        );
        body.push_str(&format!(
            concat!(
                "<tr><td>{address}</td><td>{state}</td><td>{attempts}</td><td>{next}</td><td>{expires}</td>",
                "<td>{code}</td><td class=\"mono\">{response}</td></tr>\n",
            ),
            address = html::escape(&recipient.address),
            state = state_badge(recipient.state),
            attempts = recipient.attempts,
            next = if waiting {
                unix_time(recipient.next_attempt_at)
            } else {
                "—".into()
            },
            expires = if waiting {
                unix_time(recipient.expires_at)
            } else {
                "—".into()
            },
            code = recipient
                .last_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "—".into()),
            response = pages::or_dash(recipient.last_response.as_deref()),
        ));
    }
    body.push_str("</tbody>\n</table></div>\n");
    body.push_str(&attempts_section(&found, &attempts));
    body.push_str("<h2>Events</h2>\n");
    if events.is_empty() {
        body.push_str("<p>None yet.</p>\n");
    } else {
        body.push_str(concat!(
            "<div class=\"scroll\"><table id=\"events\">\n<thead><tr><th>Time (UTC)</th><th>Event</th>",
            "<th>Recipient</th><th>Details</th><th>Webhook</th></tr></thead>\n<tbody>\n",
        ));
        for event in &events {
            let details = if event.details.trim() == "{}" {
                "—".to_string()
            } else {
                format!(
                    "<code>{}</code>",
                    html::escape(pages::head(&event.details, 2048))
                )
            };
            body.push_str(&format!(
                "<tr><td>{at}</td><td>{kind}</td><td>{recipient}</td><td>{details}</td><td>{webhook}</td></tr>\n",
                at = unix_time(event.created_at),
                kind = html::escape(&event.kind),
                recipient = html::escape(&event.recipient),
                details = details,
                webhook = html::escape(&event.webhook),
            ));
        }
        body.push_str("</tbody>\n</table></div>\n");
    }
    match &parsed {
        Some(parsed) => body.push_str(&pages::content_section(
            &format!("/outbound/{}", found.id),
            parsed,
        )),
        None => {
            body.push_str("<h2>Content</h2>\n<p>The message's content is not kept any more.</p>\n")
        }
    }
    let title = format!(
        "Sent: {}",
        found.subject.as_deref().unwrap_or("(no subject)")
    );
    html::dashboard(StatusCode::OK, &title, &nav(&principal), &body)
}

/// Every delivery attempt of the message's recipients, oldest first: the host that
/// answered, the outcome, the SMTP code and reply, TLS and how long it took.
fn attempts_section(message: &OutboundSummary, attempts: &[OutboundAttemptRow]) -> String {
    let mut out = String::from("<h2>Delivery attempts</h2>\n");
    if attempts.is_empty() {
        out.push_str("<p>None yet.</p>\n");
        return out;
    }
    out.push_str(concat!(
        "<div class=\"scroll\"><table id=\"attempts\">\n<thead><tr><th>Started (UTC)</th><th>Recipient</th>",
        "<th>Host</th><th>Outcome</th><th>Code</th><th>Response</th><th>TLS</th><th>Duration</th></tr></thead>\n<tbody>\n",
    ));
    for attempt in attempts {
        let recipient = message
            .recipients
            .iter()
            .find(|r| r.id == attempt.recipient_id)
            .map(|r| html::escape(&r.address))
            .unwrap_or_else(|| "—".into());
        out.push_str(&format!(
            concat!(
                "<tr><td>{started}</td><td>{recipient}</td><td class=\"mono\">{host}</td><td>{outcome}</td>",
                "<td>{code}</td><td class=\"mono\">{response}</td><td>{tls}</td><td>{duration}</td></tr>\n",
            ),
            started = unix_time(attempt.started_at),
            recipient = recipient,
            host = pages::or_dash(attempt.host.as_deref()),
            outcome = html::escape(&attempt.outcome),
            code = attempt
                .code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "—".into()),
            response = attempt
                .response
                .as_deref()
                .map(|r| html::escape(pages::head(r, 2048)))
                .unwrap_or_else(|| "—".into()),
            tls = pages::or_dash(attempt.tls.as_deref()),
            duration = attempt
                .duration_ms
                .map(|ms| format!("{ms}&nbsp;ms"))
                .unwrap_or_else(|| "—".into()),
        ));
    }
    out.push_str("</tbody>\n</table></div>\n");
    out
}

/// The content for the frame and the downloads (plain-text errors: they are fetched by
/// frames and downloads, not shown as pages).
async fn parsed_or_error(state: &AppState, uuid: &str) -> Result<ParsedMessage, Response> {
    let not_found = || pages::plain(StatusCode::NOT_FOUND, "no such message\n");
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(not_found());
    }
    let found = match state.store.outbound_message(uuid).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(not_found()),
        Err(error) => {
            tracing::error!(%error, "reading an outbound message failed");
            return Err(pages::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n",
            ));
        }
    };
    match content(state, found.row_id).await {
        Ok(Some(parsed)) => Ok(parsed),
        Ok(None) => Err(pages::plain(
            StatusCode::NOT_FOUND,
            "no content kept for this message\n",
        )),
        Err(error) => {
            tracing::error!(%error, "reading an outbound message's content failed");
            Err(pages::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n",
            ))
        }
    }
}

async fn email_html(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(uuid)) = path else {
        return pages::plain(StatusCode::NOT_FOUND, "no such message\n");
    };
    match parsed_or_error(&state, &uuid).await {
        Ok(parsed) => pages::email_html_response(parsed),
        Err(response) => response,
    }
}

async fn attachment(
    State(state): State<AppState>,
    path: Result<Path<(String, usize)>, PathRejection>,
) -> Response {
    let Ok(Path((uuid, n))) = path else {
        return pages::plain(StatusCode::NOT_FOUND, "no such attachment\n");
    };
    match parsed_or_error(&state, &uuid).await {
        Ok(parsed) => pages::attachment_response(parsed, n),
        Err(response) => response,
    }
}

// Credentials.

/// What the credential form sends; checkboxes are present when ticked.
#[derive(Debug, Default, Deserialize)]
struct CredentialForm {
    #[serde(default)]
    username: String,
    test: Option<String>,
    /// Sender patterns, separated by commas, spaces or new lines.
    #[serde(default)]
    senders: String,
    #[serde(default)]
    events_url: String,
    track_opens: Option<String>,
    track_clicks: Option<String>,
}

fn credential_row(principal: &Principal, credential: &CredentialView) -> String {
    let state = match credential.revoked_at {
        Some(at) => format!("revoked {}", unix_time(at)),
        None => "active".into(),
    };
    let action = if principal.role() == Role::Admin && credential.revoked_at.is_none() {
        format!(
            concat!(
                "<form method=\"post\" action=\"/credentials/{username}/revoke\">{csrf}",
                "<button type=\"submit\">Revoke</button></form>"
            ),
            username = html::escape(&credential.username),
            csrf = csrf(principal),
        )
    } else {
        String::new()
    };
    let senders = if credential.allowed_senders.is_empty() {
        "any".to_string()
    } else {
        credential
            .allowed_senders
            .iter()
            .map(|s| html::escape(s))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let on_off = |on: bool| if on { "on" } else { "off" };
    format!(
        concat!(
            "<tr><td>{username}</td><td>{mode}</td><td><code>{prefix}…</code></td><td>{senders}</td>",
            "<td class=\"mono\">{events}</td><td>opens {opens}, clicks {clicks}</td><td>{created}</td>",
            "<td>{used}</td><td>{state}</td><td>{action}</td></tr>\n",
        ),
        username = html::escape(&credential.username),
        mode = credential.mode.as_str(),
        prefix = html::escape(&credential.prefix),
        senders = senders,
        events = pages::or_dash(credential.events_url.as_deref()),
        opens = on_off(credential.track_opens),
        clicks = on_off(credential.track_clicks),
        created = unix_time(credential.created_at),
        used = credential
            .last_used_at
            .map(unix_time)
            .unwrap_or_else(|| "never".into()),
        state = state,
        action = action,
    )
}

/// The list, and for admins the form (with `error` above it and the fields kept).
async fn credentials_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    form: &CredentialForm,
) -> Response {
    let outbound = match outbound_api::outbound(state) {
        Ok(outbound) => outbound,
        Err(error) => return error_page(principal, error, ("/", "Messages")),
    };
    let credentials = match outbound.credentials().await {
        Ok(credentials) => credentials,
        Err(error) => return error_page(principal, error.into(), ("/", "Messages")),
    };
    let mut body = String::from(
        "<p>Apps send with a credential: its username and token authenticate the send API (<code>Authorization: Bearer</code>) and SMTP submission.</p>\n",
    );
    if principal.role() == Role::Admin {
        let checked = |on: bool| if on { " checked" } else { "" };
        // A fresh form ticks both tracking boxes; a refused one keeps what was sent.
        let fresh = form.username.is_empty() && error.is_none();
        body.push_str(&format!(
            concat!(
                "<h2>New credential</h2>\n{error}<form method=\"post\" action=\"/credentials\" class=\"filters\">{csrf}",
                "<label>Username<input name=\"username\" value=\"{username}\" required maxlength=\"64\" placeholder=\"my-app\"></label>",
                "<label>Allowed senders<input name=\"senders\" value=\"{senders}\" placeholder=\"alerts@example.com, @example.org\"></label>",
                "<label>Events URL<input name=\"events_url\" value=\"{events}\" placeholder=\"https://app.example.com/events\"></label>",
                "<label class=\"check\"><input type=\"checkbox\" name=\"test\" value=\"1\"{test}> test mode (never delivers)</label>",
                "<label class=\"check\"><input type=\"checkbox\" name=\"track_opens\" value=\"1\"{opens}> track opens</label>",
                "<label class=\"check\"><input type=\"checkbox\" name=\"track_clicks\" value=\"1\"{clicks}> track clicks</label>",
                "<button type=\"submit\">Create credential</button></form>\n",
            ),
            error = html::error(error),
            csrf = csrf(principal),
            username = html::escape(&form.username),
            senders = html::escape(&form.senders),
            events = html::escape(&form.events_url),
            test = checked(form.test.is_some()),
            opens = checked(fresh || form.track_opens.is_some()),
            clicks = checked(fresh || form.track_clicks.is_some()),
        ));
    }
    body.push_str("<h2>Credentials</h2>\n");
    if credentials.is_empty() {
        body.push_str("<p>No credentials yet.</p>\n");
    } else {
        body.push_str(concat!(
            "<div class=\"scroll\"><table id=\"credentials\">\n<thead><tr><th>Username</th><th>Mode</th><th>Token</th>",
            "<th>Allowed senders</th><th>Events URL</th><th>Tracking</th><th>Created</th><th>Last used</th>",
            "<th>State</th><th></th></tr></thead>\n<tbody>\n",
        ));
        for credential in credentials {
            body.push_str(&credential_row(
                principal,
                &CredentialView::from(credential),
            ));
        }
        body.push_str("</tbody>\n</table></div>\n");
    }
    html::dashboard(status, "Credentials", &nav(principal), &body)
}

async fn credentials(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    credentials_page(
        &state,
        &principal,
        StatusCode::OK,
        None,
        &CredentialForm::default(),
    )
    .await
}

async fn create_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    form: Result<Form<CredentialForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
            ("/credentials", "Credentials"),
        );
    };
    let spec = NewCredentialSpec {
        username: form.username.trim().to_string(),
        test: form.test.is_some(),
        allowed_senders: form
            .senders
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        events_url: Some(form.events_url.trim().to_string()).filter(|u| !u.is_empty()),
        track_opens: Some(form.track_opens.is_some()),
        track_clicks: Some(form.track_clicks.is_some()),
    };
    let client = client.map(|Extension(c)| c);
    match outbound_api::create_credential(&state, &principal, client.as_ref(), spec).await {
        Ok((credential, token)) => {
            let endpoints = outbound_api::endpoints(&state, &headers, &credential.username, &token);
            let body = format!(
                concat!(
                    "<p>The credential <strong>{username}</strong> ({mode}) is made. Copy the token now: ",
                    "it is shown this once and never again.</p>\n",
                    "<dl>\n<dt>Username</dt><dd class=\"copy\"><code id=\"username\">{username}</code></dd>\n",
                    "<dt>Token</dt><dd class=\"copy\"><code id=\"token\">{token}</code></dd>\n",
                    "<dt>SMTP</dt><dd class=\"copy\"><code id=\"smtp-url\">{smtp}</code></dd>\n",
                    "<dt>API base URL</dt><dd class=\"copy\"><code id=\"api-base-url\">{api}</code></dd>\n</dl>\n",
                    "<p>Send with <code>POST {api}/{username}/messages</code> and ",
                    "<code>Authorization: Bearer</code> the token, or with any CloudMailin client ",
                    "given this base URL.</p>\n<p><a href=\"/credentials\">All credentials</a></p>",
                ),
                username = html::escape(&credential.username),
                mode = credential.mode.as_str(),
                token = html::escape(&token),
                smtp = html::escape(&endpoints.smtp_url),
                api = html::escape(&endpoints.api_base_url),
            );
            html::dashboard(
                StatusCode::CREATED,
                "New credential",
                &nav(&principal),
                &body,
            )
        }
        Err(ApiError::Field { message: why, .. }) => {
            credentials_page(
                &state,
                &principal,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&why),
                &form,
            )
            .await
        }
        Err(ApiError::Status(status, why)) => {
            credentials_page(&state, &principal, status, Some(&why), &form).await
        }
        Err(error) => error_page(&principal, error, ("/credentials", "Credentials")),
    }
}

async fn revoke_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let back = ("/credentials", "Credentials");
    let Ok(Path(username)) = path else {
        return message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such credential",
            back,
        );
    };
    let client = client.map(|Extension(c)| c);
    match outbound_api::revoke(&state, &principal, client.as_ref(), &username).await {
        Ok(true) => auth::redirect("/credentials"),
        Ok(false) => message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such credential, or revoked already",
            back,
        ),
        Err(error) => error_page(&principal, error, back),
    }
}

// Sending domains.

#[derive(Debug, Default, Deserialize)]
struct DomainForm {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    algorithm: String,
    #[serde(default)]
    return_path: String,
}

/// One domain: what it is, its records (with what DNS shows, when `checks` are given) and,
/// for admins, its remove button.
fn domain_section(
    principal: &Principal,
    domain: &SendingDomain,
    checks: Option<&[RecordCheck]>,
) -> String {
    let name = html::escape(&domain.domain);
    let mut out = format!(
        concat!(
            "<section id=\"domain-{name}\">\n<h2>{name}</h2>\n",
            "<p>DKIM {algorithm}, selector <code>{selector}</code>; return path <code>{return_path}</code>; added {added}. ",
            "<a href=\"/sending-domains/{name}/verify\">Check DNS</a></p>\n",
        ),
        name = name,
        algorithm = html::escape(&domain.dkim_algorithm),
        selector = html::escape(&domain.dkim_selector),
        return_path = html::escape(&domain.return_path_domain),
        added = unix_time(domain.created_at),
    );
    out.push_str(concat!(
        "<div class=\"scroll\"><table class=\"records\">\n<thead><tr><th>Type</th><th>Name</th>",
        "<th>Value</th><th>Purpose</th>",
    ));
    if checks.is_some() {
        out.push_str("<th>DNS</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, record) in domain.dns_records.iter().enumerate() {
        let check = checks.and_then(|c| c.get(i));
        let status = check
            .map(|c| format!(" data-status=\"{}\"", c.status.as_str()))
            .unwrap_or_default();
        out.push_str(&format!(
            concat!(
                "<tr data-record=\"{kind} {name}\"{status}><td>{kind}</td><td><code class=\"copy\">{name}</code></td>",
                "<td><code class=\"copy\">{value}</code></td><td>{purpose}</td>",
            ),
            kind = record.kind,
            name = html::escape(&record.name),
            status = status,
            value = html::escape(&record.value),
            purpose = html::escape(record.purpose),
        ));
        if let Some(check) = check {
            let status = check.status.as_str();
            let mut cell = format!("<span class=\"badge dns-{status}\">{status}</span>");
            if let Some(error) = &check.error {
                cell.push_str(&format!("<br>{}", html::escape(error)));
            }
            if !check.published.is_empty() && status != "found" {
                cell.push_str("<br>published:");
                for value in &check.published {
                    cell.push_str(&format!("<br><code>{}</code>", html::escape(value)));
                }
            }
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
    if principal.role() == Role::Admin {
        out.push_str(&format!(
            concat!(
                "<form method=\"post\" action=\"/sending-domains/{name}/remove\">{csrf}",
                "<button type=\"submit\">Remove {name} and its DKIM key</button></form>\n",
            ),
            name = name,
            csrf = csrf(principal),
        ));
    }
    out.push_str("</section>\n");
    out
}

/// The list, and for admins the form (with `error` above it and the fields kept);
/// `notice` above everything.
async fn domains_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    form: &DomainForm,
) -> Response {
    let domains = match outbound_api::sending_domains(state).await {
        Ok(domains) => domains,
        Err(error) => return error_page(principal, error, ("/", "Messages")),
    };
    let mut body = String::new();
    if let Some(notice) = notice {
        body.push_str(&format!(
            "<p role=\"status\" id=\"notice\">{}</p>\n",
            html::escape(notice)
        ));
    }
    body.push_str("<p>Mail is accepted only from a sending domain. Publish its records, then check them here.</p>\n");
    if principal.role() == Role::Admin {
        let selected = |name: &str| {
            if form.algorithm == name {
                " selected"
            } else {
                ""
            }
        };
        body.push_str(&format!(
            concat!(
                "<h2>New sending domain</h2>\n{error}<form method=\"post\" action=\"/sending-domains\" class=\"filters\">{csrf}",
                "<label>Domain<input name=\"domain\" value=\"{domain}\" required placeholder=\"example.com\"></label>",
                "<label>DKIM key<select name=\"algorithm\"><option value=\"rsa\"{rsa}>RSA 2048</option>",
                "<option value=\"ed25519\"{ed}>Ed25519</option></select></label>",
                "<label>Return path (optional)<input name=\"return_path\" value=\"{return_path}\" placeholder=\"mta.example.com\"></label>",
                "<button type=\"submit\">Add domain</button></form>\n",
            ),
            error = html::error(error),
            csrf = csrf(principal),
            domain = html::escape(&form.domain),
            rsa = selected("rsa"),
            ed = selected("ed25519"),
            return_path = html::escape(&form.return_path),
        ));
    }
    if domains.is_empty() {
        body.push_str("<p>No sending domains yet.</p>\n");
    }
    for domain in &domains {
        body.push_str(&domain_section(principal, domain, None));
    }
    html::dashboard(status, "Sending domains", &nav(principal), &body)
}

async fn domains(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    domains_page(
        &state,
        &principal,
        StatusCode::OK,
        None,
        None,
        &DomainForm::default(),
    )
    .await
}

async fn add_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    form: Result<Form<DomainForm>, FormRejection>,
) -> Response {
    let back = ("/sending-domains", "Sending domains");
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
            back,
        );
    };
    let refused = |status: StatusCode, why: String| {
        let state = state.clone();
        let principal = principal.clone();
        let form = &form;
        async move { domains_page(&state, &principal, status, None, Some(&why), form).await }
    };
    let algorithm = match outbound_api::algorithm_field(Some(&form.algorithm)) {
        Ok(algorithm) => algorithm,
        Err(_) => {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the DKIM key must be rsa or ed25519".into(),
            )
            .await;
        }
    };
    let return_path = Some(form.return_path.trim()).filter(|r| !r.is_empty());
    let client = client.map(|Extension(c)| c);
    match outbound_api::add_sending_domain(
        &state,
        &principal,
        client.as_ref(),
        &form.domain,
        algorithm,
        return_path,
    )
    .await
    {
        Ok(added) => {
            let notice = format!(
                "Added {}: publish the DNS records below, then check them.",
                added.domain
            );
            domains_page(
                &state,
                &principal,
                StatusCode::CREATED,
                Some(&notice),
                None,
                &DomainForm::default(),
            )
            .await
        }
        Err(ApiError::Field { message: why, .. }) => {
            refused(StatusCode::UNPROCESSABLE_ENTITY, why).await
        }
        Err(ApiError::Status(status, why)) => refused(status, why).await,
        Err(error) => error_page(&principal, error, back),
    }
}

async fn remove_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let back = ("/sending-domains", "Sending domains");
    let Ok(Path(domain)) = path else {
        return message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such sending domain",
            back,
        );
    };
    let client = client.map(|Extension(c)| c);
    match outbound_api::remove_sending_domain(&state, &principal, client.as_ref(), &domain).await {
        Ok(true) => auth::redirect("/sending-domains"),
        Ok(false) => message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such sending domain",
            back,
        ),
        Err(error) => error_page(&principal, error, back),
    }
}

async fn verify_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let back = ("/sending-domains", "Sending domains");
    let Ok(Path(domain)) = path else {
        return message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such sending domain",
            back,
        );
    };
    let domain = match outbound_api::sending_domain(&state, &domain).await {
        Ok(domain) => domain,
        Err(error) => return error_page(&principal, error, back),
    };
    let checks = match outbound_api::verify(&state, &domain).await {
        Ok(checks) => checks,
        Err(error) => return error_page(&principal, error, back),
    };
    let mut body = String::from(concat!(
        "<p>What DNS shows now for each record (asked as <code>[dns] servers</code> says). ",
        "<strong>found</strong>: published as needed; <strong>missing</strong>: nothing there yet; ",
        "<strong>different</strong>: something else is published; <strong>error</strong>: the lookup failed. ",
        "Reload to check again.</p>\n",
    ));
    body.push_str(&domain_section(&principal, &domain, Some(&checks)));
    body.push_str("<p><a href=\"/sending-domains\">All sending domains</a></p>\n");
    let title = format!("DNS check: {}", domain.domain);
    html::dashboard(StatusCode::OK, &title, &nav(&principal), &body)
}

// The suppression list.

#[derive(Debug, Default, Deserialize)]
struct SuppressionForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    reason: String,
}

/// The list, and for admins the form (with `error` above it and the fields kept).
async fn suppressions_page(
    state: &AppState,
    principal: &Principal,
    status: StatusCode,
    error: Option<&str>,
    form: &SuppressionForm,
) -> Response {
    let rows = match outbound_api::outbound(state) {
        Ok(outbound) => match outbound.suppressions().await {
            Ok(rows) => rows,
            Err(error) => return error_page(principal, error.into(), ("/outbound", "Sent")),
        },
        Err(error) => return error_page(principal, error, ("/outbound", "Sent")),
    };
    let mut body = String::from(
        "<p>Mail to these addresses is never attempted: each recipient gets a <code>suppressed</code> event instead. Hard bounces add addresses here.</p>\n",
    );
    if principal.role() == Role::Admin {
        body.push_str(&format!(
            concat!(
                "<h2>Suppress an address</h2>\n{error}<form method=\"post\" action=\"/suppressions\" class=\"filters\">{csrf}",
                "<label>Address<input name=\"address\" value=\"{address}\" required placeholder=\"user@example.net\"></label>",
                "<label>Reason<input name=\"reason\" value=\"{reason}\" placeholder=\"manual\"></label>",
                "<button type=\"submit\">Suppress</button></form>\n",
            ),
            error = html::error(error),
            csrf = csrf(principal),
            address = html::escape(&form.address),
            reason = html::escape(&form.reason),
        ));
    }
    if rows.is_empty() {
        body.push_str("<p>No suppressed addresses.</p>\n");
    } else {
        body.push_str(concat!(
            "<div class=\"scroll\"><table id=\"suppressions\">\n<thead><tr><th>Address</th><th>Reason</th>",
            "<th>Message</th><th>Since (UTC)</th><th></th></tr></thead>\n<tbody>\n",
        ));
        for row in &rows {
            let message = match &row.message_id {
                Some(uuid) => format!(
                    "<a href=\"/outbound/{uuid}\" class=\"mono\">{uuid}</a>",
                    uuid = html::escape(uuid)
                ),
                None => "—".into(),
            };
            let action = if principal.role() == Role::Admin {
                format!(
                    concat!(
                        "<form method=\"post\" action=\"/suppressions/remove\">{csrf}",
                        "<input type=\"hidden\" name=\"address\" value=\"{address}\">",
                        "<button type=\"submit\">Remove</button></form>",
                    ),
                    csrf = csrf(principal),
                    address = html::escape(&row.address),
                )
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr><td>{address}</td><td>{reason}</td><td>{message}</td><td>{since}</td><td>{action}</td></tr>\n",
                address = html::escape(&row.address),
                reason = html::escape(&row.reason),
                message = message,
                since = unix_time(row.created_at),
                action = action,
            ));
        }
        body.push_str("</tbody>\n</table></div>\n");
    }
    html::dashboard(status, "Suppression list", &nav(principal), &body)
}

async fn suppressions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    suppressions_page(
        &state,
        &principal,
        StatusCode::OK,
        None,
        &SuppressionForm::default(),
    )
    .await
}

async fn add_suppression(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    form: Result<Form<SuppressionForm>, FormRejection>,
) -> Response {
    let back = ("/suppressions", "Suppression list");
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
            back,
        );
    };
    let client = client.map(|Extension(c)| c);
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    match suppressions_api::suppress(&state, &principal, client.as_ref(), &form.address, reason)
        .await
    {
        Ok(_) => auth::redirect("/suppressions"),
        Err(ApiError::Field { detail, .. }) => {
            suppressions_page(
                &state,
                &principal,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&detail),
                &form,
            )
            .await
        }
        Err(error) => error_page(&principal, error, back),
    }
}

async fn remove_suppression(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    form: Result<Form<SuppressionForm>, FormRejection>,
) -> Response {
    let back = ("/suppressions", "Suppression list");
    let Ok(Form(form)) = form else {
        return message(
            &principal,
            StatusCode::BAD_REQUEST,
            "the form was not readable",
            back,
        );
    };
    let client = client.map(|Extension(c)| c);
    match suppressions_api::unsuppress(&state, &principal, client.as_ref(), &form.address).await {
        Ok(true) => auth::redirect("/suppressions"),
        Ok(false) => message(
            &principal,
            StatusCode::NOT_FOUND,
            "this address is not on the suppression list",
            back,
        ),
        Err(error) => error_page(&principal, error, back),
    }
}
