//! The certificate section of `/settings` with `[tls] mode = "acme"`: where certificates
//! come from, the names, the expiry of the one served, and the last certificate events;
//! before the first certificate, that the listeners use a temporary self-signed one, and why.

use crate::store::{CertificateEvent, Store};
use crate::tls::acme::Acme;
use crate::web::ui::{self, Html, html};

/// Events shown; the store keeps more (`store::CERTIFICATE_EVENTS_KEPT`).
const EVENTS_SHOWN: i64 = 10;

pub(super) async fn section(acme: &Acme, store: &Store) -> Html {
    let events = match store.certificate_events(EVENTS_SHOWN).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, "the certificate events could not be read");
            Vec::new()
        }
    };
    let mut body = Html::trusted("<h2 id=\"certificate\">Certificate</h2>\n");
    body.push(html!(
        concat!(
            "<table id=\"certificate-settings\">\n<tbody>\n",
            "<tr><th>Source</th><td>ACME: {directory} ({challenge})</td></tr>\n",
            "<tr><th>Names</th><td>{names}</td></tr>\n",
        ),
        directory = acme.directory,
        challenge = challenge_text(acme),
        names = acme.names.join(", "),
    ));
    match acme.status().current() {
        Some(issued) => body.push(html!(
            "<tr><th>Expires</th><td>{} (serial {}; covers {})</td></tr>\n",
            ui::unix_time(issued.not_after),
            issued.serial,
            issued.names.join(", "),
        )),
        None => body.push(html!(
            "<tr><th>Expires</th><td id=\"certificate-pending\">{}</td></tr>\n",
            pending_text(&events),
        )),
    }
    body.push_trusted("</tbody>\n</table>\n");
    body.push(events_table(&events));
    body
}

fn challenge_text(acme: &Acme) -> &'static str {
    match acme.challenge_type {
        crate::config::AcmeChallenge::TlsAlpn01 => "TLS-ALPN-01 on the HTTPS listener",
        crate::config::AcmeChallenge::Http01 => "HTTP-01 on the port-80 listener",
    }
}

/// Why there is no certificate yet: the CA's last error, or that the first order runs.
fn pending_text(events: &[CertificateEvent]) -> String {
    let why = match events.first() {
        Some(event) if event.kind == "failed" => format!("the last order failed: {}", event.detail),
        _ => "the first order is under way".to_string(),
    };
    format!(
        "No certificate from the CA yet: the listeners use a temporary self-signed \
         certificate until it issues one; {why}."
    )
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
