//! The inbox (`GET /`): who wrote, to whom, the subject with a line of the text, how it
//! ended, when; unread rows stand out; one search box with operators (`store::search`) and
//! the status; paged by `before`, kept live by `live` (and a poll). Deleting what a filter
//! finds: `GET /messages/delete` (the count, to confirm) and `POST /messages/delete`.
//!
//! Server-rendered and complete without JavaScript; everything that came with the mail is
//! escaped.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;

use super::{message_page, response_cell, store_failed};
use crate::accounts::Role;
use crate::config::Field;
use crate::store::{InboundMessage, MessageFilter, Scope, Search};
use crate::web::auth;
use crate::web::ui::{self, Html, html};
use crate::web::{AppState, Principal};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/", get(list)).route(
        "/messages/delete",
        get(confirm_delete).post(delete_matching),
    )
}

const PAGE_SIZE: u32 = 50;

/// The list's GET form. Empty fields mean "any"; unknown fields are ignored (browsers).
/// `q` is the search box; the other filters are the API's, kept for links and bookmarks.
#[derive(Deserialize, Default)]
struct ListForm {
    q: Option<String>,
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

    fn fields(&self) -> [(&'static str, Option<&str>); 8] {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        [
            ("q", set(&self.q)),
            ("address", set(&self.address)),
            ("recipient", set(&self.recipient)),
            ("sender", set(&self.sender)),
            ("subject", set(&self.subject)),
            ("status", set(&self.status)),
            ("since", set(&self.since)),
            ("until", set(&self.until)),
        ]
    }

    /// The store's filter for `reader` (whose read state `is:` and the rows show).
    fn filter(&self, reader: String) -> Result<MessageFilter, String> {
        let [q, address, recipient, sender, subject, status, since, until] =
            self.fields().map(|(_, v)| v.map(str::to_string));
        let search = Search::parse(q.as_deref().unwrap_or_default()).map_err(|e| e.to_string())?;
        let outcome = status.as_deref().map(super::api::outcome).transpose()?;
        let bound = |name: &str, value: Option<String>| match value {
            None => Ok(None),
            Some(value) => crate::store::time_bound(&value).map(Some).ok_or(format!(
                "{name} must be a date (2026-11-28) or an RFC 3339 time (2026-11-28T09:00:00Z)"
            )),
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
            search,
            reader: Some(reader),
        })
    }
}

async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Query<ListForm>, QueryRejection>,
) -> Response {
    let form = form.map(|Query(f)| f).unwrap_or_default();
    let (filter, problem) = match form.filter(principal.reader()) {
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
    let unfiltered = form.fields().iter().all(|(_, value)| value.is_none());
    let retention = &state.settings.retention;
    let mut body = ui::retention_note(&retention.list_note(retention.inbound_metadata_days));
    if form.status.is_none() && !form.q.as_deref().unwrap_or_default().contains("status:") {
        body.push(refused_note(&state).await);
    }
    if let Some(deleted) = form.deleted {
        body.push(html!(
            "<p role=\"status\" id=\"deleted\">Deleted {deleted} {messages}.</p>\n",
            deleted = deleted,
            messages = if deleted == 1 { "message" } else { "messages" },
        ));
    }
    body.push(search_form(&form, problem.as_deref()));
    let newest = messages.first().map(|m| m.id).unwrap_or(0);
    // The newest page follows arrivals (`web::live`); older pages stay as they are.
    let live = match paged {
        true => Html::new(),
        false => html!(
            " data-live=\"inbound\" data-version=\"{}\"",
            crate::web::live::version(&state, Scope::Inbound).await
        ),
    };
    body.push(html!(
        concat!(
            "<div class=\"scroll\" id=\"inbox\"{live}><table id=\"messages\" class=\"inbox\" data-newest=\"{newest}\">\n",
            "<thead><tr><th>From</th><th>Subject</th><th>Status</th><th>Received</th></tr></thead>\n<tbody>\n",
        ),
        newest = newest,
        live = live,
    ));
    if messages.is_empty() {
        let none = match unfiltered {
            true => "No messages.",
            false => "No messages match.",
        };
        body.push(html!(
            "<tr class=\"none\"><td colspan=\"4\">{}</td></tr>\n",
            none
        ));
    }
    for message in &messages {
        body.push(row(message));
    }
    body.push_trusted("</tbody>\n</table></div>\n");
    if principal.role() == Role::Admin && !messages.is_empty() {
        body.push(html!(
            concat!(
                "<p><a href=\"/messages/delete?{query}\" id=\"delete-matching\">Delete {which}…</a></p>\n",
                // The keyboard's delete (`#`) posts this form to the selected row's action.
                "<form id=\"row-action\" method=\"post\" hidden>{csrf}</form>\n",
            ),
            query = form.query(),
            which = if unfiltered { "all messages" } else { "every message this search finds" },
            csrf = ui::csrf(&principal),
        ));
    }
    if messages.is_empty() && unfiltered && !paged && state.open {
        body.push(crate::web::about::getting_started(&state.settings));
    }
    let older = messages
        .last()
        .filter(|_| messages.len() == PAGE_SIZE as usize)
        .map(|last| last.id);
    body.push(ui::pager("/", &form.query(), paged, older));
    body.push_trusted(concat!(
        "<p class=\"keys\">Keys: <kbd>j</kbd>/<kbd>k</kbd> move, <kbd>Enter</kbd> opens, ",
        "<kbd>/</kbd> searches, <kbd>#</kbd> deletes, <kbd>u</kbd> marks unread.</p>\n",
    ));
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let title = if state.open { "Inbox" } else { "Messages" };
    ui::dashboard(status, title, ui::nav(&principal), body)
}

/// One inbox row: From (name, address, the first recipient), the subject with the start
/// of the text, the outcome with attachment and TLS marks, the time (relative, by script).
fn row(message: &InboundMessage) -> Html {
    let meta = &message.meta;
    let redacted = |field, shown| super::redacted(meta, field, shown);
    let (name, address) = match meta.header_from.as_deref() {
        Some(from) => display_address(from),
        None => (None, meta.mail_from.as_str()),
    };
    let from = match name {
        Some(name) => html!(
            "<strong class=\"name\">{}</strong> <span class=\"addr\">{}</span>",
            name,
            address
        ),
        None if address.is_empty() => Html::trusted("<strong class=\"name\">(no sender)</strong>"),
        None => html!("<strong class=\"name\">{}</strong>", address),
    };
    let to = meta
        .header_to
        .as_deref()
        .map(|to| {
            display_address(to.split(',').next().unwrap_or(to))
                .1
                .to_string()
        })
        .or_else(|| meta.recipients.first().cloned())
        .unwrap_or_default();
    let more = meta.recipients.len().saturating_sub(1);
    let to = match more {
        0 => html!("to {}", to),
        more => html!("to {} +{}", to, more),
    };
    let subject = match meta.subject.as_deref().map(str::trim) {
        Some(subject) if !subject.is_empty() => Html::escape(subject),
        _ => Html::trusted("(no subject)"),
    };
    let preview = match &message.preview {
        Some(preview) => html!(" <span class=\"preview\">{}</span>", preview),
        None => Html::new(),
    };
    let mut marks = Html::new();
    if meta.attachments > 0 {
        marks.push(html!(
            " <span class=\"mark\" title=\"{n} attachment{s}\" aria-label=\"{n} attachment{s}\">{icon}{n}</span>",
            n = meta.attachments,
            s = if meta.attachments == 1 { "" } else { "s" },
            icon = Html::trusted(PAPERCLIP),
        ));
    }
    if let Some(tls) = meta.tls_version.as_deref() {
        marks.push(html!(
            " <span class=\"mark\" title=\"received over {tls}\" aria-label=\"{tls}\">{icon}</span>",
            tls = tls,
            icon = Html::trusted(LOCK),
        ));
    }
    let unread = message.read == Some(false);
    html!(
        concat!(
            "<tr data-id=\"{id}\"{class}>",
            "<td class=\"from\"><a href=\"/messages/{id}\">{from}</a><span class=\"to\">{to}</span></td>",
            "<td class=\"subject\"><a href=\"/messages/{id}\">{subject}</a>{preview}</td>",
            "<td class=\"status\">{response}{marks}</td>",
            "<td class=\"when\">{date}</td></tr>\n",
        ),
        id = message.id,
        class = Html::trusted(if unread { " class=\"unread\"" } else { "" }),
        from = redacted(Field::Sender, from),
        to = redacted(Field::Recipient, to),
        subject = redacted(Field::Subject, subject),
        preview = preview,
        response = redacted(Field::ServerResponse, response_cell(message)),
        marks = marks,
        date = html!(
            "<time class=\"ago\" datetime=\"{at}\">{at}</time>",
            at = &meta.received_at
        ),
    )
}

/// The row's marks, drawn inline (no font has to have them).
const PAPERCLIP: &str = concat!(
    "<svg viewBox=\"0 0 24 24\" width=\"14\" height=\"14\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" aria-hidden=\"true\">",
    "<path d=\"M21.4 11.1l-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5\"/></svg>",
);
const LOCK: &str = concat!(
    "<svg viewBox=\"0 0 24 24\" width=\"14\" height=\"14\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" aria-hidden=\"true\">",
    "<rect x=\"4\" y=\"11\" width=\"16\" height=\"10\" rx=\"2\"/><path d=\"M8 11V7a4 4 0 0 1 8 0v4\"/></svg>",
);

/// `"Name" <a@b>` → (`Name`, `a@b`); a bare address → (none, it).
fn display_address(text: &str) -> (Option<&str>, &str) {
    let text = text.trim();
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let name = text[..open].trim().trim_matches('"').trim();
            let address = text[open + 1..close].trim();
            ((!name.is_empty()).then_some(name), address)
        }
        _ => (None, text),
    }
}

/// The search box (with its operators under "?"), the status, and the API's filters that
/// came in the URL, kept as hidden fields.
fn search_form(form: &ListForm, problem: Option<&str>) -> Html {
    let fields = form.fields();
    let status = fields[5].1.unwrap_or_default();
    let options = ui::select_options(
        [
            "successful",
            "rejected",
            "delayed",
            "captured",
            "bounce",
            "refused",
            "queued",
            "failed",
            "discarded",
        ],
        status,
    );
    let mut hidden = Html::new();
    for (name, value) in &fields[1..] {
        if let (Some(value), false) = (value, *name == "status") {
            hidden.push(html!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{value}\">",
                name = *name,
                value = *value,
            ));
        }
    }
    let error = match problem {
        Some(why) => html!(
            "<p class=\"error field-error\" id=\"q-error\" role=\"alert\">{}</p>",
            why
        ),
        None => Html::new(),
    };
    html!(
        concat!(
            "<form class=\"filters search\" method=\"get\" action=\"/\" role=\"search\">",
            "<label class=\"grow\">Search<input type=\"search\" name=\"q\" id=\"q\" value=\"{q}\" ",
            "placeholder=\"from:alice subject:invoice has:attachment is:unread\" autocomplete=\"off\"{invalid}></label>",
            "<label>Status<select name=\"status\">{options}</select></label>{hidden}",
            "<button type=\"submit\">Search</button> <a href=\"/\">Clear</a>{error}</form>\n",
            "<details class=\"help\"><summary>Search operators</summary><p>Words match the subject, ",
            "From, To, Cc, the envelope and (where content is kept) the text, any part of them. ",
            "<code>from:</code> <code>to:</code> <code>subject:</code> look in one field; ",
            "<code>status:rejected</code>, <code>is:unread</code>, <code>is:read</code>, ",
            "<code>has:attachment</code>, <code>after:2026-11-28</code>, <code>before:2026-11-29</code> (UTC days); ",
            "<code>\"two words\"</code> together; <code>-</code> in front negates (<code>-from:noreply</code>).</p></details>\n",
        ),
        q = fields[0].1.unwrap_or_default(),
        invalid = match problem {
            Some(_) => " aria-invalid=\"true\" aria-describedby=\"q-error\"",
            None => "",
        },
        options = options,
        hidden = hidden,
        error = error,
    )
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

/// "Delete N messages?": what the list's filter finds, counted, with the button that
/// deletes them (the same filter in hidden fields).
async fn confirm_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    form: Result<Query<ListForm>, QueryRejection>,
) -> Response {
    let form = form.map(|Query(f)| f).unwrap_or_default();
    // Every page, not one: the store's count and delete leave `before` aside.
    let filter = match form.filter(principal.reader()) {
        Ok(filter) => filter,
        Err(why) => return message_page(&principal, StatusCode::BAD_REQUEST, &why),
    };
    let described = super::api::describe(&filter, form.q.as_deref());
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
    let filter = match form.filter(principal.reader()) {
        Ok(filter) => filter,
        Err(why) => return message_page(&principal, StatusCode::BAD_REQUEST, &why),
    };
    let described = super::api::describe(&filter, form.q.as_deref());
    match state.store.delete_inbound_matching(filter).await {
        Ok(deleted) => {
            let detail = format!("{deleted} matching {described}");
            super::api::audit_deleted(&state, &principal, &detail).await;
            auth::redirect(&format!("/?deleted={deleted}"))
        }
        Err(error) => store_failed(&principal, error),
    }
}
