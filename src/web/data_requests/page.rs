//! `/data-requests`, admins only: the selector as a form and three buttons — "Count" (what a
//! purge with the boxes ticked would delete, deleting nothing), "Download export" (the
//! archive) and "Purge" (only with the confirmation box ticked; shows what it deleted).
//! Viewers get 403, and the navigation shows them no link.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{archive_download, purge_or_count};
use crate::accounts::Role;
use crate::data_requests::selector::SelectorSpec;
use crate::data_requests::{RequestError, Selector, TableCount};
use crate::store::PurgeScope;
use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::error::ApiError;
use crate::web::ui::form::{self, FormPage, Refused, Submission};
use crate::web::ui::{self, Html, html};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/data-requests",
        get(form::show::<RequestsPage>).post(form::submit::<RequestsPage>),
    )
}

const KINDS: [(&str, &str); 3] = [
    ("email", "a person's email address"),
    ("domain", "a domain"),
    ("address", "a managed inbound address"),
];

#[derive(Debug, Default, Deserialize)]
struct RequestForm {
    /// `email`, `domain` or `address`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    include_suppressions: Option<String>,
    include_queued: Option<String>,
    /// The purge's confirmation box.
    confirm: Option<String>,
    /// The button: `count`, `export` or `purge`.
    #[serde(default)]
    action: String,
}

impl RequestForm {
    /// The selector, or the sentence that says what is wrong with the fields.
    fn selector(&self) -> Result<Selector, String> {
        let value = Some(self.value.clone());
        let mut spec = SelectorSpec {
            since: Some(self.since.clone()),
            until: Some(self.until.clone()),
            ..SelectorSpec::default()
        };
        match self.kind.as_str() {
            "email" => spec.email = value,
            "domain" => spec.domain = value,
            "address" => spec.address = value,
            _ => return Err("choose what the request is about".into()),
        }
        Selector::parse(&spec).map_err(|error| error.to_string())
    }

    fn scope(&self) -> PurgeScope {
        PurgeScope {
            suppressions: self.include_suppressions.is_some(),
            queued: self.include_queued.is_some(),
        }
    }
}

fn again(why: String) -> Refused {
    Refused::Again(StatusCode::UNPROCESSABLE_ENTITY, why)
}

/// The refusal of a purge without its confirmation box.
const UNCONFIRMED: &str =
    "tick the confirmation box to purge: it deletes for good (Count shows what would go)";

struct RequestsPage;

impl FormPage for RequestsPage {
    type Form = RequestForm;
    const BACK: (&'static str, &'static str) = ("/data-requests", "Data requests");

    async fn render(
        _: &AppState,
        principal: &Principal,
        status: StatusCode,
        refusal: Option<&str>,
        form: &RequestForm,
    ) -> Response {
        requests_page(principal, status, refusal, form, None)
    }

    async fn submit(sent: Submission<'_>, form: &RequestForm) -> Result<Response, Refused> {
        let selector = form.selector().map_err(again)?;
        let requests = &sent.state.data_requests;
        let (dry_run, heading) = match form.action.as_str() {
            "export" => return Ok(archive_download(requests.clone(), selector)),
            "count" => (true, "A purge would delete (dry run)"),
            "purge" if form.confirm.is_some() => (false, "Purged"),
            "purge" => return Err(again(UNCONFIRMED.into())),
            _ => return Err(again("choose Count, Download export or Purge".into())),
        };
        let counts = purge_or_count(requests, &selector, form.scope(), dry_run, sent.principal)
            .await
            .map_err(|error| match error {
                RequestError::Selector(error) => again(error.to_string()),
                other => Refused::Answer(ApiError::from(other).into_response()),
            })?;
        let result = Some((heading, counts.as_slice()));
        Ok(requests_page(
            sent.principal,
            StatusCode::OK,
            None,
            form,
            result,
        ))
    }
}

/// The form (with `refusal` above it and the fields as sent) and the counts of the last
/// request, for admins; 403 for viewers.
fn requests_page(
    principal: &Principal,
    status: StatusCode,
    refusal: Option<&str>,
    form: &RequestForm,
    result: Option<(&str, &[TableCount])>,
) -> Response {
    if principal.role() != Role::Admin {
        let why = "data-subject requests are for admins";
        return ui::message(principal, StatusCode::FORBIDDEN, why, ("/", "Messages"));
    }
    let mut body = Html::trusted(concat!(
        "<p>Everything Postern holds about a person, a domain or a managed inbound address: ",
        "count it, download it as a tar archive, or delete it for good, as <code>postern ",
        "export</code> and <code>postern purge</code> do. The audit log keeps a digest of ",
        "each purge's selector and its counts, never the address.</p>\n"
    ));
    body.push(ui::error(refusal));
    body.push(request_form(principal, form));
    if let Some((heading, counts)) = result {
        body.push(counts_table(heading, counts));
    }
    ui::dashboard(status, "Data requests", ui::nav(principal), body)
}

fn request_form(principal: &Principal, form: &RequestForm) -> Html {
    let kinds: Html = KINDS
        .iter()
        .map(|(name, label)| {
            html!(
                "<option value=\"{name}\"{selected}>{label}</option>",
                name = *name,
                selected = if form.kind == *name { " selected" } else { "" },
                label = *label,
            )
        })
        .collect();
    let checkbox = |name: &str, checked: bool, label: &str| {
        html!(
            "<label><input type=\"checkbox\" name=\"{name}\"{checked}> {label}</label>\n",
            name = name,
            checked = if checked { " checked" } else { "" },
            label = label,
        )
    };
    html!(
        concat!(
            "<form method=\"post\" action=\"/data-requests\">{csrf}\n",
            "<label>About <select name=\"kind\">{kinds}</select></label>\n",
            "<label>Who <input name=\"value\" value=\"{value}\" required></label>\n",
            "<label>Since <input name=\"since\" value=\"{since}\" placeholder=\"{day}\"></label>\n",
            "<label>Until <input name=\"until\" value=\"{until}\" placeholder=\"{day}\"></label>\n",
            "{suppressions}{queued}{confirm}",
            "<button type=\"submit\" name=\"action\" value=\"count\">Count</button> ",
            "<button type=\"submit\" name=\"action\" value=\"export\">Download export</button> ",
            "<button type=\"submit\" name=\"action\" value=\"purge\">Purge</button>\n</form>\n",
        ),
        csrf = ui::csrf(principal),
        kinds = kinds,
        value = Html::escape(&form.value),
        since = Html::escape(&form.since),
        until = Html::escape(&form.until),
        day = "YYYY-MM-DD",
        suppressions = checkbox(
            "include_suppressions",
            form.include_suppressions.is_some(),
            "Purge the suppression-list rows too (mail to them is then attempted again)",
        ),
        queued = checkbox(
            "include_queued",
            form.include_queued.is_some(),
            "Purge mail still queued too (it is then never sent)",
        ),
        confirm = checkbox("confirm", false, "I have counted: purge deletes for good",),
    )
}

fn counts_table(heading: &str, counts: &[TableCount]) -> Html {
    let mut out = html!(
        concat!(
            "<h2>{}</h2>\n<table id=\"counts\">\n",
            "<thead><tr><th>Table</th><th>Rows</th></tr></thead>\n<tbody>\n"
        ),
        heading
    );
    for count in counts {
        out.push(html!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            count.table,
            count.rows
        ));
    }
    out.push_trusted("</tbody>\n</table>\n");
    out
}
