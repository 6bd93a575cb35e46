//! What an operator graphs and alerts on: one Prometheus registry per [`Metrics`] handle
//! (one per `App`: the tests start many apps in one process and their counts never mix),
//! rendered as OpenMetrics text for `GET /metrics`.
//!
//! Counters are bumped at the module boundaries that decide an outcome — the SMTP shell's
//! replies to RCPT and DATA, inbound's POST to a target, the delivery worker's attempt
//! result, return mail, the retention sweep — through a cheap clone of the handle. Gauges
//! that describe state (queue depth and age, certificate days, store size) are not kept
//! up to date: the scrape reads them fresh ([`Scrape`]). No I/O here.
//!
//! Label values are bounded: listener names, reply codes, status classes, outcomes and the
//! configured address *pattern* of a route — never a recipient.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds a target may take to answer, as histogram bucket bounds: 10 ms to 60 s.
const TARGET_SECONDS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

/// Which SMTP listener a session or message came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Port 25: mail for the routed addresses.
    Mx,
    /// Submission (587, 465): mail the apps send.
    Submission,
}

impl Listener {
    fn as_str(self) -> &'static str {
        match self {
            Listener::Mx => "mx",
            Listener::Submission => "submission",
        }
    }
}

/// How one outbound delivery attempt ended (the worker's `AttemptEnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    Deferred,
    Bounced,
    Expired,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Deferred => "deferred",
            Delivery::Bounced => "bounced",
            Delivery::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplyLabels {
    listener: &'static str,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PatternLabel {
    address: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    address: String,
    /// `2xx`, `4xx`, `5xx`, or `error` (timeout, refused connection: no HTTP status).
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabel {
    /// The certificate's first name.
    name: String,
}

/// The state a scrape reads fresh, filled in by the web handler from the store and the
/// certificate.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Outbound recipients queued, deferred or being sent.
    pub queue_depth: u64,
    /// Seconds the oldest of them has waited since its message was queued (0: none).
    pub queue_oldest_seconds: i64,
    /// The served certificate's first name and the days until it expires; `None` with TLS
    /// off (the metric is then absent, not a misleading 0).
    pub certificate: Option<(String, i64)>,
    /// The database file and its WAL, in bytes.
    pub store_bytes: u64,
}

type TargetSeconds = Family<PatternLabel, Histogram, fn() -> Histogram>;

/// The instance's metrics: cheap to clone, every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    sessions: Family<ListenerLabel, Counter>,
    messages: Family<ReplyLabels, Counter>,
    refused_recipients: Family<ReplyLabels, Counter>,
    target_seconds: TargetSeconds,
    target_responses: Family<TargetLabels, Counter>,
    deliveries: Family<OutcomeLabel, Counter>,
    bounces: Family<KindLabel, Counter>,
    sweeps: Counter,
    swept_rows: Counter,
    queue_depth: Gauge,
    queue_oldest: Gauge,
    certificate_days: Family<CertificateLabel, Gauge>,
    store_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut inner = Inner {
            registry: Registry::with_prefix("postern"),
            sessions: Family::default(),
            messages: Family::default(),
            refused_recipients: Family::default(),
            target_seconds: Family::new_with_constructor(|| Histogram::new(TARGET_SECONDS)),
            target_responses: Family::default(),
            deliveries: Family::default(),
            bounces: Family::default(),
            sweeps: Counter::default(),
            swept_rows: Counter::default(),
            queue_depth: Gauge::default(),
            queue_oldest: Gauge::default(),
            certificate_days: Family::default(),
            store_bytes: Gauge::default(),
        };
        inner.register();
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// An SMTP session was admitted on `listener`.
    pub fn session(&self, listener: Listener) {
        let labels = ListenerLabel {
            listener: listener.as_str(),
        };
        self.inner.sessions.get_or_create(&labels).inc();
    }

    /// The reply given to a message (after DATA) on `listener`: 250, 554, 450, 451…
    pub fn message(&self, listener: Listener, code: u16) {
        let labels = ReplyLabels {
            listener: listener.as_str(),
            code,
        };
        self.inner.messages.get_or_create(&labels).inc();
    }

    /// A recipient refused at RCPT with `code` (5xx: unknown, regexp, callback).
    pub fn recipient_refused(&self, listener: Listener, code: u16) {
        let labels = ReplyLabels {
            listener: listener.as_str(),
            code,
        };
        self.inner.refused_recipients.get_or_create(&labels).inc();
    }

    /// A message POSTed to the target of the route configured as `pattern`: how long the
    /// target took and its HTTP status (`None`: no answer).
    pub fn target_post(&self, pattern: &str, status: Option<u16>, took: Duration) {
        let address = pattern.to_string();
        let pattern = PatternLabel {
            address: address.clone(),
        };
        let seconds = took.as_secs_f64();
        self.inner
            .target_seconds
            .get_or_create(&pattern)
            .observe(seconds);
        let labels = TargetLabels {
            address,
            status: status_class(status),
        };
        self.inner.target_responses.get_or_create(&labels).inc();
    }

    /// An outbound delivery attempt ended.
    pub fn delivery(&self, outcome: Delivery) {
        let labels = OutcomeLabel {
            outcome: outcome.as_str(),
        };
        self.inner.deliveries.get_or_create(&labels).inc();
    }

    /// Return mail named a recipient as bounced: `kind` is `bounce` (permanent) or
    /// `soft_bounce` (the event kinds).
    pub fn bounce(&self, kind: &'static str) {
        self.inner.bounces.get_or_create(&KindLabel { kind }).inc();
    }

    /// A retention sweep ran and deleted (or anonymised) `rows`.
    pub fn sweep(&self, rows: u64) {
        self.inner.sweeps.inc();
        self.inner.swept_rows.inc_by(rows);
    }

    /// The OpenMetrics text of every metric, the gauges set from `scrape` first.
    pub fn render(&self, scrape: &Scrape) -> String {
        let inner = &self.inner;
        inner.queue_depth.set(saturating(scrape.queue_depth));
        inner.queue_oldest.set(scrape.queue_oldest_seconds);
        inner.store_bytes.set(saturating(scrape.store_bytes));
        inner.certificate_days.clear();
        if let Some((name, days)) = &scrape.certificate {
            let label = CertificateLabel { name: name.clone() };
            inner.certificate_days.get_or_create(&label).set(*days);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &inner.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Inner {
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "smtp_sessions",
            "SMTP sessions admitted, by listener",
            self.sessions.clone(),
        );
        r.register(
            "smtp_messages",
            "Messages answered after DATA, by listener and SMTP reply code",
            self.messages.clone(),
        );
        r.register(
            "smtp_recipients_refused",
            "Recipients refused at RCPT, by listener and SMTP reply code",
            self.refused_recipients.clone(),
        );
        r.register(
            "target_request_seconds",
            "How long targets took to answer a message's POST, by configured address pattern",
            self.target_seconds.clone(),
        );
        r.register(
            "target_responses",
            "Targets' answers to a message's POST, by address pattern and status class",
            self.target_responses.clone(),
        );
        r.register(
            "outbound_deliveries",
            "Outbound delivery attempts, by outcome",
            self.deliveries.clone(),
        );
        r.register(
            "outbound_bounces",
            "Recipients that return mail (DSNs) reported as bounced, by kind",
            self.bounces.clone(),
        );
        r.register(
            "retention_sweeps",
            "Retention sweeps run",
            self.sweeps.clone(),
        );
        r.register(
            "retention_rows_deleted",
            "Rows the retention sweeps deleted or anonymised",
            self.swept_rows.clone(),
        );
        r.register(
            "outbound_queue_depth",
            "Outbound recipients queued, deferred or being sent",
            self.queue_depth.clone(),
        );
        r.register(
            "outbound_queue_oldest_seconds",
            "Age of the oldest outbound recipient still to deliver",
            self.queue_oldest.clone(),
        );
        r.register(
            "tls_certificate_days_left",
            "Days until the served certificate expires",
            self.certificate_days.clone(),
        );
        r.register(
            "store_size_bytes",
            "The database file and its write-ahead log",
            self.store_bytes.clone(),
        );
    }
}

/// The class of a target's HTTP status; `error` when it gave none (timeout, refused).
fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "error",
    }
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_openmetrics_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.session(Listener::Mx);
        metrics.message(Listener::Mx, 250);
        metrics.recipient_refused(Listener::Mx, 550);
        metrics.target_post("*@example.com", Some(503), Duration::from_millis(30));
        metrics.delivery(Delivery::Deferred);
        metrics.sweep(7);
        let scrape = Scrape {
            queue_depth: 3,
            queue_oldest_seconds: 120,
            certificate: Some(("mail.example.com".into(), 42)),
            store_bytes: 4096,
        };
        let text = metrics.render(&scrape);
        for line in [
            "postern_smtp_sessions_total{listener=\"mx\"} 1",
            "postern_smtp_messages_total{listener=\"mx\",code=\"250\"} 1",
            "postern_smtp_recipients_refused_total{listener=\"mx\",code=\"550\"} 1",
            "postern_target_request_seconds_bucket{le=\"0.05\",address=\"*@example.com\"} 1",
            "postern_target_responses_total{address=\"*@example.com\",status=\"5xx\"} 1",
            "postern_outbound_deliveries_total{outcome=\"deferred\"} 1",
            "postern_retention_sweeps_total 1",
            "postern_retention_rows_deleted_total 7",
            "postern_outbound_queue_depth 3",
            "postern_outbound_queue_oldest_seconds 120",
            "postern_tls_certificate_days_left{name=\"mail.example.com\"} 42",
            "postern_store_size_bytes 4096",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn no_certificate_means_no_days_left_sample() {
        let metrics = Metrics::new();
        let with = Scrape {
            certificate: Some(("a.example".into(), 10)),
            ..Scrape::default()
        };
        metrics.render(&with);
        let text = metrics.render(&Scrape::default());
        assert!(
            !text.contains("postern_tls_certificate_days_left{"),
            "{text}"
        );
    }

    #[test]
    fn two_registries_never_mix() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.bounce("bounce");
        assert!(
            a.render(&Scrape::default())
                .contains("postern_outbound_bounces_total{kind=\"bounce\"} 1")
        );
        let text = b.render(&Scrape::default());
        assert!(!text.contains("postern_outbound_bounces_total{"), "{text}");
    }
}
