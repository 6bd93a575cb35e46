//! Sent mail: `GET /outbound` (newest first, 50 to a page, filtered by recipient, tag and
//! state with a GET form, "Older" by `?before=`), `GET /outbound/{uuid}` (one message: the
//! envelope, its headers and bodies from the queued content, each recipient's state, every
//! delivery attempt and the events), `GET /outbound/{uuid}/html` and
//! `/outbound/{uuid}/attachments/{n}` (the sandboxed frame and downloads of `ui::mail_view`);
//! and as JSON `GET /api/outbound[/{id}]`.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::Field;
use crate::mail::message::ParsedMessage;
use crate::store::unix_time;
use crate::store::{
    EventRow, OutboundAttemptRow, OutboundFilter, OutboundSummary, RecipientState, Scope,
};
use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::error::ApiError;
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/outbound", get(list))
        .route("/outbound/{uuid}", get(detail))
        .route("/outbound/{uuid}/html", get(email_html))
        .route("/outbound/{uuid}/attachments/{n}", get(attachment))
        .route("/api/outbound", get(api_list))
        .route("/api/outbound/{id}", get(api_detail))
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

fn state_badge(state: RecipientState) -> Html {
    let name = state.as_str();
    html!(
        "<span class=\"badge state-{name}\">{name}</span>",
        name = name
    )
}

// The pages.

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

fn filter_form(form: &ListForm) -> Html {
    let chosen = set(&form.state).unwrap_or_default();
    let options = ui::select_options(STATES, chosen);
    html!(
        concat!(
            "<form class=\"filters\" method=\"get\" action=\"/outbound\">",
            "<label>Recipient<input name=\"recipient\" value=\"{recipient}\"></label>",
            "<label>Tag<input name=\"tag\" value=\"{tag}\"></label>",
            "<label>State<select name=\"state\">{options}</select></label>",
            "<button type=\"submit\">Filter</button> <a href=\"/outbound\">Clear</a></form>\n",
        ),
        recipient = set(&form.recipient),
        tag = set(&form.tag),
        options = options,
    )
}

fn subject_text(message: &OutboundSummary) -> Html {
    let shown = message
        .subject
        .as_deref()
        .map(Html::escape)
        .unwrap_or_else(|| Html::trusted("(no subject)"));
    ui::redacted(&message.redacted, Field::Subject, shown)
}

/// The From header, or its domain and "redacted" when the row left the address out.
fn from_text(message: &OutboundSummary) -> Html {
    let domain = Html::escape(&message.from);
    let marker = ui::redacted(&message.redacted, Field::Sender, Html::new());
    html!("{} {}", domain, marker)
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
            Err(error) => {
                return super::error_page(&principal, error.into(), ("/outbound", "Sent"));
            }
        },
        None => Vec::new(),
    };
    let retention = &state.settings.retention;
    let mut body = ui::retention_note(&retention.list_note(retention.outbound_metadata_days));
    body.push(filter_form(&form));
    body.push(ui::error(problem.as_deref()));
    // The newest page follows the queue (`web::live`); older pages stay as they are.
    let live = match paged {
        true => Html::new(),
        false => html!(
            " data-live=\"outbound\" data-version=\"{}\"",
            crate::web::live::version(&state, Scope::Outbound).await
        ),
    };
    body.push(html!("<div class=\"scroll\" id=\"sent\"{}>", live));
    body.push_trusted(concat!(
        "<table id=\"outbound\">\n<thead><tr><th>Created</th><th>From</th>",
        "<th>Recipients</th><th>Subject</th><th>Tags</th><th>Source</th><th>Test</th></tr></thead>\n<tbody>\n",
    ));
    if messages.is_empty() {
        body.push_trusted("<tr><td colspan=\"7\">No messages.</td></tr>\n");
    }
    for message in &messages {
        let recipients = message
            .recipients
            .iter()
            .map(|r| html!("{} {}", r.address, state_badge(r.state)));
        let tags = message
            .tags
            .iter()
            .map(|t| html!("<span class=\"tag\">{}</span>", t));
        body.push(html!(
            concat!(
                "<tr><td>{created}</td><td>{from}</td><td>{recipients}</td>",
                "<td><a href=\"/outbound/{uuid}\">{subject}</a></td><td>{tags}</td><td>{source}</td><td>{test}</td></tr>\n",
            ),
            created = ui::unix_time(message.created_at),
            from = from_text(message),
            recipients = Html::join(recipients, "<br>"),
            uuid = message.id,
            subject = subject_text(message),
            tags = Html::join(tags, " "),
            source = message.source.as_str(),
            test = if message.test_mode { "test" } else { "—" },
        ));
    }
    body.push_trusted("</tbody>\n</table></div>\n");
    let older = messages
        .last()
        .filter(|_| messages.len() == PAGE_SIZE as usize)
        .map(|last| last.row_id);
    body.push(ui::pager("/outbound", &form.query(), paged, older));
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    ui::dashboard(status, "Sent", ui::nav(&principal), body)
}

/// The message by its UUID, or the page that says why not.
async fn find(
    state: &AppState,
    principal: &Principal,
    uuid: Result<Path<String>, PathRejection>,
) -> Result<OutboundSummary, Response> {
    let not_found = || {
        ui::message(
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
        Err(error) => Err(super::error_page(
            principal,
            error.into(),
            ("/outbound", "Sent"),
        )),
    }
}

/// The queued bytes, parsed; `None` when the content is gone.
async fn content(state: &AppState, row_id: i64) -> Result<Option<ParsedMessage>, String> {
    ui::parse_kept(state.store.outbound_content(row_id).await).await
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
        Err(error) => return super::error_page(&principal, error.into(), ("/outbound", "Sent")),
    };
    let attempts = match state.store.outbound_attempts(found.row_id).await {
        Ok(attempts) => attempts,
        Err(error) => return super::error_page(&principal, error.into(), ("/outbound", "Sent")),
    };
    let parsed = match content(&state, found.row_id).await {
        Ok(parsed) => parsed,
        Err(error) => {
            return super::error_page(&principal, ApiError::Internal(error), ("/outbound", "Sent"));
        }
    };
    let mut body = summary_section(&found);
    // Recipients, attempts and events change as the queue works (`web::live`).
    body.push(html!(
        "<div id=\"sent-live\" data-live=\"sent:{uuid}\" data-version=\"{version}\">",
        uuid = &found.id,
        version = crate::web::live::version(&state, Scope::Sent(found.id.clone())).await,
    ));
    body.push(recipients_section(&found));
    body.push(attempts_section(&found, &attempts));
    body.push(events_section(&events));
    body.push_trusted("</div>\n");
    match &parsed {
        Some(parsed) => body.push(ui::content_section(
            &format!("/outbound/{}", found.id),
            parsed,
        )),
        None => body
            .push_trusted("<h2>Content</h2>\n<p>The message's content is not kept any more.</p>\n"),
    }
    let title = format!(
        "Sent: {}",
        found.subject.as_deref().unwrap_or("(no subject)")
    );
    ui::dashboard(StatusCode::OK, &title, ui::nav(&principal), body)
}

/// What the message is: envelope, subject, tags and the rest of its summary.
fn summary_section(message: &OutboundSummary) -> Html {
    html!(
        concat!(
            "<dl>\n<dt>ID</dt><dd class=\"mono\">{uuid}</dd>\n",
            "<dt>Created</dt><dd>{created}</dd>\n",
            "<dt>Credential</dt><dd>{username}</dd>\n<dt>Source</dt><dd>{source}</dd>\n",
            "<dt>From</dt><dd>{from}</dd>\n<dt>Envelope sender</dt><dd class=\"mono\">{envelope}</dd>\n",
            "<dt>Subject</dt><dd>{subject}</dd>\n<dt>Tags</dt><dd>{tags}</dd>\n",
            "<dt>Priority</dt><dd>{priority}</dd>\n<dt>Test mode</dt><dd>{test}</dd>\n",
            "<dt>Require TLS</dt><dd id=\"require-tls\">{require_tls}</dd>\n",
            "<dt>Size</dt><dd>{size} bytes</dd>\n</dl>\n",
        ),
        uuid = Html::escape(&message.id),
        created = ui::unix_time(message.created_at),
        username = Html::escape(&message.username),
        source = message.source.as_str(),
        from = from_text(message),
        envelope = Html::escape(&message.envelope_from),
        subject = subject_text(message),
        tags = Html::escape(&message.tags.join(", ")),
        priority = message.priority.as_str(),
        test = if message.test_mode { "yes" } else { "no" },
        require_tls = match message.require_tls {
            true => "yes: verified TLS or no delivery",
            false => "no",
        },
        size = message.size,
    )
}

/// Each recipient's state and, while it waits, when it is tried next and when it expires.
fn recipients_section(message: &OutboundSummary) -> Html {
    let mut out = Html::new();
    out.push_trusted(concat!(
        "<h2>Recipients</h2>\n<div class=\"scroll\"><table id=\"recipients\">\n<thead><tr><th>Recipient</th>",
        "<th>State</th><th>Attempts</th><th>Next attempt (UTC)</th><th>Expires (UTC)</th><th>Last code</th>",
        "<th>Last response</th></tr></thead>\n<tbody>\n",
    ));
    for recipient in &message.recipients {
        let waiting = matches!(
            recipient.state,
            RecipientState::Queued | RecipientState::Deferred
        );
        out.push(html!(
            concat!(
                "<tr><td>{address}</td><td>{state}</td><td>{attempts}</td><td>{next}</td><td>{expires}</td>",
                "<td>{code}</td><td class=\"mono\">{response}</td></tr>\n",
            ),
            address = Html::escape(&recipient.address),
            state = state_badge(recipient.state),
            attempts = recipient.attempts,
            next = if waiting {
                ui::unix_time(recipient.next_attempt_at)
            } else {
                ui::dash()
            },
            expires = if waiting {
                ui::unix_time(recipient.expires_at)
            } else {
                ui::dash()
            },
            code = recipient
                .last_code
                .map_or_else(ui::dash, |c| html!("{}", c)),
            response = ui::redacted(
                &message.redacted,
                Field::ServerResponse,
                ui::or_dash(recipient.last_response.as_deref()),
            ),
        ));
    }
    out.push_trusted("</tbody>\n</table></div>\n");
    out
}

/// The events of the message, as its webhook got them.
fn events_section(events: &[EventRow]) -> Html {
    let mut out = Html::new();
    out.push_trusted("<h2>Events</h2>\n");
    if events.is_empty() {
        out.push_trusted("<p>None yet.</p>\n");
    } else {
        out.push_trusted(concat!(
            "<div class=\"scroll\"><table id=\"events\">\n<thead><tr><th>Time (UTC)</th><th>Event</th>",
            "<th>Recipient</th><th>Details</th><th>Webhook</th></tr></thead>\n<tbody>\n",
        ));
        for event in events {
            let details = if event.details.trim() == "{}" {
                ui::dash()
            } else {
                html!("<code>{}</code>", ui::head(&event.details, 2048))
            };
            out.push(html!(
                "<tr><td>{at}</td><td>{kind}</td><td>{recipient}</td><td>{details}</td><td>{webhook}</td></tr>\n",
                at = ui::unix_time(event.created_at),
                kind = Html::escape(&event.kind),
                recipient = Html::escape(&event.recipient),
                details = details,
                webhook = Html::escape(&event.webhook),
            ));
        }
        out.push_trusted("</tbody>\n</table></div>\n");
    }
    out
}

/// Every delivery attempt of the message's recipients, oldest first: the host that
/// answered, the outcome, the SMTP code and reply, TLS and how long it took.
fn attempts_section(message: &OutboundSummary, attempts: &[OutboundAttemptRow]) -> Html {
    let mut out = Html::trusted("<h2>Delivery attempts</h2>\n");
    if attempts.is_empty() {
        out.push_trusted("<p>None yet.</p>\n");
        return out;
    }
    out.push_trusted(concat!(
        "<div class=\"scroll\"><table id=\"attempts\">\n<thead><tr><th>Started (UTC)</th><th>Recipient</th>",
        "<th>Host</th><th>Outcome</th><th>Code</th><th>Response</th><th>TLS</th><th>Duration</th></tr></thead>\n<tbody>\n",
    ));
    for attempt in attempts {
        let recipient = message
            .recipients
            .iter()
            .find(|r| r.id == attempt.recipient_id)
            .map(|r| Html::escape(&r.address))
            .unwrap_or_else(ui::dash);
        out.push(html!(
            concat!(
                "<tr><td>{started}</td><td>{recipient}</td><td class=\"mono\">{host}</td><td>{outcome}</td>",
                "<td>{code}</td><td class=\"mono\">{response}</td><td>{tls}</td><td>{duration}</td></tr>\n",
            ),
            started = ui::unix_time(attempt.started_at),
            recipient = recipient,
            host = ui::or_dash(attempt.host.as_deref()),
            outcome = Html::escape(&attempt.outcome),
            code = attempt
                .code
                .map_or_else(ui::dash, |c| html!("{}", c)),
            response = ui::redacted(
                &message.redacted,
                Field::ServerResponse,
                attempt
                    .response
                    .as_deref()
                    .map(|r| Html::escape(ui::head(r, 2048)))
                    .unwrap_or_else(ui::dash),
            ),
            tls = ui::redacted(
                &message.redacted,
                Field::Tls,
                ui::or_dash(attempt.tls.as_deref()),
            ),
            duration = attempt
                .duration_ms
                .map_or_else(ui::dash, |ms| html!("{}&nbsp;ms", ms)),
        ));
    }
    out.push_trusted("</tbody>\n</table></div>\n");
    out
}

/// The content for the frame and the downloads (plain-text errors: they are fetched by
/// frames and downloads, not shown as pages).
async fn parsed_or_error(state: &AppState, uuid: &str) -> Result<ParsedMessage, Response> {
    let not_found = || ui::plain(StatusCode::NOT_FOUND, "no such message\n");
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(not_found());
    }
    let found = match state.store.outbound_message(uuid).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(not_found()),
        Err(error) => {
            tracing::error!(%error, "reading an outbound message failed");
            return Err(ui::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n",
            ));
        }
    };
    ui::kept_or_plain(content(state, found.row_id)).await
}

async fn email_html(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(uuid)) = path else {
        return ui::plain(StatusCode::NOT_FOUND, "no such message\n");
    };
    match parsed_or_error(&state, &uuid).await {
        Ok(parsed) => ui::email_html_response(parsed, false),
        Err(response) => response,
    }
}

async fn attachment(
    State(state): State<AppState>,
    path: Result<Path<(String, usize)>, PathRejection>,
) -> Response {
    let Ok(Path((uuid, n))) = path else {
        return ui::plain(StatusCode::NOT_FOUND, "no such attachment\n");
    };
    match parsed_or_error(&state, &uuid).await {
        Ok(parsed) => ui::attachment_response(parsed, n),
        Err(response) => response,
    }
}

// The JSON API.

#[derive(Debug, Deserialize)]
struct ListQuery {
    before: Option<i64>,
    limit: Option<u32>,
    recipient: Option<String>,
    tag: Option<String>,
    state: Option<String>,
}

async fn api_list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let state_filter = match query.state.as_deref() {
        None | Some("") => None,
        Some(name) => Some(RecipientState::from_name(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "state must be one of queued, sending, delivered, deferred, bounced, suppressed, \
                 expired, captured, test (got {name:?})"
            ))
        })?),
    };
    let messages = state
        .store
        .list_outbound(OutboundFilter {
            before: query.before,
            limit: query.limit.unwrap_or(50),
            recipient: query.recipient.filter(|r| !r.is_empty()),
            tag: query.tag.filter(|t| !t.is_empty()),
            state: state_filter,
        })
        .await
        .map_err(ApiError::Store)?;
    let next = messages.last().map(|m| m.row_id);
    Ok(Json(json!({"messages": messages, "next_before": next})).into_response())
}

async fn api_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let message = state
        .store
        .outbound_message(&id)
        .await
        .map_err(ApiError::Store)?
        .ok_or(ApiError::NotFound("no outbound message with this id"))?;
    let events = state
        .store
        .outbound_events(message.row_id)
        .await
        .map_err(ApiError::Store)?;
    let events: Vec<serde_json::Value> = events
        .into_iter()
        .map(|event| {
            json!({
                "kind": event.kind,
                "recipient": event.recipient,
                "details": serde_json::from_str::<serde_json::Value>(&event.details)
                    .unwrap_or_else(|_| json!({})),
                "created_at": unix_time::to_rfc3339(event.created_at),
                "webhook": event.webhook,
            })
        })
        .collect();
    // Every delivery attempt, oldest first, named by its recipient's address.
    let attempts: Vec<serde_json::Value> = state
        .store
        .outbound_attempts(message.row_id)
        .await
        .map_err(ApiError::Store)?
        .into_iter()
        .map(|attempt| {
            let recipient = message
                .recipients
                .iter()
                .find(|r| r.id == attempt.recipient_id)
                .map(|r| r.address.clone());
            json!({
                "recipient": recipient,
                "started_at": unix_time::to_rfc3339(attempt.started_at),
                "host": attempt.host,
                "outcome": attempt.outcome,
                "code": attempt.code,
                "response": attempt.response,
                "tls": attempt.tls,
                "duration_ms": attempt.duration_ms,
            })
        })
        .collect();
    let mut body = serde_json::to_value(&message).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["events"] = events.into();
    body["attempts"] = attempts.into();
    Ok(Json(body).into_response())
}
