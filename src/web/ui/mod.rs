//! The dashboard's UI kit, shared by every page: [`Html`] and [`html!`] (markup that only
//! escaping or our own literals can make, `html`), the layouts and security headers
//! (`layout`), the sandboxed mail view and downloads of both detail pages (`mail_view`), our
//! one script (`assets`), the form-page pattern (`form`), and below the small pieces every page
//! repeats: the navigation bar, times, the CSRF field, the error paragraph, the filter
//! `<select>`, the "Newest / Older" pager and the message-only page.

mod assets;
pub(in crate::web) mod form;
mod html;
mod layout;
mod mail_view;

use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::accounts::Role;
use crate::config::Field;
use crate::web::{Principal, Who};

pub(in crate::web) use assets::routes;
pub(in crate::web) use html::{Escaped, Html, html};
pub(in crate::web) use layout::{dashboard, page};
pub(in crate::web) use mail_view::{
    attachment_response, attachments_section, content_section, email_html_response, head_bytes,
    headers_tab, html_tab, kept_or_plain, parse_kept, payload_response, plain, preview_response,
    source_tab, tabs, text_tab,
};

/// The navigation bar: the pages, who is signed in and, for a session, sign-out.
pub(in crate::web) fn nav(principal: &Principal) -> Html {
    let who = match &principal.who {
        Who::User(session) => html!(
            concat!(
                "<span>{email} ({role})</span> <a href=\"/account\">Account</a> ",
                "<form method=\"post\" action=\"/signout\">{csrf}<button type=\"submit\">Sign out</button></form>",
            ),
            email = session.user.email,
            role = role_name(session.user.role),
            csrf = csrf(principal),
        ),
        Who::ApiKey(key) => html!("<span>API key {}</span>", key.name),
        Who::Dev => Html::trusted("<span>Dev mode: open on loopback</span>"),
    };
    let links = match (&principal.who, principal.role()) {
        (Who::Dev, _) => DEV_LINKS,
        (_, Role::Admin) => ADMIN_LINKS,
        // Data-subject requests are for admins only: viewers get no link (and 403).
        (_, Role::Viewer) => VIEWER_LINKS,
    };
    html!("{links} {who}", links = Html::trusted(links), who = who)
}

/// Dev mode: what a local capture tool has (no accounts, no routing, any sender).
const DEV_LINKS: &str = concat!(
    "<a href=\"/\"><strong>Postern</strong></a> <a href=\"/\">Inbox</a> ",
    "<a href=\"/outbound\">Sent</a> <a href=\"/settings\">Settings</a> <a href=\"/about\">API</a>",
);

/// Production, grouped: Mail, Sending, Configuration, Administration.
macro_rules! production_links {
    ($requests:literal) => {
        concat!(
            "<a href=\"/\"><strong>Postern</strong></a> ",
            "<span class=\"nav-group\"><span class=\"nav-label\">Mail</span> <a href=\"/\">Messages</a> <a href=\"/outbound\">Sent</a></span> ",
            "<span class=\"nav-group\"><span class=\"nav-label\">Sending</span> <a href=\"/credentials\">Credentials</a> ",
            "<a href=\"/sending-domains\">Sending domains</a> <a href=\"/suppressions\">Suppressions</a></span> ",
            "<span class=\"nav-group\"><span class=\"nav-label\">Configuration</span> <a href=\"/addresses\">Addresses</a> ",
            "<a href=\"/domains\">Domains</a> <a href=\"/signing\">Signing</a> <a href=\"/stores\">Stores</a> <a href=\"/settings\">Settings</a> <a href=\"/privacy\">Privacy</a></span> ",
            "<span class=\"nav-group\"><span class=\"nav-label\">Administration</span> <a href=\"/users\">Users</a> ",
            "<a href=\"/keys\">API keys</a> <a href=\"/audit\">Audit log</a>",
            $requests,
            "</span> <a href=\"/about\">API</a>",
        )
    };
}
const ADMIN_LINKS: &str = production_links!(" <a href=\"/data-requests\">Data requests</a>");
const VIEWER_LINKS: &str = production_links!("");

pub(in crate::web) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    }
}

/// The hidden field every state-changing form carries.
pub(in crate::web) fn csrf_field(token: &str) -> Html {
    html!(
        r#"<input type="hidden" name="csrf_token" value="{}">"#,
        token
    )
}

/// The CSRF field for the principal's forms (an empty token for API keys, which post no
/// forms).
pub(in crate::web) fn csrf(principal: &Principal) -> Html {
    csrf_field(principal.csrf_token.as_deref().unwrap_or_default())
}

/// A paragraph with an error message, or nothing.
pub(in crate::web) fn error(message: Option<&str>) -> Html {
    message
        .map(|m| html!(r#"<p class="error" role="alert">{}</p>"#, m))
        .unwrap_or_default()
}

/// The note above a message list: how long its messages are kept (`[retention]`), with a
/// link to the settings page that says it all.
pub(in crate::web) fn retention_note(note: &str) -> Html {
    html!(
        r#"<p class="retention-note">{} <a href="/settings#retention">Retention</a></p>"#,
        note
    )
}

/// A page with only an error message and a way back (`back`: link and its text).
pub(in crate::web) fn message(
    principal: &Principal,
    status: StatusCode,
    text: &str,
    back: (&str, &str),
) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html!(
        "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"{}\">{}</a></p>",
        text,
        back.0,
        back.1
    );
    dashboard(status, title, nav(principal), body)
}

/// The narrow page for a form the browser sent that could not be read.
pub(in crate::web) fn bad_form(rejection: FormRejection) -> Response {
    let body = html!("<p>{}</p>", rejection.body_text());
    page(StatusCode::BAD_REQUEST, "Bad request", body)
}

/// An RFC 3339 UTC time as stored; the script shows it in the viewer's time zone.
pub(in crate::web) fn time(at: &str) -> Html {
    html!("<time datetime=\"{at}\">{at}</time>", at = at)
}

/// A time of the accounts service, shown like [`time`].
pub(in crate::web) fn offset_time(at: OffsetDateTime) -> Html {
    time(&at.format(&Rfc3339).unwrap_or_default())
}

/// Unix seconds (the outbound store's times), shown like [`time`].
pub(in crate::web) fn unix_time(at: i64) -> Html {
    match OffsetDateTime::from_unix_timestamp(at) {
        Ok(at) => offset_time(at),
        Err(_) => dash(),
    }
}

/// The text escaped, or a dash when there is none.
pub(in crate::web) fn or_dash(value: Option<&str>) -> Html {
    value.map(Html::escape).unwrap_or_else(dash)
}

/// What a table shows for "none".
pub(in crate::web) fn dash() -> Html {
    Html::trusted("—")
}

/// `shown`, or "redacted" when a row's `redacted` list names `field` (`config::privacy`).
pub(in crate::web) fn redacted(redacted: &[String], field: Field, shown: Html) -> Html {
    if redacted.iter().any(|name| name == field.name()) {
        Html::trusted("<em class=\"redacted\">redacted</em>")
    } else {
        shown
    }
}

/// At most `limit` bytes, cut at a character boundary.
pub(in crate::web) fn head(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The `<option>`s of a filter's `<select>`: "any" (the empty value) first, then each
/// name, `chosen` selected.
pub(in crate::web) fn select_options<'a>(
    names: impl IntoIterator<Item = &'a str>,
    chosen: &str,
) -> Html {
    std::iter::once("")
        .chain(names)
        .map(|name| {
            html!(
                "<option value=\"{name}\"{selected}>{label}</option>",
                name = name,
                selected = if name == chosen { " selected" } else { "" },
                label = if name.is_empty() { "any" } else { name },
            )
        })
        .collect()
}

/// The "Newest" and "Older" links under a list paged by `?before=`: `base` is the list's
/// path, `query` its filters as a query string, `paged` whether this is an older page, and
/// `older` the `before` of the next page when this one is full.
pub(in crate::web) fn pager(
    base: &'static str,
    query: &str,
    paged: bool,
    older: Option<i64>,
) -> Html {
    let mut out = Html::trusted("<p class=\"pager\">");
    if paged {
        out.push(html!("<a href=\"{}?{}\">Newest</a>", base, query));
    }
    if let Some(before) = older {
        let sep = if query.is_empty() { "" } else { "&" };
        out.push(html!(
            "<a href=\"{}?{}\" rel=\"next\">Older</a>",
            base,
            format!("{query}{sep}before={before}")
        ));
    }
    out.push_trusted("</p>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_cut_at_character_boundaries() {
        assert_eq!(head("abc", 2), "ab");
        assert_eq!(head("aé", 2), "a");
        assert_eq!(head("ab", 5), "ab");
    }

    #[test]
    fn the_csrf_field_escapes_its_token() {
        assert_eq!(
            csrf_field("a\"b").as_str(),
            r#"<input type="hidden" name="csrf_token" value="a&quot;b">"#
        );
    }
}
