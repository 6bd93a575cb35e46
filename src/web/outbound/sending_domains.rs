//! Sending domains: `GET /sending-domains` (each domain with the DNS records to publish;
//! admins also get the add form and remove buttons), `POST /sending-domains`,
//! `POST /sending-domains/{domain}/remove`, `GET /sending-domains/{domain}/verify` (what DNS
//! shows for each record); and as JSON `GET /api/sending-domains`, `POST /api/sending-domains`
//! (admin: a DKIM key and the records to publish), `DELETE /api/sending-domains/{domain}`
//! (admin) and `GET /api/sending-domains/{domain}/verify`.
//!
//! Pages and JSON change domains through the helpers here: the same `Outbound` calls as
//! `postern sending-domain`, plus an audit row.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{AuditAction, Client, Role};
use crate::dns::ResolverChoice;
use crate::outbound::dkim::Algorithm;
use crate::outbound::dns_check::{DnsCheck, RecordCheck, RecordStatus};
use crate::outbound::domains::{DomainError, SendingDomain};
use crate::web::AppState;
use crate::web::auth::{self, Principal};
use crate::web::error::ApiError;
use crate::web::ui::form::{self, FormPage, Refused, Submission};
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/sending-domains",
            get(form::show::<DomainsPage>).post(form::submit::<DomainsPage>),
        )
        .route("/sending-domains/{domain}/remove", post(remove_domain))
        .route("/sending-domains/{domain}/verify", get(verify_domain))
        .route(
            "/api/sending-domains",
            get(api_list_domains).post(api_add_domain),
        )
        .route("/api/sending-domains/{domain}", delete(api_remove_domain))
        .route(
            "/api/sending-domains/{domain}/verify",
            get(api_verify_domain),
        )
}

// The pages.

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
) -> Html {
    let name = Html::escape(&domain.domain);
    let mut out = html!(
        concat!(
            "<section id=\"domain-{name}\">\n<h2>{name}</h2>\n",
            "<p>DKIM {algorithm}, selector <code>{selector}</code>; return path <code>{return_path}</code>; added {added}. ",
            "<a href=\"/sending-domains/{name}/verify\">Check DNS</a></p>\n",
        ),
        name = name,
        algorithm = Html::escape(&domain.dkim_algorithm),
        selector = Html::escape(&domain.dkim_selector),
        return_path = Html::escape(&domain.return_path_domain),
        added = ui::unix_time(domain.created_at),
    );
    out.push_trusted(concat!(
        "<div class=\"scroll\"><table class=\"records\">\n<thead><tr><th>Type</th><th>Name</th>",
        "<th>Value</th><th>Purpose</th>",
    ));
    if checks.is_some() {
        out.push_trusted("<th>DNS</th>");
    }
    out.push_trusted("</tr></thead>\n<tbody>\n");
    for (i, record) in domain.dns_records.iter().enumerate() {
        let check = checks.and_then(|c| c.get(i));
        let status = check
            .map(|c| html!(" data-status=\"{}\"", c.status.as_str()))
            .unwrap_or_default();
        out.push(html!(
            concat!(
                "<tr data-record=\"{kind} {name}\"{status}><td>{kind}</td><td><code class=\"copy\">{name}</code></td>",
                "<td><code class=\"copy\">{value}</code></td><td>{purpose}</td>",
            ),
            kind = record.kind,
            name = Html::escape(&record.name),
            status = status,
            value = Html::escape(&record.value),
            purpose = Html::escape(record.purpose),
        ));
        if let Some(check) = check {
            let status = check.status.as_str();
            let mut cell = html!(
                "<span class=\"badge dns-{status}\">{status}</span>",
                status = status
            );
            if let Some(error) = &check.error {
                cell.push(html!("<br>{}", error));
            }
            if !check.published.is_empty() && status != "found" {
                cell.push_trusted("<br>published:");
                for value in &check.published {
                    cell.push(html!("<br><code>{}</code>", value));
                }
            }
            out.push(html!("<td>{}</td>", cell));
        }
        out.push_trusted("</tr>\n");
    }
    out.push_trusted("</tbody>\n</table></div>\n");
    if principal.role() == Role::Admin {
        out.push(html!(
            concat!(
                "<form method=\"post\" action=\"/sending-domains/{name}/remove\" data-confirm=\"Remove {name} and its DKIM key? Mail from it can no longer be signed; a new key needs new DNS records.\">{csrf}",
                "<button type=\"submit\">Remove {name} and its DKIM key</button></form>\n",
            ),
            name = name,
            csrf = ui::csrf(principal),
        ));
    }
    out.push_trusted("</section>\n");
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
    let domains = match sending_domains(state).await {
        Ok(domains) => domains,
        Err(error) => return super::error_page(principal, error, ("/", "Messages")),
    };
    let mut body = Html::new();
    if let Some(notice) = notice {
        body.push(html!(
            "<p role=\"status\" id=\"notice\">{}</p>\n",
            Html::escape(notice)
        ));
    }
    body.push_trusted("<p>Mail is accepted only from a sending domain. Publish its records, then check them here.</p>\n");
    if principal.role() == Role::Admin {
        let selected = |name: &str| {
            if form.algorithm == name {
                " selected"
            } else {
                ""
            }
        };
        body.push(html!(
            concat!(
                "<h2>New sending domain</h2>\n{error}<form method=\"post\" action=\"/sending-domains\" class=\"filters\">{csrf}",
                "<label>Domain<input name=\"domain\" value=\"{domain}\" required placeholder=\"example.com\"></label>",
                "<label>DKIM key<select name=\"algorithm\"><option value=\"rsa\"{rsa}>RSA 2048</option>",
                "<option value=\"ed25519\"{ed}>Ed25519</option></select></label>",
                "<label>Return path (optional)<input name=\"return_path\" value=\"{return_path}\" placeholder=\"mta.example.com\"></label>",
                "<button type=\"submit\">Add domain</button></form>\n",
            ),
            error = ui::error(error),
            csrf = ui::csrf(principal),
            domain = Html::escape(&form.domain),
            rsa = selected("rsa"),
            ed = selected("ed25519"),
            return_path = Html::escape(&form.return_path),
        ));
    }
    if domains.is_empty() {
        body.push_trusted("<p>No sending domains yet.</p>\n");
    }
    for domain in &domains {
        body.push(domain_section(principal, domain, None));
    }
    ui::dashboard(status, "Sending domains", ui::nav(principal), body)
}

/// `/sending-domains`: the domains with their records and, for admins, the form to add one.
struct DomainsPage;

impl FormPage for DomainsPage {
    type Form = DomainForm;
    const BACK: (&'static str, &'static str) = ("/sending-domains", "Sending domains");

    async fn render(
        state: &AppState,
        principal: &Principal,
        status: StatusCode,
        refusal: Option<&str>,
        form: &DomainForm,
    ) -> Response {
        domains_page(state, principal, status, None, refusal, form).await
    }

    /// Adds the domain and shows the list with its records to publish (201).
    async fn submit(sent: Submission<'_>, form: &DomainForm) -> Result<Response, Refused> {
        let Ok(algorithm) = algorithm_field(Some(&form.algorithm)) else {
            let why = "the DKIM key must be rsa or ed25519";
            return Err(Refused::Again(StatusCode::UNPROCESSABLE_ENTITY, why.into()));
        };
        let return_path = Some(form.return_path.trim()).filter(|r| !r.is_empty());
        let (state, principal) = (sent.state, sent.principal);
        let added = add_sending_domain(
            state,
            principal,
            sent.client,
            &form.domain,
            algorithm,
            return_path,
        )
        .await
        .map_err(|error| super::refused(principal, error, Self::BACK))?;
        let notice = format!(
            "Added {}: publish the DNS records below, then check them.",
            added.domain
        );
        let (status, fresh) = (StatusCode::CREATED, DomainForm::default());
        Ok(domains_page(state, principal, status, Some(&notice), None, &fresh).await)
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
        return ui::message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such sending domain",
            back,
        );
    };
    let client = client.map(|Extension(c)| c);
    match remove_sending_domain(&state, &principal, client.as_ref(), &domain).await {
        Ok(true) => auth::redirect("/sending-domains"),
        Ok(false) => ui::message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such sending domain",
            back,
        ),
        Err(error) => super::error_page(&principal, error, back),
    }
}

async fn verify_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let back = ("/sending-domains", "Sending domains");
    let Ok(Path(domain)) = path else {
        return ui::message(
            &principal,
            StatusCode::NOT_FOUND,
            "no such sending domain",
            back,
        );
    };
    let domain = match sending_domain(&state, &domain).await {
        Ok(domain) => domain,
        Err(error) => return super::error_page(&principal, error, back),
    };
    let checks = match verify(&state, &domain).await {
        Ok(checks) => checks,
        Err(error) => return super::error_page(&principal, error, back),
    };
    let mut body = Html::trusted(concat!(
        "<p>What DNS shows now for each record (asked as <code>[dns] servers</code> says). ",
        "<strong>found</strong>: published as needed; <strong>missing</strong>: nothing there yet; ",
        "<strong>different</strong>: something else is published; <strong>error</strong>: the lookup failed. ",
        "Reload to check again.</p>\n",
    ));
    body.push(domain_section(&principal, &domain, Some(&checks)));
    body.push_trusted("<p><a href=\"/sending-domains\">All sending domains</a></p>\n");
    let title = format!("DNS check: {}", domain.domain);
    ui::dashboard(StatusCode::OK, &title, ui::nav(&principal), body)
}

// Shared by the pages and the JSON API.

/// Adds a sending domain through `Outbound` and writes the audit row.
async fn add_sending_domain(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    domain: &str,
    algorithm: Algorithm,
    return_path: Option<&str>,
) -> Result<SendingDomain, ApiError> {
    let added = super::outbound(state)?
        .add_sending_domain(domain, algorithm, return_path, &state.settings.hostname)
        .await
        .map_err(|error| match error {
            DomainError::BadDomain(ref name) => ApiError::Field {
                field: if Some(name.as_str()) == return_path.map(str::trim) {
                    "return_path".into()
                } else {
                    "domain".into()
                },
                message: error.to_string(),
                detail: error.to_string(),
            },
            DomainError::Exists(_) => ApiError::Status(StatusCode::CONFLICT, error.to_string()),
            DomainError::Dkim(error) => ApiError::Internal(error.to_string()),
            DomainError::Store(error) => ApiError::Store(error),
        })?;
    let detail = format!(
        "DKIM {} selector {}, return path {}",
        added.dkim_algorithm, added.dkim_selector, added.return_path_domain
    );
    state
        .accounts
        .audit(
            &principal.actor(),
            AuditAction::SendingDomainAdded,
            Some(&added.domain),
            client.map(|c| c.ip),
            Some(&detail),
        )
        .await?;
    Ok(added)
}

/// Removes a sending domain and its key, and writes the audit row; false when there was none.
async fn remove_sending_domain(
    state: &AppState,
    principal: &Principal,
    client: Option<&Client>,
    domain: &str,
) -> Result<bool, ApiError> {
    let removed = super::outbound(state)?
        .remove_sending_domain(domain)
        .await?;
    if removed {
        state
            .accounts
            .audit(
                &principal.actor(),
                AuditAction::SendingDomainRemoved,
                Some(&domain.trim().to_ascii_lowercase()),
                client.map(|c| c.ip),
                None,
            )
            .await?;
    }
    Ok(removed)
}

async fn sending_domains(state: &AppState) -> Result<Vec<SendingDomain>, ApiError> {
    Ok(super::outbound(state)?
        .sending_domains(&state.settings.hostname)
        .await?)
}

async fn sending_domain(state: &AppState, domain: &str) -> Result<SendingDomain, ApiError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    sending_domains(state)
        .await?
        .into_iter()
        .find(|d| d.domain == domain)
        .ok_or(ApiError::NotFound("no such sending domain"))
}

/// What DNS shows for each record of `domain`, asked as `[dns] servers` configures.
async fn verify(state: &AppState, domain: &SendingDomain) -> Result<Vec<RecordCheck>, ApiError> {
    let check = DnsCheck::new(
        ResolverChoice::from_config(state.settings.dns_servers.as_deref()),
        state.settings.dns_timeout,
    );
    check.verify(domain).await.map_err(|error| {
        ApiError::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot ask DNS: {error}"),
        )
    })
}

// The JSON API.

async fn api_list_domains(State(state): State<AppState>) -> Result<Response, ApiError> {
    let domains = sending_domains(&state).await?;
    Ok(Json(json!({ "sending_domains": domains })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDomain {
    domain: String,
    /// `rsa` (2048 bits, the default) or `ed25519`.
    algorithm: Option<String>,
    /// Default `mta.<domain>`.
    return_path: Option<String>,
}

fn algorithm_field(name: Option<&str>) -> Result<Algorithm, ApiError> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(Algorithm::Rsa2048),
        Some(name) => Algorithm::from_name(name).ok_or_else(|| ApiError::Field {
            field: "algorithm".into(),
            message: "must be rsa or ed25519".into(),
            detail: format!("algorithm {name:?}: must be rsa or ed25519"),
        }),
    }
}

async fn api_add_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    body: Result<Json<NewDomain>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = super::json_body(body)?;
    let algorithm = algorithm_field(body.algorithm.as_deref())?;
    let return_path = body
        .return_path
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let client = client.map(|Extension(c)| c);
    let added = add_sending_domain(
        &state,
        &principal,
        client.as_ref(),
        &body.domain,
        algorithm,
        return_path,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

async fn api_remove_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(domain)) = path else {
        return Err(ApiError::BadRequest("a domain is needed".into()));
    };
    let client = client.map(|Extension(c)| c);
    if remove_sending_domain(&state, &principal, client.as_ref(), &domain).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no such sending domain"))
    }
}

async fn api_verify_domain(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(domain)) = path else {
        return Err(ApiError::BadRequest("a domain is needed".into()));
    };
    let domain = sending_domain(&state, &domain).await?;
    let records = verify(&state, &domain).await?;
    // DMARC is a recommendation; the others are needed for mail to pass and bounce back.
    let verified = records
        .iter()
        .filter(|r| !r.record.name.starts_with("_dmarc."))
        .all(|r| r.status == RecordStatus::Found);
    Ok(Json(json!({
        "domain": domain.domain,
        "verified": verified,
        "records": records,
    }))
    .into_response())
}
