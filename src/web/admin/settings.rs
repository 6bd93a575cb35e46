//! `GET /settings`, read-only: listeners, the TLS certificate (source, names, expiry), version, data dir, SPF and DNS, session
//! policy, retention and the sign-in providers; paths and numbers, never a secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};

use crate::config::OidcProvider;
use crate::retention::{Retention, days_text};
use crate::web::AppState;
use crate::web::auth::Principal;
use crate::web::ui::{self, Html, html};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/settings", get(settings))
}

async fn settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let mut body =
        Html::trusted("<p>Read-only; change the config file and restart.</p>\n<table>\n");
    body.push(table_rows(rows(&state)));
    body.push(certificate_section(&state.settings));
    body.push(super::certificate::acme_section(&state.settings, &state.store).await);
    body.push(retention_section(&state.settings.retention));
    body.push_trusted("<h2>Sign-in providers</h2>\n");
    body.push(providers_section(state.oidc.providers()));
    ui::dashboard(StatusCode::OK, "Settings", ui::nav(&principal), body)
}

/// The settings shown, by name: paths, addresses and numbers, never a secret.
fn rows(state: &AppState) -> [(&'static str, String); 12] {
    let settings = &state.settings;
    let policy = state.accounts.policy();
    let addr = |addr: Option<std::net::SocketAddr>| {
        addr.map(|a| a.to_string())
            .unwrap_or_else(|| "not listening".into())
    };
    let dns = match &settings.dns_servers {
        None => "the system resolver".to_string(),
        Some(servers) => servers
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    [
        ("Version", crate::VERSION.to_string()),
        ("SMTP listener", addr(settings.smtp_listen)),
        (
            "Submission listeners",
            submission_text(&settings.submission_listen, &settings.submission_tls_listen),
        ),
        (
            "Web listener",
            format!(
                "{} ({})",
                addr(settings.web_listen),
                if settings.https {
                    "HTTPS"
                } else {
                    "plain HTTP"
                }
            ),
        ),
        (
            "TLS",
            match &settings.certificates {
                None => "off: no STARTTLS, no HTTPS ([tls] mode = \"off\")".to_string(),
                Some(certificates) => format!(
                    "{} — STARTTLS on SMTP{}",
                    match certificates.source().cert_file() {
                        Some(cert) => format!("files: {}", cert.display()),
                        None => certificates.source().mode().to_string(),
                    },
                    if settings.https { ", HTTPS" } else { "" }
                ),
            },
        ),
        ("Data directory", settings.data_dir.display().to_string()),
        ("SPF", if settings.spf { "on" } else { "off" }.to_string()),
        ("DNS", dns),
        (
            "Session idle timeout",
            format!("{} s", policy.session_idle.as_secs()),
        ),
        (
            "Session lifetime",
            format!("{} s", policy.session_lifetime.as_secs()),
        ),
        (
            "TOTP required",
            if policy.require_totp { "yes" } else { "no" }.to_string(),
        ),
        (
            "Public URL",
            settings
                .public_url
                .as_ref()
                .map(|url| url.as_str().trim_end_matches('/').to_string())
                .unwrap_or_else(|| "not set (sign-in providers use the loopback Host)".into()),
        ),
    ]
}

/// `587 (STARTTLS), 465 (implicit TLS)`, or `off`.
fn submission_text(starttls: &[std::net::SocketAddr], implicit: &[std::net::SocketAddr]) -> String {
    let listed = starttls
        .iter()
        .map(|addr| format!("{addr} (STARTTLS)"))
        .chain(implicit.iter().map(|addr| format!("{addr} (implicit TLS)")))
        .collect::<Vec<_>>();
    match listed.is_empty() {
        true => "off".to_string(),
        false => listed.join(", "),
    }
}

/// The certificate the listeners serve now: names, issuer, expiry, and why a temporary one
/// is served while ACME has not issued.
fn certificate_section(settings: &crate::web::Settings) -> Html {
    let mut section = Html::trusted("<h2>TLS certificate</h2>\n");
    let Some(certificates) = &settings.certificates else {
        section.push_trusted("<p>None: TLS is off.</p>\n");
        return section;
    };
    let status = certificates.status();
    if status.temporary {
        section.push_trusted(
            "<p class=\"notice\">A temporary self-signed certificate is served until the ACME CA \
             issues one; browsers warn and strict senders fall back to plain text until then.</p>\n",
        );
    }
    let rows = [
        ("Source", certificates.source().mode().to_string()),
        ("Configured names", certificates.names().join(", ")),
        ("Names in the certificate", status.names.join(", ")),
        ("Issuer", status.issuer.clone()),
        ("Expires", status.expires_text()),
    ];
    section.push_trusted("<table>\n");
    section.push(table_rows(rows));
    section
}

/// A table's body of name/value rows, and its end: the tables of this page.
fn table_rows<const N: usize>(rows: [(&str, String); N]) -> Html {
    let mut body = Html::trusted("<tbody>\n");
    for (name, value) in rows {
        body.push(html!("<tr><th>{}</th><td>{}</td></tr>\n", name, value));
    }
    body.push_trusted("</tbody>\n</table>\n");
    body
}

/// `[retention]`: how long each kind of data is kept before the sweep deletes it.
fn retention_section(retention: &Retention) -> Html {
    let rows = [
        (
            "Received mail (metadata)",
            days_text(retention.inbound_metadata_days),
        ),
        (
            "Sent mail (metadata)",
            days_text(retention.outbound_metadata_days),
        ),
        ("Message content", retention.content_text()),
        ("Audit log", days_text(retention.audit_days)),
        (
            "IP address and user agent of opens and clicks",
            days_text(retention.tracking_days),
        ),
    ];
    let mut body = Html::trusted(concat!(
        "<h2 id=\"retention\">Retention</h2>\n",
        "<p>Older data is deleted every five minutes ([retention] in the config file); ",
        "mail still queued is never deleted.</p>\n<table id=\"retention-settings\">\n"
    ));
    body.push(table_rows(rows));
    body
}

/// The sign-in providers (`[[web.oidc]]`), without their secrets.
fn providers_section(providers: &[OidcProvider]) -> Html {
    let mut body = Html::new();
    if providers.is_empty() {
        body.push_trusted("<p>None: users sign in with their password only ([[web.oidc]]).</p>");
    } else {
        body.push_trusted(concat!(
            "<table id=\"sign-in-providers\">\n<thead><tr><th>Name</th><th>Button</th>",
            "<th>Kind</th><th>Client id</th></tr></thead>\n<tbody>\n"
        ));
        for provider in providers {
            body.push(html!(
                "<tr><td>{}</td><td>Sign in with {}</td><td>{}</td><td>{}</td></tr>\n",
                provider.name,
                provider.label,
                provider.kind.describe(),
                provider.client_id,
            ));
        }
        body.push_trusted("</tbody>\n</table>");
    }
    body
}
