//! The ACME part of `/settings` (`[tls] mode = "acme"`), below the certificate the listeners
//! serve: where certificates are ordered, and the last certificate events (issued, renewed,
//! loaded from the store, failed with the CA's error); while the temporary self-signed
//! certificate is served, why — the last order's error.

use crate::config::CertSource;
use crate::store::{CertificateEvent, Store};
use crate::web::Settings;
use crate::web::ui::{self, Html, html};

/// Events shown; the store keeps more (`store::CERTIFICATE_EVENTS_KEPT`).
const EVENTS_SHOWN: i64 = 10;

/// Empty unless the certificate comes from ACME.
pub(super) async fn acme_section(settings: &Settings, store: &Store) -> Html {
    let Some(certificates) = &settings.certificates else {
        return Html::new();
    };
    let CertSource::Acme(acme) = certificates.source() else {
        return Html::new();
    };
    let events = match store.certificate_events(EVENTS_SHOWN).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, "the certificate events could not be read");
            Vec::new()
        }
    };
    let mut body = html!(
        "<p id=\"acme-source\">Ordered from {} ({}) for {}.</p>\n",
        acme.directory,
        acme.challenge.describe(),
        certificates.names().join(", "),
    );
    if certificates.status().temporary {
        body.push(html!(
            "<p id=\"acme-pending\">{}</p>\n",
            pending_text(&events)
        ));
    }
    body.push(events_table(&events));
    body
}

/// Why there is no certificate from the CA yet: its last error, or that the order runs.
fn pending_text(events: &[CertificateEvent]) -> String {
    match events.first() {
        Some(event) if event.kind == "failed" => format!(
            "No certificate yet: the last order failed ({}); it is retried with a growing delay.",
            event.detail
        ),
        _ => "No certificate yet: the first order is under way.".to_string(),
    }
}

fn events_table(events: &[CertificateEvent]) -> Html {
    if events.is_empty() {
        return Html::trusted("<p>No certificate events yet.</p>\n");
    }
    let mut body = Html::trusted(concat!(
        "<table id=\"certificate-events\">\n<thead><tr><th>When</th><th>Event</th>",
        "<th>Detail</th></tr></thead>\n<tbody>\n"
    ));
    for event in events {
        body.push(html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            ui::unix_time(event.at),
            event.kind,
            event.detail,
        ));
    }
    body.push_trusted("</tbody>\n</table>\n");
    body
}
